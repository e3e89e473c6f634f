//! collect + report at scale: one run of N shards × M test cases pushed
//! through the real `collect` and `report` handlers over the local backends
//! (SQLite run store, file blob store, in-process queue) in a temp dir, or,
//! with `TESTEXEC_BACKEND=aws` (feature `aws`), over DynamoDB, S3 and SQS on
//! the moto server at `TESTEXEC_TEST_MOTO_ENDPOINT` (`scripts/emulators.sh
//! --moto-only` starts one), every AWS call counted by the cost model's
//! interceptor (`testkit::aws_calls`).
//!
//! Usage: `collect-report [SHARDS] [CASES_PER_SHARD] [COLLECT_CONCURRENCY]`
//! (default 1000 × 100, one collect at a time).
//! Prints setup, collect total, report and end-to-end times; run it under
//! `/usr/bin/time -f %M` for peak RSS. On AWS it also prints the calls of
//! each phase by operation, and, given `TESTEXEC_TEST_MOTO_PID`, the CPU
//! moto spent in each phase: moto is a Python server on the same cores, so
//! the wall time is mostly its own, and our code's share is the bench's CPU.

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

/// The backends one bench runs over, the consumer end of its queue (to
/// take the report job the last collect queues) and, on AWS, what counts
/// the calls and moto's CPU.
struct Backends {
    ports: Ports,
    consumer: Arc<dyn QueueConsumer>,
    /// The local backends' state (on AWS, scratch for the checks); removed
    /// at the end, outside every figure.
    dir: tempfile::TempDir,
    #[cfg(feature = "aws")]
    aws: Option<aws::Counted>,
}

impl Backends {
    fn local() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(SqliteRunStore::open(dir.path().join("runs.sqlite3"))?);
        let blobs = Arc::new(FsBlobStore::new(dir.path().join("blobs"))?);
        let queue = Arc::new(LocalQueue::in_memory(QueueConfig::default()));
        Ok(Self {
            ports: ports(store, blobs, queue.clone()),
            consumer: queue,
            dir,
            #[cfg(feature = "aws")]
            aws: None,
        })
    }

    /// Calls made since the last look, printed under `phase` (AWS only).
    fn phase_calls(&self, _phase: &'static str) {
        #[cfg(feature = "aws")]
        if let Some(aws) = &self.aws {
            aws.end_phase(_phase);
        }
    }

    fn print_calls(&self, _shards: u32) {
        #[cfg(feature = "aws")]
        if let Some(aws) = &self.aws {
            aws.print(_shards);
        }
    }
}

fn ports(
    store: Arc<dyn RunStore>,
    blobs: Arc<dyn BlobStore>,
    queue: Arc<dyn testexec::app::ports::JobQueue>,
) -> Ports {
    Ports {
        store,
        blobs,
        queue,
        source: Arc::new(LocalDirSource::default()),
        notifier: Arc::new(NoNotifier),
        clock: Arc::new(SystemClock),
    }
}

#[cfg(feature = "aws")]
mod aws {
    //! The AWS side: fresh moto resources, counted clients, moto's CPU.
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use testexec::adapters::aws::provision::{ProvisionOptions, emulator_sdk_config, provision};
    use testexec::testkit::aws_calls::{CallLog, Tally};
    use testexec::testkit::emulators::unique_name;

    use super::Backends;

    /// The call log, moto's pid, and each phase's calls and moto CPU.
    pub struct Counted {
        log: CallLog,
        moto_pid: Option<u32>,
        moto_cpu_at: Mutex<Option<f64>>,
        phases: Mutex<Vec<Phase>>,
    }

    /// One phase's AWS calls by operation and moto's CPU seconds in it.
    struct Phase {
        name: &'static str,
        calls: BTreeMap<String, Tally>,
        moto_cpu: Option<f64>,
    }

    impl Counted {
        /// Closes a phase: its calls (the log starts afresh) and moto's CPU
        /// since the previous phase ended.
        pub fn end_phase(&self, phase: &'static str) {
            let calls = self.log.take();
            let now = self.moto_pid.and_then(moto_cpu_secs);
            let mut at = self.moto_cpu_at.lock().unwrap_or_else(|p| p.into_inner());
            let spent = now.zip(*at).map(|(now, before)| now - before);
            *at = now;
            self.phases
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Phase {
                    name: phase,
                    calls,
                    moto_cpu: spent,
                });
        }

        pub fn print(&self, shards: u32) {
            let phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
            for Phase {
                name: phase,
                calls,
                moto_cpu,
            } in phases.iter()
            {
                match moto_cpu {
                    Some(cpu) => println!("moto_cpu_s phase={phase} {cpu:.3} (utime+stime)"),
                    None => {
                        println!("moto_cpu_s phase={phase} unknown (set TESTEXEC_TEST_MOTO_PID)")
                    }
                }
                let total: u64 = calls.values().map(|t| t.calls).sum();
                println!(
                    "aws_calls phase={phase} total={total} per_shard={:.3}",
                    total as f64 / f64::from(shards)
                );
                for (op, t) in calls {
                    println!(
                        "aws_calls phase={phase} op={op} calls={} items={} calls_per_shard={:.3}",
                        t.calls,
                        t.items,
                        t.calls as f64 / f64::from(shards)
                    );
                }
            }
            if let Some(hwm) = self.moto_pid.and_then(moto_peak_rss_kb) {
                println!("moto_peak_rss_kb={hwm}");
            }
        }
    }

    /// User + system CPU seconds of process `pid` so far (all its threads),
    /// from `/proc/<pid>/stat` fields 14 and 15.
    fn moto_cpu_secs(pid: u32) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces: count fields after its `)`.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Some((ticks(11)? + ticks(12)?) / hz)
    }

    fn moto_peak_rss_kb(pid: u32) -> Option<u64> {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// Fresh table, bucket and queues on moto, as `template.yaml` makes them.
    pub async fn backends() -> Result<Backends, Box<dyn std::error::Error>> {
        let url = std::env::var("TESTEXEC_TEST_MOTO_ENDPOINT").map_err(|_| {
            "TESTEXEC_TEST_MOTO_ENDPOINT is not set: eval \"$(scripts/emulators.sh --moto-only)\""
        })?;
        let moto_pid = match std::env::var("TESTEXEC_TEST_MOTO_PID") {
            Ok(pid) => Some(pid.trim().parse()?),
            Err(_) => None,
        };
        // moto accepts any credentials.
        let sdk = emulator_sdk_config(&url, "testing", "testing").await;
        let settings = provision(
            &sdk,
            &unique_name("bench"),
            ProvisionOptions {
                s3_path_style: true,
                ..ProvisionOptions::default()
            },
        )
        .await?;
        let log = CallLog::default();
        let b = log.backends(&sdk, &settings);
        let counted = Counted {
            log,
            moto_pid,
            moto_cpu_at: Mutex::new(moto_pid.and_then(moto_cpu_secs)),
            phases: Mutex::new(Vec::new()),
        };
        Ok(Backends {
            ports: super::ports(b.store, b.blobs, b.queue.clone()),
            consumer: b.queue as Arc<dyn testexec::app::ports::QueueConsumer>,
            dir: tempfile::tempdir()?,
            aws: Some(counted),
        })
    }
}

async fn bench(
    shards: u32,
    cases: u32,
    concurrency: usize,
    backend: &str,
    backends: Backends,
) -> Result<(), Box<dyn std::error::Error>> {
    let Backends {
        ports, consumer, ..
    } = &backends;
    let (store, blobs) = (ports.store.clone(), ports.blobs.clone());

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
    // Uploads overlap: on moto, 10,000 one-at-a-time puts would make the
    // untimed setup the longest part of the bench.
    let mut uploads = tokio::task::JoinSet::new();
    for i in 0..shards {
        let shard = ShardId::new(run_id, i);
        let key = keys::junit(shard, 1, "try-000-000000-junit.xml");
        let xml = junit_for(i, cases);
        junit_bytes += xml.len();
        if uploads.len() >= 16 {
            uploads.join_next().await.ok_or("no upload in flight")???;
        }
        let blobs = blobs.clone();
        uploads.spawn(async move { blobs.put(&key, xml.into_bytes(), content_type::XML).await });
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
    while let Some(done) = uploads.join_next().await {
        done??;
    }
    let setup = secs(t_setup);
    let rss_setup = peak_rss_kb();
    backends.phase_calls("setup");

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
    backends.phase_calls("collect");

    let t_report = Instant::now();
    // A short wait: SQS may not show a message sent a moment ago at once;
    // the in-process queue always does.
    let job = consumer
        .receive(QueueName::Reports, std::time::Duration::from_secs(5))
        .await?
        .ok_or("no report job queued after the last shard")?;
    let outcome = report(ports, &Settings::default(), &job.body).await?;
    consumer.ack(QueueName::Reports, &job.handle).await?;
    let report_secs = secs(t_report);
    let e2e = secs(t_e2e);
    let cpu_report = cpu_secs() - cpu_start - cpu_collect;
    let rss_report = peak_rss_kb();
    backends.phase_calls("report");

    // Each file is copied down and measured, not read into memory: the
    // process's peak is the handlers', not this check's (report.json of a
    // million cases is 265 MB).
    let mut html_bytes = 0;
    for name in testexec::app::handlers::report::REPORT_FILES {
        let copy = backends.dir.path().join(format!("check-{name}"));
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
        "backend={backend} shards={shards} cases_per_shard={cases} collect_concurrency={concurrency} junit_total_mb={:.1} handed_to_report={handed}",
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
    backends.print_calls(shards);
    drop((store, blobs));
    let Backends { dir, .. } = backends;
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
    // The hosts' variable (`hosts::backend_set`, behind the `http` feature,
    // which this bench does not build).
    let backend = std::env::var("TESTEXEC_BACKEND").unwrap_or_else(|_| "local".into());
    runtime.block_on(async {
        let backends = match backend.as_str() {
            "local" => Backends::local()?,
            #[cfg(feature = "aws")]
            "aws" => aws::backends().await?,
            other => {
                return Err(format!(
                    "TESTEXEC_BACKEND={other}: this bench runs over local, or aws when built with `--features aws`"
                )
                .into());
            }
        };
        bench(shards, cases, concurrency.max(1), &backend, backends).await
    })?;
    let t_shutdown = Instant::now();
    drop(runtime);
    println!("runtime_shutdown_s={:.3}", secs(t_shutdown));
    Ok(())
}
