//! `testexec serve` killed mid-run (SIGKILL: no cleanup at all) and started
//! again on the same state directory finishes the run it had in flight:
//! the shard job its workers held comes back from the durable local queue
//! at start, runs again, and the run ends with exact counts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Hangs on its first execution (recording its pid), passes afterwards.
const ONCE_HANGS: &str = r#"
import os, sys, time
marker = sys.argv[2]
if not os.path.exists(marker):
    open(marker, "w").write(str(os.getpid()))
    time.sleep(600)
open(sys.argv[1], "w").write('<testsuite name="s"><testcase classname="s" name="a"/><testcase classname="s" name="b"/></testsuite>')
"#;

struct Serve(Child, String, std::sync::Arc<std::sync::Mutex<String>>);

impl Serve {
    fn start(repo: &Path, state: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_testexec"))
            .arg("serve")
            .arg(repo)
            .args(["--port", "0", "--jobs", "1", "--state-dir"])
            .arg(state)
            .env_remove("TESTEXEC_API_TOKEN")
            .env_remove("PORT")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("serving on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("serve started");
        Serve(child, url, log)
    }

    fn log(&self) -> String {
        self.2.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

    let first = Serve::start(&repo, &state);
    let accepted: Value = http
        .post(format!("{}/runs", first.1))
        .json(&json!({ "repo": "restart-repo" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = accepted["run_id"].as_str().expect("a run id").to_string();
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

    let second = Serve::start(&repo, &state);
    // Generous: a loaded 2-core CI machine runs many tests beside this one.
    let deadline = Instant::now() + Duration::from_secs(240);
    let done = loop {
        let r: Value = http
            .get(format!("{}/runs/{run_id}", second.1))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["run"]["status"] == "passed"
            || r["run"]["status"] == "failed"
            || r["run"]["status"] == "errored"
        {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not finish after the restart: {r:#}\nserve's log:\n{}",
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
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
    let mut serve = Serve::start(&repo, &tmp.path().join("state"));
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &serve.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = serve.0.try_wait().unwrap() {
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
