//! The event loop: quick-xml events in, folded test cases out.
//!
//! The dialect rules implemented here are listed in the module docs of
//! `junit/mod.rs`; comments below say why a branch exists.

use std::borrow::Cow;
use std::io::{self, BufRead};
use std::sync::Arc;

use quick_xml::Reader;
use quick_xml::errors::{Error as XmlError, SyntaxError};
use quick_xml::escape::{resolve_predefined_entity, unescape};
use quick_xml::events::{BytesRef, BytesStart, Event};

use super::derive::{derive_file, derive_file_with, suite_path};
use super::input::is_too_large;
use super::text::{Capped, TimeIssue, cap_str, parse_time};
use super::{Limits, SUITE_ERROR_NAME, StreamSummary, SuiteSummary};
use crate::domain::model::{Attempt, Counts, Outcome, TestCase};
use crate::errors::JunitError;

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
    /// From the `result`/`status` attributes; used when no result child.
    attr_outcome: Outcome,
    result: Option<CaseResult>,
    results_seen: u32,
    /// A pending result element being read: kind and message.
    open_result: Option<(ResultKind, Option<String>)>,
    rerun: Option<RerunBuilder>,
    retries: Vec<Attempt>,
    system_out: Option<String>,
    system_err: Option<String>,
}

/// One-entry memo of `derive_file` for the last (classname, suite), plus
/// the suite rule's result for the last suite: jest reports change classname
/// every few cases within one suite whose name is a path. The key strings are
/// reused across misses (cleared and refilled), so that a report where every
/// classname is new (one class per case) costs no allocation for the key.
#[derive(Default)]
struct DeriveCache {
    valid: bool,
    classname: String,
    suite: String,
    suite_path: Option<String>,
    file: Option<String>,
}

impl DeriveCache {
    fn get(&mut self, classname: &str, suite: &str) -> Option<String> {
        let same_suite = self.valid && self.suite == suite;
        if !(same_suite && self.classname == classname) {
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
    /// Text of the innermost capturing leaf element, when `text_open`. One
    /// buffer reused for every text: a fresh `String` per text grew by
    /// doubling, and reallocation was ~7 % of a nextest report's profile.
    text: Capped,
    text_open: bool,
    suite_result: Option<(ResultKind, Option<String>)>,
    summary: StreamSummary,
    warnings_dropped: u64,
    times: TimeStats,
    unknown_entities: u64,
    root_closed: bool,
    root_declared_tests: Option<u64>,
    /// Last (classname, suite) → derived file: consecutive cases almost
    /// always share them, and deriving costs allocations.
    derive_cache: DeriveCache,
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
        text: Capped::new(limits.max_text_bytes),
        text_open: false,
        suite_result: None,
        summary: StreamSummary::default(),
        warnings_dropped: 0,
        times: TimeStats::default(),
        unknown_entities: 0,
        root_closed: false,
        root_declared_tests: None,
        derive_cache: DeriveCache::default(),
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
                    parser.push_ref(&r, position)?;
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
            ) => self.text_open,
            _ => false,
        }
    }

    fn push_text(&mut self, s: &str) {
        if self.stack.last() == Some(&Elem::Rerun) {
            if let Some(rerun) = self.case.as_mut().and_then(|c| c.rerun.as_mut()) {
                rerun.body.push(s);
            }
        } else if self.text_open {
            self.text.push(s);
        }
    }

    fn open_text(&mut self) {
        self.text.clear();
        self.text_open = true;
    }

    fn take_text(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.text_open) {
            return None;
        }
        self.text.take()
    }

    /// Character references and the five predefined entities are decoded and
    /// pushed as text. A DOCTYPE is refused, so no other entity can be
    /// defined: an unknown one is kept as written. Nothing is allocated on
    /// the common paths: failure texts are full of `&apos;` and `&#10;`.
    fn push_ref(&mut self, r: &BytesRef<'_>, position: u64) -> Result<(), JunitError> {
        if r.is_char_ref() {
            return match r.resolve_char_ref() {
                Ok(Some(c)) => {
                    self.push_text(c.encode_utf8(&mut [0; 4]));
                    Ok(())
                }
                Ok(None) | Err(_) => Err(self.malformed(
                    position,
                    format!(
                        "invalid character reference `&{};`",
                        String::from_utf8_lossy(r)
                    ),
                )),
            };
        }
        let name = String::from_utf8_lossy(r);
        match resolve_predefined_entity(&name) {
            Some(s) => self.push_text(s),
            None => {
                self.unknown_entities += 1;
                self.push_text(&format!("&{name};"));
            }
        }
        Ok(())
    }

    /// Reads the attributes we use. Values are unescaped and capped; a value
    /// with an undefined entity is kept raw rather than failing the whole
    /// report. Only the `wanted` keys are decoded: most attributes
    /// (timestamps, hostnames, assertions=...) are skipped without even a
    /// UTF-8 check. Values are lent as `Cow`s borrowing the event buffer, so
    /// that numbers and status words are parsed without allocating: only the
    /// caller decides what becomes an owned `String`.
    fn attrs<'b>(
        &mut self,
        e: &'b BytesStart<'_>,
        position: u64,
        wanted: impl Fn(&[u8]) -> bool,
        mut f: impl FnMut(&[u8], Cow<'b, str>),
    ) -> Result<(), JunitError> {
        let cap = self.limits.max_text_bytes;
        let mut unknown = 0;
        // quick-xml's `Attributes` iterator was the top entry of the profile
        // (~18 % of instructions): a general state machine with error
        // recovery. Well-formed tags, i.e. nearly all of them, are split by
        // `split_attributes` instead, which yields exactly the same pairs.
        let mut delivered = 0;
        let split = split_attributes(e.attributes_raw(), |key, value| {
            delivered += 1;
            let key = local_name(key);
            if wanted(key) {
                f(key, decode_value(value, cap, &mut unknown));
            }
        });
        if split.is_err() {
            // Something quick-xml rejects (or might): let it report its own
            // error, skipping the attributes already handed out. Duplicate
            // checks are quadratic and buy nothing here: the last value wins.
            for (i, attr) in e.attributes().with_checks(false).enumerate() {
                let attr = attr.map_err(|err| self.malformed(position, err.to_string()))?;
                let key = local_name(attr.key.as_ref());
                if i >= delivered && wanted(key) {
                    let value = decode_value(&attr.value, cap, &mut unknown).into_owned();
                    f(key, Cow::Owned(value));
                }
            }
        }
        self.unknown_entities += unknown;
        Ok(())
    }

    fn time(&mut self, raw: Option<&str>, what: &str) -> Option<f64> {
        let raw = raw?;
        match parse_time(raw) {
            Ok(v) => Some(v),
            Err((v, issue)) => {
                let example = || format!("{what} time=\"{}\"", cap_str(raw, 64));
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
                let wanted = |k: &[u8]| k == b"tests";
                self.attrs(e, position, wanted, |_, v| declared = v.trim().parse().ok())?;
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
                let wanted = |k: &[u8]| k == b"message";
                self.attrs(e, position, wanted, |_, v| message = Some(v.into_owned()))?;
                self.suite_result = Some((kind, message));
                self.open_text();
                Elem::SuiteResult
            }
            (Some(Elem::Testcase), b"failure" | b"error" | b"skipped") => {
                let kind = match name {
                    b"error" => ResultKind::Error,
                    b"failure" => ResultKind::Failure,
                    _ => ResultKind::Skipped,
                };
                let mut message = None;
                let wanted = |k: &[u8]| k == b"message";
                self.attrs(e, position, wanted, |_, v| message = Some(v.into_owned()))?;
                if let Some(case) = self.case.as_mut() {
                    case.open_result = Some((kind, message));
                }
                self.open_text();
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
                let wanted = |k: &[u8]| matches!(k, b"message" | b"time");
                self.attrs(e, position, wanted, |k, v| match k {
                    b"message" => message = Some(v.into_owned()),
                    b"time" => time = Some(v),
                    _ => {}
                })?;
                let duration = self.time(time.as_deref(), "rerun");
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
                self.open_text();
                Elem::RerunStackTrace
            }
            (Some(Elem::Testcase), b"system-out") => {
                self.open_text();
                Elem::SystemOut
            }
            (Some(Elem::Testcase), b"system-err") => {
                self.open_text();
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
            |k| matches!(k, b"name" | b"file" | b"time" | b"tests"),
            |k, v| match k {
                b"name" => name = v.into_owned(),
                b"file" => file = Some(v.into_owned()),
                b"time" => time = Some(v),
                b"tests" => tests = v.trim().parse().ok(),
                _ => {}
            },
        )?;
        let time = self.time(time.as_deref(), "suite");
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
            attr_outcome: Outcome::Passed,
            result: None,
            results_seen: 0,
            open_result: None,
            rerun: None,
            retries: Vec::new(),
            system_out: None,
            system_err: None,
        };
        let (mut time, mut status, mut result) = (None, None, None);
        let wanted = |k: &[u8]| {
            matches!(
                k,
                b"name" | b"classname" | b"file" | b"line" | b"time" | b"status" | b"result"
            )
        };
        self.attrs(e, position, wanted, |k, v| match k {
            b"name" => case.name = v.into_owned(),
            b"classname" => case.classname = v.into_owned(),
            b"file" => case.file = Some(v.into_owned()),
            b"line" => case.line = v.trim().parse().ok(),
            b"time" => time = Some(v),
            b"status" => status = Some(v),
            b"result" => result = Some(v),
            _ => {}
        })?;
        if time.is_none() {
            self.times.missing += 1;
        }
        case.duration = self.time(time.as_deref(), "testcase").unwrap_or(0.0);
        case.attr_outcome = attr_outcome(result.as_deref(), status.as_deref());
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
                let details = self.take_text();
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
                let text = self.take_text();
                if let Some(rerun) = self.case.as_mut().and_then(|c| c.rerun.as_mut()) {
                    rerun.stack_trace = text;
                }
            }
            Elem::SystemOut | Elem::SystemErr => {
                let text = self.take_text();
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
                let details = self.take_text();
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
                let derived = self.derive_cache.get(&b.classname, &suite);
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
            None => (b.attr_outcome, None, None),
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
        .map(|v| {
            // Case-insensitive without lowercasing into a new String: this
            // runs for every case of a GoogleTest report.
            let v = v.trim();
            let is = |words: &[&str]| words.iter().any(|w| v.eq_ignore_ascii_case(w));
            if is(&[
                "disabled",
                "skipped",
                "skip",
                "notrun",
                "not run",
                "suppressed",
                "ignored",
                "pending",
            ]) {
                Outcome::Skipped
            } else if is(&["failed", "failure", "fail"]) {
                Outcome::Failed
            } else if is(&["error", "errored", "broken"]) {
                Outcome::Error
            } else {
                Outcome::Passed
            }
        })
        .find(|o| *o != Outcome::Passed)
        .unwrap_or(Outcome::Passed)
}

/// Splits the attribute part of a tag into `(key, raw value)` pairs the way
/// quick-xml's `Attributes` iterator does in XML mode without duplicate
/// checks (same whitespace set, the key's first byte taken as is, a value may
/// be followed directly by the next key), but as one straight loop with a
/// `memchr` for the closing quote. Returns `Err` on anything quick-xml would
/// reject (no `=`, unquoted or unterminated value); the pairs before it have
/// been handed out already.
fn split_attributes<'b>(bytes: &'b [u8], mut f: impl FnMut(&'b [u8], &'b [u8])) -> Result<(), ()> {
    let ws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && ws(bytes[i]) {
            i += 1;
        }
        i
    };
    let mut i = 0;
    loop {
        i = skip_ws(i);
        if i == bytes.len() {
            return Ok(());
        }
        let start = i;
        i += 1;
        while i < bytes.len() && bytes[i] != b'=' && !ws(bytes[i]) {
            i += 1;
        }
        let key = &bytes[start..i];
        i = skip_ws(i);
        if bytes.get(i) != Some(&b'=') {
            return Err(());
        }
        i = skip_ws(i + 1);
        let quote = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return Err(()),
        };
        let value_start = i + 1;
        let len = memchr::memchr(quote, &bytes[value_start..]).ok_or(())?;
        f(key, &bytes[value_start..value_start + len]);
        i = value_start + len + 1;
    }
}

/// The part after the namespace prefix, as quick-xml's `local_name` (split at
/// the first `:`): `<ns:testcase>`'s attributes are read like plain ones.
#[inline]
fn local_name(key: &[u8]) -> &[u8] {
    match key.iter().position(|&b| b == b':') {
        Some(colon) => &key[colon + 1..],
        None => key,
    }
}

/// An attribute value as quick-xml's `unescape_value` gives it (UTF-8, the
/// predefined entities and character references decoded), capped. Borrows
/// from the event buffer unless something had to change. Invalid UTF-8 or an
/// undefined entity keeps the value as written and bumps `unknown`.
fn decode_value<'b>(raw: &'b [u8], cap: usize, unknown: &mut u64) -> Cow<'b, str> {
    let value = match std::str::from_utf8(raw) {
        // Most values hold no reference at all: one `memchr` settles it.
        Ok(s) if memchr::memchr(b'&', raw).is_none() => Cow::Borrowed(s),
        Ok(s) => unescape(s).unwrap_or_else(|_| {
            *unknown += 1;
            Cow::Borrowed(s)
        }),
        Err(_) => {
            *unknown += 1;
            String::from_utf8_lossy(raw)
        }
    };
    if value.len() <= cap {
        value
    } else {
        Cow::Owned(cap_str(&value, cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `split_attributes` must hand out exactly what quick-xml's iterator
    /// does, and fail wherever quick-xml reports an error.
    #[test]
    fn split_attributes_agrees_with_quick_xml() {
        let tags = [
            r#"t a="1" b='2'"#,
            "t\ta = \"x y\"\n\r b\t=\t'\"'",
            r#"t a="1"b="2""#,
            r#"t ns:a="&amp;" c:d:e="x""#,
            r#"t ="x""#,
            r#"t a="" b=''"#,
            "t",
            "t   ",
            r#"t a"#,
            r#"t a b="1""#,
            r#"t a= "#,
            r#"t a=1 b="2""#,
            r#"t a="1" b="2"#,
            r#"t a="1" b='2" c="3""#,
            r#"t a="<<computed>>" b="é""#,
        ];
        for tag in tags {
            let start = BytesStart::from_content(tag, 1);
            let mut fast = Vec::new();
            let ok = split_attributes(start.attributes_raw(), |k, v| {
                fast.push((k.to_vec(), v.to_vec()))
            })
            .is_ok();
            let mut slow = Vec::new();
            let mut slow_ok = true;
            for attr in start.attributes().with_checks(false) {
                match attr {
                    Ok(a) => slow.push((a.key.as_ref().to_vec(), a.value.to_vec())),
                    Err(_) => {
                        slow_ok = false;
                        break;
                    }
                }
            }
            assert_eq!(ok, slow_ok, "{tag}");
            assert_eq!(fast, slow, "{tag}");
        }
    }

    #[test]
    fn attribute_values_decode_like_unescape_value() {
        let mut unknown = 0;
        assert_eq!(decode_value(b"a &lt; b", 100, &mut unknown), "a < b");
        assert_eq!(decode_value(b"&#x41;&#66;", 100, &mut unknown), "AB");
        assert_eq!(unknown, 0);
        assert_eq!(decode_value(b"&nope;", 100, &mut unknown), "&nope;");
        assert_eq!(decode_value(b"\xff", 100, &mut unknown), "\u{FFFD}");
        assert_eq!(unknown, 2);
        assert!(matches!(
            decode_value(b"plain", 100, &mut unknown),
            Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn attr_outcome_ignores_case_and_padding() {
        assert_eq!(attr_outcome(Some(" Not Run "), None), Outcome::Skipped);
        assert_eq!(
            attr_outcome(Some("completed"), Some("FAIL")),
            Outcome::Failed
        );
        assert_eq!(attr_outcome(None, Some("Broken")), Outcome::Error);
        assert_eq!(attr_outcome(Some("run"), Some("run")), Outcome::Passed);
    }
}
