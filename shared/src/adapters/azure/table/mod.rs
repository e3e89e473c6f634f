//! [`RunStore`](crate::app::ports::RunStore) on one Azure Table (layout in
//! `docs/backends.md`, "Azure Table Storage").
//!
//! - `client`: the small Tables REST client (no maintained 1.x crate).
//! - `codec`: runs, shards, index rows to entities and back; size limits.
//! - `store`: [`TableRunStore`], the conditional writes behind the port.

mod client;
mod codec;
mod store;

pub use codec::{MAX_ENTITY_BYTES, MAX_ERROR_BYTES};
pub use store::{MAX_DELIVERY_KEY_BYTES, TableRunStore};
