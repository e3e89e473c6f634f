//! Tests of the report writers, over one rich hand-made run and synthetic
//! large ones.

mod ctrf;
mod golden;
mod html;
mod junit_xml;
mod markdown;
mod scale;

use super::{ReportInput, ReportLinks};
use crate::domain::model::{
    Attempt, Counts, Origin, Outcome, Run, RunId, RunStatus, ShardId, ShardRecord, ShardStatus,
    SourceRef, TestCase,
};

#[test]
fn truncation_never_splits_a_character() {
    use super::truncate_bytes;
    let s = "a✓b"; // '✓' is 3 bytes: 1..4
    assert_eq!(truncate_bytes(s, 0), "");
    assert_eq!(truncate_bytes(s, 1), "a");
    assert_eq!(truncate_bytes(s, 2), "a");
    assert_eq!(truncate_bytes(s, 3), "a");
    assert_eq!(truncate_bytes(s, 4), "a✓");
    assert_eq!(truncate_bytes(s, 99), s);
}

#[test]
fn durations_are_made_safe_and_readable() {
    use super::{human_duration, secs};
    assert_eq!(secs(f64::NAN), 0.0);
    assert_eq!(secs(-3.0), 0.0);
    assert_eq!(secs(f64::INFINITY), 0.0);
    assert_eq!(human_duration(0.25), "250ms");
    assert_eq!(human_duration(12.34), "12.3s");
    assert_eq!(human_duration(245.0), "4m 05s");
    assert_eq!(human_duration(3720.0), "1h 02m");
}

pub(super) const T0: u64 = 1_700_000_000_000;

pub(super) fn case(
    suite: &str,
    classname: &str,
    name: &str,
    outcome: Outcome,
    secs: f64,
) -> TestCase {
    TestCase {
        suite: suite.into(),
        classname: classname.into(),
        name: name.into(),
        file: None,
        file_derived: false,
        line: None,
        duration_secs: secs,
        outcome,
        message: None,
        details: None,
        system_out: None,
        system_err: None,
        retries: vec![],
    }
}

pub(super) fn run(status: RunStatus, counts: Counts, shard_count: u32) -> Run {
    Run {
        id: "01J9Z3V8K4QW5T6Y7X8C9B0N1M".parse::<RunId>().unwrap(),
        source: SourceRef {
            repo: "octo/widgets".into(),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            git_ref: Some("refs/heads/main".into()),
            path: None,
        },
        origin: Origin::Local,
        suite: "unit".into(),
        status,
        shard_count,
        shards_done: shard_count,
        counts,
        created_ms: T0,
        deadline_ms: T0 + 3_600_000,
        finished_ms: Some(T0 + 120_000),
        error: None,
    }
}

pub(super) fn shard(
    run: &Run,
    index: u32,
    status: ShardStatus,
    est: f64,
    start: u64,
    end: u64,
) -> ShardRecord {
    let mut s = ShardRecord::pending(ShardId::new(run.id, index), est, 3);
    s.status = status;
    s.attempt = Some(1);
    s.started_ms = Some(T0 + start);
    s.finished_ms = Some(T0 + end);
    s
}

/// A run with every outcome, hostile names and messages, a flaky test with
/// two earlier attempts, characters XML cannot carry, and an errored shard.
pub(super) struct Rich {
    pub run: Run,
    pub shards: Vec<ShardRecord>,
    pub cases: Vec<(u32, TestCase)>,
    pub links: ReportLinks,
}

impl Rich {
    pub fn new() -> Self {
        let mut cases = Vec::new();
        let mut ok = case(
            "tests/test_api.py",
            "tests.test_api",
            "test_list",
            Outcome::Passed,
            0.25,
        );
        ok.file = Some("tests/test_api.py".into());
        ok.line = Some(10);
        cases.push((0, ok));

        let mut xss = case(
            "tests/test_api.py",
            "tests.test_api",
            "test_<script>alert(1)</script>",
            Outcome::Failed,
            1.5,
        );
        xss.file = Some("tests/test_api.py".into());
        xss.line = Some(42);
        xss.message =
            Some("assert <script>alert('x')</script> == 1\n```\nnot a fence end\n````".into());
        xss.details =
            Some("Traceback:\n  File \"tests/test_api.py\", line 42\nAssertionError & <b>".into());
        cases.push((1, xss));

        let mut err = case(
            "tests/test_db.py",
            "tests.test_db",
            "test_connect | pipe",
            Outcome::Error,
            3.0,
        );
        err.message = Some("ConnectionError: refused".into());
        err.system_err = Some("stderr line\u{1}with control\u{FFFE}char".into());
        cases.push((1, err));

        let mut skip = case(
            "tests/test_db.py",
            "tests.test_db",
            "test_skipped",
            Outcome::Skipped,
            0.0,
        );
        skip.message = Some("needs postgres".into());
        cases.push((0, skip));

        let mut flaky = case(
            "tests/test_net.py",
            "tests.test_net",
            "test_retry_テスト ✓",
            Outcome::Flaky,
            0.75,
        );
        flaky.retries = vec![
            Attempt {
                outcome: Outcome::Failed,
                duration_secs: Some(0.5),
                message: Some("timeout".into()),
                details: Some("trace 1".into()),
            },
            Attempt {
                outcome: Outcome::Error,
                duration_secs: Some(0.6),
                message: Some("reset".into()),
                details: None,
            },
        ];
        cases.push((0, flaky));

        let mut out = case("", "", "bare_test", Outcome::Passed, f64::NAN);
        out.system_out = Some("hello\u{0}\u{7}world\u{FFFF}!".into());
        cases.push((0, out));

        let mut counts = Counts::default();
        cases.iter().for_each(|(_, c)| counts.record(c.outcome));
        let run = run(RunStatus::Failed, counts, 3);
        let mut shards = vec![
            shard(&run, 0, ShardStatus::Passed, 50.0, 1_000, 61_000),
            shard(&run, 1, ShardStatus::Failed, 60.0, 2_000, 100_000),
            shard(&run, 2, ShardStatus::Errored, 40.0, 3_000, 10_000),
        ];
        shards[2].error = Some("setup failed: <boom> `pip` exit 1".into());
        shards[0].counts.tests = 4;
        shards[1].counts.tests = 2;
        let links = ReportLinks {
            html: Some("https://example.test/runs/x/report/index.html".into()),
            junit: Some("https://example.test/runs/x/report/junit.xml".into()),
            ctrf: None,
            markdown: None,
            shard_logs: vec![Some("https://example.test/log0".into()), None],
        };
        Rich {
            run,
            shards,
            cases,
            links,
        }
    }

    /// The writers' input over the cases as they are now (tests change
    /// them between calls). The digest is leaked: a test's few kilobytes,
    /// and it lets `input` keep the borrow-only shape the handler uses.
    pub fn input(&self) -> ReportInput<'_> {
        let digest: &'static super::Digest =
            Box::leak(Box::new(super::Digest::of(&self.cases).unwrap()));
        ReportInput {
            run: &self.run,
            shards: &self.shards,
            cases: &self.cases,
            digest,
            links: self.links.clone(),
            tool_name: "pytest",
            triage: None,
        }
    }
}

/// `n` cases spread over `shards` shards, with a mix of outcomes.
pub(super) fn synthetic(n: usize, shard_count: u32) -> Rich {
    let mut cases = Vec::with_capacity(n);
    for i in 0..n {
        let outcome = match i % 100 {
            0 => Outcome::Failed,
            1 => Outcome::Error,
            2..=4 => Outcome::Skipped,
            5 => Outcome::Flaky,
            _ => Outcome::Passed,
        };
        let shard = (i as u32) % shard_count.max(1);
        let suite = format!("suite_{}", i % 250);
        let mut c = case(
            &suite,
            &format!("pkg.mod{}", i % 250),
            &format!("test_{i}"),
            outcome,
            (i % 997) as f64 / 100.0,
        );
        c.file = Some(format!("tests/test_{}.py", i % 250));
        c.line = Some((i % 500) as u32 + 1);
        if outcome.is_failure() {
            c.message = Some(format!("assertion {i} failed: expected 1, got 2"));
            c.details = Some(format!(
                "Traceback (most recent call last):\n  line {i}\nAssertionError"
            ));
        }
        if outcome == Outcome::Flaky {
            c.retries.push(Attempt {
                outcome: Outcome::Failed,
                duration_secs: Some(0.1),
                message: Some("first try".into()),
                details: None,
            });
        }
        cases.push((shard, c));
    }
    let mut counts = Counts::default();
    cases.iter().for_each(|(_, c)| counts.record(c.outcome));
    let run = run(RunStatus::Failed, counts, shard_count);
    let shards = (0..shard_count)
        .map(|i| {
            let start = u64::from(i % 7) * 500;
            shard(
                &run,
                i,
                ShardStatus::Failed,
                60.0,
                start,
                start + 50_000 + u64::from(i % 13) * 1_000,
            )
        })
        .collect();
    Rich {
        run,
        shards,
        cases,
        links: ReportLinks::default(),
    }
}

/// Writes the rich example's reports to `$REPORT_DUMP` for eyeballing.
#[test]
fn dump_examples_when_asked() {
    let Ok(dir) = std::env::var("REPORT_DUMP") else {
        return;
    };
    let rich = Rich::new();
    let input = rich.input();
    let dir = std::path::Path::new(&dir);
    std::fs::write(
        dir.join("summary.md"),
        super::markdown::summary(&input, usize::MAX),
    )
    .unwrap();
    let mut html = Vec::new();
    super::html::render(&input, &mut html).unwrap();
    std::fs::write(dir.join("index.html"), html).unwrap();
    let mut junit = Vec::new();
    super::junit_xml::write(&input, &mut junit).unwrap();
    std::fs::write(dir.join("junit.xml"), junit).unwrap();
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&super::ctrf::to_json(&input)).unwrap(),
    )
    .unwrap();
}

/// Empty runs, pending shards without times, clocks that disagree and
/// absurd numbers: every writer still produces a sane document.
#[test]
fn degenerate_inputs_do_not_panic() {
    use crate::domain::model::RunStatus;

    let mut empty = synthetic(0, 0);
    empty.run.status = RunStatus::Errored;
    empty.run.error = Some("2 shards never reported: 0, 1".into());
    empty.run.finished_ms = None;

    let mut odd = synthetic(3, 3);
    odd.run.finished_ms = Some(T0 - 5_000); // finished "before" it started
    odd.shards[0].started_ms = Some(T0 - 10_000); // a worker clock behind
    odd.shards[0].finished_ms = Some(T0 - 20_000); // and finished before start
    odd.shards[1] = ShardRecord::pending(odd.shards[1].id, f64::NAN, 0);
    odd.shards[2].estimated_secs = 1e300;
    odd.cases[0].1.duration_secs = f64::INFINITY;
    odd.cases[1].1.duration_secs = -4.0;
    odd.cases[2].1.line = Some(u32::MAX);
    odd.links.shard_logs = vec![None; 50];

    for rich in [&empty, &odd] {
        let input = rich.input();
        let md = super::markdown::summary(&input, super::markdown::GITHUB_SUMMARY_MAX_BYTES);
        assert!(md.starts_with("## "));
        let mut html = Vec::new();
        super::html::render(&input, &mut html).unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(
            !html.contains("NaN") && !html.contains("inf"),
            "non-finite number in the page"
        );
        let doc = super::ctrf::to_json(&input);
        let summary = &doc["results"]["summary"];
        assert!(summary["stop"].as_u64().unwrap() >= summary["start"].as_u64().unwrap());
        let mut junit = Vec::new();
        super::junit_xml::write(&input, &mut junit).unwrap();
        assert!(String::from_utf8(junit).unwrap().contains("</testsuites>"));
    }
    let md = super::markdown::summary(&empty.input(), usize::MAX);
    assert!(md.starts_with("## ⚠️ Run errored: 0 tests\n"), "{md}");
    assert!(md.contains("> **Run error:** 2 shards never reported: 0, 1"));
}
