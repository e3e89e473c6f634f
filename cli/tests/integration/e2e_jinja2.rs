//! End to end on a real third-party suite: jinja2 3.1.6's own tests, run by
//! `testexec run` in shards, compared with plain pytest on the same tree.
//!
//! Needs what `scripts/test-deps.sh` prepares (the unpacked sdist and two
//! venvs, with and without trio). Without it the tests say so and pass,
//! unless `TESTEXEC_REQUIRE_E2E=1` (as `scripts/test.sh` sets), when they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use testexec::adapters::local::QueueConfig;
use testexec::app::handlers::trigger::TriggerOutcome;
use testexec::app::messages::QueueName;
use testexec::app::messages::RunRequest;
use testexec::app::pipeline::LocalPipeline;
use testexec::app::ports::{NoNotifier, QueueConsumer};
use testexec::domain::model::{Counts, RunStatus, ShardStatus};
use testexec::testkit::emulators;

const JINJA2_PASSED: u64 = 909;

struct Env {
    jinja2: PathBuf,
    python_bin: PathBuf,
    python_notrio_bin: PathBuf,
}

fn env() -> Option<Env> {
    let get = |k: &str| std::env::var_os(k).map(PathBuf::from);
    match (
        get("TESTEXEC_TEST_JINJA2_DIR"),
        get("TESTEXEC_TEST_PYTHON_BIN"),
        get("TESTEXEC_TEST_PYTHON_NOTRIO_BIN"),
    ) {
        (Some(jinja2), Some(python_bin), Some(python_notrio_bin)) if jinja2.is_dir() => Some(Env {
            jinja2,
            python_bin,
            python_notrio_bin,
        }),
        _ => emulators::skip(
            "the jinja2 end-to-end inputs are missing: run scripts/test-deps.sh (scripts/test.sh does)",
        ),
    }
}

const MANIFEST: &str = r#"[suites.jinja2]
command = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml={junit}", "{files}"]
files = ["tests/test_*.py"]
shards = 3
timeout_seconds = 600
"#;

/// A private copy of the jinja2 tree with our manifest.
fn checkout(env: &Env) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", env.jinja2.display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(dir.path().join("testexec.toml"), MANIFEST).unwrap();
    dir
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `testexec run --json`: (exit code, run JSON, shards JSON, plan JSON).
fn testexec_run(
    repo: &Path,
    state: &Path,
    bin: &Path,
    shards: u32,
) -> (i32, serde_json::Value, serde_json::Value, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args([
            "run",
            "--json",
            "--shards",
            &shards.to_string(),
            "--state-dir",
        ])
        .arg(state)
        .arg(repo)
        .env("PATH", path_with(bin))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "run JSON: {e}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code().unwrap_or(-1),
        json["run"].clone(),
        json["shards"].clone(),
        json["plan"].clone(),
    )
}

fn counts(run: &serde_json::Value) -> Counts {
    serde_json::from_value(run["counts"].clone()).unwrap()
}

/// Counts of a report read back with our own reader.
fn junit_counts(path: &Path) -> (Counts, usize) {
    let report = testexec::domain::junit::read_file(path).unwrap();
    let mut keys: Vec<String> = report.cases.iter().map(|c| c.key()).collect();
    keys.sort();
    keys.dedup();
    (report.counts, keys.len())
}

fn merged_junit(state: &Path, run: &serde_json::Value) -> PathBuf {
    state
        .join("blobs/runs")
        .join(run["id"].as_str().unwrap())
        .join("report/junit.xml")
}

#[test]
fn sharded_totals_equal_plain_pytest_and_each_test_appears_once() {
    let Some(env) = env() else { return };
    // Plain pytest on the same tree, as a user would run it.
    let plain = checkout(&env);
    let plain_junit = plain.path().join("plain-junit.xml");
    let status = Command::new("python")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(format!("--junitxml={}", plain_junit.display()))
        .arg("tests")
        .current_dir(plain.path())
        .env("PATH", path_with(&env.python_bin))
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "plain pytest failed: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    let (plain_counts, _) = junit_counts(&plain_junit);
    assert_eq!(
        plain_counts.passed, JINJA2_PASSED,
        "jinja2 3.1.6 has {JINJA2_PASSED} passing tests"
    );

    let repo = checkout(&env);
    let state = tempfile::tempdir().unwrap();
    let (code, run, shards, _) = testexec_run(repo.path(), state.path(), &env.python_bin, 3);
    assert_eq!(code, 0, "{run}");
    assert_eq!(run["status"], "passed");
    assert_eq!(run["shard_count"], 3);
    assert_eq!(
        counts(&run),
        plain_counts,
        "sharded totals equal plain pytest"
    );
    assert_eq!(shards.as_array().unwrap().len(), 3);

    let (merged, unique) = junit_counts(&merged_junit(state.path(), &run));
    assert_eq!(merged, plain_counts, "merged junit.xml totals");
    assert_eq!(
        unique as u64, merged.tests,
        "each test exactly once in the merged junit.xml"
    );
}

/// jinja2 at 8 shards: `test_api.py`-sized files are longer than the ideal
/// shard, so once a run has recorded per-test times the second run splits
/// them into groups of pytest node ids, plus one group that runs the rest
/// of the file with `--deselect`. Totals equal plain pytest, and every test
/// appears exactly once.
#[test]
fn a_split_by_test_run_equals_plain_pytest() {
    let Some(env) = env() else { return };
    let repo = checkout(&env);
    std::fs::write(
        repo.path().join("testexec.toml"),
        r#"[suites.jinja2]
command = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1", "--junitxml={junit}", "{files}", "{tests}", "{skip_tests}"]
files = ["tests/test_*.py"]
shards = 8
split_by_test = true
timeout_seconds = 600
"#,
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let (code, first, _, _) = testexec_run(repo.path(), state.path(), &env.python_bin, 8);
    assert_eq!(code, 0, "{first}");
    let (code, run, shards, plan) = testexec_run(repo.path(), state.path(), &env.python_bin, 8);
    assert_eq!(code, 0, "{run}");
    let groups = plan["shards"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["units"].as_array().unwrap().iter())
        .filter(|u| u["kind"] == "tests")
        .count();
    assert!(groups >= 2, "some file was split: {plan}");
    assert_eq!(counts(&run).passed, JINJA2_PASSED, "{run}");
    assert_eq!(counts(&run), counts(&first), "same totals split or not");
    let (merged, unique) = junit_counts(&merged_junit(state.path(), &run));
    assert_eq!(merged, counts(&first));
    assert_eq!(unique as u64, merged.tests, "each test exactly once");
    assert!(
        shards
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "passed"),
        "{shards}"
    );
}

#[test]
fn a_failing_test_fails_the_run_with_exact_counts() {
    let Some(env) = env() else { return };
    let repo = checkout(&env);
    let test_file = repo.path().join("tests/test_api.py");
    let mut source = std::fs::read_to_string(&test_file).unwrap();
    source.push_str("\n\ndef test_testexec_injected_failure():\n    assert 1 + 1 == 3, 'injected by testexec e2e'\n");
    std::fs::write(&test_file, source).unwrap();
    let state = tempfile::tempdir().unwrap();
    let (code, run, _, _) = testexec_run(repo.path(), state.path(), &env.python_bin, 3);
    assert_eq!(code, 1, "exit 1 when tests fail: {run}");
    assert_eq!(run["status"], "failed");
    let c = counts(&run);
    assert_eq!((c.passed, c.failed, c.errors), (JINJA2_PASSED, 1, 0));
    let report = state
        .path()
        .join("blobs/runs")
        .join(run["id"].as_str().unwrap())
        .join("report");
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    // Markdown escapes the underscores of the name.
    assert!(
        summary.contains(r"test\_testexec\_injected\_failure"),
        "{summary}"
    );
    assert!(summary.contains("injected by testexec e2e"));
    let ctrf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    let failed: Vec<_> = ctrf["results"]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0]["name"].as_str().unwrap().rsplit("::").next(),
        Some("test_testexec_injected_failure")
    );
}

#[test]
fn without_trio_the_shards_that_cannot_collect_are_errored_not_passed() {
    let Some(env) = env() else { return };
    let repo = checkout(&env);
    let state = tempfile::tempdir().unwrap();
    let (code, run, shards, _) = testexec_run(repo.path(), state.path(), &env.python_notrio_bin, 3);
    assert_eq!(code, 2, "errored runs exit 2: {run}");
    assert_eq!(run["status"], "errored");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains("exited with 2"),
        "pytest's 'interrupted' exit is named: {error}"
    );
    let shards = shards.as_array().unwrap();
    let errored: Vec<_> = shards.iter().filter(|s| s["status"] == "errored").collect();
    assert!(
        !errored.is_empty() && errored.len() < shards.len(),
        "only the shards with async tests error: {shards:?}"
    );
    // The collection errors are kept as data, never as "0 tests, passed".
    for shard in &errored {
        assert!(shard["counts"]["errors"].as_u64().unwrap() >= 1, "{shard}");
    }
    assert!(
        counts(&run).passed > 0,
        "the other shards' results are kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_mid_shard_is_redelivered_and_the_run_completes() {
    let Some(env) = env() else { return };
    // SAFETY: nextest runs each test in its own process; nothing else reads
    // PATH concurrently here. Test commands inherit PATH from this process.
    unsafe { std::env::set_var("PATH", path_with(&env.python_bin)) };
    let repo = checkout(&env);
    let state = tempfile::tempdir().unwrap();
    let config = QueueConfig {
        visibility_timeout: Duration::from_secs(4),
        max_receives: 5,
    };
    let pipeline = LocalPipeline::open_with(state.path(), Arc::new(NoNotifier), config).unwrap();
    let mut request = RunRequest::local(repo.path());
    request.shards = Some(3);
    let TriggerOutcome::Started { run, .. } = pipeline.trigger(request).await.unwrap() else {
        panic!("not started")
    };

    // A worker takes the first shard, starts pytest and dies mid-shard: its
    // task is aborted (the process group is killed) and it never acks.
    let doomed = pipeline
        .queue
        .receive(QueueName::Shards, Duration::ZERO)
        .await
        .unwrap()
        .expect("a shard job");
    let victim = doomed.body.clone();
    let killed = {
        let pipeline = pipeline.clone();
        tokio::spawn(async move {
            pipeline
                .handle(QueueName::Shards, &victim, doomed.attempt)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    killed.abort();
    assert!(
        killed.await.unwrap_err().is_cancelled(),
        "the executor was killed before it finished"
    );

    let workers = pipeline.spawn_workers(2);
    let done = tokio::time::timeout(Duration::from_secs(300), pipeline.wait_for(run.id))
        .await
        .unwrap()
        .unwrap();
    for w in workers {
        w.abort();
    }
    assert_eq!(done.status, RunStatus::Passed, "{done:?}");
    assert_eq!(done.counts.passed, JINJA2_PASSED);
    assert_eq!(done.counts.tests, JINJA2_PASSED);
    let shards = pipeline.ports.store.list_shards(run.id).await.unwrap();
    assert!(shards.iter().all(|s| s.status == ShardStatus::Passed));
    assert!(
        shards.iter().any(|s| s.attempt == Some(2)),
        "the killed shard ran again on redelivery: {shards:?}"
    );
}
