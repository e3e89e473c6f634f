//! Hosts: the entry points that run the handlers somewhere.
//!
//! - `http` (feature `http`): the one HTTP front door (webhooks, the runs
//!   API, the pages, the queue push endpoints) as an axum `Router`.
//! - `lambda` (feature `lambda`): the four Lambda functions.
//! - `metrics` (feature `http`): `GET /metrics` (Prometheus) on its own
//!   listener for the container host.
//! - `backend_set` (feature `http`): the composition root of the container
//!   host and the worker: which adapters back the ports.
//! - `worker`: a process that pulls one queue and runs its handler.

#[cfg(feature = "http")]
pub mod backend_set;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "http")]
pub mod metrics;
#[cfg(feature = "lambda")]
pub mod worker;
