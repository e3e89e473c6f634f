//! Only a test lives here: `tests/lambda_e2e.rs` drives the four functions
//! through `cargo lambda watch` against moto (see docs/lambda.md).
