//! collect: apply each shard result to the run exactly once.
//!
//! Duplicated and late deliveries are normal (at-least-once queues, a
//! redelivered job executed twice). The run store's conditional
//! `complete_shard` decides which result counts; `begin_report` decides which
//! collector hands the finished run to report. Both are safe to repeat, so
//! a collector that crashes anywhere can simply be retried.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use tracing::Instrument;

use crate::app::handlers::execute::try_of_junit_key;
use crate::app::handlers::{Ports, decode, encode};
use crate::app::messages::{Execution, MESSAGE_VERSION, QueueName, ReportJob, ShardResult, keys};
use crate::app::ports::{Completion, ShardCompletion, content_type};
use crate::domain::junit::{self, Limits};
use crate::domain::model::{Attempt, Counts, Outcome, ShardStatus, TestCase};
use crate::errors::HandlerError;

/// Longest error text stored on a shard (the log holds the rest).
const MAX_SHARD_ERROR_BYTES: usize = 8 * 1024;

/// What collect did with one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectOutcome {
    /// This result completed its shard.
    Applied {
        status: ShardStatus,
        handed_to_report: bool,
    },
    /// The shard was already completed by another delivery.
    Duplicate { handed_to_report: bool },
}

pub async fn collect(ports: &Ports, body: &str) -> Result<CollectOutcome, HandlerError> {
    let result: ShardResult = decode("shard result", body)?;
    let span = tracing::info_span!("collect", run_id = %result.shard.run, shard_id = %result.shard, attempt = result.attempt);
    apply(ports, result).instrument(span).await
}

/// The work of [`collect`], inside the run/shard span.
async fn apply(ports: &Ports, result: ShardResult) -> Result<CollectOutcome, HandlerError> {
    let (cases, status, error) = match &result.execution {
        Execution::Completed { .. } => {
            let (cases, unreadable) = read_results(ports, &result).await?;
            let status = if !unreadable.is_empty() {
                ShardStatus::Errored
            } else if !cases.iter().any(|c| c.outcome.is_failure()) {
                ShardStatus::Passed
            } else {
                ShardStatus::Failed
            };
            let error = (!unreadable.is_empty()).then(|| unreadable.join("\n"));
            (cases, status, error)
        }
        Execution::Errored { reason, .. } => {
            // Keep whatever JUnit the shard did write: a timeout midway still
            // tells which tests ran.
            let (cases, _) = read_results(ports, &result).await?;
            let mut error = reason.clone();
            if !result.log_tail.is_empty() {
                error.push_str("\n--- last lines of the log ---\n");
                error.push_str(&result.log_tail);
            }
            (cases, ShardStatus::Errored, Some(error))
        }
    };

    // Cases first: once the shard is marked complete, report may read them.
    let mut lines = String::new();
    for case in &cases {
        lines.push_str(&encode(case));
        lines.push('\n');
    }
    ports
        .blobs
        .put(
            &keys::cases(result.shard, result.attempt),
            lines.into_bytes(),
            content_type::JSON_LINES,
        )
        .await?;

    let completion = ShardCompletion {
        shard: result.shard,
        attempt: result.attempt,
        status,
        counts: count(&cases),
        started_ms: result.started_ms,
        finished_ms: result.finished_ms,
        error: error.map(|e| truncate_bytes(e, MAX_SHARD_ERROR_BYTES)),
    };
    let applied = ports.store.complete_shard(&completion).await?;
    let all_done = match applied {
        Completion::Applied {
            shards_done,
            shard_count,
        } => shards_done >= shard_count,
        // A retry of a collect that crashed before its hand-off must still
        // be able to make it; begin_report stays the single arbiter.
        Completion::AlreadyCompleted => true,
    };
    let handed_to_report = all_done && ports.store.begin_report(result.shard.run).await?;
    if handed_to_report {
        let job = ReportJob {
            v: MESSAGE_VERSION,
            run: result.shard.run,
        };
        ports
            .queue
            .send_batch(QueueName::Reports, vec![encode(&job)])
            .await?;
        tracing::info!("last shard collected; run handed to report");
    }
    Ok(match applied {
        Completion::Applied { .. } => CollectOutcome::Applied {
            status,
            handed_to_report,
        },
        Completion::AlreadyCompleted => {
            tracing::info!("duplicate shard result ignored");
            CollectOutcome::Duplicate { handed_to_report }
        }
    })
}

/// Reads the result's JUnit files and folds retries into single cases.
/// Unreadable files are named in the second value, never dropped silently.
async fn read_results(
    ports: &Ports,
    result: &ShardResult,
) -> Result<(Vec<TestCase>, Vec<String>), HandlerError> {
    let keys = if result.junit_keys.is_empty() {
        let keys = ports
            .blobs
            .list(&keys::junit_prefix(result.shard, result.attempt))
            .await?;
        if keys.len() != result.junit_files as usize {
            // Execute uploads every file before it sends the result, so a
            // short listing is a store that lost data: retry, then DLQ.
            return Err(HandlerError::Io {
                context: format!(
                    "listing the JUnit files of shard {} attempt {}",
                    result.shard, result.attempt
                ),
                source: std::io::Error::other(format!(
                    "found {} of the {} files execute uploaded",
                    keys.len(),
                    result.junit_files
                )),
            });
        }
        keys
    } else {
        result.junit_keys.clone()
    };
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for key in &keys {
        let bytes = ports.blobs.get(key).await?;
        match junit::read(&bytes[..], key, &Limits::default()) {
            Ok(report) => files.push((key.clone(), report.cases)),
            Err(e) => unreadable.push(format!("unreadable JUnit `{key}`: {e}")),
        }
    }
    Ok((fold_files(files), unreadable))
}

/// Folds the cases of one execution's JUnit files, given as `(key, cases)`.
///
/// Files are grouped by the try that wrote them (read from the upload name,
/// see [`junit_upload_name`](crate::app::handlers::execute::junit_upload_name)):
/// one run of the command may write many files (one per spec, per class),
/// and a test found in two of them is two tests, not a retry. A name that
/// names no try counts as the first try: only a proven later attempt folds.
pub fn fold_files(files: Vec<(String, Vec<TestCase>)>) -> Vec<TestCase> {
    let mut tries: BTreeMap<u32, Vec<TestCase>> = BTreeMap::new();
    for (key, cases) in files {
        let try_index = try_of_junit_key(&key).unwrap_or(0);
        tries.entry(try_index).or_default().extend(cases);
    }
    fold_attempts(tries.into_values().collect())
}

/// Folds several tries of the same tests into one case per test. `tries`
/// holds each try's cases: the first run, then each retry. A later try of a
/// test replaces the earlier verdict, which becomes an [`Attempt`]. A test
/// that failed and then passed is flaky (CTRF's rule).
///
/// Cases are matched by [`TestCase::key`], one to one: a try runs a test
/// once, so within one try no two cases fold into the same test (Mocha's
/// same-titled tests stay two tests, each with its own rerun). A rerun goes
/// to a still-failing test of its key first, since failures are what is
/// re-run; a case with no test left to match is kept as a test of its own.
pub fn fold_attempts(tries: Vec<Vec<TestCase>>) -> Vec<TestCase> {
    let mut out: Vec<TestCase> = Vec::new();
    // For each test in `out`: the try that last gave it a case.
    let mut given_by: Vec<usize> = Vec::new();
    // Positions in `out` of every test of a key.
    let mut slots: HashMap<String, Vec<usize>> = HashMap::new();
    for (try_no, cases) in tries.into_iter().enumerate() {
        for mut case in cases {
            let known = slots.entry(case.key()).or_default();
            let free = |at: &usize| given_by[*at] != try_no;
            let target = known
                .iter()
                .copied()
                .filter(free)
                .find(|&at| out[at].outcome.is_failure())
                .or_else(|| known.iter().copied().find(free));
            let Some(at) = target else {
                known.push(out.len());
                given_by.push(try_no);
                out.push(case);
                continue;
            };
            given_by[at] = try_no;
            let earlier = std::mem::replace(
                &mut out[at],
                TestCase {
                    retries: Vec::new(),
                    ..case.clone()
                },
            );
            let failed_before = earlier.outcome.is_failure()
                || earlier.retries.iter().any(|a| a.outcome.is_failure());
            let mut retries = earlier.retries;
            retries.push(Attempt {
                outcome: earlier.outcome,
                duration_secs: Some(earlier.duration_secs),
                message: earlier.message,
                details: earlier.details,
            });
            retries.append(&mut case.retries);
            let merged = &mut out[at];
            merged.retries = retries;
            if failed_before && matches!(merged.outcome, Outcome::Passed | Outcome::Flaky) {
                merged.outcome = Outcome::Flaky;
            }
        }
    }
    out
}

pub fn count(cases: &[TestCase]) -> Counts {
    let mut counts = Counts::default();
    for case in cases {
        counts.record(case.outcome);
    }
    counts
}

fn truncate_bytes(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("\n…[truncated]");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, outcome: Outcome) -> TestCase {
        TestCase {
            duration_secs: 1.0,
            ..TestCase::new("s", "c", name, outcome)
        }
    }

    #[test]
    fn a_pass_after_a_failure_is_flaky_and_keeps_the_attempt() {
        let folded = fold_attempts(vec![
            vec![
                case("a", Outcome::Failed),
                case("b", Outcome::Passed),
                case("c", Outcome::Error),
            ],
            vec![case("a", Outcome::Passed), case("c", Outcome::Failed)],
        ]);
        assert_eq!(folded.len(), 3);
        assert_eq!(folded[0].outcome, Outcome::Flaky);
        assert_eq!(folded[0].retries.len(), 1);
        assert_eq!(folded[0].retries[0].outcome, Outcome::Failed);
        assert_eq!(folded[1].outcome, Outcome::Passed);
        assert_eq!(folded[2].outcome, Outcome::Failed);
        assert_eq!(folded[2].retries.len(), 1);
        let counts = count(&folded);
        assert_eq!(
            (counts.tests, counts.flaky, counts.failed, counts.passed),
            (3, 1, 1, 1)
        );
    }

    #[test]
    fn repeated_cases_within_one_try_are_kept_apart() {
        // Parametrised tests can share a name within one report; only a
        // later try is a retry.
        let folded = fold_attempts(vec![vec![
            case("a", Outcome::Passed),
            case("a", Outcome::Failed),
        ]]);
        assert_eq!(folded.len(), 2);
    }

    /// One spec file's report as mocha-junit-reporter writes it, with the
    /// test `cart adds an item` passing or failing.
    fn mocha_spec(spec: &str, failing: bool) -> Vec<TestCase> {
        let result = if failing {
            r#"<failure message="expected 2 to equal 1" type="AssertionError"><![CDATA[AssertionError: expected 2 to equal 1
    at Context.<anonymous> (test/cart.spec.js:14:29)]]></failure>"#
        } else {
            ""
        };
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="Mocha Tests" time="0.0020" tests="1" failures="{f}">
  <testsuite name="Root Suite" timestamp="2024-05-14T09:12:03" tests="0" file="{spec}" time="0.0000" failures="0">
  </testsuite>
  <testsuite name="cart" timestamp="2024-05-14T09:12:03" tests="1" file="{spec}" time="0.0020" failures="{f}">
    <testcase name="cart adds an item" time="0.0020" classname="adds an item">
      {result}
    </testcase>
  </testsuite>
</testsuites>"#,
            f = u8::from(failing)
        );
        junit::read(xml.as_bytes(), spec, &Limits::default())
            .unwrap()
            .cases
    }

    fn junit_key(try_index: u32, n: usize, base: &str) -> String {
        let shard = crate::domain::model::ShardId::new(crate::domain::model::RunId::new(), 0);
        keys::junit(
            shard,
            1,
            &crate::app::handlers::execute::junit_upload_name(try_index, n, base),
        )
    }

    /// mocha-junit-reporter with `mochaFile: "results/junit-[hash].xml"`
    /// (the usual Cypress setup) writes one file per spec: the files of one
    /// run of the command are one try, so a test title found in two specs
    /// is two tests, and the failing one stays failed.
    #[test]
    fn files_of_one_try_are_not_attempts_of_each_other() {
        let first_try = || {
            vec![
                (
                    junit_key(0, 0, "junit-0c1f.xml"),
                    mocha_spec("cypress/e2e/cart.cy.js", false),
                ),
                (
                    junit_key(0, 1, "junit-9ab2.xml"),
                    mocha_spec("cypress/e2e/checkout.cy.js", true),
                ),
            ]
        };
        let folded = fold_files(first_try());
        assert_eq!(folded.len(), 2);
        let c = count(&folded);
        assert_eq!((c.tests, c.passed, c.failed, c.flaky), (2, 1, 1, 0));
        assert!(folded.iter().all(|c| c.retries.is_empty()));
        assert_eq!(folded[1].message.as_deref(), Some("expected 2 to equal 1"));

        // A retry of the failing spec (try 1) is an attempt of that test.
        let mut with_retry = first_try();
        with_retry.push((
            junit_key(1, 0, "junit-77e0.xml"),
            mocha_spec("cypress/e2e/checkout.cy.js", false),
        ));
        let folded = fold_files(with_retry);
        let c = count(&folded);
        assert_eq!((c.tests, c.passed, c.failed, c.flaky), (2, 1, 0, 1));
        assert_eq!(folded[1].outcome, Outcome::Flaky);
        assert_eq!(folded[1].retries.len(), 1);
        assert_eq!(folded[1].retries[0].outcome, Outcome::Failed);
        assert!(folded[0].retries.is_empty());
    }

    /// Upload names are read back to their try; a name testexec did not
    /// make is taken as the first try, where nothing folds.
    #[test]
    fn keys_name_their_try() {
        use crate::app::handlers::execute::{junit_upload_name, try_of_junit_key};
        assert_eq!(try_of_junit_key(&junit_key(0, 3, "try-2.xml")), Some(0));
        assert_eq!(try_of_junit_key(&junit_key(12, 0, "TEST-a.xml")), Some(12));
        assert_eq!(try_of_junit_key(&junit_upload_name(1, 0, "x")), Some(1));
        for other in ["runs/r/junit/report.xml", "try-x-0-a.xml", "try-1", ""] {
            assert_eq!(try_of_junit_key(other), None, "{other}");
        }
        let folded = fold_files(vec![
            ("a/junit.xml".into(), vec![case("t", Outcome::Failed)]),
            ("b/junit.xml".into(), vec![case("t", Outcome::Passed)]),
        ]);
        assert_eq!(folded.len(), 2);
    }

    /// Two same-titled tests that both failed and were both re-run: each
    /// rerun is an attempt of one of them, failing ones first, so neither
    /// rerun is lost and no test absorbs two.
    #[test]
    fn reruns_of_same_titled_tests_fold_one_to_one() {
        let folded = fold_attempts(vec![
            vec![case("a", Outcome::Failed), case("a", Outcome::Failed)],
            vec![case("a", Outcome::Passed), case("a", Outcome::Passed)],
        ]);
        assert_eq!(folded.len(), 2);
        assert!(folded.iter().all(|c| c.outcome == Outcome::Flaky));
        assert!(folded.iter().all(|c| c.retries.len() == 1));

        // Only the failing one was re-run (a selection by id): its rerun
        // goes to it, not to the passing twin.
        let folded = fold_attempts(vec![
            vec![case("a", Outcome::Failed), case("a", Outcome::Passed)],
            vec![case("a", Outcome::Passed)],
        ]);
        assert_eq!(
            folded.iter().map(|c| c.outcome).collect::<Vec<_>>(),
            [Outcome::Flaky, Outcome::Passed]
        );
        assert!(folded[1].retries.is_empty());

        // A later try with more cases of a name than before keeps the extra
        // one as a test of its own rather than dropping it.
        let folded = fold_attempts(vec![
            vec![case("a", Outcome::Failed)],
            vec![case("a", Outcome::Passed), case("a", Outcome::Failed)],
        ]);
        assert_eq!(
            folded.iter().map(|c| c.outcome).collect::<Vec<_>>(),
            [Outcome::Flaky, Outcome::Failed]
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = truncate_bytes("ééééé".to_string(), 3);
        assert!(s.starts_with('é'));
        assert!(s.ends_with("[truncated]"));
    }
}
