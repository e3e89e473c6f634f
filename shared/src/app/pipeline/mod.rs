//! The whole pipeline in one process: worker tasks that pump the queues
//! through the same handlers the cloud runs, over any backend set.
//!
//! [`Pipeline`] is generic: it takes the handlers' [`Ports`] and a
//! [`QueueConsumer`] for the same queues, so it runs over the embedded
//! backends ([`LocalPipeline`], what `testexec run` and `testexec serve`
//! use) as well as over DynamoDB + S3 + SQS (a polling worker, and the
//! handler suite in `shared/tests/pipeline.rs`).
//!
//! Workers acknowledge a message only after its handler succeeded; a failure
//! releases it at once (at-least-once; on SQS this skips the wait for the
//! visibility timeout), and a message that keeps failing ends in the queue's
//! dead letters, where the sweep's finalisation takes over.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::app::handlers::collect::CollectOutcome;
use crate::app::handlers::report::ReportOutcome;
use crate::app::handlers::sweep::{SweepOutcome, sweep_at};
use crate::app::handlers::trigger::{TriggerOutcome, trigger};
use crate::app::handlers::{Handled, Ports, Settings, handle_message};
use crate::app::messages::RunRequest;
use crate::app::messages::{Execution, QueueName, ShardResult};
use crate::app::ports::QueueConsumer;
use crate::domain::model::{Run, RunId, ShardId};
use crate::errors::HandlerError;

#[cfg(feature = "local")]
mod local;
#[cfg(feature = "local")]
pub use local::LocalPipeline;

/// How long one receive waits. Long enough to not spin on an empty queue,
/// short enough that SQS long polling (whole seconds) stays responsive.
const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// Pause after a failed receive (a backend outage), so a worker does not
/// hammer it.
const RECEIVE_ERROR_BACKOFF: Duration = Duration::from_millis(500);
/// Renewals of a lease come no faster than this, however short the
/// visibility timeout (tests use sub-second ones).
const MIN_LEASE_RENEWAL: Duration = Duration::from_millis(100);

/// Default of [`Pipeline::with_idle_grace`]: enough for exact counts (the
/// local queue, moto).
const DEFAULT_IDLE_GRACE: Duration = Duration::from_millis(500);

/// Events a slow subscriber may lag behind before it misses some.
const EVENT_CAPACITY: usize = 4096;

/// How often [`Pipeline::wait_for`] looks at the run and the queues.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// When a worker stops on its own (besides its stop signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkLimits {
    /// Stop after taking this many messages (`testexec worker --max-jobs`).
    pub max_jobs: Option<u64>,
    /// Stop at the first receive that finds nothing (`--once`: one job
    /// per container, for Container Apps jobs and KEDA `ScaledJob`s).
    pub exit_when_empty: bool,
    /// How long one receive waits.
    pub wait: Duration,
}

impl Default for WorkLimits {
    fn default() -> Self {
        Self {
            max_jobs: None,
            exit_when_empty: false,
            wait: RECEIVE_WAIT,
        }
    }
}

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

/// The handlers, their ports and settings, and the consumer that feeds them.
/// Cheap to clone (everything is shared).
#[derive(Clone)]
pub struct Pipeline {
    pub ports: Ports,
    pub settings: Settings,
    consumer: Arc<dyn QueueConsumer>,
    idle_grace: Duration,
    events: broadcast::Sender<PipelineEvent>,
}

impl Pipeline {
    /// `consumer` must read the queues `ports.queue` sends to.
    pub fn new(ports: Ports, settings: Settings, consumer: Arc<dyn QueueConsumer>) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Self {
            ports,
            settings,
            consumer,
            idle_grace: DEFAULT_IDLE_GRACE,
            events,
        }
    }

    /// How long the queues must look idle before [`Pipeline::wait_for`]
    /// sweeps an open run. Real SQS reports approximate counts that can lag
    /// by up to a minute, so a host over it should wait a minute or more;
    /// sweeping too early errors shards that are still on their way.
    pub fn with_idle_grace(mut self, grace: Duration) -> Self {
        self.idle_grace = grace;
        self
    }

    /// The same pipeline reading its queues through another consumer (e.g. a
    /// fault-injecting wrapper of the current one). Event subscribers of the
    /// original do not see the new pipeline's events.
    pub fn with_consumer(&self, consumer: Arc<dyn QueueConsumer>) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Self {
            consumer,
            events,
            ..self.clone()
        }
    }

    pub fn consumer(&self) -> &Arc<dyn QueueConsumer> {
        &self.consumer
    }

    pub fn subscribe(&self) -> broadcast::Receiver<PipelineEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: PipelineEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    /// Starts `executors` shard workers plus one worker each for the
    /// requests, results and reports queues. They run until the returned
    /// handles are aborted.
    pub fn spawn_workers(&self, executors: usize) -> Vec<JoinHandle<()>> {
        // Never stopped: the sender lives as long as the workers do.
        let (stop_tx, stop) = watch::channel(false);
        let handles = self.spawn_workers_until(executors, stop);
        let keep = tokio::spawn(async move {
            stop_tx.closed().await;
        });
        handles.into_iter().chain([keep]).collect()
    }

    /// Like [`Pipeline::spawn_workers`], but each worker finishes the
    /// message in hand and returns once `stop` turns true (a host's
    /// graceful shutdown: nothing is cut off mid-handler unless the host's
    /// own grace runs out, and then the message comes back to the queue).
    pub fn spawn_workers_until(
        &self,
        executors: usize,
        stop: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let queues = std::iter::repeat_n(QueueName::Shards, executors.max(1)).chain([
            QueueName::Requests,
            QueueName::Results,
            QueueName::Reports,
        ]);
        queues
            .map(|queue| {
                let me = self.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    me.work(queue, WorkLimits::default(), stop).await;
                })
            })
            .collect()
    }

    /// Takes and handles messages of `queue` until `stop` turns true or
    /// `limits` say enough; returns how many messages were taken. Acks a
    /// message only after its handler succeeded; a failure releases it.
    pub async fn work(
        &self,
        queue: QueueName,
        limits: WorkLimits,
        stop: watch::Receiver<bool>,
    ) -> u64 {
        let mut taken = 0u64;
        while !*stop.borrow() && limits.max_jobs.is_none_or(|max| taken < max) {
            let delivery = match self.consumer.receive(queue, limits.wait).await {
                Ok(Some(delivery)) => delivery,
                Ok(None) if limits.exit_when_empty => break,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(queue = queue.as_str(), error = %error, "receive failed; retrying");
                    tokio::time::sleep(RECEIVE_ERROR_BACKOFF).await;
                    continue;
                }
            };
            taken += 1;
            let handled = self.holding_lease(
                queue,
                &delivery.handle,
                self.handle(queue, &delivery.body, delivery.attempt),
            );
            let settled = match handled.await {
                Ok(()) => self.consumer.ack(queue, &delivery.handle).await,
                Err(error) if error.is_permanent() => {
                    // No retry can help (an undecodable body, an unknown
                    // version): dead letters at once, with the reason.
                    tracing::error!(queue = queue.as_str(), attempt = delivery.attempt, error = %error, "handler failed permanently; message moved to the dead letters");
                    self.emit(PipelineEvent::HandlerFailed {
                        queue,
                        error: error.to_string(),
                    });
                    self.consumer
                        .dead_letter(queue, &delivery, &error.to_string())
                        .await
                }
                Err(error) => {
                    tracing::warn!(queue = queue.as_str(), attempt = delivery.attempt, error = %error, "handler failed; message returns to the queue");
                    self.emit(PipelineEvent::HandlerFailed {
                        queue,
                        error: error.to_string(),
                    });
                    self.consumer.release(queue, &delivery.handle).await
                }
            };
            if let Err(error) = settled {
                // Not fatal: an unacked message comes back after its
                // visibility timeout, and every handler is idempotent.
                tracing::warn!(queue = queue.as_str(), error = %error, "could not ack/release a message; it will be redelivered");
            }
        }
        taken
    }

    /// Runs `work` while renewing the lease on the message in hand every
    /// third of the queue's visibility timeout, so a shard that runs longer
    /// than the timeout is not handed to a second worker. If this process
    /// dies, the renewals stop and the message comes back as before.
    async fn holding_lease<T>(
        &self,
        queue: QueueName,
        handle: &str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let every = (self.consumer.visibility(queue) / 3).max(MIN_LEASE_RENEWAL);
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = renew.tick() => {
                    if let Err(error) = self.consumer.extend(queue, handle).await {
                        // The next tick tries again; if every renewal fails the
                        // message is redelivered, which handlers tolerate.
                        tracing::warn!(queue = queue.as_str(), error = %error, "could not renew a message's lease");
                    }
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
        if queue == QueueName::Shards {
            if let Ok(envelope) = serde_json::from_str::<crate::app::messages::JobEnvelope>(body) {
                self.emit(PipelineEvent::ShardStarted {
                    shard: envelope.shard(),
                    attempt,
                });
            }
        }
        match handle_message(&self.ports, &self.settings, queue, body, attempt).await? {
            Handled::Executed(ShardResult {
                shard,
                attempt,
                execution,
                ..
            }) => self.emit(PipelineEvent::ShardExecuted {
                shard,
                attempt,
                execution,
            }),
            Handled::Collected {
                shard: Some(shard),
                outcome,
            } => self.emit(PipelineEvent::ShardCollected { shard, outcome }),
            Handled::Reported(outcome) => self.emit(PipelineEvent::RunReported { outcome }),
            Handled::Collected { shard: None, .. } | Handled::Triggered(_) => {}
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
        let mut idle_since: Option<tokio::time::Instant> = None;
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
            // A failed idleness check counts as busy: sweeping a run whose
            // shards are still on their way would error them wrongly.
            let idle = match self.consumer.is_idle().await {
                Ok(idle) => idle,
                Err(error) => {
                    tracing::warn!(error = %error, "could not tell whether the queues are idle");
                    false
                }
            };
            let now = tokio::time::Instant::now();
            idle_since = if idle { idle_since.or(Some(now)) } else { None };
            if idle_since.is_some_and(|since| now - since >= self.idle_grace) {
                self.sweep_now().await?;
                idle_since = None;
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// Sets the queue-depth gauges from the consumer's counts, where its
    /// backend can tell them (hosts with a metrics exporter call this on a
    /// timer).
    pub async fn record_backlog(&self) {
        for queue in QueueName::ALL {
            match self.consumer.backlog(queue).await {
                Ok(Some(b)) => crate::app::metrics::queue_backlog(
                    queue,
                    b.waiting,
                    b.in_flight,
                    b.dead_letters,
                ),
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(queue = queue.as_str(), error = %error, "queue backlog unknown");
                }
            }
        }
    }

    /// Sweeps as if every deadline had passed.
    pub async fn sweep_now(&self) -> Result<SweepOutcome, HandlerError> {
        sweep_at(&self.ports, &self.settings, u64::MAX).await
    }
}
