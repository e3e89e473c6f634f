//! End-to-end tests of `testexec plan` through the real binary.
//!
//! `write_manifest` is the only place that knows the `testexec.toml` schema
//! (docs/manifest.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn testexec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args(args)
        .output()
        .expect("run testexec")
}

fn fixture(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
        .join("junit")
        .join(name);
    root.to_string_lossy().into_owned()
}

fn write_manifest(root: &Path, shards: u32) {
    std::fs::write(
        root.join("testexec.toml"),
        format!(
            "[suites.unit]\ncommand = [\"python\", \"-m\", \"pytest\", \"--junitxml={{junit}}\", \"{{files}}\"]\nfiles = [\"tests/**/test_*.py\"]\nshards = {shards}\n"
        ),
    )
    .unwrap();
}

/// A repository with `n` test files under tests/.
fn repo(n: usize, shards: u32) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tests/sub")).unwrap();
    let mut files = Vec::new();
    for i in 0..n {
        let rel = if i % 2 == 0 {
            format!("tests/test_{i:02}.py")
        } else {
            format!("tests/sub/test_{i:02}.py")
        };
        std::fs::write(dir.path().join(&rel), "def test_x(): pass\n").unwrap();
        files.push(rel);
    }
    write_manifest(dir.path(), shards);
    (dir, files)
}

fn write_history(dir: &Path, files: &[String]) -> PathBuf {
    let entries: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, f)| format!("\"{f}\": {}", (i % 5 + 1) as f64))
        .collect();
    let path = dir.join("history.json");
    std::fs::write(
        &path,
        format!("{{\"version\":1,\"files\":{{{}}}}}", entries.join(",")),
    )
    .unwrap();
    path
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("plan JSON")
}

#[test]
fn plans_the_suites_files_with_history_as_json() {
    let (dir, files) = repo(12, 3);
    let history = write_history(dir.path(), &files);
    let root = dir.path().to_str().unwrap();
    let out = testexec(&[
        "plan",
        root,
        "--suite",
        "unit",
        "--timings",
        history.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let plan = stdout_json(&out);
    let shards = plan["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3, "the suite's shards = 3");
    let mut planned: Vec<String> = shards
        .iter()
        .flat_map(|s| s["units"].as_array().unwrap())
        .map(|u| u["path"].as_str().unwrap().to_string())
        .collect();
    planned.sort();
    let mut want = files.clone();
    want.sort();
    assert_eq!(planned, want);
    assert_eq!(plan["known_share"], 1.0);
    // 12 files of 1..5 s (total 34): a perfect split is within 1 s of 34/3.
    let makespan = plan["estimated_makespan_secs"].as_f64().unwrap();
    assert!(makespan <= 12.0, "{makespan}");
}

#[test]
fn shards_flag_overrides_the_manifest_and_text_output_summarises() {
    let (dir, _) = repo(6, 3);
    let out = testexec(&[
        "plan",
        dir.path().to_str().unwrap(),
        "--suite",
        "unit",
        "--shards",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("6 files into 2 shards"), "{text}");
    assert!(
        text.contains("makespan 3.0 s, lower bound 3.0 s, ratio 1.000"),
        "{text}"
    );
    assert!(text.contains("default, no history"), "{text}");
}

#[test]
fn more_shards_than_files_is_reduced_and_said() {
    let (dir, _) = repo(2, 3);
    let out = testexec(&[
        "plan",
        dir.path().to_str().unwrap(),
        "--suite",
        "unit",
        "--shards",
        "50",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(
        text.contains("2 files into 2 shards (requested 50)"),
        "{text}"
    );
    assert!(text.contains("note:"), "{text}");
}

#[test]
fn junit_reports_feed_timings() {
    let out = testexec(&[
        "plan",
        "--from-timings",
        "--timings",
        &fixture("dorny-jest-test-results.xml"),
        "--shards",
        "4",
        "--format",
        "json",
    ]);
    let plan = stdout_json(&out);
    assert_eq!(plan["shards"].as_array().unwrap().len(), 4);
    assert_eq!(plan["known_share"], 1.0);
    let ratio = plan["estimated_makespan_secs"].as_f64().unwrap()
        / plan["lower_bound_secs"].as_f64().unwrap();
    assert!(ratio <= 1.03, "ratio {ratio}");
}

#[test]
fn missing_manifest_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = testexec(&["plan", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("testexec.toml"), "{err}");
}

#[test]
fn bad_timings_exit_2_naming_the_source() {
    let (dir, _) = repo(3, 2);
    let bad = dir.path().join("timings.json");
    std::fs::write(&bad, "{\"version\": 7}").unwrap();
    let out = testexec(&[
        "plan",
        dir.path().to_str().unwrap(),
        "--suite",
        "unit",
        "--timings",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("timings.json") && err.contains("version 7"),
        "{err}"
    );

    let odd = dir.path().join("timings.csv");
    std::fs::write(&odd, "a,1").unwrap();
    let out = testexec(&[
        "plan",
        dir.path().to_str().unwrap(),
        "--suite",
        "unit",
        "--timings",
        odd.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(".xml"));
}

#[test]
fn unknown_suite_and_zero_shards_exit_2() {
    let (dir, _) = repo(3, 2);
    let root = dir.path().to_str().unwrap();
    let out = testexec(&["plan", root, "--suite", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = testexec(&["plan", root, "--suite", "unit", "--shards", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard"));
}

#[test]
fn timings_that_match_no_file_warn_on_stderr() {
    let (dir, _) = repo(3, 2);
    let history = write_history(dir.path(), &["elsewhere/test_a.py".to_string()]);
    let out = testexec(&[
        "plan",
        dir.path().to_str().unwrap(),
        "--suite",
        "unit",
        "--timings",
        history.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("none of the 3 listed files appear in the timings"),
        "{err}"
    );
}
