//! What the front door is built from, once per process.

use std::sync::Arc;

use super::push::QueuePush;
use crate::adapters::github::auth::Secret;
use crate::adapters::github::webhook::WebhookConfig;
use crate::app::handlers::{Ports, Settings};
use crate::app::intake::SourcePolicy;
use crate::errors::ConfigError;

/// How the front door is set up. Hosts fill it from their environment
/// (`serve`'s flags, a Lambda function's variables).
#[derive(Debug, Clone)]
pub struct FrontDoorConfig {
    pub webhook: WebhookConfig,
    /// Bearer token every API write (`POST /runs`, `POST /queues/...`)
    /// must carry. Without one, writes are taken only from loopback
    /// callers, and only as `application/json` with no foreign `Origin`.
    /// Never logged.
    pub api_token: Option<Secret>,
    /// Which repositories requests may name.
    pub sources: SourcePolicy,
    /// Serve `POST /queues/{queue}`, and how: only on hosts fed by a push
    /// queue (Pub/Sub push, Event Grid, Dapr); elsewhere it answers 404.
    pub queue_push: Option<QueuePush>,
}

/// Environment variables the front door reads (besides the webhook's
/// `TESTEXEC_WEBHOOK_SECRET` and `TESTEXEC_ALLOWED_REPOS`).
pub mod env {
    /// The bearer token for API writes.
    pub const API_TOKEN: &str = "TESTEXEC_API_TOKEN";
    /// A file holding the token (a mounted secret); wins over the variable.
    pub const API_TOKEN_FILE: &str = "TESTEXEC_API_TOKEN_FILE";
    /// Local checkouts requests may name: `name=/abs/path,...`.
    pub const LOCAL_REPOS: &str = "TESTEXEC_LOCAL_REPOS";
}

impl Default for FrontDoorConfig {
    /// What an environment that sets none of the variables gives: no
    /// webhook secret (deliveries are refused), no API token (writes only
    /// from loopback), every repository, no local checkouts.
    fn default() -> Self {
        Self {
            sources: SourcePolicy::default(),
            webhook: WebhookConfig::from_lookup(|_| None),
            api_token: None,
            queue_push: None,
        }
    }
}

impl FrontDoorConfig {
    /// Reads the configuration through `lookup` (`std::env::var` in hosts).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let nonempty = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let webhook = WebhookConfig::from_lookup(&lookup);
        let api_token = match nonempty(env::API_TOKEN_FILE) {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path.trim()).map_err(|e| ConfigError::Invalid {
                        var: env::API_TOKEN_FILE,
                        value: path.trim().to_string(),
                        reason: format!("the file cannot be read: {e}"),
                    })?;
                Some(text.trim().to_string())
            }
            None => nonempty(env::API_TOKEN).map(|t| t.trim().to_string()),
        };
        if let Some(token) = &api_token {
            // A short token can be guessed over the network.
            if token.len() < 16 {
                return Err(ConfigError::Invalid {
                    var: env::API_TOKEN,
                    // Never echo a secret, not even a bad one.
                    value: "<redacted>".into(),
                    reason: format!(
                        "the token is {} characters; use at least 16 (e.g. `openssl rand -hex 32`)",
                        token.len()
                    ),
                });
            }
        }
        let local_repos = match nonempty(env::LOCAL_REPOS) {
            Some(list) => {
                SourcePolicy::parse_local_repos(&list).map_err(|e| ConfigError::Invalid {
                    var: env::LOCAL_REPOS,
                    value: list.clone(),
                    reason: e.to_string(),
                })?
            }
            None => Default::default(),
        };
        Ok(Self {
            sources: SourcePolicy {
                allowed_repos: webhook.allowed_repos.clone(),
                local_repos,
            },
            webhook,
            api_token: api_token.map(Secret::new),
            queue_push: None,
        })
    }
}

/// The front door's state: the handlers' ports (the queue it hands requests
/// to, the stores the pages read) and its configuration. axum clones it for
/// every request, so it is all behind `Arc`s: a clone is three reference
/// counts, not the settings' strings and six trait objects.
#[derive(Clone)]
pub struct FrontDoor {
    pub(crate) ports: Arc<Ports>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) config: Arc<FrontDoorConfig>,
}

impl FrontDoor {
    pub fn new(ports: Ports, settings: Settings, config: FrontDoorConfig) -> Self {
        Self {
            ports: Arc::new(ports),
            settings: Arc::new(settings),
            config: Arc::new(config),
        }
    }
}
