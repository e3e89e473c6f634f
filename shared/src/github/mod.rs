pub mod auth;
pub mod checks;
pub mod client;
pub mod config;
pub mod notifier;
pub mod tarball;
mod time;
