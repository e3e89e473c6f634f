//! Bounded memory of collect and report, measured.
//!
//! Each workload runs in a child process (this test binary re-run on one
//! test with `TESTEXEC_MEMORY_CHILD` set), which prints its peak resident
//! set (`VmHWM` of `/proc/self/status`) at the end; the parent asserts the
//! target of docs/benchmarks.md, 64 MB + 64 bytes per test case. A child of
//! its own keeps the figure clear of other tests running in parallel
//! threads, and of the parent's own allocations. Inputs are written to
//! disk in chunks, so generating them costs nothing that counts.
//!
//! Before streaming, the 50 MB `<system-out>` and 50 MB CDATA peaked at
//! ~300 MB (whole file + quick-xml's buffer of each text + decoded copies)
//! and report held every case and every output in memory.
#![cfg(target_os = "linux")]

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use testexec::adapters::local::{FsBlobStore, LocalQueue, QueueConfig, SqliteRunStore};
use testexec::adapters::source::LocalDirSource;
use testexec::app::handlers::collect::collect;
use testexec::app::handlers::report::report;
use testexec::app::handlers::{Ports, Settings};
use testexec::app::messages::{Execution, MESSAGE_VERSION, QueueName, ShardResult, keys};
use testexec::app::ports::{
    BlobStore, Clock, NoNotifier, QueueConsumer, RunStore, SystemClock, content_type,
};
use testexec::domain::model::{Outcome, RunId, ShardId, TestCase};

const CHILD: &str = "TESTEXEC_MEMORY_CHILD";
const MB: u64 = 1024 * 1024;

/// Runs `test` in a child process and returns its peak RSS in bytes.
fn peak_of(test: &str) -> u64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child {test} failed:\n{stdout}\n{stderr}"
    );
    let kb: u64 = stdout
        .lines()
        .chain(stderr.lines())
        .find_map(|l| l.split_once("peak_rss_kb=").map(|(_, v)| v))
        .unwrap_or_else(|| panic!("child {test} printed no peak:\n{stdout}\n{stderr}"))
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    kb * 1024
}

/// `VmHWM` in kB: the process's peak resident set so far.
fn peak_kb() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .to_owned()
}

fn report_peak() {
    // On a line of its own: libtest prints the test's name before it.
    println!("\npeak_rss_kb={}", peak_kb());
}

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

struct Local {
    _dir: tempfile::TempDir,
    ports: Ports,
    queue: Arc<LocalQueue>,
    store: Arc<SqliteRunStore>,
    blobs: Arc<FsBlobStore>,
    work: std::path::PathBuf,
}

fn local() -> Local {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteRunStore::open(dir.path().join("runs.sqlite3")).unwrap());
    let blobs = Arc::new(FsBlobStore::new(dir.path().join("blobs")).unwrap());
    let queue = Arc::new(LocalQueue::in_memory(QueueConfig::default()));
    let ports = Ports {
        store: store.clone(),
        blobs: blobs.clone(),
        queue: queue.clone(),
        source: Arc::new(LocalDirSource::default()),
        notifier: Arc::new(NoNotifier),
        clock: Arc::new(SystemClock),
    };
    let work = dir.path().join("work");
    Local {
        _dir: dir,
        ports,
        queue,
        store,
        blobs,
        work,
    }
}

async fn new_run(local: &Local, shards: u32) -> RunId {
    let (run, records) = testexec::testkit::contract::sample_run(RunId::new(), shards);
    local.store.create_run(&run, &records).await.unwrap();
    run.id
}

/// Uploads `path` as the shard's only JUnit file and collects it.
async fn collect_file(local: &Local, shard: ShardId, path: &Path) {
    let key = keys::junit(shard, 1, "try-000-000000-junit.xml");
    local
        .blobs
        .put_file(&key, path, content_type::XML)
        .await
        .unwrap();
    let now = SystemClock.now_ms();
    let result = ShardResult {
        v: MESSAGE_VERSION,
        shard,
        attempt: 1,
        execution: Execution::Completed { exit_code: 1 },
        started_ms: now,
        finished_ms: now + 1000,
        log_key: keys::log(shard, 1),
        junit_files: 1,
        junit_keys: Vec::new(),
        log_tail: String::new(),
    };
    collect(&local.ports, &serde_json::to_string(&result).unwrap())
        .await
        .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `unit` over and over, whole (never a cut character or entity),
/// up to about `bytes`.
fn fill(out: &mut impl Write, bytes: usize, unit: &str) {
    let chunk = unit.repeat((64 * 1024 / unit.len()).max(1));
    let mut left = bytes;
    while left >= chunk.len() {
        out.write_all(chunk.as_bytes()).unwrap();
        left -= chunk.len();
    }
    out.write_all(unit.repeat(left / unit.len()).as_bytes())
        .unwrap();
}

#[test]
fn child_collect_of_50_mb_texts() {
    if !is_child() {
        return;
    }
    let local = local();
    std::fs::create_dir_all(&local.work).unwrap();
    let path = local.work.join("big.xml");
    let mut f = BufWriter::new(std::fs::File::create(&path).unwrap());
    write!(f, "<testsuites><testsuite name=\"s\"><testcase classname=\"c\" name=\"out\" time=\"1\"><failure message=\"boom\">trace</failure><system-out>OUT-HEAD ").unwrap();
    fill(&mut f, 50 * MB as usize, "a line of output &amp; more é\n");
    write!(f, " OUT-TAIL</system-out></testcase><testcase classname=\"c\" name=\"cdata\" time=\"1\"><system-err><![CDATA[ERR-HEAD ").unwrap();
    fill(&mut f, 50 * MB as usize, "<raw> & ]] text\n");
    write!(
        f,
        " ERR-TAIL]]></system-err></testcase></testsuite></testsuites>"
    )
    .unwrap();
    f.into_inner().unwrap().sync_all().unwrap();

    runtime().block_on(async {
        let run = new_run(&local, 1).await;
        let shard = ShardId::new(run, 0);
        collect_file(&local, shard, &path).await;
        let stored = local.blobs.get(&keys::cases(shard, 1)).await.unwrap();
        let cases: Vec<TestCase> = String::from_utf8(stored)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let shards = local.store.list_shards(run).await.unwrap();
        assert_eq!(cases.len(), 2, "{:?}", shards[0].error);
        assert_eq!(cases[0].outcome, Outcome::Failed);
        let out = cases[0].system_out.as_deref().unwrap();
        let err = cases[1].system_err.as_deref().unwrap();
        for (text, head, tail) in [(out, "OUT-HEAD", "OUT-TAIL"), (err, "ERR-HEAD", "ERR-TAIL")] {
            assert!(text.starts_with(head), "{}", &text[..100]);
            assert!(text.ends_with(tail), "{}", &text[text.len() - 100..]);
            assert!(text.len() <= 64 * 1024 + 64, "{}", text.len());
            assert!(text.contains(" bytes cut]…\n"));
        }
        assert!(out.contains("output & more é"));
        assert!(err.contains("<raw> & ]] text"));
    });
    report_peak();
}

#[test]
fn collect_of_50_mb_texts_stays_under_64_mb() {
    if is_child() {
        return;
    }
    let peak = peak_of("child_collect_of_50_mb_texts");
    eprintln!(
        "collect, 50 MB <system-out> + 50 MB CDATA: peak {} MB",
        peak / MB
    );
    assert!(peak <= 64 * MB, "peak {} MB", peak / MB);
}

const SHARDS: u32 = 4;
const CASES_PER_SHARD: u32 = 6_000;

#[test]
fn child_report_of_many_cases() {
    if !is_child() {
        return;
    }
    let mut peak = String::new();
    let local = local();
    std::fs::create_dir_all(&local.work).unwrap();
    runtime().block_on(async {
        let run = new_run(&local, SHARDS).await;
        for s in 0..SHARDS {
            let path = local.work.join(format!("shard-{s}.xml"));
            let mut f = BufWriter::new(std::fs::File::create(&path).unwrap());
            write!(f, "<testsuites><testsuite name=\"suite{s}\">").unwrap();
            for i in 0..CASES_PER_SHARD {
                // 1 KiB of output a case, a failure every 50th.
                write!(f, "<testcase classname=\"pkg.Mod{s}\" name=\"t{i}\" file=\"tests/m{s}.py\" time=\"0.0{}\">", i % 10).unwrap();
                if i % 50 == 0 {
                    write!(f, "<failure message=\"assert {i}\">trace {i}</failure>").unwrap();
                }
                write!(f, "<system-out>").unwrap();
                fill(&mut f, 1024, "output line\n");
                writeln!(f, "</system-out></testcase>").unwrap();
            }
            write!(f, "</testsuite></testsuites>").unwrap();
            f.into_inner().unwrap().sync_all().unwrap();
            collect_file(&local, ShardId::new(run, s), &path).await;
            std::fs::remove_file(&path).unwrap();
        }
        let job = local
            .queue
            .receive(QueueName::Reports, std::time::Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        let settings = Settings {
            work_root: local.work.clone(),
            ..Settings::default()
        };
        let outcome = report(&local.ports, &settings, &job.body).await.unwrap();
        // Measured before the checks below read whole files back.
        peak = peak_kb();
        let total = u64::from(SHARDS * CASES_PER_SHARD);
        assert_eq!(outcome.counts.tests, total);
        assert_eq!(outcome.counts.failed, total / 50);
        let junit = local
            .blobs
            .get(&keys::report(run, "junit.xml"))
            .await
            .unwrap();
        let junit = String::from_utf8(junit).unwrap();
        assert_eq!(junit.matches("<testcase ").count() as u64, total);
        assert_eq!(junit.matches("<testsuite ").count() as u64, u64::from(SHARDS));
        let page = local
            .blobs
            .get(&keys::report(run, "index.html"))
            .await
            .unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains("data-testid=\"rows-capped\""));
    });
    println!("\npeak_rss_kb={peak}");
}

#[test]
fn report_of_24_000_cases_stays_under_64_mb_plus_64_bytes_a_case() {
    if is_child() {
        return;
    }
    let peak = peak_of("child_report_of_many_cases");
    let cases = u64::from(SHARDS * CASES_PER_SHARD);
    let target = 64 * MB + 64 * cases;
    eprintln!(
        "collect + report of {cases} cases with 1 KiB of output each: peak {:.1} MB (target {:.1} MB)",
        peak as f64 / MB as f64,
        target as f64 / MB as f64
    );
    assert!(peak <= target, "peak {} MB", peak / MB);
}

/// Collect folds retries in passes over spooled files; the result must be
/// exactly what `fold_files` gives over the same files read whole: order,
/// outcomes, attempts, counts. A broken file gives no cases, even though
/// its first cases were already spooled when it broke.
#[test]
fn streamed_collect_folds_retries_exactly_as_fold_files() {
    use testexec::app::handlers::collect::{count, fold_files};
    use testexec::app::handlers::execute::junit_upload_name;
    use testexec::domain::junit::{self, Limits};

    if is_child() {
        return;
    }
    let case = |name: &str, result: &str| {
        format!("<testcase classname=\"c\" name=\"{name}\" time=\"0.5\">{result}</testcase>")
    };
    let fail = "<failure message=\"boom\">trace</failure>";
    let error = "<error message=\"crash\"/>";
    let doc = |cases: &[String]| format!("<testsuite name=\"s\">{}</testsuite>", cases.concat());
    // (try, file, xml): same-titled tests, a test in two files of one try,
    // a new test in a retry, a second retry, and a file that breaks midway.
    let files = [
        (
            0,
            "a.xml",
            doc(&[
                case("a", fail),
                case("b", ""),
                case("a", fail),
                case("c", error),
            ]),
        ),
        (0, "b.xml", doc(&[case("d", ""), case("a", "")])),
        (
            0,
            "broken.xml",
            format!(
                "<testsuite name=\"s\">{}<testcase name=\"x\"",
                case("z", fail)
            ),
        ),
        (
            1,
            "a.xml",
            doc(&[case("a", ""), case("c", fail), case("e", "")]),
        ),
        (2, "a.xml", doc(&[case("c", "")])),
    ];
    let local = local();
    runtime().block_on(async {
        let run = new_run(&local, 1).await;
        let shard = ShardId::new(run, 0);
        let mut junit_keys = Vec::new();
        let mut readable = Vec::new();
        for (n, (try_index, base, xml)) in files.iter().enumerate() {
            let key = keys::junit(shard, 1, &junit_upload_name(*try_index, n, base));
            local
                .blobs
                .put(&key, xml.clone().into_bytes(), content_type::XML)
                .await
                .unwrap();
            if let Ok(report) = junit::read(xml.as_bytes(), &key, &Limits::default()) {
                readable.push((key.clone(), report.cases));
            }
            junit_keys.push(key);
        }
        assert_eq!(readable.len(), 4, "the broken file is broken");
        let expected = fold_files(readable);

        let now = SystemClock.now_ms();
        let result = ShardResult {
            v: MESSAGE_VERSION,
            shard,
            attempt: 1,
            execution: Execution::Completed { exit_code: 1 },
            started_ms: now,
            finished_ms: now + 1000,
            log_key: keys::log(shard, 1),
            junit_files: junit_keys.len() as u32,
            junit_keys,
            log_tail: String::new(),
        };
        collect(&local.ports, &serde_json::to_string(&result).unwrap())
            .await
            .unwrap();
        let stored = local.blobs.get(&keys::cases(shard, 1)).await.unwrap();
        let got: Vec<TestCase> = String::from_utf8(stored)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got, expected);
        // Sanity of the fixture itself: retries did fold.
        let c = count(&expected);
        assert_eq!(
            (c.tests, c.flaky, c.failed, c.errors),
            (7, 2, 1, 0),
            "{expected:#?}"
        );

        let record = &local.store.list_shards(run).await.unwrap()[0];
        assert_eq!(record.counts, c);
        let error = record.error.as_deref().unwrap();
        assert!(error.contains("broken.xml"), "{error}");
    });
}
