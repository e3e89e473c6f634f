//! Request limits and plain bulk writes: [`chunk_ranges`] splits items
//! under a request's item and byte limits, and [`put_items`] writes them
//! with `BatchWriteItem`, retrying what DynamoDB leaves unprocessed.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

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

/// Full jitter: a random delay in `0..=cap` (no rand dependency; the low
/// bits of a fresh ULID are random).
pub(super) fn jitter(cap: Duration) -> Duration {
    let r = (ulid::Ulid::new().random() & 0xFFFF_FFFF) as u64;
    Duration::from_micros(r % (cap.as_micros() as u64 + 1))
}

/// Writes items with `BatchWriteItem` in chunks of at most 25 (and under the
/// request's size limit), retrying `UnprocessedItems` with exponential
/// backoff; after [`BATCH_ATTEMPTS`] attempts of a chunk it gives up with an
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
    mut pending: Vec<WriteRequest>,
) -> Result<(), StoreError> {
    debug_assert!(pending.len() <= BATCH_MAX_ITEMS);
    let mut delay = Duration::from_millis(25);
    for attempt in 1..=BATCH_ATTEMPTS {
        let out = client
            .batch_write_item()
            .request_items(table, pending)
            .send()
            .await
            .map_err(|e| backend("batch write", e))?;
        pending = out
            .unprocessed_items
            .and_then(|mut m| m.remove(table))
            .unwrap_or_default();
        if pending.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            attempt,
            left = pending.len(),
            "BatchWriteItem left items unprocessed; backing off"
        );
        if attempt < BATCH_ATTEMPTS {
            tokio::time::sleep(delay / 2 + jitter(delay / 2)).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
    Err(backend_msg(
        "batch write",
        format!(
            "{} item(s) still unprocessed after {BATCH_ATTEMPTS} BatchWriteItem attempts (throttled); retry later",
            pending.len()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
