//! The whole pipeline in one process: embedded backends, and worker tasks
//! that pump the local queues through the same handlers the cloud runs.
//!
//! `testexec run` and `testexec serve` are thin shells over this. Workers
//! acknowledge a message only after its handler succeeded; a failure puts it
//! back (at-least-once, like SQS), and a message that keeps failing ends in
//! the queue's dead letters, where the sweep's finalisation takes over.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::backends::local::{FsBlobStore, LocalQueue, QueueConfig, SqliteRunStore};
use crate::errors::HandlerError;
use crate::handlers::collect::{CollectOutcome, collect};
use crate::handlers::execute::execute;
use crate::handlers::report::{ReportOutcome, report};
use crate::handlers::sweep::{SweepOutcome, sweep_at};
use crate::handlers::trigger::{RunRequest, TriggerOutcome, trigger};
use crate::handlers::{Ports, Settings};
use crate::messages::{Execution, QueueName, ShardResult};
use crate::model::{Run, RunId, ShardId};
use crate::ports::{Notifier, SourceProvider, SystemClock};
use crate::source::{LocalDirSource, SourceRouter};

/// What the workers report as they go, for progress bars and logs.
#[derive(Debug, Clone)]
pub enum PipelineEvent {
    ShardStarted {
        shard: ShardId,
        attempt: u32,
    },
    ShardExecuted {
        shard: ShardId,
        attempt: u32,
        execution: Execution,
    },
    ShardCollected {
        shard: ShardId,
        outcome: CollectOutcome,
    },
    RunReported {
        outcome: Box<ReportOutcome>,
    },
    /// A handler failed; the message goes back to its queue.
    HandlerFailed {
        queue: QueueName,
        error: String,
    },
}

/// The embedded backends, the queue and the settings of one state directory.
#[derive(Clone)]
pub struct LocalPipeline {
    pub ports: Ports,
    pub queue: Arc<LocalQueue>,
    pub store: Arc<SqliteRunStore>,
    pub blobs: Arc<FsBlobStore>,
    pub settings: Settings,
    pub state_dir: PathBuf,
    events: broadcast::Sender<PipelineEvent>,
}

impl LocalPipeline {
    /// Opens (or creates) the state under `state_dir` (usually `.testexec/`).
    pub fn open(state_dir: &Path, notifier: Arc<dyn Notifier>) -> Result<Self, HandlerError> {
        // In one process a delivery is only lost when its worker task dies;
        // a long visibility timeout keeps a slow shard from being run twice
        // while it is still running (SQS hosts set it to 6x the timeout).
        let config = QueueConfig {
            visibility_timeout: Duration::from_secs(6 * 3600),
            ..QueueConfig::default()
        };
        Self::open_with(state_dir, notifier, config)
    }

    /// Like [`LocalPipeline::open`] with explicit queue settings (tests use
    /// short visibility timeouts to exercise redelivery).
    pub fn open_with(
        state_dir: &Path,
        notifier: Arc<dyn Notifier>,
        config: QueueConfig,
    ) -> Result<Self, HandlerError> {
        std::fs::create_dir_all(state_dir).map_err(|source| HandlerError::Io {
            context: format!("creating {}", state_dir.display()),
            source,
        })?;
        let store = Arc::new(SqliteRunStore::open(state_dir.join("runs.sqlite3"))?);
        let blobs = Arc::new(FsBlobStore::new(state_dir.join("blobs"))?);
        let queue = Arc::new(LocalQueue::new(config));
        let settings = Settings {
            work_root: state_dir.join("work"),
            ..Settings::default()
        };
        let ports = Ports {
            store: store.clone(),
            blobs: blobs.clone(),
            queue: queue.clone(),
            source: Arc::new(LocalDirSource::default()),
            notifier,
            clock: Arc::new(SystemClock),
        };
        let (events, _) = broadcast::channel(4096);
        Ok(Self {
            ports,
            queue,
            store,
            blobs,
            settings,
            state_dir: state_dir.to_path_buf(),
            events,
        })
    }

    /// Report links point at this public base URL (see `Settings::public_url`).
    pub fn with_public_url(mut self, url: Option<String>) -> Self {
        self.settings.public_url = url;
        self
    }

    /// Fetches sources without a local path (webhook runs) from `remote`.
    pub fn with_remote_source(mut self, remote: Arc<dyn SourceProvider>) -> Self {
        self.ports.source = Arc::new(SourceRouter {
            local: LocalDirSource::default(),
            remote: Some(remote),
        });
        self
    }

    pub fn subscribe(&self) -> broadcast::Receiver<PipelineEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: PipelineEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    /// Starts `executors` shard workers plus one collector and one reporter.
    /// They run until the returned handles are aborted.
    pub fn spawn_workers(&self, executors: usize) -> Vec<JoinHandle<()>> {
        let mut handles = Vec::new();
        for _ in 0..executors.max(1) {
            let me = self.clone();
            handles.push(tokio::spawn(
                async move { me.work(QueueName::Shards).await },
            ));
        }
        for queue in [QueueName::Results, QueueName::Reports] {
            let me = self.clone();
            handles.push(tokio::spawn(async move { me.work(queue).await }));
        }
        handles
    }

    async fn work(&self, queue: QueueName) {
        loop {
            let Some(delivery) = self.queue.receive_wait(queue, Duration::from_secs(1)).await
            else {
                continue;
            };
            match self.handle(queue, &delivery.body, delivery.attempt).await {
                Ok(()) => self.queue.ack(queue, delivery.id),
                Err(error) => {
                    tracing::warn!(queue = queue.as_str(), error = %error, "handler failed; message returns to the queue");
                    self.emit(PipelineEvent::HandlerFailed {
                        queue,
                        error: error.to_string(),
                    });
                    self.queue.nack(queue, delivery.id);
                }
            }
        }
    }

    /// Runs one message through its handler.
    pub async fn handle(
        &self,
        queue: QueueName,
        body: &str,
        attempt: u32,
    ) -> Result<(), HandlerError> {
        match queue {
            QueueName::Shards => {
                if let Ok(envelope) = serde_json::from_str::<crate::messages::JobEnvelope>(body) {
                    self.emit(PipelineEvent::ShardStarted {
                        shard: envelope.shard(),
                        attempt,
                    });
                }
                let ShardResult {
                    shard,
                    attempt,
                    execution,
                    ..
                } = execute(&self.ports, &self.settings, body, attempt).await?;
                self.emit(PipelineEvent::ShardExecuted {
                    shard,
                    attempt,
                    execution,
                });
            }
            QueueName::Results => {
                let shard = serde_json::from_str::<ShardResult>(body)
                    .map(|r| r.shard)
                    .ok();
                let outcome = collect(&self.ports, body).await?;
                if let Some(shard) = shard {
                    self.emit(PipelineEvent::ShardCollected { shard, outcome });
                }
            }
            QueueName::Reports => {
                let outcome = report(&self.ports, &self.settings, body).await?;
                self.emit(PipelineEvent::RunReported {
                    outcome: Box::new(outcome),
                });
            }
            QueueName::Requests => {
                let job: crate::messages::TriggerJob =
                    crate::handlers::decode("trigger job", body)?;
                trigger(&self.ports, &self.settings, job.request).await?;
            }
        }
        Ok(())
    }

    pub async fn trigger(&self, request: RunRequest) -> Result<TriggerOutcome, HandlerError> {
        trigger(&self.ports, &self.settings, request).await
    }

    /// Waits until the run is final. When every queue is idle and the run is
    /// still open, its remaining shards can never report (their messages
    /// dead-lettered), so it is swept at once instead of at its deadline.
    pub async fn wait_for(&self, run: RunId) -> Result<Run, HandlerError> {
        let mut idle_rounds = 0;
        loop {
            let current =
                self.ports
                    .store
                    .get_run(run)
                    .await?
                    .ok_or_else(|| HandlerError::UnknownRun {
                        run: run.to_string(),
                    })?;
            if current.status.is_final() {
                return Ok(current);
            }
            idle_rounds = if self.queue.is_idle() {
                idle_rounds + 1
            } else {
                0
            };
            if idle_rounds >= 5 {
                self.sweep_now().await?;
                idle_rounds = 0;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sweeps as if every deadline had passed.
    pub async fn sweep_now(&self) -> Result<SweepOutcome, HandlerError> {
        sweep_at(&self.ports, &self.settings, u64::MAX).await
    }
}
