//! `testexec run` finds wildcard JUnit reports wherever it is started from
//! (inside the repository with PATH `.`, or from its parent), and a shard
//! that writes thousands of report files (Maven's one file per class) runs
//! once and counts every test.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Writes `n` Surefire-style reports, one test class (with one test) each.
const WRITE_REPORTS: &str = r#"
import os, sys
n = int(sys.argv[1])
out = os.path.join("target", "surefire-reports")
os.makedirs(out, exist_ok=True)
# Count the executions (outside the scratch copy), so a shard run twice shows.
with open(sys.argv[2], "a") as f:
    f.write("run\n")
for i in range(n):
    with open(os.path.join(out, "TEST-com.example.C%05d.xml" % i), "w") as f:
        f.write('<?xml version="1.0"?><testsuite name="com.example.C%05d" tests="1" failures="0">'
                '<testcase classname="com.example.C%05d" name="works" time="0.001"/></testsuite>' % (i, i))
"#;

fn repo(root: &Path, reports: usize) -> std::path::PathBuf {
    let repo = root.join("repo");
    let log = root.join("executions.log").display().to_string();
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(repo.join("write_reports.py"), WRITE_REPORTS).unwrap();
    std::fs::write(repo.join("tests/a.txt"), "").unwrap();
    // The Maven example's junit glob (docs/manifest.md).
    std::fs::write(
        repo.join("testexec.toml"),
        format!(
            "[suites.maven]\ncommand = [\"python3\", \"write_reports.py\", \"{reports}\", {log:?}]\nfiles = [\"tests/*.txt\"]\njunit = [\"target/surefire-reports/TEST-*.xml\"]\ntimeout_seconds = 600\n"
        ),
    )
    .unwrap();
    repo
}

fn run(cwd: &Path, path: Option<&str>) -> (Option<i32>, Value, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_testexec"));
    cmd.current_dir(cwd).args(["run", "--json", "--jobs", "1"]);
    if let Some(path) = path {
        cmd.arg(path);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, stderr)
}

#[test]
fn wildcard_junit_globs_work_from_inside_the_repository_and_from_its_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path(), 3);
    for (cwd, path) in [
        (repo.as_path(), None),
        (repo.as_path(), Some(".")),
        (tmp.path(), Some("repo")),
    ] {
        let (code, json, stderr) = run(cwd, path);
        assert_eq!(
            code,
            Some(0),
            "from {} with {path:?}: {stderr}",
            cwd.display()
        );
        assert_eq!(json["run"]["counts"]["tests"], 3, "{json:#}");
        assert_eq!(json["run"]["counts"]["passed"], 3, "{json:#}");
    }
}

#[test]
fn five_thousand_report_files_run_once_and_count_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path(), 5000);
    let (code, json, stderr) = run(tmp.path(), Some("repo"));
    assert_eq!(code, Some(0), "{stderr}\n{json:#}");
    assert_eq!(json["run"]["status"], "passed", "{json:#}");
    assert_eq!(json["run"]["counts"]["tests"], 5000, "{json:#}");
    let shards = json["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 1);
    assert_eq!(shards[0]["attempt"], 1, "{json:#}");
    // The command ran exactly once.
    let executions = std::fs::read_to_string(tmp.path().join("executions.log")).unwrap();
    assert_eq!(
        executions.lines().count(),
        1,
        "the shard command ran more than once"
    );
    let _ = repo;
}

/// The Go example in docs/manifest.md has no `files`: the runner finds its
/// own tests, and the suite runs in one shard.
#[test]
fn a_suite_without_files_runs_its_whole_command_in_one_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("all.py"),
        "import sys\nopen(sys.argv[1], 'w').write('<testsuite name=\"pkg\"><testcase classname=\"pkg\" name=\"TestA\"/><testcase classname=\"pkg\" name=\"TestB\"/></testsuite>')\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("testexec.toml"),
        "[suites.go-all]\ncommand = [\"python3\", \"all.py\", \"{junit}\"]\n",
    )
    .unwrap();
    let (code, json, stderr) = run(&repo, None);
    assert_eq!(code, Some(0), "{stderr}\n{json:#}");
    assert_eq!(json["run"]["counts"]["tests"], 2, "{json:#}");
    assert_eq!(json["shards"].as_array().map(Vec::len), Some(1));
}
