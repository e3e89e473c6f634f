//! [`DynamoRunStore`]: the [`RunStore`] port as conditional writes on the
//! table (`docs/backends.md` maps each call to its DynamoDB requests).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use backon::{ExponentialBuilder, Retryable};

use super::batch::{TRANSACT_MAX_BYTES, TRANSACT_MAX_ITEMS, chunk_ranges, put_items};
use super::codec::{
    Item, cap_error, counts_of, item_size, meta_item, n, num, run_from_item, s, shard_from_item,
    shard_item,
};
use super::error::{
    Cancellation, backend, cancellation_codes, ccf_item, classify_cancellation, is_ccf,
};
use super::layout::*;
use crate::app::ports::{Clock, Completion, RunStore, ShardCompletion, SystemClock};
use crate::domain::history::{HistoryScope, TestHistory};
use crate::domain::model::{Counts, Run, RunId, RunStatus, ShardRecord, ShardStatus};
use crate::errors::StoreError;

/// DynamoDB's partition keys are at most 2048 bytes; delivery keys are
/// refused above this.
pub const MAX_DELIVERY_KEY_BYTES: usize = 1024;

/// Attempts of `create_run`'s transaction while concurrent creates of the
/// same run cancel it with `TransactionConflict`.
const TRANSACT_ATTEMPTS: u32 = 5;
/// First wait before trying the transaction again; doubles per attempt.
const TRANSACT_FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// Longest wait: the fourth, before the fifth and last attempt.
const TRANSACT_MAX_BACKOFF: Duration = Duration::from_millis(160);

/// The waits between `create_run`'s transaction attempts: 20 ms doubling to
/// 160 ms, each drawn from the upper half of its step (equal jitter: two
/// racing creates must not retry in lockstep).
fn transact_backoff() -> ExponentialBuilder {
    crate::adapters::retry::jittered(
        TRANSACT_FIRST_BACKOFF,
        TRANSACT_MAX_BACKOFF,
        TRANSACT_ATTEMPTS as usize - 1,
    )
}

/// The DynamoDB run store. Cheap to share behind an `Arc`.
pub struct DynamoRunStore {
    client: Client,
    table: String,
    page_size: i32,
    item_locks: Option<Box<[tokio::sync::Mutex<()>]>>,
}

/// Stripes of [`DynamoRunStore::with_item_locks`].
const LOCK_STRIPES: usize = 64;

impl DynamoRunStore {
    pub fn new(client: Client, table: String) -> Self {
        Self {
            client,
            table,
            page_size: 500,
            item_locks: None,
        }
    }

    /// Serialises this store's own conditional writes per run (and per
    /// delivery key) inside the process. DynamoDB applies each single-item
    /// write atomically, so production does not need this; moto does not
    /// (its threaded server runs concurrent UpdateItems on one item without
    /// a lock, losing `ADD`s and handing two callers the same value), so the
    /// tests against moto turn it on. Correct either way: the conditions
    /// still decide, the lock only keeps one process from racing itself.
    pub fn with_item_locks(mut self) -> Self {
        self.item_locks = Some(
            (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        );
        self
    }

    async fn lock(&self, key: &str) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        use std::hash::{Hash, Hasher};
        let locks = self.item_locks.as_ref()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        Some(locks[(h.finish() as usize) % locks.len()].lock().await)
    }

    /// Items per `Query` page (1..=1000; DynamoDB also stops a page at 1 MB).
    /// Tests lower it to exercise pagination.
    pub fn with_page_size(mut self, items: u32) -> Self {
        self.page_size = items.clamp(1, 1000) as i32;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Queries an index (or the table) page by page until `limit` items.
    async fn query_all(
        &self,
        operation: &'static str,
        index: Option<&str>,
        key_condition: &str,
        values: Vec<(&str, AttributeValue)>,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        while items.len() < limit {
            let page = (limit - items.len()).min(self.page_size as usize) as i32;
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(key_condition)
                .scan_index_forward(forward)
                .limit(page)
                .set_exclusive_start_key(start.take());
            for (k, v) in &values {
                q = q.expression_attribute_values(*k, v.clone());
            }
            q = match index {
                Some(index) => q.index_name(index),
                // GSIs cannot be read consistently; the table can.
                None => q.consistent_read(true),
            };
            let out = q.send().await.map_err(|e| backend(operation, e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        items.truncate(limit);
        Ok(items)
    }

    /// Write one of `complete_shard`, the exactly-once arbiter: records the
    /// completion on the shard item only if it is still pending.
    async fn record_shard(&self, c: &ShardCompletion) -> Result<Recorded, StoreError> {
        let run = c.shard.run.to_string();
        let mut names = HashMap::from([
            ("#s".to_string(), STATUS.to_string()),
            ("#a".to_string(), ATTEMPT.to_string()),
            ("#st".to_string(), STARTED_MS.to_string()),
            ("#fi".to_string(), FINISHED_MS.to_string()),
            ("#rec".to_string(), RECORDED_MS.to_string()),
        ]);
        let mut values = HashMap::from([
            (":s".to_string(), s(c.status.as_str())),
            (":pending".to_string(), s(ShardStatus::Pending.as_str())),
            (":a".to_string(), n(c.attempt)),
            (":st".to_string(), n(c.started_ms)),
            (":fi".to_string(), n(c.finished_ms)),
            // The system clock, not the handlers' (out of a store's reach):
            // the recount's fence only needs it coarse.
            (":rec".to_string(), n(SystemClock.now_ms())),
        ]);
        let mut set = [
            "#s = :s",
            "#a = :a",
            "#st = :st",
            "#fi = :fi",
            "#rec = :rec",
        ]
        .map(String::from)
        .to_vec();
        set.extend(bind_counters(&c.counts, "= ", &mut names, &mut values));
        let mut update = format!("SET {}", set.join(", "));
        names.insert("#e".into(), ERROR.into());
        match &c.error {
            Some(e) => {
                values.insert(":e".into(), s(&cap_error(e)));
                update.push_str(", #e = :e");
            }
            None => update.push_str(" REMOVE #e"),
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&run_pk(&run), &shard_sk(c.shard.index))))
            .update_expression(update)
            .condition_expression("#s = :pending")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(_) => Ok(Recorded::Now),
            Err(e) => match ccf_item("complete shard", e)? {
                Some(_) => Ok(Recorded::Before),
                None => Ok(Recorded::NoSuchShard),
            },
        }
    }

    /// Write two: adds a recorded shard's counts to the run. The shard's
    /// index goes into `counting` in the same write, on the condition that
    /// it is not there yet, so a retry of this write (the SDK's after a lost
    /// answer, or ours) cannot add twice; the answer of a retry that finds
    /// it there is the run as the first write left it.
    async fn count_shard(&self, c: &ShardCompletion) -> Result<Completion, StoreError> {
        let run_id = c.shard.run.to_string();
        let mut names = HashMap::from([
            ("#pk".to_string(), PK.to_string()),
            ("#done".to_string(), SHARDS_DONE.to_string()),
            ("#counting".to_string(), COUNTING.to_string()),
        ]);
        let mut values = HashMap::from([
            (":one".to_string(), n(1)),
            (
                ":me".to_string(),
                AttributeValue::Ss(vec![c.shard.index.to_string()]),
            ),
            (":idx".to_string(), s(&c.shard.index.to_string())),
        ]);
        let mut add = vec!["#done :one".to_string(), "#counting :me".to_string()];
        add.extend(bind_counters(&c.counts, "", &mut names, &mut values));
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&run_pk(&run_id), META)))
            .update_expression(format!("ADD {}", add.join(", ")))
            .condition_expression("attribute_exists(#pk) AND NOT contains(#counting, :idx)")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let run = match res {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) => ccf_item("complete shard", e)?.ok_or_else(|| StoreError::NotFound {
                run: format!("{run_id} (shard {})", c.shard.index),
            })?,
        };
        let key = run_pk(&run_id);
        let shards_done = num(&run, SHARDS_DONE, &key)?.unwrap_or(0);
        let shard_count = num(&run, SHARD_COUNT, &key)?.unwrap_or(0);
        Ok(Completion::Applied {
            shards_done: u32::try_from(shards_done).unwrap_or(u32::MAX),
            shard_count: u32::try_from(shard_count).unwrap_or(u32::MAX),
        })
    }

    /// Write three: the shard is counted, its index leaves `counting`.
    /// Failing here loses nothing: the set keeps one stale index (which no
    /// other completion can need, the shard item being the arbiter) until
    /// the run is recounted or finished.
    async fn counted(&self, c: &ShardCompletion) {
        let run_id = c.shard.run.to_string();
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&run_pk(&run_id), META)))
            .update_expression("DELETE #counting :me")
            .expression_attribute_names("#counting", COUNTING)
            .expression_attribute_values(":me", AttributeValue::Ss(vec![c.shard.index.to_string()]))
            .send()
            .await;
        if let Err(e) = res {
            tracing::warn!(
                run_id = %c.shard.run,
                shard_id = %c.shard,
                error = %backend("complete shard", e),
                "could not clear the shard from the run's `counting` set"
            );
        }
    }

    /// Every shard item of a run, page by page.
    async fn shard_items(&self, id: RunId) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(&run_pk(&id.to_string())))
                .expression_attribute_values(":prefix", s("SHARD#"))
                .consistent_read(true)
                .limit(self.page_size)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("list shards", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

/// Binds the six counters of `counts` as `#c<i>` / `:c<i>` and returns one
/// update term per counter, `#c<i> <op>:c<i>` (`"= "` for SET, `""` for ADD).
fn bind_counters(
    counts: &Counts,
    op: &str,
    names: &mut HashMap<String, String>,
    values: &mut Item,
) -> Vec<String> {
    let mut terms = Vec::with_capacity(COUNTERS.len());
    for (i, (name, v)) in COUNTERS.iter().zip(counts_of(counts)).enumerate() {
        names.insert(format!("#c{i}"), name.to_string());
        values.insert(format!(":c{i}"), n(v));
        terms.push(format!("#c{i} {op}:c{i}"));
    }
    terms
}

/// What [`DynamoRunStore::record_shard`] found.
enum Recorded {
    /// This call moved the shard out of pending: it goes on to count it.
    Now,
    /// Another completion did, earlier.
    Before,
    /// No such shard item (unknown run, or an index past its shards).
    NoSuchShard,
}

#[async_trait]
impl RunStore for DynamoRunStore {
    async fn create_run(&self, run: &Run, shards: &[ShardRecord]) -> Result<(), StoreError> {
        crate::adapters::check_shard_records(run, shards)?;
        let id = run.id.to_string();
        let meta = meta_item(run)?;
        let mut items = vec![meta];
        for sh in shards {
            items.push(shard_item(sh)?);
        }
        // META and as many shards as fit go in one transaction, so a second
        // create of the same run fails (Conflict) before any shard is
        // written. The rest are plain puts of items nobody else writes yet.
        let sizes: Vec<usize> = items.iter().map(item_size).collect();
        let first = chunk_ranges(&sizes, TRANSACT_MAX_ITEMS, TRANSACT_MAX_BYTES)
            .into_iter()
            .next()
            .unwrap_or(0..1);
        let rest = items.split_off(first.end);
        let mut actions = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
            if i == 0 {
                put = put
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", PK);
            }
            let put = put.build().map_err(|e| backend("create run", e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        // Another transaction on the same run at the same time (only a
        // concurrent create can) cancels this one with TransactionConflict:
        // retry, then the condition decides.
        let sent = (|| {
            self.client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .send()
        })
        .retry(transact_backoff())
        .when(|e| classify_cancellation(&cancellation_codes(e)) == Cancellation::Contended)
        .await;
        if let Err(err) = sent {
            return Err(match classify_cancellation(&cancellation_codes(&err)) {
                Cancellation::RunExists => StoreError::Conflict { run: id },
                Cancellation::Contended | Cancellation::Other => backend("create run", err),
            });
        }
        let written = match rest.is_empty() {
            true => Ok(()),
            false => put_items(&self.client, &self.table, rest).await,
        };
        if let Err(e) = written {
            // The run exists without all its shards and could never finish:
            // error it now (best effort) so the sweep does not carry it.
            let why = format!("creating the run's shards failed: {e}");
            if let Err(fin) = self
                .finish_run(run.id, RunStatus::Errored, run.created_ms, Some(why))
                .await
            {
                tracing::error!(run_id = %run.id, error = %fin, "could not error a half-created run");
            }
            return Err(e);
        }
        Ok(())
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(&run_pk(&id.to_string()), META)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("read run", e))?;
        out.item.as_ref().map(run_from_item).transpose()
    }

    async fn list_runs(&self, limit: usize) -> Result<Vec<Run>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // ULIDs sort by creation time, so the index's sort key is the order.
        let items = self
            .query_all(
                "list runs",
                Some(RUNS_BY_TIME),
                &format!("{GSI1_PK} = :v"),
                vec![(":v", s(GSI1_VALUE))],
                false,
                limit,
            )
            .await?;
        items.iter().map(run_from_item).collect()
    }

    async fn list_shards(&self, id: RunId) -> Result<Vec<ShardRecord>, StoreError> {
        let mut shards = self
            .shard_items(id)
            .await?
            .iter()
            .map(shard_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        shards.sort_by_key(|sh| sh.id.index);
        Ok(shards)
    }

    async fn complete_shard(&self, c: &ShardCompletion) -> Result<Completion, StoreError> {
        crate::adapters::check_completion_status(c.shard, c.status)?;
        let run_id = c.shard.run.to_string();
        let _guard = self.lock(&run_id).await;
        // Three single-item writes, none of which grows with the run: the
        // shard item decides (exactly one completion moves it out of
        // pending), the run item counts, then forgets the shard again.
        // Should this process die between the first two, the shard is
        // recorded but not counted: the sweep's `recount_run` repairs the
        // run once the run is overdue.
        match self.record_shard(c).await? {
            Recorded::Now => {}
            Recorded::Before => return Ok(Completion::AlreadyCompleted),
            Recorded::NoSuchShard => {
                return Err(StoreError::NotFound {
                    run: format!("{run_id} (shard {})", c.shard.index),
                });
            }
        }
        let applied = self.count_shard(c).await?;
        self.counted(c).await;
        Ok(applied)
    }

    async fn recount_run(&self, id: RunId, settled_before_ms: u64) -> Result<bool, StoreError> {
        let run_id = id.to_string();
        let _guard = self.lock(&run_id).await;
        let key_text = run_pk(&run_id);
        let Some(run) = self.get_run(id).await? else {
            return Err(StoreError::NotFound { run: run_id });
        };
        if run.status != RunStatus::Running {
            return Ok(false);
        }
        let mut done = 0u32;
        let mut counts = Counts::default();
        for shard_item in self.shard_items(id).await? {
            let shard = shard_from_item(&shard_item)?;
            if shard.status == ShardStatus::Pending {
                continue;
            }
            // A shard recorded this recently may have a collector still on
            // its way to counting it: leave the run to a later sweep.
            if num(&shard_item, RECORDED_MS, &key_text)?.unwrap_or(0) >= settled_before_ms {
                return Ok(false);
            }
            done += 1;
            counts.add(&shard.counts);
        }
        if done <= run.shards_done {
            return Ok(false);
        }
        let mut names = HashMap::from([
            ("#s".to_string(), STATUS.to_string()),
            ("#done".to_string(), SHARDS_DONE.to_string()),
            ("#counting".to_string(), COUNTING.to_string()),
        ]);
        let mut values = HashMap::from([
            (":running".to_string(), s(RunStatus::Running.as_str())),
            (":done".to_string(), n(done)),
            (":seen".to_string(), n(run.shards_done)),
        ]);
        let mut set = vec!["#done = :done".to_string()];
        set.extend(bind_counters(&counts, "= ", &mut names, &mut values));
        // Conditional on the count this call read: a completion counted in
        // between makes it a no-op, and the next sweep looks again.
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&key_text, META)))
            .update_expression(format!("SET {} REMOVE #counting", set.join(", ")))
            .condition_expression("#s = :running AND #done = :seen")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match res {
            Ok(_) => {
                tracing::warn!(
                    run_id = %id,
                    counted = run.shards_done,
                    recorded = done,
                    "run recounted from its shard items (a collector died between its writes)"
                );
                Ok(true)
            }
            Err(e) if is_ccf(&e) => Ok(false),
            Err(e) => Err(backend("recount run", e)),
        }
    }

    async fn begin_report(&self, id: RunId) -> Result<bool, StoreError> {
        let id = id.to_string();
        let _guard = self.lock(&id).await;
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&run_pk(&id), META)))
            .update_expression("SET #s = :reporting")
            .condition_expression("#s = :running AND #done = #sc")
            .expression_attribute_names("#s", STATUS)
            .expression_attribute_names("#done", SHARDS_DONE)
            .expression_attribute_names("#sc", SHARD_COUNT)
            .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
            .expression_attribute_values(":reporting", s(RunStatus::Reporting.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) => match ccf_item("begin report", e)? {
                Some(_) => Ok(false),
                None => Err(StoreError::NotFound { run: id }),
            },
        }
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
        let _guard = self.lock(&id).await;
        // `running` is accepted too, so the sweep can error a run whose
        // shards never reported. Leaving the active index is part of the
        // same write.
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&run_pk(&id), META)))
            .condition_expression("#s IN (:running, :reporting)")
            .expression_attribute_names("#s", STATUS)
            .expression_attribute_names("#f", FINISHED_MS)
            .expression_attribute_names("#e", ERROR)
            .expression_attribute_names("#g2pk", GSI2_PK)
            .expression_attribute_names("#g2sk", GSI2_SK)
            .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
            .expression_attribute_values(":reporting", s(RunStatus::Reporting.as_str()))
            .expression_attribute_values(":st", s(status.as_str()))
            .expression_attribute_values(":f", n(finished_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        req = match &error {
            Some(e) => req
                .update_expression("SET #s = :st, #f = :f, #e = :e REMOVE #g2pk, #g2sk")
                .expression_attribute_values(":e", s(&cap_error(e))),
            None => req.update_expression("SET #s = :st, #f = :f REMOVE #e, #g2pk, #g2sk"),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) => match ccf_item("finish run", e)? {
                Some(_) => Ok(false),
                None => Err(StoreError::NotFound { run: id }),
            },
        }
    }

    async fn list_active_runs(&self) -> Result<Vec<Run>, StoreError> {
        // Oldest first: the sweep looks at the most overdue runs first.
        let items = self
            .query_all(
                "list active runs",
                Some(ACTIVE_RUNS),
                &format!("{GSI2_PK} = :v"),
                vec![(":v", s(GSI2_VALUE))],
                true,
                usize::MAX,
            )
            .await?;
        items.iter().map(run_from_item).collect()
    }

    async fn claim_delivery(
        &self,
        key_: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        crate::app::ports::check_delivery_key(key_, MAX_DELIVERY_KEY_BYTES)?;
        let _guard = self.lock(key_).await;
        let expires_ms = now_ms.saturating_add(ttl_ms);
        let mut item = key(&format!("DELIVERY#{key_}"), DELIVERY);
        // Rounded up: TTL must never delete a claim that is still live.
        item.insert(EXPIRES_AT.into(), n(expires_ms.div_ceil(1000)));
        item.insert(EXPIRES_MS.into(), n(expires_ms));
        // TTL deletes expired items lazily (up to days later), so the
        // condition checks the expiry itself.
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR #exp < :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#exp", EXPIRES_MS)
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend("claim delivery", e)),
        }
    }

    async fn load_history(
        &self,
        scope: &HistoryScope,
        ids: &[String],
        now_ms: u64,
    ) -> Result<Vec<TestHistory>, StoreError> {
        super::history::load(&self.client, &self.table, scope, ids, now_ms).await
    }

    async fn save_history(
        &self,
        scope: &HistoryScope,
        records: &[TestHistory],
    ) -> Result<(), StoreError> {
        super::history::save(&self.client, &self.table, scope, records).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn transact_backoff_keeps_its_attempts_and_cap() {
        for _ in 0..100 {
            let waits: Vec<_> = transact_backoff().build().collect();
            // 4 waits between 5 attempts: [10, 20) ms ... [80, 160) ms.
            crate::adapters::retry::assert_jittered(
                &waits,
                TRANSACT_FIRST_BACKOFF,
                TRANSACT_MAX_BACKOFF,
                TRANSACT_ATTEMPTS as usize - 1,
            );
        }
    }
}
