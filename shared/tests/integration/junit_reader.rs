//! Focused behaviour of the JUnit reader: retries, caps, encodings, times,
//! derived files, hostile and broken input, and streaming a large report.

use std::io::Read;
use std::path::{Path, PathBuf};

use testexec::domain::junit::{
    JunitError, Limits, Report, SUITE_ERROR_NAME, read, read_file, stream,
};
use testexec::domain::model::{Outcome, TestCase};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/junit")
        .join(name)
}

fn parse(xml: &str) -> Report {
    read(xml.as_bytes(), "inline.xml", &Limits::default()).unwrap()
}

fn parse_err(xml: &[u8]) -> JunitError {
    read(xml, "inline.xml", &Limits::default()).unwrap_err()
}

fn case<'a>(report: &'a Report, name: &str) -> &'a TestCase {
    report
        .cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

#[test]
fn surefire_flaky_failure_is_flaky_with_attempts() {
    let report = read_file(&fixture("jenkins-gh-237-TEST-io.olamy.FlakyTest.xml")).unwrap();
    assert_eq!(report.cases.len(), 1);
    let c = &report.cases[0];
    assert_eq!(c.outcome, Outcome::Flaky);
    assert_eq!(c.retries.len(), 2);
    assert!(c.retries.iter().all(|a| a.outcome == Outcome::Failed));
    // Surefire nests the trace in <stackTrace>; that is the attempt's details.
    assert!(
        c.retries[0]
            .details
            .as_deref()
            .unwrap()
            .contains("at io.olamy.FlakyTest")
    );
    assert!(c.retries[0].message.is_some());
}

#[test]
fn rerun_failure_stays_failed_with_retries() {
    let report = read_file(&fixture("jenkins-gh-237-TEST-io.olamy.AlwaysFailTest.xml")).unwrap();
    let c = &report.cases[0];
    assert_eq!(c.outcome, Outcome::Failed);
    assert_eq!(c.retries.len(), 3);

    let report = read_file(&fixture("nextest-fixture-project-junit.xml")).unwrap();
    let failed = case(&report, "test_failure_assert");
    assert_eq!(failed.outcome, Outcome::Failed);
    assert_eq!(failed.retries.len(), 2);
    // nextest puts the panic text in the element body and nests system-out:
    // details are the body only.
    let details = failed.retries[0].details.as_deref().unwrap();
    assert!(details.starts_with("thread 'test_failure_assert' panicked"));
    assert!(!details.contains("running 1 test"));
    assert_eq!(failed.retries[0].duration_secs, Some(0.004));
    assert_eq!(case(&report, "test_flaky_mod_4").outcome, Outcome::Flaky);
}

#[test]
fn rerun_without_final_failure_is_flaky_and_flaky_error_counts() {
    let r = parse(
        r#"<testsuite name="s">
             <testcase name="a"><rerunError message="boom"/></testcase>
             <testcase name="b"><flakyError message="x"/><flakyFailure message="y"/></testcase>
             <testcase name="c"><error message="e"/><rerunError message="again"/></testcase>
           </testsuite>"#,
    );
    assert_eq!(case(&r, "a").outcome, Outcome::Flaky);
    let b = case(&r, "b");
    assert_eq!(b.outcome, Outcome::Flaky);
    assert_eq!(
        b.retries.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        [Outcome::Error, Outcome::Failed]
    );
    let c = case(&r, "c");
    assert_eq!(
        (c.outcome, c.retries.len(), c.message.as_deref()),
        (Outcome::Error, 1, Some("e"))
    );
    assert_eq!(r.counts.flaky, 2);
    assert_eq!(r.counts.errors, 1);
}

/// Repeated identities are never folded within a report, not even right
/// after a failure (the shape Gradle writes for reruns without
/// `mergeReruns`): every element is counted, and one warning points at the
/// runner setting that marks real reruns.
#[test]
fn repeated_testcases_are_counted_with_a_rerun_hint() {
    let r = parse(
        r#"<testsuites><testsuite name="s">
             <testcase classname="k" name="retried" time="1"><failure message="first"/></testcase>
             <testcase classname="k" name="retried" time="2"><failure message="second"/></testcase>
             <testcase classname="k" name="retried" time="3"/>
             <testcase classname="k" name="always" time="1"><error message="e1"/></testcase>
             <testcase classname="k" name="always" time="1"><failure message="f2"/></testcase>
             <testcase classname="k" name="param" time="1"/>
             <testcase classname="k" name="param" time="1"/>
             <testcase classname="other" name="always" time="1"/>
           </testsuite>
           <testsuite name="t"><testcase classname="k" name="always" time="1"/></testsuite>
           </testsuites>"#,
    );
    let retried: Vec<_> = r.cases.iter().filter(|c| c.name == "retried").collect();
    assert_eq!(
        retried.iter().map(|c| c.outcome).collect::<Vec<_>>(),
        [Outcome::Failed, Outcome::Failed, Outcome::Passed]
    );
    assert_eq!(
        retried
            .iter()
            .map(|c| c.message.as_deref())
            .collect::<Vec<_>>(),
        [Some("first"), Some("second"), None]
    );
    assert!(r.cases.iter().all(|c| c.retries.is_empty()));
    assert_eq!(r.cases.iter().filter(|c| c.name == "always").count(), 4);
    assert_eq!(r.cases.iter().filter(|c| c.name == "param").count(), 2);
    assert_eq!(r.counts.tests, 9);
    assert_eq!(
        (
            r.counts.flaky,
            r.counts.failed,
            r.counts.errors,
            r.counts.passed
        ),
        (0, 3, 1, 5)
    );
    // "retried" twice and "always" once follow a failed twin; "param"
    // follows a passing one, and the other class or suite is another test.
    let hint: Vec<_> = r
        .warnings
        .iter()
        .filter(|w| w.contains("mergeReruns"))
        .collect();
    assert_eq!(hint.len(), 1, "{:?}", r.warnings);
    assert!(hint[0].starts_with("3 test case(s) repeat"), "{}", hint[0]);
}

/// A NUL byte cannot travel in argv (a rerun by test id), C strings or
/// most terminals, and XML forbids it, yet runners that print raw bytes
/// (a Go subtest named from binary data) do write it. Names, classnames,
/// suite names and file paths show it escaped as `\0`, with a warning.
#[test]
fn nul_bytes_in_names_are_escaped_with_a_warning() {
    let r = parse(
        "<testsuites><testsuite name=\"pkg\u{0}suite\" file=\"t/a\u{0}.go\">\
           <testcase classname=\"pkg\u{0}\" name=\"TestParse/\u{0}\u{0}x\" time=\"0.1\">\
             <failure message=\"m\">body</failure></testcase>\
           <testcase classname=\"pkg\" name=\"TestClean\" time=\"0.1\"/>\
         </testsuite></testsuites>",
    );
    let c = &r.cases[0];
    assert_eq!(c.name, "TestParse/\\0\\0x");
    assert_eq!(c.classname, "pkg\\0");
    assert_eq!(c.suite, "pkg\\0suite");
    assert_eq!(c.file.as_deref(), Some("t/a\\0.go"));
    assert_eq!(r.suites[0].name, "pkg\\0suite");
    assert_eq!(c.outcome, Outcome::Failed);
    assert_eq!(r.cases[1].name, "TestClean");
    assert!(
        r.cases
            .iter()
            .all(|c| !c.name.contains('\0') && !c.suite.contains('\0')),
    );
    let warning: Vec<_> = r.warnings.iter().filter(|w| w.contains("NUL")).collect();
    assert_eq!(warning.len(), 1, "{:?}", r.warnings);
    assert!(
        warning[0].starts_with("4 name(s) or path(s) held NUL bytes"),
        "{}",
        warning[0]
    );
}

/// Reads `path` on another thread and gives up after a while: a reader
/// that blocks (a FIFO nobody writes to) must fail this test, not hang it.
fn read_file_or_hang(path: &Path) -> Result<Report, JunitError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(read_file(&owned));
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{}: still reading after 10 s", path.display()))
}

/// A FIFO given as a report would block the reader until some writer
/// shows up, possibly forever; a directory or a device is no report
/// either. All are refused up front, naming the file and what it is.
#[test]
fn a_fifo_or_other_non_regular_file_is_refused_not_read_forever() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("junit.xml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());

    let err = read_file_or_hang(&fifo).unwrap_err();
    assert_eq!(err.kind(), "not_a_file", "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&fifo.display().to_string()),
        "{message}"
    );
    assert!(message.contains("is a FIFO (named pipe)"), "{message}");
    assert!(message.contains("regular file"), "{message}");

    let err = read_file_or_hang(dir.path()).unwrap_err();
    assert_eq!(err.kind(), "not_a_file", "{err}");
    assert!(err.to_string().contains("is a directory"), "{err}");

    let err = read_file_or_hang(Path::new("/dev/null")).unwrap_err();
    assert_eq!(err.kind(), "not_a_file", "{err}");
    assert!(err.to_string().contains("character device"), "{err}");

    // A symlink to a regular report is still a report.
    let link = dir.path().join("link.xml");
    std::os::unix::fs::symlink(fixture("dorny-jest-junit.xml"), &link).unwrap();
    assert_eq!(read_file_or_hang(&link).unwrap().counts.tests, 6);
}

/// `time=` values near f64::MAX are finite, but their sum is not: a suite
/// duration of `inf` would be written as `null` in JSON. Each time is
/// capped at the longest duration testexec records, and so is every sum,
/// with a warning; the timing history built from these cases must then
/// read back.
#[test]
fn huge_times_are_capped_and_every_sum_stays_finite() {
    use testexec::domain::model::MAX_DURATION_SECS;
    use testexec::domain::plan::Timings;
    let r = parse(
        r#"<testsuites>
             <testsuite name="pkg.Slow">
               <testcase classname="pkg.Slow" name="a" file="tests/slow.py" time="1.7e308"/>
               <testcase classname="pkg.Slow" name="b" file="tests/slow.py" time="1.7e308"/>
               <testcase classname="pkg.Slow" name="c" file="tests/slow.py" time="0.5"/>
             </testsuite>
             <testsuite name="pkg.Declared" time="9e307"><testcase name="d" time="1"/></testsuite>
           </testsuites>"#,
    );
    assert_eq!(r.cases[0].duration_secs, MAX_DURATION_SECS);
    assert_eq!(r.cases[2].duration_secs, 0.5);
    assert_eq!(r.suites[0].duration_secs, MAX_DURATION_SECS);
    assert_eq!(r.suites[1].duration_secs, MAX_DURATION_SECS);
    let json = serde_json::to_value(&r).unwrap();
    for suite in json["suites"].as_array().unwrap() {
        assert!(suite["duration_secs"].is_f64(), "{suite}");
    }
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("3 time value(s) above")),
        "{:?}",
        r.warnings
    );

    let history = Timings::from_cases(&r.cases);
    let text = history.to_json();
    assert!(!text.contains("null"), "{text}");
    let back = Timings::from_json(&text, "timings.json").unwrap();
    assert_eq!(back, history);
    assert_eq!(back.file_secs("tests/slow.py"), Some(MAX_DURATION_SECS));
}

/// Timing history is written by testexec and read by the next plan: sums
/// of valid times (a file of slow tests, one id repeated) must stay within
/// what the reader accepts, or one slow suite breaks every later plan.
#[test]
fn timing_history_from_long_tests_reads_back() {
    use testexec::domain::model::MAX_DURATION_SECS;
    use testexec::domain::plan::Timings;
    let r = parse(
        r#"<testsuite name="s">
             <testcase classname="k" name="soak1" file="tests/soak.py" time="900000000"/>
             <testcase classname="k" name="soak2" file="tests/soak.py" time="900000000"/>
             <testcase classname="k" name="soak2" file="tests/soak.py" time="900000000"/>
           </testsuite>"#,
    );
    let history = Timings::from_cases(&r.cases);
    let back = Timings::from_json(&history.to_json(), "timings.json").unwrap();
    assert_eq!(back.file_secs("tests/soak.py"), Some(MAX_DURATION_SECS));
    let tests = back.test_secs("tests/soak.py").unwrap();
    assert_eq!(tests["k::soak1"], 9e8);
    assert_eq!(tests["k::soak2"], MAX_DURATION_SECS);
}

/// mocha-junit-reporter's shape (one `<testsuite>` per `describe`, the
/// full title as `name`, the test's own title as `classname`) with two tests
/// that share a title, as Mocha allows: first a pair whose second test
/// fails, then a pair whose first test fails.
const MOCHA_SAME_TITLES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="Mocha Tests" time="0.0130" tests="4" failures="2">
  <testsuite name="Root Suite" timestamp="2024-05-14T09:12:03" tests="0" file="test/cart.spec.js" time="0.0000" failures="0">
  </testsuite>
  <testsuite name="cart" timestamp="2024-05-14T09:12:03" tests="4" file="test/cart.spec.js" time="0.0130" failures="2">
    <testcase name="cart adds an item" time="0.0010" classname="adds an item">
    </testcase>
    <testcase name="cart adds an item" time="0.0020" classname="adds an item">
      <failure message="expected 2 to equal 1" type="AssertionError"><![CDATA[AssertionError: expected 2 to equal 1
    at Context.<anonymous> (test/cart.spec.js:14:29)
    at process.processImmediate (node:internal/timers:478:21)]]></failure>
    </testcase>
    <testcase name="cart removes an item" time="0.0040" classname="removes an item">
      <failure message="Cannot read properties of undefined (reading &apos;id&apos;)" type="TypeError"><![CDATA[TypeError: Cannot read properties of undefined (reading 'id')
    at Cart.remove (src/cart.js:31:22)
    at Context.<anonymous> (test/cart.spec.js:22:10)]]></failure>
    </testcase>
    <testcase name="cart removes an item" time="0.0060" classname="removes an item">
    </testcase>
  </testsuite>
</testsuites>"#;

/// Two `<testcase>`s with one classname and name are two tests: only the
/// rerun elements (or a later try, see collect) make attempts of one test.
#[test]
fn same_titled_mocha_tests_are_two_test_cases() {
    let r = parse(MOCHA_SAME_TITLES);
    assert_eq!(r.cases.len(), 4);
    assert_eq!(
        (
            r.counts.tests,
            r.counts.passed,
            r.counts.failed,
            r.counts.flaky
        ),
        (4, 2, 2, 0)
    );
    let outcomes = |name: &str| -> Vec<Outcome> {
        r.cases
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.outcome)
            .collect()
    };
    assert_eq!(
        outcomes("cart adds an item"),
        [Outcome::Passed, Outcome::Failed]
    );
    assert_eq!(
        outcomes("cart removes an item"),
        [Outcome::Failed, Outcome::Passed]
    );
    // Each failure keeps its own message; nothing became an attempt.
    let failed: Vec<_> = r
        .cases
        .iter()
        .filter(|c| c.outcome == Outcome::Failed)
        .map(|c| c.message.as_deref().unwrap())
        .collect();
    assert_eq!(
        failed,
        [
            "expected 2 to equal 1",
            "Cannot read properties of undefined (reading 'id')"
        ]
    );
    assert!(r.cases.iter().all(|c| c.retries.is_empty()));
    assert_eq!(r.suites[1].counts.tests, 4);
}

#[test]
fn status_attributes_and_result_precedence() {
    let r = read_file(&fixture("mikepenz-issues-testDisabled.xml")).unwrap();
    assert_eq!(case(&r, "disabled_test").outcome, Outcome::Skipped);
    assert_eq!(
        case(&r, "factorial_of_value_from_fixture[1]").outcome,
        Outcome::Passed
    );
    let r = parse(
        r#"<testsuite>
             <testcase name="gtest" status="run" result="completed"/>
             <testcase name="gtest-disabled" status="notrun" result="suppressed"/>
             <testcase name="gtest-skip" status="run" result="skipped"/>
             <testcase name="tst-failed" status="failed"/>
             <testcase name="bazel" status="run"><error message="exit 1"/></testcase>
             <testcase name="multi"><skipped/><failure message="f"/><error message="e"/></testcase>
           </testsuite>"#,
    );
    let outcomes: Vec<_> = r.cases.iter().map(|c| c.outcome).collect();
    use Outcome::*;
    assert_eq!(outcomes, [Passed, Skipped, Skipped, Failed, Error, Error]);
    assert_eq!(case(&r, "multi").message.as_deref(), Some("e"));
    assert!(r.warnings.iter().any(|w| w.contains("3 result elements")));
}

#[test]
fn suite_level_error_becomes_an_error_case() {
    let r = read_file(&fixture("jenkins-junit-report-nested-testsuites.xml")).unwrap();
    let c = case(&r, SUITE_ERROR_NAME);
    assert_eq!(c.outcome, Outcome::Error);
    assert_eq!(c.suite, "test.3rdlevel");
    assert_eq!(c.message.as_deref(), Some("bla bla"));
    assert!(
        c.details
            .as_deref()
            .unwrap()
            .starts_with("java.lang.IllegalStateException")
    );
    let nested = r.suites.iter().find(|s| s.name == "test.3rdlevel").unwrap();
    assert_eq!((nested.depth, nested.counts.errors), (2, 1));
}

#[test]
fn entities_cdata_and_unicode_survive() {
    let r = read_file(&fixture("enricomi-with-xml-entities.xml")).unwrap();
    let names: Vec<&str> = r.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Test with \"quotes\" in the test name",
            "Test with 'apostrophe' in the test name",
            "Test with & in the test name",
            "Test with < and > in the test name"
        ]
    );
    assert_eq!(r.cases[3].details.as_deref(), Some("Content with < and >"));
    let r = read_file(&fixture("enricomi-unsupported-unicode.xml")).unwrap();
    let all: String = r
        .cases
        .iter()
        .map(|c| format!("{} {:?} {:?}", c.name, c.message, c.details))
        .collect();
    for ch in ['\u{1237A}', '\u{214FF}', '\u{20109}'] {
        assert!(all.contains(ch), "missing {ch:?}");
    }
    let r = parse(
        "<testsuite><testcase name='a&#x1F600;&#65;&lt;'><failure><![CDATA[<raw> & ]]>&amp;&#10;x</failure></testcase></testsuite>",
    );
    assert_eq!(r.cases[0].name, "a😀A<");
    assert_eq!(r.cases[0].details.as_deref(), Some("<raw> & &\nx"));
    // An undefined entity is kept as written, never resolved.
    let r = parse("<testsuite><testcase name='n'><failure>&oob;</failure></testcase></testsuite>");
    assert_eq!(r.cases[0].details.as_deref(), Some("&oob;"));
    assert!(r.warnings.iter().any(|w| w.contains("undefined entity")));
}

#[test]
fn texts_are_capped_keeping_head_and_tail() {
    let body = format!("HEAD{}TAIL", "x".repeat(10_000));
    let xml = format!(
        "<testsuite><testcase name='t'><failure message='{m}'>{body}</failure><system-out><![CDATA[{body}]]></system-out></testcase></testsuite>",
        m = "m".repeat(5000)
    );
    let limits = Limits {
        max_text_bytes: 100,
        ..Limits::default()
    };
    let r = read(xml.as_bytes(), "big.xml", &limits).unwrap();
    let c = &r.cases[0];
    for text in [
        c.details.as_deref().unwrap(),
        c.system_out.as_deref().unwrap(),
    ] {
        assert!(text.starts_with("HEAD"), "{text}");
        assert!(text.ends_with("TAIL"), "{text}");
        assert!(text.contains("\n…[9908 bytes cut]…\n"), "{text}");
    }
    assert!(c.message.as_deref().unwrap().len() < 100 + 40);
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mut out = if big_endian {
        vec![0xFE, 0xFF]
    } else {
        vec![0xFF, 0xFE]
    };
    for unit in text.encode_utf16() {
        out.extend(if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

#[test]
fn utf16_with_bom_reads_like_utf8() {
    let path = fixture("enricomi-unsupported-unicode.xml");
    let text = std::fs::read_to_string(&path).unwrap();
    let expected = read_file(&path).unwrap();
    for big_endian in [false, true] {
        // The declaration keeps saying UTF-8; the BOM wins, as in XML 1.0 F.1.
        let bytes = utf16(&text, big_endian);
        let r = read(&bytes[..], "utf16.xml", &Limits::default()).unwrap();
        assert_eq!(r.cases, expected.cases);
        assert_eq!(r.counts, expected.counts);
    }
}

#[test]
fn latin1_declared_encoding_is_decoded() {
    let mut xml =
        b"<?xml version='1.0' encoding='ISO-8859-1'?><testsuite><testcase name='".to_vec();
    xml.extend([0xF1, b'a', b'n', b'd', 0xFA]);
    xml.extend(b"'/></testsuite>");
    let r = read(&xml[..], "latin1.xml", &Limits::default()).unwrap();
    assert_eq!(r.cases[0].name, "ñandú");
    let err = parse_err(b"<?xml version='1.0' encoding='x-klingon'?><testsuite/>");
    assert_eq!(err.kind(), "unsupported_encoding");
}

#[test]
fn odd_times_are_read_or_clamped_with_warnings() {
    let r = parse(
        r#"<testsuite name="s">
             <testcase name="thousands" time="1,234.5"/>
             <testcase name="sci" time="1.4e-05"/>
             <testcase name="negative" time="-3"/>
             <testcase name="garbage" time="soon"/>
             <testcase name="missing"/>
           </testsuite>"#,
    );
    let t = |n| case(&r, n).duration_secs;
    assert_eq!(
        (
            t("thousands"),
            t("sci"),
            t("negative"),
            t("garbage"),
            t("missing")
        ),
        (1234.5, 1.4e-05, 0.0, 0.0, 0.0)
    );
    let w = r.warnings.join("\n");
    assert!(w.contains("1 negative time"), "{w}");
    assert!(w.contains("1 unreadable time"), "{w}");
    assert!(w.contains("1 test case(s) without a time"), "{w}");
    // No suite time: the suite's duration is the sum of its cases.
    assert_eq!(r.suites[0].duration_secs, 1234.5 + 1.4e-05);
}

#[test]
fn derived_files_on_real_reports() {
    let r = read_file(&fixture("dorny-python-xunit-pytest.xml")).unwrap();
    let c = case(&r, "test_always_pass");
    assert_eq!(
        (c.file.as_deref(), c.file_derived),
        (Some("tests/test_lib.py"), true)
    );

    let r = read_file(&fixture("dorny-test-errors-jest-test-results.xml")).unwrap();
    assert_eq!(r.cases[0].file.as_deref(), Some("libs/foo.spec.ts"));
    assert!(r.cases[0].file_derived);

    let r = read_file(&fixture("nextest-fixture-project-junit.xml")).unwrap();
    assert_eq!(r.cases[0].file.as_deref(), Some("tests/basic.rs"));

    // Written by the runner: not derived, line kept.
    let r = read_file(&fixture("dorny-python-xunit-unittest.xml")).unwrap();
    let with_file = r.cases.iter().find(|c| c.file.is_some()).unwrap();
    assert!(!with_file.file_derived);
    assert!(with_file.line.is_some());

    // Java: no guess.
    let r = read_file(&fixture(
        "mikepenz-TEST-action.surefire.report.email.EmailAddressTest.xml",
    ))
    .unwrap();
    assert!(r.cases.iter().all(|c| c.file.is_none()));
}

#[test]
fn xxe_is_refused_without_fetching() {
    let err = read_file(&fixture("jenkins-testXxe-xxe.xml")).unwrap_err();
    assert_eq!(err.kind(), "doctype");
    assert_eq!(err.position(), Some(44)); // the `<!DOCTYPE` starting line 2
    assert!(err.to_string().contains("line 2"), "{err}");
    // Even an internal entity declaration is refused: no billion laughs.
    let err = parse_err(b"<!DOCTYPE t [<!ENTITY a 'aaaa'>]><testsuite name='&a;'/>");
    assert_eq!(err.kind(), "doctype");
}

#[test]
fn broken_input_gives_typed_errors_with_positions() {
    assert_eq!(parse_err(b"").kind(), "empty");
    assert_eq!(parse_err(b"  \n").kind(), "empty");
    assert_eq!(parse_err(b"<?xml version='1.0'?>").kind(), "empty");
    assert_eq!(parse_err(b"not xml at all").kind(), "malformed");
    let err = parse_err(b"<suites><suite/></suites>");
    assert!(
        matches!(&err, JunitError::NotJunit { root, position: 0, .. } if root == "suites"),
        "{err}"
    );

    let xml = b"<testsuite><testcase name='a'></testcase><testcase name='b'>";
    let err = parse_err(xml);
    assert!(
        matches!(&err, JunitError::Truncated { open, position, .. } if open == "testcase" && *position == xml.len() as u64),
        "{err}"
    );
    let err = parse_err(b"<testsuite><testcase name='a'><system-out><![CDATA[half");
    assert!(
        matches!(&err, JunitError::Truncated { open, .. } if open == "system-out"),
        "{err}"
    );
    let err = parse_err(b"<testsuite><testcase name='a' time=");
    assert_eq!(err.kind(), "truncated");
    let err = parse_err(b"<testsuite>\n<testcase></testsuite>");
    assert!(
        matches!(&err, JunitError::Malformed { position: 22, .. }),
        "{err}"
    );

    let err = read_file(&fixture("mikepenz-corrupt-TEST-test.CorruptTest.xml")).unwrap_err();
    assert!(err.to_string().contains("line 18"), "{err}");
    let deep = format!("<testsuites>{}", "<testsuite>".repeat(100));
    assert_eq!(parse_err(deep.as_bytes()).kind(), "too_deep");
}

#[test]
fn every_truncation_of_every_fixture_is_an_error_or_a_report_never_a_panic() {
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let step = (bytes.len() / 97).max(1);
        for end in (0..bytes.len()).step_by(step) {
            // Ok is possible (cut after the root closed); a panic is not.
            let _ = read(&bytes[..end], "cut.xml", &Limits::default());
        }
    }
    // A cut in the middle of a multi-byte character must not panic either.
    let cut = "<testsuite><testcase name='é".as_bytes();
    let _ = read(&cut[..cut.len() - 1], "cut.xml", &Limits::default());
}

#[test]
fn reports_over_the_size_limit_fail_clearly() {
    let limits = Limits {
        max_report_bytes: 1000,
        ..Limits::default()
    };
    let err = read_file_with_limits("jenkins-junit-report-1472.xml", &limits);
    assert_eq!(err.kind(), "too_large");
    assert!(err.to_string().contains("1000-byte limit"), "{err}");
}

fn read_file_with_limits(name: &str, limits: &Limits) -> JunitError {
    testexec::domain::junit::read_file_with(&fixture(name), limits).unwrap_err()
}

/// Produces a synthetic report of about `target` bytes on the fly, so the
/// test itself holds no big buffer.
struct Synthetic {
    remaining_cases: u64,
    chunk: Vec<u8>,
    pos: usize,
    stage: u8,
}

impl Read for Synthetic {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.chunk.len() {
            self.pos = 0;
            self.chunk.clear();
            match self.stage {
                0 => {
                    self.chunk
                        .extend(b"<?xml version=\"1.0\"?>\n<testsuites><testsuite name=\"big\">\n");
                    self.stage = 1;
                }
                1 if self.remaining_cases > 0 => {
                    self.remaining_cases -= 1;
                    let n = self.remaining_cases;
                    if n % 10 == 0 {
                        self.chunk.extend(format!(
                            "<testcase classname=\"pkg.Big\" name=\"t{n}\" time=\"0.5\"><failure message=\"boom\">{}</failure><system-out><![CDATA[{}]]></system-out></testcase>\n",
                            "trace line\n".repeat(20),
                            "o".repeat(600)
                        ).as_bytes());
                    } else {
                        self.chunk.extend(
                            format!(
                                "<testcase classname=\"pkg.Big\" name=\"t{n}\" time=\"0.001\"/>\n"
                            )
                            .as_bytes(),
                        );
                    }
                }
                1 => {
                    self.chunk.extend(b"</testsuite></testsuites>\n");
                    self.stage = 2;
                }
                _ => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn a_60_mb_report_streams_through() {
    // ~1.1 KB per failing case, ~65 B per passing one: 400k cases ≈ 60 MB.
    let cases = 400_000;
    let input = Synthetic {
        remaining_cases: cases,
        chunk: Vec::new(),
        pos: 0,
        stage: 0,
    };
    let mut seen = 0u64;
    let mut max_details = 0;
    let summary = stream(
        input,
        "synthetic.xml",
        &Limits {
            max_text_bytes: 128,
            ..Limits::default()
        },
        |c| {
            seen += 1;
            max_details = max_details.max(c.details.as_ref().map_or(0, String::len));
        },
    )
    .unwrap();
    assert_eq!(seen, cases);
    assert_eq!(summary.counts.tests, cases);
    assert_eq!(summary.counts.failed, cases / 10);
    assert!(max_details <= 128 + 40, "{max_details}");
    assert_eq!(summary.suites.len(), 1);
}
