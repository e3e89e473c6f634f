//! End to end on Google's emulators, the way Cloud Run runs testexec
//! (docs/deploy-gcp.md): one `testexec serve --backend gcp --jobs 0
//! --queue-push` process takes `POST /runs` and, as real Pub/Sub push
//! subscriptions on the emulator deliver them, the trigger, collect and
//! report jobs at `POST /queues/{queue}`; shard jobs are pulled by
//! `testexec worker --queue execute --once` processes (the worker pool,
//! which renews its leases: a shard may outlive any push deadline). All
//! over the Pub/Sub and Firestore emulators and fake-gcs-server.
//!
//! One shard message is delivered twice and one worker is killed mid-shard,
//! so its message comes back after the lease; the run must still end with
//! exact counts and its reports in Cloud Storage.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testexec::adapters::gcp::{GcpBackends, GcpSettings, env, resources};
use testexec::app::messages::QueueName;
use testexec::app::ports::RunStore;
use testexec::testkit::emulators;

use super::support::{Serve, assert_e2e_run_ended_exactly, duplicate_a_shard_job, e2e_repo};

/// The variables a Cloud Run service sets (the emulators' own variables
/// are inherited).
fn service_env(settings: &GcpSettings) -> Vec<(&'static str, String)> {
    vec![
        (env::PROJECT, settings.project.clone()),
        (env::BUCKET, settings.bucket.clone()),
        (env::PUBSUB_PREFIX, settings.pubsub_prefix.clone()),
        (env::FIRESTORE_PREFIX, settings.firestore_prefix.clone()),
        (
            env::PUBSUB_VISIBILITY_SECS,
            settings.pubsub.visibility.as_secs().to_string(),
        ),
    ]
}

fn execute_worker(env: &[(&'static str, String)], state: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_testexec"));
    cmd.args([
        "worker",
        "--queue",
        "execute",
        "--once",
        "--wait",
        "1",
        "--backend",
        "gcp",
    ])
    .arg("--state-dir")
    .arg(state)
    .env_remove("TESTEXEC_BACKEND")
    .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd
}

fn run_once(env: &[(&'static str, String)], state: &std::path::Path) -> Output {
    let out = execute_worker(env, state)
        .output()
        .expect("running testexec worker");
    assert!(
        out.status.success(),
        "worker --queue execute: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Turns `queue`'s pull subscription into a push subscription to
/// `endpoint`, with the same dead-letter policy, as `gcp-cloudrun/deploy.sh`
/// creates it (through the emulator's REST API: the Pub/Sub port has no
/// push setting, it is deployment).
async fn push_to(http: &reqwest::Client, settings: &GcpSettings, queue: QueueName, endpoint: &str) {
    let host = settings.pubsub_emulator.as_deref().unwrap();
    let project = &settings.project;
    let names = resources(&settings.pubsub_prefix, queue).unwrap();
    let url = format!(
        "http://{host}/v1/projects/{project}/subscriptions/{}",
        names.subscription
    );
    let deleted = http.delete(&url).send().await.unwrap();
    assert!(deleted.status().is_success(), "{:?}", deleted.text().await);
    let created = http
        .put(&url)
        .json(&serde_json::json!({
            "topic": format!("projects/{project}/topics/{}", names.topic),
            "pushConfig": {"pushEndpoint": endpoint},
            "ackDeadlineSeconds": 60,
            "deadLetterPolicy": {
                "deadLetterTopic": format!("projects/{project}/topics/{}", names.dead_letter_topic),
                "maxDeliveryAttempts": 5,
            },
        }))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{:?}", created.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_through_pubsub_push_and_pull_workers_on_the_emulators() {
    // 2 s leases on pulled shards: a killed worker's message is back soon.
    let Some(settings) = emulators::gcp(Duration::from_secs(2)) else {
        return;
    };
    let backends = GcpBackends::provision(&settings)
        .await
        .expect("provisioning on the emulators");
    let env = service_env(&settings);
    let repo = e2e_repo();
    let state = tempfile::tempdir().unwrap();
    let serve = Serve::spawn(|cmd| {
        cmd.args(["--backend", "gcp", "--jobs", "0", "--queue-push"])
            .arg("--repo")
            .arg(format!("demo={}", repo.path().display()))
            .arg("--state-dir")
            .arg(state.path().join("serve"))
            .env_remove("TESTEXEC_BACKEND")
            .env_remove(env::PUSH_AUDIENCE)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    });
    let http = reqwest::Client::new();
    for (queue, function) in [
        (QueueName::Requests, "trigger"),
        (QueueName::Results, "collect"),
        (QueueName::Reports, "report"),
    ] {
        push_to(
            &http,
            &settings,
            queue,
            &format!("{}/queues/{function}", serve.url),
        )
        .await;
    }

    // The front door queues the request and answers at once; Pub/Sub
    // pushes the trigger job back to it, which plans three shards.
    let run_id = serve
        .post_run(&http, serde_json::json!({"repo": "demo", "shards": 3}))
        .await;
    let planned = Instant::now() + Duration::from_secs(60);
    let run = loop {
        if let Some(run) = backends.store.get_run(run_id).await.unwrap() {
            break run;
        }
        assert!(
            Instant::now() < planned,
            "the trigger job was never pushed:\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run.shard_count, 3);

    duplicate_a_shard_job(backends.queue.as_ref()).await;

    // A worker killed mid-shard, 1.5 s into a 3 s shard: its message comes
    // back after the 2 s lease it can no longer renew.
    let work = state.path().join("worker");
    let mut victim = execute_worker(&env, &work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    victim.kill().unwrap();
    victim.wait().unwrap();

    // The worker pool, until the run is final; collect and report arrive
    // at serve by push.
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        assert!(
            Instant::now() < deadline,
            "run not final in time:\n{}",
            serve.log()
        );
        run_once(&env, &work);
        let run = backends.store.get_run(run_id).await.unwrap().unwrap();
        if run.status.is_final() {
            break run;
        }
    };
    assert_e2e_run_ended_exactly(backends.store.as_ref(), backends.blobs.as_ref(), &done).await;
    // The shard jobs still queued (the duplicate's other copy, the killed
    // worker's message) run too; their results reach collect by push and
    // are ignored: the final counts do not move.
    let drained = Instant::now() + Duration::from_secs(60);
    while !serve.log().contains("duplicate shard result ignored") {
        assert!(
            Instant::now() < drained,
            "collect never saw the duplicate:\n{}",
            serve.log()
        );
        let out = run_once(&env, &work);
        if String::from_utf8_lossy(&out.stderr).contains(" 0 job(s) taken") {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let after = backends.store.get_run(run_id).await.unwrap().unwrap();
    assert_eq!(
        after.counts, done.counts,
        "a late duplicate changed the run"
    );
    let got: serde_json::Value = http
        .get(format!("{}/runs/{run_id}", serve.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["run"]["status"], "failed", "{got}");
}
