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
use testexec::app::ports::{Completion, RunStore, ShardCompletion};
use testexec::domain::model::{RunId, ShardId};
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

/// Sets attributes of one item with a raw UpdateItem: how these tests put
/// the table in the state a crashed or retried writer leaves behind.
async fn set_attrs(
    client: &Client,
    table: &str,
    pk: String,
    sk: &str,
    sets: &[(&str, AttributeValue)],
) {
    let mut req = client
        .update_item()
        .table_name(table)
        .key("PK", AttributeValue::S(pk))
        .key("SK", AttributeValue::S(sk.into()));
    let mut expr = Vec::new();
    for (i, (name, value)) in sets.iter().enumerate() {
        req = req
            .expression_attribute_names(format!("#a{i}"), *name)
            .expression_attribute_values(format!(":v{i}"), value.clone());
        expr.push(format!("#a{i} = :v{i}"));
    }
    req.update_expression(format!("SET {}", expr.join(", ")))
        .send()
        .await
        .expect("raw UpdateItem");
}

/// The attributes `complete_shard`'s first write puts on a shard item,
/// recorded at `recorded_ms`: the state a collector that died right after
/// that write leaves behind.
fn recorded_only(c: &ShardCompletion, recorded_ms: u64) -> Vec<(&'static str, AttributeValue)> {
    let n = |v: u64| AttributeValue::N(v.to_string());
    let k = &c.counts;
    vec![
        ("status", AttributeValue::S(c.status.as_str().into())),
        ("attempt", n(c.attempt.into())),
        ("started_ms", n(c.started_ms)),
        ("finished_ms", n(c.finished_ms)),
        ("recorded_ms", n(recorded_ms)),
        ("tests", n(k.tests)),
        ("passed", n(k.passed)),
        ("failed", n(k.failed)),
        ("errors", n(k.errors)),
        ("skipped", n(k.skipped)),
        ("flaky", n(k.flaky)),
    ]
}

/// A collector that died between recording a shard and counting it leaves
/// the run short: redeliveries are duplicates (the shard item decided), the
/// run cannot be handed to report, and `recount_run` rebuilds the counts
/// from the shard items, but only once that shard was recorded before the
/// given fence (a younger one may still have its collector running).
#[tokio::test]
async fn a_shard_recorded_but_not_counted_is_recounted() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    let store = DynamoRunStore::new(client.clone(), table.clone()).with_item_locks();
    let (run, shards) = sample_run(RunId::new(), 2);
    store.create_run(&run, &shards).await.expect("create_run");
    let first = contract::completion(ShardId::new(run.id, 0), 1, contract::shard_counts(0));
    assert!(matches!(
        store.complete_shard(&first).await.unwrap(),
        Completion::Applied {
            shards_done: 1,
            shard_count: 2
        }
    ));
    // Shard 0 was counted long ago (t = 4000)...
    set_attrs(
        &client,
        &table,
        format!("RUN#{}", run.id),
        "SHARD#0000",
        &[("recorded_ms", AttributeValue::N("4000".into()))],
    )
    .await;
    // ...and shard 1's first write happened at t = 5000, its second never did.
    let lost = contract::completion(ShardId::new(run.id, 1), 2, contract::shard_counts(1));
    set_attrs(
        &client,
        &table,
        format!("RUN#{}", run.id),
        "SHARD#0001",
        &recorded_only(&lost, 5000),
    )
    .await;
    assert_eq!(
        store.complete_shard(&lost).await.unwrap(),
        Completion::AlreadyCompleted,
        "the redelivery is a duplicate: the shard item decided"
    );
    assert!(
        !store.begin_report(run.id).await.unwrap(),
        "the run is one shard short"
    );
    assert!(
        !store.recount_run(run.id, 5000).await.unwrap(),
        "a shard recorded at the fence may still be on its way to being counted"
    );
    assert_eq!(store.get_run(run.id).await.unwrap().unwrap().shards_done, 1);

    assert!(store.recount_run(run.id, 5001).await.unwrap(), "recounted");
    let got = store.get_run(run.id).await.unwrap().unwrap();
    let mut expected = first.counts;
    expected.add(&lost.counts);
    assert_eq!(
        (got.shards_done, got.counts),
        (2, expected),
        "both shards counted, once"
    );
    assert!(
        !store.recount_run(run.id, u64::MAX).await.unwrap(),
        "a run that is not short is left alone"
    );
    assert!(
        store.begin_report(run.id).await.unwrap(),
        "and can be reported"
    );
    assert!(
        !store.recount_run(run.id, u64::MAX).await.unwrap(),
        "a run past running is never recounted"
    );
}

/// The run's second write is guarded by its `counting` set: if the shard's
/// index is there (a first try of the write was applied and its answer
/// lost), the write adds nothing, and the set is cleared afterwards.
#[tokio::test]
async fn a_retried_count_adds_nothing() {
    let Some((client, table)) = fresh_table().await else {
        return;
    };
    let store = DynamoRunStore::new(client.clone(), table.clone()).with_item_locks();
    let (run, shards) = sample_run(RunId::new(), 2);
    store.create_run(&run, &shards).await.expect("create_run");
    set_attrs(
        &client,
        &table,
        format!("RUN#{}", run.id),
        "META",
        &[("counting", AttributeValue::Ss(vec!["1".into()]))],
    )
    .await;
    let c = contract::completion(ShardId::new(run.id, 1), 1, contract::shard_counts(1));
    assert_eq!(
        store.complete_shard(&c).await.unwrap(),
        Completion::Applied {
            shards_done: 0,
            shard_count: 2
        },
        "the answer is the run as the applied try left it"
    );
    let got = store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!(
        (got.shards_done, got.counts.tests),
        (0, 0),
        "nothing added twice"
    );
    let meta = client
        .get_item()
        .table_name(&table)
        .key("PK", AttributeValue::S(format!("RUN#{}", run.id)))
        .key("SK", AttributeValue::S("META".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(
        !meta.contains_key("counting"),
        "the index left the set: {meta:?}"
    );
    assert_eq!(
        store.list_shards(run.id).await.unwrap()[1].status,
        c.status,
        "the shard is recorded"
    );
}

/// End to end through the sweep: an overdue run one shard short (its
/// collector died between recording the shard and counting it) is
/// recounted, handed to report once, and its report job is on the queue.
#[tokio::test]
async fn the_sweep_recounts_an_overdue_run_left_short() {
    use testexec::adapters::aws::AwsBackends;
    use testexec::adapters::aws::provision::{ProvisionOptions, provision};
    use testexec::adapters::source::LocalDirSource;
    use testexec::app::handlers::sweep::sweep_at;
    use testexec::app::handlers::{Ports, Settings};
    use testexec::app::messages::QueueName;
    use testexec::app::ports::{NoNotifier, QueueConsumer, SystemClock};

    let Some(sdk) = emulators::moto().await else {
        return;
    };
    let aws_settings = provision(
        &sdk,
        &emulators::unique_name("sweep"),
        ProvisionOptions {
            visibility: std::time::Duration::from_secs(30),
            max_receives: 5,
            s3_path_style: true,
        },
    )
    .await
    .expect("provisioning on moto");
    let aws = AwsBackends::new(&sdk, &aws_settings);
    let client = Client::new(&sdk);
    let table = aws_settings.table.clone();
    let ports = Ports {
        store: aws.store.clone(),
        blobs: aws.blobs.clone(),
        queue: aws.queue.clone(),
        source: Arc::new(LocalDirSource::default()),
        notifier: Arc::new(NoNotifier),
        clock: Arc::new(SystemClock),
    };
    let (run, shards) = sample_run(RunId::new(), 2);
    aws.store
        .create_run(&run, &shards)
        .await
        .expect("create_run");
    let counted = contract::completion(ShardId::new(run.id, 0), 1, contract::shard_counts(0));
    aws.store
        .complete_shard(&counted)
        .await
        .expect("complete shard 0");
    let lost = contract::completion(ShardId::new(run.id, 1), 1, contract::shard_counts(1));
    for (sk, sets) in [
        (
            "SHARD#0000",
            vec![("recorded_ms", AttributeValue::N("1000".into()))],
        ),
        ("SHARD#0001", recorded_only(&lost, 1000)),
    ] {
        set_attrs(&client, &table, format!("RUN#{}", run.id), sk, &sets).await;
    }
    let settings = Settings::default();
    // Before the deadline the sweep leaves the short run alone.
    let early = sweep_at(&ports, &settings, run.created_ms)
        .await
        .expect("sweep");
    assert!(
        early.recounted.is_empty() && early.reports_queued.is_empty(),
        "{early:?}"
    );

    let outcome = sweep_at(&ports, &settings, u64::MAX).await.expect("sweep");
    assert_eq!(outcome.recounted, vec![run.id], "{outcome:?}");
    assert_eq!(outcome.reports_queued, vec![run.id], "{outcome:?}");
    assert!(outcome.errored_shards.is_empty(), "no shard was pending");
    let got = aws.store.get_run(run.id).await.unwrap().unwrap();
    let mut expected = counted.counts;
    expected.add(&lost.counts);
    assert_eq!(
        (got.status, got.shards_done, got.counts),
        (testexec::domain::model::RunStatus::Reporting, 2, expected)
    );
    let job = aws
        .queue
        .receive(QueueName::Reports, std::time::Duration::from_secs(5))
        .await
        .expect("receive")
        .expect("a report job");
    assert!(
        job.body.contains(&run.id.to_string()),
        "the report job names the run"
    );
    let again = sweep_at(&ports, &settings, u64::MAX).await.expect("sweep");
    assert!(again.recounted.is_empty(), "recounted once: {again:?}");
}
