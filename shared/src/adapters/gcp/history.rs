//! Per-test history in Firestore: collection `<prefix>history`, one
//! document a test, id `history::record_id` (document ids refuse `/`),
//! fields `scope`, `key`, `body` (the record as JSON), `expires_ms` and
//! `expires_at` (a timestamp, for a TTL policy on the collection).
//!
//! Reads are one batched get of the run's tests; writes go in batches of
//! 500 (Firestore's limit per `BatchWrite`); listing a suite is an equality
//! query on `scope` (no composite index), ordered here.

use ::firestore::{FirestoreDb, FirestoreInstant};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::domain::history::{
    HistoryScope, TestHistory, first_in_key_order, record_id, storage_key,
};
use crate::errors::StoreError;

/// Writes per `BatchWrite` request.
const BATCH_MAX_WRITES: usize = 500;
/// Largest body kept (a document is at most 1 MiB).
const MAX_BODY_BYTES: usize = 900 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HistoryDoc {
    scope: String,
    key: String,
    body: String,
    expires_ms: u64,
    #[serde(with = "::firestore::serialize_as_timestamp")]
    expires_at: FirestoreInstant,
}

fn backend(operation: &'static str, collection: &str, e: impl std::fmt::Display) -> StoreError {
    super::store::backend(operation, collection, e)
}

fn record(doc: &HistoryDoc, now_ms: u64) -> Result<Option<TestHistory>, StoreError> {
    // Firestore's TTL deletes within about a day: check it here.
    if doc.expires_ms < now_ms {
        return Ok(None);
    }
    TestHistory::from_json(&doc.body, &format!("history/{}", doc.key)).map(Some)
}

pub(super) async fn load(
    db: &FirestoreDb,
    collection: &str,
    scope: &HistoryScope,
    ids: &[String],
    now_ms: u64,
) -> Result<Vec<TestHistory>, StoreError> {
    let mut doc_ids: Vec<String> = ids.iter().map(|id| record_id(scope, id)).collect();
    doc_ids.sort();
    doc_ids.dedup();
    let mut out = Vec::new();
    for chunk in doc_ids.chunks(BATCH_MAX_WRITES) {
        let mut stream = db
            .fluent()
            .select()
            .by_id_in(collection)
            .obj::<HistoryDoc>()
            .batch(chunk.iter().cloned())
            .await
            .map_err(|e| backend("load history", collection, e))?;
        while let Some((_, doc)) = stream.next().await {
            if let Some(r) = doc
                .as_ref()
                .map(|d| record(d, now_ms))
                .transpose()?
                .flatten()
            {
                out.push(r);
            }
        }
    }
    Ok(out)
}

pub(super) async fn list(
    db: &FirestoreDb,
    collection: &str,
    scope: &HistoryScope,
    limit: usize,
    now_ms: u64,
) -> Result<Vec<TestHistory>, StoreError> {
    let partition = scope.partition();
    let docs: Vec<HistoryDoc> = db
        .fluent()
        .select()
        .from(collection)
        .filter(|q| q.field("scope").eq(partition.clone()))
        .obj::<HistoryDoc>()
        .query()
        .await
        .map_err(|e| backend("list history", collection, e))?;
    let mut out = Vec::new();
    for doc in &docs {
        if let Some(r) = record(doc, now_ms)? {
            out.push(r);
        }
    }
    first_in_key_order(&mut out, limit);
    Ok(out)
}

pub(super) async fn save(
    db: &FirestoreDb,
    collection: &str,
    scope: &HistoryScope,
    records: &[TestHistory],
) -> Result<(), StoreError> {
    let writer = db
        .create_simple_batch_writer()
        .await
        .map_err(|e| backend("save history", collection, e))?;
    let partition = scope.partition();
    for chunk in records.chunks(BATCH_MAX_WRITES) {
        let mut batch = writer.new_batch();
        let mut seen = std::collections::HashSet::new();
        for r in chunk {
            let id = record_id(scope, &r.id);
            if !seen.insert(id.clone()) {
                continue;
            }
            let expires_ms = r.expires_ms();
            let doc = HistoryDoc {
                scope: partition.clone(),
                key: storage_key(&r.id),
                body: r.to_json_within(MAX_BODY_BYTES),
                expires_ms,
                expires_at: FirestoreInstant::from_millisecond(
                    i64::try_from(expires_ms).unwrap_or(i64::MAX),
                )
                .unwrap_or(FirestoreInstant::MAX),
            };
            db.fluent()
                .update()
                .in_col(collection)
                .document_id(&id)
                .object(&doc)
                .add_to_batch(&mut batch)
                .map_err(|e| backend("save history", collection, e))?;
        }
        batch
            .write()
            .await
            .map_err(|e| backend("save history", collection, e))?;
    }
    Ok(())
}
