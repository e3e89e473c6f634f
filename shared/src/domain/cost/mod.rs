//! The monthly bill of running testexec on each cloud, from a team's own
//! numbers (runs a day, shards, shard minutes, report size).
//!
//! Three inputs, each kept in one place:
//! - [`PriceList`]: list prices with their date and page (`cost/prices.toml`).
//! - [`CallModel`]: the store, blob and queue calls of one run, measured on
//!   the AWS backends (`cost/aws-calls.json`, written and checked by
//!   `shared/tests/integration/aws_calls.rs`): calls per run plus calls per
//!   shard. The Google Cloud and Azure adapters make the same port calls, so
//!   their operations are derived from the same counts (see `estimate`).
//! - [`Workload`]: the team's numbers, validated.
//!
//! [`estimate`] prices them per cloud, line by line, and prices an idle
//! month the same way (zero runs), so what a deployment costs when nobody
//! uses it is computed, not claimed.

mod calls;
mod estimate;
mod prices;
mod workload;

pub use calls::{CallModel, Tally};
pub use estimate::{Cloud, Estimate, Line, estimate};
pub use prices::{CloudPrices, Price, PriceList};
pub use workload::{Arch, Workload};

pub use crate::errors::CostError;
