//! The Lambda host's tests, as one test binary: the four functions under
//! `cargo lambda watch`, the host's dispatch on moto, and the execute worker.

mod execute_worker;
mod host_invoke;
mod lambda_e2e;
