//! One row per file in `fixtures/junit/`: the counts each report must give.
//!
//! The expected numbers were made by reading the XML, not by running this
//! parser: an independent count with Python's `xml.etree`
//! (`scripts/junit_fixture_counts.py`) applying the rules
//! documented in `shared/src/junit/mod.rs` (result precedence error, then
//! failure, then skipped; `status`/`result` attributes, flaky/rerun elements, adjacent
//! retries folded, suite-level `<error>` as a case), then spot-checked by hand
//! (`jenkins-junit-report-huge.xml`: one `<flakyFailure>` case and one
//! `<rerunFailure>` case; `enricomi-junit.multiresult.xml`; the `tst` files).
//! `mikepenz-junit-web-test-expected.xml` is not well-formed XML, so its row
//! was counted by hand. Malformed files name the `JunitError::kind` expected.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use testexec::domain::junit::read_file;

enum Expect {
    Counts {
        tests: u64,
        failed: u64,
        errors: u64,
        skipped: u64,
        flaky: u64,
    },
    Error(&'static str),
}

struct Row {
    file: &'static str,
    expect: Expect,
}

impl Row {
    const fn ok(
        file: &'static str,
        tests: u64,
        failed: u64,
        errors: u64,
        skipped: u64,
        flaky: u64,
    ) -> Self {
        Row {
            file,
            expect: Expect::Counts {
                tests,
                failed,
                errors,
                skipped,
                flaky,
            },
        }
    }

    const fn err(file: &'static str, kind: &'static str) -> Self {
        Row {
            file,
            expect: Expect::Error(kind),
        }
    }
}

#[rustfmt::skip]
const ROWS: &[Row] = &[
    Row::ok("cypress-testbeats-junit-52aa34b58f024152a93f34ee6e1b1665.xml", 14, 0, 0, 0, 0),
    Row::ok("cypress-testbeats-junit-bf2423d7b621eefb46b80c02f2abea58.xml", 9, 1, 0, 0, 0),
    Row::ok("datadog-java-gradle.xml", 5, 1, 0, 1, 0),
    Row::ok("dorny-TEST-org.apache.pulsar.AddMissingPatchVersionTest.xml", 2, 1, 0, 1, 0),
    Row::ok("dorny-empty-java-junit.xml", 0, 0, 0, 0, 0),
    Row::ok("dorny-empty-jest-junit-empty-testsuite.xml", 0, 0, 0, 0, 0),
    Row::ok("dorny-empty-jest-junit.xml", 0, 0, 0, 0, 0),
    Row::ok("dorny-empty-phpunit-empty.xml", 0, 0, 0, 0, 0),
    Row::ok("dorny-jest-junit.xml", 6, 4, 0, 1, 0),
    Row::ok("dorny-jest-test-results.xml", 4239, 2, 0, 30, 0),
    Row::ok("dorny-junit-with-message.xml", 1, 1, 0, 0, 0),
    Row::ok("dorny-nette-tester-v1.7-report.xml", 65, 1, 0, 3, 0),
    Row::ok("dorny-phpcheckstyle-phpunit.xml", 30, 2, 0, 0, 0),
    Row::ok("dorny-phpunit.xml", 12, 2, 0, 0, 0),
    Row::ok("dorny-pulsar-test-report.xml", 808, 1, 0, 14, 0),
    Row::ok("dorny-python-xunit-pytest.xml", 10, 2, 0, 2, 0),
    Row::ok("dorny-python-xunit-unittest.xml", 8, 1, 1, 2, 0),
    Row::ok("dorny-swift-xunit.xml", 3, 1, 0, 0, 0),
    Row::ok("dorny-test-errors-jest-test-results.xml", 2, 0, 2, 0, 0),
    Row::ok("enricomi-bazel-suite-logs.xml", 1, 0, 1, 0, 0),
    Row::ok("enricomi-junit.multiresult.xml", 4, 1, 1, 1, 0),
    Row::ok("enricomi-minimal-attributes.xml", 4, 1, 1, 1, 0),
    Row::ok("enricomi-mocha-latex-utensils.xml", 109, 0, 0, 0, 0),
    Row::ok("enricomi-no-cases-but-tests.xml", 0, 0, 0, 0, 0),
    Row::err("enricomi-non-junit.xml", "not_junit"),
    Row::err("enricomi-pytest-corrupt-xml.xml", "truncated"),
    Row::ok("enricomi-pytest-junit.fail.xml", 5, 1, 0, 1, 0),
    Row::ok("enricomi-pytest-junit.gloo.standalone.xml", 97, 0, 0, 17, 0),
    Row::ok("enricomi-scalatest-TEST-uk.co.gresearch.spark.diff.DiffOptionsSuite.xml", 5, 0, 0, 0, 0),
    Row::ok("enricomi-testsuite-in-testsuite.xml", 5, 0, 0, 0, 0),
    Row::ok("enricomi-testsuite-root.xml", 5, 0, 0, 0, 0),
    Row::ok("enricomi-tst-disabled.xml", 31, 19, 1, 5, 0),
    Row::ok("enricomi-unsupported-unicode.xml", 7, 2, 2, 2, 0),
    Row::ok("enricomi-with-xml-entities.xml", 4, 1, 1, 2, 0),
    Row::err("enricomi-xml-empty.xml", "empty"),
    Row::err("enricomi-xml-non-xml.xml", "malformed"),
    Row::ok("fastlane-plugin-lastpass-rspec.xml", 1, 1, 0, 0, 0),
    Row::ok("gojunitreport-001-report.xml", 5, 1, 0, 2, 0),
    Row::ok("gojunitreport-013-report.xml", 5, 0, 3, 0, 0),
    Row::ok("gojunitreport-014-report.xml", 2, 0, 2, 0, 0),
    Row::ok("gojunitreport-017-report.xml", 1, 1, 0, 0, 0),
    Row::ok("gojunitreport-103-report.xml", 4, 2, 0, 0, 0),
    Row::ok("gotestsum-junitxml-report.golden.xml", 60, 13, 0, 5, 0),
    Row::ok("jenkins-JENKINS-48583-TESTS-TestSuites.xml", 3, 0, 0, 0, 0),
    Row::ok("jenkins-SKIPPED_MESSAGE-skippedTestResult.xml", 1, 0, 0, 1, 0),
    Row::ok("jenkins-eclipse-plugin-test-report.xml", 3366, 0, 0, 0, 0),
    Row::ok("jenkins-gh-237-TEST-io.olamy.AlwaysFailTest.xml", 1, 1, 0, 0, 0),
    Row::ok("jenkins-gh-237-TEST-io.olamy.FlakyTest.xml", 1, 0, 0, 0, 1),
    Row::ok("jenkins-junit-report-1472.xml", 2653, 1, 0, 0, 0),
    Row::ok("jenkins-junit-report-20090516.xml", 8, 0, 3, 0, 0),
    Row::ok("jenkins-junit-report-bad-duration.xml", 2, 0, 0, 0, 0),
    Row::ok("jenkins-junit-report-empty-testcasename.xml", 1, 1, 0, 0, 0),
    Row::ok("jenkins-junit-report-huge.xml", 7580, 19, 0, 2430, 1),
    Row::ok("jenkins-junit-report-nested-testsuites.xml", 3, 0, 1, 0, 0),
    Row::ok("jenkins-junit-report-testsuite-various-timestamps.xml", 12, 0, 0, 0, 0),
    Row::err("jenkins-testXxe-xxe.xml", "doctype"),
    Row::ok("mikepenz-TEST-action.surefire.report.email.EmailAddressTest.xml", 9, 2, 5, 0, 0),
    Row::ok("mikepenz-catch2-report.xml", 1, 1, 0, 0, 0),
    Row::ok("mikepenz-container-structure-test.xml", 3, 0, 0, 0, 0),
    Row::err("mikepenz-corrupt-TEST-test.CorruptTest.xml", "truncated"),
    Row::ok("mikepenz-cunit-testEmpty.xml", 0, 0, 0, 0, 0),
    Row::ok("mikepenz-issues-testDisabled.xml", 22, 4, 2, 10, 0),
    Row::ok("mikepenz-junit-server-test-report.xml", 4, 1, 0, 1, 0),
    // Not well-formed (`<` in an attribute value); quick-xml is lenient, counted by hand.
    Row::ok("mikepenz-junit-web-test-expected.xml", 6, 1, 0, 1, 0),
    Row::ok("mikepenz-maven_surefire_flaky-surefire-report.xml", 1, 0, 0, 0, 1),
    Row::ok("mikepenz-mocha.xml", 1, 0, 0, 0, 0),
    Row::ok("mikepenz-nested-multi-level.xml", 3, 0, 0, 0, 0),
    Row::ok("mikepenz-nextest-basic.xml", 3, 1, 0, 0, 0),
    Row::ok("mikepenz-perl-result.xml", 1, 0, 0, 0, 0),
    Row::ok("mikepenz-python-report.xml", 3, 2, 0, 0, 0),
    Row::ok("mikepenz-xunit-report.xml", 4, 1, 0, 0, 0),
    Row::ok("nextest-fixture-project-junit.xml", 3, 1, 0, 0, 1),
    Row::ok("nextest-stress-test-junit.xml", 4, 0, 0, 0, 0),
    Row::ok("polyglot-rspec.xml", 28, 0, 0, 0, 0),
    Row::ok("spekt-junit.testlogger-TestResults.xml", 52, 14, 0, 6, 0),
    Row::ok("trr-playwright-failures.xml", 16, 2, 0, 0, 0),
    Row::ok("trr-playwright.xml", 6, 0, 0, 0, 0),
    Row::ok("trr-testCafe.xml", 2, 0, 0, 0, 0),
    Row::ok("trr-wdio-failures-errors.xml", 4, 0, 2, 0, 0),
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/junit")
}

#[test]
fn every_fixture_has_a_row() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let in_table: BTreeSet<String> = ROWS.iter().map(|r| r.file.to_owned()).collect();
    assert_eq!(in_table.len(), ROWS.len(), "duplicate rows in the table");
    let missing: Vec<_> = on_disk.difference(&in_table).collect();
    let stale: Vec<_> = in_table.difference(&on_disk).collect();
    assert!(missing.is_empty(), "fixtures without a row: {missing:?}");
    assert!(stale.is_empty(), "rows without a fixture: {stale:?}");
    assert_eq!(ROWS.len(), 79);
}

#[test]
fn every_fixture_reads_as_expected() {
    let mut failures = Vec::new();
    for row in ROWS {
        let path = fixtures_dir().join(row.file);
        match (&row.expect, read_file(&path)) {
            (
                Expect::Counts {
                    tests,
                    failed,
                    errors,
                    skipped,
                    flaky,
                },
                Ok(report),
            ) => {
                let c = report.counts;
                let got = (c.tests, c.failed, c.errors, c.skipped, c.flaky);
                let want = (*tests, *failed, *errors, *skipped, *flaky);
                if got != want {
                    failures.push(format!("{}: got {got:?}, want {want:?}", row.file));
                }
                // Invariants that hold for every report.
                assert_eq!(report.cases.len() as u64, c.tests, "{}", row.file);
                assert_eq!(
                    c.passed + c.failed + c.errors + c.skipped + c.flaky,
                    c.tests,
                    "{}",
                    row.file
                );
                let mut per_suite = 0;
                for s in &report.suites {
                    per_suite += s.counts.tests;
                }
                let outside_suites =
                    report.cases.iter().filter(|k| k.suite.is_empty()).count() as u64;
                assert!(
                    per_suite <= c.tests && per_suite + outside_suites >= c.tests,
                    "{}",
                    row.file
                );
                for case in &report.cases {
                    assert!(
                        case.duration_secs >= 0.0 && case.duration_secs.is_finite(),
                        "{}",
                        row.file
                    );
                }
            }
            (Expect::Error(kind), Err(err)) => {
                if err.kind() != *kind {
                    failures.push(format!(
                        "{}: got error {} ({err}), want {kind}",
                        row.file,
                        err.kind()
                    ));
                }
                assert!(
                    err.to_string().contains(row.file),
                    "error must name the file: {err}"
                );
            }
            (Expect::Counts { .. }, Err(err)) => {
                failures.push(format!("{}: unexpected error {err}", row.file))
            }
            (Expect::Error(kind), Ok(_)) => {
                failures.push(format!("{}: read fine, want error {kind}", row.file))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) off:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
