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
use testexec::app::ports::{QueueConsumer, RunStore};
use testexec::testkit::emulators;

use super::support::{Serve, assert_e2e_run_ended_exactly, duplicate_a_shard_job, e2e_repo};

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
    let repo = e2e_repo();
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
    let run_id = serve
        .post_run(&http, serde_json::json!({"repo": "demo", "shards": 3}))
        .await;

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

    duplicate_a_shard_job(backends.queue.as_ref()).await;

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
    assert_e2e_run_ended_exactly(backends.store.as_ref(), backends.blobs.as_ref(), &done).await;
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
        backends.queue.is_idle().await.unwrap(),
        "every message handled and acked"
    );
}
