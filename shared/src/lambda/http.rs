//! The trigger's HTTP front door (API Gateway v1/v2, Function URL).
//!
//! Requests must answer fast (GitHub gives a webhook 10 s): a request is
//! validated, given a run id and queued as a [`TriggerJob`] on the requests
//! queue, and answered 202 with that id; the trigger function picks the job
//! up from SQS and does the slow work. Errors are JSON `{"error": "..."}`
//! with the status that says what went wrong.

use serde_json::{Value, json};

use crate::github::webhook::{self, WebhookAction, WebhookConfig, WebhookHeaders};
use crate::handlers::trigger::RunRequest;
use crate::lambda::events::{BodyError, HttpRequest};
use crate::lambda::request::{SourcePolicy, StartRun};
use crate::messages::{MESSAGE_VERSION, QueueName, TriggerJob};
use crate::model::{Origin, RunId};
use crate::ports::JobQueue;

/// Largest `POST /runs` body.
pub const MAX_RUNS_BODY_BYTES: usize = 64 * 1024;

pub const WEBHOOK_PATH: &str = "/webhooks/github";
pub const RUNS_PATH: &str = "/runs";

/// How the front door is set up (built once per process).
#[derive(Debug, Clone)]
pub struct HttpIntake {
    pub webhook: WebhookConfig,
    /// Bearer token `POST /runs` requires; `None` turns the route off.
    /// Never logged.
    pub api_token: Option<crate::github::auth::Secret>,
    pub policy: SourcePolicy,
}

/// An answer in the shape all three front doors take.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Value,
}

impl HttpResponse {
    fn error(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into() }),
        }
    }

    /// The proxy-integration response (the same fields for REST v1, HTTP
    /// v2 and Function URLs).
    pub fn to_lambda(&self) -> Value {
        json!({
            "statusCode": self.status,
            "headers": { "content-type": "application/json" },
            "body": self.body.to_string(),
            "isBase64Encoded": false,
        })
    }
}

/// Routes one request. Never fails: every problem is an HTTP answer.
pub async fn handle(intake: &HttpIntake, queue: &dyn JobQueue, req: &HttpRequest) -> HttpResponse {
    let route = req.path.trim_end_matches('/');
    let route = if route.is_empty() { "/" } else { route };
    match (route, req.method.as_str()) {
        (WEBHOOK_PATH, "POST") => github(intake, queue, req).await,
        (RUNS_PATH, "POST") => runs(intake, queue, req).await,
        (WEBHOOK_PATH | RUNS_PATH, method) => HttpResponse::error(
            405,
            format!("{method} is not allowed on {route}; use POST"),
        ),
        _ => HttpResponse::error(
            404,
            format!(
                "no route {} {}; this function serves POST {WEBHOOK_PATH} and POST {RUNS_PATH}",
                req.method,
                req.path.chars().take(200).collect::<String>()
            ),
        ),
    }
}

fn body_error(e: BodyError) -> HttpResponse {
    match e {
        BodyError::TooLarge { size, limit } => HttpResponse::error(
            413,
            format!("request body is about {size} bytes, over the {limit}-byte limit"),
        ),
        BodyError::BadBase64(detail) => {
            HttpResponse::error(400, format!("the base64-encoded body does not decode: {detail}"))
        }
    }
}

async fn github(intake: &HttpIntake, queue: &dyn JobQueue, req: &HttpRequest) -> HttpResponse {
    let body = match req.body_bytes(intake.webhook.max_body_bytes) {
        Ok(b) => b,
        Err(e) => return body_error(e),
    };
    let headers = WebhookHeaders::from_pairs(req.headers.iter().map(|(k, v)| (k, v)));
    let decision = match webhook::intake(&intake.webhook, &headers, &body) {
        Ok(d) => d,
        Err(e) => {
            if e.is_unauthorized() {
                tracing::warn!(delivery = ?headers.delivery, "webhook refused: {e}");
            } else {
                tracing::info!(delivery = ?headers.delivery, "webhook refused: {e}");
            }
            return HttpResponse::error(e.http_status(), e.to_string());
        }
    };
    match decision.into_action() {
        WebhookAction::Reply { status, body } => HttpResponse { status, body },
        WebhookAction::Start(request) => enqueue(queue, *request).await,
    }
}

async fn runs(intake: &HttpIntake, queue: &dyn JobQueue, req: &HttpRequest) -> HttpResponse {
    let Some(token) = &intake.api_token else {
        return HttpResponse::error(
            401,
            "POST /runs is disabled: set TESTEXEC_API_TOKEN on the trigger function and send it as `Authorization: Bearer <token>`",
        );
    };
    let presented = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.expose().as_bytes())) {
        return HttpResponse::error(401, "missing or wrong `Authorization: Bearer <token>`");
    }
    if let Some(ct) = req.header("content-type") {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return HttpResponse::error(
                415,
                format!("content type `{essence}` is not accepted; send application/json"),
            );
        }
    }
    let body = match req.body_bytes(MAX_RUNS_BODY_BYTES) {
        Ok(b) => b,
        Err(e) => return body_error(e),
    };
    let request = match StartRun::parse(&body)
        .and_then(|s| s.into_request(Origin::Invoke, &intake.policy))
    {
        Ok(r) => r,
        Err(e) => return HttpResponse::error(400, e.to_string()),
    };
    enqueue(queue, request).await
}

/// Compares secrets without an early exit, so timing reveals nothing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Gives the request its run id and queues it for the trigger.
pub async fn enqueue(queue: &dyn JobQueue, mut request: RunRequest) -> HttpResponse {
    let run = *request.run_id.get_or_insert_with(RunId::new);
    let job = TriggerJob {
        v: MESSAGE_VERSION,
        request,
    };
    // Our own plain struct: serialising cannot fail.
    let body = serde_json::to_string(&job).unwrap_or_default();
    match queue.send_batch(QueueName::Requests, vec![body]).await {
        Ok(()) => {
            tracing::info!(run_id = %run, "run request queued");
            HttpResponse {
                status: 202,
                body: json!({ "run_id": run.to_string(), "status": "queued" }),
            }
        }
        Err(e) => {
            tracing::error!(run_id = %run, error = %e, "run request could not be queued");
            HttpResponse::error(503, format!("could not queue the request: {e}; try again"))
        }
    }
}
