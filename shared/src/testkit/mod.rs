//! Test support shared by every crate's tests (feature `testkit`):
//!
//! - [`contract`]: the backend contract suites every run store, blob store
//!   and queue must pass, written once against the ports.
//! - [`faults`]: the fault-injecting queue consumer (lost acks, crashes,
//!   duplicate deliveries).
//! - [`fake_suite`]: the fake test runner and repository every pipeline test
//!   runs.
//! - [`fake_github`]: a fake of the GitHub REST API (App auth, tarballs,
//!   check runs, statuses) with GitHub's limits and answers, recording every
//!   request.
//! - [`emulators`]: finding the emulators and other end-to-end inputs, or
//!   skipping (failing under `TESTEXEC_REQUIRE_E2E=1`); free ports, unique
//!   names.
//! - [`aws_calls`]: an SDK interceptor counting the AWS calls a run makes
//!   (the cost model's measured input; feature `aws`).

#[cfg(feature = "aws")]
pub mod aws_calls;
pub mod contract;
pub mod emulators;
pub mod fake_github;
pub mod fake_suite;
pub mod faults;
