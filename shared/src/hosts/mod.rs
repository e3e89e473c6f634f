//! Hosts: the entry points that run the handlers somewhere.
//!
//! - `http` (feature `http`): the one HTTP front door (webhooks, the runs
//!   API, the pages, the queue push endpoints) as an axum `Router`.
//! - `lambda` (feature `lambda`): the four Lambda functions.
//! - `worker`: a process that pulls one queue and runs its handler.

#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "lambda")]
pub mod worker;
