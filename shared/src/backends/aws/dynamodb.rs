//! The run store on one DynamoDB table. (Being implemented.)

use async_trait::async_trait;

use crate::errors::StoreError;
use crate::model::{Run, RunId, RunStatus, ShardRecord};
use crate::ports::{Completion, RunStore, ShardCompletion};

pub struct DynamoRunStore {
    #[allow(dead_code)]
    client: aws_sdk_dynamodb::Client,
    #[allow(dead_code)]
    table: String,
}

impl DynamoRunStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }
}

#[async_trait]
impl RunStore for DynamoRunStore {
    async fn create_run(&self, _run: &Run, _shards: &[ShardRecord]) -> Result<(), StoreError> {
        todo!()
    }
    async fn get_run(&self, _id: RunId) -> Result<Option<Run>, StoreError> {
        todo!()
    }
    async fn list_runs(&self, _limit: usize) -> Result<Vec<Run>, StoreError> {
        todo!()
    }
    async fn list_shards(&self, _id: RunId) -> Result<Vec<ShardRecord>, StoreError> {
        todo!()
    }
    async fn complete_shard(&self, _c: &ShardCompletion) -> Result<Completion, StoreError> {
        todo!()
    }
    async fn begin_report(&self, _id: RunId) -> Result<bool, StoreError> {
        todo!()
    }
    async fn finish_run(
        &self,
        _id: RunId,
        _status: RunStatus,
        _finished_ms: u64,
        _error: Option<String>,
    ) -> Result<bool, StoreError> {
        todo!()
    }
    async fn list_active_runs(&self) -> Result<Vec<Run>, StoreError> {
        todo!()
    }
    async fn claim_delivery(&self, _key: &str, _now: u64, _ttl: u64) -> Result<bool, StoreError> {
        todo!()
    }
}

/// Creates the table as `template.yaml` declares it (tests, emulators).
pub async fn create_table(
    _client: &aws_sdk_dynamodb::Client,
    _table: &str,
) -> Result<(), StoreError> {
    todo!()
}
