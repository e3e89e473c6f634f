//! collect: apply each shard result to the run exactly once.
//!
//! Duplicated and late deliveries are normal (at-least-once queues, a
//! redelivered job executed twice). The run store's conditional
//! `complete_shard` decides which result counts; `begin_report` decides which
//! collector hands the finished run to report. Both are safe to repeat, so
//! a collector that crashes anywhere can simply be retried.

use std::collections::HashMap;

use serde::Serialize;

use tracing::Instrument;

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
    // One entry per try (the first run, then each re-run of failed tests):
    // all files a try wrote are that try's cases, in write order.
    let mut tries: Vec<(String, Vec<TestCase>)> = Vec::new();
    let mut unreadable = Vec::new();
    for key in &keys {
        let bytes = ports.blobs.get(key).await?;
        let try_of = try_label(key);
        let cases = match junit::read(&bytes[..], key, &Limits::default()) {
            Ok(report) => report.cases,
            Err(e) => {
                unreadable.push(format!("unreadable JUnit `{key}`: {e}"));
                continue;
            }
        };
        match tries.last_mut() {
            Some((label, same)) if *label == try_of => same.extend(cases),
            _ => tries.push((try_of, cases)),
        }
    }
    Ok((
        fold_attempts(tries.into_iter().map(|(_, cases)| cases).collect()),
        unreadable,
    ))
}

/// The try a JUnit key belongs to (`.../junit/try-001-000003-x.xml` →
/// `try-001`); a key in another shape is a try of its own.
fn try_label(key: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    match name
        .strip_prefix("try-")
        .and_then(|rest| rest.split_once('-'))
    {
        Some((digits, _)) if digits.bytes().all(|b| b.is_ascii_digit()) => format!("try-{digits}"),
        _ => key.to_string(),
    }
}

/// Folds several tries of the same tests into one case per test. Files are
/// given in the order they were written: a later try of a test replaces an
/// earlier one, whose verdict becomes an [`Attempt`]. A test that failed and
/// then passed is flaky (CTRF's rule).
pub fn fold_attempts(tries: Vec<Vec<TestCase>>) -> Vec<TestCase> {
    let mut out: Vec<TestCase> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (try_no, cases) in tries.into_iter().enumerate() {
        for mut case in cases {
            let key = case.key();
            let Some(&at) = index.get(&key).filter(|_| try_no > 0) else {
                index.insert(key, out.len());
                out.push(case);
                continue;
            };
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

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = truncate_bytes("ééééé".to_string(), 3);
        assert!(s.starts_with('é'));
        assert!(s.ends_with("[truncated]"));
    }
}
