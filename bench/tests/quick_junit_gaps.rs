//! What quick-junit 0.8.0 cannot do that our merged `junit.xml` writer
//! (`testexec::domain::report::junit_xml`) does: the evidence behind "Why our
//! own JUnit writer" in docs/reports.md. When a quick-junit upgrade makes one
//! of these fail (or stop compiling), re-evaluate switching.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite, XmlString};

fn report_of(case: TestCase) -> String {
    let mut suite = TestSuite::new("suite");
    suite.add_test_case(case);
    let mut report = Report::new("run");
    report.add_test_suite(suite);
    report.to_string().unwrap()
}

/// A literal LF or tab in an attribute value is read back as a space by every
/// conforming XML reader (attribute-value normalisation, XML 1.0 §3.3.3), so a
/// multi-line failure message comes back as one line. We write `&#10;`; a
/// pre-escaped value cannot be handed to quick-junit (it would become
/// `&amp;#10;`).
#[test]
fn line_breaks_in_a_message_attribute_are_written_raw() {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status.set_message("expected 1\ngot 2");
    let xml = report_of(TestCase::new("t", status));
    assert!(xml.contains("message=\"expected 1\ngot 2\""), "{xml}");
    assert!(!xml.contains("&#10;"));
}

/// Every string goes through `XmlString`, which strips ANSI escapes with
/// strip-ansi-escapes: that also drops tabs, carriage returns and C1
/// controls, all of which XML carries and our writer keeps.
#[test]
fn xml_string_drops_tabs_carriage_returns_and_c1_controls() {
    // A Java stack trace line loses its leading tab.
    assert_eq!(
        XmlString::new("\tat com.example.T.run(T.java:1)").as_str(),
        "at com.example.T.run(T.java:1)"
    );
    assert_eq!(XmlString::new("a\r\nb").as_str(), "a\nb");
    assert_eq!(XmlString::new("x\u{85}y").as_str(), "xy");
}

/// U+FFFE and U+FFFF are not XML characters, and `XmlString` keeps them: the
/// output is not well-formed. We strip them (`junit_xml::strip_invalid_xml`).
#[test]
fn noncharacters_reach_the_output() {
    let mut case = TestCase::new("t", TestCaseStatus::success());
    case.set_system_out("a\u{FFFF}b\u{FFFE}c");
    let xml = report_of(case);
    assert!(xml.contains("a\u{FFFF}b\u{FFFE}c"), "{xml}");
}

/// A test skipped in the end after failed attempts (a Gradle test-retry
/// repeat folded by our reader, or Surefire `<skipped>` with
/// `<rerunFailure>`) keeps its attempts as `<rerunFailure>`/`<rerunError>`
/// in our file. quick-junit's skipped status has no reruns. The exhaustive
/// pattern stops compiling if a later version adds a field here.
#[test]
fn a_skipped_status_has_no_reruns() {
    let TestCaseStatus::Skipped {
        message: _,
        ty: _,
        description: _,
    } = TestCaseStatus::skipped()
    else {
        unreachable!("skipped() is Skipped")
    };
}
