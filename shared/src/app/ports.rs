//! The ports: what the handlers need from the outside world, as traits.
//!
//! Handlers see only these traits, never a cloud SDK. Each backend
//! (`backends::local`, later `backends::aws`, ...) implements them, and one
//! contract test suite (`crate::testkit::contract`) holds every backend to the same
//! behaviour. Handlers never consume messages themselves: a host delivers
//! bodies to them and acknowledges by the handler's result. Lambda's SQS
//! event source does that for the cloud; hosts that pump queues in their own
//! process (`testexec run`, a worker container) use [`QueueConsumer`].

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

use crate::app::messages::QueueName;
use crate::app::run_list::{RunPage, RunQuery};
use crate::domain::history::{HistoryScope, TestHistory};
use crate::domain::model::{
    Counts, Run, RunId, RunStatus, ShardId, ShardRecord, ShardStatus, SourceRef,
};
use crate::errors::{BlobError, NotifyError, QueueError, SourceError, StoreError};

/// A shard's completion, applied to the run store exactly once.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardCompletion {
    pub shard: ShardId,
    pub attempt: u32,
    pub status: ShardStatus,
    pub counts: Counts,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub error: Option<String>,
}

/// What [`RunStore::complete_shard`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// This call completed the shard and added its counts to the run.
    Applied { shards_done: u32, shard_count: u32 },
    /// The shard was already completed (a duplicate or late delivery);
    /// nothing changed.
    AlreadyCompleted,
}

/// Error texts (of a run or a shard) a cloud run store keeps: item and
/// document limits (DynamoDB 400 KB, Firestore 1 MiB, Table entities 1 MiB)
/// must hold whatever a runner printed, so longer ones are cut.
pub const MAX_ERROR_BYTES: usize = 16 * 1024;

/// `error` cut to [`MAX_ERROR_BYTES`] on a character boundary, marked so a
/// reader knows there was more (the full text is in the shard's log).
pub fn cap_error(error: &str) -> String {
    let cut = crate::domain::report::truncate_bytes(error, MAX_ERROR_BYTES);
    if cut.len() == error.len() {
        error.to_string()
    } else {
        format!("{cut}\n…[truncated]")
    }
}

/// Refuses a delivery key a cloud store cannot hold: empty, or over the
/// store's own key limit (`max_bytes`).
pub fn check_delivery_key(key: &str, max_bytes: usize) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > max_bytes {
        return Err(StoreError::Invalid {
            run: format!(
                "delivery {}",
                crate::domain::report::truncate_bytes(key, 64)
            ),
            message: format!(
                "a delivery key must be 1..={max_bytes} bytes, got {}",
                key.len()
            ),
        });
    }
    Ok(())
}

/// Durable state of runs and shards, plus webhook-delivery dedupe.
///
/// Every write that a redelivered message can repeat is conditional, so
/// repeating it changes nothing.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Writes a new run with its pending shards, atomically. A second call
    /// for the same run id fails with [`StoreError::Conflict`].
    async fn create_run(&self, run: &Run, shards: &[ShardRecord]) -> Result<(), StoreError>;

    async fn get_run(&self, id: RunId) -> Result<Option<Run>, StoreError>;

    /// Newest first, at most `limit`.
    async fn list_runs(&self, limit: usize) -> Result<Vec<Run>, StoreError>;

    /// One page of the run list (`GET /runs`, the runs page): the runs
    /// matching `query`'s filters, newest first, after its cursor.
    ///
    /// This default pages within the newest runs, as `list_runs` gives
    /// them: it reads a page and one more, and reads 4 times as many while
    /// the page is not complete (filters, a cursor further down), up to
    /// [`MAX_SCAN`](crate::app::run_list::MAX_SCAN) runs; `truncated` says
    /// when older runs were out of reach. The plain first page costs what
    /// `list_runs(limit + 1)` costs (on Firestore one read per run).
    /// A store that can start at the cursor itself (SQLite) overrides it,
    /// with the same filter code (`RunPage::collect`).
    async fn list_runs_page(&self, query: &RunQuery) -> Result<RunPage, StoreError> {
        use crate::app::run_list::{MAX_PAGE, MAX_SCAN};
        let mut window = (query.limit.clamp(1, MAX_PAGE) + 1).min(MAX_SCAN);
        loop {
            let newest = self.list_runs(window).await?;
            let exhaustive = newest.len() < window;
            let page = RunPage::collect(newest.into_iter().map(Ok), query, exhaustive)?;
            if page.next.is_some() || !page.truncated || window == MAX_SCAN {
                return Ok(page);
            }
            window = (window * 4).min(MAX_SCAN);
        }
    }

    /// All shards of a run, by index.
    async fn list_shards(&self, id: RunId) -> Result<Vec<ShardRecord>, StoreError>;

    /// Moves a pending shard to its final status and adds its counts to the
    /// run, in one atomic step, only if the shard is still pending.
    async fn complete_shard(&self, completion: &ShardCompletion) -> Result<Completion, StoreError>;

    /// Repairs a run whose counts fall short of its completed shards: a
    /// store whose `complete_shard` is more than one write (DynamoDB) loses
    /// the count if the collector dies between its writes, and Firestore's
    /// if a collector of the previous release completed the shard during
    /// an upgrade. Recounts the run
    /// from its shard records if every completed shard was recorded before
    /// `settled_before_ms` (older than any collector can still be running)
    /// and the run's `shards_done` is short; true if it changed the run.
    /// The sweep calls it for overdue runs. A store that completes a shard
    /// in one atomic write has nothing to repair.
    async fn recount_run(&self, id: RunId, settled_before_ms: u64) -> Result<bool, StoreError> {
        let _ = (id, settled_before_ms);
        Ok(false)
    }

    /// The hand-off to report: `Running → Reporting`, only when every shard
    /// is done. Returns true for the one caller that made the transition.
    async fn begin_report(&self, id: RunId) -> Result<bool, StoreError>;

    /// The final write: `Reporting → status`. Returns true if this call made
    /// it, false if the run was already final.
    async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        finished_ms: u64,
        error: Option<String>,
    ) -> Result<bool, StoreError>;

    /// Runs that are not final yet (`Running` or `Reporting`), for the sweep.
    async fn list_active_runs(&self) -> Result<Vec<Run>, StoreError>;

    /// Records a delivery id (e.g. `X-GitHub-Delivery`) the first time it is
    /// seen. Returns false if it was seen within `ttl_ms` (a redelivery).
    async fn claim_delivery(&self, key: &str, now_ms: u64, ttl_ms: u64)
    -> Result<bool, StoreError>;

    /// Per-test history (`domain::history`): the stored records of `ids`
    /// in `scope` (keyed by `history::storage_key`), leaving out tests never
    /// seen and records past their TTL at `now_ms`. One point read per test
    /// (batched where the backend can), in any order.
    async fn load_history(
        &self,
        scope: &HistoryScope,
        ids: &[String],
        now_ms: u64,
    ) -> Result<Vec<TestHistory>, StoreError> {
        let _ = (scope, ids, now_ms);
        Err(StoreError::Unsupported {
            operation: "test history",
        })
    }

    /// Up to `limit` unexpired records of `scope`, in key order: for
    /// `testexec flaky` and dashboards. Only stores that can list a scope
    /// cheaply implement it (SQLite, Firestore, Azure Tables; DynamoDB keeps
    /// one partition per test and answers `Unsupported`).
    async fn list_history(
        &self,
        scope: &HistoryScope,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<TestHistory>, StoreError> {
        let _ = (scope, limit, now_ms);
        Err(StoreError::Unsupported {
            operation: "listing test history",
        })
    }

    /// Writes whole records (each replaces the stored one), batched; the
    /// record's `expires_ms` is its TTL. Two reports of one suite racing
    /// may lose one run's entries: history is evidence, not a ledger.
    async fn save_history(
        &self,
        scope: &HistoryScope,
        records: &[TestHistory],
    ) -> Result<(), StoreError> {
        let _ = (scope, records);
        Err(StoreError::Unsupported {
            operation: "test history",
        })
    }
}

/// Content types the handlers write, so browsers open reports properly.
pub mod content_type {
    pub const GZIP: &str = "application/gzip";
    pub const JSON: &str = "application/json";
    pub const JSON_LINES: &str = "application/x-ndjson";
    pub const XML: &str = "application/xml";
    pub const HTML: &str = "text/html; charset=utf-8";
    pub const MARKDOWN: &str = "text/markdown; charset=utf-8";
    pub const TEXT: &str = "text/plain; charset=utf-8";
}

/// Object storage for source snapshots, logs, JUnit, cases and reports.
/// Writes to one key are whole-object replacements (idempotent).
#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), BlobError>;

    /// Streams a local file up (multipart where the backend needs it).
    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> Result<(), BlobError>;

    /// Fails with [`BlobError::NotFound`] when the key does not exist.
    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError>;

    /// Streams an object down into a local file.
    async fn get_to_file(&self, key: &str, path: &Path) -> Result<(), BlobError>;

    async fn exists(&self, key: &str) -> Result<bool, BlobError>;

    /// Keys under a prefix, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;

    /// A link a person can open (a presigned URL, a file path, a served
    /// page), if the backend can make one.
    async fn link(&self, key: &str) -> Result<Option<String>, BlobError>;
}

/// The sending side of the pipeline's queues. Delivery is at-least-once.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends the bodies; the backend batches them within its limits and
    /// retries entries that failed. An error means some body may not have
    /// been sent, so callers retry the whole call (consumers are idempotent).
    async fn send_batch(&self, queue: QueueName, bodies: Vec<String>) -> Result<(), QueueError>;
}

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Whatever the backend needs to ack (SQS receipt handle, local id).
    pub handle: String,
    pub body: String,
    /// 1-based receive count.
    pub attempt: u32,
}

/// The consuming side of the queues, for hosts that pump them in-process
/// (the local pipeline, a polling worker) and for the contract suite.
#[async_trait]
pub trait QueueConsumer: Send + Sync {
    /// Waits up to `wait` for one message; it stays invisible to other
    /// consumers until acked, released, or its visibility timeout passes.
    async fn receive(
        &self,
        queue: QueueName,
        wait: Duration,
    ) -> Result<Option<Received>, QueueError>;

    /// Deletes a handled message. A stale handle is not an error: the
    /// message simply comes back, as with SQS.
    async fn ack(&self, queue: QueueName, handle: &str) -> Result<(), QueueError>;

    /// Makes a message whose handler failed visible again at once.
    async fn release(&self, queue: QueueName, handle: &str) -> Result<(), QueueError>;

    /// How long a received message stays invisible (its lease). A consumer
    /// holding a message longer renews it with [`QueueConsumer::extend`]
    /// (`Pipeline::work` does, every third of this).
    fn visibility(&self, queue: QueueName) -> Duration;

    /// Renews the lease of a message in hand for another
    /// [`QueueConsumer::visibility`] from now, so a job that outlasts the
    /// timeout (a 30-minute shard) is not delivered to a second worker. A
    /// stale handle (the lease already expired and the message was taken
    /// again) is not an error: that delivery is simply a duplicate, which
    /// the handlers tolerate.
    async fn extend(&self, queue: QueueName, handle: &str) -> Result<(), QueueError>;

    /// Moves a message whose handler failed permanently (undecodable, an
    /// unknown message version: no retry can help) to the dead letters at
    /// once, instead of redelivering it until its receives run out. The
    /// caller logs `reason`; backends that can keep it with the message do.
    /// A stale handle is not an error (the message is someone else's now).
    async fn dead_letter(
        &self,
        queue: QueueName,
        message: &Received,
        reason: &str,
    ) -> Result<(), QueueError>;

    /// Bodies moved to the queue's dead-letter queue.
    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<String>, QueueError>;

    /// True when no message is waiting or in flight on any queue (best
    /// effort for remote queues, whose counts are approximate).
    async fn is_idle(&self) -> Result<bool, QueueError>;

    /// How many messages wait, are in flight and sit in the dead letters,
    /// for the queue-depth metrics; `None` where the backend cannot tell
    /// cheaply (SQS, Pub/Sub and Storage Queues publish these to their
    /// cloud's own monitoring, and asking would cost an API call a sample).
    async fn backlog(&self, _queue: QueueName) -> Result<Option<Backlog>, QueueError> {
        Ok(None)
    }
}

/// A queue's message counts (see [`QueueConsumer::backlog`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub waiting: u64,
    pub in_flight: u64,
    pub dead_letters: u64,
}

/// Materialises a repository at a commit into a local directory.
#[async_trait]
pub trait SourceProvider: Send + Sync {
    async fn fetch(&self, source: &SourceRef, dest: &Path) -> Result<(), SourceError>;

    /// Pins a moving reference (a branch or tag) to the commit it names now,
    /// so every shard of a run sees the same tree. Trigger calls it before
    /// anything else; sources that need no pinning return it unchanged.
    async fn resolve(&self, source: &SourceRef) -> Result<SourceRef, SourceError> {
        Ok(source.clone())
    }
}

/// What a notifier is told when a run finishes.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub run: Run,
    pub shards: Vec<ShardRecord>,
    /// GitHub-flavoured Markdown, within GitHub's 65,535-byte limit.
    pub summary_markdown: String,
    pub failures: Vec<crate::domain::model::TestCase>,
    pub report_link: Option<String>,
    /// The run against its tests' history (new failures first), when the
    /// backend keeps history; annotations name owners from it.
    pub triage: Option<crate::domain::history::triage::Triage>,
}

/// Tells the outside world about a run (GitHub Check Runs, commit statuses).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Called once when the run is planned. May return an external id (a
    /// check run id) that is stored on the run.
    async fn run_started(&self, run: &Run) -> Result<Option<u64>, NotifyError>;

    /// Called by report. Must be safe to call twice for the same run.
    async fn run_finished(&self, outcome: &RunOutcome) -> Result<(), NotifyError>;
}

/// A notifier for hosts with nobody to tell.
pub struct NoNotifier;

#[async_trait]
impl Notifier for NoNotifier {
    async fn run_started(&self, _run: &Run) -> Result<Option<u64>, NotifyError> {
        Ok(None)
    }

    async fn run_finished(&self, _outcome: &RunOutcome) -> Result<(), NotifyError> {
        Ok(())
    }
}

/// Time, injectable so the sweep's deadlines can be tested.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod error_cap_tests {
    use super::*;

    #[test]
    fn stored_errors_are_capped_on_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_BYTES);
        let capped = cap_error(&long);
        assert!(capped.len() <= MAX_ERROR_BYTES + 20 && capped.ends_with("[truncated]"));
        assert!(capped.starts_with("éé"));
        assert_eq!(cap_error("short"), "short");
        let exact = "x".repeat(MAX_ERROR_BYTES);
        assert_eq!(cap_error(&exact), exact);
    }
}
