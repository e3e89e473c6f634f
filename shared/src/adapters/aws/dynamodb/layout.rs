//! The table layout, as `template.yaml` declares it (and `docs/backends.md`
//! tabulates it): one table, keys `PK` (hash) and `SK` (range), three kinds
//! of item and two indexes. The attribute and index names below are the
//! only spelling of them in code.
//!
//! Items:
//! * run: `PK=RUN#<ulid> SK=META`. The `body` attribute holds the run as
//!   JSON; the fields that conditional writes change (`status`,
//!   `shards_done`, the six counters, `finished_ms`, `error`) live in their
//!   own attributes so `ADD`/`SET` can touch them, and they win when a run is
//!   read back (as the columns do in the SQLite store). `counting` is the
//!   string set of shard indexes whose counts are being added right now
//!   (present only while a completion is between its second and third
//!   write): it keeps a retried `ADD` from counting a shard twice without
//!   the run item growing with the run.
//! * shard: `PK=RUN#<ulid> SK=SHARD#0007`, `body` = the planned record,
//!   overlaid by `status`, `attempt`, `started_ms`, `finished_ms`, `error`
//!   and the counters once completed, and `recorded_ms` (the store's clock
//!   when the completion was recorded: the sweep's recount only trusts a
//!   shard recorded longer ago than any collector can live).
//! * delivery claim: `PK=DELIVERY#<key> SK=DELIVERY`, `expires_at` (epoch
//!   seconds, the table's TTL attribute) and `expires_ms` (the exact check).
//!
//! Indexes: `runs-by-time` (`gsi1pk`="RUNS", `gsi1sk`=ulid) for
//! `list_runs`, and the sparse `active-runs` (`gsi2pk`="ACTIVE",
//! `gsi2sk`=ulid, removed by `finish_run`) for `list_active_runs`.

use std::collections::HashMap;

use super::codec::{Item, s};

// Key schema, indexes and TTL: public, `template.yaml` declares the same.
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

// Attributes of run and shard items (see the module docs).
pub(super) const STATUS: &str = "status";
pub(super) const BODY: &str = "body";
pub(super) const SHARD_COUNT: &str = "shard_count";
pub(super) const SHARDS_DONE: &str = "shards_done";
pub(super) const FINISHED_MS: &str = "finished_ms";
pub(super) const STARTED_MS: &str = "started_ms";
pub(super) const ERROR: &str = "error";
pub(super) const ATTEMPT: &str = "attempt";
pub(super) const COUNTING: &str = "counting";
pub(super) const RECORDED_MS: &str = "recorded_ms";
pub(super) const COUNTERS: [&str; 6] = ["tests", "passed", "failed", "errors", "skipped", "flaky"];

pub(super) fn run_pk(id: &str) -> String {
    format!("RUN#{id}")
}

/// Zero-padded so shards sort by index (the store also sorts after reading,
/// so indexes past 9999 stay in order).
pub(super) fn shard_sk(index: u32) -> String {
    format!("SHARD#{index:04}")
}

pub(super) fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([(PK.to_string(), s(pk)), (SK.to_string(), s(sk))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_keys_sort_by_index() {
        assert_eq!(shard_sk(7), "SHARD#0007");
        assert!(shard_sk(99) < shard_sk(100) && shard_sk(998) < shard_sk(999));
    }
}
