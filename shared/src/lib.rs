//! testexec's library, in layers (a hexagon):
//!
//! - [`domain`]: runs, manifests, JUnit, planning, report writers. No I/O
//!   beyond reading files it is handed.
//! - [`app`]: the ports (traits), the queue messages, the four handlers and
//!   the in-process pipeline. No cloud SDK type appears here.
//! - [`adapters`]: the ports implemented (local, AWS, GitHub, processes).
//! - [`hosts`]: entry points (HTTP front door, Lambda, worker).
//! - `testkit` (feature `testkit`): contract suites, fault injection, the
//!   fake suite, the fake GitHub API and the emulator helpers.
//! - [`errors`]: one precise error enum per concern.

pub mod adapters;
pub mod app;
pub mod domain;
pub mod errors;
pub mod hosts;
#[cfg(feature = "testkit")]
pub mod testkit;
