//! The pipeline's queues on Azure Storage Queues: `<prefix>-shards`,
//! `-results`, `-reports`, `-requests`, each with `<name>-poison`.
//!
//! - **Lease.** A receive takes the message for the consumer's visibility
//!   timeout (set per receive, not per queue); unacked, it comes back with
//!   its dequeue count + 1, which is the delivery's `attempt`.
//! - **Poison.** Storage Queues have no redrive: a receive that sees a
//!   dequeue count over `max_dequeues` moves the message to `<name>-poison`
//!   (sent there, then deleted here) and looks again, so after N deliveries
//!   the message is a dead letter, as with SQS's `maxReceiveCount`. A
//!   message this adapter cannot decode goes there at once.
//! - **Size.** Message text is at most 64 KiB on the wire. Bodies travel
//!   base64-encoded (any text survives the XML envelope), so a body whose
//!   encoding would exceed [`MAX_WIRE_BYTES`] is written to the blob store
//!   under [`OVERFLOW_PREFIX`] and the message carries its key; the consumer
//!   reads it back and deletes it with the message. The port's own limit
//!   (`messages::MAX_MESSAGE_BYTES`, 200 KiB) still applies first.
//! - **Handles** are `<message id>:<pop receipt of the receive>`. Updating a
//!   message (release, and lease extension) gives it a new pop receipt, so
//!   the adapter keeps the current one per handle: the handle a consumer
//!   holds stays valid however often its lease is extended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::http::headers::HeaderName;
use azure_core::http::{RequestContent, StatusCode, Url};
use azure_storage_queue::models::{
    QueueClientGetPropertiesResultHeaders, QueueClientReceiveMessagesOptions,
    QueueClientSendMessageOptions, QueueMessage, ReceivedMessage,
};
use azure_storage_queue::{QueueClient, QueueClientOptions};

use super::AzureSettings;
use super::auth::{Service, SharedKeyPolicy, StorageCredential};
use super::blob::AzureBlobStore;
use super::error::{is_status, queue_error, status_and_code};
use crate::app::messages::QueueName;
use crate::app::ports::{BlobStore, JobQueue, QueueConsumer, Received};
use crate::errors::QueueError;

/// Storage Queues' limit on a message's text, in bytes on the wire.
pub const MAX_WIRE_BYTES: usize = 64 * 1024;
/// Where bodies too large for a message wait in the blob store.
pub const OVERFLOW_PREFIX: &str = "queue-overflow";
/// Marks a message whose text is a blob key, not a base64 body (`:` is not
/// a base64 character, so the two never mix).
const OVERFLOW_MARK: &str = "blob:";
/// Poison messages are kept 14 days (as the SQS dead-letter queues).
const POISON_TTL_SECS: i32 = 14 * 24 * 3600;
/// `dead_letters` reads at most this many bodies.
pub const MAX_DEAD_LETTERS: usize = 1000;
/// Storage Queues hand out at most 32 messages per receive.
const RECEIVE_MAX: i32 = 32;
/// Polling: Storage Queues have no long poll, so an empty receive is
/// repeated after a pause that doubles from the first to the last value.
const FIRST_POLL: Duration = Duration::from_millis(50);
const MAX_POLL: Duration = Duration::from_secs(1);
/// Leases remembered (for handles whose pop receipt changed); crashed
/// consumers' leases are forgotten after the longest visibility.
const MAX_LEASES: usize = 4096;

/// The queue names of one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueNames {
    prefix: String,
}

impl QueueNames {
    /// Checks that `<prefix>-requests-poison` (the longest name) is a valid
    /// queue name: 3-63 lowercase letters, digits and single hyphens.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let longest = format!("{prefix}-requests-poison");
        let ok = !prefix.is_empty()
            && longest.len() <= 63
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && prefix.as_bytes()[0].is_ascii_alphanumeric()
            && !prefix.ends_with('-')
            && !prefix.contains("--");
        if ok {
            Ok(Self {
                prefix: prefix.to_string(),
            })
        } else {
            Err(format!(
                "a queue prefix is 1-{} lowercase letters, digits and single hyphens, starting with a letter or digit and not ending with a hyphen",
                63 - "-requests-poison".len()
            ))
        }
    }

    pub fn name(&self, queue: QueueName) -> String {
        format!("{}-{}", self.prefix, queue.as_str())
    }

    pub fn poison(&self, queue: QueueName) -> String {
        format!("{}-{}-poison", self.prefix, queue.as_str())
    }
}

/// What a handle currently stands for.
struct Lease {
    pop_receipt: String,
    overflow: Option<String>,
    taken: Instant,
}

/// [`JobQueue`] + [`QueueConsumer`] on Storage Queues.
pub struct AzureQueue {
    names: QueueNames,
    queues: HashMap<QueueName, QueueClient>,
    poison: HashMap<QueueName, QueueClient>,
    blobs: Arc<AzureBlobStore>,
    visibility: Duration,
    max_dequeues: u32,
    leases: Mutex<HashMap<String, Lease>>,
}

pub(crate) fn queue_client(
    endpoint: &str,
    name: &str,
    credential: &StorageCredential,
) -> Result<QueueClient, String> {
    let url = Url::parse(&format!("{}/{name}", endpoint.trim_end_matches('/')))
        .map_err(|e| format!("bad queue URL: {e}"))?;
    let (token, signer) = match credential {
        StorageCredential::Token(t) => (Some(t.clone()), None),
        StorageCredential::SharedKey { account, key } => (
            None,
            Some(
                SharedKeyPolicy::new(account, key, Service::BlobOrQueue)
                    .map_err(|e| e.to_string())?,
            ),
        ),
    };
    let options = QueueClientOptions {
        client_options: super::client_options(signer)?,
        ..Default::default()
    };
    QueueClient::new(url, token, Some(options)).map_err(|e| e.to_string())
}

impl AzureQueue {
    pub(crate) fn new(
        settings: &AzureSettings,
        credential: &StorageCredential,
        blobs: Arc<AzureBlobStore>,
    ) -> Result<Self, String> {
        let names = QueueNames::new(&settings.queue_prefix)?;
        let mut queues = HashMap::new();
        let mut poison = HashMap::new();
        for q in QueueName::ALL {
            queues.insert(
                q,
                queue_client(&settings.queue_endpoint, &names.name(q), credential)?,
            );
            poison.insert(
                q,
                queue_client(&settings.queue_endpoint, &names.poison(q), credential)?,
            );
        }
        Ok(Self {
            names,
            queues,
            poison,
            blobs,
            visibility: settings.visibility,
            max_dequeues: settings.max_dequeues,
            leases: Mutex::new(HashMap::new()),
        })
    }

    pub fn names(&self) -> &QueueNames {
        &self.names
    }

    /// Deliveries before a message moves to its poison queue.
    pub fn max_dequeues(&self) -> u32 {
        self.max_dequeues
    }

    fn client(&self, queue: QueueName) -> &QueueClient {
        &self.queues[&queue]
    }

    /// Creates the four queues and their poison queues (idempotent).
    pub async fn create_queues(&self) -> Result<(), QueueError> {
        for q in QueueName::ALL {
            for client in [&self.queues[&q], &self.poison[&q]] {
                match client.create(None).await {
                    Ok(_) => {}
                    Err(e) if is_status(&e, StatusCode::Conflict) => {}
                    Err(e) => return Err(queue_error(q, "create queue", &e)),
                }
            }
        }
        Ok(())
    }

    /// The wire text of `body`: base64 inline, or a blob key.
    async fn encode(&self, queue: QueueName, body: &str) -> Result<(String, bool), QueueError> {
        let inline = azure_core::base64::encode(body.as_bytes());
        if inline.len() <= MAX_WIRE_BYTES {
            return Ok((inline, false));
        }
        let key = format!(
            "{OVERFLOW_PREFIX}/{}/{}",
            queue.as_str(),
            ulid::Ulid::new().to_string().to_lowercase()
        );
        self.blobs
            .put(
                &key,
                body.as_bytes().to_vec(),
                crate::app::ports::content_type::JSON,
            )
            .await
            .map_err(|e| QueueError::Backend {
                backend: "azure-queue",
                queue: queue.as_str(),
                source: format!("storing an oversized body in the blob store: {e}").into(),
            })?;
        Ok((format!("{OVERFLOW_MARK}{key}"), true))
    }

    /// The body a message's text stands for, and its overflow blob.
    /// `Err` carries why the text is unreadable (the message is poison).
    async fn decode(&self, text: &str) -> Result<(String, Option<String>), String> {
        if let Some(key) = text.strip_prefix(OVERFLOW_MARK) {
            if !key.starts_with(OVERFLOW_PREFIX) {
                return Err(format!(
                    "overflow key `{key}` is outside {OVERFLOW_PREFIX}/"
                ));
            }
            let bytes = self
                .blobs
                .get(key)
                .await
                .map_err(|e| format!("its body blob cannot be read: {e}"))?;
            let body =
                String::from_utf8(bytes).map_err(|_| "its body blob is not UTF-8".to_string())?;
            return Ok((body, Some(key.to_string())));
        }
        let bytes =
            azure_core::base64::decode(text).map_err(|_| "its text is not base64".to_string())?;
        let body = String::from_utf8(bytes).map_err(|_| "its body is not UTF-8".to_string())?;
        Ok((body, None))
    }

    async fn send_text(
        &self,
        client: &QueueClient,
        queue: QueueName,
        text: String,
        ttl: Option<i32>,
    ) -> Result<(), QueueError> {
        let content: RequestContent<QueueMessage, _> = QueueMessage {
            message_text: Some(text),
        }
        .try_into()
        .map_err(|e| queue_error(queue, "encode message", &e))?;
        let options = QueueClientSendMessageOptions {
            message_time_to_live: ttl,
            ..Default::default()
        };
        client
            .send_message(content, Some(options))
            .await
            .map_err(|e| queue_error(queue, "send message", &e))?;
        Ok(())
    }

    /// Moves a received message to the poison queue: a copy there, then
    /// the delete here (with this receive's pop receipt, so a message that
    /// another consumer holds by now is not deleted under it).
    async fn to_poison(
        &self,
        queue: QueueName,
        m: &ReceivedMessage,
        why: &str,
    ) -> Result<(), QueueError> {
        let (Some(id), Some(pop)) = (&m.message_id, &m.pop_receipt) else {
            return Ok(());
        };
        let text = m.message_text.clone().unwrap_or_default();
        tracing::warn!(
            queue = queue.as_str(),
            message_id = %id,
            dequeue_count = m.dequeue_count.unwrap_or(0),
            poison_queue = %self.names.poison(queue),
            reason = why,
            "moving a message to the poison queue"
        );
        self.send_text(&self.poison[&queue], queue, text, Some(POISON_TTL_SECS))
            .await?;
        match self.client(queue).delete_message(id, pop, None).await {
            Ok(_) => Ok(()),
            Err(e) if is_stale(&e) => Ok(()),
            Err(e) => Err(queue_error(queue, "delete poison message", &e)),
        }
    }

    async fn receive_batch(
        &self,
        client: &QueueClient,
        queue: QueueName,
        count: i32,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let options = QueueClientReceiveMessagesOptions {
            number_of_messages: Some(count),
            visibility_timeout: Some(whole_secs(visibility)),
            ..Default::default()
        };
        let rsp = client
            .receive_messages(Some(options))
            .await
            .map_err(|e| queue_error(queue, "receive messages", &e))?;
        let list = rsp
            .into_model()
            .map_err(|e| queue_error(queue, "read received messages", &e))?;
        Ok(list.items.unwrap_or_default())
    }

    /// Sets a held message's visibility; returns its new pop receipt, or
    /// `None` when the handle is stale (the message was deleted, or
    /// another consumer holds it).
    async fn set_visibility(
        &self,
        queue: QueueName,
        id: &str,
        pop: &str,
        visibility: Duration,
    ) -> Result<Option<String>, QueueError> {
        match self
            .client(queue)
            .update_message(id, pop, whole_secs(visibility), None)
            .await
        {
            Ok(rsp) => Ok(rsp
                .headers()
                .get_optional_str(&HeaderName::from_static("x-ms-popreceipt"))
                .map(str::to_string)),
            Err(e) if is_stale(&e) => Ok(None),
            Err(e) => Err(queue_error(queue, "update message", &e)),
        }
    }

    /// The message id and current pop receipt of `handle`.
    fn current(&self, handle: &str) -> Option<(String, String, Option<String>)> {
        let (id, pop) = handle.split_once(':')?;
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        Some(match leases.get(handle) {
            Some(l) => (id.to_string(), l.pop_receipt.clone(), l.overflow.clone()),
            None => (id.to_string(), pop.to_string(), None),
        })
    }

    fn forget(&self, handle: &str) {
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(handle);
    }

    /// Extends a held message's lease to `visibility` from now (Update
    /// Message). The handle stays valid: the new pop receipt is kept under
    /// it. A stale handle is not an error (the message already came back).
    async fn extend_lease(
        &self,
        queue: QueueName,
        handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        let Some((id, pop, overflow)) = self.current(handle) else {
            return Ok(());
        };
        if let Some(new_pop) = self.set_visibility(queue, &id, &pop, visibility).await? {
            let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            leases.insert(
                handle.to_string(),
                Lease {
                    pop_receipt: new_pop,
                    overflow,
                    taken: Instant::now(),
                },
            );
        }
        Ok(())
    }
}

/// Raw access for tests: message texts as they are on the wire.
#[cfg(feature = "testkit")]
impl AzureQueue {
    /// Sends `text` as the message text, unencoded (to test what the
    /// service and the consumer do with texts this adapter never writes).
    pub async fn send_raw(&self, queue: QueueName, text: String) -> Result<(), QueueError> {
        self.send_text(self.client(queue), queue, text, None).await
    }

    /// Up to 32 message texts at the front of the queue, left in place.
    pub async fn peek_raw(&self, queue: QueueName) -> Result<Vec<String>, QueueError> {
        let options = azure_storage_queue::models::QueueClientPeekMessagesOptions {
            number_of_messages: Some(RECEIVE_MAX),
            ..Default::default()
        };
        let rsp = self
            .client(queue)
            .peek_messages(Some(options))
            .await
            .map_err(|e| queue_error(queue, "peek messages", &e))?;
        let list = rsp
            .into_model()
            .map_err(|e| queue_error(queue, "read peeked messages", &e))?;
        Ok(list
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.message_text)
            .collect())
    }
}

/// A pop receipt that no longer matches (another receive took the message)
/// or a message already deleted.
fn is_stale(e: &azure_core::Error) -> bool {
    matches!(
        status_and_code(e),
        (Some(404), _) | (Some(400), Some("PopReceiptMismatch"))
    )
}

/// Storage Queues count visibility in whole seconds: rounded up, so a lease
/// is never shorter than asked.
fn whole_secs(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.min(super::MAX_VISIBILITY.as_secs()) as i32
}

#[async_trait]
impl JobQueue for AzureQueue {
    /// All-or-nothing on size (like SQS): one body over the port's limit
    /// refuses the call before anything is sent. Storage Queues have no
    /// batch send, so the bodies go one request each, in order.
    async fn send_batch(&self, queue: QueueName, bodies: Vec<String>) -> Result<(), QueueError> {
        crate::app::messages::check_body_sizes(queue, &bodies)?;
        for body in bodies {
            let (text, overflow) = self.encode(queue, &body).await?;
            if overflow {
                tracing::debug!(
                    queue = queue.as_str(),
                    bytes = body.len(),
                    "body sent through the blob store"
                );
            }
            self.send_text(self.client(queue), queue, text, None)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl QueueConsumer for AzureQueue {
    /// Polls until a message arrives or `wait` has passed (Storage Queues
    /// have no long poll). `attempt` is the message's dequeue count.
    async fn receive(
        &self,
        queue: QueueName,
        wait: Duration,
    ) -> Result<Option<Received>, QueueError> {
        let start = Instant::now();
        let mut pause = FIRST_POLL;
        loop {
            let got = self
                .receive_batch(self.client(queue), queue, 1, self.visibility)
                .await?;
            if let Some(m) = got.into_iter().next() {
                let dequeues = m.dequeue_count.unwrap_or(1).max(1);
                if dequeues > i64::from(self.max_dequeues) {
                    self.to_poison(queue, &m, "delivered more than max_dequeues times")
                        .await?;
                    continue;
                }
                let (Some(id), Some(pop)) = (m.message_id.clone(), m.pop_receipt.clone()) else {
                    return Err(QueueError::Backend {
                        backend: "azure-queue",
                        queue: queue.as_str(),
                        source: "a received message has no id or pop receipt".into(),
                    });
                };
                let text = m.message_text.clone().unwrap_or_default();
                let (body, overflow) = match self.decode(&text).await {
                    Ok(decoded) => decoded,
                    Err(why) => {
                        self.to_poison(queue, &m, &format!("undecodable message: {why}"))
                            .await?;
                        continue;
                    }
                };
                let handle = format!("{id}:{pop}");
                {
                    let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
                    if leases.len() >= MAX_LEASES {
                        leases.retain(|_, l| l.taken.elapsed() < super::MAX_VISIBILITY);
                        if leases.len() >= MAX_LEASES {
                            leases.clear();
                        }
                    }
                    leases.insert(
                        handle.clone(),
                        Lease {
                            pop_receipt: pop,
                            overflow,
                            taken: Instant::now(),
                        },
                    );
                }
                return Ok(Some(Received {
                    handle,
                    body,
                    attempt: u32::try_from(dequeues).unwrap_or(u32::MAX),
                }));
            }
            let remaining = wait.saturating_sub(start.elapsed());
            if remaining.is_zero() {
                return Ok(None);
            }
            tokio::time::sleep(pause.min(remaining)).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Deletes the message (and its overflow blob). A stale handle is not
    /// an error: the message is another consumer's now, or already gone.
    async fn ack(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        let Some((id, pop, overflow)) = self.current(handle) else {
            tracing::warn!(
                queue = queue.as_str(),
                "ack with a malformed handle ignored"
            );
            return Ok(());
        };
        let deleted = match self.client(queue).delete_message(&id, &pop, None).await {
            Ok(_) => true,
            Err(e) if is_stale(&e) => false,
            Err(e) => return Err(queue_error(queue, "delete message", &e)),
        };
        self.forget(handle);
        if let (true, Some(key)) = (deleted, overflow) {
            // Best effort: a blob left behind is only storage (the
            // container's lifecycle rule removes old ones).
            if let Err(e) = self.blobs.delete(&key).await {
                tracing::warn!(queue = queue.as_str(), key = %key, error = %e, "could not delete an overflow blob");
            }
        }
        Ok(())
    }

    /// Visibility 0: the message is back at once, its dequeue count kept.
    async fn release(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        let Some((id, pop, _)) = self.current(handle) else {
            return Ok(());
        };
        self.set_visibility(queue, &id, &pop, Duration::ZERO)
            .await?;
        self.forget(handle);
        Ok(())
    }

    /// The lease every receive takes (Storage Queues set it per receive).
    fn visibility(&self, _queue: QueueName) -> Duration {
        self.visibility
    }

    /// Update Message with a new visibility timeout. Each update changes the
    /// message's pop receipt; the adapter keeps the new one under the
    /// handle the consumer holds, so later renewals, the ack and the
    /// release all use it.
    async fn extend(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        self.extend_lease(queue, handle, self.visibility).await
    }

    /// The body goes to the poison queue (through the blob store if it is
    /// large, as any send), then the message is deleted.
    async fn dead_letter(
        &self,
        queue: QueueName,
        message: &Received,
        reason: &str,
    ) -> Result<(), QueueError> {
        tracing::warn!(
            queue = queue.as_str(),
            poison_queue = %self.names.poison(queue),
            reason,
            "moving a message to the poison queue"
        );
        let (text, _) = self.encode(queue, &message.body).await?;
        self.send_text(&self.poison[&queue], queue, text, Some(POISON_TTL_SECS))
            .await?;
        self.ack(queue, &message.handle).await
    }

    /// Reads the poison queue without consuming it: receives up to
    /// [`MAX_DEAD_LETTERS`] messages for 30 s, then makes each visible again.
    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<String>, QueueError> {
        let client = &self.poison[&queue];
        let mut held = Vec::new();
        while held.len() < MAX_DEAD_LETTERS {
            let batch = self
                .receive_batch(client, queue, RECEIVE_MAX, Duration::from_secs(30))
                .await?;
            if batch.is_empty() {
                break;
            }
            held.extend(batch);
        }
        let mut bodies = Vec::with_capacity(held.len());
        for m in &held {
            let text = m.message_text.clone().unwrap_or_default();
            bodies.push(match self.decode(&text).await {
                Ok((body, _)) => body,
                // Unreadable poison is shown as it is.
                Err(_) => text,
            });
            if let (Some(id), Some(pop)) = (&m.message_id, &m.pop_receipt) {
                match client.update_message(id, pop, 0, None).await {
                    Ok(_) => {}
                    Err(e) if is_stale(&e) => {}
                    Err(e) => return Err(queue_error(queue, "release dead letter", &e)),
                }
            }
        }
        Ok(bodies)
    }

    /// Every main queue's approximate message count (which includes
    /// messages in flight) is 0.
    async fn is_idle(&self) -> Result<bool, QueueError> {
        for q in QueueName::ALL {
            let rsp = self
                .client(q)
                .get_properties(None)
                .await
                .map_err(|e| queue_error(q, "get queue properties", &e))?;
            let count = rsp
                .approximate_messages_count()
                .map_err(|e| queue_error(q, "read message count", &e))?;
            if count.unwrap_or(0) > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_follow_storage_rules() {
        let n = QueueNames::new("tx-1").unwrap();
        assert_eq!(n.name(QueueName::Shards), "tx-1-shards");
        assert_eq!(n.poison(QueueName::Requests), "tx-1-requests-poison");
        for bad in ["", "-a", "a-", "a--b", "Upper", "a_b", &"a".repeat(48)] {
            assert!(QueueNames::new(bad).is_err(), "{bad:?}");
        }
        assert!(QueueNames::new(&"a".repeat(47)).is_ok());
    }

    #[test]
    fn visibility_rounds_up_to_whole_seconds() {
        assert_eq!(whole_secs(Duration::from_millis(500)), 1);
        assert_eq!(whole_secs(Duration::from_secs(2)), 2);
        assert_eq!(whole_secs(Duration::ZERO), 0);
    }
}
