//! `<testcase>`: its attributes, the finished [`TestCase`] (file derived
//! when the runner wrote none), and handing it out with the counts.

use quick_xml::events::BytesStart;

use super::Parser;
use super::attrs::attr_outcome;
use super::outcome::{CaseResult, RerunBuilder, ResultKind};
use crate::domain::junit::derive::{derive_file_with, suite_path};
use crate::domain::junit::text::cap_str;
use crate::domain::model::{Attempt, Outcome, TestCase, add_duration};
use crate::errors::JunitError;

pub(super) struct CaseBuilder {
    pub(super) classname: String,
    pub(super) name: String,
    pub(super) file: Option<String>,
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
/// cases). Its strings are moved out into each `TestCase`, never shared.
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
                file: None,
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

#[derive(Default)]
pub(super) struct DeriveCache {
    valid: bool,
    classname: String,
    suite: String,
    suite_path: Option<String>,
    file: Option<String>,
}

impl DeriveCache {
    fn get(&mut self, classname: &str, suite: &str) -> Option<String> {
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
        self.file.clone()
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

impl<F: FnMut(TestCase)> Parser<'_, F> {
    pub(super) fn open_case(
        &mut self,
        e: &BytesStart<'_>,
        position: u64,
    ) -> Result<(), JunitError> {
        let (mut name, mut classname, mut file, mut line) =
            (String::new(), String::new(), None, None);
        let (mut time, mut status, mut result) = (None, None, None);
        let wanted = |k: &[u8]| {
            matches!(
                k,
                b"name" | b"classname" | b"file" | b"line" | b"time" | b"status" | b"result"
            )
        };
        let plain = self.attrs(e, position, wanted, |k, v| match k {
            b"name" => name = v.into_owned(),
            b"classname" => classname = v.into_owned(),
            b"file" => file = Some(v.into_owned()),
            b"line" => line = v.trim().parse().ok(),
            b"time" => time = Some(v),
            b"status" => status = Some(v),
            b"result" => result = Some(v),
            _ => {}
        })?;
        if !plain {
            name = self.escape_nul(name, "testcase name");
            classname = self.escape_nul(classname, "testcase classname");
            file = file.map(|f| self.escape_nul(f, "testcase file"));
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

    pub(super) fn close_case(&mut self) {
        if self.case.open {
            self.case.open = false;
            let case = self.build_case();
            self.note_repeat(&case);
            self.emit(case);
        }
    }

    /// The finished case, its strings moved out of the open builder.
    fn build_case(&mut self) -> TestCase {
        let b = &mut self.case.builder;
        let classname = std::mem::take(&mut b.classname);
        let name = std::mem::take(&mut b.name);
        let own_file = b.file.take();
        let line = b.line;
        let duration = b.duration;
        let attr_outcome = b.attr_outcome;
        let result = b.result.take();
        let results_seen = b.results_seen;
        let retries = std::mem::take(&mut b.retries);
        let system_out = b.system_out.take();
        let system_err = b.system_err.take();
        let frame = self.suites.last();
        let suite = frame.map(|f| f.name.clone()).unwrap_or_default();
        let (file, file_derived) = match own_file.or_else(|| frame.and_then(|f| f.file.clone())) {
            Some(file) => (Some(file), false),
            None => {
                let derived = self.derive_cache.get(&classname, &suite);
                let is_derived = derived.is_some();
                (derived, is_derived)
            }
        };
        if results_seen > 1 {
            self.warn(format!(
                "test `{}` has {} result elements; kept the most severe (error > failure > skipped)",
                cap_str(&name, 200),
                results_seen
            ));
        }
        let (mut outcome, message, details) = match result {
            Some(r) => (r.kind.outcome(), r.message, r.details),
            None => (attr_outcome, None, None),
        };
        // A case that passed after recorded failed attempts is flaky.
        if outcome == Outcome::Passed && !retries.is_empty() {
            outcome = Outcome::Flaky;
        }
        TestCase {
            suite,
            classname,
            name,
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
        }
    }

    /// Counts a case whose suite, classname and name repeat those of the
    /// failed case just before it. It stays a test of its own (Mocha and
    /// parametrised runners repeat titles); the count only feeds a hint for
    /// runners that list reruns that way (Gradle without `mergeReruns`).
    /// The previous identity lives in reused buffers: no allocation per case.
    fn note_repeat(&mut self, case: &TestCase) {
        let prev = &mut self.previous;
        if prev.failed
            && prev.name == case.name
            && prev.classname == case.classname
            && prev.suite == case.suite
        {
            self.repeats_after_failure += 1;
        }
        prev.failed = case.outcome.is_failure();
        // Only a failed case is ever compared with the next one: the
        // identity of any other is not needed (three copies saved per
        // passing case).
        if !prev.failed {
            return;
        }
        for (slot, value) in [
            (&mut prev.suite, &case.suite),
            (&mut prev.classname, &case.classname),
            (&mut prev.name, &case.name),
        ] {
            slot.clear();
            slot.push_str(value);
        }
    }

    pub(super) fn emit(&mut self, case: TestCase) {
        self.summary.counts.record(case.outcome);
        if let Some(frame) = self.suites.last_mut() {
            frame.total_tests += 1;
            frame.own_time = add_duration(frame.own_time, case.duration_secs);
            self.summary.suites[frame.summary]
                .counts
                .record(case.outcome);
        }
        (self.on_case)(case);
    }
}
