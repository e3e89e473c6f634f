//! Credentials: GitHub App (JWT → per-installation tokens, cached) or a
//! plain token (PAT / `GITHUB_TOKEN`).
//!
//! Installation tokens live an hour. They are cached per installation and
//! refreshed five minutes before `expires_at`, so a token handed out is never
//! about to die mid-request. Each installation's slot has its own async
//! mutex, held across the refresh: callers arriving during a refresh wait
//! for it and share its result instead of minting tokens of their own.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::Transport;
use super::time::{now_secs, parse_rfc3339};
use crate::errors::GithubError;

/// Refresh this long before GitHub says a token expires.
const REFRESH_MARGIN_SECS: u64 = 5 * 60;
/// GitHub rejects JWTs living longer than 10 minutes; 9 leaves room for
/// clock drift between us and GitHub.
const JWT_LIFETIME_SECS: u64 = 9 * 60;
/// Backdated so a GitHub clock slightly behind ours still accepts it.
const JWT_BACKDATE_SECS: u64 = 60;

/// The credentials a host configures.
#[derive(Clone)]
pub enum GithubAuth {
    /// A GitHub App: can create check runs.
    App {
        app_id: u64,
        private_key_pem: String,
    },
    /// A personal access token or Actions' `GITHUB_TOKEN`: commit statuses
    /// only, since tokens cannot create check runs.
    Token(String),
}

impl fmt::Debug for GithubAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GithubAuth::App { app_id, .. } => f
                .debug_struct("App")
                .field("app_id", app_id)
                .field("private_key_pem", &"<redacted>")
                .finish(),
            GithubAuth::Token(_) => f.debug_tuple("Token").field(&"<redacted>").finish(),
        }
    }
}

/// A credential string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it: the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Serialize)]
struct Claims {
    iat: u64,
    exp: u64,
    iss: String,
}

#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: String,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    /// Epoch seconds after which the token is refreshed.
    refresh_at: u64,
}

type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

enum Mode {
    App { app_id: u64, key: EncodingKey },
    Token(Secret),
}

/// Hands out bearer credentials for API calls.
pub struct Authenticator {
    mode: Mode,
    tokens: Mutex<HashMap<u64, Slot>>,
    /// `owner/name` → installation id, for callers that only know the repo
    /// (source fetches, runs whose origin carries no installation).
    repo_installations: Mutex<HashMap<String, u64>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.mode {
            Mode::App { app_id, .. } => format!("App({app_id})"),
            Mode::Token(_) => "Token".to_string(),
        };
        f.debug_struct("Authenticator")
            .field("mode", &mode)
            .finish()
    }
}

impl Authenticator {
    /// Parses the key now, so a broken key fails at start-up rather than on
    /// the first webhook.
    pub fn new(auth: &GithubAuth) -> Result<Self, GithubError> {
        let mode = match auth {
            GithubAuth::App {
                app_id,
                private_key_pem,
            } => {
                let key = EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
                    .map_err(|e| GithubError::PrivateKey(e.to_string()))?;
                let mode = Mode::App {
                    app_id: *app_id,
                    key,
                };
                // from_rsa_pem only checks the PEM framing; signing once
                // proves the key itself is usable.
                if let Mode::App { app_id, key } = &mode {
                    sign_jwt(*app_id, key, now_secs())?;
                }
                mode
            }
            GithubAuth::Token(token) => {
                if token.trim().is_empty() {
                    return Err(GithubError::Config("the GitHub token is empty".into()));
                }
                Mode::Token(Secret::new(token.trim()))
            }
        };
        Ok(Self {
            mode,
            tokens: Mutex::new(HashMap::new()),
            repo_installations: Mutex::new(HashMap::new()),
        })
    }

    /// True for App credentials (check runs); false for a token (statuses).
    pub fn is_app(&self) -> bool {
        matches!(self.mode, Mode::App { .. })
    }

    /// The App's JWT, for `/app/...` endpoints.
    pub fn app_jwt(&self) -> Result<Secret, GithubError> {
        match &self.mode {
            Mode::App { app_id, key } => sign_jwt(*app_id, key, now_secs()),
            Mode::Token(_) => Err(GithubError::Unsupported(
                "a GitHub App JWT needs App credentials, not a token".into(),
            )),
        }
    }

    /// The credential for calls on `repo`: the token itself, or the
    /// installation token of `installation` (looked up from the repo when
    /// not given).
    pub(crate) async fn token_for(
        &self,
        transport: &Transport,
        repo: &str,
        installation: Option<u64>,
    ) -> Result<Secret, GithubError> {
        if let Mode::Token(token) = &self.mode {
            return Ok(token.clone());
        }
        let id = match installation {
            Some(id) => id,
            None => self.installation_for_repo(transport, repo).await?,
        };
        self.installation_token(transport, id).await
    }

    async fn installation_for_repo(
        &self,
        transport: &Transport,
        repo: &str,
    ) -> Result<u64, GithubError> {
        if let Some(id) = lock(&self.repo_installations).get(repo) {
            return Ok(*id);
        }
        let jwt = self.app_jwt()?;
        let path = format!("/repos/{repo}/installation");
        let found: Installation = transport
            .json(Method::GET, &path, &jwt, None)
            .await
            .and_then(|v| transport.decode(Method::GET, &path, v))?;
        lock(&self.repo_installations).insert(repo.to_string(), found.id);
        Ok(found.id)
    }

    /// A cached installation token, minted when absent or near expiry.
    pub(crate) async fn installation_token(
        &self,
        transport: &Transport,
        installation: u64,
    ) -> Result<Secret, GithubError> {
        let slot = lock(&self.tokens).entry(installation).or_default().clone();
        // Held across the refresh on purpose: see the module docs.
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| now_secs() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let jwt = self.app_jwt()?;
        let path = format!("/app/installations/{installation}/access_tokens");
        let value = transport.json(Method::POST, &path, &jwt, None).await?;
        let minted: AccessToken = transport.decode(Method::POST, &path, value)?;
        // An unparsable expiry is treated as "use once": refreshing too often
        // costs a request, trusting a dead token costs a failed report.
        let refresh_at = parse_rfc3339(&minted.expires_at)
            .map(|exp| exp.saturating_sub(REFRESH_MARGIN_SECS))
            .unwrap_or(0);
        let token = Secret::new(minted.token);
        *cached = Some(CachedToken {
            token: token.clone(),
            refresh_at,
        });
        tracing::debug!(
            installation,
            refresh_at,
            "minted a GitHub installation token"
        );
        Ok(token)
    }
}

fn sign_jwt(app_id: u64, key: &EncodingKey, now: u64) -> Result<Secret, GithubError> {
    let claims = Claims {
        iat: now.saturating_sub(JWT_BACKDATE_SECS),
        exp: now + JWT_LIFETIME_SECS,
        iss: app_id.to_string(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
        .map(Secret::new)
        .map_err(|e| GithubError::PrivateKey(e.to_string()))
}

/// The maps hold plain data, so a panic elsewhere cannot leave them
/// half-updated: recover from poisoning instead of propagating it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let app = GithubAuth::App {
            app_id: 7,
            private_key_pem: "PRIVATE-STUFF".into(),
        };
        let shown = format!("{app:?}");
        assert!(shown.contains('7') && !shown.contains("PRIVATE-STUFF"));
        let tok = GithubAuth::Token("ghp_abc".into());
        assert!(!format!("{tok:?}").contains("ghp_abc"));
        assert!(!format!("{:?}", Secret::new("ghs_x")).contains("ghs_x"));
    }

    #[test]
    fn bad_keys_are_rejected_up_front() {
        let e = Authenticator::new(&GithubAuth::App {
            app_id: 1,
            private_key_pem: "not a key".into(),
        })
        .unwrap_err();
        assert!(matches!(e, GithubError::PrivateKey(_)));
        assert!(Authenticator::new(&GithubAuth::Token("  ".into())).is_err());
    }
}
