//! The measured calls of one run (`cost/aws-calls.json`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::errors::CostError;

/// Calls of one operation, and the entries they carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Tally {
    pub calls: u64,
    pub items: u64,
}

/// Calls of a run with `s` shards: `per_run + s × per_shard`, by
/// `service.Operation` (`dynamodb.UpdateItem`, `s3.PutObject`, ...).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallModel {
    pub per_run: BTreeMap<String, Tally>,
    pub per_shard: BTreeMap<String, Tally>,
}

impl CallModel {
    pub fn from_json(text: &str, source: &str) -> Result<Self, CostError> {
        serde_json::from_str(text).map_err(|e| CostError::Parse {
            file: source.to_string(),
            reason: e.to_string(),
        })
    }

    /// Calls of `operation` in one run of `shards` shards.
    pub fn calls(&self, operation: &str, shards: f64) -> f64 {
        self.count(operation, shards, |t| t.calls)
    }

    /// Entries `operation` carried in one run of `shards` shards.
    pub fn items(&self, operation: &str, shards: f64) -> f64 {
        self.count(operation, shards, |t| t.items)
    }

    fn count(&self, operation: &str, shards: f64, field: impl Fn(&Tally) -> u64) -> f64 {
        let get = |m: &BTreeMap<String, Tally>| m.get(operation).map_or(0.0, |t| field(t) as f64);
        get(&self.per_run) + shards * get(&self.per_shard)
    }

    /// Calls of every operation of `service` (`"s3"`), summed.
    pub fn service_calls(&self, service: &str, shards: f64, ops: &[&str]) -> f64 {
        ops.iter()
            .map(|op| self.calls(&format!("{service}.{op}"), shards))
            .sum()
    }
}
