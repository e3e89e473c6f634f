//! GitHub integration: webhook verification and routing.
//!
//! Behind the `github` feature so that builds which never talk to GitHub
//! (a local-only CLI, the execute worker) link neither the HMAC code nor the
//! API client.

pub mod webhook;
