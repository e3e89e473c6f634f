//! The four handlers (plus the sweep), pure over the ports.
//!
//! Each takes [`Ports`] and a decoded input, does its one job and returns
//! what happened. Hosts (Lambda functions, `testexec run`, `testexec serve`,
//! Cloud Run, Container Apps) only decode events, call these and acknowledge.
//! No cloud SDK type appears here.

use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::app::messages::MESSAGE_VERSION;
use crate::app::ports::{BlobStore, Clock, JobQueue, Notifier, RunStore, SourceProvider};
use crate::errors::HandlerError;

pub mod collect;
pub mod execute;
pub mod history;
pub mod report;
pub mod sweep;
pub mod trigger;

/// The outside world as the handlers see it. Cheap to clone.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn RunStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn JobQueue>,
    pub source: Arc<dyn SourceProvider>,
    pub notifier: Arc<dyn Notifier>,
    pub clock: Arc<dyn Clock>,
}

/// Knobs that differ per host, with defaults that suit all of them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Scratch space for checkouts and shard working directories.
    pub work_root: PathBuf,
    /// Environment variables passed from the worker to test commands.
    pub passthrough_env: Vec<String>,
    /// Head and tail kept of each shard's log.
    pub log_head_bytes: usize,
    pub log_tail_bytes: usize,
    /// Upper bound on shards per run, whatever the manifest asks.
    pub max_shards: u32,
    /// How long after its deadline a run with silent shards is swept.
    pub sweep_grace_ms: u64,
    /// How long a webhook delivery id is remembered.
    pub delivery_ttl_ms: u64,
    /// Public base URL of the host's pages (e.g. `https://ci.example.com`):
    /// report links then point there instead of at blob-store paths, which
    /// mean nothing on GitHub.
    pub public_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            work_root: std::env::temp_dir().join("testexec"),
            passthrough_env: crate::adapters::process::DEFAULT_PASSTHROUGH_ENV
                .iter()
                .map(|s| s.to_string())
                .collect(),
            log_head_bytes: 1 << 20,
            log_tail_bytes: 1 << 20,
            max_shards: 1000,
            sweep_grace_ms: 5 * 60 * 1000,
            delivery_ttl_ms: 3 * 24 * 3600 * 1000,
            public_url: None,
        }
    }
}

/// What one queue message did, for hosts that show progress.
#[derive(Debug)]
pub enum Handled {
    Executed(crate::app::messages::ShardResult),
    Collected {
        /// `None` only if the body did not name a shard (it then failed).
        shard: Option<crate::domain::model::ShardId>,
        outcome: collect::CollectOutcome,
    },
    Reported(Box<report::ReportOutcome>),
    /// `None`: a redelivered trigger job whose run already exists.
    Triggered(Option<trigger::TriggerOutcome>),
}

/// Runs one message of `queue` through its handler: the one dispatch every
/// host that consumes several queues shares (the in-process pipeline, a
/// polling worker). A host that serves one queue only (a Lambda function)
/// calls that queue's function below directly, so its binary links only
/// that handler.
pub async fn handle_message(
    ports: &Ports,
    settings: &Settings,
    queue: crate::app::messages::QueueName,
    body: &str,
    attempt: u32,
) -> Result<Handled, HandlerError> {
    use crate::app::messages::QueueName;
    match queue {
        QueueName::Shards => execute_message(ports, settings, body, attempt).await,
        QueueName::Results => collect_message(ports, body, attempt).await,
        QueueName::Reports => report_message(ports, settings, body, attempt).await,
        QueueName::Requests => trigger_message(ports, settings, body, attempt).await,
    }
}

/// One message of the shards queue through execute, counted.
pub async fn execute_message(
    ports: &Ports,
    settings: &Settings,
    body: &str,
    attempt: u32,
) -> Result<Handled, HandlerError> {
    let handled = execute::execute(ports, settings, body, attempt)
        .await
        .map(Handled::Executed);
    counted(crate::app::messages::QueueName::Shards, attempt, handled)
}

/// One message of the results queue through collect, counted.
pub async fn collect_message(
    ports: &Ports,
    body: &str,
    attempt: u32,
) -> Result<Handled, HandlerError> {
    let shard = serde_json::from_str::<crate::app::messages::ShardResult>(body)
        .map(|r| r.shard)
        .ok();
    let handled = collect::collect(ports, body)
        .await
        .map(|outcome| Handled::Collected { shard, outcome });
    counted(crate::app::messages::QueueName::Results, attempt, handled)
}

/// One message of the reports queue through report, counted.
pub async fn report_message(
    ports: &Ports,
    settings: &Settings,
    body: &str,
    attempt: u32,
) -> Result<Handled, HandlerError> {
    let handled = report::report(ports, settings, body)
        .await
        .map(|outcome| Handled::Reported(Box::new(outcome)));
    counted(crate::app::messages::QueueName::Reports, attempt, handled)
}

/// One message of the requests queue through trigger, counted.
pub async fn trigger_message(
    ports: &Ports,
    settings: &Settings,
    body: &str,
    attempt: u32,
) -> Result<Handled, HandlerError> {
    let handled = match trigger::accept_job(ports, body).await {
        Ok(Some(request)) => trigger::trigger_job(ports, settings, request)
            .await
            .map(|outcome| Handled::Triggered(Some(outcome))),
        Ok(None) => Ok(Handled::Triggered(None)),
        Err(e) => Err(e),
    };
    counted(crate::app::messages::QueueName::Requests, attempt, handled)
}

/// Counts a handled message (`app::metrics::message_handled`).
fn counted(
    queue: crate::app::messages::QueueName,
    attempt: u32,
    handled: Result<Handled, HandlerError>,
) -> Result<Handled, HandlerError> {
    use crate::app::metrics::{MessageResult, message_handled};
    let result = match &handled {
        Ok(_) => MessageResult::Ok,
        Err(e) if e.is_permanent() => MessageResult::Permanent,
        Err(_) => MessageResult::Failed,
    };
    message_handled(queue, attempt, result);
    handled
}

/// Decodes a versioned JSON message, naming what it was meant to be.
pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    body: &str,
) -> Result<T, HandlerError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        v: Option<u32>,
    }
    // Check the version first so an old or future message gets a precise
    // error rather than a confusing field mismatch.
    if let Ok(Versioned { v: Some(found) }) = serde_json::from_str::<Versioned>(body) {
        if found != MESSAGE_VERSION {
            return Err(HandlerError::UnsupportedVersion {
                found,
                supported: MESSAGE_VERSION,
            });
        }
    }
    serde_json::from_str(body).map_err(|e| HandlerError::BadMessage {
        what,
        detail: e.to_string(),
    })
}

pub(crate) fn encode<T: serde::Serialize>(message: &T) -> String {
    // Serialising our own plain structs cannot fail.
    serde_json::to_string(message).expect("messages serialise")
}

/// A temporary directory under the work root, removed when dropped.
pub(crate) fn scratch_dir(
    settings: &Settings,
    prefix: &str,
) -> Result<tempfile::TempDir, HandlerError> {
    std::fs::create_dir_all(&settings.work_root).map_err(|source| HandlerError::Io {
        context: format!("creating work root {}", settings.work_root.display()),
        source,
    })?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&settings.work_root)
        .map_err(|source| HandlerError::Io {
            context: format!(
                "creating a scratch directory in {}",
                settings.work_root.display()
            ),
            source,
        })
}
