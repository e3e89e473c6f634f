//! Counts the AWS API calls a piece of work makes: one SDK interceptor,
//! attached to the DynamoDB, S3 and SQS clients, names each request as it
//! goes on the wire. The cost model (`docs/cost.md`, `cost/aws-calls.json`)
//! is built from these counts, measured over a real pipeline run on moto,
//! not from guesses.
//!
//! Only the request is read (method, URI, `x-amz-target`, body), so the
//! count is what AWS would bill: a retried call counts twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use serde::{Deserialize, Serialize};

use crate::adapters::aws::{AwsBackends, AwsSettings, s3};

/// Calls of one operation, and the entries they carried (a batch of 10
/// messages is one call and 10 items; a transaction of 2 writes, 2 items).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub calls: u64,
    pub items: u64,
}

/// The interceptor; clone it into each client's config
/// (`Builder::from(&sdk).interceptor(log.clone())`), then [`CallLog::take`].
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<BTreeMap<String, Tally>>>);

impl CallLog {
    /// The calls so far, by `service.Operation`, and a fresh start.
    pub fn take(&self) -> BTreeMap<String, Tally> {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn record(&self, operation: String, items: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let tally = map.entry(operation).or_default();
        tally.calls += 1;
        tally.items += items;
    }

    /// The AWS backends of `settings` (as [`AwsBackends::new`] builds them
    /// from `sdk`) with every client counting into this log.
    pub fn backends(&self, sdk: &aws_config::SdkConfig, settings: &AwsSettings) -> AwsBackends {
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .interceptor(self.clone())
                .build(),
        );
        // From the backends' own S3 client, so path-style stays as set.
        let base = s3::client(sdk, settings.s3_path_style);
        let s3 = aws_sdk_s3::Client::from_conf(
            base.config().to_builder().interceptor(self.clone()).build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(sdk)
                .interceptor(self.clone())
                .build(),
        );
        AwsBackends::from_clients(dynamodb, s3, sqs, settings)
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        let request = context.request();
        let body = request.body().bytes().unwrap_or_default();
        let (operation, items) = match request.headers().get("x-amz-target") {
            Some(target) => json_operation(target, body),
            None => (
                s3_operation(
                    request.method(),
                    request.uri(),
                    request.headers().get("x-amz-copy-source").is_some(),
                ),
                1,
            ),
        };
        self.record(operation, items);
        Ok(())
    }
}

/// DynamoDB and SQS speak JSON with the operation in `x-amz-target`
/// (`DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessageBatch`).
fn json_operation(target: &str, body: &[u8]) -> (String, u64) {
    let (prefix, op) = target.split_once('.').unwrap_or(("unknown", target));
    let service = if prefix.starts_with("DynamoDB") {
        "dynamodb"
    } else if prefix.starts_with("AmazonSQS") {
        "sqs"
    } else {
        "other"
    };
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let len = |v: &serde_json::Value| v.as_array().map_or(0, |a| a.len() as u64);
    let items = match op {
        "TransactWriteItems" | "TransactGetItems" => len(&json["TransactItems"]),
        // `RequestItems` maps each table to a list of writes, but to
        // `{"Keys": [...]}` for reads.
        "BatchWriteItem" => json["RequestItems"]
            .as_object()
            .map_or(0, |tables| tables.values().map(len).sum()),
        "BatchGetItem" => json["RequestItems"]
            .as_object()
            .map_or(0, |tables| tables.values().map(|t| len(&t["Keys"])).sum()),
        op if op.ends_with("Batch") => len(&json["Entries"]),
        _ => 1,
    };
    (format!("{service}.{op}"), items)
}

/// S3's REST operations, told apart by method and query.
fn s3_operation(method: &str, uri: &str, copy: bool) -> String {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair == name || pair.starts_with(&format!("{name}=")))
    };
    let op = match method {
        "GET" if has("list-type") => "ListObjectsV2",
        "GET" => "GetObject",
        "HEAD" => "HeadObject",
        "PUT" if has("uploadId") => "UploadPart",
        "PUT" if copy => "CopyObject",
        "PUT" => "PutObject",
        "POST" if has("uploads") => "CreateMultipartUpload",
        "POST" if has("uploadId") => "CompleteMultipartUpload",
        "DELETE" if has("uploadId") => "AbortMultipartUpload",
        "DELETE" => "DeleteObject",
        _ => "Other",
    };
    format!("s3.{op}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_and_batches_counted() {
        let body = br#"{"TransactItems":[{"Put":{}},{"Update":{}}]}"#;
        assert_eq!(
            json_operation("DynamoDB_20120810.TransactWriteItems", body),
            ("dynamodb.TransactWriteItems".into(), 2)
        );
        let body = br#"{"RequestItems":{"t":[{},{},{}]}}"#;
        assert_eq!(
            json_operation("DynamoDB_20120810.BatchWriteItem", body).1,
            3
        );
        let body = br#"{"RequestItems":{"t":{"Keys":[{},{}]}}}"#;
        assert_eq!(
            json_operation("DynamoDB_20120810.BatchGetItem", body),
            ("dynamodb.BatchGetItem".into(), 2)
        );
        let body = br#"{"Entries":[{},{}]}"#;
        assert_eq!(
            json_operation("AmazonSQS.SendMessageBatch", body),
            ("sqs.SendMessageBatch".into(), 2)
        );
        assert_eq!(
            s3_operation("GET", "/b?list-type=2&prefix=x", false),
            "s3.ListObjectsV2"
        );
        assert_eq!(s3_operation("GET", "/b/k", false), "s3.GetObject");
        assert_eq!(
            s3_operation("PUT", "/b/k?partNumber=1&uploadId=u", false),
            "s3.UploadPart"
        );
        assert_eq!(
            s3_operation("POST", "/b/k?uploads", false),
            "s3.CreateMultipartUpload"
        );
        assert_eq!(s3_operation("PUT", "/b/k", false), "s3.PutObject");
    }
}
