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

/// Why a shard plan or a timings history could not be produced.
#[derive(Debug, Error, PartialEq)]
pub enum PlanError {
    #[error(
        "nothing to plan: the suite listed no test files (hint: check the suite's `files` and `exclude` globs and the repository root)"
    )]
    NoFiles,
    #[error(
        "too many test files: {count} exceeds the limit of {max} (hint: split the suite into several suites)"
    )]
    TooManyFiles { count: usize, max: usize },
    #[error("the file list contains a blank path (hint: check the suite's file listing)")]
    BlankPath,
    #[error("invalid shard count 0 (hint: ask for at least 1 shard)")]
    ZeroShards,
    #[error("invalid max_shards {value}: expected 1..={max}")]
    InvalidMaxShards { value: u32, max: u32 },
    #[error(
        "invalid target shard duration {value} s: expected a finite number of seconds greater than 0"
    )]
    InvalidTargetSeconds { value: f64 },
    #[error(
        "timings `{origin}` are not valid JSON history: {message} (hint: expected {{\"version\":1,\"files\":{{...}},\"tests\":{{...}}}} as written by `testexec`)"
    )]
    BadTimingsJson { origin: String, message: String },
    #[error(
        "timings `{origin}` have version {version}, this testexec reads version 1 (hint: upgrade testexec or regenerate the history)"
    )]
    UnsupportedTimingsVersion { origin: String, version: u64 },
    #[error(
        "timings `{origin}`: {what} `{path}` has duration {value}: expected seconds between 0 and 1e9"
    )]
    BadDuration {
        origin: String,
        what: &'static str,
        path: String,
        value: f64,
    },
    #[error("timings `{origin}` hold {count} files, more than the limit of {max}")]
    TooManyTimings {
        origin: String,
        count: usize,
        max: usize,
    },
}

// ---- ports, handlers and backends ------------------------------------------


