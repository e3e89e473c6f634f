//! AWS backends: [`DynamoRunStore`] (one DynamoDB table), [`S3BlobStore`]
//! and [`SqsQueue`] (four queues, each with a dead-letter queue).
//!
//! Every function builds them once, in `main`, from [`AwsSettings::from_env`]
//! (the variables `template.yaml` sets) and one [`sdk_config`]. The key
//! layout and the conditional writes are documented in `docs/backends.md`.

pub mod dynamodb;
pub mod provision;
pub mod s3;
pub mod sqs;

use std::sync::Arc;
use std::time::Duration;

pub use dynamodb::DynamoRunStore;
pub use s3::S3BlobStore;
pub use sqs::{QueueUrls, SqsQueue};

use crate::errors::ConfigError;

/// Environment variable names, shared by the functions, `template.yaml`
/// (which sets them) and the tests (which point them at emulators).
pub mod env {
    pub const TABLE: &str = "TESTEXEC_TABLE";
    pub const BUCKET: &str = "TESTEXEC_BUCKET";
    pub const SHARDS_QUEUE_URL: &str = "TESTEXEC_SHARDS_QUEUE_URL";
    pub const RESULTS_QUEUE_URL: &str = "TESTEXEC_RESULTS_QUEUE_URL";
    pub const REPORTS_QUEUE_URL: &str = "TESTEXEC_REPORTS_QUEUE_URL";
    pub const REQUESTS_QUEUE_URL: &str = "TESTEXEC_REQUESTS_QUEUE_URL";
    /// Seconds a presigned report link stays valid (at most 7 days).
    pub const LINK_TTL_SECS: &str = "TESTEXEC_LINK_TTL_SECS";
    /// `true` for S3 emulators that only speak path-style URLs.
    pub const S3_PATH_STYLE: &str = "TESTEXEC_S3_PATH_STYLE";
    /// Seconds a polling worker's lease on a message lasts before it renews
    /// it (`ChangeMessageVisibility`); default 30, the SQS default.
    pub const QUEUE_LEASE_SECS: &str = "TESTEXEC_QUEUE_LEASE_SECS";
}

/// S3 refuses presigned URLs valid for longer than 7 days.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where the AWS backends live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub table: String,
    pub bucket: String,
    pub queues: QueueUrls,
    /// Lifetime of presigned report links.
    pub link_ttl: Duration,
    /// Path-style S3 addressing (`http://host/bucket/key`), for emulators.
    pub s3_path_style: bool,
    /// The lease a polling worker holds on a message and renews (see
    /// [`SqsQueue::with_lease`]). Lambda's event source does not use it.
    pub queue_lease: Duration,
}

/// The lease of a polling worker when `TESTEXEC_QUEUE_LEASE_SECS` is unset.
pub const DEFAULT_QUEUE_LEASE: Duration = Duration::from_secs(30);

impl AwsSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        const HINT: &str =
            "the SAM template sets it; when running by hand, export it (see docs/deploy-aws.md)";
        let required = |var: &'static str| {
            lookup(var)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing { var, hint: HINT })
        };
        let link_ttl = match lookup(env::LINK_TTL_SECS) {
            None => Duration::from_secs(24 * 3600),
            Some(raw) => {
                let secs: u64 = raw.trim().parse().map_err(|_| ConfigError::Invalid {
                    var: env::LINK_TTL_SECS,
                    value: raw.clone(),
                    reason: "expected a whole number of seconds".into(),
                })?;
                let ttl = Duration::from_secs(secs);
                if secs == 0 || ttl > MAX_LINK_TTL {
                    return Err(ConfigError::Invalid {
                        var: env::LINK_TTL_SECS,
                        value: raw,
                        reason: "must be between 1 and 604800 (S3's 7-day maximum)".into(),
                    });
                }
                ttl
            }
        };
        let s3_path_style = match lookup(env::S3_PATH_STYLE).as_deref().map(str::trim) {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: env::S3_PATH_STYLE,
                    value: other.to_string(),
                    reason: "expected `true` or `false`".into(),
                });
            }
        };
        let queue_lease = match lookup(env::QUEUE_LEASE_SECS) {
            None => DEFAULT_QUEUE_LEASE,
            Some(raw) => raw
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|secs| (1..=sqs::MAX_VISIBILITY.as_secs()).contains(secs))
                .map(Duration::from_secs)
                .ok_or_else(|| ConfigError::Invalid {
                    var: env::QUEUE_LEASE_SECS,
                    value: raw.chars().take(40).collect(),
                    reason: "expected whole seconds between 1 and 43200 (SQS's 12-hour maximum)"
                        .into(),
                })?,
        };
        Ok(Self {
            table: required(env::TABLE)?,
            bucket: required(env::BUCKET)?,
            queues: QueueUrls {
                shards: required(env::SHARDS_QUEUE_URL)?,
                results: required(env::RESULTS_QUEUE_URL)?,
                reports: required(env::REPORTS_QUEUE_URL)?,
                requests: required(env::REQUESTS_QUEUE_URL)?,
            },
            link_ttl,
            s3_path_style,
            queue_lease,
        })
    }
}

/// Loads region, credentials and endpoint the standard way (environment,
/// profile, the Lambda role; `AWS_ENDPOINT_URL` points every client at an
/// emulator), with an HTTPS client on rustls + ring.
pub async fn sdk_config() -> aws_config::SdkConfig {
    config_loader().load().await
}

/// [`sdk_config`] for a Lambda function: the same loader, told the
/// credentials and region come from the environment when they are there.
///
/// Lambda always puts the execution role's credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and
/// `AWS_REGION` in the function's environment, and the SDK's default chains
/// try the environment first, so they would pick exactly these. Naming the
/// environment providers saves building the rest of both chains (profile
/// files, web identity, ECS, IMDS and their HTTP settings) at init, where
/// every page of code touched counts against the function's cold start and
/// resident memory (docs/benchmarks.md, "One zip per function"). Where
/// either is missing from the environment (not on Lambda, or a variable
/// removed), the default chains run as in [`sdk_config`]. Everything else
/// (`AWS_ENDPOINT_URL`, retries, timeouts, profile settings) is loaded as
/// there.
pub async fn lambda_sdk_config() -> aws_config::SdkConfig {
    lambda_config_loader(|name| std::env::var(name).ok())
        .load()
        .await
}

/// The loader of [`lambda_sdk_config`], deciding through `lookup` (tests
/// pass a map) whether the environment providers stand in for the chains.
fn lambda_config_loader(lookup: impl Fn(&str) -> Option<String>) -> aws_config::ConfigLoader {
    use aws_config::environment::{
        EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
    };
    let loader = config_loader();
    if env_has_identity(lookup) {
        loader
            .credentials_provider(EnvironmentVariableCredentialsProvider::new())
            .region(EnvironmentVariableRegionProvider::new())
    } else {
        loader
    }
}

/// Whether the environment providers would answer, by their own rules:
/// a non-blank access key and secret key (`AWS_SECRET_ACCESS_KEY`, or the
/// legacy `SECRET_ACCESS_KEY`), and `AWS_REGION` or `AWS_DEFAULT_REGION`
/// set. Exactly when the default chains stop at their first, environment,
/// link.
fn env_has_identity(lookup: impl Fn(&str) -> Option<String>) -> bool {
    let nonblank = |name: &str| lookup(name).is_some_and(|v| !v.trim().is_empty());
    nonblank("AWS_ACCESS_KEY_ID")
        && (nonblank("AWS_SECRET_ACCESS_KEY") || nonblank("SECRET_ACCESS_KEY"))
        && (lookup("AWS_REGION").is_some() || lookup("AWS_DEFAULT_REGION").is_some())
}

/// The SDK's loader with our HTTPS client (rustls + ring, already linked for
/// the GitHub client) instead of the default one, which would build aws-lc.
pub(crate) fn config_loader() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http)
}

/// The three AWS backends, built once per process and shared.
#[derive(Clone)]
pub struct AwsBackends {
    pub store: Arc<DynamoRunStore>,
    pub blobs: Arc<S3BlobStore>,
    pub queue: Arc<SqsQueue>,
}

impl AwsBackends {
    pub fn new(sdk: &aws_config::SdkConfig, settings: &AwsSettings) -> Self {
        Self::from_clients(
            aws_sdk_dynamodb::Client::new(sdk),
            s3::client(sdk, settings.s3_path_style),
            aws_sdk_sqs::Client::new(sdk),
            settings,
        )
    }

    /// The backends over clients the caller configured, so that a client
    /// with extra layers (the call counter of `testkit::aws_calls`) gets
    /// exactly the wiring the functions use.
    pub fn from_clients(
        dynamodb: aws_sdk_dynamodb::Client,
        s3: aws_sdk_s3::Client,
        sqs: aws_sdk_sqs::Client,
        settings: &AwsSettings,
    ) -> Self {
        Self {
            store: Arc::new(DynamoRunStore::new(dynamodb, settings.table.clone())),
            blobs: Arc::new(S3BlobStore::new(
                s3,
                settings.bucket.clone(),
                settings.link_ttl,
            )),
            queue: Arc::new(
                SqsQueue::new(sqs, settings.queues.clone()).with_lease(settings.queue_lease),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, String> {
        [
            (env::TABLE, "t"),
            (env::BUCKET, "b"),
            (env::SHARDS_QUEUE_URL, "http://q/shards"),
            (env::RESULTS_QUEUE_URL, "http://q/results"),
            (env::REPORTS_QUEUE_URL, "http://q/reports"),
            (env::REQUESTS_QUEUE_URL, "http://q/requests"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
    }

    #[test]
    fn lambda_environment_providers_only_where_they_would_answer() {
        let with = |pairs: &[(&str, &str)]| {
            let vars: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            env_has_identity(|k| vars.get(k).cloned())
        };
        let lambda = [
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_REGION", "eu-west-1"),
        ];
        // What Lambda sets: the chains would stop at the environment.
        assert!(with(&lambda));
        assert!(!with(&lambda[..3]), "no region: the region chain runs");
        assert!(!with(&[
            ("AWS_ACCESS_KEY_ID", " "),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_REGION", "eu-west-1"),
        ]));
        // No secret key: the environment provider would fail and the
        // chain go on to the profile, so the chain it is.
        assert!(!with(&[
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_REGION", "eu-west-1")
        ]));
        assert!(with(&[
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("SECRET_ACCESS_KEY", "secret"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]));
    }

    #[test]
    fn settings_name_the_missing_variable() {
        let mut vars = full();
        vars.remove(env::BUCKET);
        let err = AwsSettings::from_lookup(|k| vars.get(k).cloned()).unwrap_err();
        assert!(err.to_string().contains("TESTEXEC_BUCKET"), "{err}");
    }

    #[test]
    fn link_ttl_is_bounded_by_s3s_seven_days() {
        let mut vars = full();
        vars.insert(env::LINK_TTL_SECS, "700000".into());
        let err = AwsSettings::from_lookup(|k| vars.get(k).cloned()).unwrap_err();
        assert!(err.to_string().contains("604800"), "{err}");
        vars.insert(env::LINK_TTL_SECS, "3600".into());
        let ok = AwsSettings::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(ok.link_ttl, Duration::from_secs(3600));
        assert!(!ok.s3_path_style);
    }
}
