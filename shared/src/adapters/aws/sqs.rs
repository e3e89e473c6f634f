//! The pipeline's queues on SQS: four standard queues, each with its own
//! dead-letter queue.
//!
//! Sending ([`JobQueue::send_batch`]): bodies over
//! [`MAX_MESSAGE_BYTES`] refuse the whole call before anything is sent; the
//! rest go in `SendMessageBatch` calls of at most [`MAX_BATCH_ENTRIES`]
//! entries and [`MAX_BATCH_BYTES`] of bodies ([`plan_batches`]). Entries SQS
//! reports as failed through no fault of the sender (throttling, internal
//! errors) are retried with exponential backoff, [`SEND_ATTEMPTS`] times in
//! all; an entry refused as the sender's fault is not retried. The SDK's own
//! retry handles whole-call failures (throttling, 5xx, timeouts).
//!
//! Consuming ([`QueueConsumer`]) is for hosts that pump queues themselves
//! (tests, a polling worker); on Lambda the SQS event source does it.

use std::collections::HashSet;
use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError;
use aws_sdk_sqs::operation::delete_message::DeleteMessageError;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use backon::{ExponentialBuilder, RetryableWithContext};

use crate::app::messages::QueueName;
use crate::app::ports::{JobQueue, QueueConsumer, Received};
use crate::errors::QueueError;

const BACKEND: &str = "sqs";

/// SQS's limit on entries per `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// SQS's limit on the summed payload of one `SendMessageBatch`.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Tries per entry that SQS reports as failed (not the sender's fault).
pub const SEND_ATTEMPTS: u32 = 5;
/// First backoff between tries; doubles each time, capped at 2 s.
const BASE_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// SQS's longest long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// SQS's longest visibility timeout (12 h).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// SQS's range for a redrive policy's `maxReceiveCount`.
pub const MAX_RECEIVES: u32 = 1000;
/// `dead_letters` reads at most this many bodies.
pub const MAX_DEAD_LETTERS: usize = 1000;
/// Dead letters are kept 14 days, SQS's longest retention, to leave time to
/// inspect and redrive them.
const DLQ_RETENTION_SECS: u32 = 14 * 24 * 3600;

/// The URL of each queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub shards: String,
    pub results: String,
    pub reports: String,
    pub requests: String,
}

impl QueueUrls {
    pub fn get(&self, queue: QueueName) -> &str {
        match queue {
            QueueName::Shards => &self.shards,
            QueueName::Results => &self.results,
            QueueName::Reports => &self.reports,
            QueueName::Requests => &self.requests,
        }
    }
}

pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    urls: QueueUrls,
    /// What [`QueueConsumer::extend`] sets the visibility to.
    lease: Duration,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, urls: QueueUrls) -> Self {
        Self {
            client,
            urls,
            lease: super::DEFAULT_QUEUE_LEASE,
        }
    }

    /// The lease a polling worker holds and renews, in whole seconds (as
    /// SQS counts them; rounded up, at most 12 hours). It must not exceed
    /// the queues' own visibility timeout by much: a renewal comes after a
    /// third of it, and the first one must land before the queue's timeout
    /// hands the message to someone else.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        let secs = lease
            .as_millis()
            .div_ceil(1000)
            .clamp(1, u128::from(MAX_VISIBILITY.as_secs()));
        self.lease = Duration::from_secs(secs as u64);
        self
    }

    /// `ChangeMessageVisibility` on a message in hand. A stale receipt
    /// handle is not an error: the message went back (or was deleted) and
    /// will be delivered again, which consumers tolerate.
    async fn set_visibility(
        &self,
        queue: QueueName,
        handle: &str,
        seconds: i32,
        why: &'static str,
    ) -> Result<(), QueueError> {
        let result = self
            .client
            .change_message_visibility()
            .queue_url(self.urls.get(queue))
            .receipt_handle(handle)
            .visibility_timeout(seconds)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    ChangeMessageVisibilityError::ReceiptHandleIsInvalid(_)
                        | ChangeMessageVisibilityError::MessageNotInflight(_)
                ) =>
            {
                tracing::debug!(queue = queue.as_str(), why, "stale receipt handle");
                Ok(())
            }
            Err(e) => Err(backend(queue, "ChangeMessageVisibility", e)),
        }
    }

    pub fn urls(&self) -> &QueueUrls {
        &self.urls
    }

    async fn queue_attributes(
        &self,
        queue: QueueName,
        url: &str,
        names: &[QueueAttributeName],
    ) -> Result<std::collections::HashMap<QueueAttributeName, String>, QueueError> {
        let mut request = self.client.get_queue_attributes().queue_url(url);
        for name in names {
            request = request.attribute_names(name.clone());
        }
        let out = request
            .send()
            .await
            .map_err(|e| backend(queue, "GetQueueAttributes", e))?;
        Ok(out.attributes().cloned().unwrap_or_default())
    }

    /// The URL of `queue`'s dead-letter queue, from its redrive policy.
    /// Sends `body` to `queue`'s dead-letter queue (its redrive target)
    /// and leaves the original alone: the Lambda host reports the record
    /// handled and the event source mapping deletes it. False, with a
    /// warning, when the queue has no redrive policy.
    pub async fn forward_to_dead_letters(
        &self,
        queue: QueueName,
        body: &str,
        reason: &str,
    ) -> Result<bool, QueueError> {
        let Some(url) = self.dead_letter_url(queue).await? else {
            tracing::warn!(
                queue = queue.as_str(),
                reason,
                "no dead-letter queue configured; the message stays on its queue"
            );
            return Ok(false);
        };
        tracing::warn!(
            queue = queue.as_str(),
            reason,
            "moving a message to the dead-letter queue"
        );
        self.client
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| backend(queue, "SendMessage (dead-letter queue)", e))?;
        Ok(true)
    }

    async fn dead_letter_url(&self, queue: QueueName) -> Result<Option<String>, QueueError> {
        let attrs = self
            .queue_attributes(
                queue,
                self.urls.get(queue),
                &[QueueAttributeName::RedrivePolicy],
            )
            .await?;
        let Some(policy) = attrs.get(&QueueAttributeName::RedrivePolicy) else {
            return Ok(None);
        };
        let invalid = |reason: &str| QueueError::Backend {
            backend: BACKEND,
            queue: queue.as_str(),
            source: format!("unreadable RedrivePolicy `{policy}`: {reason}").into(),
        };
        let policy: serde_json::Value =
            serde_json::from_str(policy).map_err(|e| invalid(&e.to_string()))?;
        let arn = policy
            .get("deadLetterTargetArn")
            .and_then(|a| a.as_str())
            .ok_or_else(|| invalid("no deadLetterTargetArn"))?;
        // arn:aws:sqs:<region>:<account>:<name>
        let name = arn
            .rsplit(':')
            .next()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("the target ARN has no queue name"))?;
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| backend(queue, "GetQueueUrl (dead-letter queue)", e))?;
        Ok(out.queue_url().map(str::to_string))
    }
}

fn backend<E: std::error::Error>(queue: QueueName, operation: &str, e: E) -> QueueError {
    QueueError::Backend {
        backend: BACKEND,
        queue: queue.as_str(),
        source: format!("{operation}: {}", DisplayErrorContext(&e)).into(),
    }
}

/// Splits bodies of the given sizes, in order, into consecutive groups of at
/// most [`MAX_BATCH_ENTRIES`] entries and [`MAX_BATCH_BYTES`] bytes. A body
/// larger than the byte limit on its own still gets a group (callers refuse
/// such bodies first).
pub fn plan_batches(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES;
        if i > start && full {
            groups.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        groups.push(start..sizes.len());
    }
    groups
}

/// The batch entry id of the body at `index` of one `send_batch` call:
/// unique within the call, and within SQS's rules (alphanumeric, `-`, `_`,
/// at most 80 characters).
pub fn entry_id(index: usize) -> String {
    format!("m{index}")
}

/// One entry SQS did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryFailure {
    pub id: String,
    pub code: String,
    pub message: String,
    pub sender_fault: bool,
}

/// The waits between sends of one batch: `base`, doubling, capped at
/// [`MAX_BACKOFF`], one fewer than `attempts`. No jitter: the SDK already
/// jitters its own retries of whole calls, and these only follow an entry
/// SQS failed inside an accepted call.
fn send_backoff(base: Duration, attempts: u32) -> ExponentialBuilder {
    crate::adapters::retry::exponential(base, MAX_BACKOFF, attempts.saturating_sub(1) as usize)
}

/// Why one send of [`send_with_retries`] did not finish the batch.
enum Attempt {
    /// Entries failed through no fault of the sender: retry those.
    Retry {
        attempt: u32,
        failed: usize,
        first: EntryFailure,
    },
    /// A sender fault or a failed call: give up.
    Fail(QueueError),
}

/// Sends `entries` (id, body) through `send` until all are accepted:
/// entries failed through no fault of the sender are sent again after a
/// backoff (`base`, doubling), up to `attempts` tries; a sender-fault
/// failure ends the call.
pub(crate) async fn send_with_retries<F, Fut>(
    queue: QueueName,
    entries: Vec<(String, String)>,
    attempts: u32,
    base: Duration,
    mut send: F,
) -> Result<(), QueueError>
where
    F: FnMut(Vec<(String, String)>) -> Fut,
    Fut: Future<Output = Result<Vec<EntryFailure>, QueueError>>,
{
    let refused = move |f: &EntryFailure, attempts| QueueError::EntryFailed {
        queue: queue.as_str(),
        entry: f.id.clone(),
        code: f.code.clone(),
        message: f.message.clone(),
        sender_fault: f.sender_fault,
        attempts,
    };
    // The context: the entries still to send, and the sends made so far.
    let once = move |(mut entries, sent): (Vec<(String, String)>, u32)| {
        let reply = send(entries.clone());
        async move {
            let attempt = sent + 1;
            let failed = match reply.await {
                Ok(failed) => failed,
                Err(e) => return ((entries, attempt), Err(Attempt::Fail(e))),
            };
            let Some(first) = failed.first().cloned() else {
                return ((entries, attempt), Ok(()));
            };
            if let Some(f) = failed.iter().find(|f| f.sender_fault) {
                return ((entries, attempt), Err(Attempt::Fail(refused(f, attempt))));
            }
            let retry: HashSet<&str> = failed.iter().map(|f| f.id.as_str()).collect();
            entries.retain(|(id, _)| retry.contains(id.as_str()));
            let failed = entries.len();
            (
                (entries, attempt),
                Err(Attempt::Retry {
                    attempt,
                    failed,
                    first,
                }),
            )
        }
    };
    let (_, outcome) = once
        .retry(send_backoff(base, attempts))
        .context((entries, 0))
        .when(|e| matches!(e, Attempt::Retry { .. }))
        .notify(|e, wait| {
            if let Attempt::Retry {
                attempt,
                failed,
                first,
            } = e
            {
                tracing::warn!(
                    queue = queue.as_str(),
                    failed,
                    attempt,
                    code = %first.code,
                    wait_ms = wait.as_millis() as u64,
                    "SQS did not accept some batch entries; retrying them"
                );
            }
        })
        .await;
    match outcome {
        Ok(()) => Ok(()),
        Err(Attempt::Fail(e)) => Err(e),
        Err(Attempt::Retry { attempt, first, .. }) => Err(refused(&first, attempt)),
    }
}

impl SqsQueue {
    /// One `SendMessageBatch`; returns the entries that did not go.
    async fn send_once(
        &self,
        queue: QueueName,
        entries: Vec<(String, String)>,
    ) -> Result<Vec<EntryFailure>, QueueError> {
        let ids: Vec<String> = entries.iter().map(|(id, _)| id.clone()).collect();
        let mut request = self
            .client
            .send_message_batch()
            .queue_url(self.urls.get(queue));
        for (id, body) in entries {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(id)
                .message_body(body)
                .build()
                .map_err(|e| backend(queue, "SendMessageBatch", e))?;
            request = request.entries(entry);
        }
        let out = request
            .send()
            .await
            .map_err(|e| backend(queue, "SendMessageBatch", e))?;
        let mut failed: Vec<EntryFailure> = out
            .failed()
            .iter()
            .map(|f| EntryFailure {
                id: f.id().to_string(),
                code: f.code().to_string(),
                message: f.message().unwrap_or("no message").to_string(),
                sender_fault: f.sender_fault(),
            })
            .collect();
        // An entry in neither list was not confirmed: send it again.
        let answered: HashSet<&str> = out
            .successful()
            .iter()
            .map(|s| s.id())
            .chain(out.failed().iter().map(|f| f.id()))
            .collect();
        for id in ids.iter().filter(|id| !answered.contains(id.as_str())) {
            failed.push(EntryFailure {
                id: id.clone(),
                code: "NotConfirmed".into(),
                message: "SQS's answer did not mention this entry".into(),
                sender_fault: false,
            });
        }
        Ok(failed)
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    /// All-or-nothing on size (like `LocalQueue`): one oversized body
    /// refuses the call before anything is sent.
    async fn send_batch(&self, queue: QueueName, bodies: Vec<String>) -> Result<(), QueueError> {
        crate::app::messages::check_body_sizes(queue, &bodies)?;
        let sizes: Vec<usize> = bodies.iter().map(String::len).collect();
        let groups = plan_batches(&sizes);
        let mut bodies = bodies.into_iter().enumerate();
        for group in groups {
            let entries: Vec<(String, String)> = bodies
                .by_ref()
                .take(group.len())
                .map(|(i, body)| (entry_id(i), body))
                .collect();
            send_with_retries(queue, entries, SEND_ATTEMPTS, BASE_BACKOFF, |entries| {
                self.send_once(queue, entries)
            })
            .await?;
        }
        Ok(())
    }
}

/// Whole seconds for `WaitTimeSeconds`, rounded up so a sub-second wait
/// still long-polls.
fn wait_secs(wait: Duration) -> i32 {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    secs.min(MAX_WAIT.as_secs()) as i32
}

#[async_trait]
impl QueueConsumer for SqsQueue {
    /// Long-polls in calls of at most 20 s (SQS's maximum) until `wait` has
    /// passed or a message arrives. `attempt` is SQS's
    /// `ApproximateReceiveCount`.
    async fn receive(
        &self,
        queue: QueueName,
        wait: Duration,
    ) -> Result<Option<Received>, QueueError> {
        let start = tokio::time::Instant::now();
        loop {
            let remaining = wait.saturating_sub(start.elapsed());
            let out = self
                .client
                .receive_message()
                .queue_url(self.urls.get(queue))
                .max_number_of_messages(1)
                .wait_time_seconds(wait_secs(remaining))
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| backend(queue, "ReceiveMessage", e))?;
            if let Some(m) = out.messages().first() {
                let handle = m.receipt_handle().ok_or_else(|| QueueError::Backend {
                    backend: BACKEND,
                    queue: queue.as_str(),
                    source: "ReceiveMessage returned a message without a receipt handle".into(),
                })?;
                let count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount));
                let attempt = match count.and_then(|c| c.parse::<u32>().ok()) {
                    Some(n) => n.max(1),
                    None => {
                        tracing::warn!(
                            queue = queue.as_str(),
                            value = ?count,
                            "message without a usable ApproximateReceiveCount; taking it as attempt 1"
                        );
                        1
                    }
                };
                return Ok(Some(Received {
                    handle: handle.to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                    attempt,
                }));
            }
            if start.elapsed() >= wait {
                return Ok(None);
            }
        }
    }

    async fn ack(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        let result = self
            .client
            .delete_message()
            .queue_url(self.urls.get(queue))
            .receipt_handle(handle)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A stale handle: the message went back (or was deleted); it will
            // be delivered again, which consumers tolerate.
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), DeleteMessageError::ReceiptHandleIsInvalid(_)) =>
            {
                tracing::debug!(queue = queue.as_str(), "ack with a stale receipt handle");
                Ok(())
            }
            Err(e) => Err(backend(queue, "DeleteMessage", e)),
        }
    }

    async fn release(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        self.set_visibility(queue, handle, 0, "release").await
    }

    fn visibility(&self, _queue: QueueName) -> Duration {
        self.lease
    }

    /// `ChangeMessageVisibility` counts from now, so renewing with the lease
    /// keeps the message hidden whatever the queue's own timeout is.
    async fn extend(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        let secs = i32::try_from(self.lease.as_secs()).unwrap_or(i32::MAX);
        self.set_visibility(queue, handle, secs, "extend").await
    }

    /// Sends the body to the queue's dead-letter queue (named by its redrive
    /// policy), then deletes the message. Without a redrive policy there is
    /// nowhere to put it: the message is released and, as before, retried.
    async fn dead_letter(
        &self,
        queue: QueueName,
        message: &Received,
        reason: &str,
    ) -> Result<(), QueueError> {
        if self
            .forward_to_dead_letters(queue, &message.body, reason)
            .await?
        {
            self.ack(queue, &message.handle).await
        } else {
            self.release(queue, &message.handle).await
        }
    }

    /// Reads (at most [`MAX_DEAD_LETTERS`]) bodies of the queue's
    /// dead-letter queue without consuming them: each is received, then made
    /// visible again at once. Reading raises their receive count (the
    /// dead-letter queue has no redrive policy, so nothing moves) and, for
    /// the moment of the read, hides them from other readers. An empty list
    /// when the queue has no redrive policy.
    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<String>, QueueError> {
        let Some(url) = self.dead_letter_url(queue).await? else {
            return Ok(Vec::new());
        };
        let mut bodies = Vec::new();
        let mut handles = Vec::new();
        let mut seen = HashSet::new();
        while bodies.len() < MAX_DEAD_LETTERS {
            let out = self
                .client
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                // Long enough that the loop does not see a message twice.
                .visibility_timeout(30)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| backend(queue, "ReceiveMessage (dead-letter queue)", e))?;
            let mut new = 0;
            for m in out.messages() {
                if seen.insert(m.message_id().unwrap_or_default().to_string()) {
                    new += 1;
                    bodies.push(m.body().unwrap_or_default().to_string());
                }
                handles.extend(m.receipt_handle().map(str::to_string));
            }
            if new == 0 {
                break;
            }
        }
        // Best effort: a message not released here reappears after 30 s.
        for (n, chunk) in handles.chunks(MAX_BATCH_ENTRIES).enumerate() {
            let mut request = self
                .client
                .change_message_visibility_batch()
                .queue_url(&url);
            for (i, handle) in chunk.iter().enumerate() {
                let entry = ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(entry_id(n * MAX_BATCH_ENTRIES + i))
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|e| backend(queue, "ChangeMessageVisibilityBatch", e))?;
                request = request.entries(entry);
            }
            match request.send().await {
                Ok(out) if out.failed().is_empty() => {}
                Ok(out) => tracing::warn!(
                    queue = queue.as_str(),
                    failed = out.failed().len(),
                    "could not release some dead letters after reading them"
                ),
                Err(e) => tracing::warn!(
                    queue = queue.as_str(),
                    error = %DisplayErrorContext(&e),
                    "could not release dead letters after reading them"
                ),
            }
        }
        Ok(bodies)
    }

    /// Approximate counts (visible, in flight, delayed) of all four queues,
    /// dead-letter queues excluded. SQS's counts lag by up to a minute on
    /// real queues, so "idle" is best effort there.
    async fn is_idle(&self) -> Result<bool, QueueError> {
        for queue in QueueName::ALL {
            let names = [
                QueueAttributeName::ApproximateNumberOfMessages,
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                QueueAttributeName::ApproximateNumberOfMessagesDelayed,
            ];
            let attrs = self
                .queue_attributes(queue, self.urls.get(queue), &names)
                .await?;
            for name in &names {
                let count = attrs
                    .get(name)
                    .map(|v| {
                        v.parse::<u64>().map_err(|_| QueueError::Backend {
                            backend: BACKEND,
                            queue: queue.as_str(),
                            source: format!("attribute {name} is not a count: `{v}`").into(),
                        })
                    })
                    .transpose()?
                    .unwrap_or(0);
                if count > 0 {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

fn no_url(queue: QueueName, name: &str) -> QueueError {
    QueueError::Backend {
        backend: BACKEND,
        queue: queue.as_str(),
        source: format!("CreateQueue of {name} answered without a queue URL").into(),
    }
}

/// Creates the four queues `<prefix>-shards|results|reports|requests`, each
/// with the dead-letter queue `<prefix>-<name>-dlq` behind a redrive policy
/// of `max_receives`, and returns their URLs. Idempotent with the same
/// settings (SQS refuses to re-create a queue with other attributes).
pub async fn create_queues(
    client: &aws_sdk_sqs::Client,
    prefix: &str,
    visibility: Duration,
    max_receives: u32,
) -> Result<QueueUrls, QueueError> {
    let invalid = |setting, value: String, reason: &str| QueueError::InvalidSetting {
        setting,
        value,
        reason: reason.to_string(),
    };
    // The longest name is `<prefix>-requests-dlq`; SQS allows 80 characters.
    if prefix.is_empty()
        || prefix.len() > 80 - "-requests-dlq".len()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            "prefix",
            prefix.chars().take(100).collect(),
            "expected 1-67 letters, digits, `-` or `_` (SQS queue names)",
        ));
    }
    if visibility.subsec_nanos() != 0 || visibility.is_zero() || visibility > MAX_VISIBILITY {
        return Err(invalid(
            "visibility",
            format!("{visibility:?}"),
            "expected whole seconds from 1 to 43200 (SQS's range)",
        ));
    }
    if !(1..=MAX_RECEIVES).contains(&max_receives) {
        return Err(invalid(
            "max_receives",
            max_receives.to_string(),
            "expected 1 to 1000 (SQS's maxReceiveCount range)",
        ));
    }
    let mut urls = Vec::with_capacity(4);
    for queue in QueueName::ALL {
        let name = format!("{prefix}-{}", queue.as_str());
        let dlq = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .attributes(
                QueueAttributeName::MessageRetentionPeriod,
                DLQ_RETENTION_SECS.to_string(),
            )
            .send()
            .await
            .map_err(|e| backend(queue, "CreateQueue (dead-letter queue)", e))?;
        let dlq_url = dlq
            .queue_url()
            .ok_or_else(|| no_url(queue, &format!("{name}-dlq")))?;
        let arn = client
            .get_queue_attributes()
            .queue_url(dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| backend(queue, "GetQueueAttributes (dead-letter queue)", e))?
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| QueueError::Backend {
                backend: BACKEND,
                queue: queue.as_str(),
                source: format!("dead-letter queue {name}-dlq has no QueueArn").into(),
            })?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": arn,
            "maxReceiveCount": max_receives,
        });
        let out = client
            .create_queue()
            .queue_name(&name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility.as_secs().to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .map_err(|e| backend(queue, "CreateQueue", e))?;
        urls.push(
            out.queue_url()
                .ok_or_else(|| no_url(queue, &name))?
                .to_string(),
        );
    }
    let [shards, results, reports, requests]: [String; 4] = urls
        .try_into()
        .expect("one URL per queue of QueueName::ALL");
    Ok(QueueUrls {
        shards,
        results,
        reports,
        requests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::messages::MAX_MESSAGE_BYTES;
    use backon::BackoffBuilder;
    use std::sync::Mutex;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn batches_hold_at_most_ten_entries() {
        let groups = plan_batches(&[10; 25]);
        assert_eq!(groups, [0..10, 10..20, 20..25]);
        assert!(plan_batches(&[]).is_empty());
        assert_eq!(plan_batches(&[1; 10]), vec![Range { start: 0, end: 10 }]);
        assert_eq!(plan_batches(&[1; 11]), [0..10, 10..11]);
    }

    #[test]
    fn batches_hold_at_most_256_kib() {
        let k100 = 100 * 1024;
        // Two fit (200 KiB), a third would make 300 KiB.
        assert_eq!(plan_batches(&[k100; 5]), [0..2, 2..4, 4..5]);
        // Exactly 256 KiB fits in one call.
        assert_eq!(
            plan_batches(&[128 * 1024, 128 * 1024]),
            vec![Range { start: 0, end: 2 }]
        );
        assert_eq!(plan_batches(&[128 * 1024, 128 * 1024 + 1]), [0..1, 1..2]);
        // Mixed: a 60 KiB body does not fit behind a 200 KiB one; small
        // ones fill up behind it.
        let sizes = [MAX_MESSAGE_BYTES, 60 * 1024, 10, 10, MAX_MESSAGE_BYTES];
        let groups = plan_batches(&sizes);
        assert_eq!(groups, [0..1, 1..4, 4..5]);
        for g in &groups {
            assert!(g.len() <= MAX_BATCH_ENTRIES);
            assert!(sizes[g.clone()].iter().sum::<usize>() <= MAX_BATCH_BYTES);
        }
    }

    #[test]
    fn entry_ids_are_unique_and_valid() {
        let ids: HashSet<String> = (0..100_000).map(entry_id).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(ids.iter().all(|id| {
            id.len() <= 80
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }));
    }

    fn failure(id: &str, sender_fault: bool) -> EntryFailure {
        EntryFailure {
            id: id.into(),
            code: if sender_fault {
                "InvalidMessageContents"
            } else {
                "InternalError"
            }
            .into(),
            message: "boom".into(),
            sender_fault,
        }
    }

    fn entries(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (entry_id(i), format!("body {i}"))).collect()
    }

    #[tokio::test]
    async fn failed_entries_are_retried_alone_until_accepted() {
        let calls = Mutex::new(Vec::new());
        send_with_retries(QueueName::Shards, entries(4), SEND_ATTEMPTS, MS, |sent| {
            let n = {
                let mut calls = calls.lock().unwrap();
                calls.push(sent.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>());
                calls.len()
            };
            async move {
                Ok(match n {
                    1 => vec![failure("m1", false), failure("m3", false)],
                    2 => vec![failure("m3", false)],
                    _ => vec![],
                })
            }
        })
        .await
        .expect("all entries accepted in the end");
        assert_eq!(
            *calls.lock().unwrap(),
            [vec!["m0", "m1", "m2", "m3"], vec!["m1", "m3"], vec!["m3"]]
        );
    }

    #[tokio::test]
    async fn retries_are_bounded_and_back_off() {
        let calls = Mutex::new(0u32);
        let start = std::time::Instant::now();
        let err = send_with_retries(QueueName::Results, entries(2), 4, MS * 10, |_| {
            *calls.lock().unwrap() += 1;
            async { Ok(vec![failure("m0", false)]) }
        })
        .await
        .unwrap_err();
        assert_eq!(*calls.lock().unwrap(), 4);
        // 10 + 20 + 40 ms between the four tries (less a few nanoseconds:
        // backon doubles in f32).
        assert!(
            start.elapsed() >= Duration::from_millis(69),
            "{:?}",
            start.elapsed()
        );
        match err {
            QueueError::EntryFailed {
                queue,
                entry,
                attempts,
                sender_fault,
                ..
            } => assert_eq!(
                (queue, entry.as_str(), attempts, sender_fault),
                ("results", "m0", 4, false)
            ),
            other => panic!("expected EntryFailed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn sender_fault_is_not_retried() {
        let calls = Mutex::new(0u32);
        let err = send_with_retries(QueueName::Reports, entries(3), SEND_ATTEMPTS, MS, |_| {
            *calls.lock().unwrap() += 1;
            async { Ok(vec![failure("m0", false), failure("m2", true)]) }
        })
        .await
        .unwrap_err();
        assert_eq!(*calls.lock().unwrap(), 1, "no retry after a sender fault");
        let text = err.to_string();
        assert!(
            text.contains("reports")
                && text.contains("m2")
                && text.contains("InvalidMessageContents")
                && text.contains("boom"),
            "{text}"
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let ms = |attempts| -> Vec<u128> {
            send_backoff(BASE_BACKOFF, attempts)
                .build()
                .map(|d| d.as_millis())
                .collect()
        };
        // One wait fewer than tries.
        assert_eq!(ms(SEND_ATTEMPTS), [100, 200, 400, 800]);
        assert_eq!(ms(8), [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(ms(1), [0u128; 0], "one try, no wait");
        let far = send_backoff(BASE_BACKOFF, 1000).build().last();
        assert_eq!(far, Some(MAX_BACKOFF));
    }

    #[test]
    fn waits_round_up_and_cap_at_20_seconds() {
        assert_eq!(wait_secs(Duration::ZERO), 0);
        assert_eq!(wait_secs(Duration::from_millis(500)), 1);
        assert_eq!(wait_secs(Duration::from_secs(3)), 3);
        assert_eq!(wait_secs(Duration::from_secs(3600)), 20);
        assert_eq!(wait_secs(Duration::MAX), 20);
    }
}
