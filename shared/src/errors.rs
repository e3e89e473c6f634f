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

/// Why a JUnit/xUnit report could not be read. Every variant names the file
/// (`file` is the `source` label given to the reader) and, where it applies,
/// the byte offset in the (UTF-8) input and the line when it was cheap to get.
#[derive(Debug, Error)]
pub enum JunitError {
    #[error("{file}: cannot read the report: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: the report is larger than the {limit}-byte limit; if it is genuine, raise `max_report_bytes`"
    )]
    TooLarge { file: String, limit: u64 },
    #[error(
        "{file}: empty report (no XML element); the test runner probably died before writing it"
    )]
    Empty { file: String },
    #[error(
        "{file}: malformed XML at {}: {message}; check that the file is a complete JUnit XML report",
        at(*position, *line)
    )]
    Malformed {
        file: String,
        position: u64,
        line: Option<u64>,
        message: String,
    },
    #[error(
        "{file}: truncated report: input ends at {} inside <{open}>; the writer probably died mid-report",
        at(*position, *line)
    )]
    Truncated {
        file: String,
        position: u64,
        line: Option<u64>,
        open: String,
    },
    #[error(
        "{file}: not a JUnit report: root element is <{root}> at {}, expected <testsuites> or <testsuite>",
        at(*position, *line)
    )]
    NotJunit {
        file: String,
        position: u64,
        line: Option<u64>,
        root: String,
    },
    #[error(
        "{file}: refused a DOCTYPE at {}: JUnit reports never need one and entities are never resolved (XXE)",
        at(*position, *line)
    )]
    Doctype {
        file: String,
        position: u64,
        line: Option<u64>,
    },
    #[error(
        "{file}: elements nested deeper than {limit} levels at {}; raise `max_depth` if the report is genuine",
        at(*position, *line)
    )]
    TooDeep {
        file: String,
        position: u64,
        line: Option<u64>,
        limit: usize,
    },
    #[error(
        "{file}: unsupported encoding `{label}` in the XML declaration; re-encode the report as UTF-8"
    )]
    UnsupportedEncoding { file: String, label: String },
}

/// Formats a position for the messages above.
fn at(position: u64, line: Option<u64>) -> String {
    match line {
        Some(line) => format!("line {line} (byte {position})"),
        None => format!("byte {position}"),
    }
}

// ---- manifest errors (manifest.rs) -----------------------------------------



// ---- shard planning errors (plan.rs) ---------------------------------------



// ---- ports, handlers and backends ------------------------------------------


