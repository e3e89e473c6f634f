//! The event loop: quick-xml events in, folded test cases out.
//!
//! The dialect rules implemented here are listed in the module docs of
//! `junit/mod.rs`; comments below say why a branch exists.

use std::borrow::Cow;
use std::io::{self, BufRead};
use std::sync::Arc;

use quick_xml::Reader;
use quick_xml::errors::{Error as XmlError, SyntaxError};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};

use super::derive::derive_file;
use super::input::is_too_large;
use super::text::{Capped, TimeIssue, cap_str, parse_time};
use super::{Limits, SUITE_ERROR_NAME, StreamSummary, SuiteSummary};
use crate::errors::JunitError;
use crate::model::{Attempt, Counts, Outcome, TestCase};

/// Warnings are for humans; past this many, only a count is kept so that a
/// pathological report cannot grow memory through them.
const MAX_WARNINGS: usize = 100;

/// What an open element means to us. Unknown elements are `Other` and their
/// text is skipped without being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Testsuites,
    Testsuite,
    Testcase,
    /// `<failure>`, `<error>`, `<skipped>` inside a testcase.
    CaseResult,
    /// `<flakyFailure>`, `<flakyError>`, `<rerunFailure>`, `<rerunError>`.
    Rerun,
    /// `<stackTrace>` inside a rerun element.
    RerunStackTrace,
    SystemOut,
    SystemErr,
    /// `<error>`/`<failure>` directly inside a testsuite.
    SuiteResult,
    Other,
}

/// Result kinds in precedence order: a later variant wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ResultKind {
    Skipped,
    Failure,
    Error,
}

impl ResultKind {
    fn outcome(self) -> Outcome {
        match self {
            ResultKind::Skipped => Outcome::Skipped,
            ResultKind::Failure => Outcome::Failed,
            ResultKind::Error => Outcome::Error,
        }
    }
}

struct SuiteFrame {
    summary: usize,
    name: String,
    file: Option<String>,
    time: Option<f64>,
    own_time: f64,
    /// Cases in this suite and all nested ones, for the `tests=` check.
    total_tests: u64,
}

struct CaseResult {
    kind: ResultKind,
    message: Option<String>,
    details: Option<String>,
}

struct RerunBuilder {
    outcome: Outcome,
    duration: Option<f64>,
    message: Option<String>,
    body: Capped,
    stack_trace: Option<String>,
}

struct CaseBuilder {
    classname: String,
    name: String,
    file: Option<String>,
    line: Option<u32>,
    duration: f64,
    status: Option<String>,
    result_attr: Option<String>,
    result: Option<CaseResult>,
    results_seen: u32,
    /// A pending result element being read: kind and message.
    open_result: Option<(ResultKind, Option<String>)>,
    rerun: Option<RerunBuilder>,
    retries: Vec<Attempt>,
    system_out: Option<String>,
    system_err: Option<String>,
}

#[derive(Default)]
struct TimeStats {
    missing: u64,
    negative: u64,
    garbage: u64,
    first_negative: Option<String>,
    first_garbage: Option<String>,
}

struct Parser<'a, F> {
    source: &'a str,
    limits: &'a Limits,
    on_case: F,
    stack: Vec<Elem>,
    suites: Vec<SuiteFrame>,
    case: Option<CaseBuilder>,
    /// The last finished case, held back in case the next one is its retry.
    pending: Option<TestCase>,
    /// Text of the innermost capturing leaf element.
    text: Option<Capped>,
    suite_result: Option<(ResultKind, Option<String>)>,
    summary: StreamSummary,
    warnings_dropped: u64,
    times: TimeStats,
    unknown_entities: u64,
    root_closed: bool,
    root_declared_tests: Option<u64>,
    /// Last (classname, suite) → derived file: consecutive cases almost
    /// always share them, and deriving costs allocations.
    derive_cache: Option<(String, String, Option<String>)>,
}

pub(crate) fn io_error(source: &str, limits: &Limits, err: io::Error) -> JunitError {
    if is_too_large(&err) {
        JunitError::TooLarge {
            file: source.to_owned(),
            limit: limits.max_report_bytes,
        }
    } else {
        JunitError::Io {
            file: source.to_owned(),
            source: err,
        }
    }
}

pub(crate) fn run<B: BufRead>(
    input: B,
    source: &str,
    limits: &Limits,
    on_case: impl FnMut(TestCase),
) -> Result<StreamSummary, JunitError> {
    let mut reader = Reader::from_reader(input);
    let mut parser = Parser {
        source,
        limits,
        on_case,
        stack: Vec::new(),
        suites: Vec::new(),
        case: None,
        pending: None,
        text: None,
        suite_result: None,
        summary: StreamSummary::default(),
        warnings_dropped: 0,
        times: TimeStats::default(),
        unknown_entities: 0,
        root_closed: false,
        root_declared_tests: None,
        derive_cache: None,
    };
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut seen_anything = false;
    loop {
        buf.clear();
        // Offset where the next event starts: what errors about it point at.
        let position = reader.buffer_position();
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(err) => return Err(parser.xml_error(err, &reader)),
        };
        match event {
            Event::Start(e) => parser.start(&e, position)?,
            Event::Empty(e) => {
                parser.start(&e, position)?;
                parser.end();
            }
            Event::End(_) => parser.end(),
            Event::Text(t) => {
                if parser.routes_text() {
                    let s = t
                        .xml_content()
                        .map_err(|e| parser.malformed(position, e.to_string()))?;
                    parser.push_text(&s);
                } else if parser.stack.is_empty() && !t.iter().all(u8::is_ascii_whitespace) {
                    return Err(parser.malformed(
                        position,
                        "text outside any element: this is not an XML document".into(),
                    ));
                }
            }
            Event::CData(t) => {
                if parser.routes_text() {
                    let s = t
                        .xml_content()
                        .map_err(|e| parser.malformed(position, e.to_string()))?;
                    parser.push_text(&s);
                }
            }
            Event::GeneralRef(r) => {
                if parser.stack.is_empty() {
                    return Err(
                        parser.malformed(position, "entity reference outside any element".into())
                    );
                }
                if parser.routes_text() {
                    let s = parser.resolve_ref(&r, position)?;
                    parser.push_text(&s);
                }
            }
            Event::DocType(_) => {
                return Err(JunitError::Doctype {
                    file: source.to_owned(),
                    position,
                    line: None,
                });
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        seen_anything |= !parser.stack.is_empty() || parser.root_closed;
    }
    let end = reader.buffer_position();
    if let Some(open) = parser.stack.last() {
        let open = match open {
            Elem::Testsuites => "testsuites",
            Elem::Testsuite => "testsuite",
            Elem::Testcase => "testcase",
            Elem::CaseResult | Elem::SuiteResult => "failure/error/skipped",
            Elem::Rerun => "flaky/rerun element",
            Elem::RerunStackTrace => "stackTrace",
            Elem::SystemOut => "system-out",
            Elem::SystemErr => "system-err",
            Elem::Other => "an element",
        };
        return Err(JunitError::Truncated {
            file: source.to_owned(),
            position: end,
            line: None,
            open: open.to_owned(),
        });
    }
    if !seen_anything {
        return Err(JunitError::Empty {
            file: source.to_owned(),
        });
    }
    Ok(parser.finish())
}

impl<F: FnMut(TestCase)> Parser<'_, F> {
    fn malformed(&self, position: u64, message: String) -> JunitError {
        JunitError::Malformed {
            file: self.source.to_owned(),
            position,
            line: None,
            message,
        }
    }

    fn xml_error<B>(&self, err: XmlError, reader: &Reader<B>) -> JunitError {
        match err {
            XmlError::Io(e) => {
                // Check for our size marker before unwrapping: a shared Arc
                // would be rebuilt below without it.
                if is_too_large(&e) {
                    return JunitError::TooLarge {
                        file: self.source.to_owned(),
                        limit: self.limits.max_report_bytes,
                    };
                }
                let e =
                    Arc::try_unwrap(e).unwrap_or_else(|e| io::Error::new(e.kind(), e.to_string()));
                io_error(self.source, self.limits, e)
            }
            // Input that ends inside markup is a truncated report (a crash
            // while writing), the most common kind of broken JUnit file.
            XmlError::Syntax(
                SyntaxError::UnclosedCData
                | SyntaxError::UnclosedTag
                | SyntaxError::UnclosedComment
                | SyntaxError::UnclosedPIOrXmlDecl
                | SyntaxError::UnclosedDoctype,
            ) => JunitError::Truncated {
                file: self.source.to_owned(),
                position: reader.buffer_position(),
                line: None,
                open: match self.stack.last() {
                    Some(Elem::SystemOut) => "system-out".into(),
                    Some(Elem::SystemErr) => "system-err".into(),
                    Some(Elem::Testcase) => "testcase".into(),
                    Some(Elem::Testsuite) => "testsuite".into(),
                    _ => "markup".into(),
                },
            },
            other => self.malformed(reader.error_position(), other.to_string()),
        }
    }

    fn warn(&mut self, message: String) {
        if self.summary.warnings.len() < MAX_WARNINGS {
            self.summary.warnings.push(message);
        } else {
            self.warnings_dropped += 1;
        }
    }

    /// Where the text of the current element goes, if anywhere.
    fn routes_text(&self) -> bool {
        match self.stack.last() {
            Some(Elem::Rerun) => true,
            Some(
                Elem::CaseResult
                | Elem::RerunStackTrace
                | Elem::SystemOut
                | Elem::SystemErr
                | Elem::SuiteResult,
            ) => self.text.is_some(),
            _ => false,
        }
    }

    fn push_text(&mut self, s: &str) {
        if self.stack.last() == Some(&Elem::Rerun) {
            if let Some(rerun) = self.case.as_mut().and_then(|c| c.rerun.as_mut()) {
                rerun.body.push(s);
            }
        } else if let Some(text) = self.text.as_mut() {
            text.push(s);
        }
    }

    /// Character references and the five predefined entities are decoded. A
    /// DOCTYPE is refused, so no other entity can be defined: an unknown one
    /// is kept as written.
    fn resolve_ref(
        &mut self,
        r: &BytesRef<'_>,
        position: u64,
    ) -> Result<Cow<'static, str>, JunitError> {
        if r.is_char_ref() {
            return match r.resolve_char_ref() {
                Ok(Some(c)) => Ok(Cow::Owned(c.to_string())),
                Ok(None) | Err(_) => Err(self.malformed(
                    position,
                    format!(
                        "invalid character reference `&{};`",
                        String::from_utf8_lossy(r)
                    ),
                )),
            };
        }
        let name = String::from_utf8_lossy(r).into_owned();
        match resolve_predefined_entity(&name) {
            Some(s) => Ok(Cow::Borrowed(s)),
            None => {
                self.unknown_entities += 1;
                Ok(Cow::Owned(format!("&{name};")))
            }
        }
    }

    /// Reads the attributes we use. Values are unescaped; a value with an
    /// undefined entity is kept raw rather than failing the whole report.
    /// Only the `wanted` keys are decoded: most attributes (timestamps,
    /// hostnames, assertions=...) are skipped without allocating.
    fn attrs(
        &mut self,
        e: &BytesStart<'_>,
        position: u64,
        wanted: &[&[u8]],
        mut f: impl FnMut(&[u8], String),
    ) -> Result<(), JunitError> {
        let cap = self.limits.max_text_bytes;
        // Duplicate-attribute checks are quadratic and buy nothing here: the
        // last value wins.
        for attr in e.attributes().with_checks(false) {
            let attr = attr.map_err(|err| self.malformed(position, err.to_string()))?;
            let key = attr.key.local_name();
            if !wanted.contains(&key.as_ref()) {
                continue;
            }
            let value = match attr.unescape_value() {
                Ok(v) => v,
                Err(_) => {
                    self.unknown_entities += 1;
                    Cow::Owned(String::from_utf8_lossy(&attr.value).into_owned())
                }
            };
            f(key.as_ref(), cap_str(&value, cap));
        }
        Ok(())
    }

    fn time(&mut self, raw: Option<String>, what: &str) -> Option<f64> {
        let raw = raw?;
        match parse_time(&raw) {
            Ok(v) => Some(v),
            Err((v, issue)) => {
                let example = || format!("{what} time=\"{}\"", cap_str(&raw, 64));
                match issue {
                    TimeIssue::Negative => {
                        self.times.negative += 1;
                        self.times.first_negative.get_or_insert_with(example);
                    }
                    TimeIssue::Garbage => {
                        self.times.garbage += 1;
                        self.times.first_garbage.get_or_insert_with(example);
                    }
                }
                Some(v).filter(|_| issue == TimeIssue::Negative)
            }
        }
    }

    fn start(&mut self, e: &BytesStart<'_>, position: u64) -> Result<(), JunitError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(JunitError::TooDeep {
                file: self.source.to_owned(),
                position,
                line: None,
                limit: self.limits.max_depth,
            });
        }
        // Namespace prefixes are ignored: `<ns:testcase>` is a testcase.
        let name = e.local_name();
        let name = name.as_ref();
        let parent = self.stack.last().copied();
        let elem = match (parent, name) {
            (None, _) if self.root_closed => {
                return Err(self.malformed(
                    position,
                    "a second root element after the report ended".into(),
                ));
            }
            (None, b"testsuites") => {
                let mut declared = None;
                self.attrs(e, position, &[b"tests"], |k, v| {
                    if k == b"tests" {
                        declared = v.trim().parse().ok();
                    }
                })?;
                self.root_declared_tests = declared;
                Elem::Testsuites
            }
            (None | Some(Elem::Testsuites | Elem::Testsuite), b"testsuite") => {
                self.open_suite(e, position)?;
                Elem::Testsuite
            }
            (None, _) => {
                return Err(JunitError::NotJunit {
                    file: self.source.to_owned(),
                    position,
                    line: None,
                    root: cap_str(&String::from_utf8_lossy(e.name().as_ref()), 64),
                });
            }
            (Some(Elem::Testsuites | Elem::Testsuite), b"testcase") => {
                self.open_case(e, position)?;
                Elem::Testcase
            }
            (Some(Elem::Testsuite), b"error" | b"failure") => {
                self.flush_pending();
                let kind = if name == b"error" {
                    ResultKind::Error
                } else {
                    ResultKind::Failure
                };
                let mut message = None;
                self.attrs(e, position, &[b"message"], |k, v| {
                    if k == b"message" {
                        message = Some(v);
                    }
                })?;
                self.suite_result = Some((kind, message));
                self.text = Some(Capped::new(self.limits.max_text_bytes));
                Elem::SuiteResult
            }
            (Some(Elem::Testcase), b"failure" | b"error" | b"skipped") => {
                let kind = match name {
                    b"error" => ResultKind::Error,
                    b"failure" => ResultKind::Failure,
                    _ => ResultKind::Skipped,
                };
                let mut message = None;
                self.attrs(e, position, &[b"message"], |k, v| {
                    if k == b"message" {
                        message = Some(v);
                    }
                })?;
                if let Some(case) = self.case.as_mut() {
                    case.open_result = Some((kind, message));
                }
                self.text = Some(Capped::new(self.limits.max_text_bytes));
                Elem::CaseResult
            }
            (
                Some(Elem::Testcase),
                b"flakyFailure" | b"flakyError" | b"rerunFailure" | b"rerunError",
            ) => {
                let outcome = if name.ends_with(b"Error") {
                    Outcome::Error
                } else {
                    Outcome::Failed
                };
                let (mut message, mut time) = (None, None);
                self.attrs(e, position, &[b"message", b"time"], |k, v| match k {
                    b"message" => message = Some(v),
                    b"time" => time = Some(v),
                    _ => {}
                })?;
                let duration = self.time(time, "rerun");
                let body = Capped::new(self.limits.max_text_bytes);
                if let Some(case) = self.case.as_mut() {
                    case.rerun = Some(RerunBuilder {
                        outcome,
                        duration,
                        message,
                        body,
                        stack_trace: None,
                    });
                }
                Elem::Rerun
            }
            (Some(Elem::Rerun), b"stackTrace") => {
                self.text = Some(Capped::new(self.limits.max_text_bytes));
                Elem::RerunStackTrace
            }
            (Some(Elem::Testcase), b"system-out") => {
                self.text = Some(Capped::new(self.limits.max_text_bytes));
                Elem::SystemOut
            }
            (Some(Elem::Testcase), b"system-err") => {
                self.text = Some(Capped::new(self.limits.max_text_bytes));
                Elem::SystemErr
            }
            _ => Elem::Other,
        };
        self.stack.push(elem);
        Ok(())
    }

    fn open_suite(&mut self, e: &BytesStart<'_>, position: u64) -> Result<(), JunitError> {
        self.flush_pending();
        let (mut name, mut file, mut time, mut tests) = (String::new(), None, None, None);
        self.attrs(
            e,
            position,
            &[b"name", b"file", b"time", b"tests"],
            |k, v| match k {
                b"name" => name = v,
                b"file" => file = Some(v),
                b"time" => time = Some(v),
                b"tests" => tests = v.trim().parse().ok(),
                _ => {}
            },
        )?;
        let time = self.time(time, "suite");
        let depth = self.suites.len();
        self.summary.suites.push(SuiteSummary {
            name: name.clone(),
            counts: Counts::default(),
            duration_secs: 0.0,
            depth,
            file: file.clone(),
            declared_tests: tests,
        });
        self.suites.push(SuiteFrame {
            summary: self.summary.suites.len() - 1,
            name,
            file,
            time,
            own_time: 0.0,
            total_tests: 0,
        });
        Ok(())
    }

    fn open_case(&mut self, e: &BytesStart<'_>, position: u64) -> Result<(), JunitError> {
        let mut case = CaseBuilder {
            classname: String::new(),
            name: String::new(),
            file: None,
            line: None,
            duration: 0.0,
            status: None,
            result_attr: None,
            result: None,
            results_seen: 0,
            open_result: None,
            rerun: None,
            retries: Vec::new(),
            system_out: None,
            system_err: None,
        };
        let mut time = None;
        const CASE_ATTRS: &[&[u8]] = &[
            b"name",
            b"classname",
            b"file",
            b"line",
            b"time",
            b"status",
            b"result",
        ];
        self.attrs(e, position, CASE_ATTRS, |k, v| match k {
            b"name" => case.name = v,
            b"classname" => case.classname = v,
            b"file" => case.file = Some(v),
            b"line" => case.line = v.trim().parse().ok(),
            b"time" => time = Some(v),
            b"status" => case.status = Some(v),
            b"result" => case.result_attr = Some(v),
            _ => {}
        })?;
        if time.is_none() {
            self.times.missing += 1;
        }
        case.duration = self.time(time, "testcase").unwrap_or(0.0);
        self.case = Some(case);
        Ok(())
    }

    fn end(&mut self) {
        let Some(elem) = self.stack.pop() else { return };
        match elem {
            Elem::Testsuites => self.root_closed = true,
            Elem::Testsuite => {
                self.close_suite();
                if self.stack.is_empty() {
                    self.root_closed = true;
                }
            }
            Elem::Testcase => {
                if let Some(case) = self.case.take() {
                    let case = self.build_case(case);
                    self.fold(case);
                }
            }
            Elem::CaseResult => {
                let details = self.text.take().and_then(Capped::finish);
                if let Some(case) = self.case.as_mut()
                    && let Some((kind, message)) = case.open_result.take()
                {
                    case.results_seen += 1;
                    // Precedence error > failure > skipped; the first of equals wins.
                    if case.result.as_ref().is_none_or(|r| kind > r.kind) {
                        case.result = Some(CaseResult {
                            kind,
                            message,
                            details,
                        });
                    }
                }
            }
            Elem::Rerun => {
                if let Some(case) = self.case.as_mut()
                    && let Some(rerun) = case.rerun.take()
                {
                    let body = rerun.body.finish();
                    case.retries.push(Attempt {
                        outcome: rerun.outcome,
                        duration_secs: rerun.duration,
                        message: rerun.message,
                        details: rerun.stack_trace.or(body),
                    });
                }
            }
            Elem::RerunStackTrace => {
                let text = self.text.take().and_then(Capped::finish);
                if let Some(rerun) = self.case.as_mut().and_then(|c| c.rerun.as_mut()) {
                    rerun.stack_trace = text;
                }
            }
            Elem::SystemOut | Elem::SystemErr => {
                let text = self.text.take().and_then(Capped::finish);
                if let Some(case) = self.case.as_mut() {
                    let slot = if elem == Elem::SystemOut {
                        &mut case.system_out
                    } else {
                        &mut case.system_err
                    };
                    *slot = text;
                }
            }
            Elem::SuiteResult => {
                let details = self.text.take().and_then(Capped::finish);
                if let Some((kind, message)) = self.suite_result.take() {
                    self.emit_suite_result(kind, message, details);
                }
            }
            Elem::Other => {}
        }
    }

    fn close_suite(&mut self) {
        self.flush_pending();
        let Some(frame) = self.suites.pop() else {
            return;
        };
        let summary = &mut self.summary.suites[frame.summary];
        summary.duration_secs = frame.time.unwrap_or(frame.own_time);
        let declared = summary.declared_tests;
        if let Some(parent) = self.suites.last_mut() {
            parent.total_tests += frame.total_tests;
        }
        if let Some(declared) = declared
            && declared != frame.total_tests
        {
            self.warn(format!(
                "suite `{}` declares tests={declared} but holds {} test cases; the cases were counted",
                cap_str(&frame.name, 200),
                frame.total_tests
            ));
        }
    }

    fn build_case(&mut self, b: CaseBuilder) -> TestCase {
        let frame = self.suites.last();
        let suite = frame.map(|f| f.name.clone()).unwrap_or_default();
        let (file, file_derived) = match b.file.or_else(|| frame.and_then(|f| f.file.clone())) {
            Some(file) => (Some(file), false),
            None => {
                let derived = match &self.derive_cache {
                    Some((c, s, derived)) if *c == b.classname && *s == suite => derived.clone(),
                    _ => {
                        let derived = derive_file(&b.classname, &suite);
                        self.derive_cache =
                            Some((b.classname.clone(), suite.clone(), derived.clone()));
                        derived
                    }
                };
                let is_derived = derived.is_some();
                (derived, is_derived)
            }
        };
        if b.results_seen > 1 {
            self.warn(format!(
                "test `{}` has {} result elements; kept the most severe (error > failure > skipped)",
                cap_str(&b.name, 200),
                b.results_seen
            ));
        }
        let (mut outcome, message, details) = match b.result {
            Some(r) => (r.kind.outcome(), r.message, r.details),
            None => (
                attr_outcome(b.result_attr.as_deref(), b.status.as_deref()),
                None,
                None,
            ),
        };
        // A case that passed after recorded failed attempts is flaky.
        if outcome == Outcome::Passed && !b.retries.is_empty() {
            outcome = Outcome::Flaky;
        }
        TestCase {
            suite,
            classname: b.classname,
            name: b.name,
            file,
            file_derived,
            line: b.line,
            duration_secs: b.duration,
            outcome,
            message,
            details,
            system_out: b.system_out,
            system_err: b.system_err,
            retries: b.retries,
        }
    }

    /// Folds a repeated `<testcase>` (same suite/classname/name right after a
    /// failed one) into a single case with attempts; see the module docs.
    fn fold(&mut self, mut case: TestCase) {
        if let Some(prev) = self.pending.take() {
            let retry = prev.outcome.is_failure()
                && prev.name == case.name
                && prev.classname == case.classname
                && prev.suite == case.suite;
            if retry {
                let mut retries = prev.retries;
                retries.push(Attempt {
                    outcome: prev.outcome,
                    duration_secs: Some(prev.duration_secs),
                    message: prev.message,
                    details: prev.details,
                });
                retries.append(&mut case.retries);
                case.retries = retries;
                if case.outcome == Outcome::Passed {
                    case.outcome = Outcome::Flaky;
                }
            } else {
                self.emit(prev);
            }
        }
        self.pending = Some(case);
    }

    fn flush_pending(&mut self) {
        if let Some(case) = self.pending.take() {
            self.emit(case);
        }
    }

    fn emit(&mut self, case: TestCase) {
        self.summary.counts.record(case.outcome);
        if let Some(frame) = self.suites.last_mut() {
            frame.total_tests += 1;
            frame.own_time += case.duration_secs;
            self.summary.suites[frame.summary]
                .counts
                .record(case.outcome);
        }
        (self.on_case)(case);
    }

    fn emit_suite_result(
        &mut self,
        kind: ResultKind,
        message: Option<String>,
        details: Option<String>,
    ) {
        let (suite, file) = self
            .suites
            .last()
            .map(|f| (f.name.clone(), f.file.clone()))
            .unwrap_or_default();
        self.warn(format!(
            "suite `{}` has an <{}> outside any test case; counted as the test case `{SUITE_ERROR_NAME}`",
            cap_str(&suite, 200),
            if kind == ResultKind::Error { "error" } else { "failure" }
        ));
        let (file, file_derived) = match file {
            Some(f) => (Some(f), false),
            None => match derive_file("", &suite) {
                Some(f) => (Some(f), true),
                None => (None, false),
            },
        };
        self.emit(TestCase {
            suite,
            classname: String::new(),
            name: SUITE_ERROR_NAME.to_owned(),
            file,
            file_derived,
            line: None,
            duration_secs: 0.0,
            outcome: kind.outcome(),
            message,
            details,
            system_out: None,
            system_err: None,
            retries: Vec::new(),
        });
    }

    fn finish(mut self) -> StreamSummary {
        self.flush_pending();
        let t = std::mem::take(&mut self.times);
        if t.negative > 0 {
            self.warn(format!(
                "{} negative time value(s) counted as 0 s (first: {})",
                t.negative,
                t.first_negative.unwrap_or_default()
            ));
        }
        if t.garbage > 0 {
            self.warn(format!(
                "{} unreadable time value(s) counted as 0 s (first: {})",
                t.garbage,
                t.first_garbage.unwrap_or_default()
            ));
        }
        if t.missing > 0 {
            self.warn(format!(
                "{} test case(s) without a time attribute counted as 0 s",
                t.missing
            ));
        }
        if self.unknown_entities > 0 {
            self.warn(format!(
                "{} undefined entity reference(s) or undecodable attribute value(s) kept as written (entities are never resolved)",
                self.unknown_entities
            ));
        }
        if let Some(declared) = self.root_declared_tests
            && declared != self.summary.counts.tests
        {
            self.warn(format!(
                "<testsuites> declares tests={declared} but the report holds {} test cases; the cases were counted",
                self.summary.counts.tests
            ));
        }
        if self.warnings_dropped > 0 {
            let dropped = self.warnings_dropped;
            self.summary
                .warnings
                .push(format!("… and {dropped} more warnings"));
        }
        self.summary
    }
}

/// Outcome of a case without result children, from the `result` attribute
/// (GoogleTest) and then `status` (GoogleTest, Bazel, the C++ "tst" runner).
/// The first one that says something other than "passed" wins.
fn attr_outcome(result: Option<&str>, status: Option<&str>) -> Outcome {
    [result, status]
        .into_iter()
        .flatten()
        .map(|v| match v.trim().to_ascii_lowercase().as_str() {
            "disabled" | "skipped" | "skip" | "notrun" | "not run" | "suppressed" | "ignored"
            | "pending" => Outcome::Skipped,
            "failed" | "failure" | "fail" => Outcome::Failed,
            "error" | "errored" | "broken" => Outcome::Error,
            _ => Outcome::Passed,
        })
        .find(|o| *o != Outcome::Passed)
        .unwrap_or(Outcome::Passed)
}
