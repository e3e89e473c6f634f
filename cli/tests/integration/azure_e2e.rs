//! End to end on azurite, the way Container Apps runs testexec: a
//! `testexec serve --backend azure --jobs 0` front door and separate
//! `testexec worker --queue <handler> --once` processes (what the KEDA jobs
//! start), all over Table Storage, Blob Storage and Storage Queues. One
//! shard message is delivered twice, and one worker is killed mid-shard so
//! its message comes back after the lease; the run must still end with
//! exact counts and its reports in Blob Storage.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testexec::adapters::azure::provision::{emulator_settings, provision, to_env};
use testexec::app::messages::QueueName;
use testexec::app::ports::{BlobStore, JobQueue, QueueConsumer, RunStore};
use testexec::domain::model::{RunId, RunStatus};
use testexec::testkit::{emulators, fake_suite};

use super::support::Serve;

fn worker(env: &[(&'static str, String)], queue: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_testexec"));
    cmd.args([
        "worker",
        "--queue",
        queue,
        "--once",
        "--wait",
        "1",
        "--backend",
        "azure",
    ])
    .env_remove("TESTEXEC_BACKEND")
    .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd
}

fn run_once(env: &[(&'static str, String)], queue: &str, state: &std::path::Path) -> Output {
    let out = worker(env, queue)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("running testexec worker");
    assert!(
        out.status.success(),
        "worker --queue {queue}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn taken(out: &Output) -> bool {
    !String::from_utf8_lossy(&out.stderr).contains(" 0 job(s) taken")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_through_serve_and_worker_processes_on_azurite() {
    let Some(emu) = emulators::azurite() else {
        return;
    };
    // 1 s leases: a killed worker's message is back within a second.
    let settings = emulator_settings(
        &emu,
        &emulators::unique_name("e2e"),
        Duration::from_secs(1),
        5,
    )
    .unwrap();
    let backends = provision(&settings).await.expect("provisioning on azurite");
    let env = to_env(&settings);
    let repo = fake_suite::repo(
        &[
            // Every shard takes 3 s (a `hang` case passes after its
            // sleep), so the worker killed below is always mid-shard.
            ("tests/a.txt", "a1 hang 3\na2 fail\n"),
            ("tests/b.txt", "b1 hang 3\nb2 skip\n"),
            ("tests/c.txt", "c1 hang 3\n"),
        ],
        3,
        0,
        60,
    );
    let state = tempfile::tempdir().unwrap();
    let serve = Serve::spawn(|cmd| {
        cmd.args(["--backend", "azure", "--jobs", "0"])
            .arg("--repo")
            .arg(format!("demo={}", repo.path().display()))
            .arg("--state-dir")
            .arg(state.path().join("serve"))
            .env_remove("TESTEXEC_BACKEND")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    });

    // The front door queues the request and answers at once.
    let http = reqwest::Client::new();
    let rsp = http
        .post(format!("{}/runs", serve.url))
        .json(&serde_json::json!({"repo": "demo", "shards": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status().as_u16(), 202, "{}", serve.log());
    let body: serde_json::Value = rsp.json().await.unwrap();
    let run_id: RunId = body["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run id in {body}"))
        .parse()
        .unwrap();

    // The trigger job plans the run and queues three shard jobs.
    let work = state.path().join("worker");
    assert!(taken(&run_once(&env, "trigger", &work)));
    let run = backends
        .store
        .get_run(run_id)
        .await
        .unwrap()
        .expect("run created");
    assert_eq!(run.shard_count, 3);

    // One shard message delivered twice: take one and put its body back
    // twice (what a redelivery after a lost ack looks like).
    let q = &backends.queue;
    let m = q
        .receive(QueueName::Shards, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a shard job");
    q.send_batch(QueueName::Shards, vec![m.body.clone(), m.body.clone()])
        .await
        .unwrap();
    q.ack(QueueName::Shards, &m.handle).await.unwrap();

    // A worker killed mid-shard, 1.5 s into a 3 s shard: its message comes
    // back after the 1 s lease it can no longer renew.
    let mut victim = worker(&env, "execute")
        .arg("--state-dir")
        .arg(&work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    victim.kill().unwrap();
    victim.wait().unwrap();

    // The jobs KEDA would start, until the run is final.
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        assert!(
            Instant::now() < deadline,
            "run not final in time:\n{}",
            serve.log()
        );
        for queue in ["execute", "collect", "report"] {
            run_once(&env, queue, &work);
        }
        let run = backends.store.get_run(run_id).await.unwrap().unwrap();
        if run.status.is_final() {
            break run;
        }
    };
    assert_eq!(done.status, RunStatus::Failed, "{:?}", done.error);
    assert_eq!(
        (
            done.counts.tests,
            done.counts.passed,
            done.counts.failed,
            done.counts.skipped
        ),
        (5, 3, 1, 1),
        "each test counted once: {:?}",
        done.counts
    );
    assert_eq!(done.shards_done, 3);
    let shards = backends.store.list_shards(run_id).await.unwrap();
    assert!(
        shards.iter().any(|s| s.attempt == Some(2)),
        "the killed worker's shard ran again as attempt 2: {shards:?}"
    );
    let reports = backends
        .blobs
        .list(&format!("runs/{run_id}/report/"))
        .await
        .unwrap();
    for file in ["index.html", "junit.xml", "report.json", "summary.md"] {
        assert!(
            reports.iter().any(|k| k.ends_with(file)),
            "{file} in Blob Storage: {reports:?}"
        );
    }
    // The front door reads the same state.
    let got: serde_json::Value = http
        .get(format!("{}/runs/{run_id}", serve.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["run"]["status"], "failed", "{got}");
    assert!(
        q.is_idle().await.unwrap(),
        "every message handled and acked"
    );
}
