//! SQS batches with partial failures (`ReportBatchItemFailures`).
//!
//! Every record is handled on its own; the response lists exactly the
//! message ids that failed, so SQS deletes the others and makes only the
//! failed ones visible again after their visibility timeout. One bad message
//! never fails the batch.
//!
//! Permanent errors ([`HandlerError::is_permanent`]: undecodable message,
//! unknown message version) go to the queue's dead-letter queue at once,
//! where they can be inspected and redriven, and the record is reported
//! handled (the event source mapping deletes it): no retry can help them.
//! When that send fails, or the queue has no dead-letter queue, the record
//! is reported failed like any other and reaches the dead-letter queue
//! after `maxReceiveCount`. Nothing is lost either way.

use std::future::Future;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tracing::Instrument;

use crate::adapters::aws::SqsQueue;
use crate::app::messages::{JobEnvelope, QueueName, ReportJob, ShardResult, TriggerJob};
use crate::errors::{HandlerError, InvocationError};

/// One SQS record as the handlers need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub message_id: Option<String>,
    pub body: String,
    /// 1-based delivery attempt: the record's `ApproximateReceiveCount`.
    pub attempt: u32,
}

/// The records of an event, with their attempt numbers.
pub fn records(event: SqsEvent) -> Vec<Record> {
    event
        .records
        .into_iter()
        .map(|m| {
            let attempt = match m.attributes.get("ApproximateReceiveCount") {
                Some(raw) => raw.trim().parse().unwrap_or_else(|_| {
                    tracing::warn!(message_id = ?m.message_id, value = %raw, "unreadable ApproximateReceiveCount; assuming attempt 1");
                    1
                }),
                None => 1,
            };
            Record {
                message_id: m.message_id,
                body: m.body.unwrap_or_default(),
                attempt: attempt.max(1),
            }
        })
        .collect()
}

/// Runs `each` over every record, one after the other, and reports exactly
/// the failed ones; a permanent failure goes to `dead_letters` instead when
/// given. Fails as a whole only when a failed record has no message id to
/// report (then the whole batch comes back, nothing is lost).
pub async fn run_batch<F, Fut>(
    queue: QueueName,
    event: SqsEvent,
    dead_letters: Option<&SqsQueue>,
    mut each: F,
) -> Result<SqsBatchResponse, InvocationError>
where
    F: FnMut(Record) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    let mut failures = Vec::new();
    let mut unnamed = 0;
    for record in records(event) {
        let id = record.message_id.clone();
        let body = record.body.clone();
        let (run_id, shard_id) = ids_of(queue, &record.body);
        let span = tracing::info_span!(
            "message",
            queue = queue.as_str(),
            message_id = id.as_deref().unwrap_or("-"),
            attempt = record.attempt,
            run_id = run_id.as_deref().unwrap_or("-"),
            shard_id = shard_id.as_deref().unwrap_or("-"),
        );
        let result = each(record).instrument(span.clone()).await;
        let _enter = span.enter();
        match result {
            Ok(()) => tracing::debug!("message handled"),
            Err(e) if e.is_permanent() && dead_letters.is_some() => {
                let reason = e.to_string();
                let moved = match dead_letters {
                    Some(q) => q.forward_to_dead_letters(queue, &body, &reason).await,
                    None => Ok(false),
                };
                match moved {
                    Ok(true) => tracing::error!(
                        permanent = true,
                        error = %reason,
                        "message failed for good; moved to the dead-letter queue"
                    ),
                    Ok(false) | Err(_) => {
                        if let Err(send) = moved {
                            tracing::error!(error = %send, "the dead-letter queue took no copy");
                        }
                        tracing::error!(
                            permanent = true,
                            error = %reason,
                            "message failed; reported as a batch item failure (it goes to the dead-letter queue after maxReceiveCount)"
                        );
                        match id {
                            Some(id) => failures.push(id),
                            None => unnamed += 1,
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(
                    permanent = e.is_permanent(),
                    error = %e,
                    "message failed; reported as a batch item failure ({})",
                    if e.is_permanent() {
                        "retrying cannot help: it goes to the dead-letter queue after maxReceiveCount"
                    } else {
                        "it comes back after its visibility timeout"
                    }
                );
                match id {
                    Some(id) => failures.push(id),
                    None => unnamed += 1,
                }
            }
        }
    }
    if unnamed > 0 {
        return Err(InvocationError::UnnamedFailures { count: unnamed });
    }
    Ok(batch_response(failures))
}

/// `{"batchItemFailures": [{"itemIdentifier": id}, ...]}`.
pub fn batch_response(failed_ids: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed_ids
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// Run and shard ids of a message, for the log span (best effort: an
/// undecodable body logs without them, and its error says why).
fn ids_of(queue: QueueName, body: &str) -> (Option<String>, Option<String>) {
    match queue {
        QueueName::Shards => serde_json::from_str::<JobEnvelope>(body)
            .map(|e| (Some(e.shard().run.to_string()), Some(e.shard().to_string())))
            .unwrap_or_default(),
        QueueName::Results => serde_json::from_str::<ShardResult>(body)
            .map(|r| (Some(r.shard.run.to_string()), Some(r.shard.to_string())))
            .unwrap_or_default(),
        QueueName::Reports => serde_json::from_str::<ReportJob>(body)
            .map(|r| (Some(r.run.to_string()), None))
            .unwrap_or_default(),
        QueueName::Requests => serde_json::from_str::<TriggerJob>(body)
            .ok()
            .and_then(|j| j.request.run_id)
            .map(|r| (Some(r.to_string()), None))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::lambda::events::{Event, decode};

    fn event(records: &[(&str, &str, &str)]) -> SqsEvent {
        let records: Vec<_> = records
            .iter()
            .map(|(id, body, count)| {
                serde_json::json!({
                    "messageId": id, "receiptHandle": "h", "body": body,
                    "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
                    "attributes": {"ApproximateReceiveCount": count},
                    "messageAttributes": {}
                })
            })
            .collect();
        match decode(serde_json::json!({ "Records": records })).unwrap() {
            Event::Sqs(e) => e,
            other => panic!("decoded as {}", other.kind()),
        }
    }

    #[tokio::test]
    async fn one_bad_record_is_reported_alone() {
        let ev = event(&[
            ("good", "ok", "1"),
            ("bad", "boom", "3"),
            ("good2", "ok", "2"),
        ]);
        let mut seen = Vec::new();
        let response = run_batch(QueueName::Results, ev, None, |r| {
            seen.push((r.message_id.clone().unwrap(), r.attempt));
            async move {
                if r.body == "ok" {
                    Ok(())
                } else {
                    Err(HandlerError::BadMessage {
                        what: "test",
                        detail: "undecodable".into(),
                    })
                }
            }
        })
        .await
        .unwrap();
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "bad"}]})
        );
        // Every record was tried, with its receive count as the attempt.
        assert_eq!(
            seen,
            [("good".into(), 1), ("bad".into(), 3), ("good2".into(), 2)]
        );
    }

    #[tokio::test]
    async fn an_all_good_batch_reports_no_failures() {
        let ev = event(&[("a", "ok", "1")]);
        let response = run_batch(QueueName::Shards, ev, None, |_| async { Ok(()) })
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            serde_json::json!({"batchItemFailures": []})
        );
    }

    #[test]
    fn the_fixture_record_reads_its_receive_count() {
        let text =
            include_str!("../../../../fixtures/aws/aws_lambda_events-example-sqs-event.json");
        let Event::Sqs(ev) = decode(serde_json::from_str(text).unwrap()).unwrap() else {
            panic!("not sqs")
        };
        let recs = records(ev);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].attempt, 2);
        assert_eq!(recs[0].message_id.as_deref(), Some("MessageID_1"));
        assert_eq!(recs[0].body, "Message Body");
    }
}
