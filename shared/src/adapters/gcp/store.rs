//! [`FirestoreRunStore`]: the [`RunStore`] port on Firestore (native mode),
//! every conditional write a transaction (layout and mapping in
//! `docs/backends.md`).
//!
//! Documents, under a collection prefix so several deployments (or tests)
//! share one database:
//! * `<prefix>runs/<ulid>`: `id`, `status`, `active` (not final yet),
//!   `shard_count`, `shards_done`, `counts` (a map of the six counters),
//!   `body` (the run as JSON, its counters zeroed: the fields hold them).
//! * `<prefix>runs/<ulid>/shards/<0007>`: `index`, `status`, `body` (the
//!   shard record as JSON, completion included).
//! * `<prefix>deliveries/d-<key>`: `expires_ms`, `expires_at` (a timestamp,
//!   for a Firestore TTL policy).
//!
//! A completion is one transaction that reads the run document and its
//! shard's document and writes both: the shard out of pending, the run's
//! `shards_done` and counts up by the shard's. Concurrent completions of a
//! run serialise on the run document (Firestore aborts the losers, which
//! try again). Nothing reads a run's shards to total it, except for a run
//! document written before the counters were kept (no `shards_done`
//! field): such a "legacy" run is still totalled from its shard documents,
//! as it was then, and stays legacy until it is gone.

use std::time::Duration;

use ::firestore::errors::FirestoreError as SdkError;
use ::firestore::{
    FirestoreConsistencySelector, FirestoreDb, FirestoreDbOptions, FirestoreInstant,
    FirestoreTransaction, FirestoreTransactionMode, FirestoreTransactionOptions,
    FirestoreWritePrecondition,
};
use async_trait::async_trait;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::error::FirestoreError;
use crate::app::ports::{Completion, RunStore, ShardCompletion};
use crate::domain::history::{HistoryScope, TestHistory};
use crate::domain::model::{Counts, Run, RunId, RunStatus, ShardRecord, ShardStatus};
use crate::errors::StoreError;

const BACKEND: &str = "firestore";

/// Firestore refuses documents over 1 MiB; a run or shard whose JSON is
/// over this is refused with [`StoreError::Invalid`], leaving room for the
/// other fields and a later error text.
pub const MAX_DOC_BYTES: usize = 900 * 1024;
/// Error texts are cut to this (marked `…[truncated]`) rather than refused,
/// so a final write always lands.
pub use crate::app::ports::MAX_ERROR_BYTES;
use crate::app::ports::cap_error;
/// Delivery keys are refused above this; encoded into a document id they
/// stay under Firestore's 1500-byte limit.
pub const MAX_DELIVERY_KEY_BYTES: usize = 400;
/// Writes per commit when creating a run (Firestore's request limit is
/// 10 MiB; counted by documents and by bytes).
const CREATE_CHUNK_DOCS: usize = 400;
const CREATE_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Tries of one transaction that Firestore aborts for contention.
const TRANSACTION_ATTEMPTS: u32 = 40;
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

const SHARDS: &str = "shards";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunDoc {
    id: String,
    status: String,
    active: bool,
    shard_count: u32,
    /// Completed shards. Absent (with `counts`) on a document written
    /// before the counters were kept: then summed from the shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shards_done: Option<u32>,
    /// The completed shards' counts, summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    counts: Option<Counts>,
    body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardDoc {
    index: u32,
    status: String,
    body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeliveryDoc {
    expires_ms: u64,
    /// For a TTL policy on the collection group: Firestore deletes expired
    /// claims within about a day; `expires_ms` is what the claim checks.
    #[serde(with = "::firestore::serialize_as_timestamp")]
    expires_at: FirestoreInstant,
}

/// A write a transaction makes.
#[derive(Clone)]
enum Put {
    Run { doc: RunDoc, create: bool },
    Shard { run: String, doc: ShardDoc },
    Delivery { id: String, doc: DeliveryDoc },
}

/// Why a transaction's reads stopped.
enum TxError {
    Store(StoreError),
    Sdk(&'static str, String, SdkError),
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

pub(super) fn backend(
    operation: &'static str,
    document: &str,
    e: impl std::fmt::Display,
) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        operation,
        source: Box::new(FirestoreError::Call {
            operation,
            document: document.to_string(),
            message: e.to_string(),
        }),
    }
}

/// Worth another try: contention (aborted), unavailability, a dropped
/// connection.
fn retryable(e: &SdkError) -> bool {
    match e {
        SdkError::DatabaseError(d) => d.retry_possible,
        SdkError::NetworkError(_) => true,
        _ => false,
    }
}

/// A collection prefix: up to 100 characters of `a-z`, `0-9`, `-`, `_`.
pub(super) fn valid_prefix(prefix: &str) -> bool {
    prefix.len() <= 100
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn shard_id(index: u32) -> String {
    // Zero-padded so document ids sort by index (the store sorts anyway).
    format!("{index:04}")
}

fn delivery_id(key: &str) -> String {
    // `/` separates path segments and ids like `__x__` are reserved: escape
    // `/` and `%`, and prefix every id.
    let mut id = String::with_capacity(key.len() + 2);
    id.push_str("d-");
    for c in key.chars() {
        match c {
            '/' => id.push_str("%2F"),
            '%' => id.push_str("%25"),
            c => id.push(c),
        }
    }
    id
}

fn encode<T: Serialize>(run: &str, what: &str, value: &T) -> Result<String, StoreError> {
    let body = serde_json::to_string(value).map_err(|e| backend("encode", run, e))?;
    if body.len() > MAX_DOC_BYTES {
        return Err(StoreError::Invalid {
            run: run.to_string(),
            message: format!(
                "{what} would be a {}-byte Firestore document, over this store's {MAX_DOC_BYTES}-byte limit (Firestore refuses documents over 1 MiB); shorten the run's text fields",
                body.len()
            ),
        });
    }
    Ok(body)
}

/// The document of `run`. `counted`: the run's `shards_done` and counts go
/// in its counter fields; false keeps a legacy document legacy (no counter
/// fields, totals summed from the shards).
fn run_doc(run: &Run, counted: bool) -> Result<RunDoc, StoreError> {
    let id = run.id.to_string();
    let mut stored = run.clone();
    stored.error = stored.error.map(|e| cap_error(&e));
    // The fields hold the counters; the body never does (as before them).
    stored.counts = Counts::default();
    stored.shards_done = 0;
    Ok(RunDoc {
        id: id.clone(),
        status: run.status.as_str().to_string(),
        active: !run.status.is_final(),
        shard_count: run.shard_count,
        shards_done: counted.then_some(run.shards_done),
        counts: counted.then_some(run.counts),
        body: encode(&id, &format!("run {id}"), &stored)?,
    })
}

/// The counters a run document holds: `None` for a legacy document (written
/// before they were kept), whose totals are its shards'.
fn counters(doc: &RunDoc) -> Result<Option<(u32, Counts)>, StoreError> {
    match (doc.shards_done, doc.counts) {
        (Some(done), Some(counts)) => Ok(Some((done, counts))),
        (None, None) => Ok(None),
        _ => Err(corrupt(
            format!("runs/{}", doc.id),
            "`shards_done` and `counts` must be both present or both absent".into(),
        )),
    }
}

fn shard_doc(shard: &ShardRecord) -> Result<ShardDoc, StoreError> {
    let mut stored = shard.clone();
    stored.error = stored.error.map(|e| cap_error(&e));
    Ok(ShardDoc {
        index: shard.id.index,
        status: shard.status.as_str().to_string(),
        body: encode(
            &shard.id.run.to_string(),
            &format!("shard {}", shard.id),
            &stored,
        )?,
    })
}

fn corrupt(key: String, message: String) -> StoreError {
    StoreError::Corrupt { key, message }
}

/// The run a document holds, with its counters when the document keeps
/// them; a legacy document's run has zero counters until
/// [`with_totals`] sums its shards.
fn run_from(doc: &RunDoc) -> Result<Run, StoreError> {
    let mut run: Run = serde_json::from_str(&doc.body)
        .map_err(|e| corrupt(format!("runs/{}", doc.id), e.to_string()))?;
    // The indexed field is the one transactions test; it wins.
    run.status = RunStatus::from_name(&doc.status).ok_or_else(|| {
        corrupt(
            format!("runs/{}", doc.id),
            format!("unknown status `{}`", doc.status),
        )
    })?;
    let (done, counts) = counters(doc)?.unwrap_or_default();
    run.shards_done = done;
    run.counts = counts;
    Ok(run)
}

fn shard_from(run: &str, doc: &ShardDoc) -> Result<ShardRecord, StoreError> {
    let key = format!("runs/{run}/shards/{}", shard_id(doc.index));
    let mut shard: ShardRecord =
        serde_json::from_str(&doc.body).map_err(|e| corrupt(key.clone(), e.to_string()))?;
    shard.status = ShardStatus::from_name(&doc.status)
        .ok_or_else(|| corrupt(key, format!("unknown status `{}`", doc.status)))?;
    Ok(shard)
}

/// The run with `shards_done` and counts summed from its shards (a legacy
/// run document's totals).
fn with_totals(mut run: Run, shards: &[ShardRecord]) -> Run {
    let mut counts = Counts::default();
    let mut done = 0;
    for shard in shards.iter().filter(|s| s.status != ShardStatus::Pending) {
        done += 1;
        counts.add(&shard.counts);
    }
    run.counts = counts;
    run.shards_done = done;
    run
}

/// Stripes of the store's in-process write locks.
const LOCK_STRIPES: usize = 64;

/// The Firestore run store. Cheap to share behind an `Arc`.
pub struct FirestoreRunStore {
    db: FirestoreDb,
    runs: String,
    deliveries: String,
    history: String,
    /// Serialise this process's own transactions per run (and per delivery
    /// key). Firestore locks what a transaction reads and aborts the losers
    /// of a conflict after a lock timeout; tasks of one process racing on a
    /// run would mostly wait out those timeouts. The transactions still
    /// decide (other processes contend as before); the lock only keeps one
    /// process from racing itself.
    locks: std::sync::Arc<[tokio::sync::Mutex<()>]>,
    /// Run and shard documents read, as Firestore bills them (see
    /// [`FirestoreRunStore::run_reads`]); shared by the handles of
    /// [`FirestoreRunStore::clone_handle`].
    reads: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl FirestoreRunStore {
    /// Connects to `database` of `project` (Application Default
    /// Credentials; `FIRESTORE_EMULATOR_HOST` points it at the emulator).
    /// `prefix` names the collections (`<prefix>runs`,
    /// `<prefix>deliveries`): up to 100 characters of `a-z`, `0-9`, `-`
    /// and `_`.
    pub async fn connect(project: &str, database: &str, prefix: &str) -> Result<Self, StoreError> {
        if !valid_prefix(prefix) {
            return Err(StoreError::Invalid {
                run: "(store)".into(),
                message: format!(
                    "collection prefix `{}` must be up to 100 characters of a-z, 0-9, `-` and `_`",
                    prefix.chars().take(100).collect::<String>()
                ),
            });
        }
        super::install_crypto_provider();
        let options =
            FirestoreDbOptions::new(project.to_string()).with_database_id(database.to_string());
        let db = FirestoreDb::with_options(options).await.map_err(|e| {
            backend(
                "connect",
                &format!("projects/{project}/databases/{database}"),
                e,
            )
        })?;
        Ok(Self {
            db,
            runs: format!("{prefix}runs"),
            deliveries: format!("{prefix}deliveries"),
            history: format!("{prefix}history"),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            reads: Default::default(),
        })
    }

    /// How many run and shard documents this store (and every handle on
    /// it) has read since it connected, counted as Firestore bills reads:
    /// one a document fetched, one for a lookup that finds nothing, one for
    /// a query that returns nothing. Transactions tried again count again.
    /// Delivery and history documents are not counted. For tests and cost
    /// checks: a completion reads 2, `get_run` 1 (a legacy run 1 + its
    /// shards).
    pub fn run_reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_reads(&self, documents: usize) {
        self.reads.fetch_add(
            documents.max(1) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    async fn lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        self.locks[(h.finish() as usize) % self.locks.len()]
            .lock()
            .await
    }

    fn run_parent(&self, db: &FirestoreDb, run: &str) -> Result<String, StoreError> {
        db.parent_path(&self.runs, run)
            .map(|p| p.to_string())
            .map_err(|e| backend("path", run, e))
    }

    async fn read_run(&self, db: &FirestoreDb, run: &str) -> Result<Option<RunDoc>, TxError> {
        self.count_reads(1);
        db.fluent()
            .select()
            .by_id_in(&self.runs)
            .obj::<RunDoc>()
            .one(run)
            .await
            .map_err(|e| TxError::Sdk("read run", run.to_string(), e))
    }

    /// One shard's document, by its id.
    async fn read_shard(
        &self,
        db: &FirestoreDb,
        run: &str,
        index: u32,
    ) -> Result<Option<ShardRecord>, TxError> {
        let parent = self.run_parent(db, run)?;
        self.count_reads(1);
        let doc: Option<ShardDoc> = db
            .fluent()
            .select()
            .by_id_in(SHARDS)
            .parent(&parent)
            .obj::<ShardDoc>()
            .one(shard_id(index))
            .await
            .map_err(|e| TxError::Sdk("read shard", format!("{run}/{}", shard_id(index)), e))?;
        Ok(doc.map(|d| shard_from(run, &d)).transpose()?)
    }

    /// The run with its totals: the document's counters, or a legacy
    /// document's shards summed (the only read of a run's shards to total
    /// it).
    async fn totalled(&self, db: &FirestoreDb, doc: &RunDoc) -> Result<Run, TxError> {
        let run = run_from(doc)?;
        if counters(doc)?.is_some() {
            return Ok(run);
        }
        let shards = self.read_shards(db, &doc.id).await?;
        Ok(with_totals(run, &shards))
    }

    async fn read_shards(&self, db: &FirestoreDb, run: &str) -> Result<Vec<ShardRecord>, TxError> {
        let parent = self.run_parent(db, run)?;
        let docs: Vec<ShardDoc> = db
            .fluent()
            .select()
            .from(SHARDS)
            .parent(&parent)
            .obj::<ShardDoc>()
            .query()
            .await
            .map_err(|e| TxError::Sdk("list shards", run.to_string(), e))?;
        self.count_reads(docs.len());
        let mut shards = docs
            .iter()
            .map(|d| shard_from(run, d))
            .collect::<Result<Vec<_>, _>>()?;
        shards.sort_by_key(|s| s.id.index);
        Ok(shards)
    }

    fn add(&self, put: &Put, tx: &mut FirestoreTransaction<'_>) -> Result<(), StoreError> {
        let res = match put {
            Put::Run { doc, create } => {
                let update = self.db.fluent().update().in_col(&self.runs);
                let update = match create {
                    true => update.precondition(FirestoreWritePrecondition::Exists(false)),
                    false => update.precondition(FirestoreWritePrecondition::Exists(true)),
                };
                update
                    .document_id(&doc.id)
                    .object(doc)
                    .add_to_transaction(tx)
                    .map(|_| ())
            }
            Put::Shard { run, doc } => {
                let parent = self.run_parent(&self.db, run)?;
                self.db
                    .fluent()
                    .update()
                    .in_col(SHARDS)
                    .document_id(shard_id(doc.index))
                    .parent(&parent)
                    .object(doc)
                    .add_to_transaction(tx)
                    .map(|_| ())
            }
            Put::Delivery { id, doc } => self
                .db
                .fluent()
                .update()
                .in_col(&self.deliveries)
                .document_id(id)
                .object(doc)
                .add_to_transaction(tx)
                .map(|_| ()),
        };
        res.map_err(|e| backend("prepare write", "(transaction)", e))
    }

    /// Runs `body` in a read-write transaction and commits the writes it
    /// returns; tries again (with the previous transaction's id, which
    /// Firestore uses to favour it) when Firestore aborts it for
    /// contention.
    async fn transact<T, F>(
        &self,
        operation: &'static str,
        document: &str,
        body: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(FirestoreDb) -> BoxFuture<'static, Result<(T, Vec<Put>), TxError>>,
    {
        use backon::BackoffBuilder;
        let mut waits = crate::adapters::retry::jittered(
            FIRST_BACKOFF,
            MAX_BACKOFF,
            TRANSACTION_ATTEMPTS as usize - 1,
        )
        .build();
        let mut previous = None;
        loop {
            let options = match previous.take() {
                Some(id) => FirestoreTransactionOptions::new()
                    .with_mode(FirestoreTransactionMode::ReadWriteRetry(id)),
                None => FirestoreTransactionOptions::new(),
            };
            let mut tx = self
                .db
                .begin_transaction_with_options(options)
                .await
                .map_err(|e| backend(operation, document, e))?;
            let id = tx.transaction_id().clone();
            let reader =
                self.db
                    .clone_with_consistency_selector(FirestoreConsistencySelector::Transaction(
                        id.clone(),
                    ));
            let failure = match body(reader).await {
                Ok((value, puts)) if puts.is_empty() => {
                    // Releases the read locks at once.
                    tx.rollback().await.ok();
                    return Ok(value);
                }
                Ok((value, puts)) => {
                    for put in &puts {
                        if let Err(e) = self.add(put, &mut tx) {
                            tx.rollback().await.ok();
                            return Err(e);
                        }
                    }
                    match tx.commit().await {
                        Ok(_) => return Ok(value),
                        Err(e) => (operation, document.to_string(), e),
                    }
                }
                Err(TxError::Store(e)) => {
                    tx.rollback().await.ok();
                    return Err(e);
                }
                Err(TxError::Sdk(op, doc, e)) => {
                    tx.rollback().await.ok();
                    (op, doc, e)
                }
            };
            let (op, doc, e) = failure;
            if let SdkError::DataConflictError(_) = e {
                return Err(StoreError::Conflict { run: doc });
            }
            match waits.next() {
                Some(wait) if retryable(&e) => {
                    tracing::debug!(operation, document = %doc, error = %e, "Firestore transaction aborted; trying again");
                    previous = Some(id);
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(backend(op, &doc, e)),
            }
        }
    }
}

impl std::fmt::Debug for FirestoreRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirestoreRunStore")
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

type Tx<T> = BoxFuture<'static, Result<(T, Vec<Put>), TxError>>;

#[async_trait]
impl RunStore for FirestoreRunStore {
    async fn create_run(&self, run: &Run, shards: &[ShardRecord]) -> Result<(), StoreError> {
        crate::adapters::check_shard_records(run, shards)?;
        let id = run.id.to_string();
        // The counters start as the given shards' totals (what summing them
        // gave before the counters were kept): zero for pending shards.
        let counted = with_totals(run.clone(), shards);
        let mut puts = vec![Put::Run {
            doc: run_doc(&counted, true)?,
            create: true,
        }];
        for shard in shards {
            puts.push(Put::Shard {
                run: id.clone(),
                doc: shard_doc(shard)?,
            });
        }
        // The run document and as many shards as fit go in one commit, so a
        // second create fails (Conflict, on the run's `exists: false`
        // precondition) before any shard is written; nobody else writes the
        // rest yet.
        let mut chunks: Vec<Vec<Put>> = vec![Vec::new()];
        let mut bytes = 0;
        for put in puts {
            let size = match &put {
                Put::Run { doc, .. } => doc.body.len(),
                Put::Shard { doc, .. } => doc.body.len(),
                Put::Delivery { .. } => 0,
            };
            let last = chunks.last_mut().expect("one chunk at least");
            if !last.is_empty()
                && (last.len() == CREATE_CHUNK_DOCS || bytes + size > CREATE_CHUNK_BYTES)
            {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            chunks.last_mut().expect("one chunk at least").push(put);
        }
        for (n, chunk) in chunks.into_iter().enumerate() {
            let written = self
                .transact("create run", &id, move |_| {
                    // A write-only transaction: one atomic commit. Its
                    // retries (contention only) send the same writes again.
                    let puts = chunk.clone();
                    Box::pin(async move { Ok(((), puts)) }) as Tx<()>
                })
                .await;
            match written {
                Ok(()) => {}
                Err(StoreError::Conflict { .. }) if n == 0 => {
                    return Err(StoreError::Conflict { run: id });
                }
                Err(e) if n == 0 => return Err(e),
                Err(e) => {
                    // The run exists without all its shards and could never
                    // finish: error it now (best effort).
                    let why = format!("creating the run's shards failed: {e}");
                    if let Err(fin) = self
                        .finish_run(run.id, RunStatus::Errored, run.created_ms, Some(why))
                        .await
                    {
                        tracing::error!(run_id = %run.id, error = %fin, "could not error a half-created run");
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        let key = id.to_string();
        let Some(doc) = self.read_run(&self.db, &key).await.map_err(tx_error)? else {
            return Ok(None);
        };
        Ok(Some(self.totalled(&self.db, &doc).await.map_err(tx_error)?))
    }

    async fn list_runs(&self, limit: usize) -> Result<Vec<Run>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // ULIDs sort by creation time, so `id` is the order.
        let docs: Vec<RunDoc> = self
            .db
            .fluent()
            .select()
            .from(self.runs.as_str())
            .order(|o| o.fields([o.field("id").descending()]))
            .limit(u32::try_from(limit).unwrap_or(u32::MAX))
            .obj::<RunDoc>()
            .query()
            .await
            .map_err(|e| backend("list runs", &self.runs, e))?;
        self.count_reads(docs.len());
        let mut runs = Vec::with_capacity(docs.len());
        for doc in &docs {
            runs.push(self.totalled(&self.db, doc).await.map_err(tx_error)?);
        }
        Ok(runs)
    }

    async fn list_shards(&self, id: RunId) -> Result<Vec<ShardRecord>, StoreError> {
        self.read_shards(&self.db, &id.to_string())
            .await
            .map_err(tx_error)
    }

    async fn complete_shard(&self, c: &ShardCompletion) -> Result<Completion, StoreError> {
        crate::adapters::check_completion_status(c.shard, c.status)?;
        let run = c.shard.run.to_string();
        let _guard = self.lock(&run).await;
        let me = self.clone_handle();
        let completion = c.clone();
        self.transact("complete shard", &run.clone(), move |db| {
            let (me, c, run) = (me.clone(), completion.clone(), run.clone());
            Box::pin(async move {
                let not_found = || StoreError::NotFound {
                    run: c.shard.to_string(),
                };
                let Some(doc) = me.read_run(&db, &run).await? else {
                    return Err(not_found().into());
                };
                if c.shard.index >= doc.shard_count {
                    return Err(not_found().into());
                }
                // The shard's own document: concurrent completions of the
                // run serialise on the run document, which each writes.
                let Some(shard) = me.read_shard(&db, &run, c.shard.index).await? else {
                    return Err(not_found().into());
                };
                if shard.status != ShardStatus::Pending {
                    return Ok((Completion::AlreadyCompleted, Vec::new()));
                }
                let mut completed = shard;
                completed.status = c.status;
                completed.attempt = Some(c.attempt);
                completed.counts = c.counts;
                completed.started_ms = Some(c.started_ms);
                completed.finished_ms = Some(c.finished_ms);
                completed.error = c.error.clone();
                let mut puts = vec![Put::Shard {
                    run: run.clone(),
                    doc: shard_doc(&completed)?,
                }];
                let done = match counters(&doc)? {
                    Some((done, mut counts)) => {
                        let done = done + 1;
                        counts.add(&c.counts);
                        let mut counted = doc.clone();
                        counted.shards_done = Some(done);
                        counted.counts = Some(counts);
                        puts.push(Put::Run {
                            doc: counted,
                            create: false,
                        });
                        done
                    }
                    None => {
                        // A legacy run (its document predates the counters):
                        // completed as it was then, its totals summed from
                        // every shard, read in the transaction so that
                        // concurrent completions serialise on them; only the
                        // shard is written, so a collector of the old code
                        // completing another shard of this run stays right.
                        let shards = me.read_shards(&db, &run).await?;
                        shards
                            .iter()
                            .filter(|s| s.status != ShardStatus::Pending)
                            .count() as u32
                            + 1
                    }
                };
                Ok((
                    Completion::Applied {
                        shards_done: done,
                        shard_count: doc.shard_count,
                    },
                    puts,
                ))
            }) as Tx<Completion>
        })
        .await
    }

    /// A completion here is one transaction, so this store never leaves a
    /// run's counters short by itself; a collector of the code from before
    /// the counters (mid-upgrade, or after a rollback and upgrade) can: it
    /// completes a shard of a counted run without counting it, and the run
    /// would never reach `shards_done == shard_count`. For such an overdue
    /// run the sweep's call sets the counters to its shards' totals: one
    /// transaction reads the run and every shard and writes the run when
    /// they differ. `settled_before_ms` is not needed: the transaction sees
    /// every completion or none of it. Legacy runs (no counters) and runs
    /// past `running` are left alone.
    async fn recount_run(&self, id: RunId, _settled_before_ms: u64) -> Result<bool, StoreError> {
        let run = id.to_string();
        let _guard = self.lock(&run).await;
        let me = self.clone_handle();
        let recounted = self
            .transact("recount run", &run.clone(), move |db| {
                let (me, run) = (me.clone(), run.clone());
                Box::pin(async move {
                    let Some(doc) = me.read_run(&db, &run).await? else {
                        return Err(StoreError::NotFound { run: run.clone() }.into());
                    };
                    let Some(kept) = counters(&doc)? else {
                        return Ok((None, Vec::new()));
                    };
                    if doc.status != RunStatus::Running.as_str() {
                        return Ok((None, Vec::new()));
                    }
                    let shards = me.read_shards(&db, &run).await?;
                    let summed = with_totals(run_from(&doc)?, &shards);
                    if (summed.shards_done, summed.counts) == kept {
                        return Ok((None, Vec::new()));
                    }
                    let put = Put::Run {
                        doc: run_doc(&summed, true)?,
                        create: false,
                    };
                    Ok((Some((kept.0, summed.shards_done)), vec![put]))
                }) as Tx<Option<(u32, u32)>>
            })
            .await?;
        if let Some((counted, recorded)) = recounted {
            tracing::warn!(
                run_id = %id,
                counted,
                recorded,
                "run recounted from its shard documents (a shard completed without counting it: a collector of an older version?)"
            );
        }
        Ok(recounted.is_some())
    }

    async fn begin_report(&self, id: RunId) -> Result<bool, StoreError> {
        let run = id.to_string();
        let _guard = self.lock(&run).await;
        let me = self.clone_handle();
        self.transact("begin report", &run.clone(), move |db| {
            let (me, run) = (me.clone(), run.clone());
            Box::pin(async move {
                let Some(mut doc) = me.read_run(&db, &run).await? else {
                    return Err(StoreError::NotFound { run: run.clone() }.into());
                };
                if doc.status != RunStatus::Running.as_str() {
                    return Ok((false, Vec::new()));
                }
                // The counters, or a legacy run's shards (read in the
                // transaction, as before the counters).
                let counted = counters(&doc)?.is_some();
                let mut stored = me.totalled(&db, &doc).await?;
                if stored.shards_done < doc.shard_count {
                    return Ok((false, Vec::new()));
                }
                stored.status = RunStatus::Reporting;
                doc = run_doc(&stored, counted)?;
                Ok((true, vec![Put::Run { doc, create: false }]))
            }) as Tx<bool>
        })
        .await
    }

    async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        finished_ms: u64,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        crate::adapters::check_final_status(id, status)?;
        let run = id.to_string();
        let _guard = self.lock(&run).await;
        let me = self.clone_handle();
        self.transact("finish run", &run.clone(), move |db| {
            let (me, run, error) = (me.clone(), run.clone(), error.clone());
            Box::pin(async move {
                let Some(doc) = me.read_run(&db, &run).await? else {
                    return Err(StoreError::NotFound { run: run.clone() }.into());
                };
                // `running` too, so the sweep can error a run whose shards
                // never reported.
                let mut stored = run_from(&doc)?;
                if stored.status.is_final() {
                    return Ok((false, Vec::new()));
                }
                stored.status = status;
                stored.finished_ms = Some(finished_ms);
                stored.error = error;
                // The counters carried over as read (a legacy run stays
                // legacy: its totals are still its shards').
                let counted = counters(&doc)?.is_some();
                Ok((
                    true,
                    vec![Put::Run {
                        doc: run_doc(&stored, counted)?,
                        create: false,
                    }],
                ))
            }) as Tx<bool>
        })
        .await
    }

    async fn list_active_runs(&self) -> Result<Vec<Run>, StoreError> {
        // An equality filter alone needs no composite index; sorted here,
        // oldest first (the sweep looks at the most overdue runs first).
        let mut docs: Vec<RunDoc> = self
            .db
            .fluent()
            .select()
            .from(self.runs.as_str())
            .filter(|q| q.field("active").eq(true))
            .obj::<RunDoc>()
            .query()
            .await
            .map_err(|e| backend("list active runs", &self.runs, e))?;
        self.count_reads(docs.len());
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        let mut runs = Vec::with_capacity(docs.len());
        for doc in &docs {
            runs.push(self.totalled(&self.db, doc).await.map_err(tx_error)?);
        }
        Ok(runs)
    }

    async fn claim_delivery(
        &self,
        key: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        crate::app::ports::check_delivery_key(key, MAX_DELIVERY_KEY_BYTES)?;
        let id = delivery_id(key);
        let _guard = self.lock(&id).await;
        let me = self.clone_handle();
        let expires_ms = now_ms.saturating_add(ttl_ms);
        let expires_at =
            FirestoreInstant::from_millisecond(i64::try_from(expires_ms).unwrap_or(i64::MAX))
                .unwrap_or(FirestoreInstant::MAX);
        self.transact("claim delivery", &id.clone(), move |db| {
            let (me, id) = (me.clone(), id.clone());
            Box::pin(async move {
                let held: Option<DeliveryDoc> = db
                    .fluent()
                    .select()
                    .by_id_in(&me.deliveries)
                    .obj::<DeliveryDoc>()
                    .one(&id)
                    .await
                    .map_err(|e| TxError::Sdk("read delivery", id.clone(), e))?;
                // TTL deletes lazily, so the expiry is checked here.
                if held.is_some_and(|d| d.expires_ms >= now_ms) {
                    return Ok((false, Vec::new()));
                }
                let doc = DeliveryDoc {
                    expires_ms,
                    expires_at,
                };
                Ok((true, vec![Put::Delivery { id, doc }]))
            }) as Tx<bool>
        })
        .await
    }

    async fn load_history(
        &self,
        scope: &HistoryScope,
        ids: &[String],
        now_ms: u64,
    ) -> Result<Vec<TestHistory>, StoreError> {
        super::history::load(&self.db, &self.history, scope, ids, now_ms).await
    }

    async fn list_history(
        &self,
        scope: &HistoryScope,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<TestHistory>, StoreError> {
        super::history::list(&self.db, &self.history, scope, limit, now_ms).await
    }

    async fn save_history(
        &self,
        scope: &HistoryScope,
        records: &[TestHistory],
    ) -> Result<(), StoreError> {
        super::history::save(&self.db, &self.history, scope, records).await
    }
}

fn tx_error(e: TxError) -> StoreError {
    match e {
        TxError::Store(e) => e,
        TxError::Sdk(op, doc, e) => backend(op, &doc, e),
    }
}

impl FirestoreRunStore {
    /// A second handle on the same client (a clone of its channel), for the
    /// `'static` futures of [`FirestoreRunStore::transact`].
    fn clone_handle(&self) -> std::sync::Arc<FirestoreRunStore> {
        std::sync::Arc::new(FirestoreRunStore {
            db: self.db.clone(),
            runs: self.runs.clone(),
            deliveries: self.deliveries.clone(),
            history: self.history.clone(),
            locks: self.locks.clone(),
            reads: self.reads.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_single_segments() {
        assert_eq!(delivery_id("github:abc"), "d-github:abc");
        assert_eq!(delivery_id("a/b%c"), "d-a%2Fb%25c");
        assert_eq!(delivery_id("__x__"), "d-__x__");
        // The longest key stays within Firestore's 1500-byte id limit.
        let worst = "/".repeat(MAX_DELIVERY_KEY_BYTES);
        assert!(delivery_id(&worst).len() <= 1500);
    }
}
