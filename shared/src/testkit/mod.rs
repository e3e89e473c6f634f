//! Test support shared by every crate's tests (feature `testkit`): the
//! backend contract suites and the fault-injecting queue consumer.

pub mod contract;
pub mod faults;
