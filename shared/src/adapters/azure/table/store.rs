//! [`TableRunStore`]: the [`RunStore`] port as optimistic-concurrency
//! writes on one table.
//!
//! A run and its shards share a partition (the run id), so the writes that
//! must change several entities at once are entity-group transactions:
//! `create_run` inserts the run and its first 99 shards in one (a second
//! create fails with 409 before any shard is written), and `complete_shard`
//! replaces the shard and the run together, each `If-Match` the ETag it was
//! read with. The shard's `pending` status is the exactly-once arbiter: a
//! completion applies only while it is pending, and the transaction fails
//! (412) if either entity changed since it was read, in which case the call
//! reads again and decides again. `begin_report` and `finish_run` are one
//! `If-Match` replace of the run entity each.

use std::time::Duration;

use async_trait::async_trait;
use backon::BackoffBuilder;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::client::{
    BATCH_MAX_BYTES, BATCH_MAX_OPS, BatchOp, Entity, TableClient, TableError, Write,
};
use super::codec::*;
use crate::adapters::azure::AzureSettings;
use crate::adapters::azure::auth::StorageCredential;
use crate::adapters::azure::error::store_msg;
use crate::app::ports::{Completion, RunStore, ShardCompletion};
use crate::domain::history::{HistoryScope, TestHistory};
use crate::domain::model::{Run, RunId, RunStatus, ShardRecord, ShardStatus};
use crate::errors::StoreError;

/// Delivery keys are refused above this (they are hashed into row keys,
/// and the original is kept for people reading the table).
pub const MAX_DELIVERY_KEY_BYTES: usize = 1024;
/// Read-decide-write rounds of one call while other writers keep changing
/// the entity under it (50 concurrent completions of one run need ~50).
const MAX_ROUNDS: usize = 200;
/// Backoff between rounds: 5 ms doubling to 200 ms, jittered so racing
/// callers spread out.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(200);

pub(super) fn store_err(operation: &'static str, e: TableError) -> StoreError {
    match e {
        TableError::Http(e) => crate::adapters::azure::error::store_error(operation, &e),
        other => store_msg(operation, other.to_string()),
    }
}

/// The Azure Tables run store. Cheap to share behind an `Arc`.
pub struct TableRunStore {
    client: TableClient,
}

impl TableRunStore {
    pub(crate) fn new(
        settings: &AzureSettings,
        credential: &StorageCredential,
    ) -> Result<Self, String> {
        Ok(Self {
            client: TableClient::new(&settings.table_endpoint, &settings.table, credential)?,
        })
    }

    pub fn table(&self) -> &str {
        self.client.table()
    }

    /// Creates the table (idempotent; tests and local runs).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        self.client
            .create_table()
            .await
            .map_err(|e| store_err("create table", e))
    }

    async fn get_run_entity(&self, id: &str) -> Result<Option<(Entity, String)>, StoreError> {
        self.client
            .get(id, RUN_ROW)
            .await
            .map_err(|e| store_err("read run", e))
    }

    /// Waits between rounds of a contended write.
    fn backoff() -> impl Iterator<Item = Duration> {
        crate::adapters::retry::jittered(FIRST_BACKOFF, MAX_BACKOFF, MAX_ROUNDS).build()
    }

    /// Replaces the run with `change` applied while `decide` allows it,
    /// retrying on ETag conflicts. `Ok(None)`: the run is missing;
    /// `Ok(Some(false))`: `decide` declined.
    async fn update_run(
        &self,
        id: RunId,
        operation: &'static str,
        decide: impl Fn(&Run) -> bool,
        change: impl Fn(&mut Run),
    ) -> Result<Option<bool>, StoreError> {
        let key = id.to_string();
        let mut waits = Self::backoff();
        loop {
            let Some((entity, etag)) = self.get_run_entity(&key).await? else {
                return Ok(None);
            };
            let mut run = run_from(&entity)?;
            if !decide(&run) {
                return Ok(Some(false));
            }
            change(&mut run);
            match self
                .client
                .replace(&run_entity(&run)?, Some(&etag))
                .await
                .map_err(|e| store_err(operation, e))?
            {
                Write::Done(_) => return Ok(Some(true)),
                Write::Missing => return Ok(None),
                Write::Changed | Write::Exists => match waits.next() {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(contended(operation, &key)),
                },
            }
        }
    }

    /// Reads the runs named by the index rows of `partition`.
    async fn runs_of_index(&self, partition: &str, limit: usize) -> Result<Vec<Run>, StoreError> {
        let mut runs = Vec::new();
        let filter = format!("PartitionKey eq '{partition}'");
        // Rows may point at runs that were never created (a failed create
        // writes its index rows first): ask for a few more than needed.
        let rows = self
            .client
            .query(&filter, limit.saturating_add(16))
            .await
            .map_err(|e| store_err("list runs", e))?;
        for row in rows {
            if runs.len() >= limit {
                break;
            }
            let Some(id) = get_str(&row, "run") else {
                continue;
            };
            if let Some((entity, _)) = self.get_run_entity(id).await? {
                runs.push(run_from(&entity)?);
            }
        }
        Ok(runs)
    }
}

fn contended(operation: &'static str, run: &str) -> StoreError {
    store_msg(
        operation,
        format!("run {run}: still changed by other writers after {MAX_ROUNDS} attempts"),
    )
}

fn index_row(partition: &str, row: &str, run: &str) -> Entity {
    let mut e = keyed(partition, row);
    e.insert("run".into(), Value::String(run.into()));
    e
}

/// Consecutive groups of at most [`BATCH_MAX_OPS`] entities and
/// [`BATCH_MAX_BYTES`] (counted as entity sizes).
pub(super) fn groups(entities: &[Entity], first_max: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, e) in entities.iter().enumerate() {
        let max = if out.is_empty() {
            first_max
        } else {
            BATCH_MAX_OPS
        };
        let size = entity_size(e);
        if i > start && (i - start == max || bytes + size > BATCH_MAX_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < entities.len() {
        out.push(start..entities.len());
    }
    out
}

#[async_trait]
impl RunStore for TableRunStore {
    async fn create_run(&self, run: &Run, shards: &[ShardRecord]) -> Result<(), StoreError> {
        crate::adapters::check_shard_records(run, shards)?;
        let id = run.id.to_string();
        let mut entities = vec![run_entity(run)?];
        for sh in shards {
            entities.push(shard_entity(sh)?);
        }
        // The index rows first: a row whose run never appears is skipped
        // on read, while a run without its rows would never be listed.
        let index = [
            Some(index_row(RUNS_PARTITION, &newest_first(&id), &id)),
            (!run.status.is_final()).then(|| index_row(ACTIVE_PARTITION, &id, &id)),
        ];
        for row in index.into_iter().flatten() {
            self.client
                .replace(&row, None)
                .await
                .map_err(|e| store_err("create run (index)", e))?;
        }
        let ranges = groups(&entities, BATCH_MAX_OPS);
        for (n, range) in ranges.into_iter().enumerate() {
            let ops: Vec<BatchOp> = entities[range]
                .iter()
                .cloned()
                .map(BatchOp::Insert)
                .collect();
            let refused = self
                .client
                .batch(&ops)
                .await
                .map_err(|e| store_err("create run", e));
            let failure = match refused {
                Ok(None) => continue,
                // The first transaction holds the run entity: 409 there
                // means the run exists, and nothing was written.
                Ok(Some(r)) if n == 0 && r.status == 409 => {
                    return Err(StoreError::Conflict { run: id });
                }
                Ok(Some(r)) => store_msg("create run", r.to_string()),
                Err(e) => e,
            };
            if n == 0 {
                return Err(failure);
            }
            // The run exists without all its shards and could never
            // finish: error it now (best effort) so the sweep does not
            // carry it.
            let why = format!("creating the run's shards failed: {failure}");
            if let Err(fin) = self
                .finish_run(run.id, RunStatus::Errored, run.created_ms, Some(why))
                .await
            {
                tracing::error!(run_id = %run.id, error = %fin, "could not error a half-created run");
            }
            return Err(failure);
        }
        Ok(())
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        match self.get_run_entity(&id.to_string()).await? {
            Some((e, _)) => Ok(Some(run_from(&e)?)),
            None => Ok(None),
        }
    }

    async fn list_runs(&self, limit: usize) -> Result<Vec<Run>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.runs_of_index(RUNS_PARTITION, limit).await
    }

    async fn list_shards(&self, id: RunId) -> Result<Vec<ShardRecord>, StoreError> {
        let filter =
            format!("PartitionKey eq '{id}' and RowKey ge 'shard-' and RowKey lt 'shard.'");
        let rows = self
            .client
            .query(&filter, usize::MAX)
            .await
            .map_err(|e| store_err("list shards", e))?;
        let mut shards = rows.iter().map(shard_from).collect::<Result<Vec<_>, _>>()?;
        shards.sort_by_key(|s| s.id.index);
        Ok(shards)
    }

    async fn complete_shard(&self, c: &ShardCompletion) -> Result<Completion, StoreError> {
        crate::adapters::check_completion_status(c.shard, c.status)?;
        let run_id = c.shard.run.to_string();
        let row = shard_row(c.shard.index);
        let not_found = || StoreError::NotFound {
            run: format!("{run_id} (shard {})", c.shard.index),
        };
        let mut waits = Self::backoff();
        loop {
            let Some((run_e, run_tag)) = self.get_run_entity(&run_id).await? else {
                return Err(not_found());
            };
            let mut run = run_from(&run_e)?;
            if c.shard.index >= run.shard_count {
                return Err(not_found());
            }
            let Some((shard_e, shard_tag)) = self
                .client
                .get(&run_id, &row)
                .await
                .map_err(|e| store_err("read shard", e))?
            else {
                return Err(not_found());
            };
            let mut shard = shard_from(&shard_e)?;
            if shard.status != ShardStatus::Pending {
                return Ok(Completion::AlreadyCompleted);
            }
            shard.status = c.status;
            shard.attempt = Some(c.attempt);
            shard.counts = c.counts;
            shard.started_ms = Some(c.started_ms);
            shard.finished_ms = Some(c.finished_ms);
            shard.error = c.error.clone();
            run.shards_done += 1;
            run.counts.tests += c.counts.tests;
            run.counts.passed += c.counts.passed;
            run.counts.failed += c.counts.failed;
            run.counts.errors += c.counts.errors;
            run.counts.skipped += c.counts.skipped;
            run.counts.flaky += c.counts.flaky;
            let ops = [
                BatchOp::Replace {
                    entity: shard_entity(&shard)?,
                    etag: shard_tag,
                },
                BatchOp::Replace {
                    entity: run_entity(&run)?,
                    etag: run_tag,
                },
            ];
            match self
                .client
                .batch(&ops)
                .await
                .map_err(|e| store_err("complete shard", e))?
            {
                None => {
                    return Ok(Completion::Applied {
                        shards_done: run.shards_done,
                        shard_count: run.shard_count,
                    });
                }
                // Another writer changed the shard or the run since they
                // were read: read again and decide again.
                Some(r) if r.status == 412 => match waits.next() {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(contended("complete shard", &run_id)),
                },
                Some(r) => return Err(store_msg("complete shard", r.to_string())),
            }
        }
    }

    async fn begin_report(&self, id: RunId) -> Result<bool, StoreError> {
        let done = self
            .update_run(
                id,
                "begin report",
                |run| run.status == RunStatus::Running && run.shards_done == run.shard_count,
                |run| run.status = RunStatus::Reporting,
            )
            .await?;
        done.ok_or_else(|| StoreError::NotFound {
            run: id.to_string(),
        })
    }

    async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        finished_ms: u64,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        crate::adapters::check_final_status(id, status)?;
        // `running` is accepted too, so the sweep can error a run whose
        // shards never reported.
        let done = self
            .update_run(
                id,
                "finish run",
                |run| matches!(run.status, RunStatus::Running | RunStatus::Reporting),
                |run| {
                    run.status = status;
                    run.finished_ms = Some(finished_ms);
                    run.error = error.as_deref().map(cap_error);
                },
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                run: id.to_string(),
            })?;
        if done {
            // Leaving the active index is best effort: readers check the
            // run's own status.
            let key = id.to_string();
            if let Err(e) = self.client.delete(ACTIVE_PARTITION, &key).await {
                tracing::warn!(run_id = %key, error = %e, "could not remove a finished run from the active index");
            }
        }
        Ok(done)
    }

    async fn list_active_runs(&self) -> Result<Vec<Run>, StoreError> {
        // Oldest first (row keys are run ids): the sweep looks at the most
        // overdue runs first.
        let runs = self
            .runs_of_index(ACTIVE_PARTITION, usize::MAX - 16)
            .await?;
        Ok(runs.into_iter().filter(|r| !r.status.is_final()).collect())
    }

    async fn claim_delivery(
        &self,
        key: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        crate::app::ports::check_delivery_key(key, MAX_DELIVERY_KEY_BYTES)?;
        // Row keys may not hold `/`, `\`, `#`, `?` or control characters:
        // the key's SHA-256 names the row.
        let row = hex_sha256(key);
        let mut claim = keyed(DELIVERY_PARTITION, &row);
        claim.insert(
            "key".into(),
            Value::String(crate::domain::report::truncate_bytes(key, 256).into()),
        );
        put_i64(&mut claim, "expires_ms", now_ms.saturating_add(ttl_ms));
        for _ in 0..MAX_ROUNDS {
            match self
                .client
                .insert(&claim)
                .await
                .map_err(|e| store_err("claim delivery", e))?
            {
                Write::Done(_) => return Ok(true),
                Write::Exists => {}
                Write::Changed | Write::Missing => continue,
            }
            let Some((old, etag)) = self
                .client
                .get(DELIVERY_PARTITION, &row)
                .await
                .map_err(|e| store_err("claim delivery", e))?
            else {
                continue; // deleted meanwhile: insert again
            };
            if get_u64(&old, "expires_ms").is_some_and(|exp| exp >= now_ms) {
                return Ok(false);
            }
            // Expired: take it over, unless another claimer did first.
            return match self
                .client
                .replace(&claim, Some(&etag))
                .await
                .map_err(|e| store_err("claim delivery", e))?
            {
                Write::Done(_) => Ok(true),
                _ => Ok(false),
            };
        }
        Err(store_msg(
            "claim delivery",
            format!("delivery {row}: no stable answer"),
        ))
    }

    async fn load_history(
        &self,
        scope: &HistoryScope,
        ids: &[String],
        now_ms: u64,
    ) -> Result<Vec<TestHistory>, StoreError> {
        super::history::load(&self.client, scope, ids, now_ms).await
    }

    async fn list_history(
        &self,
        scope: &HistoryScope,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<TestHistory>, StoreError> {
        super::history::list(&self.client, scope, limit, now_ms).await
    }

    async fn save_history(
        &self,
        scope: &HistoryScope,
        records: &[TestHistory],
    ) -> Result<(), StoreError> {
        super::history::save(&self.client, scope, records).await
    }
}

pub(super) fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_transaction_and_the_rest_stay_within_limits() {
        let small: Vec<Entity> = (0..250).map(|i| keyed("p", &shard_row(i))).collect();
        let g = groups(&small, BATCH_MAX_OPS);
        assert_eq!(g, [0..100, 100..200, 200..250]);
        let mut big = keyed("p", "r");
        big.insert("body".into(), Value::String("x".repeat(800 * 1024)));
        let bigs = vec![big; 6];
        let g = groups(&bigs, BATCH_MAX_OPS);
        assert!(g.iter().all(|r| r.len() <= 2), "{g:?}");
    }
}
