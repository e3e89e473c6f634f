//! Test support shared by every crate's tests (feature `testkit`): the
//! backend contract suites, the fault-injecting queue consumer and the
//! fake test suite every pipeline test runs.

pub mod contract;
pub mod fake_suite;
pub mod faults;
