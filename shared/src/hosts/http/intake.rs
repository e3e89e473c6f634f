//! The writes that start runs: `POST /runs` and `POST /webhooks/github`.
//!
//! Both end the same way: the request gets its run id and is queued as a
//! trigger job; the answer (202) names the run. Delivery dedupe happens in
//! the trigger handler (one conditional write per delivery id), so every
//! host answers a redelivery the same way and never starts it twice.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiError;
use super::auth::authorize_write;
use super::state::FrontDoor;
use crate::adapters::github::webhook::{self, WebhookAction, WebhookHeaders};
use crate::app::intake::StartRun;
use crate::app::messages::{MESSAGE_VERSION, QueueName, RunRequest, TriggerJob};
use crate::app::metrics::{self, WebhookResult};
use crate::domain::model::{Origin, RunId};

/// Largest `POST /runs` body (a run request is a few hundred bytes).
pub const MAX_RUNS_BODY_BYTES: usize = 64 * 1024;

/// Reads a body up to `limit` bytes; more is a 413 naming the limit.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let source = std::error::Error::source(&e).map(ToString::to_string);
        if source
            .as_deref()
            .is_some_and(|s| s.contains("length limit"))
        {
            ApiError::new(413, format!("request body is over the {limit}-byte limit"))
        } else {
            ApiError::new(400, format!("the request body could not be read: {e}"))
        }
    })
}

pub(crate) async fn start_run(
    State(door): State<FrontDoor>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    authorize_write(&door.config, &parts)?;
    let bytes = read_body(body, MAX_RUNS_BODY_BYTES).await?;
    let start = if bytes.iter().all(u8::is_ascii_whitespace) {
        StartRun::default()
    } else {
        StartRun::parse(&bytes).map_err(|e| ApiError::new(400, e.to_string()))?
    };
    let request = start
        .into_request(Origin::Invoke, &door.config.sources)
        .map_err(|e| ApiError::new(400, e.to_string()))?;
    enqueue(&door, request).await
}

/// GitHub deliveries: verified and queued before the answer; the run starts
/// after it.
pub(crate) async fn github_webhook(
    State(door): State<FrontDoor>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let config = &door.config.webhook;
    let body = read_body(body, config.max_body_bytes).await?;
    let headers = WebhookHeaders::from_pairs(parts.headers.iter().filter_map(|(k, v)| {
        v.to_str()
            .ok()
            .map(|v| (k.as_str().to_string(), v.to_string()))
    }));
    let decision = webhook::intake(config, &headers, &body).map_err(|e| {
        if e.is_unauthorized() {
            tracing::warn!(delivery = ?headers.delivery, "webhook refused: {e}");
            metrics::webhook(WebhookResult::BadSignature);
        } else {
            tracing::info!(delivery = ?headers.delivery, "webhook refused: {e}");
            metrics::webhook(WebhookResult::Refused);
        }
        ApiError::new(e.http_status(), e.to_string())
    })?;
    match decision.into_action() {
        WebhookAction::Reply { status, body } => {
            metrics::webhook(WebhookResult::Ignored);
            Ok((
                axum::http::StatusCode::from_u16(status)
                    .unwrap_or(axum::http::StatusCode::ACCEPTED),
                axum::Json(body),
            )
                .into_response())
        }
        WebhookAction::Start(request) => {
            let answer = enqueue(&door, *request).await;
            if answer.is_ok() {
                metrics::webhook(WebhookResult::Accepted);
            }
            answer
        }
    }
}

/// Gives the request its run id and queues it for the trigger.
async fn enqueue(door: &FrontDoor, mut request: RunRequest) -> Result<Response, ApiError> {
    let run = *request.run_id.get_or_insert_with(RunId::new);
    let job = TriggerJob {
        v: MESSAGE_VERSION,
        request,
    };
    let body = crate::app::handlers::encode(&job);
    door.ports
        .queue
        .send_batch(QueueName::Requests, vec![body])
        .await
        .map_err(|e| {
            tracing::error!(run_id = %run, error = %e, "run request could not be queued");
            ApiError::new(503, format!("could not queue the request: {e}; try again"))
        })?;
    tracing::info!(run_id = %run, "run request queued");
    let url = format!("/runs/{run}");
    Ok((
        axum::http::StatusCode::ACCEPTED,
        [(header::LOCATION, url.clone())],
        axum::Json(json!({ "run_id": run.to_string(), "status": "queued", "url": url })),
    )
        .into_response())
}
