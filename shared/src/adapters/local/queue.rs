//! An in-process, at-least-once queue per [`QueueName`], with the failure
//! modes of SQS made reproducible for tests.
//!
//! Semantics (the same ones the pipeline relies on in SQS):
//! - A received message is *in flight* under a fresh delivery id until it is
//!   acked. If it is not acked within the visibility timeout (the consumer
//!   crashed or hung) it becomes visible again and its next delivery has
//!   `attempt + 1`. `nack` makes it visible again at once.
//! - A message whose delivery failed `max_receives` times (nacked or timed
//!   out) moves to the queue's dead-letter list instead of coming back.
//! - Order is FIFO among visible messages, but redelivered messages go to the
//!   back, so consumers must not rely on order (nor does the pipeline).
//!
//! Fault injection ([`FaultPlan`], [`LocalQueue::inject`]) is deterministic:
//! duplicates and crashes apply to the next N receives of a queue, and
//! reordering is a seeded shuffle of the messages visible at that moment.
//!
//! Visibility deadlines use `tokio::time::Instant`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::app::messages::QueueName;
use crate::app::ports::JobQueue;
use crate::errors::QueueError;

/// Longest visibility timeout (SQS's limit is 12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// Longest single `receive_wait`; longer requests are capped to it.
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Tunables of a [`LocalQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// How long a received message stays invisible before it is redelivered
    /// (capped at [`MAX_VISIBILITY`]).
    pub visibility_timeout: Duration,
    /// Deliveries a message gets before it is dead-lettered (at least 1).
    pub max_receives: u32,
}

impl Default for QueueConfig {
    /// SQS's defaults for a queue with a redrive policy of 5.
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_receives: 5,
        }
    }
}

/// One delivery of a message to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Identifies this delivery (not the message) for `ack`/`nack`, like an
    /// SQS receipt handle: after a redelivery the old id no longer acks.
    pub id: u64,
    pub body: String,
    /// 1-based receive count of the message (SQS `ApproximateReceiveCount`).
    pub attempt: u32,
}

/// Faults to inject into one queue. Counts add up across calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// The next N received messages are each delivered twice: the copy comes
    /// right after the original, with the same body and attempt number, and
    /// must be acked on its own (as with SQS's at-least-once duplicates).
    pub duplicate_next: u32,
    /// The next N deliveries go to a consumer that "crashes": they are taken
    /// in flight but never returned, so they reappear with `attempt + 1`
    /// after the visibility timeout. `receive` moves on to the next message.
    pub crash_next: u32,
    /// Shuffle the currently visible messages with this seed (Fisher–Yates
    /// over SplitMix64; the same seed and contents give the same order).
    pub reorder_seed: Option<u64>,
}

#[derive(Debug, Clone)]
struct Message {
    body: String,
    /// Deliveries so far.
    receives: u32,
    /// An injected duplicate, which is not itself duplicated again.
    copy: bool,
}

#[derive(Debug)]
struct InFlight {
    message: Message,
    visible_at: Instant,
}

#[derive(Debug, Default)]
struct Queue {
    ready: VecDeque<Message>,
    in_flight: BTreeMap<u64, InFlight>,
    dead: Vec<Message>,
    duplicate_next: u32,
    crash_next: u32,
}

impl Queue {
    /// Makes timed-out deliveries visible again (or dead-letters them).
    fn reap(&mut self, now: Instant, max_receives: u32) {
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.visible_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(f) = self.in_flight.remove(&id) {
                self.requeue(f.message, max_receives);
            }
        }
    }

    fn requeue(&mut self, message: Message, max_receives: u32) {
        if message.receives >= max_receives {
            self.dead.push(message);
        } else {
            self.ready.push_back(message);
        }
    }
}

#[derive(Debug, Default)]
struct State {
    queues: [Queue; 4],
    next_delivery: u64,
}

/// The local host's queues. Share it behind an `Arc`.
#[derive(Debug)]
pub struct LocalQueue {
    state: Mutex<State>,
    /// One per queue; woken on send and nack.
    notify: [Notify; 4],
    config: QueueConfig,
}

fn slot(queue: QueueName) -> usize {
    match queue {
        QueueName::Shards => 0,
        QueueName::Results => 1,
        QueueName::Reports => 2,
        QueueName::Requests => 3,
    }
}

impl Default for LocalQueue {
    /// Queues with [`QueueConfig::default`] (30 s visibility, 5 receives).
    fn default() -> Self {
        Self::new(QueueConfig::default())
    }
}

impl LocalQueue {
    pub fn new(config: QueueConfig) -> Self {
        let config = QueueConfig {
            max_receives: config.max_receives.max(1),
            // SQS's own ceiling; it also keeps `now + timeout` from overflowing.
            visibility_timeout: config.visibility_timeout.min(MAX_VISIBILITY),
        };
        Self {
            state: Mutex::new(State::default()),
            notify: Default::default(),
            config,
        }
    }

    pub fn config(&self) -> QueueConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements; poison carries no risk.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the next visible message, if any, without waiting.
    pub fn receive(&self, queue: QueueName) -> Option<Delivery> {
        let now = Instant::now();
        let mut state = self.lock();
        let State {
            queues,
            next_delivery,
        } = &mut *state;
        let q = &mut queues[slot(queue)];
        q.reap(now, self.config.max_receives);
        loop {
            let mut message = q.ready.pop_front()?;
            if q.duplicate_next > 0 && !message.copy {
                q.duplicate_next -= 1;
                // Same receive count, so the copy is delivered with the
                // same attempt number as the original.
                q.ready.push_front(Message {
                    copy: true,
                    ..message.clone()
                });
            }
            message.copy = false;
            message.receives += 1;
            *next_delivery += 1;
            let id = *next_delivery;
            let delivery = Delivery {
                id,
                body: message.body.clone(),
                attempt: message.receives,
            };
            q.in_flight.insert(
                id,
                InFlight {
                    message,
                    visible_at: now + self.config.visibility_timeout,
                },
            );
            if q.crash_next > 0 {
                q.crash_next -= 1;
                continue;
            }
            return Some(delivery);
        }
    }

    /// Waits up to `timeout` for a message: wakes on send, on nack, and when
    /// an in-flight message's visibility timeout ends.
    pub async fn receive_wait(&self, queue: QueueName, timeout: Duration) -> Option<Delivery> {
        // `Duration::MAX` means "wait as long as it takes", not a panic.
        let deadline = Instant::now() + timeout.min(MAX_WAIT);
        let notify = &self.notify[slot(queue)];
        loop {
            // Register interest before looking, so a send between the look
            // and the wait is not missed.
            let mut notified = std::pin::pin!(notify.notified());
            notified.as_mut().enable();
            if let Some(delivery) = self.receive(queue) {
                return Some(delivery);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let next_visible = {
                let state = self.lock();
                state.queues[slot(queue)]
                    .in_flight
                    .values()
                    .map(|f| f.visible_at)
                    .min()
            };
            let wake = next_visible.map_or(deadline, |t| t.min(deadline));
            let _ = tokio::time::timeout_at(wake, notified).await;
        }
    }

    /// Acknowledges a delivery: the message is gone. An unknown or stale id
    /// (already acked, or its visibility timed out and the message went back)
    /// is ignored, like a stale SQS receipt handle: the message will simply
    /// be delivered again, which consumers must tolerate anyway.
    pub fn ack(&self, queue: QueueName, delivery_id: u64) {
        self.lock().queues[slot(queue)]
            .in_flight
            .remove(&delivery_id);
    }

    /// True while a delivery is in flight, i.e. `ack`/`nack` would act on it.
    pub fn is_in_flight(&self, queue: QueueName, delivery_id: u64) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        let q = &mut state.queues[slot(queue)];
        q.reap(now, self.config.max_receives);
        q.in_flight.contains_key(&delivery_id)
    }

    /// Gives a delivery back for immediate redelivery (or dead-lettering if
    /// it used its last receive). Unknown or stale ids are ignored.
    pub fn nack(&self, queue: QueueName, delivery_id: u64) {
        let returned = {
            let mut state = self.lock();
            let q = &mut state.queues[slot(queue)];
            match q.in_flight.remove(&delivery_id) {
                Some(f) => {
                    q.requeue(f.message, self.config.max_receives);
                    true
                }
                None => false,
            }
        };
        if returned {
            self.notify[slot(queue)].notify_waiters();
        }
    }

    /// Bodies of the messages that exhausted their receives, oldest first.
    pub fn dead_letters(&self, queue: QueueName) -> Vec<String> {
        let now = Instant::now();
        let mut state = self.lock();
        let q = &mut state.queues[slot(queue)];
        q.reap(now, self.config.max_receives);
        q.dead.iter().map(|m| m.body.clone()).collect()
    }

    /// Visible messages waiting in a queue.
    pub fn depth(&self, queue: QueueName) -> usize {
        let now = Instant::now();
        let mut state = self.lock();
        let q = &mut state.queues[slot(queue)];
        q.reap(now, self.config.max_receives);
        q.ready.len()
    }

    /// Messages received and neither acked nor timed out yet.
    pub fn in_flight(&self, queue: QueueName) -> usize {
        let now = Instant::now();
        let mut state = self.lock();
        let q = &mut state.queues[slot(queue)];
        q.reap(now, self.config.max_receives);
        q.in_flight.len()
    }

    /// True when every queue is empty and nothing is in flight: the local
    /// pipeline has nothing left to do. Dead letters do not count.
    pub fn is_idle(&self) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        state.queues.iter_mut().all(|q| {
            q.reap(now, self.config.max_receives);
            q.ready.is_empty() && q.in_flight.is_empty()
        })
    }

    /// Adds faults to a queue (see [`FaultPlan`]).
    pub fn inject(&self, queue: QueueName, plan: FaultPlan) {
        let mut state = self.lock();
        let q = &mut state.queues[slot(queue)];
        q.duplicate_next = q.duplicate_next.saturating_add(plan.duplicate_next);
        q.crash_next = q.crash_next.saturating_add(plan.crash_next);
        if let Some(seed) = plan.reorder_seed {
            crate::adapters::seeded_shuffle(q.ready.make_contiguous(), seed);
        }
    }

    /// The next `n` received messages of `queue` are delivered twice.
    pub fn duplicate_next(&self, queue: QueueName, n: u32) {
        self.inject(
            queue,
            FaultPlan {
                duplicate_next: n,
                ..FaultPlan::default()
            },
        );
    }

    /// The next `n` deliveries of `queue` are lost by a crashing consumer.
    pub fn crash_next(&self, queue: QueueName, n: u32) {
        self.inject(
            queue,
            FaultPlan {
                crash_next: n,
                ..FaultPlan::default()
            },
        );
    }

    /// Shuffles the visible messages of `queue`, deterministically by `seed`.
    pub fn reorder(&self, queue: QueueName, seed: u64) {
        self.inject(
            queue,
            FaultPlan {
                reorder_seed: Some(seed),
                ..FaultPlan::default()
            },
        );
    }
}

#[async_trait]
impl JobQueue for LocalQueue {
    /// All or nothing: one oversized body rejects the whole batch before any
    /// is queued, so a retry of the call cannot double-send the others.
    async fn send_batch(&self, queue: QueueName, bodies: Vec<String>) -> Result<(), QueueError> {
        crate::app::messages::check_body_sizes(queue, &bodies)?;
        if bodies.is_empty() {
            return Ok(());
        }
        {
            let mut state = self.lock();
            let q = &mut state.queues[slot(queue)];
            q.ready.extend(bodies.into_iter().map(|body| Message {
                body,
                receives: 0,
                copy: false,
            }));
        }
        self.notify[slot(queue)].notify_waiters();
        Ok(())
    }
}

/// Handles are the delivery ids in decimal.
#[async_trait]
impl crate::app::ports::QueueConsumer for LocalQueue {
    async fn receive(
        &self,
        queue: QueueName,
        wait: Duration,
    ) -> Result<Option<crate::app::ports::Received>, QueueError> {
        Ok(self
            .receive_wait(queue, wait)
            .await
            .map(|d| crate::app::ports::Received {
                handle: d.id.to_string(),
                body: d.body,
                attempt: d.attempt,
            }))
    }

    async fn ack(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        // A stale or malformed handle is a no-op, as a stale SQS receipt
        // handle is: the message simply comes back.
        if let Ok(id) = handle.parse() {
            LocalQueue::ack(self, queue, id);
        }
        Ok(())
    }

    async fn release(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        if let Ok(id) = handle.parse() {
            LocalQueue::nack(self, queue, id);
        }
        Ok(())
    }

    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<String>, QueueError> {
        Ok(LocalQueue::dead_letters(self, queue))
    }

    async fn is_idle(&self) -> Result<bool, QueueError> {
        Ok(LocalQueue::is_idle(self))
    }
}
