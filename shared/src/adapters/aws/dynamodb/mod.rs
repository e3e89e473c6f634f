//! [`RunStore`] on one DynamoDB table (layout in `docs/backends.md`).
//!
//! This file is the adapter's front door: the parts live in private modules,
//! one concern each, and what the rest of the crate (and the tests) use is
//! re-exported here, so `adapters::aws::dynamodb::{DynamoRunStore,
//! create_table, put_items, ...}` stay the paths to use.
//!
//! - [`layout`]: the table's key schema and item kinds (run, shard,
//!   delivery claim), the two indexes and every attribute name. Public, as
//!   before, because `template.yaml` and `docs/backends.md` name the same.
//! - `codec`: [`Run`]/[`ShardRecord`] to attribute maps and back, item sizes
//!   ([`item_size`]) and the error-text cap.
//! - `batch`: request limits, [`chunk_ranges`] and [`put_items`]
//!   (`BatchWriteItem` in chunks, `UnprocessedItems` retried with backoff).
//! - `store`: [`DynamoRunStore`], the conditional writes behind [`RunStore`].
//! - `table`: [`create_table`], the table as `template.yaml` declares it.
//! - `history`: per-test history items (`HIST#...`), batched reads and
//!   writes, trimmed under the item limit.
//! - `error`: SDK errors to [`StoreError`].
//!
//! Limits: items are refused above [`MAX_ITEM_BYTES`] (DynamoDB's hard limit
//! is 400 KB), error texts are cut to [`MAX_ERROR_BYTES`] so a final write
//! can never be refused for size; transactions hold at most 100 actions and
//! 4 MB, `BatchWriteItem` 25 items; every `Query` is paged.
//!
//! [`RunStore`]: crate::app::ports::RunStore
//! [`Run`]: crate::domain::model::Run
//! [`ShardRecord`]: crate::domain::model::ShardRecord
//! [`StoreError`]: crate::errors::StoreError

mod batch;
mod codec;
mod error;
mod history;
pub mod layout;
mod store;
mod table;

pub use batch::{BATCH_MAX_ITEMS, TRANSACT_MAX_ITEMS, chunk_ranges, put_items};
pub use codec::{MAX_ERROR_BYTES, MAX_ITEM_BYTES, item_size};
pub use history::{BATCH_GET_MAX_KEYS, HIST};
pub use store::{DynamoRunStore, MAX_DELIVERY_KEY_BYTES};
pub use table::create_table;
