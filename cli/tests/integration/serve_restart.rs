//! `testexec serve` killed mid-run (SIGKILL: no cleanup at all) and started
//! again on the same state directory finishes the run it had in flight:
//! the shard job its workers held comes back from the durable local queue
//! at start, runs again, and the run ends with exact counts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::support::Serve;

/// Hangs on its first execution (recording its pid), passes afterwards.
const ONCE_HANGS: &str = r#"
import os, sys, time
marker = sys.argv[2]
if not os.path.exists(marker):
    open(marker, "w").write(str(os.getpid()))
    time.sleep(600)
open(sys.argv[1], "w").write('<testsuite name="s"><testcase classname="s" name="a"/><testcase classname="s" name="b"/></testsuite>')
"#;

fn start_serve(repo: &Path, state: &Path) -> Serve {
    Serve::spawn(|cmd| {
        cmd.arg(repo)
            .args(["--jobs", "1", "--state-dir"])
            .arg(state);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_flight_when_serve_was_killed_finishes_after_the_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("restart-repo");
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(repo.join("once.py"), ONCE_HANGS).unwrap();
    std::fs::write(repo.join("tests/a.txt"), "").unwrap();
    let marker = tmp.path().join("hung.pid");
    std::fs::write(
        repo.join("testexec.toml"),
        format!(
            "[suites.s]\ncommand = [\"python3\", \"once.py\", \"{{junit}}\", {:?}]\nfiles = [\"tests/*.txt\"]\ntimeout_seconds = 600\n",
            marker.display().to_string()
        ),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let http = reqwest::Client::new();

    let first = start_serve(&repo, &state);
    let run_id = crate::support::post_run(&http, &first, json!({ "repo": "restart-repo" })).await;
    // The shard is running (and hangs) when serve dies.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the shard never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(first); // SIGKILL
    // The orphaned test process would hang forever; end it as an operator would.
    if let Ok(pid) = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse::<i32>()
    {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }

    let second = start_serve(&repo, &state);
    // Generous: a loaded 2-core CI machine runs many tests beside this one.
    let done =
        crate::support::wait_run_final(&http, &second, &run_id, Duration::from_secs(240)).await;
    assert_eq!(done["run"]["status"], "passed", "{done:#}");
    assert_eq!(done["run"]["counts"]["tests"], 2, "{done:#}");
    assert_eq!(
        done["shards"][0]["attempt"], 2,
        "the job came back once: {done:#}"
    );
}

#[test]
fn sigterm_stops_serve_within_cloud_runs_ten_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let mut serve = start_serve(&repo, &tmp.path().join("state"));
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = serve.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "serve still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?} after {:?}", sent.elapsed());
}
