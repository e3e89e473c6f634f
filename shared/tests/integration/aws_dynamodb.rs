//! The DynamoDB run store against moto: the whole run store contract,
//! unchanged, plus what only DynamoDB has (table creation, 100-action
//! transactions, pagination, the item size limit, TTL'd delivery claims,
//! BatchWriteItem). Skips when moto is not configured (see
//! `testkit::emulators`).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use testexec::adapters::aws::DynamoRunStore;
use testexec::adapters::aws::dynamodb::{self, create_table};
use testexec::app::ports::{Completion, RunStore};
use testexec::domain::model::{RunId, ShardId, ShardStatus};
use testexec::errors::StoreError;
use testexec::testkit::contract::{self, run_id_at, sample_run};
use testexec::testkit::emulators;

/// A client for moto and a fresh table made by `create_table`, or `None`
/// (skip) without moto.
/// Stores in these tests use `with_item_locks`: moto's threaded server
/// does not apply concurrent writes to one item atomically (see there).
async fn fresh_table() -> Option<(Client, String)> {
    let sdk = emulators::moto().await?;
    let client = Client::new(&sdk);
    let table = emulators::unique_name("testexec-runs");
    create_table(&client, &table).await.expect("create_table");
    Some((client, table))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_store_contract() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    let store = Arc::new(DynamoRunStore::new(client, table).with_item_locks());
    contract::run_store_contract(store.clone()).await;
    contract::history_store_contract(&*store).await;
}

/// The same contract with one-item query pages, so every listing the
/// contract checks goes through LastEvaluatedKey.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_store_contract_with_tiny_pages() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    let store = DynamoRunStore::new(client, table)
        .with_item_locks()
        .with_page_size(1);
    contract::run_store_contract(Arc::new(store)).await;
}

#[tokio::test]
async fn create_table_is_idempotent_and_declares_ttl_and_indexes() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    create_table(&client, &table)
        .await
        .expect("second create_table of the same table");
    let desc = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("describe")
        .table
        .expect("table");
    let mut indexes: Vec<&str> = desc
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["active-runs", "runs-by-time"]);
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .expect("describe ttl");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expires_at")
    );
}

/// 250 shards: more than one 100-action transaction; all are written and
/// listed in index order, and a duplicate create still conflicts.
#[tokio::test]
async fn run_with_250_shards_round_trips_in_order() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    let store = DynamoRunStore::new(client, table)
        .with_item_locks()
        .with_page_size(64);
    let (run, mut shards) = sample_run(RunId::new(), 250);
    shards.reverse();
    store.create_run(&run, &shards).await.expect("create_run");
    let listed = store.list_shards(run.id).await.expect("list_shards");
    let indexes: Vec<u32> = listed.iter().map(|s| s.id.index).collect();
    assert_eq!(indexes, (0..250).collect::<Vec<_>>());
    shards.reverse();
    assert_eq!(listed, shards, "every shard round-trips unchanged");
    assert!(matches!(
        store.create_run(&run, &shards).await,
        Err(StoreError::Conflict { .. })
    ));
    // The last shard (written outside the first transaction) completes.
    let c = contract::completion(ShardId::new(run.id, 249), 1, contract::shard_counts(249));
    assert_eq!(
        store.complete_shard(&c).await.expect("complete"),
        Completion::Applied {
            shards_done: 1,
            shard_count: 250
        }
    );
}

/// More runs than one query page: list_runs keeps following
/// LastEvaluatedKey, newest first, and stops at `limit`.
#[tokio::test]
async fn list_runs_paginates() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    let store = DynamoRunStore::new(client, table)
        .with_item_locks()
        .with_page_size(3);
    let base = 1_750_000_000_000;
    let ids: Vec<RunId> = (0..11).map(|i| run_id_at(base + i * 1000)).collect();
    for id in &ids {
        let (run, shards) = sample_run(*id, 1);
        store.create_run(&run, &shards).await.expect("create_run");
    }
    let newest_first: Vec<RunId> = ids.iter().rev().copied().collect();
    let got: Vec<RunId> = store
        .list_runs(100)
        .await
        .expect("list_runs")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(got, newest_first, "all 11 runs over 4 pages, newest first");
    let seven: Vec<RunId> = store
        .list_runs(7)
        .await
        .expect("list_runs")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(seven, newest_first[..7]);
    let active = store.list_active_runs().await.expect("list_active_runs");
    assert_eq!(
        active.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids,
        "active runs oldest first over several pages"
    );
}

/// Runs of ~120 KB each: 12 of them are more than one 1 MB query page on
/// real DynamoDB; the listing must still return all of them.
#[tokio::test]
async fn list_runs_returns_more_than_a_megabyte() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    let store = DynamoRunStore::new(client, table).with_item_locks();
    let mut ids = Vec::new();
    for i in 0..12 {
        let (mut run, shards) = sample_run(run_id_at(1_760_000_000_000 + i * 1000), 1);
        run.suite = format!("{i}-{}", "s".repeat(120 * 1024));
        store.create_run(&run, &shards).await.expect("create_run");
        ids.push(run.id);
    }
    // The emulator does cut a page at 1 MB, so the store must follow it.
    let page = store
        .client()
        .query()
        .table_name(store.table())
        .index_name("runs-by-time")
        .key_condition_expression("gsi1pk = :v")
        .expression_attribute_values(":v", AttributeValue::S("RUNS".into()))
        .send()
        .await
        .expect("raw query");
    assert!(
        page.items().len() < 12 && page.last_evaluated_key().is_some(),
        "one page holds {} of 12 runs",
        page.items().len()
    );
    ids.reverse();
    let got = store.list_runs(50).await.expect("list_runs");
    assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert!(got.iter().all(|r| r.suite.len() > 120 * 1024));
}

/// A run whose item would pass DynamoDB's 400 KB is refused with a clear
/// error naming the run and the size, and nothing is written.
#[tokio::test]
async fn oversized_run_is_refused() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    let store = DynamoRunStore::new(client, table).with_item_locks();
    let (mut run, shards) = sample_run(RunId::new(), 2);
    run.suite = "x".repeat(400 * 1024);
    match store.create_run(&run, &shards).await {
        Err(StoreError::Invalid { run: r, message }) => {
            assert_eq!(r, run.id.to_string());
            assert!(
                message.contains("byte") && message.contains(&run.id.to_string()),
                "{message}"
            );
        }
        other => panic!("an oversized run must be Invalid, got {other:?}"),
    }
    assert!(store.get_run(run.id).await.expect("get_run").is_none());
    assert!(store.list_shards(run.id).await.expect("list").is_empty());

    // A huge final error is cut, never refused: the final write must land.
    let (run, shards) = sample_run(RunId::new(), 1);
    store.create_run(&run, &shards).await.expect("create_run");
    let huge = "e".repeat(500 * 1024);
    assert!(
        store
            .finish_run(
                run.id,
                testexec::domain::model::RunStatus::Errored,
                1,
                Some(huge)
            )
            .await
            .expect("finish_run with a huge error")
    );
    let got = store.get_run(run.id).await.expect("get").expect("run");
    let error = got.error.expect("error kept");
    assert!(error.len() <= dynamodb::MAX_ERROR_BYTES + 20 && error.ends_with("[truncated]"));
}

/// An expired claim is taken over even though the item still exists (TTL
/// deletes lazily); the item carries TTL seconds and exact milliseconds.
#[tokio::test]
async fn claim_delivery_after_expiry_reclaims() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    let store = DynamoRunStore::new(client.clone(), table.clone()).with_item_locks();
    let now = 1_800_000_000_123;
    assert!(store.claim_delivery("gh:abc", now, 1_000).await.unwrap());
    assert!(
        !store
            .claim_delivery("gh:abc", now + 1_000, 1_000)
            .await
            .unwrap()
    );
    let item = client
        .get_item()
        .table_name(&table)
        .key("PK", AttributeValue::S("DELIVERY#gh:abc".into()))
        .key("SK", AttributeValue::S("DELIVERY".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("claim item stored");
    assert_eq!(
        item.get("expires_at"),
        Some(&AttributeValue::N("1800000002".into())),
        "TTL in whole seconds, rounded up"
    );
    assert_eq!(
        item.get("expires_ms"),
        Some(&AttributeValue::N("1800000001123".into()))
    );
    assert!(
        store
            .claim_delivery("gh:abc", now + 1_001, 1_000)
            .await
            .unwrap(),
        "expired claim is re-claimed though the item is still there"
    );
    assert!(
        !store
            .claim_delivery("gh:abc", now + 1_500, 1_000)
            .await
            .unwrap()
    );
    assert!(matches!(
        store.claim_delivery(&"k".repeat(5000), now, 1).await,
        Err(StoreError::Invalid { .. })
    ));
}

/// put_items writes 60 items (three BatchWriteItem chunks) and all arrive.
#[tokio::test]
async fn put_items_writes_sixty_items() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    let items: Vec<HashMap<String, AttributeValue>> = (0..60)
        .map(|i| {
            HashMap::from([
                ("PK".to_string(), AttributeValue::S("IMPORT#batch".into())),
                ("SK".to_string(), AttributeValue::S(format!("ITEM#{i:03}"))),
                ("n".to_string(), AttributeValue::N(i.to_string())),
            ])
        })
        .collect();
    dynamodb::put_items(&client, &table, items)
        .await
        .expect("put_items");
    let out = client
        .query()
        .table_name(&table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("IMPORT#batch".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("query");
    let got: Vec<String> = out
        .items()
        .iter()
        .map(|i| match i.get("n") {
            Some(AttributeValue::N(n)) => n.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, (0..60).map(|i| i.to_string()).collect::<Vec<_>>());

    let too_big = vec![HashMap::from([
        ("PK".to_string(), AttributeValue::S("IMPORT#big".into())),
        ("SK".to_string(), AttributeValue::S("x".into())),
        ("b".to_string(), AttributeValue::S("b".repeat(360 * 1024))),
    ])];
    assert!(matches!(
        dynamodb::put_items(&client, &table, too_big).await,
        Err(StoreError::Invalid { .. })
    ));
}

/// A redelivered completion of the counted attempt repairs a shard item
/// left pending (the first delivery died between its two writes); another
/// attempt does not overwrite the counted one.
#[tokio::test]
async fn duplicate_completion_repairs_a_shard_left_pending() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    let store = DynamoRunStore::new(client.clone(), table.clone()).with_item_locks();
    let (run, shards) = sample_run(RunId::new(), 2);
    store.create_run(&run, &shards).await.expect("create_run");
    let c = contract::completion(ShardId::new(run.id, 1), 3, contract::shard_counts(1));
    assert!(matches!(
        store.complete_shard(&c).await.unwrap(),
        Completion::Applied { shards_done: 1, .. }
    ));
    // Simulate the crash: put the shard item back to pending.
    client
        .update_item()
        .table_name(&table)
        .key("PK", AttributeValue::S(format!("RUN#{}", run.id)))
        .key("SK", AttributeValue::S("SHARD#0001".into()))
        .update_expression("SET #s = :p")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":p", AttributeValue::S("pending".into()))
        .send()
        .await
        .unwrap();
    let other_attempt = testexec::app::ports::ShardCompletion {
        attempt: 4,
        ..c.clone()
    };
    assert_eq!(
        store.complete_shard(&other_attempt).await.unwrap(),
        Completion::AlreadyCompleted
    );
    assert_eq!(
        store.list_shards(run.id).await.unwrap()[1].status,
        ShardStatus::Pending,
        "an attempt that was not counted does not write the shard"
    );
    assert_eq!(
        store.complete_shard(&c).await.unwrap(),
        Completion::AlreadyCompleted
    );
    let shard = &store.list_shards(run.id).await.unwrap()[1];
    assert_eq!(
        (shard.status, shard.attempt, shard.counts),
        (c.status, Some(3), c.counts),
        "the counted attempt's redelivery repairs the shard"
    );
    let got = store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!((got.shards_done, got.counts), (1, c.counts), "counted once");
}
