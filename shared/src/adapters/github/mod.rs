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
pub(crate) mod time;

use std::sync::Arc;

use crate::adapters::source::{LocalDirSource, SourceRouter};
use crate::app::ports::{NoNotifier, Notifier, SourceProvider};
use crate::errors::GithubError;

/// Any of these means GitHub credentials are configured.
pub const CREDENTIAL_ENV: [&str; 3] = [
    "TESTEXEC_GITHUB_APP_ID",
    "TESTEXEC_GITHUB_TOKEN",
    "GITHUB_TOKEN",
];

/// The ports that talk to GitHub, built the same way by every host: with
/// credentials, a Checks notifier and a source that fetches tarballs (local
/// checkouts still come from disk); without, nobody to tell and local
/// sources only.
pub struct GithubPorts {
    pub client: Option<Arc<client::GithubClient>>,
    pub notifier: Arc<dyn Notifier>,
    pub source: Arc<dyn SourceProvider>,
}

impl GithubPorts {
    /// Reads the credentials through `lookup` (`std::env::var` in hosts,
    /// a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, GithubError> {
        let configured = CREDENTIAL_ENV
            .iter()
            .any(|k| lookup(k).is_some_and(|v| !v.trim().is_empty()));
        if !configured {
            return Ok(Self::offline());
        }
        let client = Arc::new(client::GithubClient::new(
            config::GithubConfig::from_lookup(&lookup)?,
        )?);
        Ok(Self {
            notifier: Arc::new(notifier::GithubNotifier::new(client.clone())),
            source: Arc::new(SourceRouter {
                local: LocalDirSource::default(),
                remote: Some(Arc::new(tarball::GithubSource::new(client.clone()))),
            }),
            client: Some(client),
        })
    }

    /// No GitHub: local sources only, nobody to notify.
    pub fn offline() -> Self {
        Self {
            client: None,
            notifier: Arc::new(NoNotifier),
            source: Arc::new(SourceRouter {
                local: LocalDirSource::default(),
                remote: None,
            }),
        }
    }
}
