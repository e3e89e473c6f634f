//! Deterministic delivery faults for any [`QueueConsumer`], so the handler
//! suite exercises the same at-least-once failure modes over every backend
//! (the in-process queue, SQS).
//!
//! [`FaultyConsumer`] sits between a pipeline's workers and the real
//! consumer and plays the part of a misbehaving transport or executor:
//! - `duplicate_next(queue, n)`: the next `n` messages received are each
//!   delivered twice. The copy comes right after the original, with the same
//!   body and attempt, under a handle of its own whose ack and release do
//!   nothing (the original's handle owns the message, as one SQS message
//!   delivered twice is deleted by either receipt).
//! - `crash_next(queue, n)`: the next `n` messages received are taken by an
//!   executor that dies: neither acked nor released, so they come back only
//!   after the queue's visibility timeout, with `attempt + 1`, exactly as SQS
//!   does after a crashed Lambda.
//! - `reorder(queue, seed)`: the next receive takes up to
//!   [`REORDER_BATCH`] ready messages at once and hands them out in an order
//!   shuffled by `seed` (the same seed and intake give the same order).
//!
//! Copies are never duplicated or crashed again. Counts add up across calls.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::errors::QueueError;
use crate::messages::QueueName;
use crate::ports::{QueueConsumer, Received};

/// Most messages one reorder buffers (enough to shuffle a run's shard jobs
/// in tests; a bound so a long queue is not drained into memory).
pub const REORDER_BATCH: usize = 32;

/// Prefix of copy handles; real handles (SQS receipt handles, local delivery
/// ids) never start with it.
const COPY_PREFIX: &str = "testexec-fault-copy-";

/// Faults that actually happened on one queue, for tests to assert that the
/// failure mode they meant to exercise was exercised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Injected {
    /// Copies handed out.
    pub duplicated: u32,
    /// Messages dropped by a "crashed" executor.
    pub crashed: u32,
    /// Messages handed out from a shuffled batch.
    pub reordered: u32,
}

#[derive(Debug, Default)]
struct QueueFaults {
    duplicate_next: u32,
    crash_next: u32,
    reorder_seed: Option<u64>,
    /// Copies waiting to be handed out, right after their originals.
    copies: VecDeque<Received>,
    /// A shuffled batch being handed out.
    shuffled: VecDeque<Received>,
    injected: Injected,
}

#[derive(Debug, Default)]
struct State {
    queues: [QueueFaults; 4],
    next_copy: u64,
    /// Copies handed out and not yet acked or released: work in progress
    /// the inner consumer does not know about.
    copies_out: HashSet<String>,
}

fn slot(queue: QueueName) -> usize {
    match queue {
        QueueName::Shards => 0,
        QueueName::Results => 1,
        QueueName::Reports => 2,
        QueueName::Requests => 3,
    }
}

/// A [`QueueConsumer`] that injects delivery faults into another one.
pub struct FaultyConsumer<C: QueueConsumer + ?Sized> {
    inner: Arc<C>,
    state: Mutex<State>,
}

impl<C: QueueConsumer + ?Sized> FaultyConsumer<C> {
    pub fn new(inner: Arc<C>) -> Self {
        Self {
            inner,
            state: Mutex::new(State::default()),
        }
    }

    pub fn inner(&self) -> &Arc<C> {
        &self.inner
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is complete between statements; poison carries no risk.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `n` messages received from `queue` are delivered twice.
    pub fn duplicate_next(&self, queue: QueueName, n: u32) {
        let mut state = self.lock();
        let q = &mut state.queues[slot(queue)];
        q.duplicate_next = q.duplicate_next.saturating_add(n);
    }

    /// The next `n` messages received from `queue` are lost by a crashing
    /// executor and reappear after the visibility timeout.
    pub fn crash_next(&self, queue: QueueName, n: u32) {
        let mut state = self.lock();
        let q = &mut state.queues[slot(queue)];
        q.crash_next = q.crash_next.saturating_add(n);
    }

    /// The next receive from `queue` takes a batch of ready messages and
    /// hands them out shuffled by `seed`.
    pub fn reorder(&self, queue: QueueName, seed: u64) {
        self.lock().queues[slot(queue)].reorder_seed = Some(seed);
    }

    /// The faults applied so far on `queue`.
    pub fn injected(&self, queue: QueueName) -> Injected {
        self.lock().queues[slot(queue)].injected
    }

    /// Takes up to [`REORDER_BATCH`] messages (waiting up to `wait` for the
    /// first only) and queues them shuffled.
    async fn fill_shuffled(
        &self,
        queue: QueueName,
        seed: u64,
        wait: Duration,
    ) -> Result<(), QueueError> {
        let mut batch = Vec::new();
        let mut next_wait = wait;
        while batch.len() < REORDER_BATCH {
            match self.inner.receive(queue, next_wait).await {
                Ok(Some(message)) => batch.push(message),
                Ok(None) => break,
                Err(error) if batch.is_empty() => return Err(error),
                // Keep what was taken: dropping it would be a crash nobody
                // asked for.
                Err(_) => break,
            }
            next_wait = Duration::ZERO;
        }
        crate::backends::seeded_shuffle(&mut batch, seed);
        tracing::debug!(
            queue = queue.as_str(),
            messages = batch.len(),
            seed,
            "fault: reordering a batch"
        );
        let mut state = self.lock();
        let q = &mut state.queues[slot(queue)];
        q.injected.reordered += batch.len() as u32;
        q.shuffled.extend(batch);
        Ok(())
    }
}

#[async_trait]
impl<C: QueueConsumer + ?Sized> QueueConsumer for FaultyConsumer<C> {
    async fn receive(
        &self,
        queue: QueueName,
        wait: Duration,
    ) -> Result<Option<Received>, QueueError> {
        let deadline = Instant::now() + wait;
        loop {
            let (buffered, reorder) = {
                let mut state = self.lock();
                let q = &mut state.queues[slot(queue)];
                if let Some(copy) = q.copies.pop_front() {
                    q.injected.duplicated += 1;
                    state.copies_out.insert(copy.handle.clone());
                    return Ok(Some(copy));
                }
                let buffered = q.shuffled.pop_front();
                let reorder = if buffered.is_none() {
                    q.reorder_seed.take()
                } else {
                    None
                };
                (buffered, reorder)
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let message = match (buffered, reorder) {
                (Some(message), _) => Some(message),
                (None, Some(seed)) => {
                    self.fill_shuffled(queue, seed, remaining).await?;
                    let mut state = self.lock();
                    state.queues[slot(queue)].shuffled.pop_front()
                }
                (None, None) => self.inner.receive(queue, remaining).await?,
            };
            let Some(message) = message else {
                return Ok(None);
            };

            let mut state = self.lock();
            let State {
                queues, next_copy, ..
            } = &mut *state;
            let q = &mut queues[slot(queue)];
            if q.crash_next > 0 {
                q.crash_next -= 1;
                q.injected.crashed += 1;
                tracing::info!(
                    queue = queue.as_str(),
                    attempt = message.attempt,
                    "fault: executor crashed holding a message"
                );
                drop(state);
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                continue;
            }
            if q.duplicate_next > 0 {
                q.duplicate_next -= 1;
                *next_copy += 1;
                q.copies.push_back(Received {
                    handle: format!("{COPY_PREFIX}{next_copy}"),
                    body: message.body.clone(),
                    attempt: message.attempt,
                });
            }
            return Ok(Some(message));
        }
    }

    async fn ack(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        if handle.starts_with(COPY_PREFIX) {
            self.lock().copies_out.remove(handle);
            return Ok(());
        }
        self.inner.ack(queue, handle).await
    }

    async fn release(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        if handle.starts_with(COPY_PREFIX) {
            self.lock().copies_out.remove(handle);
            return Ok(());
        }
        self.inner.release(queue, handle).await
    }

    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<String>, QueueError> {
        self.inner.dead_letters(queue).await
    }

    /// Idle only when nothing is buffered here, no copy is being handled,
    /// and the inner consumer is idle.
    async fn is_idle(&self) -> Result<bool, QueueError> {
        let busy_here = {
            let state = self.lock();
            !state.copies_out.is_empty()
                || state
                    .queues
                    .iter()
                    .any(|q| !q.copies.is_empty() || !q.shuffled.is_empty())
        };
        if busy_here {
            return Ok(false);
        }
        self.inner.is_idle().await
    }
}
