//! The GCP backends against Google's own emulators (Pub/Sub, Firestore)
//! and fake-gcs-server: the unchanged contract suites, plus what each
//! adapter promises beyond them (resumable uploads, links, leases shorter
//! than Pub/Sub's 10 s minimum ack deadline, dead letters read without
//! being consumed, idleness).
//!
//! Every test provisions resources of its own under a fresh prefix (the
//! emulators are shared) and skips when the emulators are not running (see
//! `testkit::emulators::gcp`).

use std::sync::Arc;
use std::time::Duration;

use testexec::adapters::gcp::{GcpBackends, GcpSettings, GcsBlobStore, StorageEndpoint};
use testexec::app::messages::{MAX_MESSAGE_BYTES, QueueName};
use testexec::app::ports::{BlobStore, JobQueue, QueueConsumer, RunStore, content_type};
use testexec::errors::{BlobError, QueueError, StoreError};
use testexec::testkit::contract::{
    QueueSettings, blob_store_contract, queue_dead_letter_moves_a_message_at_once,
    queue_dead_letters_after_max_receives, queue_delivers_every_message,
    queue_extend_holds_a_message_past_its_timeout, queue_redelivers_unacked_after_visibility,
    queue_rejects_too_large, run_store_contract,
};
use testexec::testkit::emulators::gcp;

/// Fresh resources on the emulators, leased for `visibility`.
async fn backends(visibility: Duration) -> Option<(GcpBackends, GcpSettings)> {
    let settings = gcp(visibility)?;
    let backends = GcpBackends::provision(&settings)
        .await
        .expect("provisioning on the emulators");
    GcpBackends::provision(&settings)
        .await
        .expect("provisioning is idempotent");
    Some((backends, settings))
}

/// Pseudo-random bytes (xorshift), so a misplaced chunk shows.
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

// ---- Firestore ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firestore_run_store_contract() {
    let Some((gcp, _)) = backends(Duration::from_secs(10)).await else {
        return;
    };
    let started = std::time::Instant::now();
    run_store_contract(gcp.store.clone()).await;
    testexec::testkit::contract::history_store_contract(&*gcp.store).await;
    testexec::testkit::contract::history_lists_a_scope(&*gcp.store).await;
    eprintln!(
        "firestore run store contract: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firestore_refuses_what_it_cannot_store() {
    use testexec::testkit::contract::sample_run;
    let Some((gcp, _)) = backends(Duration::from_secs(10)).await else {
        return;
    };
    let store = &gcp.store;
    // A delivery key whose document id would pass Firestore's limit.
    let long = "k".repeat(testexec::adapters::gcp::MAX_DELIVERY_KEY_BYTES + 1);
    match store.claim_delivery(&long, 1, 1).await {
        Err(StoreError::Invalid { message, .. }) => assert!(message.contains("400"), "{message}"),
        other => panic!("an over-long delivery key must be Invalid, got {other:?}"),
    }
    // Keys with a `/` (a path separator to Firestore) are just keys.
    assert!(store.claim_delivery("github/a/b", 1, 10).await.unwrap());
    assert!(!store.claim_delivery("github/a/b", 2, 10).await.unwrap());
    assert!(store.claim_delivery("github/a", 2, 10).await.unwrap());
    // A run over the document limit is refused, naming it, and nothing is written.
    let (mut run, shards) = sample_run(testexec::domain::model::RunId::new(), 1);
    run.suite = "s".repeat(testexec::adapters::gcp::MAX_DOC_BYTES);
    match store.create_run(&run, &shards).await {
        Err(StoreError::Invalid { run: r, message }) => {
            assert_eq!(r, run.id.to_string());
            assert!(message.contains("1 MiB"), "{message}");
        }
        other => panic!("an oversized run must be Invalid, got {other:?}"),
    }
    assert_eq!(store.get_run(run.id).await.unwrap(), None);
    // A long error is cut, not refused: the final write always lands.
    let (run, shards) = sample_run(testexec::domain::model::RunId::new(), 1);
    store.create_run(&run, &shards).await.unwrap();
    let huge = "e".repeat(testexec::adapters::gcp::MAX_DOC_BYTES * 2);
    assert!(
        store
            .finish_run(
                run.id,
                testexec::domain::model::RunStatus::Errored,
                9,
                Some(huge)
            )
            .await
            .unwrap()
    );
    let error = store.get_run(run.id).await.unwrap().unwrap().error.unwrap();
    assert!(
        error.ends_with("[truncated]") && error.len() < 20 * 1024,
        "{}",
        error.len()
    );
}

/// Two stores on one database stand for two processes: their in-process
/// locks do not see each other, so only Firestore's transactions keep each
/// completion applied once and each `shards_done` distinct.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firestore_transactions_decide_between_processes() {
    use testexec::adapters::gcp::FirestoreRunStore;
    use testexec::app::ports::Completion;
    use testexec::domain::model::{RunId, ShardId};
    use testexec::testkit::contract::{completion, sample_run, shard_counts};
    let Some((_, settings)) = backends(Duration::from_secs(10)).await else {
        return;
    };
    let connect = || {
        FirestoreRunStore::connect(
            &settings.project,
            &settings.firestore_database,
            &settings.firestore_prefix,
        )
    };
    let stores = [
        Arc::new(connect().await.unwrap()),
        Arc::new(connect().await.unwrap()),
    ];
    let n = 6;
    let (run, shards) = sample_run(RunId::new(), n);
    stores[0].create_run(&run, &shards).await.unwrap();
    let started = std::time::Instant::now();
    // Every shard completed once by each "process", at the same time.
    let tasks: Vec<_> = (0..n)
        .flat_map(|i| [(i, 0), (i, 1)])
        .map(|(i, p)| {
            let store = stores[p].clone();
            let c = completion(ShardId::new(run.id, i), 1, shard_counts(i));
            tokio::spawn(async move { store.complete_shard(&c).await })
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for t in tasks {
        match t.await.unwrap().expect("complete_shard under contention") {
            Completion::Applied { shards_done, .. } => {
                assert!(
                    seen.insert(shards_done),
                    "shards_done {shards_done} seen twice"
                )
            }
            Completion::AlreadyCompleted => {}
        }
    }
    assert_eq!(seen, (1..=n).collect(), "one completion applied per shard");
    let got = stores[1].get_run(run.id).await.unwrap().unwrap();
    let mut expected = testexec::domain::model::Counts::default();
    (0..n).for_each(|i| expected.add(&shard_counts(i)));
    assert_eq!((got.shards_done, got.counts), (n, expected));
    // One hand-off between the two.
    let (a, b) = tokio::join!(
        stores[0].begin_report(run.id),
        stores[1].begin_report(run.id)
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one begin_report wins");
    eprintln!(
        "two processes, {n} shards: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A completion reads the run document and its shard's, nothing that grows
/// with the run: on a run of 300 shards every completion reads exactly 2
/// documents (the code before the counters read `1 + shard_count`: 301
/// here), and reading the run, listing runs and the hand-off read only run
/// documents, while the totals stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firestore_completion_reads_two_documents_whatever_the_run_size() {
    use testexec::app::ports::Completion;
    use testexec::domain::model::{Counts, RunId, ShardId};
    use testexec::testkit::contract::{completion, sample_run, shard_counts};
    let Some((gcp, _)) = backends(Duration::from_secs(10)).await else {
        return;
    };
    let store = gcp.store.clone();
    let n = 300;
    let (run, shards) = sample_run(RunId::new(), n);
    store.create_run(&run, &shards).await.unwrap();
    let reads = || store.run_reads();
    let before = reads();
    let fresh = store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!((fresh.shards_done, fresh.counts), (0, Counts::default()));
    assert_eq!(reads() - before, 1, "get_run reads the run document only");

    let first = completion(ShardId::new(run.id, 0), 1, shard_counts(0));
    let before = reads();
    assert_eq!(
        store.complete_shard(&first).await.unwrap(),
        Completion::Applied {
            shards_done: 1,
            shard_count: n
        }
    );
    assert_eq!(
        reads() - before,
        2,
        "a completion reads the run and its shard"
    );
    let before = reads();
    assert_eq!(
        store.complete_shard(&first).await.unwrap(),
        Completion::AlreadyCompleted
    );
    assert_eq!(reads() - before, 2, "so does a duplicate");
    let before = reads();
    assert!(!store.begin_report(run.id).await.unwrap(), "299 pending");
    assert_eq!(
        reads() - before,
        1,
        "begin_report reads the run document only"
    );

    // The rest at once (this store's own lock serialises them; the two-store
    // test covers Firestore's aborts and retries, which read again).
    let before = reads();
    let tasks: Vec<_> = (1..n)
        .map(|i| {
            let store = store.clone();
            let c = completion(ShardId::new(run.id, i), 1, shard_counts(i));
            tokio::spawn(async move { store.complete_shard(&c).await })
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Completion::Applied {
                shards_done,
                shard_count,
            } => {
                assert_eq!(shard_count, n);
                assert!(seen.insert(shards_done), "shards_done {shards_done} twice");
            }
            other => panic!("every shard was pending, got {other:?}"),
        }
    }
    assert_eq!(seen, (2..=n).collect());
    let read = reads() - before;
    assert_eq!(
        read,
        2 * u64::from(n - 1),
        "{read} reads for {} completions: 2 each",
        n - 1
    );

    let mut expected = Counts::default();
    (0..n).for_each(|i| expected.add(&shard_counts(i)));
    let before = reads();
    let got = store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!((got.shards_done, got.counts), (n, expected));
    let listed = store.list_runs(10).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&got));
    let active = store.list_active_runs().await.unwrap();
    assert_eq!(active, [got]);
    assert_eq!(
        reads() - before,
        3,
        "get_run, list_runs, list_active_runs: a read per run each"
    );
    let before = reads();
    assert!(store.begin_report(run.id).await.unwrap());
    assert_eq!(reads() - before, 1);
    // The shards themselves are still there to list (report reads them).
    let listed = store.list_shards(run.id).await.unwrap();
    assert_eq!(listed.len(), n as usize);
    assert!(listed.iter().all(|s| s.counts == shard_counts(s.id.index)));
}

/// The run and shard documents as the code before the counters wrote them
/// (`create_run`, and a collector of that code completing a shard): no
/// `shards_done` or `counts` on the run document.
mod old_layout {
    use serde::{Deserialize, Serialize};
    use testexec::adapters::gcp::GcpSettings;
    use testexec::domain::model::{Run, ShardRecord};

    #[derive(Debug, Serialize, Deserialize)]
    pub struct RunDoc {
        pub id: String,
        pub status: String,
        pub active: bool,
        pub shard_count: u32,
        pub body: String,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct ShardDoc {
        pub index: u32,
        pub status: String,
        pub body: String,
    }

    /// Whether a run document carries the counters, read raw.
    #[derive(Debug, Deserialize)]
    pub struct Probe {
        #[serde(default)]
        pub shards_done: Option<u32>,
    }

    pub struct Db {
        db: firestore::FirestoreDb,
        runs: String,
    }

    impl Db {
        pub async fn connect(settings: &GcpSettings) -> Db {
            let options = firestore::FirestoreDbOptions::new(settings.project.clone())
                .with_database_id(settings.firestore_database.clone());
            Db {
                db: firestore::FirestoreDb::with_options(options).await.unwrap(),
                runs: format!("{}runs", settings.firestore_prefix),
            }
        }

        /// The run document the old `create_run` wrote: counters zeroed in
        /// the body and kept nowhere else.
        pub async fn put_run(&self, run: &Run) {
            let mut body = run.clone();
            body.shards_done = 0;
            body.counts = Default::default();
            let doc = RunDoc {
                id: run.id.to_string(),
                status: run.status.as_str().into(),
                active: !run.status.is_final(),
                shard_count: run.shard_count,
                body: serde_json::to_string(&body).unwrap(),
            };
            let _: RunDoc = self
                .db
                .fluent()
                .update()
                .in_col(&self.runs)
                .document_id(&doc.id)
                .object(&doc)
                .execute()
                .await
                .unwrap();
        }

        /// A shard document (pending, or completed by an old collector,
        /// which wrote only this).
        pub async fn put_shard(&self, shard: &ShardRecord) {
            let parent = self
                .db
                .parent_path(&self.runs, shard.id.run.to_string())
                .unwrap()
                .to_string();
            let doc = ShardDoc {
                index: shard.id.index,
                status: shard.status.as_str().into(),
                body: serde_json::to_string(shard).unwrap(),
            };
            let _: ShardDoc = self
                .db
                .fluent()
                .update()
                .in_col("shards")
                .document_id(format!("{:04}", shard.id.index))
                .parent(&parent)
                .object(&doc)
                .execute()
                .await
                .unwrap();
        }

        /// The run document read as `T` (the old code read [`RunDoc`]).
        pub async fn read<T>(&self, run: &Run) -> T
        where
            T: for<'de> Deserialize<'de> + Send,
        {
            self.db
                .fluent()
                .select()
                .by_id_in(&self.runs)
                .obj::<T>()
                .one(run.id.to_string())
                .await
                .unwrap()
                .expect("the run document")
        }

        pub async fn probe(&self, run: &Run) -> Probe {
            self.read(run).await
        }
    }

    /// `shard` as a collector completes it.
    pub fn completed(shard: &ShardRecord, counts: testexec::domain::model::Counts) -> ShardRecord {
        let mut done = shard.clone();
        done.status = if counts.all_passed() {
            testexec::domain::model::ShardStatus::Passed
        } else {
            testexec::domain::model::ShardStatus::Failed
        };
        done.attempt = Some(1);
        done.counts = counts;
        done.started_ms = Some(1_000);
        done.finished_ms = Some(2_000);
        done
    }
}

/// A run the code before the counters created, partly completed by its
/// collectors, upgraded mid-run: it reads with its shards' totals (summed
/// from them, only for such a run), the new code completes the rest
/// (`shards_done` right, nothing applied twice), the hand-off and the final
/// write work, and an old collector completing a shard meanwhile still
/// counts. The document stays in the old layout throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firestore_reads_and_completes_a_run_written_before_the_counters() {
    use testexec::app::ports::Completion;
    use testexec::domain::model::{Counts, RunId, RunStatus, ShardId};
    use testexec::testkit::contract::{completion, sample_run, shard_counts};
    let Some((gcp, settings)) = backends(Duration::from_secs(10)).await else {
        return;
    };
    let store = gcp.store.clone();
    let old = old_layout::Db::connect(&settings).await;
    let n = 5;
    let (run, shards) = sample_run(RunId::new(), n);
    old.put_run(&run).await;
    for shard in &shards {
        old.put_shard(shard).await;
    }
    // Two shards completed by the old code before the upgrade.
    for i in 0..2 {
        old.put_shard(&old_layout::completed(&shards[i as usize], shard_counts(i)))
            .await;
    }
    let sum = |range: std::ops::Range<u32>| {
        let mut c = Counts::default();
        range.for_each(|i| c.add(&shard_counts(i)));
        c
    };

    let before = store.run_reads();
    let got = store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!((got.shards_done, got.counts), (2, sum(0..2)));
    assert_eq!(
        store.run_reads() - before,
        1 + u64::from(n),
        "a legacy run is totalled from its shards"
    );
    assert_eq!(got.suite, run.suite);
    assert_eq!(
        store.list_runs(5).await.unwrap(),
        std::slice::from_ref(&got)
    );
    assert_eq!(store.list_active_runs().await.unwrap(), [got]);
    assert!(!store.begin_report(run.id).await.unwrap(), "3 pending");

    // The new code completes shard 2; a duplicate of an old completion is
    // recognised.
    let c = |i: u32| completion(ShardId::new(run.id, i), 1, shard_counts(i));
    assert_eq!(
        store.complete_shard(&c(2)).await.unwrap(),
        Completion::Applied {
            shards_done: 3,
            shard_count: n
        }
    );
    assert_eq!(
        store.complete_shard(&c(1)).await.unwrap(),
        Completion::AlreadyCompleted
    );
    // An old collector, still running mid-upgrade, completes shard 3.
    old.put_shard(&old_layout::completed(&shards[3], shard_counts(3)))
        .await;
    assert_eq!(
        store.complete_shard(&c(4)).await.unwrap(),
        Completion::Applied {
            shards_done: 5,
            shard_count: n
        },
        "the old collector's completion counts"
    );
    assert_eq!(old.probe(&run).await.shards_done, None, "still legacy");
    let got = store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!((got.shards_done, got.counts), (n, sum(0..n)));
    assert!(
        !store.recount_run(run.id, u64::MAX).await.unwrap(),
        "nothing to recount on a legacy run"
    );
    assert!(store.begin_report(run.id).await.unwrap());
    assert!(!store.begin_report(run.id).await.unwrap(), "once");
    assert!(
        store
            .finish_run(run.id, RunStatus::Failed, 9_000, None)
            .await
            .unwrap()
    );
    let done = store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.finished_ms, done.shards_done, done.counts),
        (RunStatus::Failed, Some(9_000), n, sum(0..n))
    );
    assert_eq!(old.probe(&run).await.shards_done, None, "still legacy");
    assert!(store.list_active_runs().await.unwrap().is_empty());
    assert_eq!(store.list_runs(5).await.unwrap(), [done]);
}

/// A collector of the old code completing a shard of a run the new code
/// created writes the shard alone, leaving the run's counters one short:
/// the run could never be handed to report. The sweep's `recount_run`
/// (called for overdue runs) sets them to the shards' totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firestore_recount_repairs_a_completion_an_old_collector_did_not_count() {
    use testexec::app::ports::Completion;
    use testexec::domain::model::{Counts, RunId, ShardId};
    use testexec::testkit::contract::{completion, sample_run, shard_counts};
    let Some((gcp, settings)) = backends(Duration::from_secs(10)).await else {
        return;
    };
    let store = gcp.store.clone();
    let old = old_layout::Db::connect(&settings).await;
    let n = 3;
    let (run, shards) = sample_run(RunId::new(), n);
    store.create_run(&run, &shards).await.unwrap();
    assert_eq!(old.probe(&run).await.shards_done, Some(0), "counted");
    // The old code (after a rollback) reads the new document: the fields it
    // does not know are ignored, and its body is the old body.
    let as_old: old_layout::RunDoc = old.read(&run).await;
    let body: testexec::domain::model::Run = serde_json::from_str(&as_old.body).unwrap();
    assert_eq!(
        (as_old.shard_count, body.shards_done, body.id),
        (n, 0, run.id)
    );
    assert!(
        !store.recount_run(run.id, u64::MAX).await.unwrap(),
        "nothing to repair"
    );
    let c = |i: u32| completion(ShardId::new(run.id, i), 1, shard_counts(i));
    store.complete_shard(&c(0)).await.unwrap();
    old.put_shard(&old_layout::completed(&shards[1], shard_counts(1)))
        .await;
    assert_eq!(
        store.complete_shard(&c(2)).await.unwrap(),
        Completion::Applied {
            shards_done: 2,
            shard_count: n
        },
        "the counters missed the old collector's shard"
    );
    assert!(!store.begin_report(run.id).await.unwrap());
    assert!(
        store.recount_run(run.id, u64::MAX).await.unwrap(),
        "repaired"
    );
    assert!(!store.recount_run(run.id, u64::MAX).await.unwrap(), "once");
    let mut all = Counts::default();
    (0..n).for_each(|i| all.add(&shard_counts(i)));
    let got = store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!((got.shards_done, got.counts), (n, all));
    assert!(store.begin_report(run.id).await.unwrap());
    assert!(
        !store.recount_run(run.id, u64::MAX).await.unwrap(),
        "a run past running is left alone"
    );
}

// ---- Cloud Storage --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_blob_store_contract() {
    let Some((gcp, _)) = backends(Duration::from_secs(10)).await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    blob_store_contract(&*gcp.blobs, scratch.path()).await;
}

/// A file over the threshold goes up in resumable chunks and comes back
/// byte for byte with its content type, through `get_to_file` and through
/// the link (the emulator serves the plain media URL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_resumable_upload_round_trips_and_links_serve_it() {
    let Some((_, settings)) = backends(Duration::from_secs(10)).await else {
        return;
    };
    let url = settings.storage_emulator.clone().unwrap();
    let blobs = GcsBlobStore::connect(
        StorageEndpoint::Emulator(url),
        &settings.bucket,
        settings.link_ttl,
    )
    .await
    .unwrap()
    .with_resumable(1024 * 1024, 256 * 1024);
    let scratch = tempfile::tempdir().unwrap();
    let data = noise(3 * 1024 * 1024 + 12_345, 7);
    let src = scratch.path().join("big.tar.gz");
    std::fs::write(&src, &data).unwrap();
    let key = "runs/x/source.tar.gz";
    blobs.put_file(key, &src, content_type::GZIP).await.unwrap();
    let dest = scratch.path().join("down/big.tar.gz");
    blobs.get_to_file(key, &dest).await.unwrap();
    assert!(
        std::fs::read(&dest).unwrap() == data,
        "byte-equal after a resumable upload"
    );
    let leftovers: Vec<_> = std::fs::read_dir(scratch.path().join("down"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    let report = "runs/x/report/index.html";
    blobs
        .put(report, b"<h1>ok</h1>".to_vec(), content_type::HTML)
        .await
        .unwrap();
    let link = blobs
        .link(report)
        .await
        .unwrap()
        .expect("the emulator link");
    let answer = reqwest::get(&link).await.unwrap();
    assert_eq!(answer.status(), 200, "{link}");
    assert_eq!(
        answer.headers()["content-type"].to_str().unwrap(),
        content_type::HTML,
        "the content type is stored with the object"
    );
    assert_eq!(answer.bytes().await.unwrap().as_ref(), b"<h1>ok</h1>");

    // A missing object creates nothing locally.
    let none = scratch.path().join("none");
    match blobs.get_to_file("runs/x/missing", &none).await {
        Err(BlobError::NotFound { key }) => assert_eq!(key, "runs/x/missing"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!none.exists());
}

// ---- Pub/Sub ----------------------------------------------------------------------

/// Leases of 2 s: under Pub/Sub's 10 s minimum ack deadline, so each
/// delivery's deadline is shortened after the pull (and that is tested).
const LEASE: Duration = Duration::from_secs(2);

fn queue_settings() -> QueueSettings {
    QueueSettings {
        visibility_timeout: LEASE,
        max_receives: 5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_queue_delivers_every_message() {
    let Some((gcp, _)) = backends(LEASE).await else {
        return;
    };
    queue_delivers_every_message(&*gcp.queue, QueueName::Shards, queue_settings()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_queue_redelivers_unacked_after_visibility() {
    let Some((gcp, _)) = backends(LEASE).await else {
        return;
    };
    queue_redelivers_unacked_after_visibility(&*gcp.queue, QueueName::Results, queue_settings())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_queue_dead_letters_after_max_receives() {
    let Some((gcp, _)) = backends(LEASE).await else {
        return;
    };
    queue_dead_letters_after_max_receives(&*gcp.queue, QueueName::Reports, queue_settings()).await;
    // Reading the dead letters does not consume them.
    assert_eq!(
        gcp.queue.dead_letters(QueueName::Reports).await.unwrap(),
        ["poison"]
    );
    assert!(
        gcp.queue
            .dead_letters(QueueName::Shards)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_queue_rejects_too_large() {
    let Some((gcp, _)) = backends(LEASE).await else {
        return;
    };
    queue_rejects_too_large(&*gcp.queue, QueueName::Shards, queue_settings()).await;
    // All or nothing: an oversized body sends none of its batch.
    let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
    assert!(matches!(
        gcp.queue
            .send_batch(QueueName::Requests, vec!["small".into(), big])
            .await,
        Err(QueueError::TooLarge { .. })
    ));
    assert_eq!(
        gcp.queue
            .receive(QueueName::Requests, Duration::from_secs(1))
            .await
            .unwrap(),
        None
    );
}

/// A hopeless message goes to the dead-letter topic at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_queue_dead_letter_moves_a_message_at_once() {
    let Some((gcp, _)) = backends(LEASE).await else {
        return;
    };
    queue_dead_letter_moves_a_message_at_once(&*gcp.queue, QueueName::Results, queue_settings())
        .await;
    assert!(
        gcp.queue.is_idle().await.unwrap(),
        "settled by dead-lettering"
    );
}

/// Renewals (`ModifyAckDeadline`) hold a message for three leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_queue_extend_holds_a_message_past_its_timeout() {
    let Some((gcp, _)) = backends(LEASE).await else {
        return;
    };
    queue_extend_holds_a_message_past_its_timeout(
        &*gcp.queue,
        QueueName::Requests,
        queue_settings(),
    )
    .await;
    assert!(gcp.queue.is_idle().await.unwrap());
}

/// Idle from the ledger: queued, then in flight, are busy; acked is idle
/// again; a stale or malformed ack id is not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_idleness_follows_the_messages() {
    let Some((gcp, _)) = backends(LEASE).await else {
        return;
    };
    let q: Arc<dyn QueueConsumer> = gcp.queue.clone();
    assert!(q.is_idle().await.unwrap(), "nothing sent yet");
    gcp.queue
        .send_batch(
            QueueName::Shards,
            vec![r#"{"v":1,"run":"01J9Z3V8K4QW5T6Y7X8C9B0N1M"}"#.into()],
        )
        .await
        .unwrap();
    assert!(!q.is_idle().await.unwrap(), "queued");
    let first = q
        .receive(QueueName::Shards, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("delivered");
    assert_eq!(first.attempt, 1);
    assert!(!q.is_idle().await.unwrap(), "in flight");
    // The lease runs out: delivered again, and the old ack id is stale.
    let again = q
        .receive(QueueName::Shards, LEASE * 4)
        .await
        .unwrap()
        .expect("redelivered after the lease");
    assert_eq!(again.attempt, 2);
    q.ack(QueueName::Shards, &first.handle).await.unwrap();
    assert!(!q.is_idle().await.unwrap(), "a stale ack settles nothing");
    q.ack(QueueName::Shards, "not-an-ack-id").await.unwrap();
    q.release(QueueName::Shards, "not-an-ack-id").await.unwrap();
    q.ack(QueueName::Shards, &again.handle).await.unwrap();
    assert!(q.is_idle().await.unwrap(), "acked: idle");
    assert_eq!(
        q.receive(QueueName::Shards, LEASE * 2).await.unwrap(),
        None,
        "acked: gone"
    );
}

/// `release` hands a message back at once, counting the attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_release_redelivers_at_once() {
    let Some((gcp, _)) = backends(Duration::from_secs(60)).await else {
        return;
    };
    let q = &gcp.queue;
    q.send_batch(QueueName::Results, vec!["r".into()])
        .await
        .unwrap();
    let m = q
        .receive(QueueName::Results, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    q.release(QueueName::Results, &m.handle).await.unwrap();
    let started = std::time::Instant::now();
    let again = q
        .receive(QueueName::Results, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("released: back at once");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!((again.body.as_str(), again.attempt), ("r", 2));
    q.ack(QueueName::Results, &again.handle).await.unwrap();
}
