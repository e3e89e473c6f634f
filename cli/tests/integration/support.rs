//! What several CLI tests need: a `testexec serve` child process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `testexec serve` child; killed when dropped, so a failing assertion
/// leaves no process behind.
pub struct Serve {
    pub child: Child,
    /// `http://127.0.0.1:<port>`, from the server's own "serving on" line
    /// (port 0: no race for a free port).
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl Serve {
    /// `testexec serve <args>` as `configure` sets it up (arguments, the
    /// environment); stderr is kept for failure messages.
    pub fn spawn(configure: impl FnOnce(&mut Command)) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_testexec"));
        command
            .arg("serve")
            .args(["--port", "0"])
            .env_remove("PORT")
            .env_remove("TESTEXEC_API_TOKEN")
            .env("RUST_LOG", "info");
        configure(&mut command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning testexec serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("serving on ").nth(1) {
                        let url = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(url);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "testexec serve did not start:\n{}",
                    log.lock().unwrap().as_str()
                );
            }
        };
        Serve { child, url, log }
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// `POST /runs` with `body`, which must be answered 202: the run id.
    pub async fn post_run(
        &self,
        http: &reqwest::Client,
        body: serde_json::Value,
    ) -> testexec::domain::model::RunId {
        let rsp = http
            .post(format!("{}/runs", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(rsp.status().as_u16(), 202, "{}", self.log());
        let answer: serde_json::Value = rsp.json().await.unwrap();
        answer["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no run id in {answer}"))
            .parse()
            .unwrap()
    }
}

/// The cloud end-to-end suites' run: the files of [`e2e_repo`].
pub const E2E_FILES: [(&str, &str); 3] = [
    // Every shard takes 3 s (a `hang` case passes after its sleep), so a
    // worker killed 1.5 s in is always mid-shard.
    ("tests/a.txt", "a1 hang 3\na2 fail\n"),
    ("tests/b.txt", "b1 hang 3\nb2 skip\n"),
    ("tests/c.txt", "c1 hang 3\n"),
];

/// A repository whose run has 3 shards of 3 s and ends failed with 5 tests.
pub fn e2e_repo() -> tempfile::TempDir {
    testexec::testkit::fake_suite::repo(&E2E_FILES, 3, 0, 60)
}

/// One shard message delivered twice: takes one and puts its body back
/// twice (what a redelivery after a lost ack looks like).
pub async fn duplicate_a_shard_job<Q>(queue: &Q)
where
    Q: testexec::app::ports::JobQueue + testexec::app::ports::QueueConsumer + ?Sized,
{
    use testexec::app::messages::QueueName;
    let m = queue
        .receive(QueueName::Shards, Duration::from_secs(10))
        .await
        .unwrap()
        .expect("a shard job");
    queue
        .send_batch(QueueName::Shards, vec![m.body.clone(), m.body.clone()])
        .await
        .unwrap();
    queue.ack(QueueName::Shards, &m.handle).await.unwrap();
}

/// What an [`e2e_repo`] run must end as, whatever the backends and however
/// often its jobs were delivered: failed, each test counted once, every
/// shard done, the killed worker's shard run again, the reports stored.
pub async fn assert_e2e_run_ended_exactly(
    store: &dyn testexec::app::ports::RunStore,
    blobs: &dyn testexec::app::ports::BlobStore,
    run: &testexec::domain::model::Run,
) {
    use testexec::domain::model::RunStatus;
    assert_eq!(run.status, RunStatus::Failed, "{:?}", run.error);
    let c = &run.counts;
    assert_eq!(
        (c.tests, c.passed, c.failed, c.skipped),
        (5, 3, 1, 1),
        "each test counted once: {c:?}"
    );
    assert_eq!(run.shards_done, 3);
    let shards = store.list_shards(run.id).await.unwrap();
    assert!(
        shards.iter().any(|s| s.attempt.unwrap_or(0) >= 2),
        "the killed worker's shard ran again on a later delivery: {shards:?}"
    );
    let reports = blobs
        .list(&format!("runs/{}/report/", run.id))
        .await
        .unwrap();
    for file in ["index.html", "junit.xml", "report.json", "summary.md"] {
        assert!(
            reports.iter().any(|k| k.ends_with(file)),
            "{file} in the blob store: {reports:?}"
        );
    }
}

/// Copies a suite (e.g. examples/demo) without the state and caches of
/// earlier runs in it.
pub fn copy_suite(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        // Local state and caches of earlier demo runs are not part of the suite.
        if name == ".testexec" || name == "__pycache__" || name == ".pytest_cache" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_suite(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `POST /runs` with `body`; the run id of the 202 answer.
pub async fn post_run(http: &reqwest::Client, serve: &Serve, body: Value) -> String {
    serve.post_run(http, body).await.to_string()
}

/// Polls `GET /runs/{id}` until the run is final and returns the answer;
/// fails after `timeout` with the last answer and serve's log.
pub async fn wait_run_final(
    http: &reqwest::Client,
    serve: &Serve,
    run_id: &str,
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let last: Value = match http
            .get(format!("{}/runs/{run_id}", serve.url))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => r.json().await.unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let status = last["run"]["status"].as_str().unwrap_or("");
        if matches!(status, "passed" | "failed" | "errored" | "cancelled") {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} not final after {timeout:?}: {last:#}\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
