//! `POST /queues/{queue}`: one message pushed by a push-style queue (Pub/Sub
//! push, Event Grid, Dapr), run through the same dispatch every pulling
//! host uses. The answer is 2xx only when the handler succeeded, so the
//! sender redelivers everything else.
//!
//! Two things differ by sender, and the host says which ([`QueuePush`]):
//! - the body: the message itself ([`PushFormat::Raw`]), or Pub/Sub's push
//!   envelope with the message base64 in `message.data` and the delivery
//!   attempt beside it ([`PushFormat::PubSub`]);
//! - who may push: a [`PushAuthenticator`] (Pub/Sub's OIDC token, checked
//!   by `adapters::gcp::GoogleIdTokens`) replaces the API token and the
//!   loopback rule on this route; without one, a push is a write like any
//!   other (see `auth.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine as _;
use serde::Deserialize;

use super::ApiError;
use super::auth::{
    VerifiedCaller, authorize_write, bearer_token, require_json, require_same_origin,
};
use super::intake::read_body;
use super::state::FrontDoor;
use crate::app::handlers::handle_message;
use crate::app::messages::{MAX_MESSAGE_BYTES, QueueName};

/// The delivery attempt of a raw push, when the sender counts them (1
/// otherwise).
pub const ATTEMPT_HEADER: &str = "x-testexec-attempt";

/// The largest body a push may have: a Pub/Sub envelope carries the message
/// base64-encoded (4/3 of it) plus its attributes and ids.
pub const MAX_PUSH_BODY_BYTES: usize = MAX_MESSAGE_BYTES / 3 * 4 + 64 * 1024;

/// How this host takes pushed messages.
#[derive(Clone, Default)]
pub struct QueuePush {
    pub format: PushFormat,
    /// Verifies the sender's bearer token. Set, it is the only way in;
    /// unset, a push needs what any write needs.
    pub authenticator: Option<Arc<dyn PushAuthenticator>>,
}

impl std::fmt::Debug for QueuePush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuePush")
            .field("format", &self.format)
            .field(
                "authenticator",
                &self.authenticator.as_ref().map(|a| a.describe()),
            )
            .finish()
    }
}

/// The shape of a pushed body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PushFormat {
    /// The message itself; the attempt in [`ATTEMPT_HEADER`].
    #[default]
    Raw,
    /// Pub/Sub's push envelope:
    /// `{"message": {"data": <base64>, "messageId": ...}, "subscription":
    /// ..., "deliveryAttempt": n}` (`deliveryAttempt` only with a
    /// dead-letter policy).
    PubSub,
}

/// Checks a push request's bearer token.
#[async_trait]
pub trait PushAuthenticator: Send + Sync {
    /// What it accepts, for logs and errors (never a secret).
    fn describe(&self) -> String;
    /// The verified sender, or why not.
    async fn verify(&self, bearer_token: &str) -> Result<VerifiedCaller, PushAuthError>;
}

/// Why a push was not let in.
#[derive(Debug, thiserror::Error)]
pub enum PushAuthError {
    /// No token, not a token, a bad signature or an expired one: 401.
    #[error("push token rejected: {0}")]
    Unauthenticated(String),
    /// A genuine token, but for another audience, issuer or sender: 403.
    #[error("push token is not for this service: {0}")]
    Forbidden(String),
    /// The signing keys could not be fetched: 503, so the sender retries.
    #[error("push token cannot be checked now: {0}")]
    Unavailable(String),
}

impl From<PushAuthError> for ApiError {
    fn from(e: PushAuthError) -> Self {
        let status = match e {
            PushAuthError::Unauthenticated(_) => 401,
            PushAuthError::Forbidden(_) => 403,
            PushAuthError::Unavailable(_) => 503,
        };
        ApiError::new(status, e.to_string())
    }
}

pub(crate) async fn push_message(
    State(door): State<FrontDoor>,
    Path(queue): Path<String>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    let Some(push) = &door.config.queue_push else {
        return Err(ApiError::new(
            404,
            "queue push is off on this host (it pulls its queues); start it with push enabled",
        ));
    };
    let queue = QueueName::from_function(&queue).ok_or_else(|| {
        ApiError::new(
            404,
            format!(
                "no queue `{}`; push to one of trigger, execute, collect, report",
                queue.chars().take(40).collect::<String>()
            ),
        )
    })?;
    let (parts, body) = request.into_parts();
    let sender = authorize_push(&door, push, &parts).await?;
    let body = read_body(body, MAX_PUSH_BODY_BYTES).await?;
    let (message, attempt) = match push.format {
        PushFormat::Raw => {
            let attempt = parts
                .headers
                .get(ATTEMPT_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok())
                .filter(|n| *n >= 1)
                .unwrap_or(1);
            (body.to_vec(), attempt)
        }
        PushFormat::PubSub => unwrap_pubsub(&body)?,
    };
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ApiError::new(
            413,
            format!("the message is over {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    let message = std::str::from_utf8(&message)
        .map_err(|_| ApiError::new(400, "the message is not UTF-8 JSON"))?;
    match handle_message(&door.ports, &door.settings, queue, message, attempt).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(e) => {
            tracing::warn!(queue = queue.as_str(), attempt, sender = sender.as_deref().unwrap_or("-"), error = %e, "pushed message failed");
            // Permanent failures still answer non-2xx: the sender's
            // dead-letter policy keeps the message for people to look at.
            let status = if e.is_permanent() { 422 } else { 503 };
            Err(ApiError::new(status, e.to_string()))
        }
    }
}

/// The sender, when an authenticator verified one.
async fn authorize_push(
    door: &FrontDoor,
    push: &QueuePush,
    parts: &Parts,
) -> Result<Option<String>, ApiError> {
    let Some(authenticator) = &push.authenticator else {
        authorize_write(&door.config, parts)?;
        return Ok(None);
    };
    require_same_origin(parts)?;
    require_json(parts)?;
    let token = bearer_token(parts)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            PushAuthError::Unauthenticated(format!(
                "no `Authorization: Bearer <token>`; this endpoint takes {}",
                authenticator.describe()
            ))
        })?;
    let VerifiedCaller(sender) = authenticator.verify(token).await?;
    Ok(Some(sender))
}

#[derive(Deserialize)]
struct PubSubEnvelope {
    message: PubSubMessage,
    #[serde(rename = "deliveryAttempt")]
    delivery_attempt: Option<u32>,
}

#[derive(Deserialize)]
struct PubSubMessage {
    data: Option<String>,
}

/// The message and its attempt out of a Pub/Sub push envelope.
fn unwrap_pubsub(body: &[u8]) -> Result<(Vec<u8>, u32), ApiError> {
    let envelope: PubSubEnvelope = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            format!("not a Pub/Sub push envelope ({e}); expected {{\"message\": {{\"data\": <base64>}}, \"subscription\": ...}}"),
        )
    })?;
    let data = envelope.message.data.unwrap_or_default();
    let message = base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .map_err(|e| ApiError::new(400, format!("`message.data` is not base64: {e}")))?;
    // Without a dead-letter policy Pub/Sub sends no attempt; the handlers
    // then see every delivery as the first, as on a pull without one.
    let attempt = envelope.delivery_attempt.filter(|n| *n >= 1).unwrap_or(1);
    Ok((message, attempt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(data: &str, attempt: Option<u32>) -> Vec<u8> {
        let mut v = serde_json::json!({
            "message": {"data": data, "messageId": "1", "publishTime": "2026-12-06T00:00:00Z", "attributes": {"run_id": "r"}},
            "subscription": "projects/p/subscriptions/s",
        });
        if let Some(n) = attempt {
            v["deliveryAttempt"] = n.into();
        }
        v.to_string().into_bytes()
    }

    #[test]
    fn a_pubsub_envelope_gives_its_message_and_attempt() {
        let data = base64::engine::general_purpose::STANDARD.encode(br#"{"k":1}"#);
        assert_eq!(
            unwrap_pubsub(&envelope(&data, Some(3))).unwrap(),
            (br#"{"k":1}"#.to_vec(), 3)
        );
        assert_eq!(unwrap_pubsub(&envelope(&data, None)).unwrap().1, 1);
    }

    #[test]
    fn a_bad_envelope_is_a_400_naming_what_is_wrong() {
        let e = unwrap_pubsub(br#"{"k":1}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(e.message.contains("Pub/Sub push envelope"), "{}", e.message);
        let e = unwrap_pubsub(&envelope("***", None)).unwrap_err();
        assert!(e.message.contains("message.data"), "{}", e.message);
    }

    #[test]
    fn the_body_limit_holds_a_full_message_base64_encoded() {
        let data = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; MAX_MESSAGE_BYTES]);
        assert!(envelope(&data, Some(1)).len() <= MAX_PUSH_BODY_BYTES);
    }
}
