//! The library's integration tests, as one test binary (one link instead of
//! one per file: each binary links the AWS SDK, and on a 2-core CI machine
//! the links were most of the build). A module whose backend or host is
//! behind a cargo feature is compiled only with that feature.

#[cfg(all(feature = "aws", feature = "local"))]
mod aws_calls;
#[cfg(feature = "aws")]
mod aws_dynamodb;
#[cfg(all(feature = "aws", feature = "github"))]
mod aws_s3_sqs;
#[cfg(feature = "azure")]
mod azure_backends;
#[cfg(all(feature = "local", feature = "lambda"))]
mod front_door;
#[cfg(feature = "gcp")]
mod gcp_backends;
mod github_api;
mod github_webhook;
mod junit_fixtures;
mod junit_reader;
#[cfg(feature = "local")]
mod local_backends;
mod manifest;
mod manifest_fuzz_regressions;
mod pipeline;
mod source_fuzz_regressions;
