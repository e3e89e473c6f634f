//! Who pushed: Pub/Sub's push subscriptions with OIDC authentication send
//! `Authorization: Bearer <Google-signed ID token>`, whose audience is the
//! one the subscription names and whose `email` is its service account.
//!
//! Anyone with a Google account can mint an ID token for any audience, so
//! the audience alone proves nothing: the sender's email must match too
//! (Google's guidance for push endpoints). Verification is Google's own
//! `google-cloud-auth` verifier: RS256 signature against Google's JWKS
//! (cached per key id), issuer, audience, expiry, `email_verified`, email.

use std::time::Duration;

use google_cloud_auth::credentials::idtoken::verifier::{Builder, Verifier};
use tokio::sync::Mutex;

use super::env;
use crate::errors::ConfigError;

/// Google's ID token signing keys.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// Longer is no ID token (Google's are about 1 KB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Verifies Pub/Sub push tokens for one audience and one sender.
pub struct GoogleIdTokens {
    /// One verification at a time: the verifier's key cache answers a
    /// concurrent caller with an error instead of waiting (`try_write`),
    /// which would turn parallel pushes into spurious 503s. A check is
    /// about 0.1 ms once the keys are cached.
    verifier: Mutex<Verifier>,
    audience: String,
    sender: String,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenRejection {
    /// Not a JWT, a bad signature, expired, or no key for its `kid`.
    #[error("{0}")]
    Invalid(String),
    /// Genuine, but for another audience, issuer or sender.
    #[error("{0}")]
    NotForUs(String),
    /// Google's keys could not be fetched.
    #[error("{0}")]
    KeysUnavailable(String),
}

impl GoogleIdTokens {
    /// From the variables in [`env`]; `None` when no audience is set.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let get = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(audience) = get(env::PUSH_AUDIENCE) else {
            return Ok(None);
        };
        let sender = get(env::PUSH_SERVICE_ACCOUNT).ok_or(ConfigError::Missing {
            var: env::PUSH_SERVICE_ACCOUNT,
            hint: "with TESTEXEC_GCP_PUSH_AUDIENCE set, name the push subscription's service account too: any Google account can mint a token for any audience",
        })?;
        let jwks = get(env::PUSH_JWKS_URL).unwrap_or_else(|| GOOGLE_JWKS_URL.into());
        Ok(Some(Self::new(&audience, &sender, &jwks)))
    }

    pub fn new(audience: &str, sender: &str, jwks_url: &str) -> Self {
        // The verifier fetches keys with a reqwest built without a
        // provider of its own.
        super::install_crypto_provider();
        let verifier = Builder::new([audience])
            .with_email(sender)
            .with_jwks_url(jwks_url)
            .with_clock_skew(Duration::from_secs(30))
            .build();
        Self {
            verifier: Mutex::new(verifier),
            audience: audience.to_string(),
            sender: sender.to_string(),
        }
    }

    /// For logs and errors: what is accepted (no secret in it).
    pub fn describe(&self) -> String {
        format!(
            "a Google ID token for audience `{}` from `{}`",
            self.audience, self.sender
        )
    }

    /// The verified sender's email.
    pub async fn verify(&self, token: &str) -> Result<String, IdTokenRejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(IdTokenRejection::Invalid(format!(
                "the token is over {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let verified = self.verifier.lock().await.verify(token).await;
        match verified {
            Ok(claims) => Ok(claims
                .get("email")
                .and_then(|e| e.as_str())
                .unwrap_or(&self.sender)
                .to_string()),
            Err(e) if e.is_load_cert() => {
                // An unknown `kid` also lands here: Google's keys were
                // fetched and hold no such key, so the token is forged.
                let text = e.to_string();
                if text.contains("matching `kid`") {
                    Err(IdTokenRejection::Invalid(text))
                } else {
                    Err(IdTokenRejection::KeysUnavailable(text))
                }
            }
            // The verifier names the claim that failed (`aud`, `iss`,
            // `email`, `email_verified`) only for a token whose signature
            // held: someone else's genuine token.
            Err(e) if e.is_invalid() && e.to_string().starts_with("JWT token `") => {
                Err(IdTokenRejection::NotForUs(e.to_string()))
            }
            Err(e) => Err(IdTokenRejection::Invalid(e.to_string())),
        }
    }
}
