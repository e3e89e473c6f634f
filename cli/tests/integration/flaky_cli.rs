//! `testexec flaky` through the real binary: two local runs of the fake
//! suite write history, and the command lists what report classified.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use testexec::testkit::fake_suite;

fn testexec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args(args)
        .output()
        .expect("run testexec")
}

fn flaky_json(repo: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["flaky", repo.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = testexec(&args);
    assert!(
        out.status.success(),
        "testexec flaky failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn flaky_lists_what_the_history_classified() {
    let repo = fake_suite::repo(
        &[("tests/a.txt", "steady pass\nwobbly flaky\nbad fail\n")],
        1,
        1,
        60,
    );
    let path = repo.path().to_str().unwrap();
    // No runs yet: nothing to show, and that is not an error.
    assert!(flaky_json(repo.path(), &[]).is_empty());
    for _ in 0..2 {
        let out = testexec(&["run", path]);
        assert_eq!(out.status.code(), Some(1), "bad fails the run");
    }
    // wobbly passed on retry (flaky); bad failed twice (not yet broken);
    // steady is healthy.
    let rows = flaky_json(repo.path(), &[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["id"], "tests.a::wobbly");
    assert_eq!(rows[0]["class"], "flaky");
    assert_eq!(rows[0]["recent"], "MM");
    assert_eq!(rows[0]["runs"], 2);
    let all = flaky_json(repo.path(), &["--all"]);
    let classes: Vec<(&str, &str)> = all
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["class"].as_str().unwrap()))
        .collect();
    assert_eq!(
        classes,
        [
            ("tests.a::wobbly", "flaky"),
            ("tests.a::bad", "healthy"),
            ("tests.a::steady", "healthy"),
        ]
    );
    assert_eq!(all[1]["failures"], 2);
    let table = testexec(&["flaky", path]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("3 tests with history, 1 shown"), "{text}");
    assert!(text.contains("tests.a::wobbly"), "{text}");
}

#[test]
fn flaky_without_a_manifest_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = testexec(&["flaky", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("testexec.toml"), "{err}");
}
