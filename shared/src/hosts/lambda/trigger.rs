//! The trigger function's own part of the host (feature `lambda-http`):
//! HTTP requests from API Gateway or a Function URL, answered by the front
//! door's Router through `lambda_http`; schedules and direct invokes, which
//! run the trigger at once. Only the trigger binary links this.

use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::{RequestExt as _, tower::ServiceExt as _};
use serde_json::{Value, json};

use crate::app::handlers::trigger::TriggerOutcome;
use crate::app::handlers::{self, Ports};
use crate::app::intake::StartRun;
use crate::app::messages::RunRequest;
use crate::domain::model::Origin;
use crate::errors::{EventError, HandlerError, HostError, InvocationError};
use crate::hosts::http::{self, FrontDoor, FrontDoorConfig, VerifiedCaller};
use crate::hosts::lambda::events::{self, Event};
use crate::hosts::lambda::host::{Function, GithubSide, Host, LambdaFunction};

/// The trigger function: trigger jobs (SQS), HTTP requests answered by the
/// front door, schedules and direct invokes.
pub struct Trigger;

impl LambdaFunction for Trigger {
    const FUNCTION: Function = Function::Trigger;

    fn github(lookup: &dyn Fn(&str) -> Option<String>) -> Result<GithubSide, HostError> {
        crate::hosts::lambda::host::github_side(lookup)
    }

    fn configure(host: Host, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Host, HostError> {
        Ok(host.with_front_door(FrontDoorConfig::from_lookup(lookup)?))
    }

    async fn process(host: &Host, body: &str, attempt: u32) -> Result<(), HandlerError> {
        handlers::trigger_message(&host.ports, &host.settings, body, attempt).await?;
        Ok(())
    }

    async fn other(
        host: &Host,
        event: Event,
        context: lambda_runtime::Context,
    ) -> Result<Value, InvocationError> {
        match event {
            Event::Http(request) => {
                let request = serde_json::from_value(*request)
                    .map_err(|e| events::malformed(events::HTTP_KIND, e))?;
                Ok(host.answer_http(request, context).await)
            }
            Event::EventBridge(e) => {
                // The schedule target's Input replaces the whole event; a
                // rule without Input sends the event, whose `detail` then
                // must carry the request.
                let start = StartRun::from_value(e.detail)?;
                let request = start.into_request(Origin::Schedule, &host.front_door.sources)?;
                trigger_now(&host.ports, &host.settings, request).await
            }
            Event::Invoke(value) => {
                if value.to_string().len() > events::MAX_INVOKE_BYTES {
                    return Err(EventError::BadRunRequest(format!(
                        "the payload is over {} bytes",
                        events::MAX_INVOKE_BYTES
                    ))
                    .into());
                }
                let start = StartRun::from_value(value)?;
                let request = start.into_request(Origin::Invoke, &host.front_door.sources)?;
                trigger_now(&host.ports, &host.settings, request).await
            }
            Event::Sqs(_) => Err(EventError::NotAccepted {
                function: Self::FUNCTION.name(),
                kind: "SQS (batches go through the handler)",
            }
            .into()),
        }
    }
}

impl Host {
    /// The front door's configuration: who HTTP requests, schedules and
    /// direct invokes may name, the webhook secret, the API token.
    pub fn with_front_door(mut self, config: FrontDoorConfig) -> Self {
        self.front_door = config;
        self.router = std::sync::OnceLock::new();
        self
    }

    /// An API Gateway or Function URL request, answered by the front door's
    /// Router through `lambda_http` (which turns the event into an
    /// `http::Request` and the Router's answer into the proxy response of
    /// the same payload version). A caller API Gateway verified with SigV4
    /// (an `AWS_IAM` route) is passed on as [`VerifiedCaller`].
    pub async fn answer_http(
        &self,
        request: lambda_http::request::LambdaRequest,
        context: lambda_runtime::Context,
    ) -> Value {
        let router = lambda_http::tower::ServiceBuilder::new()
            .map_request(|mut request: lambda_http::Request| {
                if let Some(caller) = iam_caller(request.request_context_ref()) {
                    request.extensions_mut().insert(VerifiedCaller(caller));
                }
                strip_stage(&mut request);
                request
            })
            .service(self.front_door_router().clone());
        let adapter = lambda_http::Adapter::from(router);
        let event = lambda_runtime::LambdaEvent::new(request, context);
        match adapter.oneshot(event).await {
            Ok(response) => serde_json::to_value(response).unwrap_or_else(
                |e| json!({ "statusCode": 500, "body": format!("response not serialisable: {e}") }),
            ),
            Err(never) => match never {},
        }
    }

    /// The front door's routes, built on the first HTTP request: a trigger
    /// fed only by its queue never pays for them.
    fn front_door_router(&self) -> &Router {
        self.router.get_or_init(|| {
            http::router(FrontDoor::new(
                self.ports.clone(),
                self.settings.clone(),
                self.front_door.clone(),
            ))
        })
    }
}

/// A schedule or direct invoke: run the trigger now and answer with
/// its outcome (no HTTP client is waiting on a 10-second budget).
async fn trigger_now(
    ports: &Ports,
    settings: &crate::app::handlers::Settings,
    mut request: RunRequest,
) -> Result<Value, InvocationError> {
    let run = *request.run_id.get_or_insert_with(Default::default);
    let span = tracing::info_span!("trigger", run_id = %run, repo = %request.source.repo);
    let outcome = tracing::Instrument::instrument(
        crate::app::handlers::trigger::trigger(ports, settings, request),
        span,
    )
    .await?;
    Ok(outcome_json(&outcome))
}

/// Routes are matched without the API stage: a REST API (and an HTTP API
/// with a named stage) puts `/<stage>` in front of the path.
fn strip_stage(request: &mut lambda_http::Request) {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.clone(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else {
        return;
    };
    let prefix = format!("/{stage}");
    let uri = request.uri();
    let rest = match uri.path().strip_prefix(&prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return,
    };
    let path_and_query = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = lambda_http::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
}

/// The caller's ARN when API Gateway verified a SigV4 signature. AWS writes
/// the request context; a client cannot set it.
fn iam_caller(context: Option<&RequestContext>) -> Option<String> {
    let arn = match context? {
        RequestContext::ApiGatewayV2(ctx) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|iam| iam.user_arn.clone()),
        RequestContext::ApiGatewayV1(ctx) => ctx.identity.user_arn.clone(),
        _ => None,
    };
    arn.filter(|a| !a.is_empty())
}

fn outcome_json(outcome: &TriggerOutcome) -> Value {
    match outcome {
        TriggerOutcome::Started { run, plan } => json!({
            "outcome": "started",
            "run_id": run.id.to_string(),
            "shards": plan.shards.len(),
            "suite": run.suite,
        }),
        TriggerOutcome::Duplicate { delivery } => json!({
            "outcome": "duplicate",
            "delivery": delivery,
        }),
        TriggerOutcome::Rejected { error } => json!({
            "outcome": "rejected",
            "error": error,
        }),
    }
}
