//! Test support shared by every crate's tests (feature `testkit`): the
//! backend contract suites, the fault-injecting queue consumer, the fake
//! test suite every pipeline test runs, and the emulator helpers.

pub mod contract;
pub mod emulators;
pub mod fake_suite;
pub mod faults;
