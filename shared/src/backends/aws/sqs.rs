//! The pipeline's queues on SQS. (Being implemented.)

use std::time::Duration;

use async_trait::async_trait;

use crate::errors::QueueError;
use crate::messages::QueueName;
use crate::ports::{JobQueue, QueueConsumer, Received};

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
    #[allow(dead_code)]
    client: aws_sdk_sqs::Client,
    #[allow(dead_code)]
    urls: QueueUrls,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, urls: QueueUrls) -> Self {
        Self { client, urls }
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send_batch(&self, _queue: QueueName, _bodies: Vec<String>) -> Result<(), QueueError> {
        todo!()
    }
}

#[async_trait]
impl QueueConsumer for SqsQueue {
    async fn receive(
        &self,
        _q: QueueName,
        _wait: Duration,
    ) -> Result<Option<Received>, QueueError> {
        todo!()
    }
    async fn ack(&self, _q: QueueName, _handle: &str) -> Result<(), QueueError> {
        todo!()
    }
    async fn release(&self, _q: QueueName, _handle: &str) -> Result<(), QueueError> {
        todo!()
    }
    async fn dead_letters(&self, _q: QueueName) -> Result<Vec<String>, QueueError> {
        todo!()
    }
    async fn is_idle(&self) -> Result<bool, QueueError> {
        todo!()
    }
}
