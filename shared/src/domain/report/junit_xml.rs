//! The merged JUnit file (`junit.xml`): every test of the run exactly once,
//! grouped back into the suites the runners reported, so any JUnit consumer
//! (CI test tabs, dashboards) can read the whole run as one file.
//!
//! Written incrementally through quick-xml's writer (which escapes text and
//! attributes); characters XML 1.0 cannot carry at all are stripped first,
//! since escaping cannot help with them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, BufWriter, Write};

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::{ReportInput, secs};
use crate::domain::model::{Attempt, Counts, Outcome, TestCase};

/// True for characters XML 1.0 allows (the `Char` production). Rust strings
/// cannot hold surrogates, so what is left to reject is C0 controls other
/// than tab/LF/CR, and U+FFFE/U+FFFF.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// `s` without characters invalid in XML 1.0; borrows when already clean.
pub fn strip_invalid_xml(s: &str) -> Cow<'_, str> {
    if s.chars().all(xml_char) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|&c| xml_char(c)).collect())
    }
}

/// Escapes an attribute value, including tab, LF and CR as character
/// references: XML readers normalise literal ones to spaces, which would
/// flatten every multi-line failure message.
fn attr_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars().filter(|&c| xml_char(c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Adds `key="value"` with [`attr_value`] escaping (quick-xml takes the
/// bytes as they are when given raw bytes).
fn push_attr(el: &mut BytesStart<'_>, key: &str, value: &str) {
    let value = attr_value(value);
    el.push_attribute((key.as_bytes(), value.as_bytes()));
}

fn time(seconds: f64) -> String {
    format!("{:.3}", secs(seconds))
}

/// Writes the merged file: suites in order of first appearance, each with
/// its cases in input order. When every suite's cases come in one unbroken
/// run (the usual case: runners write suite by suite) this is one pass over
/// the cases; otherwise each suite's positions are listed (4 bytes a case)
/// and its cases fetched by position.
pub fn write<W: Write>(input: &ReportInput<'_>, out: &mut W) -> io::Result<()> {
    let digest = input.digest;
    let mut xml = Writer::new_with_indent(BufWriter::with_capacity(64 * 1024, out), b' ', 2);
    xml.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;

    let mut root = BytesStart::new("testsuites");
    let run_name = format!("testexec run {}", input.run.id);
    push_attr(&mut root, "name", &run_name);
    push_counts(&mut root, &digest.counts, digest.total_secs);
    xml.write_event(Event::Start(root))?;

    let open = |xml: &mut Writer<_>, g: usize| {
        let suite = &digest.suites[g];
        let mut el = BytesStart::new("testsuite");
        push_attr(&mut el, "name", &suite.name);
        push_counts(&mut el, &suite.counts, suite.secs);
        xml.write_event(Event::Start(el))
    };
    let close = |xml: &mut Writer<_>| xml.write_event(Event::End(BytesEnd::new("testsuite")));
    if digest.suites_contiguous {
        let mut current: Option<&str> = None;
        let mut g = 0;
        input.cases.for_each(&mut |_, shard, case| {
            if current != Some(case.suite.as_str()) {
                if current.is_some() {
                    close(&mut xml)?;
                    g += 1;
                }
                open(&mut xml, g)?;
                current = Some(digest.suites[g].name.as_str());
            }
            testcase(&mut xml, shard, case)
        })?;
        if current.is_some() {
            close(&mut xml)?;
        }
    } else {
        let slot: HashMap<&str, usize> = digest
            .suites
            .iter()
            .enumerate()
            .map(|(g, s)| (s.name.as_str(), g))
            .collect();
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); digest.suites.len()];
        input.cases.for_each(&mut |i, _, case| {
            let g = slot
                .get(case.suite.as_str())
                .copied()
                .ok_or_else(|| io::Error::other("the test cases changed between two reads"))?;
            let i = u32::try_from(i).map_err(io::Error::other)?;
            members[g].push(i);
            Ok(())
        })?;
        for (g, indices) in members.iter().enumerate() {
            open(&mut xml, g)?;
            for &i in indices {
                let (shard, case) = input.cases.get(i as usize)?;
                testcase(&mut xml, shard, &case)?;
            }
            close(&mut xml)?;
        }
    }
    xml.write_event(Event::End(BytesEnd::new("testsuites")))?;
    let mut inner = xml.into_inner();
    inner.write_all(b"\n")?;
    inner.flush()
}

/// JUnit's count attributes. JUnit has no flaky count: flaky tests are
/// passed tests (with `flakyFailure` children), so they are not failures.
fn push_counts(el: &mut BytesStart<'_>, c: &Counts, seconds: f64) {
    el.push_attribute(("tests", c.tests.to_string().as_str()));
    el.push_attribute(("failures", c.failed.to_string().as_str()));
    el.push_attribute(("errors", c.errors.to_string().as_str()));
    el.push_attribute(("skipped", c.skipped.to_string().as_str()));
    el.push_attribute(("time", time(seconds).as_str()));
}

fn testcase<W: Write>(xml: &mut Writer<W>, shard: u32, case: &TestCase) -> io::Result<()> {
    let mut el = BytesStart::new("testcase");
    push_attr(&mut el, "name", &case.name);
    push_attr(&mut el, "classname", &case.classname);
    if let Some(file) = &case.file {
        push_attr(&mut el, "file", file);
    }
    if let Some(line) = case.line {
        el.push_attribute(("line", line.to_string().as_str()));
    }
    el.push_attribute(("time", time(case.duration_secs).as_str()));
    // Not a JUnit attribute, but tolerated by every reader we know of and it
    // tells which shard (and so which log) a test came from.
    el.push_attribute(("shard", shard.to_string().as_str()));

    let result = match case.outcome {
        Outcome::Failed => Some("failure"),
        Outcome::Error => Some("error"),
        Outcome::Skipped => Some("skipped"),
        Outcome::Passed | Outcome::Flaky => None,
    };
    // Surefire's names for earlier attempts: flaky* when the test passed in
    // the end, rerun* when it never did.
    let earlier: Vec<(&str, &Attempt)> = case
        .retries
        .iter()
        .filter_map(|a| {
            let passed_in_the_end = matches!(case.outcome, Outcome::Passed | Outcome::Flaky);
            let tag = match (a.outcome, passed_in_the_end) {
                (Outcome::Failed, true) => "flakyFailure",
                (Outcome::Error, true) => "flakyError",
                (Outcome::Failed, false) => "rerunFailure",
                (Outcome::Error, false) => "rerunError",
                _ => return None,
            };
            Some((tag, a))
        })
        .collect();
    let empty = result.is_none()
        && earlier.is_empty()
        && case.system_out.is_none()
        && case.system_err.is_none();
    if empty {
        return xml.write_event(Event::Empty(el));
    }
    xml.write_event(Event::Start(el))?;
    if let Some(tag) = result {
        outcome_element(xml, tag, case.message.as_deref(), case.details.as_deref())?;
    }
    for (tag, attempt) in earlier {
        let mut el = BytesStart::new(tag);
        if let Some(m) = &attempt.message {
            push_attr(&mut el, "message", m);
        }
        if let Some(d) = attempt.duration_secs {
            el.push_attribute(("time", time(d).as_str()));
        }
        match &attempt.details {
            Some(details) => {
                xml.write_event(Event::Start(el))?;
                text_element(xml, "stackTrace", details)?;
                xml.write_event(Event::End(BytesEnd::new(tag)))?;
            }
            None => xml.write_event(Event::Empty(el))?,
        }
    }
    if let Some(out) = &case.system_out {
        text_element(xml, "system-out", out)?;
    }
    if let Some(err) = &case.system_err {
        text_element(xml, "system-err", err)?;
    }
    xml.write_event(Event::End(BytesEnd::new("testcase")))
}

fn outcome_element<W: Write>(
    xml: &mut Writer<W>,
    tag: &str,
    message: Option<&str>,
    body: Option<&str>,
) -> io::Result<()> {
    let mut el = BytesStart::new(tag);
    if let Some(m) = message {
        push_attr(&mut el, "message", m);
    }
    match body {
        Some(body) if !body.is_empty() => {
            xml.write_event(Event::Start(el))?;
            xml.write_event(Event::Text(BytesText::new(&strip_invalid_xml(body))))?;
            xml.write_event(Event::End(BytesEnd::new(tag)))
        }
        _ => xml.write_event(Event::Empty(el)),
    }
}

fn text_element<W: Write>(xml: &mut Writer<W>, tag: &str, text: &str) -> io::Result<()> {
    xml.write_event(Event::Start(BytesStart::new(tag)))?;
    xml.write_event(Event::Text(BytesText::new(&strip_invalid_xml(text))))?;
    xml.write_event(Event::End(BytesEnd::new(tag)))
}
