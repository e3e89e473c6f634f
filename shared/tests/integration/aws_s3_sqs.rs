//! The S3 blob store and the SQS queue against real emulators: moto (S3,
//! SQS; no signature checks, no batch limits) and s3s-fs (S3 with SigV4
//! checked, so presigned links are proven right or wrong).
//!
//! Every test makes its own bucket / queues (the emulators are shared), and
//! skips when the emulators are not running (see `testkit::emulators`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use testexec::adapters::aws::provision::{ProvisionOptions, provision, to_env};
use testexec::adapters::aws::s3::{self, S3BlobStore, create_bucket};
use testexec::adapters::aws::sqs::{self, QueueUrls, SqsQueue, create_queues};
use testexec::adapters::aws::{AwsBackends, AwsSettings};
use testexec::app::messages::{MAX_MESSAGE_BYTES, QueueName};
use testexec::app::ports::{BlobStore, JobQueue, QueueConsumer, content_type};
use testexec::errors::{BlobError, QueueError};
use testexec::testkit::contract::{
    QueueSettings, blob_invalid_keys_are_rejected, blob_large_file_round_trip,
    blob_list_is_sorted_by_prefix, blob_missing_is_not_found, blob_store_contract, queue_contract,
};
use testexec::testkit::emulators::{moto, s3s, unique_name};

const MIB: usize = 1024 * 1024;

// ---- S3 ---------------------------------------------------------------------

enum Emu {
    Moto,
    S3s,
}

/// A store on a fresh bucket of the emulator, with its raw client.
async fn store(emu: Emu) -> Option<(S3BlobStore, aws_sdk_s3::Client)> {
    let (sdk, path_style) = match emu {
        Emu::Moto => (moto().await?, false),
        // s3s-fs only speaks path-style.
        Emu::S3s => (s3s().await?, true),
    };
    let client = s3::client(&sdk, path_style);
    let bucket = unique_name("blobs");
    create_bucket(&client, &bucket)
        .await
        .expect("create bucket");
    create_bucket(&client, &bucket)
        .await
        .expect("create_bucket is idempotent");
    let store = S3BlobStore::new(client.clone(), bucket, Duration::from_secs(600));
    Some((store, client))
}

/// Pseudo-random bytes (xorshift), so a misplaced part shows.
fn noise(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

async fn uploads_in_progress(client: &aws_sdk_s3::Client, bucket: &str) -> usize {
    client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("ListMultipartUploads")
        .uploads()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_contract_on_moto() {
    let Some((store, _)) = store(Emu::Moto).await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    blob_store_contract(&store, scratch.path()).await;
}

/// The contract on s3s-fs, which checks every request's SigV4 signature.
///
/// All of it but `blob_put_get_overwrite`: s3s-fs keeps objects as files, so
/// after writing `a/b/c` the "key" `a/b` is a directory, and HEAD / GET of it
/// answer 500 InternalError instead of 404 (real S3 and moto answer 404,
/// which the moto run checks). The same put/get/overwrite steps minus that
/// one run below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_contract_on_s3s_with_sigv4() {
    let Some((store, _)) = store(Emu::S3s).await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    blob_missing_is_not_found(&store, scratch.path()).await;
    blob_list_is_sorted_by_prefix(&store).await;
    blob_invalid_keys_are_rejected(&store).await;
    blob_large_file_round_trip(&store, scratch.path()).await;

    let key = "runs/01J9Z3V8K4QW5T6Y7X8C9B0N1M/report/summary.md";
    assert!(!store.exists(key).await.unwrap());
    store
        .put(key, b"# first".to_vec(), content_type::MARKDOWN)
        .await
        .unwrap();
    assert!(store.exists(key).await.unwrap());
    assert_eq!(store.get(key).await.unwrap(), b"# first");
    store
        .put(key, b"# second, longer".to_vec(), content_type::MARKDOWN)
        .await
        .unwrap();
    assert_eq!(store.get(key).await.unwrap(), b"# second, longer");
    store
        .put(key, Vec::new(), content_type::MARKDOWN)
        .await
        .unwrap();
    assert_eq!(
        store.get(key).await.unwrap(),
        b"",
        "empty objects are objects"
    );
    assert!(store.exists(key).await.unwrap());
}

/// ~20 MB in 5 MiB parts (the last one shorter) goes up multipart and comes
/// back byte for byte, with its content type, and no upload is left open.
async fn multipart_round_trip(emu: Emu) {
    // s3s-fs does not implement ListMultipartUploads.
    let can_list_uploads = matches!(emu, Emu::Moto);
    let Some((store, client)) = store(emu).await else {
        return;
    };
    let store = store.with_multipart(5 * MIB as u64, 5 * MIB as u64);
    let scratch = tempfile::tempdir().unwrap();
    let size = 20 * MIB + 12_345;
    let data = noise(size, 7);
    let src = scratch.path().join("big.bin");
    std::fs::write(&src, &data).unwrap();
    let key = "runs/multi/source.tar.gz";
    store
        .put_file(key, &src, content_type::GZIP)
        .await
        .expect("multipart put_file");

    let head = client
        .head_object()
        .bucket(store.bucket())
        .key(key)
        .send()
        .await
        .expect("HeadObject");
    assert_eq!(head.content_length(), Some(size as i64));
    assert_eq!(head.content_type(), Some(content_type::GZIP));
    // Proof that it went multipart: S3 ETags of multipart objects end in
    // `-<part count>`; 20 MiB + 12,345 B is four 5 MiB parts and a short
    // last one (the last part has no minimum size).
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    assert!(etag.ends_with("-5"), "multipart ETag, got {etag}");
    if can_list_uploads {
        assert_eq!(uploads_in_progress(&client, store.bucket()).await, 0);
    }

    let dest = scratch.path().join("down/big.bin");
    store.get_to_file(key, &dest).await.expect("get_to_file");
    let back = std::fs::read(&dest).unwrap();
    assert!(
        back == data,
        "multipart object must round-trip byte for byte"
    );
    // At the threshold: one PutObject (a plain MD5 ETag, no part count).
    let small = scratch.path().join("small.bin");
    std::fs::write(&small, noise(5 * MIB, 9)).unwrap();
    store
        .put_file("runs/multi/small.bin", &small, content_type::GZIP)
        .await
        .unwrap();
    let head = client
        .head_object()
        .bucket(store.bucket())
        .key("runs/multi/small.bin")
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap_or_default();
    assert!(!etag.contains('-'), "single-request ETag, got {etag}");
    assert_eq!(head.content_length(), Some(5 * MIB as i64));

    let leftovers: Vec<_> = std::fs::read_dir(scratch.path().join("down"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["big.bin"], "no temporary file left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_multipart_round_trip_on_moto() {
    multipart_round_trip(Emu::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_multipart_round_trip_on_s3s() {
    multipart_round_trip(Emu::S3s).await;
}

/// A multipart upload that S3 refuses (parts under its 5 MiB minimum) fails,
/// stores nothing and is aborted: no upload stays open with its parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_failed_multipart_upload_is_aborted_on_moto() {
    let Some((store, client)) = store(Emu::Moto).await else {
        return;
    };
    let store = store.with_multipart(MIB as u64, MIB as u64);
    let scratch = tempfile::tempdir().unwrap();
    let src = scratch.path().join("small-parts.bin");
    std::fs::write(&src, noise(3 * MIB, 3)).unwrap();
    let key = "runs/aborted/source.tar.gz";
    let err = store
        .put_file(key, &src, content_type::GZIP)
        .await
        .expect_err("1 MiB parts are below S3's minimum");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            BlobError::Backend {
                backend: "s3",
                operation: "complete multipart upload",
                ..
            }
        ) && text.contains(key)
            && text.contains("EntityTooSmall"),
        "{text}"
    );
    assert_eq!(
        uploads_in_progress(&client, store.bucket()).await,
        0,
        "the failed upload was aborted"
    );
    assert!(!store.exists(key).await.unwrap(), "nothing stored");
}

/// A presigned link from s3s-fs, fetched like a browser would, returns the
/// exact bytes; s3s-fs checks the signature, so a tampered link is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_presigned_link_is_signed_on_s3s() {
    let Some((store, s3_client)) = store(Emu::S3s).await else {
        return;
    };
    let key = "runs/01J9Z3V8K4QW5T6Y7X8C9B0N1M/report/index.html";
    let body = noise(70_000, 11);
    store
        .put(key, body.clone(), content_type::HTML)
        .await
        .unwrap();
    let link = store.link(key).await.unwrap().expect("S3 makes links");
    assert!(link.contains("X-Amz-Signature="), "{link}");
    assert!(
        link.contains("X-Amz-Expires=600"),
        "link_ttl honoured: {link}"
    );

    let http = reqwest::Client::new();
    let ok = http.get(&link).send().await.expect("GET the link");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(
        ok.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(content_type::HTML),
        "the stored content type is served, so browsers render reports"
    );
    assert!(ok.bytes().await.unwrap().as_ref() == body.as_slice());

    // Another signature, and the same signature on another key.
    let sig_at = link.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut forged = link.clone();
    let flipped = if &forged[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    forged.replace_range(sig_at..sig_at + 1, flipped);
    let other_key = link.replace("index.html", "secret.html");
    for bad in [forged, other_key] {
        let status = http.get(&bad).send().await.unwrap().status().as_u16();
        assert_eq!(status, 403, "tampered link must be refused: {bad}");
    }

    // A link dies after its lifetime.
    let short = S3BlobStore::new(
        s3_client,
        store.bucket().to_string(),
        Duration::from_secs(1),
    );
    let link = short.link(key).await.unwrap().unwrap();
    assert_eq!(http.get(&link).send().await.unwrap().status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        http.get(&link).send().await.unwrap().status().as_u16(),
        403,
        "expired link must be refused"
    );
}

/// NotFound is mapped from S3's typed error on both emulators, and a failed
/// download neither creates the file, nor leaves a temporary one, nor
/// touches an existing file.
async fn missing_keys(emu: Emu) {
    let Some((store, _)) = store(emu).await else {
        return;
    };
    let key = "runs/none/log.txt";
    match store.get(key).await {
        Err(BlobError::NotFound { key: k }) => assert_eq!(k, key),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!store.exists(key).await.unwrap());
    let scratch = tempfile::tempdir().unwrap();
    let fresh = scratch.path().join("fresh.txt");
    assert!(matches!(
        store.get_to_file(key, &fresh).await,
        Err(BlobError::NotFound { .. })
    ));
    let kept = scratch.path().join("kept.txt");
    std::fs::write(&kept, "old contents").unwrap();
    assert!(matches!(
        store.get_to_file(key, &kept).await,
        Err(BlobError::NotFound { .. })
    ));
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "old contents");
    let names: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["kept.txt"], "no file created by failed downloads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_missing_keys_on_moto() {
    missing_keys(Emu::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_missing_keys_on_s3s() {
    missing_keys(Emu::S3s).await;
}

/// A download whose destination cannot be written fails without leaving a
/// temporary file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_failed_download_leaves_no_file() {
    let Some((store, _)) = store(Emu::Moto).await else {
        return;
    };
    store
        .put("runs/x/log.txt", b"log".to_vec(), content_type::TEXT)
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    // The destination is an existing directory: the rename must fail.
    let dest = scratch.path().join("taken");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("inside"), "x").unwrap();
    let err = store
        .get_to_file("runs/x/log.txt", &dest)
        .await
        .expect_err("cannot replace a directory with a file");
    assert!(matches!(err, BlobError::Backend { .. }), "{err}");
    let names: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["taken"], "the temporary file was removed");
    assert!(dest.is_dir());
}

/// Keys are refused by the S3 store for the same reasons as by the file
/// store, before any request.
#[tokio::test]
async fn s3_key_rules_match_the_file_store() {
    let Some((store, _)) = store(Emu::Moto).await else {
        return;
    };
    for key in ["a/.tmp-x", "a//b", "a/./b", "dir/", &"k".repeat(1025)] {
        let local = testexec::adapters::validate_key(key).unwrap_err();
        match store.put(key, vec![], content_type::TEXT).await {
            Err(BlobError::InvalidKey { reason, .. }) => {
                let BlobError::InvalidKey {
                    reason: expected, ..
                } = local
                else {
                    unreachable!()
                };
                assert_eq!(reason, expected, "{key:?}");
            }
            other => panic!("{key:?}: expected InvalidKey, got {other:?}"),
        }
        assert!(matches!(
            store.link(key).await,
            Err(BlobError::InvalidKey { .. })
        ));
    }
    assert!(matches!(
        store.list("../up").await,
        Err(BlobError::InvalidKey { .. })
    ));
}

// ---- SQS --------------------------------------------------------------------

/// Records every `SendMessageBatch` request: (entries, summed body bytes).
#[derive(Debug, Clone, Default)]
struct BatchLog(Arc<Mutex<Vec<(usize, usize)>>>);

impl BatchLog {
    fn take(&self) -> Vec<(usize, usize)> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl aws_sdk_sqs::config::Intercept for BatchLog {
    fn name(&self) -> &'static str {
        "BatchLog"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_sqs::config::RuntimeComponents,
        _cfg: &mut aws_sdk_sqs::config::ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        let request = context.request();
        if request.headers().get("x-amz-target") == Some("AmazonSQS.SendMessageBatch") {
            let body: serde_json::Value =
                serde_json::from_slice(request.body().bytes().unwrap_or_default())?;
            let entries = body["Entries"].as_array().cloned().unwrap_or_default();
            let bytes = entries
                .iter()
                .map(|e| e["MessageBody"].as_str().map_or(0, str::len))
                .sum();
            self.0.lock().unwrap().push((entries.len(), bytes));
        }
        Ok(())
    }
}

/// Fresh queues (1 s visibility, 3 receives) and a queue whose client logs
/// its batches.
async fn queues() -> Option<(SqsQueue, BatchLog, aws_sdk_sqs::Client, QueueUrls)> {
    let sdk = moto().await?;
    let log = BatchLog::default();
    let client = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(log.clone())
            .build(),
    );
    let urls = create_queues(&client, &unique_name("q"), Duration::from_secs(1), 3)
        .await
        .expect("create_queues");
    Some((
        SqsQueue::new(client.clone(), urls.clone()).with_lease(Duration::from_secs(1)),
        log,
        client,
        urls,
    ))
}

async fn drain(q: &SqsQueue, queue: QueueName) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(m) = q.receive(queue, Duration::ZERO).await.unwrap() {
        q.ack(queue, &m.handle).await.unwrap();
        bodies.push(m.body);
    }
    bodies.sort();
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_contract_on_moto() {
    let Some((queue, ..)) = queues().await else {
        return;
    };
    queue_contract(
        &queue,
        QueueSettings {
            visibility_timeout: Duration::from_secs(1),
            max_receives: 3,
        },
    )
    .await;
}

/// 25 bodies go in 3 calls of ≤ 10; large bodies are split by the 256 KiB
/// payload limit; every body arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_send_batch_respects_entry_and_byte_limits() {
    let Some((q, log, ..)) = queues().await else {
        return;
    };
    let small: Vec<String> = (0..25).map(|i| format!("job-{i:02}")).collect();
    q.send_batch(QueueName::Shards, small.clone())
        .await
        .unwrap();
    assert_eq!(
        log.take().iter().map(|c| c.0).collect::<Vec<_>>(),
        [10, 10, 5]
    );
    assert_eq!(drain(&q, QueueName::Shards).await, small);

    let big: Vec<String> = (0..5)
        .map(|i| format!("{i}{}", "b".repeat(100 * 1024)))
        .collect();
    q.send_batch(QueueName::Results, big.clone()).await.unwrap();
    let calls = log.take();
    assert_eq!(calls.iter().map(|c| c.0).collect::<Vec<_>>(), [2, 2, 1]);
    assert!(
        calls.iter().all(|c| c.1 <= sqs::MAX_BATCH_BYTES),
        "{calls:?}"
    );
    assert_eq!(drain(&q, QueueName::Results).await, big);
}

/// One oversized body refuses the whole call: nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_oversized_body_sends_nothing() {
    let Some((q, log, ..)) = queues().await else {
        return;
    };
    let mut bodies: Vec<String> = (0..12).map(|i| i.to_string()).collect();
    bodies.push("x".repeat(MAX_MESSAGE_BYTES + 1));
    match q.send_batch(QueueName::Reports, bodies).await {
        Err(QueueError::TooLarge { queue, size, limit }) => {
            assert_eq!(
                (queue, size, limit),
                ("reports", MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES)
            )
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(log.take().is_empty(), "no SendMessageBatch call");
    assert!(q.is_idle().await.unwrap(), "nothing queued");
}

/// is_idle follows a message from sent through in flight to acked; a stale
/// receipt handle is not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_is_idle_and_stale_handles() {
    let Some((q, ..)) = queues().await else {
        return;
    };
    assert!(q.is_idle().await.unwrap(), "fresh queues are idle");
    q.send_batch(QueueName::Requests, vec!["r".into()])
        .await
        .unwrap();
    assert!(!q.is_idle().await.unwrap(), "a waiting message");
    let first = q
        .receive(QueueName::Requests, Duration::from_secs(2))
        .await
        .unwrap()
        .expect("delivered");
    assert_eq!(first.attempt, 1);
    assert!(!q.is_idle().await.unwrap(), "a message in flight");
    q.release(QueueName::Requests, &first.handle).await.unwrap();
    let second = q
        .receive(QueueName::Requests, Duration::from_secs(2))
        .await
        .unwrap()
        .expect("released: visible again at once");
    assert_eq!((second.body.as_str(), second.attempt), ("r", 2));
    q.ack(QueueName::Requests, &second.handle).await.unwrap();
    assert!(q.is_idle().await.unwrap(), "acked: idle again");
    q.ack(QueueName::Requests, &first.handle)
        .await
        .expect("stale handle: no error");
    q.ack(QueueName::Requests, &second.handle)
        .await
        .expect("already deleted: no error");
    q.release(QueueName::Requests, &second.handle)
        .await
        .expect("stale release: no error");
}

/// The queues carry the visibility and redrive policy asked for, creating
/// them again is harmless, and impossible settings are refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_create_queues_wires_dead_letter_queues() {
    let Some(sdk) = moto().await else {
        return;
    };
    let client = aws_sdk_sqs::Client::new(&sdk);
    let prefix = unique_name("cq");
    let urls = create_queues(&client, &prefix, Duration::from_secs(7), 4)
        .await
        .unwrap();
    assert!(
        urls.shards.ends_with(&format!("{prefix}-shards")),
        "{urls:?}"
    );
    assert!(urls.requests.ends_with(&format!("{prefix}-requests")));
    let again = create_queues(&client, &prefix, Duration::from_secs(7), 4)
        .await
        .unwrap();
    assert_eq!(again, urls, "idempotent");
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = client
        .get_queue_attributes()
        .queue_url(&urls.reports)
        .attribute_names(A::All)
        .send()
        .await
        .unwrap()
        .attributes()
        .cloned()
        .unwrap();
    assert_eq!(attrs[&A::VisibilityTimeout], "7");
    let policy: serde_json::Value = serde_json::from_str(&attrs[&A::RedrivePolicy]).unwrap();
    assert!(
        policy["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{prefix}-reports-dlq")),
        "{policy}"
    );
    assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "4");

    for (visibility, receives, setting) in [
        (Duration::from_millis(1500), 3, "visibility"),
        (Duration::ZERO, 3, "visibility"),
        (Duration::from_secs(43_201), 3, "visibility"),
        (Duration::from_secs(1), 0, "max_receives"),
    ] {
        match create_queues(&client, &prefix, visibility, receives).await {
            Err(QueueError::InvalidSetting { setting: s, .. }) => assert_eq!(s, setting),
            other => panic!("expected InvalidSetting {setting}, got {other:?}"),
        }
    }
    match create_queues(&client, "bad prefix!", Duration::from_secs(1), 3).await {
        Err(e @ QueueError::InvalidSetting { .. }) => assert!(e.to_string().contains("prefix")),
        other => panic!("expected InvalidSetting, got {other:?}"),
    }
}

/// Reading dead letters does not consume them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_dead_letters_can_be_read_twice() {
    let Some(sdk) = moto().await else {
        return;
    };
    let client = aws_sdk_sqs::Client::new(&sdk);
    let urls = create_queues(&client, &unique_name("dl"), Duration::from_secs(1), 1)
        .await
        .unwrap();
    let q = SqsQueue::new(client, urls);
    assert!(q.dead_letters(QueueName::Shards).await.unwrap().is_empty());
    q.send_batch(QueueName::Shards, vec!["p1".into(), "p2".into()])
        .await
        .unwrap();
    // One receive each (max_receives = 1), then released: dead-lettered on
    // the next receive.
    for _ in 0..2 {
        let m = q
            .receive(QueueName::Shards, Duration::from_secs(2))
            .await
            .unwrap()
            .expect("delivered");
        q.release(QueueName::Shards, &m.handle).await.unwrap();
    }
    assert_eq!(
        q.receive(QueueName::Shards, Duration::from_secs(1))
            .await
            .unwrap(),
        None,
        "both moved to the dead-letter queue"
    );
    for _ in 0..2 {
        let mut dead = q.dead_letters(QueueName::Shards).await.unwrap();
        dead.sort();
        assert_eq!(dead, ["p1", "p2"]);
    }
}

// ---- provisioning -------------------------------------------------------------

/// Everything the backends need, created and wired: the settings from
/// `provision`, written out with `to_env` and read back as a function
/// would, drive working backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_creates_working_backends() {
    let Some(sdk) = moto().await else {
        return;
    };
    let options = ProvisionOptions {
        visibility: Duration::from_secs(2),
        max_receives: 5,
        s3_path_style: false,
    };
    let settings = provision(&sdk, &unique_name("pv"), options)
        .await
        .expect("provision");
    let vars = to_env(&settings);
    let read =
        AwsSettings::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .expect("to_env gives a complete environment");
    assert_eq!(read, settings);
    let backends = AwsBackends::new(&sdk, &read);
    backends
        .blobs
        .put("runs/p/x", b"x".to_vec(), content_type::TEXT)
        .await
        .unwrap();
    assert_eq!(backends.blobs.get("runs/p/x").await.unwrap(), b"x");
    backends
        .queue
        .send_batch(QueueName::Shards, vec!["s".into()])
        .await
        .unwrap();
    assert!(!backends.queue.is_idle().await.unwrap());
}
