//! Every error the library can return, one precise enum per concern.
//!
//! Messages name the offending file, field or value and, where there is one,
//! the fix. Callers match on variants; the CLI prints `Display`.

use thiserror::Error;

/// A malformed run or shard id.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error(
        "invalid run id `{value}`: expected a 26-character ULID such as 01J9Z3V8K4QW5T6Y7X8C9B0N1M"
    )]
    InvalidRunId { value: String },
    #[error(
        "invalid shard id `{value}`: expected `<run id>/<index>`, e.g. 01J9Z3V8K4QW5T6Y7X8C9B0N1M/3"
    )]
    InvalidShardId { value: String },
}

// ---- JUnit reader errors (junit.rs) ----------------------------------------

// ---- manifest errors (manifest.rs) -----------------------------------------

// ---- shard planning errors (plan.rs) ---------------------------------------

// ---- ports, handlers and backends ------------------------------------------

/// Boxed cause from a backend (SQLite, an SDK, the file system).
pub type BackendSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Run store failures.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("run {run} already exists")]
    Conflict { run: String },
    #[error("run {run} not found")]
    NotFound { run: String },
    #[error("stored record `{key}` is corrupt: {message}")]
    Corrupt { key: String, message: String },
    #[error("run store ({backend}) failed during {operation}: {source}")]
    Backend {
        backend: &'static str,
        operation: &'static str,
        #[source]
        source: BackendSource,
    },
}

/// Blob store failures.
#[derive(Debug, Error)]
pub enum BlobError {
    #[error("blob `{key}` not found")]
    NotFound { key: String },
    #[error("blob key `{key}` is not allowed: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("blob store ({backend}) failed during {operation} of `{key}`: {source}")]
    Backend {
        backend: &'static str,
        operation: &'static str,
        key: String,
        #[source]
        source: BackendSource,
    },
}

/// Queue failures.
#[derive(Debug, Error)]
pub enum QueueError {
    #[error("message for queue `{queue}` is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        queue: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("queue `{queue}` ({backend}) failed: {source}")]
    Backend {
        backend: &'static str,
        queue: &'static str,
        #[source]
        source: BackendSource,
    },
}

/// Source fetching and snapshot failures.
#[derive(Debug, Error)]
pub enum SourceError {
    #[error("source `{repo}` not found: {detail}")]
    NotFound { repo: String, detail: String },
    #[error("source archive is unsafe: entry `{entry}` {reason}")]
    UnsafeEntry { entry: String, reason: &'static str },
    #[error("source archive exceeds the limit of {limit} {what}; raise it or slim the repository")]
    TooLarge { what: &'static str, limit: u64 },
    #[error("source I/O failed at `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("source provider ({backend}) failed: {source}")]
    Backend {
        backend: &'static str,
        #[source]
        source: BackendSource,
    },
}

/// Notifier failures. Report retries them through the queue.
#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("notifier ({backend}) failed: {message}")]
    Failed {
        backend: &'static str,
        message: String,
        retry_after_secs: Option<u64>,
    },
}

// Stand-ins until the manifest/plan/junit branches land with their enums here.
pub use crate::junit::JunitError;
pub use crate::manifest::ManifestError;
pub use crate::plan::PlanError;

/// Why a handler could not do its work. Hosts map these to retries, HTTP
/// statuses and exit codes: [`HandlerError::is_permanent`] says whether
/// trying the same input again can help.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("undecodable {what} message: {detail}")]
    BadMessage { what: &'static str, detail: String },
    #[error("message version {found} is not supported (this build reads version {supported}); drain the queue with a matching build")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("run {run} does not exist")]
    UnknownRun { run: String },
    #[error("the repository has no {file} at its root; add one (see docs/manifest.md)")]
    NoManifest { file: &'static str },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error("{context}: {source}")]
    Io { context: String, #[source] source: std::io::Error },
}

impl HandlerError {
    /// True when retrying the same input cannot succeed (bad input, a
    /// broken manifest); false for infrastructure trouble worth a retry.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            HandlerError::BadMessage { .. }
                | HandlerError::UnsupportedVersion { .. }
                | HandlerError::UnknownRun { .. }
                | HandlerError::NoManifest { .. }
                | HandlerError::Manifest(_)
                | HandlerError::Plan(_)
                | HandlerError::Source(SourceError::NotFound { .. } | SourceError::UnsafeEntry { .. } | SourceError::TooLarge { .. })
        )
    }
}
