//! The local host's queues: one SQLite file (`.testexec/queue.sqlite3`)
//! holding every [`QueueName`], with the delivery semantics of SQS. Every
//! local host uses it: `testexec run`, `testexec serve`, and `testexec
//! worker` processes consuming the same state directory.
//!
//! Semantics (the same ones the pipeline relies on in SQS):
//! - At-least-once. A received message is *in flight* under a fresh handle
//!   until it is acked. If it is not acked within the visibility timeout (the
//!   consumer crashed or hung) it becomes visible again and its next delivery
//!   has `attempt + 1`. `release` makes it visible again at once.
//! - A message delivered `max_receives` times that is released or times out
//!   once more moves to the queue's dead letters (a table, listed by
//!   `dead_letters`) instead of coming back.
//! - Order among visible messages is not promised (in practice it is oldest
//!   visible first, and a redelivered message goes behind the others).
//!
//! Durability: WAL with `synchronous=NORMAL`, as the run store. A send,
//! receive, ack or release that returned survives a crash of the process;
//! an OS crash may lose the last few commits (a lost ack means a duplicate
//! delivery, which consumers tolerate anyway).
//!
//! Several processes may open the same file. Every write is one short
//! transaction taken with `BEGIN IMMEDIATE` (no read-to-write lock upgrade,
//! so no `SQLITE_BUSY` deadlock between processes) and `busy_timeout` makes
//! a writer wait for another instead of failing. Receiving marks the message
//! in the same transaction that finds it, so one message is never in flight
//! at two consumers. A send in this process wakes this process's receivers
//! at once (a [`Notify`]); sends by other processes, and leases that expire,
//! are noticed by polling every [`POLL`].
//!
//! Leases and crash recovery: each [`LocalQueue`] instance has an owner id
//! (a ULID) written on the messages it has in flight. A process that dies
//! leaves its leases behind; they expire after the visibility timeout like
//! any other. The process that owns the state directory can take them back
//! at start with [`LocalQueue::release_orphans`] instead of waiting (the
//! local pipeline uses a visibility timeout of hours).
//!
//! Visibility deadlines are wall-clock milliseconds: the clock that means
//! the same in every process and after a restart. A clock step shortens or lengthens the leases in flight
//! by the step (an early redelivery is a duplicate, which is tolerated); a
//! message that is not leased is visible whatever the clock says.
//!
//! Receives, acks and releases run inline on the calling thread rather than
//! in `spawn_blocking`: each is one indexed statement or one small
//! transaction (no fsync under WAL+NORMAL, whose checkpoints run on a
//! background thread: `sqlite_file`; measured on a file in a debug build:
//! receive ≈ 55 µs, ack ≈ 19 µs, an empty poll ≈ 8 µs), cheaper than a
//! thread hop, and inline calls keep every future cancel-safe: a dropped
//! `receive` either returned its message or leased nothing. Sends are the
//! exception: they go to one group-commit thread that commits every send
//! waiting in one transaction, so `serve`'s intake pays one commit per
//! batch of requests, not one per request, and a request's task waits for
//! it without holding an async worker thread. The slow case is another
//! process holding the write lock: `busy_timeout` then blocks the thread
//! for that transaction plus SQLite's back-off sleeps (milliseconds; at
//! most 5 s, then the call fails with `QueueError::Backend`).
//!
//! Fault injection is not built in: `testkit::faults::FaultyConsumer` wraps
//! this queue (or SQS) the same way.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::sqlite_file::{self, Checkpointer};
use crate::app::messages::QueueName;
use crate::app::ports::{Backlog, JobQueue, QueueConsumer, Received};
use crate::errors::{BackendSource, QueueError};

/// Longest visibility timeout (SQS's limit is 12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// Longest single `receive` wait; longer requests are capped to it.
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How often a waiting `receive` looks at the table for what no [`Notify`]
/// announces: sends by other processes and expired leases. One indexed read
/// per waiting receiver, so cheap; short enough that a worker process picks
/// up a shard job from `serve` without a noticeable delay.
pub const POLL: Duration = Duration::from_millis(50);

const BACKEND: &str = "sqlite";

/// Stands in for a queue name in errors of calls that span every queue.
const ALL_QUEUES: &str = "all";

/// Bumped when the schema changes; stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

// `messages.owner` is the lease owner of a delivery in flight, NULL when the
// message is not leased (never received, or released). `visible_at_ms` is
// when a lease ends; for a message that is not leased it only orders the
// queue (its send or release time). AUTOINCREMENT: ids are never reused, so
// a handle (id and receive count) can never match a later message.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT NOT NULL,
    body          TEXT NOT NULL,
    receives      INTEGER NOT NULL DEFAULT 0,
    visible_at_ms INTEGER NOT NULL,
    owner         TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (queue, visible_at_ms, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id       INTEGER PRIMARY KEY,
    queue    TEXT NOT NULL,
    body     TEXT NOT NULL,
    receives INTEGER NOT NULL,
    dead_ms  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_queue ON dead_letters (queue, dead_ms, id);
";

/// The next message a receive may take (?1 queue, ?2 now).
const NEXT_VISIBLE: &str = "SELECT id, receives FROM messages
    WHERE queue = ?1 AND (owner IS NULL OR visible_at_ms <= ?2)
    ORDER BY visible_at_ms, id LIMIT 1";

/// Messages with no receive left that are not in flight (?1 max receives,
/// ?2 now): they belong in the dead letters.
const ANY_EXHAUSTED: &str = "SELECT EXISTS(SELECT 1 FROM messages
    WHERE receives >= ?1 AND (owner IS NULL OR visible_at_ms <= ?2))";
const BURY_EXHAUSTED: &str =
    "INSERT OR REPLACE INTO dead_letters (id, queue, body, receives, dead_ms)
    SELECT id, queue, body, receives, ?2 FROM messages
    WHERE receives >= ?1 AND (owner IS NULL OR visible_at_ms <= ?2)";
const DELETE_EXHAUSTED: &str =
    "DELETE FROM messages WHERE receives >= ?1 AND (owner IS NULL OR visible_at_ms <= ?2)";

/// Tunables of a [`LocalQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// How long a received message stays invisible before it is redelivered
    /// (capped at [`MAX_VISIBILITY`]; millisecond resolution, rounded up).
    pub visibility_timeout: Duration,
    /// Deliveries a message gets before it is dead-lettered (at least 1).
    pub max_receives: u32,
}

impl Default for QueueConfig {
    /// SQS's defaults for a queue with a redrive policy of 5.
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_receives: 5,
        }
    }
}

impl QueueConfig {
    /// At least one receive; SQS's visibility ceiling, which also keeps
    /// `now + timeout` far from overflowing.
    fn normalised(self) -> Self {
        Self {
            max_receives: self.max_receives.max(1),
            visibility_timeout: self.visibility_timeout.min(MAX_VISIBILITY),
        }
    }
}

/// The local host's queues. Share it behind an `Arc`; open one per process.
pub struct LocalQueue {
    shared: Arc<Shared>,
    /// To the group-commit thread that performs every send (`None` only
    /// while dropping).
    sends: Option<std::sync::mpsc::Sender<PendingSend>>,
    group_commit: Option<std::thread::JoinHandle<()>>,
    config: QueueConfig,
    /// Written on the messages this instance has in flight.
    owner: String,
    /// The file, or `:memory:`, for errors and `Debug`.
    location: String,
    /// Stops the background WAL checkpoints when the queue goes (files only).
    _checkpointer: Option<Checkpointer>,
}

/// What the callers' threads and the group-commit thread both use.
struct Shared {
    conn: Mutex<Connection>,
    /// One per queue; woken on send and release in this instance.
    notify: [Notify; 4],
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied write:
        // an open transaction rolls back when dropped. So poison is harmless.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One `send_batch` call waiting for its commit.
struct PendingSend {
    queue: QueueName,
    bodies: Vec<String>,
    done: tokio::sync::oneshot::Sender<Result<(), QueueError>>,
}

/// Most messages one group commit takes: a bound on how long the
/// transaction holds the write lock (a few ms), not on throughput.
const MAX_GROUP_MESSAGES: usize = 1024;

/// The group-commit thread: takes every send waiting, commits them all in
/// one transaction, then answers each. Under load one commit (and one WAL
/// append) serves many requests instead of one each, and no caller's task
/// blocks an async worker thread on SQLite. Ends when the queue is dropped,
/// after committing what was already handed to it.
fn group_commit(shared: &Shared, sends: &std::sync::mpsc::Receiver<PendingSend>) {
    while let Ok(first) = sends.recv() {
        let mut messages = first.bodies.len();
        let mut group = vec![first];
        while messages < MAX_GROUP_MESSAGES {
            let Ok(next) = sends.try_recv() else { break };
            messages += next.bodies.len();
            group.push(next);
        }
        let committed = insert_all(shared, &group);
        let mut woken = [false; 4];
        for send in group {
            let slot = slot(send.queue);
            let answer = match &committed {
                Ok(()) => {
                    if !std::mem::replace(&mut woken[slot], true) {
                        shared.notify[slot].notify_waiters();
                    }
                    Ok(())
                }
                Err(message) => Err(QueueError::Backend {
                    backend: BACKEND,
                    queue: send.queue.as_str(),
                    source: message.clone().into(),
                }),
            };
            // A caller that stopped waiting (its request was cancelled) has
            // its messages queued all the same: sends are at-least-once.
            let _ = send.done.send(answer);
        }
    }
}

/// One transaction for the whole group: all of it is queued, or none.
fn insert_all(shared: &Shared, group: &[PendingSend]) -> Result<(), String> {
    let fail = |op: &'static str| move |e: rusqlite::Error| format!("{op}: {e}");
    let mut conn = shared.lock();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail("begin send"))?;
    let now = now_ms();
    {
        let mut insert = tx
            .prepare_cached("INSERT INTO messages (queue, body, visible_at_ms) VALUES (?1, ?2, ?3)")
            .map_err(fail("send"))?;
        for send in group {
            for body in &send.bodies {
                insert
                    .execute(params![send.queue.as_str(), body, now])
                    .map_err(fail("send"))?;
            }
        }
    }
    tx.commit().map_err(fail("commit send"))
}

impl Drop for LocalQueue {
    /// Commits the sends already handed over, then lets the file close:
    /// a dropped queue has closed its file (the checkpointer, dropped after
    /// this, is the last connection, whose close folds the WAL back in).
    fn drop(&mut self) {
        drop(self.sends.take());
        if let Some(thread) = self.group_commit.take() {
            // A panic in the thread was already reported on its way out.
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for LocalQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalQueue")
            .field("location", &self.location)
            .field("owner", &self.owner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn slot(queue: QueueName) -> usize {
    match queue {
        QueueName::Shards => 0,
        QueueName::Results => 1,
        QueueName::Reports => 2,
        QueueName::Requests => 3,
    }
}

/// Wall-clock milliseconds since the epoch (0 before it, which no real
/// clock reports).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn backend(queue: &'static str, operation: &'static str, e: rusqlite::Error) -> QueueError {
    QueueError::Backend {
        backend: BACKEND,
        queue,
        source: format!("{operation}: {e}").into(),
    }
}

/// A delivery's handle: the message id and its receive count at that
/// delivery. The count grows with every delivery, so an old handle never
/// matches a redelivery.
fn handle(id: i64, receives: i64) -> String {
    format!("{id}.{receives}")
}

fn parse_handle(handle: &str) -> Option<(i64, i64)> {
    let (id, receives) = handle.split_once('.')?;
    Some((id.parse().ok()?, receives.parse().ok()?))
}

/// Moves one message to the dead letters.
fn bury(tx: &Transaction<'_>, id: i64, now: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO dead_letters (id, queue, body, receives, dead_ms)
         SELECT id, queue, body, receives, ?2 FROM messages WHERE id = ?1",
        params![id, now],
    )?;
    tx.execute("DELETE FROM messages WHERE id = ?1", params![id])?;
    Ok(())
}

/// True when delivery `receives` of message `id` is still the one in hand
/// (not acked, released, redelivered or dead-lettered since).
fn is_current(tx: &Transaction<'_>, queue: &str, id: i64, receives: i64) -> rusqlite::Result<bool> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM messages
             WHERE id = ?1 AND queue = ?2 AND receives = ?3 AND owner IS NOT NULL",
            params![id, queue, receives],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn bury_exhausted(tx: &Transaction<'_>, max_receives: u32, now: i64) -> rusqlite::Result<()> {
    tx.execute(BURY_EXHAUSTED, params![max_receives, now])?;
    tx.execute(DELETE_EXHAUSTED, params![max_receives, now])?;
    Ok(())
}

impl LocalQueue {
    /// Opens (creating if needed) the queue file at `path` and its schema,
    /// and starts its WAL's background checkpoints (`sqlite_file`). Other
    /// processes may have it open at the same time.
    pub fn open(path: &Path, config: QueueConfig) -> Result<Self, QueueError> {
        let location = path.display().to_string();
        let fail = |source: BackendSource| QueueError::Open {
            path: location.clone(),
            source,
        };
        let conn = sqlite_file::open(path).map_err(|e| fail(Box::new(e)))?;
        let checkpointer = Checkpointer::start(path).map_err(|e| fail(Box::new(e)))?;
        Self::init(conn, Some(checkpointer), config, location)
    }

    /// A private in-memory queue, gone on drop: for tests and benchmarks.
    ///
    /// # Panics
    ///
    /// Only if SQLite cannot allocate an empty in-memory database (out of
    /// memory) or the OS refuses a thread: there is no file, path or input
    /// that could be wrong.
    pub fn in_memory(config: QueueConfig) -> Self {
        let location = ":memory:".to_string();
        let opened = sqlite_file::open_in_memory()
            .map_err(|e| QueueError::Open {
                path: location.clone(),
                source: Box::new(e),
            })
            .and_then(|conn| Self::init(conn, None, config, location));
        match opened {
            Ok(queue) => queue,
            Err(e) => panic!("{e}"),
        }
    }

    fn init(
        mut conn: Connection,
        checkpointer: Option<Checkpointer>,
        config: QueueConfig,
        location: String,
    ) -> Result<Self, QueueError> {
        let fail = |source: BackendSource| QueueError::Open {
            path: location.clone(),
            source,
        };
        let sql = |e: rusqlite::Error| fail(Box::new(e));
        // One transaction, so two processes opening a new file at once do
        // not both see version 0 half-way through creating the tables.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        if version > SCHEMA_VERSION {
            return Err(fail(
                format!(
                    "its schema version {version} is newer than this build's {SCHEMA_VERSION}; upgrade testexec"
                )
                .into(),
            ));
        }
        tx.execute_batch(SCHEMA).map_err(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            notify: Default::default(),
        });
        let (sends, pending) = std::sync::mpsc::channel();
        let writer = Arc::clone(&shared);
        let group_commit = std::thread::Builder::new()
            .name("queue sends".into())
            .spawn(move || group_commit(&writer, &pending))
            .map_err(|e| fail(Box::new(e)))?;
        Ok(Self {
            shared,
            sends: Some(sends),
            group_commit: Some(group_commit),
            config: config.normalised(),
            owner: ulid::Ulid::new().to_string(),
            location,
            _checkpointer: checkpointer,
        })
    }

    pub fn config(&self) -> QueueConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.shared.lock()
    }

    fn visibility_ms(&self) -> i64 {
        // Rounded up so a short non-zero timeout is not an instant redelivery.
        let ms = self.config.visibility_timeout.as_micros().div_ceil(1000);
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// Takes the next visible message, if any, without waiting.
    fn try_receive(&self, queue: QueueName) -> Result<Option<Received>, QueueError> {
        let name = queue.as_str();
        let err = |op: &'static str| move |e| backend(name, op, e);
        let mut conn = self.lock();
        // Look before writing: most polls find nothing, and a read takes no
        // lock that other processes' writers would wait on.
        let candidate = conn
            .query_row(NEXT_VISIBLE, params![name, now_ms()], |_| Ok(()))
            .optional()
            .map_err(err("look for a message"))?;
        if candidate.is_none() {
            return Ok(None);
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin receive"))?;
        // After the lock: another consumer may have taken the message.
        let now = now_ms();
        let received = loop {
            let next: Option<(i64, i64)> = tx
                .query_row(NEXT_VISIBLE, params![name, now], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(err("receive"))?;
            let Some((id, receives)) = next else {
                break None;
            };
            if receives >= i64::from(self.config.max_receives) {
                // Its last delivery timed out (or another instance allowed
                // more receives than this one): dead, not delivered again.
                bury(&tx, id, now).map_err(err("dead-letter"))?;
                continue;
            }
            let receives = receives.max(0) + 1;
            let body: String = tx
                .query_row(
                    "UPDATE messages SET receives = ?2, owner = ?3, visible_at_ms = ?4
                     WHERE id = ?1 RETURNING body",
                    params![
                        id,
                        receives,
                        self.owner,
                        now.saturating_add(self.visibility_ms())
                    ],
                    |r| r.get(0),
                )
                .map_err(err("receive"))?;
            break Some(Received {
                handle: handle(id, receives),
                body,
                attempt: u32::try_from(receives).unwrap_or(u32::MAX),
            });
        };
        tx.commit().map_err(err("commit receive"))?;
        Ok(received)
    }

    /// Moves messages whose last delivery ended to the dead letters, so
    /// counts and listings see them where they belong.
    fn reap(&self, conn: &mut Connection, label: &'static str) -> Result<(), QueueError> {
        let err = |op: &'static str| move |e| backend(label, op, e);
        let max = self.config.max_receives;
        let any: bool = conn
            .query_row(ANY_EXHAUSTED, params![max, now_ms()], |r| r.get(0))
            .map_err(err("look for dead letters"))?;
        if !any {
            return Ok(());
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin dead-lettering"))?;
        bury_exhausted(&tx, max, now_ms()).map_err(err("dead-letter"))?;
        tx.commit().map_err(err("commit dead-lettering"))
    }

    /// True while the delivery behind `handle` is in flight: not acked,
    /// released or timed out. Malformed and unknown handles are not.
    pub fn is_in_flight(&self, queue: QueueName, handle: &str) -> Result<bool, QueueError> {
        let Some((id, receives)) = parse_handle(handle) else {
            return Ok(false);
        };
        self.lock()
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM messages WHERE id = ?1 AND queue = ?2
                 AND receives = ?3 AND owner IS NOT NULL AND visible_at_ms > ?4)",
                params![id, queue.as_str(), receives, now_ms()],
                |r| r.get(0),
            )
            .map_err(|e| backend(queue.as_str(), "is_in_flight", e))
    }

    /// Visible messages waiting in a queue.
    pub fn depth(&self, queue: QueueName) -> Result<usize, QueueError> {
        self.count(
            queue,
            "SELECT COUNT(*) FROM messages
             WHERE queue = ?1 AND (owner IS NULL OR visible_at_ms <= ?2)",
        )
    }

    /// Messages received and neither acked, released nor timed out yet.
    pub fn in_flight(&self, queue: QueueName) -> Result<usize, QueueError> {
        self.count(
            queue,
            "SELECT COUNT(*) FROM messages
             WHERE queue = ?1 AND owner IS NOT NULL AND visible_at_ms > ?2",
        )
    }

    fn count(&self, queue: QueueName, sql: &str) -> Result<usize, QueueError> {
        let mut conn = self.lock();
        self.reap(&mut conn, queue.as_str())?;
        let n: i64 = conn
            .query_row(sql, params![queue.as_str(), now_ms()], |r| r.get(0))
            .map_err(|e| backend(queue.as_str(), "count", e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Takes back every delivery in flight under another instance's lease
    /// (a process that died holding them): visible again at once, the lost
    /// delivery counted as an attempt, or dead-lettered if it was the last.
    /// Returns how many were taken back.
    ///
    /// Call it only from the process that owns the state directory, at its
    /// start (e.g. `serve`): a consumer that is still alive would see its
    /// messages delivered again elsewhere (a duplicate, which is tolerated,
    /// but wasted work).
    pub fn release_orphans(&self) -> Result<usize, QueueError> {
        let err = |op: &'static str| move |e| backend(ALL_QUEUES, op, e);
        let released = {
            let mut conn = self.lock();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err("begin release_orphans"))?;
            let now = now_ms();
            let released = tx
                .execute(
                    "UPDATE messages SET owner = NULL, visible_at_ms = ?2
                     WHERE owner IS NOT NULL AND owner <> ?1 AND visible_at_ms > ?2",
                    params![self.owner, now],
                )
                .map_err(err("release_orphans"))?;
            bury_exhausted(&tx, self.config.max_receives, now).map_err(err("dead-letter"))?;
            tx.commit().map_err(err("commit release_orphans"))?;
            released
        };
        if released > 0 {
            self.shared.notify.iter().for_each(Notify::notify_waiters);
        }
        Ok(released)
    }
}

#[async_trait]
impl JobQueue for LocalQueue {
    /// All or nothing: one oversized body rejects the whole batch before any
    /// is queued, and the rest go in one transaction, so a retry of the call
    /// cannot double-send the others. The transaction is the group-commit
    /// thread's, shared with the sends that arrived at the same time; the
    /// call returns once it is committed. A call dropped before it returns
    /// may still have queued its messages (as a timed-out SQS send may).
    async fn send_batch(&self, queue: QueueName, bodies: Vec<String>) -> Result<(), QueueError> {
        crate::app::messages::check_body_sizes(queue, &bodies)?;
        if bodies.is_empty() {
            return Ok(());
        }
        let stopped = || QueueError::Backend {
            backend: BACKEND,
            queue: queue.as_str(),
            source: "the queue's send thread has stopped".into(),
        };
        let (done, committed) = tokio::sync::oneshot::channel();
        self.sends
            .as_ref()
            .ok_or_else(stopped)?
            .send(PendingSend {
                queue,
                bodies,
                done,
            })
            .map_err(|_| stopped())?;
        committed.await.map_err(|_| stopped())?
    }
}

/// Handles are `<message id>.<receive count>`.
#[async_trait]
impl QueueConsumer for LocalQueue {
    /// Waits up to `wait`: wakes on a send or release in this instance, and
    /// polls every [`POLL`] for everything else.
    async fn receive(
        &self,
        queue: QueueName,
        wait: Duration,
    ) -> Result<Option<Received>, QueueError> {
        // `Duration::MAX` means "wait as long as it takes", not a panic.
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        let notify = &self.shared.notify[slot(queue)];
        loop {
            // Register interest before looking, so a send between the look
            // and the wait is not missed.
            let mut notified = std::pin::pin!(notify.notified());
            notified.as_mut().enable();
            if let Some(received) = self.try_receive(queue)? {
                return Ok(Some(received));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let _ = tokio::time::timeout_at(deadline.min(now + POLL), notified).await;
        }
    }

    /// Deletes the message if `handle` is its latest delivery, even when
    /// that delivery's lease has just expired (the work is done; deleting
    /// saves a duplicate). A stale or malformed handle is a no-op, as a
    /// stale SQS receipt handle is: the message simply comes back.
    async fn ack(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        let Some((id, receives)) = parse_handle(handle) else {
            return Ok(());
        };
        self.lock()
            .execute(
                "DELETE FROM messages
                 WHERE id = ?1 AND queue = ?2 AND receives = ?3 AND owner IS NOT NULL",
                params![id, queue.as_str(), receives],
            )
            .map_err(|e| backend(queue.as_str(), "ack", e))?;
        Ok(())
    }

    /// Makes the delivery's message visible at once, or dead-letters it if
    /// that was its last receive. Stale or malformed handles are ignored.
    async fn release(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        let Some((id, receives)) = parse_handle(handle) else {
            return Ok(());
        };
        let name = queue.as_str();
        let err = |op: &'static str| move |e| backend(name, op, e);
        let visible = {
            let mut conn = self.lock();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err("begin release"))?;
            let current = is_current(&tx, name, id, receives).map_err(err("release"))?;
            let now = now_ms();
            let visible = if !current {
                false
            } else if receives >= i64::from(self.config.max_receives) {
                bury(&tx, id, now).map_err(err("dead-letter"))?;
                false
            } else {
                tx.execute(
                    "UPDATE messages SET owner = NULL, visible_at_ms = ?2 WHERE id = ?1",
                    params![id, now],
                )
                .map_err(err("release"))?;
                true
            };
            tx.commit().map_err(err("commit release"))?;
            visible
        };
        if visible {
            self.shared.notify[slot(queue)].notify_waiters();
        }
        Ok(())
    }

    fn visibility(&self, _queue: QueueName) -> Duration {
        self.config.visibility_timeout
    }

    /// Pushes the lease of the delivery `handle` out to a full visibility
    /// timeout from now, if it is still the message's current delivery and
    /// not expired (an expired lease may already be someone else's).
    async fn extend(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        let Some((id, receives)) = parse_handle(handle) else {
            return Ok(());
        };
        let now = now_ms();
        self.lock()
            .execute(
                "UPDATE messages SET visible_at_ms = ?5
                 WHERE id = ?1 AND queue = ?2 AND receives = ?3 AND owner IS NOT NULL
                   AND visible_at_ms > ?4",
                params![
                    id,
                    queue.as_str(),
                    receives,
                    now,
                    now.saturating_add(self.visibility_ms())
                ],
            )
            .map_err(|e| backend(queue.as_str(), "extend", e))?;
        Ok(())
    }

    /// Buries the delivery's message at once, if `message.handle` is still
    /// its current delivery.
    async fn dead_letter(
        &self,
        queue: QueueName,
        message: &Received,
        _reason: &str,
    ) -> Result<(), QueueError> {
        let Some((id, receives)) = parse_handle(&message.handle) else {
            return Ok(());
        };
        let name = queue.as_str();
        let err = |op: &'static str| move |e| backend(name, op, e);
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin dead_letter"))?;
        if is_current(&tx, name, id, receives).map_err(err("dead_letter"))? {
            bury(&tx, id, now_ms()).map_err(err("dead-letter"))?;
        }
        tx.commit().map_err(err("commit dead_letter"))
    }

    /// Bodies of the messages that exhausted their receives, oldest first.
    async fn backlog(&self, queue: QueueName) -> Result<Option<Backlog>, QueueError> {
        let dead: i64 = {
            let conn = self.lock();
            conn.query_row(
                "SELECT COUNT(*) FROM dead_letters WHERE queue = ?1",
                params![queue.as_str()],
                |r| r.get(0),
            )
            .map_err(|e| backend(queue.as_str(), "backlog", e))?
        };
        Ok(Some(Backlog {
            waiting: self.depth(queue)? as u64,
            in_flight: self.in_flight(queue)? as u64,
            dead_letters: u64::try_from(dead).unwrap_or(0),
        }))
    }

    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<String>, QueueError> {
        let name = queue.as_str();
        let err = |e| backend(name, "dead_letters", e);
        let mut conn = self.lock();
        self.reap(&mut conn, name)?;
        let mut stmt = conn
            .prepare_cached("SELECT body FROM dead_letters WHERE queue = ?1 ORDER BY dead_ms, id")
            .map_err(err)?;
        let bodies = stmt
            .query_map(params![name], |r| r.get(0))
            .map_err(err)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(err)?;
        Ok(bodies)
    }

    /// True when no message is waiting or in flight on any queue, whoever
    /// sent or holds it. Dead letters do not count.
    async fn is_idle(&self) -> Result<bool, QueueError> {
        let mut conn = self.lock();
        self.reap(&mut conn, ALL_QUEUES)?;
        // Every row left after reaping is visible with receives left, or in
        // flight: the queues are idle only when none is left.
        let busy: bool = conn
            .query_row("SELECT EXISTS(SELECT 1 FROM messages)", [], |r| r.get(0))
            .map_err(|e| backend(ALL_QUEUES, "is_idle", e))?;
        Ok(!busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_garbage_is_none() {
        assert_eq!(parse_handle(&handle(42, 3)), Some((42, 3)));
        for bad in [
            "",
            "42",
            "42.",
            ".3",
            "a.b",
            "1.2.3",
            "testexec-fault-copy-1",
        ] {
            assert_eq!(parse_handle(bad), None, "{bad}");
        }
    }

    #[test]
    fn config_is_normalised() {
        let q = LocalQueue::in_memory(QueueConfig {
            visibility_timeout: Duration::MAX,
            max_receives: 0,
        });
        assert_eq!(q.config().max_receives, 1);
        assert_eq!(q.config().visibility_timeout, MAX_VISIBILITY);
        assert_eq!(q.visibility_ms(), 12 * 3600 * 1000);
        let q = LocalQueue::in_memory(QueueConfig {
            visibility_timeout: Duration::from_micros(1),
            max_receives: 2,
        });
        assert_eq!(
            q.visibility_ms(),
            1,
            "rounded up, not an instant redelivery"
        );
    }
}
