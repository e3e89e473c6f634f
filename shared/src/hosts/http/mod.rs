//! The one HTTP front door: GitHub webhooks, the runs API, the pages and the
//! queue push endpoints, as one axum [`Router`] that every host mounts.
//!
//! - `testexec serve` and the container host serve it over TCP ([`serve`]:
//!   header-read timeout, connection cap, graceful shutdown).
//! - The Lambda host runs the same Router through `lambda_http`.
//!
//! Host-specific facts reach the routes as request extensions, never as
//! copies of them: [`VerifiedCaller`] (an upstream such as API Gateway's
//! `AWS_IAM` authorizer verified the caller) and the peer address (axum's
//! `ConnectInfo`, set by [`serve`]; loopback callers may write without a
//! token when none is configured).
//!
//! Every write answers fast: a run request is checked, given a run id and
//! queued as a trigger job; the trigger handler does the slow work after
//! the answer (GitHub waits 10 s for a webhook's answer).

mod auth;
mod dashboard;
mod intake;
mod listen;
mod pages;
mod push;
mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

pub use auth::VerifiedCaller;
pub use intake::MAX_RUNS_BODY_BYTES;
pub use listen::{ListenOptions, bind, raise_fd_limit, serve};
pub use push::{
    ATTEMPT_HEADER, MAX_PUSH_BODY_BYTES, PushAuthError, PushAuthenticator, PushFormat, QueuePush,
};
pub use state::{FrontDoor, FrontDoorConfig};

pub const WEBHOOK_PATH: &str = "/webhooks/github";
pub const RUNS_PATH: &str = "/runs";

/// The pages are ours and self-contained: inline styles and scripts only,
/// no fetches, no frames, no forms posting elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The front door's routes over `door`'s ports.
pub fn router(door: FrontDoor) -> Router {
    let push_limit = push::MAX_PUSH_BODY_BYTES + 1;
    Router::new()
        .route("/", get(pages::runs_page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/tests", get(dashboard::tests_page))
        .route("/api/tests", get(dashboard::tests_json))
        .route("/test", get(dashboard::test_page))
        .route("/api/test", get(dashboard::test_json))
        .route(RUNS_PATH, get(pages::list_runs).post(intake::start_run))
        .route("/runs/{id}", get(pages::get_run))
        .route("/runs/{id}/report", get(pages::report_page))
        .route("/runs/{id}/report/{file}", get(pages::report_file))
        .route("/runs/{id}/shards/{index}/log", get(pages::shard_log))
        // Reads the body itself, so an oversized one is a JSON 413 that
        // names the limit rather than axum's plain-text one.
        .layer(DefaultBodyLimit::max(MAX_RUNS_BODY_BYTES + 1))
        .route(
            WEBHOOK_PATH,
            post(intake::github_webhook).layer(DefaultBodyLimit::max(
                door.config.webhook.max_body_bytes + 1,
            )),
        )
        .route(
            "/queues/{queue}",
            post(push::push_message).layer(DefaultBodyLimit::max(push_limit)),
        )
        // After every route (route_layer wraps only the routes added so
        // far) and inside the routing, where the matched template is known.
        .route_layer(axum::middleware::from_fn(count_request))
        .fallback(pages::no_route)
        .method_not_allowed_fallback(pages::method_not_allowed)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
        .with_state(door)
}

/// Counts and times every routed request by its route template (never
/// the path a client sent, which would carry run ids).
async fn count_request(
    route: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    crate::app::metrics::http_request(
        route.as_str(),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// An error answer: `{"error": "..."}` with the status that says what went
/// wrong, the same on every host.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: axum::http::StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status: axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
        }
    }
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}
