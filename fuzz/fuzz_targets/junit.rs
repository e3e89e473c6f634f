//! Fuzzes the JUnit reader with arbitrary bytes.
//!
//! Invariants (any violation aborts, and libFuzzer saves the input):
//! - `read` and `stream` never panic, whatever the bytes;
//! - every captured text is within `max_text_bytes` plus the cut marker;
//! - the counts equal the cases handed out, outcome by outcome, and the
//!   per-suite counts add up to the report's;
//! - `read` and `stream` agree;
//! - the fast lane and quick-xml alone (`Tokenizer::QuickXmlOnly`) give
//!   the same cases, summary and error, position included.
//!
//! Each input is read twice: with the default limits (what production
//! uses) and with tiny limits taken from the first byte, because 64 KiB of
//! text or 64 levels of nesting are rarely reached by mutated inputs and the
//! capping and depth paths would otherwise go almost unexercised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use testexec::domain::junit::{self, Limits, Report, Tokenizer};
use testexec::domain::model::{Counts, Outcome, TestCase};

/// Longest possible cut marker: `\n…[N bytes cut]…\n` with a 20-digit N.
const MARKER_MAX: usize = "\n…[18446744073709551615 bytes cut]…\n".len();

fuzz_target!(|data: &[u8]| {
    check(data, &Limits::default());
    if let Some((&first, rest)) = data.split_first() {
        let tiny = Limits {
            // 0..=63 bytes: 0 and odd caps test the head/tail split edges.
            max_text_bytes: usize::from(first & 0x3f),
            max_report_bytes: 2 * 1024 * 1024 * 1024,
            // 1..=4 levels: enough for <testsuites><testsuite><testcase><failure>.
            max_depth: usize::from(first >> 6) + 1,
        };
        check(rest, &tiny);
    }
});

/// Everything the reader says, as text: result and every case.
fn output(data: &[u8], limits: &Limits, tokenizer: Tokenizer) -> String {
    let mut cases = Vec::new();
    let result = junit::stream_refs_using(tokenizer, data, "fuzz.xml", limits, |case| {
        cases.push(format!("{case:?}"))
    });
    format!("{result:?}\n{}", cases.join("\n"))
}

fn check(data: &[u8], limits: &Limits) {
    assert_eq!(
        output(data, limits, Tokenizer::FastLane),
        output(data, limits, Tokenizer::QuickXmlOnly),
        "the fast lane and quick-xml alone disagree"
    );
    let read = junit::read(data, "fuzz.xml", limits);
    let mut streamed = Vec::new();
    let summary = junit::stream(data, "fuzz.xml", limits, |case| streamed.push(case));
    match (read, summary) {
        (Ok(report), Ok(summary)) => {
            check_report(&report, limits);
            assert_eq!(report.cases, streamed, "read and stream disagree on cases");
            assert_eq!(report.counts, summary.counts);
            assert_eq!(report.suites, summary.suites);
        }
        // The error text is not compared: it may embed positions that
        // legitimately differ, but success versus failure must not.
        (Err(_), Err(_)) => {}
        (read, summary) => panic!(
            "read and stream disagree: read ok={}, stream ok={}",
            read.is_ok(),
            summary.is_ok()
        ),
    }
}

fn check_report(report: &Report, limits: &Limits) {
    let cap = limits.max_text_bytes + MARKER_MAX;
    let mut recount = Counts::default();
    for case in &report.cases {
        recount.record(case.outcome);
        check_case_texts(case, cap);
        assert!(
            case.duration_secs >= 0.0 && case.duration_secs.is_finite(),
            "duration {} is negative or not finite",
            case.duration_secs
        );
        for attempt in &case.retries {
            check_text("retry message", attempt.message.as_deref(), cap);
            check_text("retry details", attempt.details.as_deref(), cap);
        }
        if case.outcome == Outcome::Flaky {
            assert!(!case.retries.is_empty(), "a flaky case without retries");
        }
    }
    assert_eq!(report.counts, recount, "counts differ from the cases");
    assert_eq!(report.counts.tests, report.cases.len() as u64);

    let mut by_suite = Counts::default();
    for suite in &report.suites {
        by_suite.tests += suite.counts.tests;
        by_suite.passed += suite.counts.passed;
        by_suite.failed += suite.counts.failed;
        by_suite.errors += suite.counts.errors;
        by_suite.skipped += suite.counts.skipped;
        by_suite.flaky += suite.counts.flaky;
        assert!(
            suite.depth < limits.max_depth,
            "suite deeper than the limit"
        );
    }
    // Cases placed directly under <testsuites> belong to no suite (see
    // docs/junit.md), so the per-suite sums may fall short of the report's
    // counts, outcome by outcome, but never exceed them.
    let r = &report.counts;
    assert!(
        by_suite.tests <= r.tests
            && by_suite.passed <= r.passed
            && by_suite.failed <= r.failed
            && by_suite.errors <= r.errors
            && by_suite.skipped <= r.skipped
            && by_suite.flaky <= r.flaky,
        "suite counts {by_suite:?} exceed the report's {r:?}"
    );
}

fn check_case_texts(case: &TestCase, cap: usize) {
    // Attribute values are capped too: a 1 GB `name=` must not be kept whole.
    check_text("suite", Some(&case.suite), cap);
    check_text("classname", Some(&case.classname), cap);
    check_text("name", Some(&case.name), cap);
    check_text("message", case.message.as_deref(), cap);
    check_text("details", case.details.as_deref(), cap);
    check_text("system_out", case.system_out.as_deref(), cap);
    check_text("system_err", case.system_err.as_deref(), cap);
}

fn check_text(what: &str, text: Option<&str>, cap: usize) {
    if let Some(text) = text {
        assert!(
            text.len() <= cap,
            "{what} is {} bytes, over the cap of {cap}",
            text.len()
        );
    }
}
