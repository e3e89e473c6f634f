//! Per-test history on the table: one entity per test, all tests of a
//! (repository, suite) in one partition `hist-<sha256 of the scope>`, row
//! key the SHA-256 of the test's storage key (table keys refuse `/`, `#`,
//! `?` and `\`, which test ids are full of), the record as JSON in `body`
//! (split into 32 KB properties like a run's body) and `expires_ms`.
//!
//! One partition per suite lets a run's writes go as entity-group
//! transactions of 100 upserts; reads query the partition (1,000 entities
//! a page) instead of one request per test. Tables have no TTL: expired
//! records are filtered out on read and deleted on save.

use std::collections::HashSet;

use super::client::{BATCH_MAX_OPS, BatchOp, Entity, TableClient};
use super::codec::{MAX_ENTITY_BYTES, body, get_str, keyed, put_body, put_i64};
use super::store::{groups, hex_sha256, store_err};
use crate::domain::history::{HistoryScope, TestHistory, first_in_key_order, storage_key};
use crate::errors::StoreError;

/// Records read per suite at most (a page is 1,000).
const MAX_RECORDS: usize = 1_000_000;
/// Expired records deleted per save at most (the rest go on later saves).
const MAX_PURGE: usize = 100;

fn partition(scope: &HistoryScope) -> String {
    format!("hist-{}", &hex_sha256(&scope.partition())[..40])
}

fn entity(scope: &HistoryScope, record: &TestHistory) -> Entity {
    let mut e = keyed(&partition(scope), &hex_sha256(&storage_key(&record.id)));
    // Leave room for the keys and `expires_ms` within the entity limit.
    put_body(&mut e, &record.to_json_within(MAX_ENTITY_BYTES / 2 - 4096));
    put_i64(&mut e, "expires_ms", record.expires_ms());
    e
}

/// Every unexpired record of the scope (unordered).
async fn read_all(
    client: &TableClient,
    scope: &HistoryScope,
    now_ms: u64,
    limit: usize,
) -> Result<Vec<TestHistory>, StoreError> {
    let filter = format!(
        "PartitionKey eq '{}' and expires_ms ge {now_ms}L",
        partition(scope)
    );
    let entities = client
        .query(&filter, limit)
        .await
        .map_err(|e| store_err("load history", e))?;
    entities
        .iter()
        .map(|e| {
            let key = format!("history/{}", get_str(e, "RowKey").unwrap_or_default());
            let json = body(e).ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                message: "history entity without a body".into(),
            })?;
            TestHistory::from_json(&json, &key)
        })
        .collect()
}

pub(super) async fn load(
    client: &TableClient,
    scope: &HistoryScope,
    ids: &[String],
    now_ms: u64,
) -> Result<Vec<TestHistory>, StoreError> {
    let wanted: HashSet<String> = ids.iter().map(|id| storage_key(id)).collect();
    Ok(read_all(client, scope, now_ms, MAX_RECORDS)
        .await?
        .into_iter()
        .filter(|h| wanted.contains(&storage_key(&h.id)))
        .collect())
}

pub(super) async fn list(
    client: &TableClient,
    scope: &HistoryScope,
    limit: usize,
    now_ms: u64,
) -> Result<Vec<TestHistory>, StoreError> {
    // Row keys are hashes: read the suite, then order by id.
    let mut all = read_all(client, scope, now_ms, MAX_RECORDS).await?;
    first_in_key_order(&mut all, limit);
    Ok(all)
}

pub(super) async fn save(
    client: &TableClient,
    scope: &HistoryScope,
    records: &[TestHistory],
) -> Result<(), StoreError> {
    // One operation per row: a transaction refuses two on one entity.
    let mut seen = HashSet::new();
    let entities: Vec<Entity> = records
        .iter()
        .filter(|r| seen.insert(storage_key(&r.id)))
        .map(|r| entity(scope, r))
        .collect();
    for range in groups(&entities, BATCH_MAX_OPS) {
        let ops: Vec<BatchOp> = entities[range]
            .iter()
            .cloned()
            .map(BatchOp::Upsert)
            .collect();
        if let Some(refused) = client
            .batch(&ops)
            .await
            .map_err(|e| store_err("save history", e))?
        {
            return Err(crate::adapters::azure::error::store_msg(
                "save history",
                refused.to_string(),
            ));
        }
    }
    // Tables have no TTL: delete what expired before the records just
    // written were seen, a bounded number per save.
    if let Some(now) = records.iter().map(|r| r.last_seen_ms).max() {
        let filter = format!(
            "PartitionKey eq '{}' and expires_ms lt {now}L",
            partition(scope)
        );
        let expired = client
            .query(&filter, MAX_PURGE)
            .await
            .map_err(|e| store_err("save history", e))?;
        for e in expired {
            let (Some(pk), Some(rk)) = (get_str(&e, "PartitionKey"), get_str(&e, "RowKey")) else {
                continue;
            };
            client
                .delete(pk, rk)
                .await
                .map_err(|e| store_err("save history", e))?;
        }
    }
    Ok(())
}
