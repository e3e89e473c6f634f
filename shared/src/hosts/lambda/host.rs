//! Everything a function builds once per process, and the dispatch of one
//! invocation to the library handlers.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::adapters::aws::{AwsBackends, AwsSettings, sdk_config};
use crate::errors::{EventError, HandlerError, HostError, InvocationError, SourceError};
use crate::adapters::github::client::GithubClient;
use crate::adapters::github::config::GithubConfig;
use crate::adapters::github::notifier::GithubNotifier;
use crate::adapters::github::tarball::GithubSource;
use crate::adapters::github::webhook::WebhookConfig;
use crate::app::handlers::trigger::{RunRequest, TriggerOutcome};
use crate::app::handlers::{Ports, Settings};
use crate::hosts::lambda::events::{self, Event};
use crate::hosts::lambda::http::{self, HttpIntake};
use crate::hosts::lambda::request::{SourcePolicy, StartRun};
use crate::hosts::lambda::sqs;
use crate::app::messages::QueueName;
use crate::domain::model::Origin;
use crate::app::ports::{NoNotifier, Notifier, SourceProvider, SystemClock};
use crate::adapters::source::{LocalDirSource, SourceRouter};

/// Environment variables the host reads (besides `backends::aws::env` and
/// the GitHub ones in `github::config`).
pub mod env {
    pub const WORK_ROOT: &str = "TESTEXEC_WORK_ROOT";
    pub const API_TOKEN: &str = "TESTEXEC_API_TOKEN";
    pub const ALLOW_LOCAL_SOURCE: &str = "TESTEXEC_ALLOW_LOCAL_SOURCE";
    pub const PUBLIC_URL: &str = "TESTEXEC_PUBLIC_URL";
    pub const EXECUTE_WAIT_SECS: &str = "TESTEXEC_EXECUTE_WAIT_SECS";
    /// Any of these means GitHub credentials are configured.
    pub const GITHUB_CREDENTIALS: [&str; 3] = [
        "TESTEXEC_GITHUB_APP_ID",
        "TESTEXEC_GITHUB_TOKEN",
        "GITHUB_TOKEN",
    ];
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
    /// The HTTP front door (trigger only).
    pub http: HttpIntake,
    /// Resolves `ref` to a commit for GitHub sources; `None` without
    /// GitHub credentials.
    pub github: Option<Arc<GithubClient>>,
}

fn flag(lookup: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<bool, HostError> {
    match lookup(var).as_deref().map(str::trim) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(crate::errors::ConfigError::Invalid {
            var,
            value: other.to_string(),
            reason: "expected `true` or `false`".into(),
        }
        .into()),
    }
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
        let github_configured = env::GITHUB_CREDENTIALS
            .iter()
            .any(|k| nonempty(k).is_some());
        // Only trigger (source, check run opens) and report (check run
        // completes) talk to GitHub.
        let wants_github = matches!(function, Function::Trigger | Function::Report);
        let github = if github_configured && wants_github {
            Some(Arc::new(GithubClient::new(GithubConfig::from_lookup(
                &lookup,
            )?)?))
        } else {
            None
        };
        let notifier: Arc<dyn Notifier> = match &github {
            Some(client) => Arc::new(GithubNotifier::new(client.clone())),
            None => Arc::new(NoNotifier),
        };
        let source: Arc<dyn SourceProvider> = Arc::new(SourceRouter {
            local: LocalDirSource::default(),
            remote: github
                .as_ref()
                .map(|c| Arc::new(GithubSource::new(c.clone())) as Arc<dyn SourceProvider>),
        });
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
        let webhook = WebhookConfig::from_lookup(&lookup);
        let http = HttpIntake {
            policy: SourcePolicy {
                allowed_repos: webhook.allowed_repos.clone(),
                allow_local: flag(&lookup, env::ALLOW_LOCAL_SOURCE)?,
            },
            webhook,
            api_token: nonempty(env::API_TOKEN).map(crate::adapters::github::auth::Secret::new),
        };
        Ok(Self::new(function, ports, settings, http, github))
    }

    pub fn new(
        function: Function,
        ports: Ports,
        settings: Settings,
        http: HttpIntake,
        github: Option<Arc<GithubClient>>,
    ) -> Self {
        Self {
            function,
            ports,
            settings,
            http,
            github,
        }
    }

    /// Handles one invocation payload: decode, check this function takes
    /// the event, call the handler, shape the answer.
    pub async fn invoke(&self, payload: Value) -> Result<Value, InvocationError> {
        let event = events::decode(payload)?;
        let not_accepted = |kind| EventError::NotAccepted {
            function: self.function.name(),
            kind,
        };
        match (self.function, event) {
            (_, Event::Sqs(batch)) => {
                let queue = self.function.queue();
                let response = sqs::run_batch(queue, batch, |record| async move {
                    self.process(queue, &record.body, record.attempt).await
                })
                .await?;
                Ok(serde_json::to_value(response).unwrap_or_else(|_| json!({})))
            }
            (Function::Trigger, Event::Http(request)) => {
                let response = http::handle(&self.http, self.ports.queue.as_ref(), &request).await;
                Ok(response.to_lambda())
            }
            (Function::Trigger, Event::EventBridge(e)) => {
                // The schedule target's Input replaces the whole event; a
                // rule without Input sends the event, whose `detail` then
                // must carry the request.
                let start = StartRun::from_value(e.detail)?;
                let request = start.into_request(Origin::Schedule, &self.http.policy)?;
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
                let request = start.into_request(Origin::Invoke, &self.http.policy)?;
                self.trigger_now(request).await
            }
            (Function::Report, Event::EventBridge(_)) => {
                let outcome = crate::app::handlers::sweep::sweep(&self.ports, &self.settings).await?;
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

    /// A schedule or direct invoke: run the trigger now and answer with
    /// its outcome (no HTTP client is waiting on a 10-second budget).
    async fn trigger_now(&self, request: RunRequest) -> Result<Value, InvocationError> {
        let outcome = self.start(request).await?;
        Ok(outcome_json(&outcome))
    }

    /// One message of this function's queue through its handler.
    pub async fn process(
        &self,
        queue: QueueName,
        body: &str,
        attempt: u32,
    ) -> Result<(), HandlerError> {
        if queue == QueueName::Requests {
            // Resolving a `ref` to a commit needs GitHub: done here, before
            // the shared trigger handler.
            if let Some(request) = crate::app::handlers::trigger::accept_job(&self.ports, body).await? {
                self.start(request).await?;
            }
            return Ok(());
        }
        crate::app::handlers::handle_message(&self.ports, &self.settings, queue, body, attempt).await?;
        Ok(())
    }

    /// Resolves a GitHub `ref` to a commit, then runs the trigger.
    async fn start(&self, mut request: RunRequest) -> Result<TriggerOutcome, HandlerError> {
        if request.source.path.is_none() && request.source.commit.is_none() {
            let sha = self.resolve_ref(&request).await?;
            request.source.commit = Some(sha);
        }
        let run = request.run_id.unwrap_or_default();
        request.run_id = Some(run);
        let span = tracing::info_span!("trigger", run_id = %run, repo = %request.source.repo);
        tracing::Instrument::instrument(
            crate::app::handlers::trigger::trigger(&self.ports, &self.settings, request),
            span,
        )
        .await
    }

    /// A branch or tag moves; a run pins the commit it names now.
    async fn resolve_ref(&self, request: &RunRequest) -> Result<String, HandlerError> {
        let repo = &request.source.repo;
        let not_found = |detail: String| {
            HandlerError::Source(SourceError::NotFound {
                repo: repo.clone(),
                detail,
            })
        };
        let git_ref = request
            .source
            .git_ref
            .as_deref()
            .ok_or_else(|| not_found("the request names neither a commit nor a ref".into()))?;
        crate::hosts::lambda::request::check_ref(git_ref).map_err(|e| not_found(e.to_string()))?;
        let Some(client) = &self.github else {
            return Err(not_found(
                "resolving a ref needs GitHub credentials (see docs/github.md); or name a `commit`"
                    .into(),
            ));
        };
        let path = format!("/repos/{repo}/commits/{git_ref}");
        let commit = client
            .call(reqwest::Method::GET, &path, repo, None, None)
            .await
            .map_err(|e| match e.status() {
                Some(404 | 422) => not_found(format!("ref `{git_ref}` not found: {e}")),
                _ => HandlerError::Source(SourceError::Backend {
                    backend: "github",
                    source: Box::new(e),
                }),
            })?;
        commit
            .get("sha")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| not_found(format!("GitHub's answer for `{git_ref}` has no sha")))
    }
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
    }
}
