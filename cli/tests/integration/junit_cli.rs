//! `testexec junit` run as a real process on the fixtures.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/junit")
        .join(name)
        .display()
        .to_string()
}

fn testexec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args(args)
        .output()
        .expect("run testexec")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

#[test]
fn failing_tests_are_data_exit_0_with_text_summary() {
    let file = fixture("dorny-jest-junit.xml");
    let out = testexec(&["junit", &file]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("6 tests: 1 passed, 4 failed, 0 errors, 1 skipped, 0 flaky"),
        "{text}"
    );
    assert!(text.contains("Failures (4):"), "{text}");
    assert!(
        text.contains("Error: expect(received).toBeTruthy()"),
        "{text}"
    );
    assert!(text.contains("Slowest "), "{text}");
}

#[test]
fn fail_on_failures_exits_1_only_when_a_test_failed() {
    let failing = fixture("dorny-jest-junit.xml");
    let flaky_only = fixture("mikepenz-maven_surefire_flaky-surefire-report.xml");
    assert_eq!(
        testexec(&["junit", "--fail-on-failures", &failing])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        testexec(&["junit", "--fail-on-failures", &flaky_only])
            .status
            .code(),
        Some(0)
    );
    let bad = fixture("enricomi-xml-empty.xml");
    assert_eq!(
        testexec(&["junit", "--fail-on-failures", &failing, &bad])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn max_failures_lists_fewer_but_counts_all() {
    let file = fixture("dorny-jest-junit.xml");
    let v = json(&testexec(&[
        "junit",
        "--format",
        "json",
        "--max-failures",
        "1",
        &file,
    ]));
    assert_eq!(v["failures"].as_array().unwrap().len(), 1);
    assert_eq!(v["failures_omitted"], 3);
    assert_eq!(v["totals"]["failed"], 4);
    let text =
        String::from_utf8(testexec(&["junit", "--max-failures", "1", &file]).stdout).unwrap();
    assert!(
        text.contains("Failures (4):") && text.contains("… and 3 more"),
        "{text}"
    );
}

#[test]
fn failures_show_file_and_line() {
    let out = testexec(&["junit", &fixture("dorny-python-xunit-unittest.xml")]);
    let text = String::from_utf8(out.stdout).unwrap();
    let failure = text
        .lines()
        .find(|l| l.trim_start().starts_with("FAILED"))
        .unwrap();
    assert!(failure.contains(".py:"), "{failure}");
}

#[test]
fn json_totals_slowest_and_failures() {
    let a = fixture("nextest-fixture-project-junit.xml");
    let b = fixture("jenkins-junit-report-1472.xml");
    let out = testexec(&["junit", "--format", "json", "--slowest", "3", &a, &b]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["version"], 1);
    assert_eq!(v["unreadable"], 0);
    assert_eq!(v["reports"].as_array().unwrap().len(), 2);
    assert_eq!(v["reports"][0]["counts"]["flaky"], 1);
    assert_eq!(v["totals"]["tests"], 3 + 2653);
    assert_eq!(v["totals"]["failed"], 2);
    let slowest = v["slowest"].as_array().unwrap();
    assert_eq!(slowest.len(), 3);
    let d: Vec<f64> = slowest
        .iter()
        .map(|c| c["duration_secs"].as_f64().unwrap())
        .collect();
    assert!(d.windows(2).all(|w| w[0] >= w[1]), "{d:?}");
    let failures = v["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0]["name"], "test_failure_assert");
    assert_eq!(failures[0]["file"], "tests/basic.rs");
}

#[test]
fn unreadable_file_exits_2_names_it_and_still_reports_the_others() {
    let good = fixture("mikepenz-catch2-report.xml");
    let bad = fixture("enricomi-pytest-corrupt-xml.xml");
    let out = testexec(&["junit", "--format", "json", &bad, &good]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("enricomi-pytest-corrupt-xml.xml") && stderr.contains("truncated"),
        "{stderr}"
    );
    let v = json(&out);
    assert_eq!(v["unreadable"], 1);
    assert_eq!(v["reports"][0]["ok"], false);
    assert_eq!(v["reports"][0]["error"]["kind"], "truncated");
    assert_eq!(v["reports"][1]["ok"], true);
    assert_eq!(v["totals"]["tests"], 1);
}

#[test]
fn missing_file_and_xxe_exit_2() {
    let out = testexec(&[
        "junit",
        "/nonexistent/report.xml",
        &fixture("jenkins-testXxe-xxe.xml"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/report.xml"), "{stderr}");
    assert!(stderr.contains("DOCTYPE"), "{stderr}");
}

/// `testexec junit` on a FIFO answers at once (exit 2, the FIFO named)
/// instead of waiting for a writer that may never come; the other
/// reports are still summarised.
#[test]
fn a_fifo_is_refused_and_the_others_still_reported() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("results.xml");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo")
            .success()
    );
    let good = fixture("dorny-jest-junit.xml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args(["junit", "--format", "json", fifo.to_str().unwrap(), &good])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run testexec");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("testexec junit is still reading the FIFO after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["reports"][0]["error"]["kind"], "not_a_file");
    assert_eq!(v["reports"][1]["counts"]["tests"], 6);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("results.xml"), "{stderr}");
    assert!(stderr.contains("FIFO"), "{stderr}");
}

#[test]
fn no_files_is_a_usage_error() {
    let out = testexec(&["junit"]);
    assert_eq!(out.status.code(), Some(2));
    let help = testexec(&["junit", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--slowest"));
}
