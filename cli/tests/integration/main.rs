//! The CLI's integration tests, as one test binary (one link instead of one
//! per file: on a 2-core CI machine each test binary links the whole AWS
//! SDK). Each module is one concern, run against the real `testexec`
//! binary.

#[cfg(feature = "azure")]
mod azure_e2e;
mod browser;
mod closed_stdout;
mod cost_cli;
mod e2e_jinja2;
mod flaky_cli;
#[cfg(feature = "gcp")]
mod gcp_e2e;
mod github_e2e;
mod junit_cli;
mod load_k6;
mod manifest_examples;
mod monitoring;
mod plan_cli;
mod run_cancel;
mod run_paths;
mod serve_restart;
mod support;
mod sweep_cli;
mod worker;
