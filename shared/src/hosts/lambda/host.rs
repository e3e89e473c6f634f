//! Everything a function builds once per process, and the dispatch of one
//! invocation to the library handlers.
//!
//! Which function a binary is, is fixed when it is compiled: each
//! `functions/<name>` main runs `run::<Name>()` with one of the
//! [`LambdaFunction`] types below, and [`Host::invoke_as`] calls that
//! function's handler and event sources directly. So the linker keeps only
//! what that function needs: the front door (axum, `lambda_http`) and the
//! trigger handler only in trigger, the GitHub client only in trigger and
//! report, the JUnit reader only in collect, the report writers only in
//! report, the command runner only in execute. [`Host::invoke`] picks the
//! function by value at run time, for tests.

use std::future::Future;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::adapters::aws::{AwsBackends, AwsSettings, lambda_sdk_config};
use crate::adapters::source::{LocalDirSource, SourceRouter};
use crate::app::handlers::{self, Ports, Settings};
use crate::app::messages::QueueName;
use crate::app::ports::{NoNotifier, Notifier, SourceProvider, SystemClock};
use crate::errors::{EventError, HandlerError, HostError, InvocationError};
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

/// The source and notifier ports a function is given.
pub type GithubSide = (Arc<dyn SourceProvider>, Arc<dyn Notifier>);

/// One function, chosen at compile time: its handler, the events it takes
/// besides its queue's SQS batches, and what it needs built at init.
/// Implemented by [`Trigger`] (feature `lambda-http`), [`Execute`],
/// [`Collect`] and [`Report`] (feature `github`).
pub trait LambdaFunction: Send + Sync + 'static {
    const FUNCTION: Function;

    /// The source and notifier ports. By default none that talk to GitHub:
    /// local sources only, nobody to notify.
    fn github(lookup: &dyn Fn(&str) -> Option<String>) -> Result<GithubSide, HostError> {
        let _ = lookup;
        Ok(offline())
    }

    /// Reads what else the function needs (the front door's configuration
    /// for trigger) into the host.
    fn configure(host: Host, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Host, HostError> {
        let _ = lookup;
        Ok(host)
    }

    /// One message of the function's queue through its handler.
    fn process(
        host: &Host,
        body: &str,
        attempt: u32,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// An invocation that is not an SQS batch (HTTP, schedule, direct
    /// invoke). By default refused. (Not `Send`: `lambda_http`'s adapter
    /// future is not, and the runtime polls on one thread.)
    fn other(
        host: &Host,
        event: Event,
        context: lambda_runtime::Context,
    ) -> impl Future<Output = Result<Value, InvocationError>> {
        let _ = (host, context);
        let kind = event.kind();
        std::future::ready(Err(not_accepted(Self::FUNCTION, kind)))
    }
}

fn not_accepted(function: Function, kind: &'static str) -> InvocationError {
    EventError::NotAccepted {
        function: function.name(),
        kind,
    }
    .into()
}

/// The GitHub source and notifier from the function's environment, for
/// the functions that talk to GitHub (trigger, report).
#[cfg(feature = "github")]
pub(crate) fn github_side(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<GithubSide, HostError> {
    let github = crate::adapters::github::GithubPorts::from_lookup(lookup)?;
    Ok((github.source, github.notifier))
}

/// No GitHub: local sources only, nobody to notify.
fn offline() -> GithubSide {
    (
        Arc::new(SourceRouter {
            local: LocalDirSource::default(),
            remote: None,
        }),
        Arc::new(NoNotifier),
    )
}

/// The execute function: shard jobs (SQS).
pub struct Execute;

impl LambdaFunction for Execute {
    const FUNCTION: Function = Function::Execute;

    async fn process(host: &Host, body: &str, attempt: u32) -> Result<(), HandlerError> {
        handlers::execute_message(&host.ports, &host.settings, body, attempt).await?;
        Ok(())
    }
}

/// The collect function: shard results (SQS).
pub struct Collect;

impl LambdaFunction for Collect {
    const FUNCTION: Function = Function::Collect;

    async fn process(host: &Host, body: &str, attempt: u32) -> Result<(), HandlerError> {
        handlers::collect_message(&host.ports, body, attempt).await?;
        Ok(())
    }
}

/// The report function: report jobs (SQS) and the sweep (a schedule);
/// completes check runs on GitHub.
#[cfg(feature = "github")]
pub struct Report;

#[cfg(feature = "github")]
impl LambdaFunction for Report {
    const FUNCTION: Function = Function::Report;

    fn github(lookup: &dyn Fn(&str) -> Option<String>) -> Result<GithubSide, HostError> {
        github_side(lookup)
    }

    async fn process(host: &Host, body: &str, attempt: u32) -> Result<(), HandlerError> {
        handlers::report_message(&host.ports, &host.settings, body, attempt).await?;
        Ok(())
    }

    async fn other(
        host: &Host,
        event: Event,
        _context: lambda_runtime::Context,
    ) -> Result<Value, InvocationError> {
        match event {
            Event::EventBridge(_) => {
                let outcome = handlers::sweep::sweep(&host.ports, &host.settings).await?;
                tracing::info!(
                    errored_shards = outcome.errored_shards.len(),
                    reports_queued = outcome.reports_queued.len(),
                    "sweep done"
                );
                Ok(json!({ "sweep": outcome }))
            }
            event => Err(not_accepted(Self::FUNCTION, event.kind())),
        }
    }
}

/// The trigger function: trigger jobs (SQS), HTTP requests answered by the
/// front door, schedules and direct invokes.
#[cfg(feature = "lambda-http")]
pub use super::trigger::Trigger;

/// A function's clients and settings, built once.
#[derive(Clone)]
pub struct Host {
    pub function: Function,
    pub ports: Ports,
    pub settings: Settings,
    /// The front door's configuration (trigger only): who HTTP requests,
    /// schedules and direct invokes may name.
    #[cfg(feature = "lambda-http")]
    pub front_door: crate::hosts::http::FrontDoorConfig,
    /// The front door's routes, built on the first HTTP request.
    #[cfg(feature = "lambda-http")]
    pub(super) router: std::sync::OnceLock<axum::Router>,
    /// Where permanently failing SQS records go at once (the queue's
    /// redrive target); without it they wait for `maxReceiveCount`.
    dead_letters: Option<Arc<crate::adapters::aws::SqsQueue>>,
}

impl Host {
    /// Builds function `F`'s host from the process environment and the AWS
    /// SDK's standard configuration, with the credentials and region Lambda
    /// puts in the environment taken from there directly
    /// ([`lambda_sdk_config`]).
    pub async fn from_env<F: LambdaFunction>() -> Result<Self, HostError> {
        let lookup = |k: &str| std::env::var(k).ok();
        let aws = AwsSettings::from_env()?;
        let sdk = lambda_sdk_config().await;
        let backends = AwsBackends::new(&sdk, &aws);
        Self::with_backends_as::<F>(backends, &lookup)
    }

    /// Function `F`'s host over already built backends, reading the rest
    /// through `lookup` (tests pass a map).
    pub fn with_backends_as<F: LambdaFunction>(
        backends: AwsBackends,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, HostError> {
        let nonempty = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let (source, notifier) = F::github(lookup)?;
        let dead_letters = backends.queue.clone();
        let ports = Ports {
            store: backends.store,
            blobs: backends.blobs,
            queue: backends.queue,
            source,
            notifier,
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
        let mut host = F::configure(Self::new(F::FUNCTION, ports, settings), lookup)?;
        host.dead_letters = Some(dead_letters);
        Ok(host)
    }

    /// [`Host::with_backends_as`] for a function named at run time (tests,
    /// tools). Links every function this build has.
    pub fn with_backends(
        function: Function,
        backends: AwsBackends,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, HostError> {
        match function {
            #[cfg(feature = "lambda-http")]
            Function::Trigger => Self::with_backends_as::<Trigger>(backends, &lookup),
            Function::Execute => Self::with_backends_as::<Execute>(backends, &lookup),
            Function::Collect => Self::with_backends_as::<Collect>(backends, &lookup),
            #[cfg(feature = "github")]
            Function::Report => Self::with_backends_as::<Report>(backends, &lookup),
            #[allow(unreachable_patterns)]
            other => Err(HostError::NotBuilt(other.name())),
        }
    }

    /// A host over given ports, without a front door configuration (add
    /// one with `with_front_door`) or a dead-letter queue.
    pub fn new(function: Function, ports: Ports, settings: Settings) -> Self {
        Self {
            function,
            ports,
            settings,
            #[cfg(feature = "lambda-http")]
            front_door: Default::default(),
            #[cfg(feature = "lambda-http")]
            router: std::sync::OnceLock::new(),
            dead_letters: None,
        }
    }

    /// Handles one invocation payload as this host's function: decode,
    /// check this function takes the event, call the handler, shape the
    /// answer. Picks the function at run time; a function's binary calls
    /// [`Host::invoke_as`].
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
        match self.function {
            #[cfg(feature = "lambda-http")]
            Function::Trigger => self.invoke_as::<Trigger>(payload, context).await,
            Function::Execute => self.invoke_as::<Execute>(payload, context).await,
            Function::Collect => self.invoke_as::<Collect>(payload, context).await,
            #[cfg(feature = "github")]
            Function::Report => self.invoke_as::<Report>(payload, context).await,
            #[allow(unreachable_patterns)]
            other => Err(not_accepted(
                other,
                "any event (not built: see HostError::NotBuilt)",
            )),
        }
    }

    /// One invocation as function `F`: its SQS batches through its
    /// handler, anything else to [`LambdaFunction::other`].
    pub async fn invoke_as<F: LambdaFunction>(
        &self,
        payload: Value,
        context: lambda_runtime::Context,
    ) -> Result<Value, InvocationError> {
        match events::decode(payload)? {
            Event::Sqs(batch) => {
                let queue = F::FUNCTION.queue();
                let dead_letters = self.dead_letters.as_deref();
                // Boxed: the handlers' futures nested inside the batch loop
                // are deep enough to overflow rustc's layout query depth in
                // the functions' `main` otherwise.
                let response = Box::pin(sqs::run_batch(queue, batch, dead_letters, |record| {
                    Box::pin(async move { F::process(self, &record.body, record.attempt).await })
                }))
                .await?;
                Ok(serde_json::to_value(response).unwrap_or_else(|_| json!({})))
            }
            event => Box::pin(F::other(self, event, context)).await,
        }
    }

    /// One message of `queue` through its handler, whichever it is (the
    /// in-process dispatch, [`handlers::handle_message`]).
    pub async fn process(
        &self,
        queue: QueueName,
        body: &str,
        attempt: u32,
    ) -> Result<(), HandlerError> {
        handlers::handle_message(&self.ports, &self.settings, queue, body, attempt).await?;
        Ok(())
    }
}
