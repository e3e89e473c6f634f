//! Runs and shard records to DynamoDB items and back.
//!
//! Writing: the record goes into `body` as JSON, and the fields that
//! conditional writes change get their own attributes (`layout` says which).
//! Reading: those attributes win over the body, as the columns do in the
//! SQLite store. Sizes are checked before any request is sent, so an item
//! DynamoDB would refuse is refused here with a message naming the run.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::error::backend;
use super::layout::*;
use crate::domain::model::{Counts, Run, RunStatus, ShardRecord, ShardStatus};
use crate::errors::StoreError;

/// Largest item this store writes. DynamoDB refuses items over 400 KB; the
/// margin leaves room for the error text and counters added later.
pub const MAX_ITEM_BYTES: usize = 350 * 1024;
pub use crate::app::ports::MAX_ERROR_BYTES;
pub(super) use crate::app::ports::cap_error;

/// One item: attribute names to values, as the SDK takes and returns it.
pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn counts_of(c: &Counts) -> [u64; 6] {
    [c.tests, c.passed, c.failed, c.errors, c.skipped, c.flaky]
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

pub(super) fn num(item: &Item, name: &str, key: &str) -> Result<Option<u64>, StoreError> {
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
pub(super) fn run_from_item(item: &Item) -> Result<Run, StoreError> {
    let pk = text(item, PK, "run item")?.unwrap_or("?").to_string();
    let corrupt = |message: String| StoreError::Corrupt {
        key: pk.clone(),
        message,
    };
    let body = text(item, BODY, &pk)?.ok_or_else(|| corrupt("no `body`".into()))?;
    let mut run: Run = serde_json::from_str(body).map_err(|e| corrupt(e.to_string()))?;
    if let Some(st) = text(item, STATUS, &pk)? {
        run.status =
            RunStatus::from_name(st).ok_or_else(|| corrupt(format!("unknown status `{st}`")))?;
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
pub(super) fn shard_from_item(item: &Item) -> Result<ShardRecord, StoreError> {
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
            ShardStatus::from_name(st).ok_or_else(|| corrupt(format!("unknown status `{st}`")))?;
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

pub(super) fn meta_item(run: &Run) -> Result<Item, StoreError> {
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

pub(super) fn shard_item(shard: &ShardRecord) -> Result<Item, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_size_counts_names_and_values() {
        let mut item = key("RUN#x", META);
        assert_eq!(item_size(&item), 2 + 5 + 2 + 4);
        item.insert("n".into(), n(12345));
        assert_eq!(item_size(&item), 13 + 1 + 5);
    }
}
