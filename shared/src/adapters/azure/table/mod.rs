//! [`RunStore`](crate::app::ports::RunStore) on one Azure Table (layout in
//! `docs/backends.md`, "Azure Table Storage").
//!
//! - `client`: the small Tables REST client (no maintained 1.x crate).
//! - `codec`: runs, shards, index rows to entities and back; size limits.
//! - `store`: [`TableRunStore`], the conditional writes behind the port.
//! - `history`: per-test history, one partition per suite, batched upserts.

mod client;
mod codec;
mod history;
mod store;

pub use codec::{MAX_ENTITY_BYTES, MAX_ERROR_BYTES};
pub use store::{MAX_DELIVERY_KEY_BYTES, TableRunStore};
