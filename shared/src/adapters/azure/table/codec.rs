//! Runs, shards, index rows and delivery claims to Table entities and back.
//!
//! The record is the entity's `body` (JSON of the `Run` / `ShardRecord`),
//! cut into properties of at most [`BODY_CHUNK_BYTES`] (`body`, `body_1`,
//! ...) because a string property holds at most 32K UTF-16 units. `status`
//! and the counters are copied into their own properties for people
//! reading the table and for filters; every write replaces the whole
//! entity, so they never disagree with the body.

use serde_json::{Map, Value};

use super::client::Entity;
use crate::domain::model::{Run, ShardRecord};
use crate::errors::StoreError;

/// Largest entity this store writes (Azure Tables refuses over 1 MiB).
pub const MAX_ENTITY_BYTES: usize = 900 * 1024;
/// One string property's share of the body (≤ 32K UTF-16 units: UTF-8
/// never has fewer bytes than UTF-16 has units).
const BODY_CHUNK_BYTES: usize = 32_000;
pub use crate::app::ports::{MAX_ERROR_BYTES, cap_error};

pub const RUN_ROW: &str = "run";
pub const RUNS_PARTITION: &str = "runs";
pub const ACTIVE_PARTITION: &str = "active";
pub const DELIVERY_PARTITION: &str = "delivery";

/// Zero-padded so shards sort by index in a query.
pub fn shard_row(index: u32) -> String {
    format!("shard-{index:06}")
}

/// A run id written so that ascending order is newest first: each
/// Crockford base32 digit mapped to its complement.
pub fn newest_first(run: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    run.bytes()
        .map(|b| match ALPHABET.iter().position(|&a| a == b) {
            Some(i) => ALPHABET[31 - i] as char,
            None => b as char,
        })
        .collect()
}

pub fn keyed(pk: &str, rk: &str) -> Entity {
    let mut e = Map::new();
    e.insert("PartitionKey".into(), Value::String(pk.into()));
    e.insert("RowKey".into(), Value::String(rk.into()));
    e
}

/// An Int64 property (JSON numbers would be read as Int32).
pub fn put_i64(e: &mut Entity, name: &str, v: u64) {
    e.insert(name.into(), Value::String(v.to_string()));
    e.insert(
        format!("{name}@odata.type"),
        Value::String("Edm.Int64".into()),
    );
}

pub fn get_u64(e: &Entity, name: &str) -> Option<u64> {
    match e.get(name)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

pub fn get_str<'a>(e: &'a Entity, name: &str) -> Option<&'a str> {
    e.get(name).and_then(Value::as_str)
}

/// The size Azure counts for an entity, near enough: UTF-16 strings plus
/// per-property overhead.
pub fn entity_size(e: &Entity) -> usize {
    4 + e
        .iter()
        .map(|(k, v)| {
            8 + k.len() * 2
                + match v {
                    Value::String(s) => 4 + s.len() * 2,
                    _ => 8,
                }
        })
        .sum::<usize>()
}

pub(super) fn put_body(e: &mut Entity, json: &str) {
    let mut rest = json;
    let mut i = 0;
    while i == 0 || !rest.is_empty() {
        let piece = crate::domain::report::truncate_bytes(rest, BODY_CHUNK_BYTES);
        let name = if i == 0 {
            "body".to_string()
        } else {
            format!("body_{i}")
        };
        e.insert(name, Value::String(piece.to_string()));
        rest = &rest[piece.len()..];
        i += 1;
    }
}

pub(super) fn body(e: &Entity) -> Option<String> {
    let mut out = get_str(e, "body")?.to_string();
    for i in 1.. {
        match get_str(e, &format!("body_{i}")) {
            Some(piece) => out.push_str(piece),
            None => break,
        }
    }
    Some(out)
}

fn too_large(run: &str, what: &str, size: usize) -> StoreError {
    StoreError::Invalid {
        run: run.to_string(),
        message: format!(
            "{what} would be a {size}-byte table entity, over this store's {MAX_ENTITY_BYTES}-byte limit (Azure Tables refuses entities over 1 MiB); shorten the run's text fields"
        ),
    }
}

fn encode_err(what: &'static str, e: serde_json::Error) -> StoreError {
    StoreError::Backend {
        backend: "azure-table",
        operation: what,
        source: e.to_string().into(),
    }
}

pub fn run_entity(run: &Run) -> Result<Entity, StoreError> {
    let id = run.id.to_string();
    let mut stored = run.clone();
    stored.error = stored.error.as_deref().map(cap_error);
    let json = serde_json::to_string(&stored).map_err(|e| encode_err("encode run", e))?;
    let mut e = keyed(&id, RUN_ROW);
    e.insert("status".into(), Value::String(run.status.as_str().into()));
    e.insert("shard_count".into(), Value::from(run.shard_count));
    e.insert("shards_done".into(), Value::from(run.shards_done));
    put_i64(&mut e, "created_ms", run.created_ms);
    put_body(&mut e, &json);
    let size = entity_size(&e);
    if size > MAX_ENTITY_BYTES {
        return Err(too_large(&id, &format!("run {id}"), size));
    }
    Ok(e)
}

pub fn shard_entity(shard: &ShardRecord) -> Result<Entity, StoreError> {
    let id = shard.id.run.to_string();
    let mut stored = shard.clone();
    stored.error = stored.error.as_deref().map(cap_error);
    let json = serde_json::to_string(&stored).map_err(|e| encode_err("encode shard", e))?;
    let mut e = keyed(&id, &shard_row(shard.id.index));
    e.insert("status".into(), Value::String(shard.status.as_str().into()));
    put_body(&mut e, &json);
    let size = entity_size(&e);
    if size > MAX_ENTITY_BYTES {
        return Err(too_large(&id, &format!("shard {}", shard.id), size));
    }
    Ok(e)
}

fn corrupt(e: &Entity, message: String) -> StoreError {
    StoreError::Corrupt {
        key: format!(
            "{}/{}",
            get_str(e, "PartitionKey").unwrap_or("?"),
            get_str(e, "RowKey").unwrap_or("?")
        ),
        message,
    }
}

pub fn run_from(e: &Entity) -> Result<Run, StoreError> {
    let json = body(e).ok_or_else(|| corrupt(e, "no `body`".into()))?;
    serde_json::from_str(&json).map_err(|err| corrupt(e, err.to_string()))
}

pub fn shard_from(e: &Entity) -> Result<ShardRecord, StoreError> {
    let json = body(e).ok_or_else(|| corrupt(e, "no `body`".into()))?;
    serde_json::from_str(&json).map_err(|err| corrupt(e, err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_reverses_the_order() {
        let (a, b) = ("01J9Z3V8K4QW5T6Y7X8C9B0N1M", "01J9Z3V8K4QW5T6Y7X8C9B0N1N");
        assert!(newest_first(b) < newest_first(a));
        assert_eq!(newest_first("0Z"), "Z0");
    }

    #[test]
    fn long_bodies_are_split_and_joined() {
        let json = "é".repeat(40_000);
        let mut e = keyed("p", "r");
        put_body(&mut e, &json);
        assert!(e.contains_key("body_2"));
        assert!(get_str(&e, "body").unwrap().len() <= BODY_CHUNK_BYTES);
        assert_eq!(body(&e).unwrap(), json);
        let mut empty = keyed("p", "r");
        put_body(&mut empty, "");
        assert_eq!(body(&empty).unwrap(), "");
    }
}
