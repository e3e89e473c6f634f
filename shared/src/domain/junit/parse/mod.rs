//! The event loop: XML events in, test cases out.
//!
//! The dialect rules implemented here are listed in the module docs of
//! `junit/mod.rs`; comments below say why a branch exists. This file runs
//! the loop, in which two tokenizers share the input: the fast lane reads
//! the common shapes straight from the buffer, and quick-xml reads every
//! event the lane steps aside from (see `fast_lane`). Each element goes to
//! its handler:
//!
//! - `suite`: `<testsuites>`, `<testsuite>` and suite-level errors;
//! - `case`: `<testcase>`, building and handing out finished cases;
//! - `outcome`: `<failure>`/`<error>`/`<skipped>` and the rerun elements;
//! - `captured`: text of leaf elements (bodies, stack traces, system-out/err);
//! - `attrs`: attribute splitting and decoding, times and status words.
//! - `tag`: a start tag as the handlers read it, from either tokenizer.

mod attrs;
mod captured;
mod case;
mod fast_lane;
mod outcome;
mod suite;
mod tag;

use std::io::{self, BufRead, Read};
use std::sync::Arc;

use quick_xml::Reader;
use quick_xml::errors::{Error as XmlError, SyntaxError};
use quick_xml::events::{BytesText, Event};

use self::attrs::{NulStats, TimeStats};
use self::case::{DeriveCache, OpenCase, PreviousCase};
use self::fast_lane::{FastLane, OpenNames, Scanned, TextHere};
use self::outcome::ResultKind;
use self::suite::SuiteFrame;
use self::tag::{Tag, TagAttrs};
use super::CaseRef;
use super::input::is_too_large;
use super::long_text::LongTextCut;
use super::text::{Capped, cap_str};
use super::{Limits, StreamSummary};
use crate::domain::model::{MAX_DURATION_SECS, Outcome};
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

struct Parser<'a, F> {
    source: &'a str,
    limits: &'a Limits,
    on_case: F,
    stack: Vec<Elem>,
    suites: Vec<SuiteFrame>,
    case: OpenCase,
    /// The last case handed out, to notice a repeat right after a failure.
    previous: PreviousCase,
    /// Cases repeating the identity of the failed case just before them.
    repeats_after_failure: u64,
    /// Text of the innermost capturing leaf element, when `text_open`. One
    /// buffer reused for every text: a fresh `String` per text grew by
    /// doubling, and reallocation was ~7 % of a nextest report's profile.
    text: Capped,
    text_open: bool,
    /// Body text of the open rerun element (its own text, as opposed to
    /// its `<stackTrace>`'s, which goes to `text`), reused likewise.
    rerun_body: Capped,
    suite_result: Option<(ResultKind, Option<String>)>,
    summary: StreamSummary,
    warnings_dropped: u64,
    times: TimeStats,
    nuls: NulStats,
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

/// Reads a report: with the fast lane, or (`fast_lane: false`, the
/// reference) with quick-xml alone reading every event.
pub(crate) fn run<R: Read>(
    input: LongTextCut<R>,
    source: &str,
    limits: &Limits,
    on_case: impl FnMut(CaseRef<'_>),
    fast_lane: bool,
) -> Result<StreamSummary, JunitError> {
    let mut reader = Reader::from_reader(input);
    let mut parser = Parser {
        source,
        limits,
        on_case,
        stack: Vec::new(),
        suites: Vec::new(),
        case: OpenCase::new(),
        previous: PreviousCase::default(),
        repeats_after_failure: 0,
        text: Capped::new(limits.max_text_bytes),
        rerun_body: Capped::new(limits.max_text_bytes),
        text_open: false,
        suite_result: None,
        summary: StreamSummary::default(),
        warnings_dropped: 0,
        times: TimeStats::default(),
        nuls: NulStats::default(),
        unknown_entities: 0,
        root_closed: false,
        root_declared_tests: None,
        derive_cache: DeriveCache::default(),
    };
    // End tags are matched by `OpenNames` for both lanes (see
    // `fast_lane`); quick-xml's own check would miss the elements the fast
    // lane opened.
    reader.config_mut().check_end_names = false;
    reader.config_mut().allow_unmatched_ends = true;
    let mut names = OpenNames::default();
    let mut lane = FastLane::default();
    // Bytes the fast lane consumed, which quick-xml's offsets do not count.
    let mut fast_bytes = 0u64;
    // quick-xml is between events, where either lane may read: after its
    // first markup event (it strips a BOM before that) and after every
    // markup event since.
    let mut between_events = false;
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        if between_events && fast_lane {
            let base = reader_offset(&reader, fast_bytes);
            let window = match reader.get_mut().fill_buf() {
                Ok(window) => window,
                Err(err) => {
                    let err = XmlError::Io(Arc::new(err));
                    return Err(parser.xml_error(err, base, base));
                }
            };
            let (at, markup_end) = parser.read_window(&mut lane, &mut names, window, base)?;
            let exhausted = at == window.len() && at > 0;
            if at > 0 {
                let cut = reader.get_mut();
                if markup_end > 0 {
                    cut.consume(markup_end);
                    cut.markup_ended();
                }
                cut.consume(at - markup_end);
                fast_bytes += at as u64;
            }
            // A window read to its end: the next one may go on in the lane.
            if exhausted {
                continue;
            }
        }
        buf.clear();
        // Offset where the next event starts: what errors about it point at.
        let position = reader_offset(&reader, fast_bytes);
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(err) => {
                let at = reader.error_position() + fast_bytes;
                return Err(parser.xml_error(err, at, reader_offset(&reader, fast_bytes)));
            }
        };
        // After markup, the cut may lend input unseen again (see
        // `LongTextCut::markup_ended`); texts and references continue the
        // segment.
        between_events = !matches!(event, Event::Text(_) | Event::GeneralRef(_) | Event::Eof);
        if between_events {
            reader.get_mut().markup_ended();
        }
        match event {
            Event::Start(e) => {
                parser.start(&Tag::from_event(&e), position)?;
                names.push(e.name().as_ref(), true);
            }
            Event::Empty(e) => {
                parser.start(&Tag::from_event(&e), position)?;
                parser.end();
            }
            Event::End(e) => {
                if let Err(err) = names.close(e.name().as_ref()) {
                    // At the end tag's `<`, as quick-xml reports it.
                    return Err(parser.xml_error(err, position, position));
                }
                parser.end();
            }
            Event::Text(t) => {
                if parser.routes_text() {
                    parser.push_text_event(&t, position)?;
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
    }
    let end = reader_offset(&reader, fast_bytes);
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
    // Nothing is open, so a root that opened has closed (an element
    // other than a suite cannot be the root).
    if !parser.root_closed {
        return Err(JunitError::Empty {
            file: source.to_owned(),
        });
    }
    Ok(parser.finish())
}

/// Bytes of input consumed so far, by both lanes.
fn reader_offset<B>(reader: &Reader<B>, fast_bytes: u64) -> u64 {
    reader.buffer_position() + fast_bytes
}

impl<F: FnMut(CaseRef<'_>)> Parser<'_, F> {
    fn malformed(&self, position: u64, message: String) -> JunitError {
        JunitError::Malformed {
            file: self.source.to_owned(),
            position,
            line: None,
            message,
        }
    }

    /// `at` is where quick-xml places the error; `consumed`, how far it
    /// read (where a truncated report ends).
    fn xml_error(&self, err: XmlError, at: u64, consumed: u64) -> JunitError {
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
                position: consumed,
                line: None,
                open: match self.stack.last() {
                    Some(Elem::SystemOut) => "system-out".into(),
                    Some(Elem::SystemErr) => "system-err".into(),
                    Some(Elem::Testcase) => "testcase".into(),
                    Some(Elem::Testsuite) => "testsuite".into(),
                    _ => "markup".into(),
                },
            },
            other => self.malformed(at, other.to_string()),
        }
    }

    /// A captured text, decoded as quick-xml decodes a text event (UTF-8,
    /// line ends), whichever lane read it.
    /// Inlined: a call here cost ~0.8 % of a nextest report's instructions.
    #[inline(always)]
    fn push_text_event(&mut self, t: &BytesText<'_>, position: u64) -> Result<(), JunitError> {
        let s = t
            .xml_content()
            .map_err(|e| self.malformed(position, e.to_string()))?;
        self.push_text(&s);
        Ok(())
    }

    /// Reads events with the fast lane from `window` (the input's buffer,
    /// starting at offset `base`) until the lane steps aside or the window
    /// ends. Returns how far it read and where the last markup it read
    /// ended, for the caller to tell the input once: `fill_buf`, `consume`
    /// and `markup_ended` per event were ~3 % of the instructions.
    #[inline(always)]
    fn read_window(
        &mut self,
        lane: &mut FastLane,
        names: &mut OpenNames,
        window: &[u8],
        base: u64,
    ) -> Result<(usize, usize), JunitError> {
        let (mut at, mut markup_end) = (0, 0);
        loop {
            let open = names.fast_closable();
            let text = if self.stack.is_empty() {
                TextHere::Outside
            } else if self.routes_text() {
                TextHere::Captured
            } else {
                TextHere::Ignored
            };
            let rest = &window[at..];
            let Some(scanned) = lane.scan(rest, open, text) else {
                break;
            };
            let position = base + at as u64;
            match scanned {
                Scanned::Start {
                    len,
                    name_len,
                    empty,
                    plain,
                } => {
                    let tag = Tag {
                        content: &rest[1..len - 1 - usize::from(empty)],
                        name_len,
                        attrs: TagAttrs::Scanned {
                            spans: lane.spans(),
                            plain,
                        },
                    };
                    self.start(&tag, position)?;
                    if empty {
                        self.end();
                    } else {
                        names.push(tag.name(), false);
                    }
                    at += len;
                    markup_end = at;
                }
                Scanned::End { len } => {
                    names.pop();
                    self.end();
                    at += len;
                    markup_end = at;
                }
                Scanned::Text { len } => {
                    if text == TextHere::Captured {
                        // Decoded as quick-xml decodes its text event
                        // (UTF-8, line ends); what is not UTF-8 is
                        // left to quick-xml, to report.
                        let Ok(raw) = std::str::from_utf8(&rest[..len]) else {
                            break;
                        };
                        self.push_text_event(&BytesText::from_escaped(raw), position)?;
                    }
                    at += len;
                }
            }
        }
        Ok((at, markup_end))
    }

    fn warn(&mut self, message: String) {
        if self.summary.warnings.len() < MAX_WARNINGS {
            self.summary.warnings.push(message);
        } else {
            self.warnings_dropped += 1;
        }
    }

    /// Opens an element: checks depth and root, then hands it to its
    /// handler. Which handler depends on the parent as well as the name
    /// (`<error>` in a suite is not `<error>` in a case).
    fn start(&mut self, e: &Tag<'_>, position: u64) -> Result<(), JunitError> {
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
        let parent = self.stack.last().copied();
        let elem = match (parent, name) {
            (None, _) if self.root_closed => {
                return Err(self.malformed(
                    position,
                    "a second root element after the report ended".into(),
                ));
            }
            (None, b"testsuites") => {
                self.open_testsuites(e, position)?;
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
                    root: cap_str(&String::from_utf8_lossy(e.name()), 64),
                });
            }
            (Some(Elem::Testsuites | Elem::Testsuite), b"testcase") => {
                self.open_case(e, position)?;
                Elem::Testcase
            }
            (Some(Elem::Testsuite), b"error" | b"failure") => {
                let kind = if name == b"error" {
                    ResultKind::Error
                } else {
                    ResultKind::Failure
                };
                self.open_suite_result(e, position, kind)?;
                Elem::SuiteResult
            }
            (Some(Elem::Testcase), b"failure" | b"error" | b"skipped") => {
                let kind = match name {
                    b"error" => ResultKind::Error,
                    b"failure" => ResultKind::Failure,
                    _ => ResultKind::Skipped,
                };
                self.open_case_result(e, position, kind)?;
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
                self.open_rerun(e, position, outcome)?;
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

    /// Closes the innermost element and lets its handler finish it.
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
            Elem::Testcase => self.close_case(),
            Elem::CaseResult => self.close_case_result(),
            Elem::Rerun => self.close_rerun(),
            Elem::RerunStackTrace => self.close_stack_trace(),
            Elem::SystemOut | Elem::SystemErr => self.close_output(elem),
            Elem::SuiteResult => self.close_suite_result(),
            Elem::Other => {}
        }
    }

    fn finish(mut self) -> StreamSummary {
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
        if t.huge > 0 {
            self.warn(format!(
                "{} time value(s) above {MAX_DURATION_SECS:e} s (about 31 years) capped at that (first: {})",
                t.huge,
                t.first_huge.unwrap_or_default()
            ));
        }
        if t.missing > 0 {
            self.warn(format!(
                "{} test case(s) without a time attribute counted as 0 s",
                t.missing
            ));
        }
        let nuls = std::mem::take(&mut self.nuls);
        if nuls.count > 0 {
            self.warn(format!(
                "{} name(s) or path(s) held NUL bytes, shown as `\\0` (first: {})",
                nuls.count,
                nuls.first.unwrap_or_default()
            ));
        }
        if self.repeats_after_failure > 0 {
            self.warn(format!(
                "{} test case(s) repeat the suite, classname and name of the failed case just before them; each was counted as a test of its own. If they are reruns, have the runner mark them as such (<rerunFailure>/<flakyFailure>; Gradle: reports.junitXml.mergeReruns = true)",
                self.repeats_after_failure
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

#[cfg(test)]
mod tests;
