//! `testexec worker`: one shard job pulled from a queue and run end to end
//! by the binary, over the local state directory's durable queue, over
//! SQS (moto) and over Pub/Sub (the GCP emulators).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use testexec::app::handlers::trigger::{TriggerOutcome, trigger};
use testexec::app::messages::{QueueName, RunRequest, ShardResult};
use testexec::app::pipeline::LocalPipeline;
use testexec::app::ports::{NoNotifier, QueueConsumer};
use testexec::testkit::fake_suite;

const FILES: &[(&str, &str)] = &[
    ("tests/a.txt", "t1 pass\nt2 fail\n"),
    ("tests/b.txt", "t3 pass\n"),
];

fn worker(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_testexec"));
    cmd.arg("worker").args(args).env_remove("TESTEXEC_BACKEND");
    cmd
}

/// Takes every message waiting on `queue`.
/// Triggers a 2-shard run of the fake suite over a cloud's adapters: its
/// shard jobs then wait in the queue for the worker under test. The
/// repository is returned to live as long as the test.
#[cfg(any(feature = "aws", feature = "gcp"))]
async fn start_run(
    store: Arc<dyn testexec::app::ports::RunStore>,
    blobs: Arc<dyn testexec::app::ports::BlobStore>,
    queue: Arc<dyn testexec::app::ports::JobQueue>,
    work: &std::path::Path,
) -> (testexec::domain::model::Run, tempfile::TempDir) {
    use testexec::adapters::source::LocalDirSource;
    use testexec::app::handlers::{Ports, Settings};
    use testexec::app::ports::SystemClock;

    let ports = Ports {
        store,
        blobs,
        queue,
        source: Arc::new(LocalDirSource::default()),
        notifier: Arc::new(NoNotifier),
        clock: Arc::new(SystemClock),
    };
    let settings = Settings {
        work_root: work.join("trigger"),
        ..Settings::default()
    };
    let repo = fake_suite::repo(FILES, 2, 0, 60);
    match trigger(&ports, &settings, RunRequest::local(repo.path()))
        .await
        .unwrap()
    {
        TriggerOutcome::Started { run, .. } => (*run, repo),
        other => panic!("the run did not start: {other:?}"),
    }
}

async fn drain(consumer: &dyn QueueConsumer, queue: QueueName) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(m) = consumer
        .receive(queue, Duration::from_secs(1))
        .await
        .unwrap()
    {
        consumer.ack(queue, &m.handle).await.unwrap();
        bodies.push(m.body);
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_once_runs_one_shard_job_from_the_local_queue() {
    let repo = fake_suite::repo(FILES, 2, 0, 60);
    let state = tempfile::tempdir().unwrap();
    let pipeline = LocalPipeline::open(state.path(), Arc::new(NoNotifier)).unwrap();
    let TriggerOutcome::Started { run, plan } = trigger(
        &pipeline.ports,
        &pipeline.settings,
        RunRequest::local(repo.path()),
    )
    .await
    .unwrap() else {
        panic!("the run did not start");
    };
    assert_eq!(plan.shards.len(), 2);

    // Another process takes one job from the same state directory.
    // --once returns as soon as it has a job; the wait only bounds a
    // loaded machine's start-up.
    let out = worker(&[
        "--queue",
        "execute",
        "--once",
        "--wait",
        "10",
        "--state-dir",
    ])
    .arg(state.path())
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 job(s) taken from the execute queue"),
        "{stderr}"
    );

    // Exactly one result, for a shard of this run; the other job still waits.
    let results = drain(pipeline.consumer().as_ref(), QueueName::Results).await;
    assert_eq!(results.len(), 1, "{results:?}");
    let result: ShardResult = serde_json::from_str(&results[0]).unwrap();
    assert_eq!(result.shard.run, run.id);
    assert_eq!(
        drain(pipeline.consumer().as_ref(), QueueName::Shards)
            .await
            .len(),
        1
    );

    // --once on an empty queue exits after one wait, having taken nothing.
    let out = worker(&["--queue", "execute", "--once", "--wait", "1", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 job(s) taken"));
}

#[test]
fn worker_refuses_an_unknown_queue_or_backend_by_name() {
    let out = worker(&["--queue", "shardz", "--once"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--queue `shardz`"));
    let out = worker(&["--backend", "nosuch", "--once"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TESTEXEC_BACKEND"));
}

/// `--queue trigger,collect,report`: one process works the three queues
/// (the Kubernetes handlers pod), each to its own `--once` limit; a bad
/// name in the list is refused by name.
#[test]
fn worker_works_several_queues_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let out = worker(&["--queue", "trigger,collect,report", "--once", "--wait", "1"])
        .arg("--state-dir")
        .arg(&state)
        .env_remove("TESTEXEC_METRICS_BIND")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for queue in ["trigger", "collect", "report"] {
        assert!(
            stderr.contains(&format!("0 job(s) taken from the {queue} queue")),
            "{queue}: {stderr}"
        );
    }
    let out = worker(&["--queue", "trigger,shardz", "--once"])
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--queue `shardz`"));
}

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_once_runs_one_shard_job_from_sqs() {
    use testexec::adapters::aws::AwsBackends;
    use testexec::adapters::aws::provision::{self, ProvisionOptions};
    use testexec::testkit::emulators;

    let Some(sdk) = emulators::moto().await else {
        return;
    };
    let settings = provision::provision(
        &sdk,
        &emulators::unique_name("wrk"),
        ProvisionOptions {
            visibility: Duration::from_secs(30),
            max_receives: 3,
            s3_path_style: true,
        },
    )
    .await
    .unwrap();
    let backends = AwsBackends::new(&sdk, &settings);
    let consumer = backends.queue.clone();
    let work = tempfile::tempdir().unwrap();
    let (run, _repo) = start_run(backends.store, backends.blobs, backends.queue, work.path()).await;

    let endpoint = std::env::var("TESTEXEC_TEST_MOTO_ENDPOINT").unwrap();
    let out = worker(&[
        "--backend",
        "aws",
        "--queue",
        "execute",
        "--once",
        "--wait",
        "2",
        "--state-dir",
    ])
    .arg(work.path())
    .envs(provision::to_env(&settings))
    .env("AWS_ENDPOINT_URL", &endpoint)
    .env("AWS_REGION", "us-east-1")
    .env("AWS_ACCESS_KEY_ID", "testing")
    .env("AWS_SECRET_ACCESS_KEY", "testing")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 job(s) taken from the execute queue"),
        "{stderr}"
    );

    let results = drain(consumer.as_ref(), QueueName::Results).await;
    assert_eq!(results.len(), 1, "{results:?}");
    let result: ShardResult = serde_json::from_str(&results[0]).unwrap();
    assert_eq!(result.shard.run, run.id);
    assert_eq!(drain(consumer.as_ref(), QueueName::Shards).await.len(), 1);
}

#[cfg(feature = "gcp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_once_runs_one_shard_job_from_pubsub() {
    use testexec::adapters::gcp::{GcpBackends, env};
    use testexec::testkit::emulators;

    let Some(settings) = emulators::gcp(Duration::from_secs(30)) else {
        return;
    };
    let backends = GcpBackends::provision(&settings).await.unwrap();
    let consumer = backends.queue.clone();
    let work = tempfile::tempdir().unwrap();
    let (run, _repo) = start_run(backends.store, backends.blobs, backends.queue, work.path()).await;

    // The binary reads the same resources from the variables a Cloud Run
    // service sets (the emulators' own variables are inherited).
    let out = worker(&[
        "--backend",
        "gcp",
        "--queue",
        "execute",
        "--once",
        "--wait",
        "5",
        "--state-dir",
    ])
    .arg(work.path())
    .env(env::PROJECT, &settings.project)
    .env(env::BUCKET, &settings.bucket)
    .env(env::PUBSUB_PREFIX, &settings.pubsub_prefix)
    .env(env::FIRESTORE_PREFIX, &settings.firestore_prefix)
    .env(env::PUBSUB_VISIBILITY_SECS, "30")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 job(s) taken from the execute queue"),
        "{stderr}"
    );

    let results = drain(consumer.as_ref(), QueueName::Results).await;
    assert_eq!(results.len(), 1, "{results:?}");
    let result: ShardResult = serde_json::from_str(&results[0]).unwrap();
    assert_eq!(result.shard.run, run.id);
    assert_eq!(drain(consumer.as_ref(), QueueName::Shards).await.len(), 1);
}
