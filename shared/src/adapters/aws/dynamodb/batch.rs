//! Request limits and plain bulk writes: [`chunk_ranges`] splits items
//! under a request's item and byte limits, and [`put_items`] writes them
//! with `BatchWriteItem`, retrying what DynamoDB leaves unprocessed.

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use backon::{ExponentialBuilder, RetryableWithContext};

use super::codec::{Item, MAX_ITEM_BYTES, item_size};
use super::error::{backend, backend_msg};
use crate::errors::StoreError;

/// TransactWriteItems: at most 100 actions and 4 MB per request.
pub const TRANSACT_MAX_ITEMS: usize = 100;
pub(super) const TRANSACT_MAX_BYTES: usize = 3 * 1024 * 1024 + 512 * 1024;
/// BatchWriteItem: at most 25 items (and 16 MB) per request.
pub const BATCH_MAX_ITEMS: usize = 25;
const BATCH_MAX_BYTES: usize = 15 * 1024 * 1024;
/// Attempts of one BatchWriteItem chunk while DynamoDB leaves items unprocessed.
const BATCH_ATTEMPTS: u32 = 8;
/// First wait before sending unprocessed items again; doubles per attempt.
const BATCH_FIRST_BACKOFF: Duration = Duration::from_millis(25);
/// Longest wait between two attempts of a chunk.
const BATCH_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Splits items (given by their sizes) into consecutive chunks of at most
/// `max_items` items and `max_bytes` bytes (a single larger item gets a
/// chunk of its own). Returns the chunks' index ranges.
pub fn chunk_ranges(
    sizes: &[usize],
    max_items: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == max_items || (i > start && bytes + size > max_bytes);
        if full {
            chunks.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        chunks.push(start..sizes.len());
    }
    chunks
}

/// Writes items with `BatchWriteItem` in chunks of at most 25 (and under the
/// request's size limit), retrying `UnprocessedItems` with exponential
/// backoff; after `BATCH_ATTEMPTS` (8) attempts of a chunk it gives up with an
/// error naming how many items were left. Plain puts, no conditions: for
/// writes that need none (bulk imports, the shards of a new run past the
/// first transaction). Items over [`MAX_ITEM_BYTES`] are refused up front.
pub async fn put_items(client: &Client, table: &str, items: Vec<Item>) -> Result<(), StoreError> {
    let sizes: Vec<usize> = items.iter().map(item_size).collect();
    if let Some((i, size)) = sizes.iter().enumerate().find(|(_, s)| **s > MAX_ITEM_BYTES) {
        return Err(StoreError::Invalid {
            run: format!("put_items item #{i}"),
            message: format!("{size} bytes is over the {MAX_ITEM_BYTES}-byte item limit"),
        });
    }
    let mut items = items.into_iter();
    for range in chunk_ranges(&sizes, BATCH_MAX_ITEMS, BATCH_MAX_BYTES) {
        let chunk: Vec<WriteRequest> = items
            .by_ref()
            .take(range.len())
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| backend("batch write", e))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_, StoreError>>()?;
        batch_write(client, table, chunk).await?;
    }
    Ok(())
}

/// One BatchWriteItem chunk (≤ 25 requests), retried until DynamoDB has
/// processed every request or the attempts run out.
async fn batch_write(
    client: &Client,
    table: &str,
    pending: Vec<WriteRequest>,
) -> Result<(), StoreError> {
    debug_assert!(pending.len() <= BATCH_MAX_ITEMS);
    retry_unprocessed(pending, batch_backoff(), |requests| async move {
        let out = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .map_err(|e| backend("batch write", e))?;
        Ok(out
            .unprocessed_items
            .and_then(|mut m| m.remove(table))
            .unwrap_or_default())
    })
    .await
}

/// The waits between attempts of one chunk: 25 ms doubling towards 2 s,
/// each drawn from the upper half of its step (equal jitter, so concurrent
/// writers throttled together do not retry together), one wait fewer than
/// [`BATCH_ATTEMPTS`].
pub(super) fn batch_backoff() -> ExponentialBuilder {
    crate::adapters::retry::jittered(
        BATCH_FIRST_BACKOFF,
        BATCH_MAX_BACKOFF,
        BATCH_ATTEMPTS as usize - 1,
    )
}

/// What one attempt of [`retry_unprocessed`] left to do.
enum Attempt {
    /// This many requests came back unprocessed: worth another attempt.
    Unprocessed(usize),
    /// The call itself failed (after the SDK's own retries): give up.
    Failed(StoreError),
}

/// Sends `pending` through `send` (one `BatchWriteItem`, answering with the
/// requests it left unprocessed) and sends what is left again after each
/// wait of `backoff`, until nothing is left; when the waits run out, fails
/// naming how many requests were left after how many attempts. An error of
/// `send` ends the call at once.
pub(super) async fn retry_unprocessed<T, F, Fut>(
    pending: Vec<T>,
    backoff: ExponentialBuilder,
    mut send: F,
) -> Result<(), StoreError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    // The context: what is still unprocessed, and the attempts made so far.
    let attempt = move |(requests, attempts): (Vec<T>, u32)| {
        let sent = send(requests);
        async move {
            let attempts = attempts + 1;
            match sent.await {
                Ok(left) if left.is_empty() => ((left, attempts), Ok(())),
                Ok(left) => {
                    let n = left.len();
                    ((left, attempts), Err(Attempt::Unprocessed(n)))
                }
                Err(e) => ((Vec::new(), attempts), Err(Attempt::Failed(e))),
            }
        }
    };
    let ((_, attempts), outcome) = attempt
        .retry(backoff)
        .context((pending, 0))
        .when(|e| matches!(e, Attempt::Unprocessed(_)))
        .notify(|e, wait| {
            if let Attempt::Unprocessed(left) = e {
                tracing::debug!(
                    left,
                    wait_ms = wait.as_millis() as u64,
                    "BatchWriteItem left items unprocessed; backing off"
                );
            }
        })
        .await;
    match outcome {
        Ok(()) => Ok(()),
        Err(Attempt::Failed(e)) => Err(e),
        Err(Attempt::Unprocessed(left)) => Err(backend_msg(
            "batch write",
            format!(
                "{left} item(s) still unprocessed after {attempts} BatchWriteItem attempts (throttled); retry later"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::retry::{assert_jittered, jittered};
    use backon::BackoffBuilder;
    use std::sync::Mutex;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn batch_backoff_keeps_its_attempts_and_cap() {
        for _ in 0..100 {
            let waits: Vec<_> = batch_backoff().build().collect();
            // 7 waits between 8 attempts: [12.5, 25) ms, [25, 50) ms, ...
            // [800, 1600) ms; never over the 2 s cap.
            assert_jittered(
                &waits,
                BATCH_FIRST_BACKOFF,
                BATCH_MAX_BACKOFF,
                BATCH_ATTEMPTS as usize - 1,
            );
        }
    }

    #[tokio::test]
    async fn unprocessed_requests_are_sent_again_alone_until_done() {
        let calls = Mutex::new(Vec::new());
        retry_unprocessed(
            vec![1, 2, 3, 4],
            jittered(MS, MS * 4, 7),
            |sent: Vec<u32>| {
                let n = {
                    let mut calls = calls.lock().unwrap();
                    calls.push(sent.clone());
                    calls.len()
                };
                async move {
                    Ok(match n {
                        1 => vec![2, 4],
                        2 => vec![4],
                        _ => vec![],
                    })
                }
            },
        )
        .await
        .expect("every request processed in the end");
        assert_eq!(
            *calls.lock().unwrap(),
            [vec![1, 2, 3, 4], vec![2, 4], vec![4]]
        );
    }

    #[tokio::test]
    async fn unprocessed_requests_give_up_after_the_attempts() {
        let calls = Mutex::new(0u32);
        let retries = BATCH_ATTEMPTS as usize - 1;
        let err = retry_unprocessed(vec![1, 2, 3], jittered(MS, MS * 4, retries), |sent| {
            *calls.lock().unwrap() += 1;
            // Two requests come back unprocessed every time.
            async move { Ok(sent[..2].to_vec()) }
        })
        .await
        .unwrap_err();
        assert_eq!(*calls.lock().unwrap(), BATCH_ATTEMPTS);
        let text = err.to_string();
        assert!(
            text.contains("2 item(s) still unprocessed after 8 BatchWriteItem attempts"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_failed_call_is_not_retried() {
        let calls = Mutex::new(0u32);
        let err = retry_unprocessed(vec![1], jittered(MS, MS, 7), |_| {
            *calls.lock().unwrap() += 1;
            async { Err(backend_msg("batch write", "boom".into())) }
        })
        .await
        .unwrap_err();
        assert_eq!(*calls.lock().unwrap(), 1);
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn chunks_respect_count_and_bytes() {
        let sizes = vec![10; 60];
        let chunks = chunk_ranges(&sizes, 25, usize::MAX);
        assert_eq!(chunks, vec![0..25, 25..50, 50..60]);
        let chunks = chunk_ranges(&vec![1; 250], TRANSACT_MAX_ITEMS, TRANSACT_MAX_BYTES);
        assert_eq!(chunks, vec![0..100, 100..200, 200..250]);
        // Bytes bound a chunk before the count does.
        let chunks = chunk_ranges(&[40, 40, 40, 40, 100, 5], 25, 100);
        assert_eq!(chunks, vec![0..2, 2..4, 4..5, 5..6]);
        assert!(chunk_ranges(&[], 25, 100).is_empty());
        // Every item is in exactly one chunk, in order.
        let sizes: Vec<usize> = (0..1000).map(|i| (i * 7919) % 5000).collect();
        let chunks = chunk_ranges(&sizes, 25, 20_000);
        assert_eq!(chunks.first().map(|r| r.start), Some(0));
        assert_eq!(chunks.last().map(|r| r.end), Some(1000));
        for w in chunks.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for r in &chunks {
            assert!(
                r.len() <= 25 && (r.len() == 1 || sizes[r.clone()].iter().sum::<usize>() <= 20_000)
            );
        }
    }
}
