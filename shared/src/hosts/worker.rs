//! `execute` outside Lambda: in a user's own container image (their
//! toolchain plus our binary), polling the shards queue itself.
//!
//! `execute --once` takes one message (waiting up to
//! `TESTEXEC_EXECUTE_WAIT_SECS`, default 20), runs it and exits: one job per
//! container, for Container Apps jobs, KEDA scaled jobs or AWS Batch.
//! Without `--once` it loops until stopped.

use std::time::Duration;

use crate::adapters::aws::{AwsBackends, AwsSettings, sdk_config};
use crate::app::messages::QueueName;
use crate::app::ports::QueueConsumer;
use crate::errors::{ConfigError, HostError};
use crate::hosts::lambda::host::{Execute, Host, LambdaFunction as _, env};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub once: bool,
}

impl Args {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, ConfigError> {
        let mut parsed = Args::default();
        for arg in args {
            match arg.as_str() {
                "--once" => parsed.once = true,
                other => {
                    return Err(ConfigError::Invalid {
                        var: "command line",
                        value: other.chars().take(80).collect(),
                        reason: "usage: execute [--once] (outside Lambda it polls TESTEXEC_SHARDS_QUEUE_URL)".into(),
                    });
                }
            }
        }
        Ok(parsed)
    }
}

/// Polls the shards queue through [`QueueConsumer`] until stopped (or
/// after one message with `--once`).
pub async fn run(args: Args) -> Result<(), HostError> {
    let wait_secs = match std::env::var(env::EXECUTE_WAIT_SECS) {
        Err(_) => 20,
        Ok(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=20).contains(s))
            .ok_or(ConfigError::Invalid {
                var: env::EXECUTE_WAIT_SECS,
                value: raw,
                reason: "expected whole seconds between 1 and 20 (SQS's long-poll maximum)".into(),
            })?,
    };
    let aws = AwsSettings::from_env()?;
    let sdk = sdk_config().await;
    let backends = AwsBackends::new(&sdk, &aws);
    let consumer = backends.queue.clone();
    let host = Host::with_backends_as::<Execute>(backends, &|k| std::env::var(k).ok())?;
    loop {
        let handled = poll_once(&host, consumer.as_ref(), Duration::from_secs(wait_secs)).await;
        if args.once {
            if !handled {
                tracing::info!("no shard job waiting");
            }
            return Ok(());
        }
    }
}

/// Takes at most one message and handles it: ack on success; on failure
/// log and release it (it returns at once and, after maxReceiveCount, goes
/// to the dead-letter queue). Returns whether a message was taken.
pub async fn poll_once(host: &Host, consumer: &dyn QueueConsumer, wait: Duration) -> bool {
    let queue = QueueName::Shards;
    let received = match consumer.receive(queue, wait).await {
        Ok(Some(r)) => r,
        Ok(None) => return false,
        Err(e) => {
            tracing::error!(error = %e, "receiving from the shards queue failed");
            // Back off so a broken queue does not spin.
            tokio::time::sleep(Duration::from_secs(1)).await;
            return false;
        }
    };
    match Execute::process(host, &received.body, received.attempt).await {
        Ok(()) => {
            if let Err(e) = consumer.ack(queue, &received.handle).await {
                // The job ran; a redelivery is deduplicated by collect.
                tracing::error!(error = %e, "ack failed; the shard job will be delivered again");
            }
        }
        Err(e) => {
            tracing::error!(attempt = received.attempt, permanent = e.is_permanent(), error = %e, "shard job failed; released for another attempt");
            if let Err(e) = consumer.release(queue, &received.handle).await {
                tracing::error!(error = %e, "release failed; the job returns after its visibility timeout");
            }
        }
    }
    true
}
