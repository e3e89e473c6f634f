//! Per-test history on the table: one item per test,
//! `PK=HIST#<suite>#<repo>#<test key>`, `SK=HIST`, the record as JSON in
//! `body` and `expires_at` (the table's TTL attribute) 90 days after the
//! test was last seen.
//!
//! One partition per test spreads a large suite's writes over the table
//! instead of throttling one hot partition. Reads are `BatchGetItem` (100
//! keys a request), writes `BatchWriteItem` (25 items a request, via
//! [`put_items`]); both retry what DynamoDB leaves unprocessed. Records are
//! trimmed to [`MAX_ITEM_BYTES`] before they are sent (a record within the
//! history caps is a few kilobytes; moto does not enforce the limits, so
//! this code does).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::batch::{batch_backoff, put_items, retry_unprocessed};
use super::codec::{Item, MAX_ITEM_BYTES, n, s};
use super::error::backend;
use super::layout::{BODY, EXPIRES_AT, PK, key};
use crate::domain::history::{HistoryScope, TestHistory, storage_key};
use crate::errors::StoreError;

/// The sort key of every history item.
pub const HIST: &str = "HIST";
/// BatchGetItem: at most 100 keys (and 16 MB) per request.
pub const BATCH_GET_MAX_KEYS: usize = 100;
/// Room left in an item for its keys and TTL attribute.
const KEY_MARGIN: usize = 4 * 1024;

/// Suite names have no `#` (manifest rule), so the prefix is unambiguous.
pub(super) fn history_pk(scope: &HistoryScope, id: &str) -> String {
    format!("HIST#{}#{}#{}", scope.suite, scope.repo, storage_key(id))
}

pub(super) fn history_item(scope: &HistoryScope, record: &TestHistory) -> Item {
    let mut item = key(&history_pk(scope, &record.id), HIST);
    item.insert(
        BODY.into(),
        s(&record.to_json_within(MAX_ITEM_BYTES - KEY_MARGIN)),
    );
    // Rounded up: the TTL must never delete a record still in its window.
    item.insert(EXPIRES_AT.into(), n(record.expires_ms().div_ceil(1000)));
    item
}

pub(super) async fn load(
    client: &Client,
    table: &str,
    scope: &HistoryScope,
    ids: &[String],
    now_ms: u64,
) -> Result<Vec<TestHistory>, StoreError> {
    let found: Arc<Mutex<Vec<Item>>> = Arc::default();
    // A run may list a test twice (two JUnit files); BatchGetItem refuses
    // duplicate keys.
    let mut pks: Vec<String> = ids.iter().map(|id| history_pk(scope, id)).collect();
    pks.sort();
    pks.dedup();
    for chunk in pks.chunks(BATCH_GET_MAX_KEYS) {
        let keys: Vec<Item> = chunk.iter().map(|pk| key(pk, HIST)).collect();
        let found = found.clone();
        retry_unprocessed(keys, batch_backoff(), move |keys| {
            let found = found.clone();
            async move {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .build()
                    .map_err(|e| backend("load history", e))?;
                let out = client
                    .batch_get_item()
                    .request_items(table, request)
                    .send()
                    .await
                    .map_err(|e| backend("load history", e))?;
                if let Some(items) = out.responses.and_then(|mut r| r.remove(table)) {
                    found
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(items);
                }
                Ok(out
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(table))
                    .map(|k| k.keys)
                    .unwrap_or_default())
            }
        })
        .await?;
    }
    let items = std::mem::take(&mut *found.lock().unwrap_or_else(|p| p.into_inner()));
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let key_text = match item.get(PK) {
            Some(aws_sdk_dynamodb::types::AttributeValue::S(pk)) => pk.clone(),
            _ => "HIST#?".to_string(),
        };
        let body = match item.get(BODY) {
            Some(aws_sdk_dynamodb::types::AttributeValue::S(b)) => b,
            _ => {
                return Err(StoreError::Corrupt {
                    key: key_text,
                    message: format!("history item without a string `{BODY}`"),
                });
            }
        };
        let record = TestHistory::from_json(body, &key_text)?;
        // The TTL deletes lazily (up to days later): check it here.
        if !record.expired(now_ms) {
            out.push(record);
        }
    }
    Ok(out)
}

pub(super) async fn save(
    client: &Client,
    table: &str,
    scope: &HistoryScope,
    records: &[TestHistory],
) -> Result<(), StoreError> {
    // One item per key: BatchWriteItem refuses two writes of one key.
    let mut by_key: HashMap<String, Item> = HashMap::with_capacity(records.len());
    for r in records {
        by_key.insert(history_pk(scope, &r.id), history_item(scope, r));
    }
    put_items(client, table, by_key.into_values().collect()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::aws::dynamodb::item_size;
    use crate::domain::history::{HistoryEntry, MAX_ENTRIES};
    use crate::domain::model::Outcome;

    #[test]
    fn keys_are_per_test_and_bounded() {
        let scope = HistoryScope::new("o/r", "unit");
        assert_eq!(history_pk(&scope, "a::b"), "HIST#unit#o/r#a::b");
        let long = "x".repeat(100_000);
        assert!(history_pk(&scope, &long).len() < 2048);
    }

    /// The figure `docs/backends.md` prices: a steady-state record (50
    /// runs of a test on `main`, 40-character commits, no retries) is one
    /// item of about 7 KB, so 7 write units per test per run and one
    /// eventually consistent read unit (BatchGetItem's default) per 4 KB.
    #[test]
    fn a_steady_state_record_is_about_seven_kilobytes() {
        let scope = HistoryScope::new("octo-org/octo-repo", "unit");
        let mut record = TestHistory::new("tests.test_api.TestOrders::test_refund_is_idempotent");
        let run = "01M96VYAGXWWAXEWHBSWW8WRQW";
        for i in 0..MAX_ENTRIES as u64 {
            record.record(HistoryEntry {
                run: format!("{}{i:02}", &run[..24]),
                at_ms: 1_765_065_600_000 + i * 3_600_000,
                commit: Some(format!("{:040x}", i * 7919)),
                branch: Some("main".into()),
                outcome: Outcome::Passed,
                attempts: Vec::new(),
                duration_secs: 0.123,
            });
        }
        let bytes = item_size(&history_item(&scope, &record));
        eprintln!("steady-state history item: {bytes} bytes");
        assert!((6_000..8_192).contains(&bytes), "{bytes}");
    }

    #[test]
    fn items_stay_under_the_item_limit() {
        let scope = HistoryScope::new("o/r", "unit");
        let mut record = TestHistory::new(&"i".repeat(5000));
        // Far over the caps, as a corrupt or hostile input could be.
        for i in 0..(MAX_ENTRIES * 200) {
            record.entries.push(HistoryEntry {
                run: format!("{i:026}"),
                at_ms: i as u64,
                commit: Some("c".repeat(64)),
                branch: Some("b".repeat(255)),
                outcome: Outcome::Failed,
                attempts: vec![Outcome::Failed; 11],
                duration_secs: 1.0,
            });
        }
        let item = history_item(&scope, &record);
        assert!(item_size(&item) <= MAX_ITEM_BYTES, "{}", item_size(&item));
    }
}
