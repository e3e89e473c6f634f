//! The pipeline's queues on Pub/Sub: per [`QueueName`] one topic and one
//! pull subscription, whose dead-letter policy forwards a message to the
//! queue's dead-letter topic (with a subscription of its own, so nothing
//! forwarded is lost) after `max_delivery_attempts` deliveries.
//!
//! Sending ([`JobQueue::send_batch`]): a body over
//! [`MAX_MESSAGE_BYTES`](crate::app::messages::MAX_MESSAGE_BYTES) refuses the
//! whole call before anything is published (as on SQS: Pub/Sub's own limit is
//! 10 MB, but a handler must not be able to write a message another backend
//! refuses); the rest go in `Publish` calls of at most [`MAX_PUBLISH_MESSAGES`]
//! messages and [`MAX_PUBLISH_BYTES`]. Each message carries the attributes
//! `run`, `shard` and `attempt` when its body names them, for filtering and
//! for logs on push endpoints.
//!
//! Consuming ([`QueueConsumer`]): unary `Pull` of one message. `attempt` is
//! Pub/Sub's delivery attempt (set because every subscription has a
//! dead-letter policy). A message is leased for the subscription's ack
//! deadline, at least 10 s (Pub/Sub's minimum); a shorter visibility is made
//! by a `ModifyAckDeadline` right after the pull. `extend` renews a lease
//! with `ModifyAckDeadline` (how a worker holds a shard longer than any ack
//! deadline); `release` is `ModifyAckDeadline` 0 (a nack: redelivered at
//! once); `dead_letter` publishes a hopeless message to the dead-letter
//! topic at once and acks it.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use gcloud_gax::grpc::{Code, Status};
use gcloud_googleapis::pubsub::v1::{
    DeadLetterPolicy, ModifyAckDeadlineRequest, PubsubMessage, PullRequest,
};
use gcloud_pubsub::client::Client;
use gcloud_pubsub::publisher::Publisher;
use gcloud_pubsub::subscription::{Subscription, SubscriptionConfig};
use tokio::time::Instant;

use super::error::PubSubError;
use crate::app::messages::QueueName;
use crate::app::ports::{JobQueue, QueueConsumer, Received};
use crate::errors::QueueError;

const BACKEND: &str = "pubsub";

/// Pub/Sub's limit on messages per `Publish` request.
pub const MAX_PUBLISH_MESSAGES: usize = 1000;
/// Bytes of bodies per `Publish` request: Pub/Sub refuses requests over
/// 10 MB; the margin covers attributes and framing.
pub const MAX_PUBLISH_BYTES: usize = 9 * 1024 * 1024;
/// Pub/Sub's range for a subscription's ack deadline.
pub const MIN_ACK_DEADLINE: Duration = Duration::from_secs(10);
pub const MAX_ACK_DEADLINE: Duration = Duration::from_secs(600);
/// Pub/Sub's range for a dead-letter policy's `max_delivery_attempts`.
pub const MIN_DELIVERY_ATTEMPTS: u32 = 5;
pub const MAX_DELIVERY_ATTEMPTS: u32 = 100;
/// `dead_letters` reads at most this many bodies.
pub const MAX_DEAD_LETTERS: usize = 1000;
/// Ack deadline of the dead-letter subscriptions: long enough that one
/// `dead_letters` call does not see a message twice.
const DEAD_LETTER_ACK_DEADLINE: Duration = Duration::from_secs(60);
/// Pause after the first empty pull while `receive` waits; it doubles
/// after each further empty pull, up to [`MAX_POLL`], so an idle worker
/// pulls about once a second.
const POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(1);

/// How the queues are set up (`create_queues`) and leased (`receive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PubSubOptions {
    /// How long a received message stays leased before it is delivered
    /// again: whole seconds, 1 to 600.
    pub visibility: Duration,
    /// Deliveries before a message moves to the dead-letter topic, 5 to 100.
    pub max_delivery_attempts: u32,
}

impl Default for PubSubOptions {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(60),
            max_delivery_attempts: MIN_DELIVERY_ATTEMPTS,
        }
    }
}

impl PubSubOptions {
    /// Refuses values Pub/Sub (or a whole-second lease) cannot honour.
    pub fn validate(&self) -> Result<(), QueueError> {
        let v = self.visibility;
        if v.subsec_nanos() != 0 || v < Duration::from_secs(1) || v > MAX_ACK_DEADLINE {
            return Err(QueueError::InvalidSetting {
                setting: "visibility",
                value: format!("{v:?}"),
                reason: "must be whole seconds from 1 to 600 (Pub/Sub's longest ack deadline)"
                    .into(),
            });
        }
        let n = self.max_delivery_attempts;
        if !(MIN_DELIVERY_ATTEMPTS..=MAX_DELIVERY_ATTEMPTS).contains(&n) {
            return Err(QueueError::InvalidSetting {
                setting: "max_delivery_attempts",
                value: n.to_string(),
                reason: format!(
                    "Pub/Sub's dead-letter policy takes {MIN_DELIVERY_ATTEMPTS} to {MAX_DELIVERY_ATTEMPTS}"
                ),
            });
        }
        Ok(())
    }

    /// The subscription's ack deadline: the visibility, raised to Pub/Sub's
    /// minimum (a shorter lease is set per message after the pull).
    fn ack_deadline(&self) -> Duration {
        self.visibility.clamp(MIN_ACK_DEADLINE, MAX_ACK_DEADLINE)
    }
}

/// The resource names of one queue (ids within the project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueResources {
    pub topic: String,
    pub subscription: String,
    pub dead_letter_topic: String,
    pub dead_letter_subscription: String,
}

/// The resource ids for `prefix`: `<prefix>-<queue>` (topic),
/// `<prefix>-<queue>-sub`, `<prefix>-<queue>-dlq`, `<prefix>-<queue>-dlq-sub`.
/// The prefix must be 1-200 characters of `a-z`, `0-9` and `-`, starting
/// with a letter and not with `goog` (Pub/Sub's resource name rules).
pub fn resources(prefix: &str, queue: QueueName) -> Result<QueueResources, QueueError> {
    validate_prefix(prefix)?;
    let base = format!("{prefix}-{}", queue.as_str());
    Ok(QueueResources {
        topic: base.clone(),
        subscription: format!("{base}-sub"),
        dead_letter_topic: format!("{base}-dlq"),
        dead_letter_subscription: format!("{base}-dlq-sub"),
    })
}

fn validate_prefix(prefix: &str) -> Result<(), QueueError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 200
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && !prefix.starts_with("goog")
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        return Ok(());
    }
    Err(QueueError::InvalidSetting {
        setting: "pubsub prefix",
        value: prefix.chars().take(60).collect(),
        reason:
            "must be 1-200 characters of a-z, 0-9 and `-`, start with a letter and not with `goog`"
                .into(),
    })
}

fn backend(queue: QueueName, operation: &'static str, resource: &str, e: Status) -> QueueError {
    QueueError::Backend {
        backend: BACKEND,
        queue: queue.as_str(),
        source: Box::new(PubSubError::Rpc {
            operation,
            resource: resource.to_string(),
            code: format!("{:?}", e.code()),
            message: e.message().to_string(),
        }),
    }
}

/// Creates the topics and subscriptions of all four queues, idempotently
/// (an existing resource is kept as it is: settings of an existing
/// subscription are not changed). For tests, emulators and local runs;
/// deployments create the same from `terraform/gcp/`.
pub async fn create_queues(
    client: &Client,
    prefix: &str,
    options: PubSubOptions,
) -> Result<(), QueueError> {
    options.validate()?;
    for queue in QueueName::ALL {
        let r = resources(prefix, queue)?;
        for topic in [&r.dead_letter_topic, &r.topic] {
            match client.topic(topic).create(None, None).await {
                Ok(()) => {}
                Err(e) if e.code() == Code::AlreadyExists => {}
                Err(e) => return Err(backend(queue, "CreateTopic", topic, e)),
            }
        }
        let dlq_topic = client.fully_qualified_topic_name(&r.dead_letter_topic);
        let subscriptions = [
            (
                &r.dead_letter_subscription,
                &dlq_topic,
                SubscriptionConfig {
                    ack_deadline_seconds: DEAD_LETTER_ACK_DEADLINE.as_secs() as i32,
                    ..Default::default()
                },
            ),
            (
                &r.subscription,
                &client.fully_qualified_topic_name(&r.topic),
                SubscriptionConfig {
                    ack_deadline_seconds: options.ack_deadline().as_secs() as i32,
                    dead_letter_policy: Some(DeadLetterPolicy {
                        dead_letter_topic: dlq_topic.clone(),
                        max_delivery_attempts: options.max_delivery_attempts as i32,
                    }),
                    ..Default::default()
                },
            ),
        ];
        for (id, topic, config) in subscriptions {
            match client.subscription(id).create(topic, config, None).await {
                Ok(()) => {}
                Err(e) if e.code() == Code::AlreadyExists => {}
                Err(e) => return Err(backend(queue, "CreateSubscription", id, e)),
            }
        }
    }
    Ok(())
}

/// One queue's publisher and subscriptions.
struct Endpoints {
    publisher: Publisher,
    /// Publishes to the dead-letter topic (`QueueConsumer::dead_letter`).
    dead_letter_publisher: Publisher,
    subscription: Subscription,
    dead_letters: Subscription,
}

/// A message this process holds a lease on.
#[derive(Debug, Clone)]
struct Flight {
    queue: QueueName,
    message_id: String,
    attempt: u32,
    lease_until: Instant,
}

/// Open messages the ledger keeps per queue at most. A process that only
/// publishes (the intake) never sees its messages settled; the horizon and
/// this cap keep its ledger bounded.
const MAX_OPEN: usize = 10_000;
/// An open message last seen this long ago is forgotten: by then it was
/// handled elsewhere or sits in a queue nobody here pulls.
const OPEN_HORIZON: Duration = Duration::from_secs(3600);

/// What this process knows is not settled yet: messages it published or
/// received that nobody has acked (by message id, with when they were last
/// seen), and its leases (by ack id). Pub/Sub has no message counts of its
/// own (only Cloud Monitoring metrics, minutes late), so
/// [`QueueConsumer::is_idle`] answers from this.
#[derive(Debug, Default)]
struct Ledger {
    open: HashMap<QueueName, HashMap<String, Instant>>,
    flights: HashMap<String, Flight>,
}

impl Ledger {
    /// Records messages as open, within [`MAX_OPEN`] per queue.
    fn note(&mut self, queue: QueueName, ids: impl IntoIterator<Item = String>, now: Instant) {
        let open = self.open.entry(queue).or_default();
        for id in ids {
            if open.len() >= MAX_OPEN && !open.contains_key(&id) {
                open.retain(|_, seen| now.duration_since(*seen) < OPEN_HORIZON);
                if open.len() >= MAX_OPEN {
                    tracing::debug!(
                        queue = queue.as_str(),
                        "idle ledger full; not tracking a message"
                    );
                    continue;
                }
            }
            open.insert(id, now);
        }
    }

    /// Forgets leases that ran out. A lease that ran out on the last
    /// allowed delivery means Pub/Sub dead-lettered the message; any other
    /// means the message is back in its queue (still open).
    fn expire(&mut self, now: Instant, max_attempts: u32) {
        let expired: Vec<String> = self
            .flights
            .iter()
            .filter(|(_, f)| f.lease_until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(f) = self.flights.remove(&id) {
                if f.attempt >= max_attempts {
                    self.settle(f.queue, &f.message_id);
                }
            }
        }
        for open in self.open.values_mut() {
            open.retain(|_, seen| now.duration_since(*seen) < OPEN_HORIZON);
        }
    }

    fn settle(&mut self, queue: QueueName, message_id: &str) {
        if let Some(open) = self.open.get_mut(&queue) {
            open.remove(message_id);
        }
    }
}

/// The four queues on Pub/Sub ([`JobQueue`] + [`QueueConsumer`]). Cheap to
/// share behind an `Arc`.
pub struct PubSubQueue {
    endpoints: HashMap<QueueName, Endpoints>,
    options: PubSubOptions,
    ledger: Mutex<Ledger>,
}

impl PubSubQueue {
    /// The queues named by `prefix` (see [`resources`]); they must exist
    /// (`create_queues`, or the deployment).
    pub fn new(client: &Client, prefix: &str, options: PubSubOptions) -> Result<Self, QueueError> {
        options.validate()?;
        let mut endpoints = HashMap::new();
        for queue in QueueName::ALL {
            let r = resources(prefix, queue)?;
            endpoints.insert(
                queue,
                Endpoints {
                    publisher: client.topic(&r.topic).new_publisher(None),
                    dead_letter_publisher: client.topic(&r.dead_letter_topic).new_publisher(None),
                    subscription: client.subscription(&r.subscription),
                    dead_letters: client.subscription(&r.dead_letter_subscription),
                },
            );
        }
        Ok(Self {
            endpoints,
            options,
            ledger: Mutex::new(Ledger::default()),
        })
    }

    pub fn options(&self) -> PubSubOptions {
        self.options
    }

    fn endpoints(&self, queue: QueueName) -> &Endpoints {
        // Every queue gets its endpoints in `new`.
        &self.endpoints[&queue]
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // Every update is complete between statements; poison carries no risk.
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One unary pull of at most `max` messages, answered at once.
    async fn pull_now(
        &self,
        queue: QueueName,
        subscription: &Subscription,
        max: i32,
    ) -> Result<Vec<gcloud_googleapis::pubsub::v1::ReceivedMessage>, QueueError> {
        // `return_immediately` is deprecated because a long pull is cheaper
        // per message; a worker here waits with a deadline of its own, and a
        // long pull cancelled at that deadline may have leased a message
        // that then sits out its ack deadline unseen.
        #[allow(deprecated)]
        let request = PullRequest {
            subscription: subscription.fully_qualified_name().to_string(),
            return_immediately: true,
            max_messages: max,
        };
        let out = subscription
            .get_client()
            .pull(request, None)
            .await
            .map_err(|e| backend(queue, "Pull", subscription.fully_qualified_name(), e))?;
        Ok(out.into_inner().received_messages)
    }

    async fn modify_deadline(
        &self,
        subscription: &Subscription,
        ack_ids: Vec<String>,
        seconds: i32,
    ) -> Result<(), Status> {
        subscription
            .get_client()
            .modify_ack_deadline(
                ModifyAckDeadlineRequest {
                    subscription: subscription.fully_qualified_name().to_string(),
                    ack_ids,
                    ack_deadline_seconds: seconds,
                },
                None,
            )
            .await
            .map(|_| ())
    }
}

/// `run`, `shard` and `attempt` of a body, when it names them (shard jobs
/// name the shard inside `job`), as message attributes.
pub fn attributes_of(body: &str) -> HashMap<String, String> {
    let mut attrs = HashMap::new();
    let Ok(serde_json::Value::Object(top)) = serde_json::from_str::<serde_json::Value>(body) else {
        return attrs;
    };
    let job = top.get("job").and_then(|j| j.as_object());
    let field = |name: &str| top.get(name).or_else(|| job.and_then(|j| j.get(name)));
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if let Some(shard) = field("shard").and_then(text) {
        // A shard id is `<run>/<index>`.
        if let Some((run, _)) = shard.split_once('/') {
            attrs.insert("run".into(), run.to_string());
        }
        attrs.insert("shard".into(), shard);
    }
    if let Some(run) = field("run").and_then(text) {
        attrs.insert("run".into(), run);
    }
    if let Some(attempt) = field("attempt").and_then(text) {
        attrs.insert("attempt".into(), attempt);
    }
    // Attribute values are limited to 1024 bytes; ids are far shorter, and
    // anything else is not worth a refused publish.
    attrs.retain(|_, v| v.len() <= 256);
    attrs
}

/// Splits bodies of the given sizes, in order, into consecutive groups of
/// at most [`MAX_PUBLISH_MESSAGES`] messages and [`MAX_PUBLISH_BYTES`].
pub fn plan_publishes(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == MAX_PUBLISH_MESSAGES || bytes + size > MAX_PUBLISH_BYTES;
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

#[async_trait]
impl JobQueue for PubSubQueue {
    /// All-or-nothing on size; the publishes then go one after another. The
    /// client retries failed calls (unavailable, deadline, internal,
    /// resource exhausted) with backoff; an error after that means some
    /// bodies may have been published, so callers retry the whole call.
    async fn send_batch(&self, queue: QueueName, bodies: Vec<String>) -> Result<(), QueueError> {
        crate::app::messages::check_body_sizes(queue, &bodies)?;
        let sizes: Vec<usize> = bodies.iter().map(String::len).collect();
        let groups = plan_publishes(&sizes);
        let mut bodies = bodies.into_iter();
        let publisher = &self.endpoints(queue).publisher;
        for group in groups {
            let messages: Vec<PubsubMessage> = bodies
                .by_ref()
                .take(group.len())
                .map(|body| PubsubMessage {
                    attributes: attributes_of(&body),
                    data: body.into_bytes(),
                    ..Default::default()
                })
                .collect();
            let ids = publisher
                .publish_immediately(messages, None)
                .await
                .map_err(|e| backend(queue, "Publish", queue.as_str(), e))?;
            self.ledger().note(queue, ids, Instant::now());
        }
        Ok(())
    }
}

#[async_trait]
impl QueueConsumer for PubSubQueue {
    /// Pulls until a message arrives or `wait` has passed, pausing 100 ms
    /// after an empty pull, doubling up to 1 s.
    async fn receive(
        &self,
        queue: QueueName,
        wait: Duration,
    ) -> Result<Option<Received>, QueueError> {
        let subscription = &self.endpoints(queue).subscription;
        let start = Instant::now();
        let mut pause = POLL;
        loop {
            let pulled = self.pull_now(queue, subscription, 1).await?;
            if let Some(m) = pulled.into_iter().find(|m| m.message.is_some()) {
                let message = m.message.unwrap_or_default();
                let visibility = self.options.visibility;
                if visibility < self.options.ack_deadline() {
                    // Shorten the lease to the visibility asked for. Should
                    // this fail, the message is only leased longer.
                    if let Err(e) = self
                        .modify_deadline(
                            subscription,
                            vec![m.ack_id.clone()],
                            visibility.as_secs() as i32,
                        )
                        .await
                    {
                        tracing::warn!(queue = queue.as_str(), error = %e, "could not shorten a lease to the visibility timeout");
                    }
                }
                let attempt = match u32::try_from(m.delivery_attempt) {
                    Ok(n) if n > 0 => n,
                    _ => {
                        tracing::warn!(
                            queue = queue.as_str(),
                            message_id = %message.message_id,
                            "message without a delivery attempt (subscription without a dead-letter policy?); taking it as attempt 1"
                        );
                        1
                    }
                };
                {
                    let mut ledger = self.ledger();
                    let now = Instant::now();
                    // Leases run out unseen when a worker dies; forget them
                    // here too, not only when someone asks `is_idle`.
                    ledger.expire(now, self.options.max_delivery_attempts);
                    ledger.note(queue, [message.message_id.clone()], now);
                    ledger.flights.insert(
                        m.ack_id.clone(),
                        Flight {
                            queue,
                            message_id: message.message_id.clone(),
                            attempt,
                            lease_until: now + visibility,
                        },
                    );
                }
                let body = match String::from_utf8(message.data) {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::warn!(queue = queue.as_str(), message_id = %message.message_id, "message data is not UTF-8; passing it on lossily");
                        String::from_utf8_lossy(e.as_bytes()).into_owned()
                    }
                };
                return Ok(Some(Received {
                    handle: m.ack_id,
                    body,
                    attempt,
                }));
            }
            let elapsed = start.elapsed();
            if elapsed >= wait {
                return Ok(None);
            }
            tokio::time::sleep(pause.min(wait - elapsed)).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    async fn ack(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        let subscription = &self.endpoints(queue).subscription;
        match subscription.ack(vec![handle.to_string()]).await {
            Ok(()) => {}
            // A malformed or foreign ack id: the message (if any) comes back.
            Err(e) if e.code() == Code::InvalidArgument => {
                tracing::debug!(queue = queue.as_str(), error = %e.message(), "ack with an invalid ack id");
            }
            Err(e) => {
                return Err(backend(
                    queue,
                    "Acknowledge",
                    subscription.fully_qualified_name(),
                    e,
                ));
            }
        }
        // Pub/Sub takes a stale ack id without complaint and without
        // effect, so a message another delivery of which is leased here
        // stays open.
        let mut ledger = self.ledger();
        if let Some(f) = ledger.flights.remove(handle) {
            if !ledger
                .flights
                .values()
                .any(|o| o.message_id == f.message_id)
            {
                ledger.settle(f.queue, &f.message_id);
            }
        }
        Ok(())
    }

    async fn release(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        let subscription = &self.endpoints(queue).subscription;
        match self
            .modify_deadline(subscription, vec![handle.to_string()], 0)
            .await
        {
            Ok(()) => {}
            Err(e) if e.code() == Code::InvalidArgument => {
                tracing::debug!(queue = queue.as_str(), error = %e.message(), "release with an invalid ack id");
            }
            Err(e) => {
                return Err(backend(
                    queue,
                    "ModifyAckDeadline",
                    subscription.fully_qualified_name(),
                    e,
                ));
            }
        }
        let max = self.options.max_delivery_attempts;
        let mut ledger = self.ledger();
        if let Some(f) = ledger.flights.remove(handle) {
            // Released on its last allowed delivery: Pub/Sub dead-letters it.
            if f.attempt >= max {
                ledger.settle(f.queue, &f.message_id);
            }
        }
        Ok(())
    }

    fn visibility(&self, _queue: QueueName) -> Duration {
        self.options.visibility
    }

    /// `ModifyAckDeadline` to the visibility: Pub/Sub counts the new
    /// deadline from now, so a worker renewing every third of it holds a
    /// 30-minute shard although no ack deadline may exceed 600 s. A stale
    /// ack id (the lease ran out and the message went to someone else) is
    /// no error: that delivery is a duplicate, which handlers tolerate.
    async fn extend(&self, queue: QueueName, handle: &str) -> Result<(), QueueError> {
        let subscription = &self.endpoints(queue).subscription;
        let secs = self.options.visibility.as_secs() as i32;
        match self
            .modify_deadline(subscription, vec![handle.to_string()], secs)
            .await
        {
            Ok(()) => {}
            Err(e) if e.code() == Code::InvalidArgument => {
                tracing::debug!(queue = queue.as_str(), error = %e.message(), "extend with an invalid ack id");
                return Ok(());
            }
            Err(e) => {
                return Err(backend(
                    queue,
                    "ModifyAckDeadline",
                    subscription.fully_qualified_name(),
                    e,
                ));
            }
        }
        if let Some(f) = self.ledger().flights.get_mut(handle) {
            f.lease_until = Instant::now() + self.options.visibility;
        }
        Ok(())
    }

    /// Publishes the body to the queue's dead-letter topic (its attributes,
    /// plus `testexec_reason`), then acks the delivery: at once, rather
    /// than after `max_delivery_attempts` futile deliveries. A handle this
    /// process no longer holds (acked, or dead-lettered already) is only
    /// acked, which Pub/Sub ignores for a stale one, so a repeated call
    /// does not dead-letter the body twice.
    async fn dead_letter(
        &self,
        queue: QueueName,
        message: &Received,
        reason: &str,
    ) -> Result<(), QueueError> {
        if !self.ledger().flights.contains_key(&message.handle) {
            tracing::debug!(
                queue = queue.as_str(),
                "dead_letter with a handle no longer held; acking only"
            );
            return self.ack(queue, &message.handle).await;
        }
        tracing::warn!(
            queue = queue.as_str(),
            attempt = message.attempt,
            reason,
            "moving a message to the dead-letter topic"
        );
        let mut attributes = attributes_of(&message.body);
        // Attribute values are limited to 1024 bytes.
        attributes.insert(
            "testexec_reason".into(),
            crate::domain::report::truncate_bytes(reason, 1000).to_string(),
        );
        let publisher = &self.endpoints(queue).dead_letter_publisher;
        publisher
            .publish_immediately(
                vec![PubsubMessage {
                    data: message.body.clone().into_bytes(),
                    attributes,
                    ..Default::default()
                }],
                None,
            )
            .await
            .map_err(|e| backend(queue, "Publish (dead-letter topic)", queue.as_str(), e))?;
        self.ack(queue, &message.handle).await
    }

    /// Reads (at most [`MAX_DEAD_LETTERS`]) bodies from the queue's
    /// dead-letter subscription without consuming them: all are pulled
    /// (leased for 60 s, so none is seen twice), then nacked at once.
    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<String>, QueueError> {
        let subscription = &self.endpoints(queue).dead_letters;
        let mut seen = HashSet::new();
        let mut bodies = Vec::new();
        let mut ack_ids = Vec::new();
        while bodies.len() < MAX_DEAD_LETTERS {
            let pulled = self.pull_now(queue, subscription, 100).await?;
            let mut new = 0;
            for m in pulled {
                ack_ids.push(m.ack_id);
                let Some(message) = m.message else { continue };
                if seen.insert(message.message_id) && bodies.len() < MAX_DEAD_LETTERS {
                    new += 1;
                    bodies.push(String::from_utf8_lossy(&message.data).into_owned());
                }
            }
            if new == 0 {
                break;
            }
        }
        if !ack_ids.is_empty() {
            if let Err(e) = self.modify_deadline(subscription, ack_ids, 0).await {
                // Best effort: they come back after the 60 s lease.
                tracing::warn!(queue = queue.as_str(), error = %e, "could not release dead letters after reading them");
            }
        }
        Ok(bodies)
    }

    /// From this process's ledger (Pub/Sub reports no counts): true when
    /// every message it published or received has been acked, released on
    /// its last delivery, or dead-lettered by an expired last lease.
    /// Messages published by other processes and not received here are not
    /// seen, and a message open for an hour is forgotten (the ledger holds
    /// at most 10,000 per queue): best effort, as the port allows.
    async fn is_idle(&self) -> Result<bool, QueueError> {
        let mut ledger = self.ledger();
        ledger.expire(Instant::now(), self.options.max_delivery_attempts);
        Ok(ledger.flights.is_empty() && ledger.open.values().all(HashMap::is_empty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_keep_pubsubs_request_limits() {
        assert_eq!(plan_publishes(&[]), Vec::<std::ops::Range<usize>>::new());
        let many = vec![10; 2500];
        assert_eq!(plan_publishes(&many), vec![0..1000, 1000..2000, 2000..2500]);
        let big = vec![200 * 1024; 100];
        let groups = plan_publishes(&big);
        assert!(
            groups
                .iter()
                .all(|g| g.len() * 200 * 1024 <= MAX_PUBLISH_BYTES)
        );
        assert_eq!(groups.iter().map(|g| g.len()).sum::<usize>(), 100);
    }

    #[test]
    fn the_idle_ledger_is_bounded() {
        let mut ledger = Ledger::default();
        let now = Instant::now();
        ledger.note(
            QueueName::Requests,
            (0..MAX_OPEN + 50).map(|i| format!("m{i}")),
            now,
        );
        assert_eq!(ledger.open[&QueueName::Requests].len(), MAX_OPEN);
        // Published here, settled elsewhere: forgotten after the horizon.
        ledger.expire(now + OPEN_HORIZON, 5);
        assert!(ledger.open[&QueueName::Requests].is_empty());
        // A lease that ran out on the last delivery: dead-lettered.
        ledger.note(QueueName::Shards, ["x".to_string()], now);
        let flight = |attempt| Flight {
            queue: QueueName::Shards,
            message_id: "x".into(),
            attempt,
            lease_until: now,
        };
        ledger.flights.insert("a1".into(), flight(4));
        ledger.expire(now, 5);
        assert!(ledger.flights.is_empty());
        assert_eq!(
            ledger.open[&QueueName::Shards].len(),
            1,
            "back in its queue"
        );
        ledger.flights.insert("a5".into(), flight(5));
        ledger.expire(now, 5);
        assert!(ledger.open[&QueueName::Shards].is_empty(), "dead-lettered");
    }

    #[test]
    fn attributes_name_run_shard_and_attempt() {
        let run = "01J9Z3V8K4QW5T6Y7X8C9B0N1M";
        let result = format!(r#"{{"v":1,"shard":"{run}/3","attempt":2,"execution":{{}}}}"#);
        let attrs = attributes_of(&result);
        assert_eq!(attrs["run"], run);
        assert_eq!(attrs["shard"], format!("{run}/3"));
        assert_eq!(attrs["attempt"], "2");
        let job = format!(r#"{{"kind":"inline","job":{{"shard":"{run}/0"}}}}"#);
        assert_eq!(attributes_of(&job)["shard"], format!("{run}/0"));
        let report = format!(r#"{{"v":1,"run":"{run}"}}"#);
        assert_eq!(attributes_of(&report)["run"], run);
        assert!(attributes_of("{not json").is_empty());
    }

    #[test]
    fn settings_outside_pubsubs_ranges_are_refused() {
        let ok = PubSubOptions::default();
        assert!(ok.validate().is_ok());
        for bad in [
            PubSubOptions {
                visibility: Duration::from_millis(1500),
                ..ok
            },
            PubSubOptions {
                visibility: Duration::ZERO,
                ..ok
            },
            PubSubOptions {
                visibility: Duration::from_secs(601),
                ..ok
            },
            PubSubOptions {
                max_delivery_attempts: 4,
                ..ok
            },
            PubSubOptions {
                max_delivery_attempts: 101,
                ..ok
            },
        ] {
            let err = bad.validate().unwrap_err();
            assert!(matches!(err, QueueError::InvalidSetting { .. }), "{err}");
        }
        assert_eq!(
            PubSubOptions {
                visibility: Duration::from_secs(1),
                ..ok
            }
            .ack_deadline(),
            MIN_ACK_DEADLINE
        );
        assert!(resources("Bad", QueueName::Shards).is_err());
        assert!(resources("goog-x", QueueName::Shards).is_err());
        assert_eq!(
            resources("te-1", QueueName::Results)
                .unwrap()
                .dead_letter_subscription,
            "te-1-results-dlq-sub"
        );
    }
}
