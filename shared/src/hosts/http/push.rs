//! `POST /queues/{queue}`: one message body pushed by a push-style queue
//! (Pub/Sub push, Event Grid, Dapr), run through the same dispatch every
//! pulling host uses. The answer is 2xx only when the handler succeeded,
//! so the sender redelivers everything else.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;

use super::ApiError;
use super::auth::authorize_write;
use super::intake::read_body;
use super::state::FrontDoor;
use crate::app::handlers::handle_message;
use crate::app::messages::{MAX_MESSAGE_BYTES, QueueName};

/// The delivery attempt, when the sender counts them (1 otherwise).
pub const ATTEMPT_HEADER: &str = "x-testexec-attempt";

pub(crate) async fn push_message(
    State(door): State<FrontDoor>,
    Path(queue): Path<String>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    if !door.config.queue_push {
        return Err(ApiError::new(
            404,
            "queue push is off on this host (it pulls its queues); start it with push enabled",
        ));
    }
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
    authorize_write(&door.config, &parts)?;
    let attempt = parts
        .headers
        .get(ATTEMPT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1);
    let body = read_body(body, MAX_MESSAGE_BYTES).await?;
    let body = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(400, "the message body is not UTF-8 JSON"))?;
    match handle_message(&door.ports, &door.settings, queue, body, attempt).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(e) => {
            tracing::warn!(queue = queue.as_str(), attempt, error = %e, "pushed message failed");
            // Permanent failures still answer non-2xx: the sender's
            // dead-letter policy keeps the message for people to look at.
            let status = if e.is_permanent() { 422 } else { 503 };
            Err(ApiError::new(status, e.to_string()))
        }
    }
}
