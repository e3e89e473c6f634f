//! Streaming JUnit/xUnit XML reader for the dialects found in the wild.
//!
//! The reader is a single pass over XML events: it never builds a DOM
//! and hands out each test case as soon as its element closes, so memory
//! stays flat however large the report. Totals are always counted
//! from the elements; `tests=`/`failures=` attributes are only compared, and a
//! disagreement becomes a warning.
//!
//! The events come from quick-xml or, for the common shapes of a report
//! (plain start tags, end tags, texts up to a reference), from a fast lane
//! that reads them exactly as quick-xml would, from the same buffer and in
//! one pass per tag (`parse/fast_lane.rs`); anything else, and every error,
//! is quick-xml's.
//!
//! # Dialect rules
//!
//! - **Roots**: `<testsuites>` or a bare `<testsuite>`; suites nest to any
//!   depth (up to [`Limits::max_depth`] elements). Any other root is
//!   [`JunitError::NotJunit`].
//! - **Result precedence**: a `<testcase>` with several result children
//!   takes the most severe: `<error>` > `<failure>` > `<skipped>` (a warning
//!   notes the extra ones). Message and details come from that element.
//! - **`status`/`result` attributes** only matter when the case has no result
//!   child (children are more specific): `disabled`, `skipped`, `notrun`,
//!   `not run`, `suppressed`, `ignored`, `pending` → skipped; `failed`,
//!   `failure`, `fail` → failed; `error`, `errored`, `broken` → error;
//!   anything else (GoogleTest's `run`/`completed`, `passed`, ...) → passed.
//! - **Retries** (surefire, nextest): `<flakyFailure>`/`<flakyError>` are
//!   earlier failed attempts of a test that passed in the end → `Flaky`.
//!   `<rerunFailure>`/`<rerunError>` are reruns that failed again: with a
//!   `<failure>`/`<error>` the case stays failed/error; without one the test
//!   passed in the end → `Flaky`. The case's message/details come from its
//!   `<failure>`/`<error>` (surefire's first run). Each such element becomes an `Attempt`
//!   in `retries`, in document order; `<stackTrace>` (or the element's own
//!   text) is its details.
//! - **Repeated `<testcase>`**: every `<testcase>` element is a test case
//!   of its own, whatever its suite, classname and name. Mocha allows two
//!   tests with one title, parametrised runners repeat display names, and
//!   folding them would hide one test and, with it, maybe a failure. Only
//!   the rerun elements above make attempts of one test within a report;
//!   attempts across tries are folded by collect (`fold_attempts`), which
//!   knows which file came from which try. A case repeating the identity
//!   of the failed case just before it is still counted, with one warning
//!   per report that names the runner setting for real reruns (Gradle's
//!   default lists each execution as a `<testcase>`; `mergeReruns = true`
//!   writes `<flakyFailure>`/`<rerunFailure>` instead).
//! - **`<error>`/`<failure>` directly inside `<testsuite>`** (Jenkins nested
//!   suites; a suite that failed to load): becomes a synthetic case named
//!   [`SUITE_ERROR_NAME`] with outcome error/failed, so that a suite that
//!   crashed cannot look green, plus a warning.
//! - **Files**: the testcase's `file` attribute, else the innermost suite's
//!   `file` attribute (both `file_derived = false`), else a documented
//!   heuristic (see `derive.rs`: path-like names, Python modules, nextest
//!   binary ids) with `file_derived = true`. `line` comes from the attribute.
//! - **Times**: see `text::parse_time`: decimals, `1,234.5`, scientific
//!   notation; negative → 0 with a warning; missing or garbage → 0 with a
//!   warning. A suite's duration is its `time` attribute, else the sum of its
//!   own cases.
//! - **Text**: messages, details, system-out/err are capped at
//!   [`Limits::max_text_bytes`] keeping head and tail with a
//!   `\n…[N bytes cut]…\n` marker; a longer run of character data is cut
//!   before the tokenizer sees it (`long_text`), so memory stays bounded
//!   whatever the text sizes. The full text stays in the JUnit file (the
//!   blob store keeps each shard's under `keys::junit_prefix`). CDATA, predefined entities and numeric
//!   character references are decoded; an undefined entity is kept literally.
//! - **NUL bytes** (forbidden in XML, written anyway by runners that print
//!   raw bytes) in suite/case names, classnames and file paths become the
//!   two characters `\0`, with one warning per report: a NUL cannot be
//!   passed back to a runner in argv or shown on a terminal.
//! - **Security**: any `<!DOCTYPE` is refused ([`JunitError::Doctype`]); no
//!   entity is ever resolved or fetched.
//! - **Encodings**: UTF-8, UTF-16 LE/BE (BOM or not) and any encoding
//!   declared in the XML declaration that `encoding_rs` knows
//!   (ISO-8859-1, windows-1252, Shift_JIS...).
//! - **Leniency**: quick-xml does not reject `<` inside attribute values, so
//!   a template such as `time="<<computed>>"` is read (its time is garbage).

mod case_ref;
mod derive;
mod input;
mod long_text;
mod parse;
mod text;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

pub use self::case_ref::CaseRef;
use crate::domain::model::{Counts, TestCase};
pub use crate::errors::JunitError;

/// Name of the synthetic case standing for an `<error>`/`<failure>` placed
/// directly inside a `<testsuite>`.
pub const SUITE_ERROR_NAME: &str = "(suite-level error)";

/// Bounds on what a report may cost. Every input is untrusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Cap per message, stack trace, system-out/err and attribute value
    /// (head and tail are kept). Default 64 KiB.
    pub max_text_bytes: usize,
    /// Reports larger than this fail with [`JunitError::TooLarge`]. Default 2 GiB.
    pub max_report_bytes: u64,
    /// Maximum element nesting depth. Default 64 (real reports use < 10).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_text_bytes: 64 * 1024,
            max_report_bytes: 2 * 1024 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// A whole report read into memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub cases: Vec<TestCase>,
    pub counts: Counts,
    pub suites: Vec<SuiteSummary>,
    pub warnings: Vec<String>,
}

/// One `<testsuite>` element, in document order of its start tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteSummary {
    /// The `name` attribute ("" when absent).
    pub name: String,
    /// Cases directly inside this suite (not in nested suites), so that the
    /// sum over all suites equals the report's counts.
    pub counts: Counts,
    /// The `time` attribute, or the sum of its own cases when absent/invalid.
    pub duration_secs: f64,
    /// Nesting level: 0 for a top-level suite.
    pub depth: usize,
    /// The `file` attribute (PHPUnit, mocha), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The `tests` attribute as written, for comparison only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_tests: Option<u64>,
}

/// What [`stream`] returns besides the cases it handed out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamSummary {
    pub counts: Counts,
    pub suites: Vec<SuiteSummary>,
    pub warnings: Vec<String>,
}

/// Reads a report file with default limits.
pub fn read_file(path: &Path) -> Result<Report, JunitError> {
    read_file_with(path, &Limits::default())
}

/// Reads a report file. Errors name the file as given and, for positional
/// errors, the line.
pub fn read_file_with(path: &Path, limits: &Limits) -> Result<Report, JunitError> {
    let file = open_report(path)?;
    read(file, &path.display().to_string(), limits).map_err(|err| err.with_line_from(path))
}

/// Opens a report for reading, refusing anything but a regular file
/// ([`JunitError::NotAFile`]): opening a FIFO waits for a writer, and
/// reading one waits for its data, possibly forever; a directory or a
/// device is no report. The file is opened without blocking and the check
/// is made on the open descriptor, so what is checked is what gets read
/// (no window for a swap between a `stat` and the `open`).
pub fn open_report(path: &Path) -> Result<File, JunitError> {
    crate::domain::regular_file::open(path).map_err(|e| match e {
        crate::domain::regular_file::OpenError::Io(source) => JunitError::Io {
            file: path.display().to_string(),
            source,
        },
        crate::domain::regular_file::OpenError::NotAFile(what) => JunitError::NotAFile {
            file: path.display().to_string(),
            what,
        },
    })
}

/// Reads a whole report from `reader`; `source` names it in errors.
pub fn read(reader: impl Read, source: &str, limits: &Limits) -> Result<Report, JunitError> {
    let mut cases = Vec::new();
    let summary = stream(reader, source, limits, |case| cases.push(case))?;
    Ok(Report {
        cases,
        counts: summary.counts,
        suites: summary.suites,
        warnings: summary.warnings,
    })
}

/// Streaming form: calls `on_case` for each finished case, keeps no Vec:
/// flat memory for huge reports. Each case is owned; a consumer that only
/// looks at each case (counts, encodes, keeps a few) should use
/// [`stream_refs`], which lends it without allocating for it.
pub fn stream(
    reader: impl Read,
    source: &str,
    limits: &Limits,
    mut on_case: impl FnMut(TestCase),
) -> Result<StreamSummary, JunitError> {
    stream_refs(reader, source, limits, |case| on_case(case.into_owned()))
}

/// [`stream`] lending each case as a [`CaseRef`]: its identity borrows the
/// reader's buffers for the duration of the call, so a case costs no
/// allocation unless the consumer keeps it (`CaseRef::into_owned`).
pub fn stream_refs(
    reader: impl Read,
    source: &str,
    limits: &Limits,
    on_case: impl FnMut(CaseRef<'_>),
) -> Result<StreamSummary, JunitError> {
    stream_refs_using(Tokenizer::default(), reader, source, limits, on_case)
}

/// Which tokenizer reads a report. Both give the same output, errors and
/// positions included: that is the fast lane's contract, which the tests
/// and the fuzzer check against [`Tokenizer::QuickXmlOnly`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tokenizer {
    /// The fast lane for the common shapes, quick-xml for the rest.
    #[default]
    FastLane,
    /// quick-xml reads every event: the reference.
    QuickXmlOnly,
}

/// [`stream_refs`] with the tokenizer chosen.
pub fn stream_refs_using(
    tokenizer: Tokenizer,
    reader: impl Read,
    source: &str,
    limits: &Limits,
    on_case: impl FnMut(CaseRef<'_>),
) -> Result<StreamSummary, JunitError> {
    let fast_lane = tokenizer == Tokenizer::FastLane;
    let mut limited = input::Limited::new(reader, limits.max_report_bytes);
    let prefix =
        input::read_prefix(&mut limited).map_err(|e| parse::io_error(source, limits, e))?;
    let sniffed = input::sniff(&prefix);
    let rest = std::io::Cursor::new(prefix).chain(limited);
    // Overlong texts are cut before the XML reader, which would buffer each
    // whole (see `long_text`).
    let keep = long_text::keep_for(limits.max_text_bytes);
    match sniffed {
        // `LongTextCut` is itself the `BufRead` the XML reader reads: it
        // lends its input chunk wherever nothing was cut.
        input::Sniffed::Utf8 => parse::run(
            long_text::LongTextCut::new(rest, keep),
            source,
            limits,
            on_case,
            fast_lane,
        ),
        input::Sniffed::Other(encoding) => parse::run(
            long_text::LongTextCut::new(input::Transcoder::new(rest, encoding), keep),
            source,
            limits,
            on_case,
            fast_lane,
        ),
        input::Sniffed::Unknown(label) => Err(JunitError::UnsupportedEncoding {
            file: source.to_owned(),
            label,
        }),
    }
}

impl JunitError {
    /// A short stable name for the variant, used in JSON output and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            JunitError::Io { .. } => "io",
            JunitError::TooLarge { .. } => "too_large",
            JunitError::Empty { .. } => "empty",
            JunitError::Malformed { .. } => "malformed",
            JunitError::Truncated { .. } => "truncated",
            JunitError::NotJunit { .. } => "not_junit",
            JunitError::Doctype { .. } => "doctype",
            JunitError::TooDeep { .. } => "too_deep",
            JunitError::UnsupportedEncoding { .. } => "unsupported_encoding",
            JunitError::NotAFile { .. } => "not_a_file",
        }
    }

    /// Byte offset of the problem in the input, when there is one.
    pub fn position(&self) -> Option<u64> {
        match self {
            JunitError::Malformed { position, .. }
            | JunitError::Truncated { position, .. }
            | JunitError::NotJunit { position, .. }
            | JunitError::Doctype { position, .. }
            | JunitError::TooDeep { position, .. } => Some(*position),
            _ => None,
        }
    }

    /// Adds the line number by re-reading `path` up to the error's byte
    /// offset (cheap, and only on the error path). For UTF-16 files offsets
    /// are in the transcoded stream, so no line is given.
    pub fn with_line_from(mut self, path: &Path) -> Self {
        if let Some(line) = self.position().and_then(|p| line_of(path, p)) {
            self.set_line(line);
        }
        self
    }

    fn set_line(&mut self, value: u64) {
        match self {
            JunitError::Malformed { line, .. }
            | JunitError::Truncated { line, .. }
            | JunitError::NotJunit { line, .. }
            | JunitError::Doctype { line, .. }
            | JunitError::TooDeep { line, .. } => *line = Some(value),
            _ => {}
        }
    }
}

/// 1-based line of a byte offset, by re-reading the file (error path only).
/// Not given for UTF-16 files, where offsets are in the transcoded stream.
fn line_of(path: &Path, position: u64) -> Option<u64> {
    let file = File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(position).read_to_end(&mut bytes).ok()?;
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return None;
    }
    Some(bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1)
}
