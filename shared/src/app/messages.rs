//! The versioned JSON messages that travel between the four functions.
//!
//! Every message carries `v` so a deployment can roll forward while old
//! messages are still queued. Messages stay far below SQS's 256 KiB: a shard
//! job whose file list would not fit travels as a blob key instead (see
//! [`JobEnvelope`]).

use serde::{Deserialize, Serialize};

use crate::domain::manifest::Suite;
use std::path::Path;

use crate::domain::model::{Origin, RunId, ShardId, SourceRef};

/// The message version this build writes and reads.
pub const MESSAGE_VERSION: u32 = 1;

/// The largest message body a handler enqueues. SQS allows 256 KiB; the
/// margin leaves room for attributes and envelope overhead.
pub const MAX_MESSAGE_BYTES: usize = 200 * 1024;

/// Refuses a batch in which any body is over [`MAX_MESSAGE_BYTES`], before
/// anything is sent: all or nothing, so a retry of the call cannot
/// double-send the bodies that did fit.
pub fn check_body_sizes(
    queue: QueueName,
    bodies: &[String],
) -> Result<(), crate::errors::QueueError> {
    match bodies.iter().find(|b| b.len() > MAX_MESSAGE_BYTES) {
        Some(big) => Err(crate::errors::QueueError::TooLarge {
            queue: queue.as_str(),
            size: big.len(),
            limit: MAX_MESSAGE_BYTES,
        }),
        None => Ok(()),
    }
}

/// The queues of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueName {
    /// trigger → execute: one [`JobEnvelope`] per shard.
    Shards,
    /// execute → collect: one [`ShardResult`] per execution.
    Results,
    /// collect / sweep → report: one [`ReportJob`] per finished run.
    Reports,
    /// intake → trigger: one [`TriggerJob`] per accepted request, for hosts
    /// that must answer before the slow work (a webhook behind API Gateway).
    Requests,
}

impl QueueName {
    pub const ALL: [QueueName; 4] = [
        QueueName::Shards,
        QueueName::Results,
        QueueName::Reports,
        QueueName::Requests,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Shards => "shards",
            QueueName::Results => "results",
            QueueName::Reports => "reports",
            QueueName::Requests => "requests",
        }
    }

    /// The function that consumes this queue.
    pub fn function(self) -> &'static str {
        match self {
            QueueName::Requests => "trigger",
            QueueName::Shards => "execute",
            QueueName::Results => "collect",
            QueueName::Reports => "report",
        }
    }

    /// The queue a function consumes, by the function's name (`execute`)
    /// or the queue's own (`shards`): what `POST /queues/{queue}` and
    /// `testexec worker --queue` take.
    pub fn from_function(name: &str) -> Option<QueueName> {
        QueueName::ALL
            .into_iter()
            .find(|q| q.function() == name || q.as_str() == name)
    }
}

/// Everything an executor needs to run one shard, with no store access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardJob {
    pub v: u32,
    pub shard: ShardId,
    pub shard_count: u32,
    /// The suite exactly as planned (a later manifest change cannot alter a
    /// running shard, so a redelivered job runs the same tests).
    pub suite: Suite,
    /// Blob key of the run's source snapshot (`runs/<id>/source.tar.gz`).
    pub source_key: String,
    /// Files this shard runs (expanded into `{files}`).
    pub files: Vec<String>,
    /// Test selectors this shard runs (expanded into `{tests}`); used when a
    /// slow file was split by test or when only failed tests are re-run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<String>,
    /// Selectors of tests in `files` that other shards run (a file split by
    /// test: this shard runs "the rest of it"), expanded into `{skip_tests}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_tests: Vec<String>,
    /// Early flake detection: run tests the history has never seen this
    /// many extra times. Absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tests: Option<NewTestCheck>,
    /// When trigger queued the job (ms since the epoch), for the shard
    /// queue-wait metric. Absent in jobs queued before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_ms: Option<u64>,
}

/// Early flake detection for one shard: the tests of its first try that
/// the timing history at `history_key` has never seen run `runs` more
/// times, so a test that is flaky from the start is caught before it
/// merges (docs/flaky.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTestCheck {
    pub runs: u32,
    /// Blob key of the suite's timing history, which names every test of
    /// the files it knows.
    pub history_key: String,
}

/// A shard job as it travels: inline when small, else by blob key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobEnvelope {
    Inline { job: Box<ShardJob> },
    Stored { v: u32, shard: ShardId, key: String },
}

impl JobEnvelope {
    pub fn shard(&self) -> ShardId {
        match self {
            JobEnvelope::Inline { job } => job.shard,
            JobEnvelope::Stored { shard, .. } => *shard,
        }
    }
}

/// How an execution ended, before its JUnit is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Execution {
    /// The command ran to an exit code and wrote JUnit.
    Completed { exit_code: i32 },
    /// Something kept the shard from producing a verdict; `reason` says what
    /// (setup failed, timed out, no JUnit written, source missing...).
    Errored {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
}

/// execute → collect: what one execution of a shard produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardResult {
    pub v: u32,
    pub shard: ShardId,
    /// Delivery attempt of the shard job that produced this (1-based). Blobs
    /// live under `attempt-<a>/` so two executions never overwrite each other.
    pub attempt: u32,
    pub execution: Execution,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub log_key: String,
    /// How many JUnit files were uploaded, under
    /// `keys::junit_prefix(shard, attempt)`. The keys themselves are not
    /// listed here: a Maven project writes one file per class, and 2,000
    /// keys would not fit in a queue message; collect lists the prefix.
    #[serde(default)]
    pub junit_files: u32,
    /// The uploaded keys, as results written before `junit_files` carried
    /// them; new results leave it empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub junit_keys: Vec<String>,
    /// The last lines of the log, so an errored shard explains itself
    /// without opening the log.
    #[serde(default)]
    pub log_tail: String,
}

/// collect / sweep → report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportJob {
    pub v: u32,
    pub run: RunId,
}

/// A run request accepted by an intake (webhook, HTTP API) and queued for
/// the trigger, so the intake can answer at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerJob {
    pub v: u32,
    pub request: RunRequest,
}

/// Blob keys, in one place so every handler and backend agrees on them.
pub mod keys {
    use crate::domain::model::{RunId, ShardId};

    pub fn source(run: RunId) -> String {
        format!("runs/{run}/source.tar.gz")
    }

    pub fn job(shard: ShardId) -> String {
        format!("runs/{}/shards/{}/job.json", shard.run, shard.index)
    }

    pub fn attempt_prefix(shard: ShardId, attempt: u32) -> String {
        format!(
            "runs/{}/shards/{}/attempt-{attempt}/",
            shard.run, shard.index
        )
    }

    pub fn log(shard: ShardId, attempt: u32) -> String {
        format!("{}log.txt", attempt_prefix(shard, attempt))
    }

    pub fn junit(shard: ShardId, attempt: u32, name: &str) -> String {
        format!("{}{name}", junit_prefix(shard, attempt))
    }

    /// Where an execution's JUnit files live; their names sort in the order
    /// they were written (`try-<ttt>-<nnnnnn>-<file>`).
    pub fn junit_prefix(shard: ShardId, attempt: u32) -> String {
        format!("{}junit/", attempt_prefix(shard, attempt))
    }

    /// The folded test cases of one applied execution (JSON lines), written
    /// by collect and read by report.
    pub fn cases(shard: ShardId, attempt: u32) -> String {
        format!("{}cases.jsonl", attempt_prefix(shard, attempt))
    }

    pub fn report(run: RunId, file: &str) -> String {
        format!("runs/{run}/report/{file}")
    }

    /// What trigger hands report for the test history: the `[flaky]` /
    /// `[quarantine]` policy and the repository's `CODEOWNERS`.
    pub fn history_context(run: RunId) -> String {
        format!("runs/{run}/history-context.json")
    }

    /// Timing history the next plan of this repo and suite balances with.
    pub fn timings(repo: &str, suite: &str) -> String {
        format!("history/{repo}/{suite}/timings.json")
    }
}

/// A request to start a run, already normalised from whatever event carried
/// it (CLI, HTTP API, schedule, direct invoke, GitHub webhook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub source: SourceRef,
    pub origin: Origin,
    /// Suite to run; `None` means the manifest's only suite.
    pub suite: Option<String>,
    /// Overrides the manifest's shard count.
    pub shards: Option<u32>,
    /// Run only these test selectors; empty = all.
    #[serde(default)]
    pub only_tests: Vec<String>,
    /// "Rerun failed": run only the tests that failed in this earlier run.
    #[serde(default)]
    pub rerun_failed_of: Option<RunId>,
    /// Idempotency key of the delivery (e.g. `X-GitHub-Delivery`).
    #[serde(default)]
    pub delivery_id: Option<String>,
    /// A run id chosen by the intake (which answered the caller before the
    /// slow work); `None` mints one.
    #[serde(default)]
    pub run_id: Option<RunId>,
}

impl RunRequest {
    /// A request for a local directory (made absolute here: the source
    /// is read later, from wherever the worker runs).
    pub fn local(path: &Path) -> Self {
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let label = path
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "repo".into());
        Self {
            source: SourceRef {
                repo: format!("local/{}", sanitize_label(&label)),
                commit: None,
                git_ref: None,
                path: Some(path.display().to_string()),
            },
            origin: Origin::Local,
            suite: None,
            shards: None,
            only_tests: Vec::new(),
            rerun_failed_of: None,
            delivery_id: None,
            run_id: None,
        }
    }
}

/// Keeps a label usable as a blob key segment.
fn sanitize_label(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('.');
    if trimmed.is_empty() {
        "repo".into()
    } else {
        trimmed.to_string()
    }
}
