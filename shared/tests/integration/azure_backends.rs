//! The Azure backends against azurite: the run store, blob store and queue
//! contracts, unchanged, plus what only Azure has (the 64 KiB message limit
//! on the wire and the blob overflow, poison queues, lease extension with
//! changing pop receipts, SAS links checked by the emulator, entity-group
//! transactions past 100 entities). Every test makes its own container,
//! table and queues; all skip when azurite is not configured (see
//! `testkit::emulators::azurite`).

use std::sync::Arc;
use std::time::Duration;

use testexec::adapters::azure::provision::{emulator_settings, provision};
use testexec::adapters::azure::{
    AzureBackends, AzureSettings, MAX_WIRE_BYTES, OVERFLOW_PREFIX, TableRunStore,
};
use testexec::app::messages::{MAX_MESSAGE_BYTES, QueueName};
use testexec::app::ports::{
    BlobStore, Completion, JobQueue, QueueConsumer, RunStore, content_type,
};
use testexec::domain::model::{RunId, ShardId};
use testexec::errors::{BlobError, StoreError};
use testexec::testkit::contract::{self, QueueSettings, sample_run};
use testexec::testkit::emulators::{azurite, unique_name};

/// Fresh resources on azurite: `visibility` leases, poison after 3.
async fn fresh(visibility: Duration) -> Option<(AzureBackends, AzureSettings)> {
    let emu = azurite()?;
    let settings = emulator_settings(&emu, &unique_name("az"), visibility, 3).expect("settings");
    let backends = provision(&settings).await.expect("provisioning on azurite");
    // Idempotent: a second provisioning of the same names is fine.
    provision(&settings).await.expect("provisioning twice");
    Some((backends, settings))
}

async fn store() -> Option<Arc<TableRunStore>> {
    Some(fresh(Duration::from_secs(30)).await?.0.store)
}

/// azurite checks SharedKey signatures: the same requests signed with
/// another key are refused, and the error names the service and status
/// without the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_requests_signed_with_another_key_are_refused() {
    let Some(mut emu) = azurite() else { return };
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=";
    emu.key = wrong.into();
    let settings = emulator_settings(&emu, &unique_name("az"), Duration::from_secs(1), 3).unwrap();
    let err = provision(&settings)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("403"), "{err}");
    assert!(!err.contains(wrong), "the key is never in an error: {err}");
}

// ---- run store ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azure_table_run_store_contract() {
    let Some(store) = store().await else { return };
    contract::run_store_contract(store.clone()).await;
    contract::history_store_contract(&*store).await;
    contract::history_lists_a_scope(&*store).await;
}

/// 250 shards: three entity-group transactions (100 entities each at most,
/// the run in the first); all listed in order; a second create conflicts;
/// the last shard (in the last transaction) completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_table_run_with_250_shards_round_trips_in_order() {
    let Some(store) = store().await else { return };
    let (run, mut shards) = sample_run(RunId::new(), 250);
    shards.reverse();
    store.create_run(&run, &shards).await.expect("create_run");
    shards.reverse();
    assert_eq!(store.list_shards(run.id).await.unwrap(), shards);
    assert!(matches!(
        store.create_run(&run, &shards).await,
        Err(StoreError::Conflict { .. })
    ));
    let c = contract::completion(ShardId::new(run.id, 249), 1, contract::shard_counts(249));
    assert_eq!(
        store.complete_shard(&c).await.unwrap(),
        Completion::Applied {
            shards_done: 1,
            shard_count: 250
        }
    );
    assert_eq!(store.get_run(run.id).await.unwrap().unwrap(), {
        let mut r = run.clone();
        r.shards_done = 1;
        r.counts = contract::shard_counts(249);
        r
    });
}

/// A run too large for an entity is refused before any request, naming the
/// run; a huge error text is cut, never refused, so a final write lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_table_size_limits() {
    let Some(store) = store().await else { return };
    let (mut run, shards) = sample_run(RunId::new(), 1);
    run.suite = "s".repeat(1024 * 1024);
    match store.create_run(&run, &shards).await {
        Err(StoreError::Invalid { run: r, message }) => {
            assert_eq!(r, run.id.to_string());
            assert!(message.contains("1 MiB"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(
        store.get_run(run.id).await.unwrap().is_none(),
        "nothing written"
    );

    let (run, shards) = sample_run(RunId::new(), 1);
    store.create_run(&run, &shards).await.unwrap();
    let long = "e".repeat(2 * 1024 * 1024);
    assert!(
        store
            .finish_run(
                run.id,
                testexec::domain::model::RunStatus::Errored,
                9,
                Some(long)
            )
            .await
            .unwrap()
    );
    let got = store.get_run(run.id).await.unwrap().unwrap();
    let error = got.error.unwrap();
    assert!(error.len() <= testexec::adapters::azure::MAX_ERROR_BYTES + 20);
    assert!(error.ends_with("[truncated]"));
    assert!(
        store
            .list_active_runs()
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != run.id),
        "a finished run left the active index"
    );
}

/// Delivery keys of any characters (row keys forbid `/`, `#`, `?`) and
/// past their TTL; an empty or over-long key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_table_delivery_claims() {
    let Some(store) = store().await else { return };
    let key = "github:a/b#c?d\\e";
    assert!(store.claim_delivery(key, 1_000, 10).await.unwrap());
    assert!(!store.claim_delivery(key, 1_010, 10).await.unwrap());
    assert!(
        store.claim_delivery(key, 1_011, 10).await.unwrap(),
        "expired: claimed again"
    );
    for bad in [String::new(), "k".repeat(1025)] {
        assert!(matches!(
            store.claim_delivery(&bad, 1, 1).await,
            Err(StoreError::Invalid { .. })
        ));
    }
}

// ---- blob store ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_blob_store_contract() {
    let Some((b, _)) = fresh(Duration::from_secs(30)).await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    contract::blob_store_contract(&*b.blobs, scratch.path()).await;
}

/// 20 MiB + a bit goes up as staged 8 MiB blocks and comes back intact,
/// with its content type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_blob_block_upload_round_trip() {
    let Some((b, _)) = fresh(Duration::from_secs(30)).await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let size = 20 * 1024 * 1024 + 12_345;
    let mut state = 7u64;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let src = scratch.path().join("big.bin");
    std::fs::write(&src, &data).unwrap();
    b.blobs
        .put_file("runs/big/source.tar.gz", &src, content_type::GZIP)
        .await
        .expect("block upload");
    let dest = scratch.path().join("back.bin");
    b.blobs
        .get_to_file("runs/big/source.tar.gz", &dest)
        .await
        .unwrap();
    assert!(std::fs::read(&dest).unwrap() == data, "byte for byte");
    let link = b
        .blobs
        .link("runs/big/source.tar.gz")
        .await
        .unwrap()
        .unwrap();
    let rsp = reqwest::get(&link).await.unwrap();
    assert_eq!(
        rsp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(content_type::GZIP)
    );
    let names: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
}

/// A SAS link fetched with plain HTTP gives the exact bytes and content
/// type; azurite checks the signature, so a tampered link (another
/// signature, another blob, a longer lifetime) is refused, and an expired
/// one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_blob_sas_link_is_signed() {
    let Some((b, settings)) = fresh(Duration::from_secs(30)).await else {
        return;
    };
    let key = "runs/01J9Z3V8K4QW5T6Y7X8C9B0N1M/report/index.html";
    let body = b"<html>report</html>".repeat(3000);
    b.blobs
        .put(key, body.clone(), content_type::HTML)
        .await
        .unwrap();
    b.blobs
        .put(
            "runs/other/secret.html",
            b"secret".to_vec(),
            content_type::HTML,
        )
        .await
        .unwrap();
    let link = b.blobs.link(key).await.unwrap().expect("links");
    assert!(link.contains("sig=") && link.contains("sp=r"), "{link}");
    let http = reqwest::Client::new();
    let ok = http.get(&link).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(
        ok.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(content_type::HTML)
    );
    assert!(ok.bytes().await.unwrap().as_ref() == body.as_slice());

    let url = reqwest::Url::parse(&link).unwrap();
    let sig = url
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1
        .into_owned();
    let mut forged_sig = sig.clone().into_bytes();
    forged_sig[0] = if forged_sig[0] == b'A' { b'B' } else { b'A' };
    let forged_sig = String::from_utf8(forged_sig).unwrap();
    let with = |k: &str, v: &str| {
        let mut u = url.clone();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(a, b)| {
                let b = if a == k {
                    v.to_string()
                } else {
                    b.into_owned()
                };
                (a.into_owned(), b)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        u.to_string()
    };
    let other_blob = link.replace(
        "01J9Z3V8K4QW5T6Y7X8C9B0N1M%2Freport%2Findex.html",
        "other%2Fsecret.html",
    );
    assert_ne!(other_blob, link, "the blob name is in the link: {link}");
    for bad in [
        with("sig", &forged_sig),
        with("se", "2099-01-01T00:00:00Z"),
        other_blob,
    ] {
        let status = http.get(&bad).send().await.unwrap().status().as_u16();
        assert_eq!(status, 403, "tampered link must be refused: {bad}");
    }

    // A link dies after its lifetime (whole seconds).
    let mut short = settings.clone();
    short.link_ttl = Duration::from_secs(1);
    let short = AzureBackends::new(&short).unwrap();
    let link = short.blobs.link(key).await.unwrap().unwrap();
    assert_eq!(http.get(&link).send().await.unwrap().status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        http.get(&link).send().await.unwrap().status().as_u16(),
        403,
        "expired link must be refused"
    );
}

/// Keys are refused for the same reasons as by the file store, before any
/// request; NotFound carries the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_blob_key_rules_and_missing_keys() {
    let Some((b, _)) = fresh(Duration::from_secs(30)).await else {
        return;
    };
    for key in ["a/.tmp-x", "a//b", "a/./b", "dir/", &"k".repeat(1025)] {
        let expected = match testexec::adapters::validate_key(key) {
            Err(BlobError::InvalidKey { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        match b.blobs.put(key, vec![], content_type::TEXT).await {
            Err(BlobError::InvalidKey { reason, .. }) => assert_eq!(reason, expected),
            other => panic!("{key:?}: expected InvalidKey, got {other:?}"),
        }
        assert!(matches!(
            b.blobs.link(key).await,
            Err(BlobError::InvalidKey { .. })
        ));
    }
    match b.blobs.get("runs/none/log.txt").await {
        Err(BlobError::NotFound { key }) => assert_eq!(key, "runs/none/log.txt"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

// ---- queues -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_queue_contract() {
    let Some((b, _)) = fresh(Duration::from_secs(1)).await else {
        return;
    };
    contract::queue_contract(
        &*b.queue,
        QueueSettings {
            visibility_timeout: Duration::from_secs(1),
            max_receives: 3,
        },
    )
    .await;
}

/// Storage Queues refuse a message text over 64 KiB (azurite enforces it),
/// so bodies whose base64 would be longer travel as blobs: on the wire the
/// message is a short blob reference, the consumer gets the exact body, and
/// acking deletes the blob. A body whose encoding is exactly 64 KiB still
/// goes inline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_queue_64k_limit_on_the_wire() {
    let Some((b, _)) = fresh(Duration::from_secs(5)).await else {
        return;
    };
    let q = &b.queue;
    let over = "x".repeat(MAX_WIRE_BYTES + 1);
    let refused = q.send_raw(QueueName::Shards, over).await;
    assert!(refused.is_err(), "the service refuses > 64 KiB texts");
    assert!(q.peek_raw(QueueName::Shards).await.unwrap().is_empty());

    let inline = "i".repeat(MAX_WIRE_BYTES / 4 * 3); // base64: exactly 64 KiB
    let large = "L".repeat(MAX_MESSAGE_BYTES); // the port's limit, 200 KiB
    q.send_batch(QueueName::Shards, vec![inline.clone(), large.clone()])
        .await
        .unwrap();
    let wire = q.peek_raw(QueueName::Shards).await.unwrap();
    assert_eq!(wire.len(), 2);
    assert_eq!(wire[0].len(), MAX_WIRE_BYTES, "inline, base64");
    assert!(
        wire[1].len() < 200 && wire[1].contains(OVERFLOW_PREFIX),
        "{}",
        wire[1]
    );
    assert_eq!(b.blobs.list(OVERFLOW_PREFIX).await.unwrap().len(), 1);

    let mut got = Vec::new();
    while let Some(m) = q
        .receive(QueueName::Shards, Duration::from_secs(1))
        .await
        .unwrap()
    {
        q.ack(QueueName::Shards, &m.handle).await.unwrap();
        got.push(m.body);
    }
    assert!(
        got.len() == 2 && got[0] == inline && got[1] == large,
        "exact bodies"
    );
    assert!(
        b.blobs.list(OVERFLOW_PREFIX).await.unwrap().is_empty(),
        "the overflow blob went with its message"
    );
}

/// A message this adapter cannot read goes to the poison queue at once
/// (never retried); one delivered more than `max_dequeues` times follows
/// it there; `dead_letters` reads both without consuming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_queue_poison_queue() {
    let Some((b, settings)) = fresh(Duration::from_secs(1)).await else {
        return;
    };
    let q = &b.queue;
    q.send_raw(QueueName::Results, "not base64 at all!".into())
        .await
        .unwrap();
    assert_eq!(
        q.receive(QueueName::Results, Duration::ZERO).await.unwrap(),
        None
    );
    assert_eq!(
        q.dead_letters(QueueName::Results).await.unwrap(),
        ["not base64 at all!"]
    );
    q.send_batch(QueueName::Results, vec!["again and again".into()])
        .await
        .unwrap();
    for attempt in 1..=settings.max_dequeues {
        let m = q
            .receive(QueueName::Results, Duration::from_secs(4))
            .await
            .unwrap()
            .expect("delivered until max dequeues");
        assert_eq!(m.attempt, attempt);
    }
    assert_eq!(
        q.receive(QueueName::Results, Duration::from_secs(3))
            .await
            .unwrap(),
        None
    );
    let mut dead = q.dead_letters(QueueName::Results).await.unwrap();
    dead.sort();
    assert_eq!(dead, ["again and again", "not base64 at all!"]);
    assert_eq!(
        dead,
        {
            let mut again = q.dead_letters(QueueName::Results).await.unwrap();
            again.sort();
            again
        },
        "reading dead letters does not consume them"
    );
    assert!(
        q.is_idle().await.unwrap(),
        "poison queues do not count as work"
    );
}

/// is_idle follows a message from sent to in flight to acked; release
/// makes it visible at once with the next attempt; stale handles are not
/// errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_queue_is_idle_release_and_stale_handles() {
    let Some((b, _)) = fresh(Duration::from_secs(30)).await else {
        return;
    };
    let q = &b.queue;
    assert!(q.is_idle().await.unwrap());
    q.send_batch(QueueName::Requests, vec!["r".into()])
        .await
        .unwrap();
    assert!(!q.is_idle().await.unwrap(), "a waiting message");
    let first = q
        .receive(QueueName::Requests, Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.attempt, 1);
    assert!(!q.is_idle().await.unwrap(), "a message in flight");
    q.release(QueueName::Requests, &first.handle).await.unwrap();
    let second = q
        .receive(QueueName::Requests, Duration::from_secs(2))
        .await
        .unwrap()
        .expect("released: visible again at once");
    assert_eq!((second.body.as_str(), second.attempt), ("r", 2));
    q.ack(QueueName::Requests, &first.handle)
        .await
        .expect("stale handle: no error");
    assert!(!q.is_idle().await.unwrap(), "a stale ack deleted nothing");
    q.ack(QueueName::Requests, &second.handle).await.unwrap();
    assert!(q.is_idle().await.unwrap(), "acked: idle again");
    q.ack(QueueName::Requests, &second.handle)
        .await
        .expect("already deleted: no error");
    q.release(QueueName::Requests, &second.handle)
        .await
        .expect("stale release: no error");
}

/// A consumer that holds a message past the visibility timeout by
/// extending its lease keeps it: nobody else receives it meanwhile, and
/// its original handle still acks it after the pop receipt changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_queue_extended_lease_is_delivered_once() {
    let Some((b, _)) = fresh(Duration::from_secs(1)).await else {
        return;
    };
    let q = &b.queue;
    q.send_batch(QueueName::Shards, vec!["long".into()])
        .await
        .unwrap();
    let held = q
        .receive(QueueName::Shards, Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    // Four seconds on a 1 s lease: each renewal changes the pop receipt,
    // and another consumer polling all along never gets the message.
    for _ in 0..10 {
        q.extend(QueueName::Shards, &held.handle).await.unwrap();
        assert_eq!(
            q.receive(QueueName::Shards, Duration::from_millis(400))
                .await
                .unwrap(),
            None
        );
    }
    q.ack(QueueName::Shards, &held.handle).await.unwrap();
    assert_eq!(
        q.receive(QueueName::Shards, Duration::from_secs(3))
            .await
            .unwrap(),
        None
    );
    assert!(
        q.is_idle().await.unwrap(),
        "acked through the original handle"
    );
}
