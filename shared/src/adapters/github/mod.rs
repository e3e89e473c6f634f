//! GitHub integration: webhook verification and routing (`webhook`), App
//! auth and API client (`auth`, `client`, `config`), source tarballs
//! (`tarball`) and Check Runs / commit statuses (`checks`, `notifier`).
//!
//! Behind the `github` feature so that builds which never talk to GitHub
//! (a local-only CLI, the execute worker) link neither the HMAC code nor the
//! API client.

pub mod webhook;

pub mod auth;
pub mod checks;
pub mod client;
pub mod config;
pub mod notifier;
pub mod tarball;
mod time;
