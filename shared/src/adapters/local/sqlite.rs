//! [`RunStore`] on an embedded SQLite database (`.testexec/runs.sqlite3`).
//!
//! Durability: the database runs in WAL mode with `synchronous=NORMAL`. A
//! committed transaction survives a crash of the process (the WAL is in the
//! OS page cache and is replayed on the next open); only an OS crash or power
//! loss can lose the last few commits, never corrupt the database. That is
//! the right trade for a local developer tool: commits cost no fsync, and
//! the checkpoints that do sync run on a background thread, never inside a
//! caller's commit (`sqlite_file`).
//!
//! Concurrency: one connection behind a `std::sync::Mutex`. SQLite serialises
//! writers anyway, every statement here is a point read or write on an
//! indexed key (microseconds, no fsync under WAL+NORMAL), so a pool would add
//! threads without adding throughput. The work runs inline rather than in
//! `spawn_blocking`: holding the lock for a few microseconds is cheaper than
//! a thread hop. Measured (release build, ordinary disk):
//! `complete_shard` ≈ 41 µs, `get_run` ≈ 4 µs per call, so a worker thread
//! is never held long. The one exception is another *process* holding the
//! write lock, where `busy_timeout` may block the calling thread up to 5 s;
//! the local host is a single process, so that only happens when two
//! `testexec` commands share a state directory.
//!
//! Every conditional write is a single transaction (`BEGIN IMMEDIATE`, so the
//! write lock is taken up front and two processes sharing the file cannot
//! deadlock on a lock upgrade). The mutable fields of a run (status, counts,
//! `shards_done`, `finished_ms`, `error`) live in their own columns so that
//! `ADD`-style updates are plain SQL; the `body` JSON holds the rest and the
//! columns win when a [`Run`] is read back.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::sqlite_file::{self, Checkpointer};
use crate::app::ports::{Completion, RunStore, ShardCompletion};
use crate::app::run_list::{MAX_SCAN, RunPage, RunQuery};
use crate::domain::history::{HistoryScope, TestHistory, storage_key};
use crate::domain::model::{Counts, Run, RunId, RunStatus, ShardRecord};
use crate::errors::StoreError;

const BACKEND: &str = "sqlite";

/// Bumped when the schema changes; stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    shard_count INTEGER NOT NULL,
    shards_done INTEGER NOT NULL DEFAULT 0,
    tests       INTEGER NOT NULL DEFAULT 0,
    passed      INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    errors      INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    flaky       INTEGER NOT NULL DEFAULT 0,
    finished_ms INTEGER,
    error       TEXT,
    body        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_ms);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status);
CREATE TABLE IF NOT EXISTS shards (
    run_id TEXT NOT NULL,
    idx    INTEGER NOT NULL,
    status TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
    key        TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_expiry ON deliveries (expires_ms);
CREATE TABLE IF NOT EXISTS test_history (
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS test_history_by_expiry ON test_history (expires_ms);
";

const RUN_COLUMNS: &str =
    "status, shards_done, tests, passed, failed, errors, skipped, flaky, finished_ms, error, body";

/// The SQLite run store. Cheap to share behind an `Arc`.
pub struct SqliteRunStore {
    conn: Mutex<Connection>,
    // Stops the background checkpoints when the store goes.
    _checkpointer: Option<Checkpointer>,
}

impl SqliteRunStore {
    /// Opens (creating if needed) the database at `path`, and its schema,
    /// and starts its WAL's background checkpoints (`sqlite_file`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let conn = sqlite_file::open(path).map_err(|e| backend("open", e))?;
        let checkpointer = Checkpointer::start(path).map_err(|e| backend("open", e))?;
        Self::init(conn, Some(checkpointer))
    }

    /// A private in-memory database (no WAL, gone on drop): for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = sqlite_file::open_in_memory().map_err(|e| backend("open", e))?;
        Self::init(conn, None)
    }

    fn init(conn: Connection, checkpointer: Option<Checkpointer>) -> Result<Self, StoreError> {
        let e = |e| backend("open", e);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(e)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt {
                key: "schema".into(),
                message: format!(
                    "database schema version {version} is newer than this build's {SCHEMA_VERSION}; upgrade testexec"
                ),
            });
        }
        conn.execute_batch(SCHEMA).map_err(e)?;
        conn.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))
            .map_err(e)?;
        Ok(Self {
            conn: Mutex::new(conn),
            _checkpointer: checkpointer,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied write:
        // an open transaction rolls back when dropped. So poison is harmless.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn backend(
    operation: &'static str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        operation,
        source: Box::new(e),
    }
}

/// Rebuilds a run from its row: the JSON body, overridden by the columns
/// that conditional writes update.
fn run_from_row(row: &rusqlite::Row<'_>, id: &str) -> Result<Run, StoreError> {
    let get = |e: rusqlite::Error| backend("read run", e);
    let status: String = row.get(0).map_err(get)?;
    let body: String = row.get(10).map_err(get)?;
    let corrupt = |message: String| StoreError::Corrupt {
        key: format!("runs/{id}"),
        message,
    };
    let mut run: Run = serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
    run.status = RunStatus::from_name(&status)
        .ok_or_else(|| corrupt(format!("unknown status `{status}`")))?;
    let int = |i: usize| -> Result<u64, StoreError> {
        let v: i64 = row.get(i).map_err(get)?;
        u64::try_from(v).map_err(|_| corrupt(format!("negative counter {v} in column {i}")))
    };
    run.shards_done =
        u32::try_from(int(1)?).map_err(|_| corrupt("shards_done overflows".into()))?;
    run.counts = Counts {
        tests: int(2)?,
        passed: int(3)?,
        failed: int(4)?,
        errors: int(5)?,
        skipped: int(6)?,
        flaky: int(7)?,
    };
    let finished: Option<i64> = row.get(8).map_err(get)?;
    run.finished_ms = finished.map(|v| v.max(0) as u64);
    run.error = row.get(9).map_err(get)?;
    Ok(run)
}

fn query_runs(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Run>, StoreError> {
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(|e| backend("list runs", e))?;
    let mut rows = stmt.query(params).map_err(|e| backend("list runs", e))?;
    let mut runs = Vec::new();
    while let Some(row) = rows.next().map_err(|e| backend("list runs", e))? {
        let id: String = row.get(11).map_err(|e| backend("list runs", e))?;
        runs.push(run_from_row(row, &id)?);
    }
    Ok(runs)
}

/// Counters are u64 in the model and i64 in SQLite; saturate rather than wrap.
fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn run_exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    conn.query_row("SELECT 1 FROM runs WHERE id = ?1", [id], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
        .map_err(|e| backend("read run", e))
}

#[async_trait]
impl RunStore for SqliteRunStore {
    async fn create_run(&self, run: &Run, shards: &[ShardRecord]) -> Result<(), StoreError> {
        crate::adapters::check_shard_records(run, shards)?;
        let id = run.id.to_string();
        let body = serde_json::to_string(run).map_err(|e| backend("encode run", e))?;
        let shard_bodies = shards
            .iter()
            .map(|s| serde_json::to_string(s).map(|b| (s, b)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| backend("encode shard", e))?;

        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| backend("create run", e))?;
        let c = &run.counts;
        let inserted = tx.execute(
            "INSERT INTO runs (id, status, created_ms, shard_count, shards_done, tests, passed, failed,
                               errors, skipped, flaky, finished_ms, error, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (id) DO NOTHING",
            params![
                id,
                run.status.as_str(),
                i(run.created_ms),
                run.shard_count,
                run.shards_done,
                i(c.tests),
                i(c.passed),
                i(c.failed),
                i(c.errors),
                i(c.skipped),
                i(c.flaky),
                run.finished_ms.map(i),
                run.error,
                body
            ],
        );
        match inserted {
            Ok(0) => return Err(StoreError::Conflict { run: id }),
            Ok(_) => {}
            Err(e) => return Err(backend("create run", e)),
        }
        for (shard, body) in shard_bodies {
            tx.execute(
                "INSERT INTO shards (run_id, idx, status, body) VALUES (?1, ?2, ?3, ?4)",
                params![id, shard.id.index, shard.status.as_str(), body],
            )
            .map_err(|e| backend("create shard", e))?;
        }
        tx.commit().map_err(|e| backend("create run", e))
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        let id = id.to_string();
        let conn = self.lock();
        let mut runs = query_runs(
            &conn,
            &format!("SELECT {RUN_COLUMNS}, id FROM runs WHERE id = ?1"),
            [&id],
        )?;
        Ok(runs.pop())
    }

    async fn list_runs(&self, limit: usize) -> Result<Vec<Run>, StoreError> {
        // ULIDs sort by creation time, so the primary key is the order.
        let conn = self.lock();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        query_runs(
            &conn,
            &format!("SELECT {RUN_COLUMNS}, id FROM runs ORDER BY id DESC LIMIT ?1"),
            [limit],
        )
    }

    /// Starts at the cursor in SQL (the primary key is the order), so any
    /// page is reachable; filters are `RunQuery::matches`, as everywhere.
    /// Rows are decoded as the page needs them, at most one past
    /// `MAX_SCAN` (where `RunPage::collect` stops).
    async fn list_runs_page(&self, query: &RunQuery) -> Result<RunPage, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS}, id FROM runs WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(|e| backend("list runs", e))?;
        let before = query.before.map(|b| b.to_string());
        let scan = i64::try_from(MAX_SCAN + 1).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![before, scan], |row| {
                let id: String = row.get(11)?;
                Ok(run_from_row(row, &id))
            })
            .map_err(|e| backend("list runs", e))?;
        RunPage::collect(
            rows.map(|r| r.map_err(|e| backend("list runs", e)).and_then(|run| run)),
            query,
            true,
        )
    }

    async fn list_shards(&self, id: RunId) -> Result<Vec<ShardRecord>, StoreError> {
        let id = id.to_string();
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT idx, body FROM shards WHERE run_id = ?1 ORDER BY idx")
            .map_err(|e| backend("list shards", e))?;
        let rows = stmt
            .query_map([&id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| backend("list shards", e))?;
        let mut shards = Vec::new();
        for row in rows {
            let (idx, body) = row.map_err(|e| backend("list shards", e))?;
            let shard = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                key: format!("runs/{id}/shards/{idx}"),
                message: e.to_string(),
            })?;
            shards.push(shard);
        }
        Ok(shards)
    }

    async fn complete_shard(&self, completion: &ShardCompletion) -> Result<Completion, StoreError> {
        let shard_id = completion.shard;
        let run_id = shard_id.run.to_string();
        crate::adapters::check_completion_status(shard_id, completion.status)?;
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| backend("complete shard", e))?;
        let current: Option<String> = tx
            .query_row(
                "SELECT body FROM shards WHERE run_id = ?1 AND idx = ?2",
                params![run_id, shard_id.index],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| backend("complete shard", e))?;
        let Some(current) = current else {
            return Err(StoreError::NotFound {
                run: format!("{run_id} (shard {})", shard_id.index),
            });
        };
        let mut record: ShardRecord =
            serde_json::from_str(&current).map_err(|e| StoreError::Corrupt {
                key: format!("runs/{run_id}/shards/{}", shard_id.index),
                message: e.to_string(),
            })?;
        record.status = completion.status;
        record.attempt = Some(completion.attempt);
        record.counts = completion.counts;
        record.started_ms = Some(completion.started_ms);
        record.finished_ms = Some(completion.finished_ms);
        record.error = completion.error.clone();
        let body = serde_json::to_string(&record).map_err(|e| backend("encode shard", e))?;
        // The condition is what makes this exactly-once: a duplicate finds
        // the shard no longer pending and changes nothing.
        let changed = tx
            .execute(
                "UPDATE shards SET status = ?1, body = ?2 WHERE run_id = ?3 AND idx = ?4 AND status = 'pending'",
                params![completion.status.as_str(), body, run_id, shard_id.index],
            )
            .map_err(|e| backend("complete shard", e))?;
        if changed == 0 {
            return Ok(Completion::AlreadyCompleted);
        }
        let c = &completion.counts;
        let (shards_done, shard_count): (u32, u32) = tx
            .query_row(
                "UPDATE runs SET shards_done = shards_done + 1, tests = tests + ?1, passed = passed + ?2,
                        failed = failed + ?3, errors = errors + ?4, skipped = skipped + ?5, flaky = flaky + ?6
                 WHERE id = ?7 RETURNING shards_done, shard_count",
                params![i(c.tests), i(c.passed), i(c.failed), i(c.errors), i(c.skipped), i(c.flaky), run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| backend("complete shard", e))?
            .ok_or_else(|| StoreError::NotFound { run: run_id.clone() })?;
        tx.commit().map_err(|e| backend("complete shard", e))?;
        Ok(Completion::Applied {
            shards_done,
            shard_count,
        })
    }

    async fn begin_report(&self, id: RunId) -> Result<bool, StoreError> {
        let id = id.to_string();
        let conn = self.lock();
        let changed = conn
            .execute(
                "UPDATE runs SET status = 'reporting'
                 WHERE id = ?1 AND status = 'running' AND shards_done = shard_count",
                [&id],
            )
            .map_err(|e| backend("begin report", e))?;
        if changed == 0 && !run_exists(&conn, &id)? {
            return Err(StoreError::NotFound { run: id });
        }
        Ok(changed == 1)
    }

    async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        finished_ms: u64,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        crate::adapters::check_final_status(id, status)?;
        let id = id.to_string();
        let conn = self.lock();
        // `running` is accepted too so the sweep can error a run whose shards
        // never reported (or that failed before any shard ran).
        let changed = conn
            .execute(
                "UPDATE runs SET status = ?1, finished_ms = ?2, error = ?3
                 WHERE id = ?4 AND status IN ('running', 'reporting')",
                params![status.as_str(), i(finished_ms), error, id],
            )
            .map_err(|e| backend("finish run", e))?;
        if changed == 0 && !run_exists(&conn, &id)? {
            return Err(StoreError::NotFound { run: id });
        }
        Ok(changed == 1)
    }

    async fn list_active_runs(&self) -> Result<Vec<Run>, StoreError> {
        // Oldest first: the sweep looks at the most overdue runs first.
        let conn = self.lock();
        query_runs(
            &conn,
            &format!(
                "SELECT {RUN_COLUMNS}, id FROM runs WHERE status IN ('running', 'reporting') ORDER BY id"
            ),
            [],
        )
    }

    async fn claim_delivery(
        &self,
        key: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let now = i(now_ms);
        let expires = i(now_ms.saturating_add(ttl_ms));
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| backend("claim delivery", e))?;
        // Insert if absent, or take over an expired claim; a live claim wins.
        let changed = tx
            .execute(
                "INSERT INTO deliveries (key, expires_ms) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET expires_ms = excluded.expires_ms
                 WHERE deliveries.expires_ms < ?3",
                params![key, expires, now],
            )
            .map_err(|e| backend("claim delivery", e))?;
        // Expired claims are dead weight; drop them while we hold the lock
        // (indexed, so this is cheap), like DynamoDB's TTL would.
        tx.execute("DELETE FROM deliveries WHERE expires_ms < ?1", [now])
            .map_err(|e| backend("claim delivery", e))?;
        tx.commit().map_err(|e| backend("claim delivery", e))?;
        Ok(changed == 1)
    }

    async fn load_history(
        &self,
        scope: &HistoryScope,
        ids: &[String],
        now_ms: u64,
    ) -> Result<Vec<TestHistory>, StoreError> {
        let partition = scope.partition();
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT body FROM test_history WHERE scope = ?1 AND key = ?2")
            .map_err(|e| backend("load history", e))?;
        let mut out = Vec::new();
        // A run may list a test twice (two JUnit files): read each once.
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            let key = storage_key(id);
            if !seen.insert(key.clone()) {
                continue;
            }
            let body: Option<String> = stmt
                .query_row(params![partition, key], |r| r.get(0))
                .optional()
                .map_err(|e| backend("load history", e))?;
            if let Some(body) = body {
                let record = TestHistory::from_json(&body, &format!("test_history/{key}"))?;
                if !record.expired(now_ms) {
                    out.push(record);
                }
            }
        }
        Ok(out)
    }

    async fn list_history(
        &self,
        scope: &HistoryScope,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<TestHistory>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, body FROM test_history WHERE scope = ?1 AND expires_ms >= ?2
                 ORDER BY key LIMIT ?3",
            )
            .map_err(|e| backend("list history", e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![scope.partition(), i(now_ms), limit], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| backend("list history", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (key, body) = row.map_err(|e| backend("list history", e))?;
            out.push(TestHistory::from_json(
                &body,
                &format!("test_history/{key}"),
            )?);
        }
        Ok(out)
    }

    async fn save_history(
        &self,
        scope: &HistoryScope,
        records: &[TestHistory],
    ) -> Result<(), StoreError> {
        let partition = scope.partition();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| backend("save history", e))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO test_history (scope, key, expires_ms, body)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| backend("save history", e))?;
            for r in records {
                stmt.execute(params![
                    partition,
                    storage_key(&r.id),
                    i(r.expires_ms()),
                    r.to_json_within(usize::MAX)
                ])
                .map_err(|e| backend("save history", e))?;
            }
        }
        // The TTL: records just written carry the newest time; anything
        // that expired before it goes (indexed, so cheap), as DynamoDB's
        // TTL would delete it.
        if let Some(now) = records.iter().map(|r| r.last_seen_ms).max() {
            tx.execute("DELETE FROM test_history WHERE expires_ms < ?1", [i(now)])
                .map_err(|e| backend("save history", e))?;
        }
        tx.commit().map_err(|e| backend("save history", e))
    }
}
