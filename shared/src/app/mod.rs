//! The application core: the four handlers over the ports.
//!
//! - [`ports`]: the traits handlers need (run store, blobs, queues, source,
//!   notifier, clock); adapters implement them.
//! - [`intake`]: the hand-written run request (`POST /runs`, schedules, invokes) and which sources a host lets requests name.
//! - [`messages`]: the queue messages between handlers, and blob keys.
//! - [`metrics`]: what the handlers and hosts count, through one facade.
//! - [`handlers`]: trigger, execute, collect, report, sweep.
//! - [`run_list`]: one page of the run list (filters, cursor, bounded read).
//! - [`pipeline`]: the handlers pumped by in-process workers over any
//!   backend set (`testexec run`, `serve`, a polling worker).

pub mod handlers;
pub mod intake;
pub mod messages;
pub mod metrics;
pub mod pipeline;
pub mod ports;
pub mod run_list;
