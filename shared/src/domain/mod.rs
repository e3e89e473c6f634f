//! The domain: what a test run is, independent of any host or store.
//!
//! - [`model`]: runs, shards, test cases, outcomes, ids.
//! - [`history`]: per-test history, flaky classification, quarantine.
//! - [`codeowners`]: who owns a path, by GitHub's `CODEOWNERS` rules.
//! - [`cost`]: the monthly bill on each cloud from a team's numbers.
//! - [`manifest`]: the repository's `testexec.toml`.
//! - [`junit`]: streaming JUnit/xUnit reader for every dialect found in the wild.
//! - [`plan`]: timing-balanced shard planning.
//! - [`report`]: Markdown, HTML, CTRF and merged JUnit writers.
//! - [`selector`]: test selectors (`only_tests`, rerun-failed).
//! - [`output_glob`]: finding the files a command wrote.
//! - [`regular_file`]: opening a user's file, refusing FIFOs and devices.

pub mod codeowners;
pub mod cost;
pub mod history;
pub mod junit;
pub mod manifest;
pub mod model;
pub mod output_glob;
pub mod plan;
pub mod regular_file;
pub mod report;
pub mod selector;
