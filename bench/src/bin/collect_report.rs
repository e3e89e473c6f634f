//! collect + report at scale: one run of N shards × M test cases pushed
//! through the real `collect` and `report` handlers over the local backends
//! (SQLite run store, file blob store, in-process queue) in a temp dir.
//!
//! Usage: `collect-report [SHARDS] [CASES_PER_SHARD] [COLLECT_CONCURRENCY]`
//! (default 1000 × 100, one collect at a time).
//! Prints setup, collect total, report and end-to-end times; run it under
//! `/usr/bin/time -f %M` for peak RSS.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use testexec::adapters::local::{FsBlobStore, LocalQueue, QueueConfig, SqliteRunStore};
use testexec::adapters::source::LocalDirSource;
use testexec::app::handlers::collect::{CollectOutcome, collect};
use testexec::app::handlers::report::report;
use testexec::app::handlers::{Ports, Settings};
use testexec::app::messages::{Execution, MESSAGE_VERSION, QueueName, ShardResult, keys};
use testexec::app::ports::{
    BlobStore, Clock, NoNotifier, QueueConsumer, RunStore, SystemClock, content_type,
};
use testexec::domain::model::{
    Counts, Origin, Run, RunId, RunStatus, ShardId, ShardRecord, SourceRef,
};

/// One shard's JUnit file: `cases` test cases, with about 3 % failures,
/// 5 % skips, 2 % errors and 2 % flaky (a `<flakyFailure>` then a pass).
fn junit_for(shard: u32, cases: u32) -> String {
    let mut xml = String::with_capacity(cases as usize * 220);
    let mut body = String::with_capacity(cases as usize * 200);
    let (mut failures, mut errors, mut skipped) = (0, 0, 0);
    for i in 0..cases {
        let n = shard.wrapping_mul(7919).wrapping_add(i) % 100;
        let name = format!("test_case_{i:04}");
        let class = format!("tests.test_module_{shard:04}.TestGroup{}", i / 10);
        let time = 0.001 + f64::from((shard + i) % 50) / 1000.0;
        let _ = write!(
            body,
            r#"    <testcase classname="{class}" name="{name}" file="tests/test_module_{shard:04}.py" line="{}" time="{time:.3}""#,
            10 + i * 4
        );
        match n {
            0..=2 => {
                failures += 1;
                let _ = write!(
                    body,
                    ">\n      <failure message=\"assert {i} == {}\" type=\"AssertionError\">Traceback (most recent call last):\n  File \"tests/test_module_{shard:04}.py\", line {}, in {name}\n    assert value == expected\nAssertionError: assert {i} == {}</failure>\n    </testcase>\n",
                    i + 1,
                    10 + i * 4 + 2,
                    i + 1
                );
            }
            3..=7 => {
                skipped += 1;
                body.push_str(
                    ">\n      <skipped message=\"needs a GPU\" type=\"pytest.skip\">needs a GPU</skipped>\n    </testcase>\n",
                );
            }
            8..=9 => {
                errors += 1;
                body.push_str(
                    ">\n      <error message=\"fixture 'db' failed\" type=\"RuntimeError\">RuntimeError: connection refused</error>\n    </testcase>\n",
                );
            }
            10..=11 => {
                body.push_str(
                    ">\n      <flakyFailure message=\"timed out\" type=\"TimeoutError\"><stackTrace>TimeoutError: timed out after 1s</stackTrace></flakyFailure>\n    </testcase>\n",
                );
            }
            _ => body.push_str(" />\n"),
        }
    }
    let _ = write!(
        xml,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<testsuites>\n  <testsuite name=\"pytest\" tests=\"{cases}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"1.0\">\n{body}  </testsuite>\n</testsuites>\n"
    );
    xml
}

/// User + system CPU seconds of the whole process so far (all threads).
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

type Collected = Result<CollectOutcome, testexec::errors::HandlerError>;

/// 1 if this collect handed the run to report, 0 if not; errors propagate.
fn joined(
    done: Option<Result<Collected, tokio::task::JoinError>>,
) -> Result<u32, Box<dyn std::error::Error>> {
    match done.ok_or("no collect in flight")??? {
        CollectOutcome::Applied {
            handed_to_report, ..
        } => Ok(u32::from(handed_to_report)),
        CollectOutcome::Duplicate { .. } => Err("unexpected duplicate".into()),
    }
}

/// Peak resident set so far (`VmHWM`, kB), to see which phase sets the peak.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

async fn bench(
    shards: u32,
    cases: u32,
    concurrency: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteRunStore::open(dir.path().join("runs.sqlite3"))?);
    let blobs = Arc::new(FsBlobStore::new(dir.path().join("blobs"))?);
    let queue = Arc::new(LocalQueue::in_memory(QueueConfig::default()));
    let ports = Ports {
        store: store.clone(),
        blobs: blobs.clone(),
        queue: queue.clone(),
        source: Arc::new(LocalDirSource::default()),
        notifier: Arc::new(NoNotifier),
        clock: Arc::new(SystemClock),
    };

    // Setup (not timed as part of collect/report): the run, its pending
    // shards, and one uploaded JUnit file per shard.
    let t_setup = Instant::now();
    let run_id = RunId::new();
    let now = SystemClock.now_ms();
    let run = Run {
        id: run_id,
        source: SourceRef {
            repo: "local/bench".into(),
            commit: None,
            git_ref: None,
            path: None,
        },
        origin: Origin::Local,
        suite: "bench".into(),
        status: RunStatus::Running,
        shard_count: shards,
        shards_done: 0,
        counts: Counts::default(),
        created_ms: now,
        deadline_ms: now + 3_600_000,
        finished_ms: None,
        error: None,
    };
    let records: Vec<ShardRecord> = (0..shards)
        .map(|i| ShardRecord::pending(ShardId::new(run_id, i), 1.0, 1))
        .collect();
    store.create_run(&run, &records).await?;
    let mut bodies = Vec::with_capacity(shards as usize);
    let mut junit_bytes = 0usize;
    for i in 0..shards {
        let shard = ShardId::new(run_id, i);
        let key = keys::junit(shard, 1, "try-000-000000-junit.xml");
        let xml = junit_for(i, cases);
        junit_bytes += xml.len();
        blobs.put(&key, xml.into_bytes(), content_type::XML).await?;
        let result = ShardResult {
            v: MESSAGE_VERSION,
            shard,
            attempt: 1,
            execution: Execution::Completed { exit_code: 1 },
            started_ms: now,
            finished_ms: now + 1000,
            log_key: keys::log(shard, 1),
            // Collect lists the attempt's JUnit prefix, as for execute's results.
            junit_files: 1,
            junit_keys: Vec::new(),
            log_tail: String::new(),
        };
        bodies.push(serde_json::to_string(&result)?);
    }
    let setup = secs(t_setup);
    let rss_setup = peak_rss_kb();

    let t_e2e = Instant::now();
    let cpu_start = cpu_secs();
    // `concurrency` collectors at a time, like several queue consumers.
    let mut handed = 0;
    let mut in_flight = tokio::task::JoinSet::new();
    for body in bodies {
        if in_flight.len() >= concurrency {
            handed += joined(in_flight.join_next().await)?;
        }
        let ports = ports.clone();
        in_flight.spawn(async move { collect(&ports, &body).await });
    }
    while let Some(done) = in_flight.join_next().await {
        handed += joined(Some(done))?;
    }
    let collect_total = secs(t_e2e);
    let cpu_collect = cpu_secs() - cpu_start;
    let rss_collect = peak_rss_kb();

    let t_report = Instant::now();
    let job = queue
        .receive(QueueName::Reports, std::time::Duration::ZERO)
        .await?
        .ok_or("no report job queued after the last shard")?;
    let outcome = report(&ports, &Settings::default(), &job.body).await?;
    queue.ack(QueueName::Reports, &job.handle).await?;
    let report_secs = secs(t_report);
    let e2e = secs(t_e2e);
    let cpu_report = cpu_secs() - cpu_start - cpu_collect;
    let rss_report = peak_rss_kb();

    // Each file is copied down and measured, not read into memory: the
    // process's peak is the handlers', not this check's (report.json of a
    // million cases is 265 MB).
    let mut html_bytes = 0;
    for name in testexec::app::handlers::report::REPORT_FILES {
        let copy = dir.path().join(format!("check-{name}"));
        blobs
            .get_to_file(&keys::report(run_id, name), &copy)
            .await?;
        let len = std::fs::metadata(&copy)?.len();
        std::fs::remove_file(&copy)?;
        if name == "index.html" {
            html_bytes = len;
        }
    }
    let c = outcome.counts;
    if handed != 1 || c.tests != u64::from(shards) * u64::from(cases) || !outcome.finalised_now {
        return Err(format!(
            "unexpected result: {handed} hand-offs, {} tests, finalised_now={}",
            c.tests, outcome.finalised_now
        )
        .into());
    }
    println!(
        "shards={shards} cases_per_shard={cases} collect_concurrency={concurrency} junit_total_mb={:.1} handed_to_report={handed}",
        junit_bytes as f64 / 1e6
    );
    println!(
        "counts: tests={} passed={} failed={} errors={} skipped={} flaky={} status={}",
        c.tests, c.passed, c.failed, c.errors, c.skipped, c.flaky, outcome.status
    );
    println!("index.html_mb={:.1}", html_bytes as f64 / 1e6);
    println!("setup_s={setup:.3}");
    println!(
        "collect_total_s={collect_total:.3} collect_per_shard_ms={:.3}",
        collect_total * 1000.0 / f64::from(shards)
    );
    println!("report_s={report_secs:.3}");
    println!("cpu_collect_s={cpu_collect:.3} cpu_report_s={cpu_report:.3} (user+sys, all threads)");
    println!("end_to_end_s={e2e:.3}");
    println!(
        "peak_rss_kb after setup={rss_setup} after collect={rss_collect} after report={rss_report}"
    );
    drop((ports, store, blobs, queue));
    let t_cleanup = Instant::now();
    dir.close()?;
    println!("cleanup_s={:.3} (removing the temp dir)", secs(t_cleanup));
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let shards: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let cases: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100);
    let concurrency: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(shards, cases, concurrency.max(1)))?;
    let t_shutdown = Instant::now();
    drop(runtime);
    println!("runtime_shutdown_s={:.3}", secs(t_shutdown));
    Ok(())
}
