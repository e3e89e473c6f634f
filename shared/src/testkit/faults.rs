//! Deterministic delivery faults for any [`QueueConsumer`], so the handler
//! suite exercises the same at-least-once failure modes over every backend
//! (the local SQLite queue, SQS).
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

use crate::app::messages::QueueName;
use crate::app::ports::{QueueConsumer, Received};
use crate::errors::QueueError;

/// Most messages one reorder buffers (enough to shuffle a run's shard jobs
/// in tests; a bound so a long queue is not drained into memory).
pub const REORDER_BATCH: usize = 32;

/// How often a receiver checks whether another one finished taking a batch
/// to shuffle.
const FILL_POLL: Duration = Duration::from_millis(20);

/// Prefix of copy handles; real handles (SQS receipt handles, the local
/// queue's `<id>.<receives>`) never start with it.
const COPY_PREFIX: &str = "testexec-fault-copy-";

/// Faults that actually happened on one queue, for tests to assert that the
/// failure mode they meant to exercise was exercised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Injected {
    /// Copies handed out.
    pub duplicated: u32,
    /// Messages dropped by a "crashed" executor.
    pub crashed: u32,
    /// Messages taken into a shuffled batch.
    pub reordered: u32,
}

#[derive(Debug, Default)]
struct QueueFaults {
    duplicate_next: u32,
    crash_next: u32,
    reorder_seed: Option<u64>,
    /// A receiver is taking a batch to shuffle; the others wait for it, so
    /// the batch holds every ready message rather than a racing remainder.
    filling: bool,
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
        crate::adapters::seeded_shuffle(&mut batch, seed);
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
            let (buffered, reorder, filling) = {
                let mut state = self.lock();
                let q = &mut state.queues[slot(queue)];
                if let Some(copy) = q.copies.pop_front() {
                    q.injected.duplicated += 1;
                    state.copies_out.insert(copy.handle.clone());
                    return Ok(Some(copy));
                }
                let buffered = q.shuffled.pop_front();
                let reorder = match buffered {
                    None if !q.filling => q.reorder_seed.take(),
                    _ => None,
                };
                if reorder.is_some() {
                    q.filling = true;
                }
                (buffered, reorder, q.filling)
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let message = match (buffered, reorder) {
                (Some(message), _) => Some(message),
                (None, Some(seed)) => {
                    let filled = self.fill_shuffled(queue, seed, remaining).await;
                    let mut state = self.lock();
                    let q = &mut state.queues[slot(queue)];
                    q.filling = false;
                    filled?;
                    q.shuffled.pop_front()
                }
                (None, None) if filling => {
                    if remaining.is_zero() {
                        return Ok(None);
                    }
                    tokio::time::sleep(FILL_POLL.min(remaining)).await;
                    continue;
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

    fn visibility(&self, queue: QueueName) -> Duration {
        self.inner.visibility(queue)
    }

    /// A duplicate's copy has no lease of its own to renew.
    async fn extend(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        if handle.starts_with(COPY_PREFIX) {
            return Ok(());
        }
        self.inner.extend(queue, handle).await
    }

    /// A duplicate's copy is dropped; the original goes to the dead letters
    /// when its own handler fails the same way.
    async fn dead_letter(
        &self,
        queue: QueueName,
        message: &Received,
        reason: &str,
    ) -> Result<(), QueueError> {
        if message.handle.starts_with(COPY_PREFIX) {
            self.lock().copies_out.remove(&message.handle);
            return Ok(());
        }
        self.inner.dead_letter(queue, message, reason).await
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

#[cfg(all(test, feature = "local"))]
mod tests {
    use super::*;
    use crate::adapters::local::{LocalQueue, QueueConfig};
    use crate::app::ports::JobQueue;

    fn queue(visibility: Duration) -> Arc<LocalQueue> {
        Arc::new(LocalQueue::in_memory(QueueConfig {
            visibility_timeout: visibility,
            max_receives: 5,
        }))
    }

    async fn send(q: &LocalQueue, bodies: &[&str]) {
        q.send_batch(
            QueueName::Shards,
            bodies.iter().map(|b| b.to_string()).collect(),
        )
        .await
        .unwrap();
    }

    async fn take(f: &FaultyConsumer<LocalQueue>) -> Received {
        f.receive(QueueName::Shards, Duration::from_secs(2))
            .await
            .unwrap()
            .expect("a message")
    }

    #[tokio::test]
    async fn a_duplicate_follows_its_original_and_its_ack_does_nothing() {
        let q = queue(Duration::from_secs(30));
        send(&q, &["a", "b"]).await;
        let f = FaultyConsumer::new(q.clone());
        f.duplicate_next(QueueName::Shards, 1);
        let original = take(&f).await;
        let copy = take(&f).await;
        assert_eq!((original.body.as_str(), copy.body.as_str()), ("a", "a"));
        assert_eq!(copy.attempt, original.attempt);
        assert_ne!(copy.handle, original.handle);
        // The copy's ack leaves the original in flight...
        f.ack(QueueName::Shards, &copy.handle).await.unwrap();
        assert_eq!(q.in_flight(QueueName::Shards).unwrap(), 1);
        f.ack(QueueName::Shards, &original.handle).await.unwrap();
        // ...and the next message is not duplicated.
        let b = take(&f).await;
        assert_eq!(b.body, "b");
        assert!(!f.is_idle().await.unwrap(), "b is in flight");
        f.ack(QueueName::Shards, &b.handle).await.unwrap();
        assert!(f.is_idle().await.unwrap());
        assert_eq!(f.injected(QueueName::Shards).duplicated, 1);
    }

    #[tokio::test]
    async fn a_copy_in_progress_keeps_the_consumer_busy() {
        let q = queue(Duration::from_secs(30));
        send(&q, &["a"]).await;
        let f = FaultyConsumer::new(q);
        f.duplicate_next(QueueName::Shards, 1);
        let original = take(&f).await;
        f.ack(QueueName::Shards, &original.handle).await.unwrap();
        assert!(!f.is_idle().await.unwrap(), "the copy is still to come");
        let copy = take(&f).await;
        assert!(!f.is_idle().await.unwrap(), "the copy is being handled");
        f.release(QueueName::Shards, &copy.handle).await.unwrap();
        assert!(f.is_idle().await.unwrap());
    }

    #[tokio::test]
    async fn a_crashed_message_returns_after_the_visibility_timeout() {
        let q = queue(Duration::from_millis(300));
        send(&q, &["a", "b"]).await;
        let f = FaultyConsumer::new(q);
        f.crash_next(QueueName::Shards, 1);
        let b = take(&f).await;
        assert_eq!((b.body.as_str(), b.attempt), ("b", 1), "a was lost");
        f.ack(QueueName::Shards, &b.handle).await.unwrap();
        assert!(!f.is_idle().await.unwrap(), "a is still in flight");
        let started = Instant::now();
        let a = take(&f).await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!((a.body.as_str(), a.attempt), ("a", 2));
        assert_eq!(f.injected(QueueName::Shards).crashed, 1);
    }

    async fn order(seed: u64) -> Vec<String> {
        let q = queue(Duration::from_secs(30));
        let bodies: Vec<String> = (0..8).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        send(&q, &refs).await;
        let f = FaultyConsumer::new(q);
        f.reorder(QueueName::Shards, seed);
        let mut out = Vec::new();
        for _ in 0..8 {
            out.push(take(&f).await.body);
        }
        assert_eq!(f.injected(QueueName::Shards).reordered, 8);
        out
    }

    #[tokio::test]
    async fn reordering_is_a_deterministic_shuffle_of_every_message() {
        let fifo: Vec<String> = (0..8).map(|i| i.to_string()).collect();
        let first = order(7).await;
        assert_eq!(first, order(7).await, "same seed, same order");
        assert_ne!(first, fifo, "shuffled");
        assert_ne!(first, order(8).await, "another seed, another order");
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, fifo, "nothing lost or doubled");
    }
}
