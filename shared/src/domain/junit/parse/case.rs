//! `<testcase>`: its attributes, the finished case (file derived when the
//! runner wrote none), and lending it out as a [`CaseRef`] with the counts.

use super::Parser;
use super::attrs::attr_outcome;
use super::outcome::{CaseResult, RerunBuilder, ResultKind};
use super::tag::Tag;
use crate::domain::junit::CaseRef;
use crate::domain::junit::derive::{derive_file_with, suite_path};
use crate::domain::junit::text::cap_str;
use crate::domain::model::{Attempt, Outcome, add_duration};
use crate::errors::JunitError;

pub(super) struct CaseBuilder {
    /// Identity buffers, refilled for each case and lent out in its
    /// `CaseRef`: no allocation per case once they have grown.
    pub(super) classname: String,
    pub(super) name: String,
    /// The `file` attribute, when `has_file`.
    pub(super) file: String,
    pub(super) has_file: bool,
    pub(super) line: Option<u32>,
    pub(super) duration: f64,
    /// From the `result`/`status` attributes; used when no result child.
    pub(super) attr_outcome: Outcome,
    pub(super) result: Option<CaseResult>,
    pub(super) results_seen: u32,
    /// A pending result element being read: kind and message.
    pub(super) open_result: Option<(ResultKind, Option<String>)>,
    pub(super) rerun: Option<RerunBuilder>,
    pub(super) retries: Vec<Attempt>,
    pub(super) system_out: Option<String>,
    pub(super) system_err: Option<String>,
}

/// The open `<testcase>`, kept in place from one case to the next: the
/// builder is ~400 bytes, and moving it in and out of an `Option` for every
/// case cost two `memcpy` calls per case (with the moves of the finished
/// `TestCase`, `memmove` was ~13 % of the wall time on a report of small
/// cases). Its identity strings are lent to each `CaseRef` and reused by
/// the next case; its texts and retries are moved out.
pub(super) struct OpenCase {
    open: bool,
    builder: CaseBuilder,
}

impl OpenCase {
    pub(super) fn new() -> Self {
        Self {
            open: false,
            builder: CaseBuilder {
                classname: String::new(),
                name: String::new(),
                file: String::new(),
                has_file: false,
                line: None,
                duration: 0.0,
                attr_outcome: Outcome::Passed,
                result: None,
                results_seen: 0,
                open_result: None,
                rerun: None,
                retries: Vec::new(),
                system_out: None,
                system_err: None,
            },
        }
    }

    /// The open case, if a `<testcase>` is open.
    pub(super) fn as_mut(&mut self) -> Option<&mut CaseBuilder> {
        self.open.then_some(&mut self.builder)
    }
}

/// One-entry memo of `derive_file` for the last (classname, suite), plus
/// the suite rule's result for the last suite: jest reports change classname
/// every few cases within one suite whose name is a path. The key strings are
/// reused across misses (cleared and refilled), so that a report where every
/// classname is new (one class per case) costs no allocation for the key.
/// Identity of the last case handed out, and whether it failed.
#[derive(Default)]
pub(super) struct PreviousCase {
    suite: String,
    classname: String,
    name: String,
    failed: bool,
}

impl PreviousCase {
    /// Whether this case repeats the suite, classname and name of the
    /// failed case just before it; then remembers this one. The identity
    /// lives in reused buffers: no allocation per case.
    #[inline]
    fn repeats(&mut self, suite: &str, classname: &str, name: &str, failed: bool) -> bool {
        let repeat =
            self.failed && self.name == name && self.classname == classname && self.suite == suite;
        self.failed = failed;
        // Only a failed case is ever compared with the next one: the
        // identity of any other is not needed (three copies saved per
        // passing case).
        if failed {
            for (slot, value) in [
                (&mut self.suite, suite),
                (&mut self.classname, classname),
                (&mut self.name, name),
            ] {
                slot.clear();
                slot.push_str(value);
            }
        }
        repeat
    }
}

#[derive(Default)]
pub(super) struct DeriveCache {
    valid: bool,
    classname: String,
    suite: String,
    suite_path: Option<String>,
    file: Option<String>,
}

impl DeriveCache {
    fn get(&mut self, classname: &str, suite: &str) -> Option<&str> {
        let same_suite = self.valid && same(&self.suite, suite);
        if !(same_suite && same(&self.classname, classname)) {
            if !same_suite {
                self.suite_path = suite_path(suite);
                self.suite.clear();
                self.suite.push_str(suite);
            }
            self.file = derive_file_with(classname, || self.suite_path.clone());
            self.classname.clear();
            self.classname.push_str(classname);
            self.valid = true;
        }
        self.file.as_deref()
    }
}

/// String equality for the short names compared once per case, inline: the
/// call to libc's `memcmp` behind `==` was ~15 % of the wall time on a
/// report whose every classname is new (sampled with `perf`; callgrind,
/// which counts instructions only, shows it as cheap).
#[inline]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut wa).zip(&mut wb) {
        if u64::from_ne_bytes(x.try_into().unwrap_or_default())
            != u64::from_ne_bytes(y.try_into().unwrap_or_default())
        {
            return false;
        }
    }
    wa.remainder()
        .iter()
        .zip(wb.remainder())
        .all(|(x, y)| x == y)
}

impl<F: FnMut(CaseRef<'_>)> Parser<'_, F> {
    pub(super) fn open_case(&mut self, e: &Tag<'_>, position: u64) -> Result<(), JunitError> {
        // The builder's identity buffers are refilled, not reallocated;
        // taken out while `attrs` borrows the parser.
        let b = &mut self.case.builder;
        let (mut name, mut classname, mut file) = (
            std::mem::take(&mut b.name),
            std::mem::take(&mut b.classname),
            std::mem::take(&mut b.file),
        );
        name.clear();
        classname.clear();
        file.clear();
        let (mut has_file, mut line) = (false, None);
        let (mut time, mut status, mut result) = (None, None, None);
        enum Key {
            Name,
            Classname,
            File,
            Line,
            Time,
            Status,
            Result,
        }
        // Both closures run once per attribute of every case: left out of
        // line by the compiler, their calls were ~4 % of the instructions.
        // A repeated attribute: the last value wins, as quick-xml's would.
        let plain = self.attrs(
            e,
            position,
            #[inline(always)]
            |k: &[u8]| match k {
                b"name" => Some(Key::Name),
                b"classname" => Some(Key::Classname),
                b"file" => Some(Key::File),
                b"line" => Some(Key::Line),
                b"time" => Some(Key::Time),
                b"status" => Some(Key::Status),
                b"result" => Some(Key::Result),
                _ => None,
            },
            #[inline(always)]
            |k, v| match k {
                Key::Name => {
                    name.clear();
                    name.push_str(&v);
                }
                Key::Classname => {
                    classname.clear();
                    classname.push_str(&v);
                }
                Key::File => {
                    file.clear();
                    file.push_str(&v);
                    has_file = true;
                }
                Key::Line => line = v.trim().parse().ok(),
                Key::Time => time = Some(v),
                Key::Status => status = Some(v),
                Key::Result => result = Some(v),
            },
        )?;
        if !plain {
            name = self.escape_nul(name, "testcase name");
            classname = self.escape_nul(classname, "testcase classname");
            if has_file {
                file = self.escape_nul(file, "testcase file");
            }
        }
        if time.is_none() {
            self.times.missing += 1;
        }
        let duration = self.time(time.as_deref(), "testcase").unwrap_or(0.0);
        let attr_outcome = attr_outcome(result.as_deref(), status.as_deref());
        // Filled in place: see `OpenCase`.
        let case = &mut self.case.builder;
        case.classname = classname;
        case.name = name;
        case.file = file;
        case.has_file = has_file;
        case.line = line;
        case.duration = duration;
        case.attr_outcome = attr_outcome;
        case.result = None;
        case.results_seen = 0;
        case.open_result = None;
        case.rerun = None;
        case.retries = Vec::new();
        case.system_out = None;
        case.system_err = None;
        self.case.open = true;
        Ok(())
    }

    /// `</testcase>`: the case is counted and lent to the consumer, its
    /// identity borrowed from the builder, the suite frame and the derive
    /// cache (fields of the parser disjoint from `on_case`).
    pub(super) fn close_case(&mut self) {
        if !self.case.open {
            return;
        }
        self.case.open = false;
        let b = &mut self.case.builder;
        let result = b.result.take();
        let results_seen = b.results_seen;
        let retries = std::mem::take(&mut b.retries);
        let system_out = b.system_out.take();
        let system_err = b.system_err.take();
        let (line, duration, attr_outcome) = (b.line, b.duration, b.attr_outcome);
        if results_seen > 1 {
            self.warn_results(results_seen);
        }
        let (mut outcome, message, details) = match result {
            Some(r) => (r.kind.outcome(), r.message, r.details),
            None => (attr_outcome, None, None),
        };
        // A case that passed after recorded failed attempts is flaky.
        if outcome == Outcome::Passed && !retries.is_empty() {
            outcome = Outcome::Flaky;
        }
        self.count(outcome, duration);
        let b = &self.case.builder;
        let frame = self.suites.last();
        let suite = frame.map_or("", |f| f.name.as_str());
        let (file, file_derived) = if b.has_file {
            (Some(b.file.as_str()), false)
        } else if let Some(file) = frame.and_then(|f| f.file.as_deref()) {
            (Some(file), false)
        } else {
            let derived = self.derive_cache.get(&b.classname, suite);
            (derived, derived.is_some())
        };
        // Counts a case whose suite, classname and name repeat those of
        // the failed case just before it. It stays a test of its own
        // (Mocha and parametrised runners repeat titles); the count only
        // feeds a hint for runners that list reruns that way (Gradle
        // without `mergeReruns`).
        if self
            .previous
            .repeats(suite, &b.classname, &b.name, outcome.is_failure())
        {
            self.repeats_after_failure += 1;
        }
        (self.on_case)(CaseRef {
            suite,
            classname: &b.classname,
            name: &b.name,
            file,
            file_derived,
            line,
            duration_secs: duration,
            outcome,
            message,
            details,
            system_out,
            system_err,
            retries,
        });
    }

    #[cold]
    #[inline(never)]
    fn warn_results(&mut self, results_seen: u32) {
        let warning = format!(
            "test `{}` has {} result elements; kept the most severe (error > failure > skipped)",
            cap_str(&self.case.builder.name, 200),
            results_seen
        );
        self.warn(warning);
    }

    /// Adds a finished case to the report's and its suite's counts.
    fn count(&mut self, outcome: Outcome, duration: f64) {
        self.summary.counts.record(outcome);
        if let Some(frame) = self.suites.last_mut() {
            frame.total_tests += 1;
            frame.own_time = add_duration(frame.own_time, duration);
            self.summary.suites[frame.summary].counts.record(outcome);
        }
    }

    /// Counts a case built elsewhere (the synthetic suite-level one) and
    /// lends it out.
    pub(super) fn emit(&mut self, case: CaseRef<'_>) {
        self.count(case.outcome, case.duration_secs);
        (self.on_case)(case);
    }
}
