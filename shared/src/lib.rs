//! testexec's library: everything that is not a cloud's entry point.
//!
//! - [`model`]: runs, shards, test cases, outcomes, ids.
//! - [`junit`]: streaming JUnit/xUnit reader for every dialect found in the wild.
//! - [`manifest`]: the repository's `testexec.toml`.
//! - [`plan`]: timing-balanced shard planning.
//! - [`errors`]: one precise error enum per concern.
//! - [`ports`]: the traits handlers use; [`backends`] implement them.
//! - `contract` (feature `contract`): the checks every backend must pass.
//! - `github` (feature `github`): webhook verification and routing.

pub mod backends;
#[cfg(feature = "contract")]
pub mod contract;
pub mod errors;
pub mod files;
#[cfg(feature = "github")]
pub mod github;
pub mod handlers;
pub mod junit;
/// The Lambda host of the four functions.
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod manifest;
pub mod messages;
pub mod model;
/// The whole pipeline in one process, over any backend set.
pub mod pipeline;
pub mod plan;
pub mod ports;
pub mod process;
pub mod report;
pub mod selector;
pub mod source;
