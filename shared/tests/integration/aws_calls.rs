//! The AWS calls one run makes, measured: the whole pipeline over DynamoDB,
//! S3 and SQS on moto, every client carrying `testkit::aws_calls::CallLog`.
//! A run of 1 shard and a run of 4 give the calls per run and per shard;
//! a run of 2 must match that line exactly, and both must equal the
//! committed `cost/aws-calls.json`, which the cost model (`testexec cost`,
//! docs/cost.md) prices. A change to the handlers that adds calls fails
//! here until the file is re-measured:
//!
//! ```sh
//! TESTEXEC_BLESS=1 cargo nextest run --all-features -E 'test(aws_calls)'
//! ```
//!
//! Left out, because they depend on timing and not on the run: receives
//! (`ReceiveMessage`: on Lambda the event source mapping's pollers make
//! them, priced per message and for idling in the cost model) and queue
//! attribute reads and lease renewals (`GetQueueAttributes`,
//! `ChangeMessageVisibility`: only polling hosts make them).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use testexec::adapters::aws::provision::{ProvisionOptions, provision};
use testexec::adapters::source::LocalDirSource;
use testexec::app::handlers::trigger::TriggerOutcome;
use testexec::app::handlers::{Ports, Settings};
use testexec::app::messages::RunRequest;
use testexec::app::pipeline::{Pipeline, PipelineEvent};
use testexec::app::ports::{NoNotifier, SystemClock};
use testexec::testkit::aws_calls::{CallLog, Tally};
use testexec::testkit::emulators::{moto, unique_name};
use testexec::testkit::fake_suite;

const EXCLUDED: [&str; 3] = [
    "sqs.ReceiveMessage",
    "sqs.GetQueueAttributes",
    "sqs.ChangeMessageVisibility",
];

/// Tests per shard file of the measured suite.
const TESTS_PER_SHARD: usize = 5;

type Calls = BTreeMap<String, Tally>;

/// Builds a pipeline on fresh moto resources with counted clients, runs
/// the suite once to write its timing history (a steady state), then
/// counts the calls of a second run.
async fn calls_of_a_run(shards: usize) -> Option<Calls> {
    let sdk = moto().await?;
    let settings = provision(
        &sdk,
        &unique_name("calls"),
        ProvisionOptions {
            visibility: Duration::from_secs(30),
            max_receives: 5,
            s3_path_style: true,
        },
    )
    .await
    .expect("provisioning on moto");
    let log = CallLog::default();
    let b = log.backends(&sdk, &settings);
    let queue = b.queue.clone();
    let work = tempfile::tempdir().unwrap();
    let ports = Ports {
        store: b.store,
        blobs: b.blobs,
        queue: queue.clone(),
        source: Arc::new(LocalDirSource::default()),
        notifier: Arc::new(NoNotifier),
        clock: Arc::new(SystemClock),
    };
    let pipeline = Pipeline::new(
        ports,
        Settings {
            work_root: work.path().join("work"),
            ..Settings::default()
        },
        queue,
    );
    let workers = pipeline.spawn_workers(2);

    let files: Vec<(String, String)> = (0..shards)
        .map(|i| {
            let tests: String = (0..TESTS_PER_SHARD)
                .map(|t| format!("t{i}_{t} pass 0.1\n"))
                .collect();
            (format!("tests/t{i}.txt"), tests)
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let repo = fake_suite::repo(&refs, shards as u32, 0, 60);

    run_once(&pipeline, repo.path(), shards).await;
    // The warm-up's last acknowledgement lands after its report event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    log.take();
    run_once(&pipeline, repo.path(), shards).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = log.take();
    for w in workers {
        w.abort();
    }
    Some(
        calls
            .into_iter()
            .filter(|(op, _)| !EXCLUDED.contains(&op.as_str()))
            .collect(),
    )
}

/// Triggers a run and waits for its report through the pipeline's events
/// (polling the run store would add calls of its own).
async fn run_once(pipeline: &Pipeline, repo: &Path, shards: usize) {
    let mut events = pipeline.subscribe();
    let run = match pipeline.trigger(RunRequest::local(repo)).await.unwrap() {
        TriggerOutcome::Started { run, .. } => *run,
        other => panic!("not started: {other:?}"),
    };
    assert_eq!(run.shard_count as usize, shards);
    let reported = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(PipelineEvent::RunReported { outcome }) if outcome.run == run.id => {
                    return outcome;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("pipeline events closed: {e}"),
            }
        }
    })
    .await
    .expect("the run was reported in time");
    assert_eq!(reported.counts.passed as usize, shards * TESTS_PER_SHARD);
}

/// `a - b` per operation; `None` if some count would go negative.
fn minus(a: &Calls, b: &Calls) -> Option<Calls> {
    let ops: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    ops.into_iter()
        .map(|op| {
            let x = a.get(op).copied().unwrap_or_default();
            let y = b.get(op).copied().unwrap_or_default();
            Some((
                op.clone(),
                Tally {
                    calls: x.calls.checked_sub(y.calls)?,
                    items: x.items.checked_sub(y.items)?,
                },
            ))
        })
        .filter(|entry| entry.as_ref().is_none_or(|(_, t)| *t != Tally::default()))
        .collect()
}

fn times(a: &Calls, n: u64) -> Calls {
    a.iter()
        .map(|(op, t)| {
            (
                op.clone(),
                Tally {
                    calls: t.calls * n,
                    items: t.items * n,
                },
            )
        })
        .collect()
}

fn plus(a: &Calls, b: &Calls) -> Calls {
    let mut out = a.clone();
    for (op, t) in b {
        let e = out.entry(op.clone()).or_default();
        e.calls += t.calls;
        e.items += t.items;
    }
    out
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Measured {
    note: String,
    tests_per_shard: usize,
    excluded: Vec<String>,
    per_run: Calls,
    per_shard: Calls,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calls_of_a_run_are_linear_in_shards_and_match_the_cost_model() {
    let Some(one) = calls_of_a_run(1).await else {
        return;
    };
    let four = calls_of_a_run(4).await.unwrap();
    let two = calls_of_a_run(2).await.unwrap();
    let three_shards = minus(&four, &one).expect("4 shards call at least as much as 1");
    let per_shard: Calls = three_shards
        .iter()
        .map(|(op, t)| {
            assert!(
                t.calls % 3 == 0 && t.items % 3 == 0,
                "{op}: {t:?} over 3 extra shards is not linear"
            );
            (
                op.clone(),
                Tally {
                    calls: t.calls / 3,
                    items: t.items / 3,
                },
            )
        })
        .collect();
    let per_run = minus(&one, &per_shard).expect("a run calls at least what its shard does");
    assert_eq!(
        two,
        plus(&per_run, &times(&per_shard, 2)),
        "a 2-shard run is the line through 1 and 4 shards"
    );

    let measured = Measured {
        note: "AWS calls of one steady-state run (timing history present), measured by \
               shared/tests/integration/aws_calls.rs over moto; receives, queue attribute \
               reads and lease renewals excluded (see that file)"
            .into(),
        tests_per_shard: TESTS_PER_SHARD,
        excluded: EXCLUDED.iter().map(|s| s.to_string()).collect(),
        per_run,
        per_shard,
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cost/aws-calls.json");
    if std::env::var("TESTEXEC_BLESS").as_deref() == Ok("1") {
        let mut json = serde_json::to_string_pretty(&measured).unwrap();
        json.push('\n');
        std::fs::write(&path, json).unwrap();
        return;
    }
    let committed: Measured = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("cost/aws-calls.json (TESTEXEC_BLESS=1 writes it)"),
    )
    .expect("cost/aws-calls.json parses");
    assert_eq!(
        measured, committed,
        "the pipeline's AWS calls changed: re-measure with TESTEXEC_BLESS=1 and review docs/cost.md"
    );
}
