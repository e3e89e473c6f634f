//! [`RunStore`] on one DynamoDB table (layout in `docs/backends.md`).
//!
//! Items:
//! * run: `PK=RUN#<ulid> SK=META`. The `body` attribute holds the run as
//!   JSON; the fields that conditional writes change (`status`,
//!   `shards_done`, the six counters, `finished_ms`, `error`) live in their
//!   own attributes so `ADD`/`SET` can touch them, and they win when a run is
//!   read back (as the columns do in the SQLite store). `won` is a map from
//!   shard index to the attempt whose completion was counted: it is the
//!   exactly-once arbiter of `complete_shard`.
//! * shard: `PK=RUN#<ulid> SK=SHARD#0007`, `body` = the planned record,
//!   overlaid by `status`, `attempt`, `started_ms`, `finished_ms`, `error`
//!   and the counters once completed.
//! * delivery claim: `PK=DELIVERY#<key> SK=DELIVERY`, `expires_at` (epoch
//!   seconds, the table's TTL attribute) and `expires_ms` (the exact check).
//!
//! Indexes: `runs-by-time` (`gsi1pk`="RUNS", `gsi1sk`=ulid) for
//! `list_runs`, and the sparse `active-runs` (`gsi2pk`="ACTIVE",
//! `gsi2sk`=ulid, removed by `finish_run`) for `list_active_runs`.
//!
//! Limits: items are refused above [`MAX_ITEM_BYTES`] (DynamoDB's hard limit
//! is 400 KB), error texts are cut to [`MAX_ERROR_BYTES`] so a final write
//! can never be refused for size; transactions hold at most 100 actions and
//! 4 MB, `BatchWriteItem` 25 items; every `Query` is paged.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus, TransactWriteItem, WriteRequest,
};

use crate::app::ports::{Completion, RunStore, ShardCompletion};
use crate::domain::model::{Counts, Run, RunId, RunStatus, ShardRecord, ShardStatus};
use crate::errors::StoreError;

const BACKEND: &str = "dynamodb";

/// Attribute and index names: `template.yaml` declares the same.
pub mod layout {
    pub const PK: &str = "PK";
    pub const SK: &str = "SK";
    pub const META: &str = "META";
    pub const DELIVERY: &str = "DELIVERY";
    pub const RUNS_BY_TIME: &str = "runs-by-time";
    pub const GSI1_PK: &str = "gsi1pk";
    pub const GSI1_SK: &str = "gsi1sk";
    pub const GSI1_VALUE: &str = "RUNS";
    pub const ACTIVE_RUNS: &str = "active-runs";
    pub const GSI2_PK: &str = "gsi2pk";
    pub const GSI2_SK: &str = "gsi2sk";
    pub const GSI2_VALUE: &str = "ACTIVE";
    /// The TTL attribute (epoch seconds).
    pub const EXPIRES_AT: &str = "expires_at";
    pub const EXPIRES_MS: &str = "expires_ms";
}
use layout::*;

/// Largest item this store writes. DynamoDB refuses items over 400 KB; the
/// margin leaves room for the error text and counters added later.
pub const MAX_ITEM_BYTES: usize = 350 * 1024;
/// Error texts (run or shard) are cut to this many bytes before storing.
pub const MAX_ERROR_BYTES: usize = 16 * 1024;
/// DynamoDB's partition keys are at most 2048 bytes; delivery keys are
/// refused above this.
pub const MAX_DELIVERY_KEY_BYTES: usize = 1024;
/// TransactWriteItems: at most 100 actions and 4 MB per request.
pub const TRANSACT_MAX_ITEMS: usize = 100;
const TRANSACT_MAX_BYTES: usize = 3 * 1024 * 1024 + 512 * 1024;
/// BatchWriteItem: at most 25 items (and 16 MB) per request.
pub const BATCH_MAX_ITEMS: usize = 25;
const BATCH_MAX_BYTES: usize = 15 * 1024 * 1024;
/// Attempts of one BatchWriteItem chunk while DynamoDB leaves items unprocessed.
const BATCH_ATTEMPTS: u32 = 8;

const STATUS: &str = "status";
const BODY: &str = "body";
const SHARD_COUNT: &str = "shard_count";
const SHARDS_DONE: &str = "shards_done";
const FINISHED_MS: &str = "finished_ms";
const STARTED_MS: &str = "started_ms";
const ERROR: &str = "error";
const ATTEMPT: &str = "attempt";
const WON: &str = "won";
const COUNTERS: [&str; 6] = ["tests", "passed", "failed", "errors", "skipped", "flaky"];

type Item = HashMap<String, AttributeValue>;

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

    /// Step two of `complete_shard`: records the completion on the shard
    /// item if it is still pending. A failed condition means it is already
    /// recorded, which is fine.
    async fn record_shard(&self, c: &ShardCompletion) -> Result<(), StoreError> {
        let run = c.shard.run.to_string();
        let mut names = HashMap::from([
            ("#s".to_string(), STATUS.to_string()),
            ("#a".to_string(), ATTEMPT.to_string()),
            ("#st".to_string(), STARTED_MS.to_string()),
            ("#fi".to_string(), FINISHED_MS.to_string()),
        ]);
        let mut values = HashMap::from([
            (":s".to_string(), s(c.status.as_str())),
            (":pending".to_string(), s(ShardStatus::Pending.as_str())),
            (":a".to_string(), n(c.attempt)),
            (":st".to_string(), n(c.started_ms)),
            (":fi".to_string(), n(c.finished_ms)),
        ]);
        let mut set = vec!["#s = :s", "#a = :a", "#st = :st", "#fi = :fi"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        for (i, (name, v)) in COUNTERS.iter().zip(counts_of(&c.counts)).enumerate() {
            names.insert(format!("#c{i}"), name.to_string());
            values.insert(format!(":c{i}"), n(v));
            set.push(format!("#c{i} = :c{i}"));
        }
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
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_ccf(&e) => Ok(()),
            Err(e) => Err(backend("complete shard", e)),
        }
    }
}

fn is_ccf(e: &aws_sdk_dynamodb::error::SdkError<UpdateItemError, impl std::fmt::Debug>) -> bool {
    e.as_service_error()
        .is_some_and(|e| e.is_conditional_check_failed_exception())
}

/// The item a failed conditional UpdateItem returned (ALL_OLD), if any.
/// `Err` when the failure was not a failed condition.
fn ccf_item<R: std::fmt::Debug + Send + Sync + 'static>(
    operation: &'static str,
    e: aws_sdk_dynamodb::error::SdkError<UpdateItemError, R>,
) -> Result<Option<Item>, StoreError> {
    match e.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(c)) => Ok(c.item().cloned()),
        _ => Err(backend(operation, e)),
    }
}

fn backend(operation: &'static str, e: impl std::error::Error) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        operation,
        source: DisplayErrorContext(&e).to_string().into(),
    }
}

fn backend_msg(operation: &'static str, message: String) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        operation,
        source: message.into(),
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn run_pk(id: &str) -> String {
    format!("RUN#{id}")
}

/// Zero-padded so shards sort by index (the store also sorts after reading,
/// so indexes past 9999 stay in order).
fn shard_sk(index: u32) -> String {
    format!("SHARD#{index:04}")
}

fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([(PK.to_string(), s(pk)), (SK.to_string(), s(sk))])
}

fn counts_of(c: &Counts) -> [u64; 6] {
    [c.tests, c.passed, c.failed, c.errors, c.skipped, c.flaky]
}

fn cap_error(e: &str) -> String {
    if e.len() <= MAX_ERROR_BYTES {
        return e.to_string();
    }
    let mut cut = MAX_ERROR_BYTES;
    while !e.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n…[truncated]", &e[..cut])
}

fn status_from_str(v: &str) -> Option<RunStatus> {
    [
        RunStatus::Running,
        RunStatus::Reporting,
        RunStatus::Passed,
        RunStatus::Failed,
        RunStatus::Errored,
    ]
    .into_iter()
    .find(|st| st.as_str() == v)
}

fn shard_status_from_str(v: &str) -> Option<ShardStatus> {
    [
        ShardStatus::Pending,
        ShardStatus::Passed,
        ShardStatus::Failed,
        ShardStatus::Errored,
    ]
    .into_iter()
    .find(|st| st.as_str() == v)
}

/// DynamoDB's size of an item: attribute names plus values. Numbers are
/// counted by their text (an upper bound of their stored size).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(x) | AttributeValue::N(x) => x.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(xs) | AttributeValue::Ns(xs) => xs.iter().map(String::len).sum(),
        AttributeValue::Bs(xs) => xs.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        _ => 1,
    }
}

/// Splits items (given by their sizes) into consecutive chunks of at most
/// `max_items` items and `max_bytes` bytes (a single larger item gets a
/// chunk of its own). Returns the chunks' index ranges.
pub fn chunk_ranges(
    sizes: &[usize],
    max_items: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == max_items || (i > start && bytes + size > max_bytes);
        if full {
            chunks.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        chunks.push(start..sizes.len());
    }
    chunks
}

fn num(item: &Item, name: &str, key: &str) -> Result<Option<u64>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|_| StoreError::Corrupt {
            key: key.to_string(),
            message: format!("attribute `{name}` is not a whole number: {v}"),
        }),
        Some(other) => Err(StoreError::Corrupt {
            key: key.to_string(),
            message: format!("attribute `{name}` has the wrong type: {other:?}"),
        }),
    }
}

fn text<'a>(item: &'a Item, name: &str, key: &str) -> Result<Option<&'a str>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v)),
        Some(_) => Err(StoreError::Corrupt {
            key: key.to_string(),
            message: format!("attribute `{name}` is not a string"),
        }),
    }
}

fn counts_from(item: &Item, key: &str) -> Result<Counts, StoreError> {
    let mut c = [0u64; 6];
    for (slot, name) in c.iter_mut().zip(COUNTERS) {
        *slot = num(item, name, key)?.unwrap_or(0);
    }
    Ok(Counts {
        tests: c[0],
        passed: c[1],
        failed: c[2],
        errors: c[3],
        skipped: c[4],
        flaky: c[5],
    })
}

/// Rebuilds a run from its META item: the JSON body, overridden by the
/// attributes that conditional writes update.
fn run_from_item(item: &Item) -> Result<Run, StoreError> {
    let pk = text(item, PK, "run item")?.unwrap_or("?").to_string();
    let corrupt = |message: String| StoreError::Corrupt {
        key: pk.clone(),
        message,
    };
    let body = text(item, BODY, &pk)?.ok_or_else(|| corrupt("no `body`".into()))?;
    let mut run: Run = serde_json::from_str(body).map_err(|e| corrupt(e.to_string()))?;
    if let Some(st) = text(item, STATUS, &pk)? {
        run.status =
            status_from_str(st).ok_or_else(|| corrupt(format!("unknown status `{st}`")))?;
    }
    if let Some(done) = num(item, SHARDS_DONE, &pk)? {
        run.shards_done =
            u32::try_from(done).map_err(|_| corrupt("shards_done overflows".into()))?;
    }
    run.counts = counts_from(item, &pk)?;
    run.finished_ms = num(item, FINISHED_MS, &pk)?;
    run.error = text(item, ERROR, &pk)?.map(str::to_string);
    Ok(run)
}

/// Rebuilds a shard from its item: the planned record, overridden by the
/// completion's attributes once it is completed.
fn shard_from_item(item: &Item) -> Result<ShardRecord, StoreError> {
    let pk = text(item, PK, "shard item")?.unwrap_or("?");
    let sk = text(item, SK, "shard item")?.unwrap_or("?");
    let key = format!("{pk}/{sk}");
    let corrupt = |message: String| StoreError::Corrupt {
        key: key.clone(),
        message,
    };
    let body = text(item, BODY, &key)?.ok_or_else(|| corrupt("no `body`".into()))?;
    let mut shard: ShardRecord = serde_json::from_str(body).map_err(|e| corrupt(e.to_string()))?;
    if let Some(st) = text(item, STATUS, &key)? {
        shard.status =
            shard_status_from_str(st).ok_or_else(|| corrupt(format!("unknown status `{st}`")))?;
    }
    if shard.status != ShardStatus::Pending {
        if let Some(a) = num(item, ATTEMPT, &key)? {
            shard.attempt =
                Some(u32::try_from(a).map_err(|_| corrupt("attempt overflows".into()))?);
        }
        shard.counts = counts_from(item, &key)?;
        shard.started_ms = num(item, STARTED_MS, &key)?.or(shard.started_ms);
        shard.finished_ms = num(item, FINISHED_MS, &key)?.or(shard.finished_ms);
        shard.error = text(item, ERROR, &key)?.map(str::to_string);
    }
    Ok(shard)
}

fn too_large(run: &str, what: &str, size: usize) -> StoreError {
    StoreError::Invalid {
        run: run.to_string(),
        message: format!(
            "{what} would be a {size}-byte DynamoDB item, over this store's {MAX_ITEM_BYTES}-byte limit (DynamoDB refuses items over 400 KB); shorten the run's text fields"
        ),
    }
}

fn meta_item(run: &Run) -> Result<Item, StoreError> {
    let id = run.id.to_string();
    let mut stored = run.clone();
    stored.error = None; // kept in its own attribute, capped
    let body = serde_json::to_string(&stored).map_err(|e| backend("encode run", e))?;
    let mut item = key(&run_pk(&id), META);
    item.insert(BODY.into(), s(&body));
    item.insert(STATUS.into(), s(run.status.as_str()));
    item.insert(SHARD_COUNT.into(), n(run.shard_count));
    item.insert(SHARDS_DONE.into(), n(run.shards_done));
    for (name, v) in COUNTERS.iter().zip(counts_of(&run.counts)) {
        item.insert(name.to_string(), n(v));
    }
    if let Some(f) = run.finished_ms {
        item.insert(FINISHED_MS.into(), n(f));
    }
    if let Some(e) = &run.error {
        item.insert(ERROR.into(), s(&cap_error(e)));
    }
    item.insert(WON.into(), AttributeValue::M(HashMap::new()));
    item.insert(GSI1_PK.into(), s(GSI1_VALUE));
    item.insert(GSI1_SK.into(), s(&id));
    if !run.status.is_final() {
        item.insert(GSI2_PK.into(), s(GSI2_VALUE));
        item.insert(GSI2_SK.into(), s(&id));
    }
    let size = item_size(&item);
    if size > MAX_ITEM_BYTES {
        return Err(too_large(&id, &format!("run {id}"), size));
    }
    Ok(item)
}

fn shard_item(shard: &ShardRecord) -> Result<Item, StoreError> {
    let id = shard.id.run.to_string();
    let mut planned = shard.clone();
    planned.error = planned.error.map(|e| cap_error(&e));
    let body = serde_json::to_string(&planned).map_err(|e| backend("encode shard", e))?;
    let mut item = key(&run_pk(&id), &shard_sk(shard.id.index));
    item.insert(BODY.into(), s(&body));
    item.insert(STATUS.into(), s(shard.status.as_str()));
    if shard.status != ShardStatus::Pending {
        // A shard created already completed: same attributes as a completion.
        if let Some(a) = shard.attempt {
            item.insert(ATTEMPT.into(), n(a));
        }
        for (name, v) in COUNTERS.iter().zip(counts_of(&shard.counts)) {
            item.insert(name.to_string(), n(v));
        }
        if let Some(v) = shard.started_ms {
            item.insert(STARTED_MS.into(), n(v));
        }
        if let Some(v) = shard.finished_ms {
            item.insert(FINISHED_MS.into(), n(v));
        }
        if let Some(e) = &planned.error {
            item.insert(ERROR.into(), s(e));
        }
    }
    let size = item_size(&item);
    if size > MAX_ITEM_BYTES {
        return Err(too_large(&id, &format!("shard {}", shard.id), size));
    }
    Ok(item)
}

/// Full jitter: a random delay in `0..=cap` (no rand dependency; the low
/// bits of a fresh ULID are random).
fn jitter(cap: Duration) -> Duration {
    let r = (ulid::Ulid::new().random() & 0xFFFF_FFFF) as u64;
    Duration::from_micros(r % (cap.as_micros() as u64 + 1))
}

/// Writes items with `BatchWriteItem` in chunks of at most 25 (and under the
/// request's size limit), retrying `UnprocessedItems` with exponential
/// backoff; after [`BATCH_ATTEMPTS`] attempts of a chunk it gives up with an
/// error naming how many items were left. Plain puts, no conditions: for
/// writes that need none (bulk imports, the shards of a new run past the
/// first transaction). Items over [`MAX_ITEM_BYTES`] are refused up front.
pub async fn put_items(client: &Client, table: &str, items: Vec<Item>) -> Result<(), StoreError> {
    let sizes: Vec<usize> = items.iter().map(item_size).collect();
    if let Some((i, size)) = sizes.iter().enumerate().find(|(_, s)| **s > MAX_ITEM_BYTES) {
        return Err(StoreError::Invalid {
            run: format!("put_items item #{i}"),
            message: format!("{size} bytes is over the {MAX_ITEM_BYTES}-byte item limit"),
        });
    }
    let mut items = items.into_iter();
    for range in chunk_ranges(&sizes, BATCH_MAX_ITEMS, BATCH_MAX_BYTES) {
        let chunk: Vec<WriteRequest> = items
            .by_ref()
            .take(range.len())
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| backend("batch write", e))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_, StoreError>>()?;
        batch_write(client, table, chunk).await?;
    }
    Ok(())
}

/// One BatchWriteItem chunk (≤ 25 requests), retried until DynamoDB has
/// processed every request or the attempts run out.
async fn batch_write(
    client: &Client,
    table: &str,
    mut pending: Vec<WriteRequest>,
) -> Result<(), StoreError> {
    debug_assert!(pending.len() <= BATCH_MAX_ITEMS);
    let mut delay = Duration::from_millis(25);
    for attempt in 1..=BATCH_ATTEMPTS {
        let out = client
            .batch_write_item()
            .request_items(table, pending)
            .send()
            .await
            .map_err(|e| backend("batch write", e))?;
        pending = out
            .unprocessed_items
            .and_then(|mut m| m.remove(table))
            .unwrap_or_default();
        if pending.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            attempt,
            left = pending.len(),
            "BatchWriteItem left items unprocessed; backing off"
        );
        if attempt < BATCH_ATTEMPTS {
            tokio::time::sleep(delay / 2 + jitter(delay / 2)).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
    Err(backend_msg(
        "batch write",
        format!(
            "{} item(s) still unprocessed after {BATCH_ATTEMPTS} BatchWriteItem attempts (throttled); retry later",
            pending.len()
        ),
    ))
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
        let mut delay = Duration::from_millis(20);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .send()
                .await;
            let err = match res {
                Ok(_) => break,
                Err(e) => e,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(tc)) =
                err.as_service_error()
            {
                let codes: Vec<&str> = tc
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None"))
                    .collect();
                if codes.first() == Some(&"ConditionalCheckFailed") {
                    return Err(StoreError::Conflict { run: id });
                }
                // Another transaction touched the same run at the same time
                // (only a concurrent create can): retry, then the condition
                // decides.
                if codes.contains(&"TransactionConflict") && attempt < 5 {
                    tokio::time::sleep(jitter(delay)).await;
                    delay *= 2;
                    continue;
                }
            }
            return Err(backend("create run", err));
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
        let mut shards = Vec::new();
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
            for item in out.items.unwrap_or_default() {
                shards.push(shard_from_item(&item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        shards.sort_by_key(|sh| sh.id.index);
        Ok(shards)
    }

    async fn complete_shard(&self, c: &ShardCompletion) -> Result<Completion, StoreError> {
        let shard_id = c.shard;
        let run_id = shard_id.run.to_string();
        if c.status == ShardStatus::Pending {
            return Err(StoreError::Invalid {
                run: run_id,
                message: format!("shard {shard_id} cannot be completed as `pending`"),
            });
        }
        let _guard = self.lock(&run_id).await;
        let not_found = || StoreError::NotFound {
            run: format!("{run_id} (shard {})", shard_id.index),
        };
        // Step one, the exactly-once arbiter: count the shard on the run
        // item only if no completion of it was counted yet (`won.<index>`
        // absent). One conditional UpdateItem is atomic, and ALL_NEW hands
        // this caller its own `shards_done`.
        let mut names = HashMap::from([
            ("#pk".to_string(), PK.to_string()),
            ("#sc".to_string(), SHARD_COUNT.to_string()),
            ("#done".to_string(), SHARDS_DONE.to_string()),
            ("#won".to_string(), WON.to_string()),
            ("#k".to_string(), shard_id.index.to_string()),
        ]);
        let mut values = HashMap::from([
            (":idx".to_string(), n(shard_id.index)),
            (":one".to_string(), n(1)),
            (":att".to_string(), n(c.attempt)),
        ]);
        let mut add = vec!["#done :one".to_string()];
        for (i, (name, v)) in COUNTERS.iter().zip(counts_of(&c.counts)).enumerate() {
            names.insert(format!("#c{i}"), name.to_string());
            values.insert(format!(":c{i}"), n(v));
            add.push(format!("#c{i} :c{i}"));
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&run_pk(&run_id), META)))
            .update_expression(format!("SET #won.#k = :att ADD {}", add.join(", ")))
            .condition_expression(
                "attribute_exists(#pk) AND #sc > :idx AND attribute_not_exists(#won.#k)",
            )
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                let key = run_pk(&run_id);
                let shards_done = num(&item, SHARDS_DONE, &key)?.unwrap_or(0);
                let shard_count = num(&item, SHARD_COUNT, &key)?.unwrap_or(0);
                // Step two: the shard item. Should this process die between
                // the steps, the redelivered message repairs it below.
                self.record_shard(c).await?;
                Ok(Completion::Applied {
                    shards_done: u32::try_from(shards_done).unwrap_or(u32::MAX),
                    shard_count: u32::try_from(shard_count).unwrap_or(u32::MAX),
                })
            }
            Err(e) => {
                let Some(old) = ccf_item("complete shard", e)? else {
                    return Err(not_found());
                };
                let key = run_pk(&run_id);
                let shard_count = num(&old, SHARD_COUNT, &key)?.unwrap_or(0);
                if u64::from(shard_id.index) >= shard_count {
                    return Err(not_found());
                }
                // Counted already. If the counted attempt is this one (a
                // redelivery of the same message), make sure the shard item
                // records it: a no-op unless the first delivery died between
                // the two steps.
                let won = match old.get(WON) {
                    Some(AttributeValue::M(m)) => m.get(&shard_id.index.to_string()).cloned(),
                    _ => None,
                };
                if won == Some(n(c.attempt)) {
                    self.record_shard(c).await?;
                }
                Ok(Completion::AlreadyCompleted)
            }
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
        if key_.is_empty() || key_.len() > MAX_DELIVERY_KEY_BYTES {
            return Err(StoreError::Invalid {
                run: format!(
                    "delivery {}",
                    crate::domain::report::truncate_bytes(key_, 64)
                ),
                message: format!(
                    "a delivery key must be 1..={MAX_DELIVERY_KEY_BYTES} bytes, got {}",
                    key_.len()
                ),
            });
        }
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
}

fn attr(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| backend("create table", e))
}

fn key_schema(hash: &str, range: &str) -> Result<Vec<KeySchemaElement>, StoreError> {
    let el = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| backend("create table", e))
    };
    Ok(vec![el(hash, KeyType::Hash)?, el(range, KeyType::Range)?])
}

fn gsi(name: &str, hash: &str, range: &str) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(key_schema(hash, range)?))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| backend("create table", e))
}

/// How long [`create_table`] waits for the table and its indexes to be ACTIVE.
const TABLE_WAIT: Duration = Duration::from_secs(300);

/// Creates the table as `template.yaml` declares it (tests, emulators, a
/// hand-made deployment): keys `PK`/`SK`, on-demand billing, the GSIs
/// `runs-by-time` and `active-runs` (projection ALL), TTL on `expires_at`.
/// An existing table is fine (it must have both indexes); waits until the
/// table and its indexes are ACTIVE.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let res = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(vec![
            attr(PK)?,
            attr(SK)?,
            attr(GSI1_PK)?,
            attr(GSI1_SK)?,
            attr(GSI2_PK)?,
            attr(GSI2_SK)?,
        ]))
        .set_key_schema(Some(key_schema(PK, SK)?))
        .global_secondary_indexes(gsi(RUNS_BY_TIME, GSI1_PK, GSI1_SK)?)
        .global_secondary_indexes(gsi(ACTIVE_RUNS, GSI2_PK, GSI2_SK)?)
        .send()
        .await;
    match res {
        Ok(_) => tracing::info!(table, "created DynamoDB table"),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::debug!(table, "DynamoDB table exists already");
        }
        Err(e) => return Err(backend("create table", e)),
    }

    let deadline = tokio::time::Instant::now() + TABLE_WAIT;
    loop {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| backend("describe table", e))?;
        let desc = out.table.ok_or_else(|| {
            backend_msg(
                "describe table",
                format!("no description of table `{table}`"),
            )
        })?;
        let indexes = desc.global_secondary_indexes();
        for wanted in [RUNS_BY_TIME, ACTIVE_RUNS] {
            if !indexes.iter().any(|i| i.index_name() == Some(wanted)) {
                return Err(backend_msg(
                    "create table",
                    format!(
                        "table `{table}` exists without the global secondary index `{wanted}`; it was not made by this version (see docs/backends.md)"
                    ),
                ));
            }
        }
        let indexes_active = indexes.iter().all(|i| {
            i.index_status()
                .is_none_or(|s| *s == aws_sdk_dynamodb::types::IndexStatus::Active)
        });
        if desc.table_status() == Some(&TableStatus::Active) && indexes_active {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(backend_msg(
                "create table",
                format!("table `{table}` not ACTIVE after {}s", TABLE_WAIT.as_secs()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| backend("describe time to live", e))?;
    let current = ttl.time_to_live_description();
    let enabled = current.is_some_and(|d| {
        matches!(
            d.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) && d.attribute_name() == Some(EXPIRES_AT)
    });
    if !enabled {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(EXPIRES_AT)
            .enabled(true)
            .build()
            .map_err(|e| backend("enable time to live", e))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| backend("enable time to live", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_count_and_bytes() {
        let sizes = vec![10; 60];
        let chunks = chunk_ranges(&sizes, 25, usize::MAX);
        assert_eq!(chunks, vec![0..25, 25..50, 50..60]);
        let chunks = chunk_ranges(&vec![1; 250], TRANSACT_MAX_ITEMS, TRANSACT_MAX_BYTES);
        assert_eq!(chunks, vec![0..100, 100..200, 200..250]);
        // Bytes bound a chunk before the count does.
        let chunks = chunk_ranges(&[40, 40, 40, 40, 100, 5], 25, 100);
        assert_eq!(chunks, vec![0..2, 2..4, 4..5, 5..6]);
        assert!(chunk_ranges(&[], 25, 100).is_empty());
        // Every item is in exactly one chunk, in order.
        let sizes: Vec<usize> = (0..1000).map(|i| (i * 7919) % 5000).collect();
        let chunks = chunk_ranges(&sizes, 25, 20_000);
        assert_eq!(chunks.first().map(|r| r.start), Some(0));
        assert_eq!(chunks.last().map(|r| r.end), Some(1000));
        for w in chunks.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for r in &chunks {
            assert!(
                r.len() <= 25 && (r.len() == 1 || sizes[r.clone()].iter().sum::<usize>() <= 20_000)
            );
        }
    }

    #[test]
    fn shard_keys_sort_by_index_and_errors_are_capped() {
        assert_eq!(shard_sk(7), "SHARD#0007");
        assert!(shard_sk(99) < shard_sk(100) && shard_sk(998) < shard_sk(999));
        let long = "é".repeat(MAX_ERROR_BYTES);
        let capped = cap_error(&long);
        assert!(capped.len() <= MAX_ERROR_BYTES + 20 && capped.ends_with("[truncated]"));
        assert_eq!(cap_error("short"), "short");
    }

    #[test]
    fn item_size_counts_names_and_values() {
        let mut item = key("RUN#x", META);
        assert_eq!(item_size(&item), 2 + 5 + 2 + 4);
        item.insert("n".into(), n(12345));
        assert_eq!(item_size(&item), 13 + 1 + 5);
    }
}
