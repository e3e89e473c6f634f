//! Every error the library can return, one precise enum per concern.
//!
//! Messages name the offending file, field or value and, where there is one,
//! the fix. Callers match on variants; the CLI prints `Display`.

use thiserror::Error;

/// A malformed run or shard id.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("invalid run id `{value}`: expected a 26-character ULID such as 01J9Z3V8K4QW5T6Y7X8C9B0N1M")]
    InvalidRunId { value: String },
    #[error("invalid shard id `{value}`: expected `<run id>/<index>`, e.g. 01J9Z3V8K4QW5T6Y7X8C9B0N1M/3")]
    InvalidShardId { value: String },
}

// ---- JUnit reader errors (junit.rs) ----------------------------------------



// ---- manifest errors (manifest.rs) -----------------------------------------



// ---- shard planning errors (plan.rs) ---------------------------------------



// ---- ports, handlers and backends ------------------------------------------


