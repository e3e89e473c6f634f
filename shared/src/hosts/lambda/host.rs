//! Everything a function builds once per process, and the dispatch of one
//! invocation to the library handlers.

use std::sync::Arc;

use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::{RequestExt as _, tower::ServiceExt as _};
use serde_json::{Value, json};

use crate::adapters::aws::{AwsBackends, AwsSettings, sdk_config};
use crate::adapters::github::GithubPorts;
use crate::app::handlers::trigger::TriggerOutcome;
use crate::app::handlers::{Ports, Settings};
use crate::app::intake::StartRun;
use crate::app::messages::{QueueName, RunRequest};
use crate::app::ports::SystemClock;
use crate::domain::model::Origin;
use crate::errors::{EventError, HandlerError, HostError, InvocationError};
use crate::hosts::http::{self, FrontDoor, FrontDoorConfig, VerifiedCaller};
use crate::hosts::lambda::events::{self, Event};
use crate::hosts::lambda::sqs;

/// Environment variables the host reads (besides `adapters::aws::env`, the
/// front door's in `hosts::http` and the GitHub ones in `github::config`).
pub mod env {
    pub const WORK_ROOT: &str = "TESTEXEC_WORK_ROOT";
    pub const PUBLIC_URL: &str = "TESTEXEC_PUBLIC_URL";
    pub const EXECUTE_WAIT_SECS: &str = "TESTEXEC_EXECUTE_WAIT_SECS";
}

/// The four functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Trigger,
    Execute,
    Collect,
    Report,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Trigger => "trigger",
            Function::Execute => "execute",
            Function::Collect => "collect",
            Function::Report => "report",
        }
    }

    /// The queue whose batches this function consumes.
    pub fn queue(self) -> QueueName {
        match self {
            Function::Trigger => QueueName::Requests,
            Function::Execute => QueueName::Shards,
            Function::Collect => QueueName::Results,
            Function::Report => QueueName::Reports,
        }
    }
}

/// A function's clients and settings, built once.
#[derive(Clone)]
pub struct Host {
    pub function: Function,
    pub ports: Ports,
    pub settings: Settings,
    /// Who schedules and direct invokes may name.
    pub front_door: FrontDoorConfig,
    /// The front door's routes, built on the first HTTP request: only
    /// trigger answers API Gateway, so the others never pay for them.
    router: std::sync::OnceLock<Router>,
    /// Where permanently failing SQS records go at once (the queue's
    /// redrive target); without it they wait for `maxReceiveCount`.
    dead_letters: Option<Arc<crate::adapters::aws::SqsQueue>>,
}

impl Host {
    /// Builds the host from the process environment and the AWS SDK's
    /// standard configuration chain.
    pub async fn from_env(function: Function) -> Result<Self, HostError> {
        let lookup = |k: &str| std::env::var(k).ok();
        let aws = AwsSettings::from_env()?;
        let sdk = sdk_config().await;
        let backends = AwsBackends::new(&sdk, &aws);
        Self::with_backends(function, backends, lookup)
    }

    /// The host over already built backends, reading the rest through
    /// `lookup` (tests pass a map).
    pub fn with_backends(
        function: Function,
        backends: AwsBackends,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, HostError> {
        let nonempty = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        // Only trigger (source, check run opens) and report (check run
        // completes) talk to GitHub.
        let github = match function {
            Function::Trigger | Function::Report => GithubPorts::from_lookup(&lookup)?,
            Function::Execute | Function::Collect => GithubPorts::offline(),
        };
        let dead_letters = backends.queue.clone();
        let ports = Ports {
            store: backends.store,
            blobs: backends.blobs,
            queue: backends.queue,
            source: github.source,
            notifier: github.notifier,
            clock: Arc::new(SystemClock),
        };
        let mut settings = Settings {
            work_root: std::env::temp_dir().join("testexec"),
            public_url: nonempty(env::PUBLIC_URL),
            ..Settings::default()
        };
        if let Some(root) = nonempty(env::WORK_ROOT) {
            settings.work_root = root.into();
        }
        let front_door = FrontDoorConfig::from_lookup(&lookup)?;
        let mut host = Self::new(function, ports, settings, front_door);
        host.dead_letters = Some(dead_letters);
        Ok(host)
    }

    pub fn new(
        function: Function,
        ports: Ports,
        settings: Settings,
        front_door: FrontDoorConfig,
    ) -> Self {
        Self {
            function,
            ports,
            settings,
            front_door,
            router: std::sync::OnceLock::new(),
            dead_letters: None,
        }
    }

    /// Handles one invocation payload: decode, check this function takes
    /// the event, call the handler, shape the answer.
    pub async fn invoke(&self, payload: Value) -> Result<Value, InvocationError> {
        self.invoke_with(payload, lambda_runtime::Context::default())
            .await
    }

    /// [`Host::invoke`] with the runtime's invocation context (request id,
    /// X-Ray trace) passed on to HTTP requests.
    pub async fn invoke_with(
        &self,
        payload: Value,
        context: lambda_runtime::Context,
    ) -> Result<Value, InvocationError> {
        let event = events::decode(payload)?;
        let not_accepted = |kind| EventError::NotAccepted {
            function: self.function.name(),
            kind,
        };
        match (self.function, event) {
            (_, Event::Sqs(batch)) => {
                let queue = self.function.queue();
                let dead_letters = self.dead_letters.as_deref();
                // Boxed: the handlers' futures nested inside the batch loop
                // are deep enough to overflow rustc's layout query depth in
                // the functions' `main` otherwise.
                let response = Box::pin(sqs::run_batch(queue, batch, dead_letters, |record| {
                    Box::pin(async move { self.process(queue, &record.body, record.attempt).await })
                }))
                .await?;
                Ok(serde_json::to_value(response).unwrap_or_else(|_| json!({})))
            }
            (Function::Trigger, Event::Http(request)) => {
                Ok(self.answer_http(*request, context).await)
            }
            (Function::Trigger, Event::EventBridge(e)) => {
                // The schedule target's Input replaces the whole event; a
                // rule without Input sends the event, whose `detail` then
                // must carry the request.
                let start = StartRun::from_value(e.detail)?;
                let request = start.into_request(Origin::Schedule, &self.front_door.sources)?;
                self.trigger_now(request).await
            }
            (Function::Trigger, Event::Invoke(value)) => {
                if value.to_string().len() > events::MAX_INVOKE_BYTES {
                    return Err(EventError::BadRunRequest(format!(
                        "the payload is over {} bytes",
                        events::MAX_INVOKE_BYTES
                    ))
                    .into());
                }
                let start = StartRun::from_value(value)?;
                let request = start.into_request(Origin::Invoke, &self.front_door.sources)?;
                self.trigger_now(request).await
            }
            (Function::Report, Event::EventBridge(_)) => {
                let outcome =
                    crate::app::handlers::sweep::sweep(&self.ports, &self.settings).await?;
                tracing::info!(
                    errored_shards = outcome.errored_shards.len(),
                    reports_queued = outcome.reports_queued.len(),
                    "sweep done"
                );
                Ok(json!({ "sweep": outcome }))
            }
            (_, event) => Err(not_accepted(event.kind()).into()),
        }
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

    fn front_door_router(&self) -> &Router {
        self.router.get_or_init(|| {
            http::router(FrontDoor::new(
                self.ports.clone(),
                self.settings.clone(),
                self.front_door.clone(),
            ))
        })
    }

    /// A schedule or direct invoke: run the trigger now and answer with
    /// its outcome (no HTTP client is waiting on a 10-second budget).
    async fn trigger_now(&self, mut request: RunRequest) -> Result<Value, InvocationError> {
        let run = *request.run_id.get_or_insert_with(Default::default);
        let span = tracing::info_span!("trigger", run_id = %run, repo = %request.source.repo);
        let outcome = tracing::Instrument::instrument(
            crate::app::handlers::trigger::trigger(&self.ports, &self.settings, request),
            span,
        )
        .await?;
        Ok(outcome_json(&outcome))
    }

    /// One message of this function's queue through its handler.
    pub async fn process(
        &self,
        queue: QueueName,
        body: &str,
        attempt: u32,
    ) -> Result<(), HandlerError> {
        crate::app::handlers::handle_message(&self.ports, &self.settings, queue, body, attempt)
            .await?;
        Ok(())
    }
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
