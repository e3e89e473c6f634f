//! The backend contract, instantiated for the local backends, plus the
//! local-only behaviour (persistence, crash recovery, several processes on
//! one file, faults through `FaultyConsumer`, file layout).

use std::sync::Arc;
use std::time::Duration;

use testexec::adapters::local::{FsBlobStore, LocalQueue, QueueConfig, SqliteRunStore};
use testexec::app::messages::QueueName;
use testexec::app::ports::{BlobStore, Completion, JobQueue, QueueConsumer, Received, RunStore};
use testexec::domain::model::{RunId, RunStatus, ShardId};
use testexec::errors::{BlobError, QueueError, StoreError};
use testexec::testkit::contract::{self, QueueSettings};
use testexec::testkit::faults::FaultyConsumer;

fn store() -> (tempfile::TempDir, Arc<SqliteRunStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteRunStore::open(dir.path().join("runs.db")).expect("open store");
    (dir, Arc::new(store))
}

fn blobs() -> (tempfile::TempDir, FsBlobStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = FsBlobStore::new(dir.path().join("blobs")).expect("open blobs");
    (dir, blobs)
}

/// Short enough to keep the suite quick, long enough that a loaded CI
/// machine does not stall past it between a receive and the next check
/// (which would make "invisible while in flight" checks flaky).
const VISIBILITY: Duration = Duration::from_millis(200);

fn queue_config() -> QueueConfig {
    QueueConfig {
        visibility_timeout: VISIBILITY,
        max_receives: 3,
    }
}

/// An in-memory queue.
fn queue() -> LocalQueue {
    LocalQueue::in_memory(queue_config())
}

/// A queue file, as the local hosts open it.
fn file_queue() -> (tempfile::TempDir, LocalQueue) {
    let dir = tempfile::tempdir().expect("tempdir");
    let q =
        LocalQueue::open(&dir.path().join("queue.sqlite3"), queue_config()).expect("open queue");
    (dir, q)
}

fn settings() -> QueueSettings {
    QueueSettings {
        visibility_timeout: VISIBILITY,
        max_receives: 3,
    }
}

// ---- run store contract ----------------------------------------------------------

macro_rules! store_check {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (_dir, store) = store();
            contract::$name(&*store).await;
        }
    )*};
}

macro_rules! store_check_arc {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (_dir, store) = store();
            contract::$name(store).await;
        }
    )*};
}

store_check!(
    create_get_round_trip,
    list_runs_newest_first_with_limit,
    list_runs_page_filters_and_pages,
    create_twice_conflicts,
    complete_shard_once_under_duplicates,
    complete_unknown_shard_is_not_found,
    complete_as_pending_is_invalid,
    begin_report_only_when_all_done_and_once,
    finish_run_once,
    list_active_runs_excludes_final,
    claim_delivery_dedupes_within_ttl,
);

store_check_arc!(
    complete_shard_concurrent_duplicates,
    complete_many_shards_concurrently,
    begin_report_concurrent_single_winner,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_run_store_contract_on_one_store() {
    let (_dir, store) = store();
    contract::run_store_contract(store.clone()).await;
    contract::history_store_contract(&*store).await;
    contract::history_lists_a_scope(&*store).await;
}

/// The port's default `list_runs_page` (what DynamoDB, Firestore and Azure
/// Tables use): a store that has only `list_runs`, over SQLite, recording
/// the windows it is asked for.
struct OnlyListRuns {
    inner: SqliteRunStore,
    windows: std::sync::Mutex<Vec<usize>>,
}

#[async_trait::async_trait]
impl RunStore for OnlyListRuns {
    async fn create_run(
        &self,
        run: &testexec::domain::model::Run,
        shards: &[testexec::domain::model::ShardRecord],
    ) -> Result<(), StoreError> {
        self.inner.create_run(run, shards).await
    }
    async fn get_run(&self, id: RunId) -> Result<Option<testexec::domain::model::Run>, StoreError> {
        self.inner.get_run(id).await
    }
    async fn list_runs(
        &self,
        limit: usize,
    ) -> Result<Vec<testexec::domain::model::Run>, StoreError> {
        self.windows.lock().unwrap().push(limit);
        self.inner.list_runs(limit).await
    }
    async fn list_shards(
        &self,
        id: RunId,
    ) -> Result<Vec<testexec::domain::model::ShardRecord>, StoreError> {
        self.inner.list_shards(id).await
    }
    async fn complete_shard(
        &self,
        c: &testexec::app::ports::ShardCompletion,
    ) -> Result<Completion, StoreError> {
        self.inner.complete_shard(c).await
    }
    async fn begin_report(&self, id: RunId) -> Result<bool, StoreError> {
        self.inner.begin_report(id).await
    }
    async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        finished_ms: u64,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        self.inner.finish_run(id, status, finished_ms, error).await
    }
    async fn list_active_runs(&self) -> Result<Vec<testexec::domain::model::Run>, StoreError> {
        self.inner.list_active_runs().await
    }
    async fn claim_delivery(
        &self,
        key: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        self.inner.claim_delivery(key, now_ms, ttl_ms).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_list_runs_page_pages_within_the_newest_runs() {
    use testexec::app::run_list::RunQuery;
    let store = OnlyListRuns {
        inner: SqliteRunStore::open_in_memory().expect("open"),
        windows: Default::default(),
    };
    contract::list_runs_page_filters_and_pages(&store).await;
    // The plain first page reads one run more than it shows, nothing else.
    store.windows.lock().unwrap().clear();
    let page = store
        .list_runs_page(&RunQuery {
            limit: 3,
            ..RunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.runs.len(), 3);
    assert!(page.next.is_some() && !page.truncated, "{page:?}");
    assert_eq!(*store.windows.lock().unwrap(), [4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_store_passes_the_contract_too() {
    contract::run_store_contract(Arc::new(SqliteRunStore::open_in_memory().expect("open"))).await;
}

// ---- blob store contract ---------------------------------------------------------

macro_rules! blob_check {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (_dir, blobs) = blobs();
            contract::$name(&blobs).await;
        }
    )*};
}

macro_rules! blob_check_scratch {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (_dir, blobs) = blobs();
            let scratch = tempfile::tempdir().expect("tempdir");
            contract::$name(&blobs, scratch.path()).await;
        }
    )*};
}

blob_check!(
    blob_put_get_overwrite,
    blob_list_is_sorted_by_prefix,
    blob_invalid_keys_are_rejected
);
blob_check_scratch!(blob_missing_is_not_found, blob_large_file_round_trip);

#[tokio::test]
async fn whole_blob_store_contract_on_one_store() {
    let (_dir, blobs) = blobs();
    let scratch = tempfile::tempdir().expect("tempdir");
    contract::blob_store_contract(&blobs, scratch.path()).await;
}

// ---- queue contract --------------------------------------------------------------

// Each check runs on a queue file (what the local hosts open) and on an
// in-memory queue (tests, benchmarks): the same SQL, different journaling.
macro_rules! queue_check {
    ($($name:ident),* $(,)?) => {
        mod queue_on_file {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let (_dir, q) = file_queue();
                    contract::$name(&q, QueueName::Results, settings()).await;
                }
            )*
        }
        mod queue_in_memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    contract::$name(&queue(), QueueName::Results, settings()).await;
                }
            )*
        }
    };
}

queue_check!(
    queue_delivers_every_message,
    queue_redelivers_unacked_after_visibility,
    queue_dead_letters_after_max_receives,
    queue_rejects_too_large,
);

#[tokio::test]
async fn whole_queue_contract_on_one_file_queue() {
    let (_dir, q) = file_queue();
    contract::queue_contract(&q, settings()).await;
}

#[tokio::test]
async fn whole_queue_contract_on_one_in_memory_queue() {
    contract::queue_contract(&queue(), settings()).await;
}

// ---- SQLite specifics -------------------------------------------------------------

#[tokio::test]
async fn sqlite_state_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state/runs.db");
    let (run, shards) = contract::sample_run(RunId::new(), 2);
    {
        let store = SqliteRunStore::open(&path).expect("open");
        store.create_run(&run, &shards).await.expect("create");
        let c = contract::completion(ShardId::new(run.id, 0), 1, contract::shard_counts(0));
        store.complete_shard(&c).await.expect("complete");
        assert!(store.claim_delivery("d-1", 10, 100).await.expect("claim"));
    }
    let store = SqliteRunStore::open(&path).expect("reopen");
    let got = store
        .get_run(run.id)
        .await
        .expect("get")
        .expect("run survives reopen");
    assert_eq!(
        (got.shards_done, got.counts),
        (1, contract::shard_counts(0))
    );
    let c = contract::completion(ShardId::new(run.id, 0), 2, contract::shard_counts(5));
    assert_eq!(
        store.complete_shard(&c).await.expect("complete"),
        Completion::AlreadyCompleted
    );
    assert!(
        !store.claim_delivery("d-1", 20, 100).await.expect("claim"),
        "claims survive reopen"
    );
}

#[tokio::test]
async fn sqlite_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("runs.db");
    drop(SqliteRunStore::open(&path).expect("open"));
    let conn = rusqlite_free_bump_version(&path);
    assert!(conn, "could bump user_version");
    match SqliteRunStore::open(&path) {
        Err(StoreError::Corrupt { message, .. }) => assert!(message.contains("newer"), "{message}"),
        Err(other) => panic!("expected a schema error, got {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

/// Bumps `PRAGMA user_version` by patching the header (offset 60, big-endian),
/// so the test needs no SQLite dependency of its own.
fn rusqlite_free_bump_version(path: &std::path::Path) -> bool {
    let mut bytes = std::fs::read(path).expect("read db");
    if bytes.len() < 64 {
        return false;
    }
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(path, bytes).expect("write db");
    true
}

#[tokio::test]
async fn sqlite_rejects_inconsistent_runs_and_pending_completions() {
    let (_dir, store) = store();
    let (run, shards) = contract::sample_run(RunId::new(), 3);
    let err = store
        .create_run(&run, &shards[..2])
        .await
        .expect_err("shard count mismatch");
    assert!(
        matches!(err, StoreError::Invalid { .. }) && err.to_string().contains(&run.id.to_string()),
        "{err}"
    );
    let mut dup = shards.clone();
    dup[2] = dup[1].clone();
    assert!(matches!(
        store.create_run(&run, &dup).await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(
        store.get_run(run.id).await.expect("get"),
        None,
        "a refused create writes nothing"
    );
    store.create_run(&run, &shards).await.expect("create");
    let mut c = contract::completion(ShardId::new(run.id, 0), 1, Default::default());
    c.status = testexec::domain::model::ShardStatus::Pending;
    assert!(matches!(
        store.complete_shard(&c).await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(
        store.list_shards(run.id).await.expect("shards")[0].attempt,
        None
    );
}

#[tokio::test]
async fn sqlite_finished_run_reads_back_with_every_field() {
    let (_dir, store) = store();
    let (run, shards) = contract::sample_run(RunId::new(), 1);
    store.create_run(&run, &shards).await.expect("create");
    let c = contract::completion(ShardId::new(run.id, 0), 3, contract::shard_counts(4));
    store.complete_shard(&c).await.expect("complete");
    assert!(store.begin_report(run.id).await.expect("begin"));
    assert!(
        store
            .finish_run(run.id, RunStatus::Failed, 99, Some("2 failed".into()))
            .await
            .expect("finish")
    );
    let mut expected = run.clone();
    expected.status = RunStatus::Failed;
    expected.shards_done = 1;
    expected.counts = contract::shard_counts(4);
    expected.finished_ms = Some(99);
    expected.error = Some("2 failed".into());
    assert_eq!(
        store.get_run(run.id).await.expect("get"),
        Some(expected.clone())
    );
    assert_eq!(store.list_runs(10).await.expect("list"), vec![expected]);
}

// ---- file blob store specifics ----------------------------------------------------

#[tokio::test]
async fn blobs_live_at_their_key_and_link_as_file_urls() {
    let (dir, blobs) = blobs();
    blobs
        .put("runs/r 1/report/index.html", b"<p>".to_vec(), "text/html")
        .await
        .expect("put");
    let on_disk = dir.path().join("blobs/runs/r 1/report/index.html");
    assert_eq!(
        std::fs::read(&on_disk).expect("file at the key's path"),
        b"<p>"
    );
    let link = blobs
        .link("runs/r 1/report/index.html")
        .await
        .expect("link")
        .expect("some link");
    assert!(
        link.starts_with("file:///") && link.ends_with("/runs/r%201/report/index.html"),
        "{link}"
    );
}

#[tokio::test]
async fn blob_writes_leave_no_temp_files_and_ignore_stale_ones() {
    let (dir, blobs) = blobs();
    for i in 0..3 {
        blobs
            .put("a/b.txt", vec![i; 10], "text/plain")
            .await
            .expect("put");
    }
    // A crash mid-write leaves a temp file behind: it must never be listed.
    std::fs::write(dir.path().join("blobs/a/.tmp-1-0-b.txt"), b"half").expect("stale temp");
    assert_eq!(blobs.list("").await.expect("list"), ["a/b.txt"]);
    let names: Vec<_> = std::fs::read_dir(dir.path().join("blobs/a"))
        .expect("dir")
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "only the blob and the planted temp file: {names:?}"
    );
    assert!(matches!(
        blobs.put("a/.tmp-x", vec![], "text/plain").await,
        Err(BlobError::InvalidKey { .. })
    ));
}

#[tokio::test]
async fn blob_key_errors_name_the_key_and_reason() {
    let (_dir, blobs) = blobs();
    let err = blobs.get("runs/../secret").await.expect_err("invalid");
    let text = err.to_string();
    assert!(
        text.contains("runs/../secret") && text.contains(".."),
        "{text}"
    );
    for bad in ["a//b", "a/./b", "a/"] {
        assert!(
            matches!(blobs.exists(bad).await, Err(BlobError::InvalidKey { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        blobs.list("../").await,
        Err(BlobError::InvalidKey { .. })
    ));
}

// ---- local queue specifics ----------------------------------------------------------

async fn recv<C: QueueConsumer + ?Sized>(
    c: &C,
    queue: QueueName,
    wait: Duration,
) -> Option<Received> {
    c.receive(queue, wait).await.expect("receive")
}

/// Receives and acks until nothing comes within a few visibility timeouts.
async fn drain<C: QueueConsumer + ?Sized>(c: &C, queue: QueueName) -> Vec<(String, u32)> {
    let mut got = Vec::new();
    while let Some(m) = recv(c, queue, VISIBILITY * 3).await {
        c.ack(queue, &m.handle).await.expect("ack");
        got.push((m.body, m.attempt));
    }
    got
}

fn sorted_bodies(got: &[(String, u32)]) -> Vec<&str> {
    let mut bodies: Vec<&str> = got.iter().map(|(b, _)| b.as_str()).collect();
    bodies.sort_unstable();
    bodies
}

#[tokio::test]
async fn injected_duplicates_deliver_the_same_body_twice() {
    let q = Arc::new(queue());
    q.send_batch(QueueName::Shards, vec!["a".into(), "b".into(), "c".into()])
        .await
        .expect("send");
    let f = FaultyConsumer::new(q.clone());
    f.duplicate_next(QueueName::Shards, 2);
    let got = drain(&f, QueueName::Shards).await;
    assert_eq!(got.len(), 5, "two messages twice, one once: {got:?}");
    assert_eq!(got[0], got[1], "a copy follows its original: {got:?}");
    assert_eq!(got[2], got[3], "a copy follows its original: {got:?}");
    assert_ne!(got[0].0, got[2].0, "two different messages were duplicated");
    assert_eq!(sorted_bodies(&got), ["a", "a", "b", "b", "c"]);
    assert!(
        got.iter().all(|(_, attempt)| *attempt == 1),
        "a copy has its original's attempt: {got:?}"
    );
    assert_eq!(f.injected(QueueName::Shards).duplicated, 2);
    assert!(f.is_idle().await.expect("idle") && q.is_idle().await.expect("idle"));
}

#[tokio::test]
async fn a_crashed_consumer_loses_nothing() {
    let (_dir, q) = file_queue();
    let q = Arc::new(q);
    q.send_batch(QueueName::Results, vec!["r1".into(), "r2".into()])
        .await
        .expect("send");
    let f = FaultyConsumer::new(q.clone());
    f.crash_next(QueueName::Results, 1);
    let d = recv(&f, QueueName::Results, VISIBILITY / 2)
        .await
        .expect("the other message is delivered");
    assert_eq!(d.attempt, 1);
    assert!(
        q.is_in_flight(QueueName::Results, &d.handle)
            .expect("is_in_flight"),
        "delivery {} in flight",
        d.handle
    );
    f.ack(QueueName::Results, &d.handle).await.expect("ack");
    assert!(
        !q.is_in_flight(QueueName::Results, &d.handle)
            .expect("is_in_flight")
    );
    assert!(
        !f.is_idle().await.expect("is_idle"),
        "the crashed delivery is still in flight"
    );
    assert_eq!(q.in_flight(QueueName::Results).expect("in_flight"), 1);
    assert_eq!(
        recv(&f, QueueName::Results, Duration::ZERO).await,
        None,
        "invisible until the timeout"
    );
    let again = recv(&f, QueueName::Results, VISIBILITY * 4)
        .await
        .expect("reappears");
    assert_ne!(again.body, d.body, "the crashed message comes back");
    assert_eq!(
        sorted_bodies(&[(d.body.clone(), 0), (again.body.clone(), 0)]),
        ["r1", "r2"]
    );
    assert_eq!(again.attempt, 2, "the lost delivery counts as an attempt");
    assert!(
        q.is_in_flight(QueueName::Results, &again.handle)
            .expect("is_in_flight")
    );
    f.ack(QueueName::Results, &again.handle).await.expect("ack");
    assert!(f.is_idle().await.expect("is_idle"));
    assert_eq!(f.injected(QueueName::Results).crashed, 1);
}

#[tokio::test]
async fn reorder_is_a_deterministic_shuffle() {
    let bodies: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let order = |seed| {
        let bodies = bodies.clone();
        async move {
            let q = Arc::new(queue());
            q.send_batch(QueueName::Shards, bodies).await.expect("send");
            let f = FaultyConsumer::new(q);
            f.reorder(QueueName::Shards, seed);
            let got = drain(&f, QueueName::Shards).await;
            assert_eq!(f.injected(QueueName::Shards).reordered, 20);
            got.into_iter().map(|(b, _)| b).collect::<Vec<_>>()
        }
    };
    let a = order(7).await;
    assert_eq!(a, order(7).await, "same seed, same order");
    assert_ne!(a, bodies, "the order changed");
    assert_ne!(a, order(8).await, "another seed, another order");
    let mut sorted = a.clone();
    sorted.sort_by_key(|b| b.parse::<u32>().unwrap());
    assert_eq!(sorted, bodies, "nothing lost or added");
}

#[tokio::test]
async fn release_redelivers_at_once_and_stale_handles_do_not_ack() {
    let q = queue();
    q.send_batch(QueueName::Reports, vec!["job".into()])
        .await
        .expect("send");
    let d = recv(&q, QueueName::Reports, Duration::ZERO)
        .await
        .expect("delivered");
    assert!(
        q.is_in_flight(QueueName::Reports, &d.handle)
            .expect("is_in_flight")
    );
    q.release(QueueName::Reports, &d.handle)
        .await
        .expect("release");
    assert!(
        !q.is_in_flight(QueueName::Reports, &d.handle)
            .expect("is_in_flight"),
        "a released delivery's handle is stale"
    );
    // Stale: must not swallow the redelivery.
    q.ack(QueueName::Reports, &d.handle)
        .await
        .expect("stale ack");
    let again = recv(&q, QueueName::Reports, Duration::ZERO)
        .await
        .expect("redelivered immediately");
    assert_eq!((again.body.as_str(), again.attempt), ("job", 2));
    assert_ne!(again.handle, d.handle, "each delivery has its own handle");
    q.ack(QueueName::Reports, &d.handle)
        .await
        .expect("older handle");
    for bad in ["12345.1", "garbage", "", "1.x", "testexec-fault-copy-1"] {
        q.release(QueueName::Reports, bad)
            .await
            .expect("an unknown handle is ignored");
        q.ack(QueueName::Reports, bad)
            .await
            .expect("an unknown handle is ignored");
        assert!(
            !q.is_in_flight(QueueName::Reports, bad)
                .expect("is_in_flight")
        );
    }
    q.ack(QueueName::Shards, &again.handle)
        .await
        .expect("another queue's ack is ignored");
    assert!(
        q.is_in_flight(QueueName::Reports, &again.handle)
            .expect("is_in_flight"),
        "delivery {} still in flight",
        again.handle
    );
    q.ack(QueueName::Reports, &again.handle).await.expect("ack");
    assert!(q.is_idle().await.expect("is_idle"));
    assert!(
        q.dead_letters(QueueName::Reports)
            .await
            .expect("dead_letters")
            .is_empty()
    );
}

#[tokio::test]
async fn releases_count_towards_dead_lettering() {
    let (_dir, q) = file_queue();
    q.send_batch(QueueName::Reports, vec!["poison".into()])
        .await
        .expect("send");
    for attempt in 1..=3 {
        let d = recv(&q, QueueName::Reports, Duration::ZERO)
            .await
            .expect("delivered");
        assert_eq!(d.attempt, attempt);
        q.release(QueueName::Reports, &d.handle)
            .await
            .expect("release");
    }
    assert_eq!(recv(&q, QueueName::Reports, Duration::ZERO).await, None);
    assert_eq!(
        q.dead_letters(QueueName::Reports)
            .await
            .expect("dead_letters"),
        ["poison"]
    );
    assert!(
        q.dead_letters(QueueName::Shards)
            .await
            .expect("dead_letters")
            .is_empty(),
        "dead letters are per queue"
    );
    assert!(
        q.is_idle().await.expect("is_idle"),
        "dead letters do not keep the pipeline busy"
    );
}

#[tokio::test]
async fn receive_wakes_on_send_and_queues_are_separate() {
    let q = Arc::new(LocalQueue::in_memory(QueueConfig {
        visibility_timeout: Duration::from_secs(30),
        max_receives: 3,
    }));
    let sender = q.clone();
    let started = tokio::time::Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        sender
            .send_batch(QueueName::Shards, vec!["late".into()])
            .await
            .expect("send");
    });
    assert_eq!(q.depth(QueueName::Results).expect("depth"), 0);
    let d = recv(&*q, QueueName::Shards, Duration::from_secs(10))
        .await
        .expect("woken by send");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woke on send, not on timeout"
    );
    assert_eq!(d.body, "late");
    assert_eq!(
        recv(&*q, QueueName::Results, Duration::ZERO).await,
        None,
        "other queues stay empty"
    );
    let t = tokio::time::Instant::now();
    assert_eq!(
        recv(&*q, QueueName::Reports, Duration::from_millis(130)).await,
        None
    );
    assert!(
        t.elapsed() >= Duration::from_millis(130),
        "waits the full timeout, across polls"
    );
}

#[tokio::test]
async fn depth_counts_visible_messages_and_too_large_sends_nothing() {
    let (_dir, q) = file_queue();
    q.send_batch(QueueName::Shards, vec!["1".into(), "2".into()])
        .await
        .expect("send");
    assert_eq!(q.depth(QueueName::Shards).expect("depth"), 2);
    let big = "z".repeat(testexec::app::messages::MAX_MESSAGE_BYTES + 1);
    assert!(matches!(
        q.send_batch(QueueName::Shards, vec!["3".into(), big]).await,
        Err(QueueError::TooLarge {
            queue: "shards",
            ..
        })
    ));
    assert_eq!(
        q.depth(QueueName::Shards).expect("depth"),
        2,
        "a refused batch sends nothing"
    );
    let d = recv(&q, QueueName::Shards, Duration::ZERO)
        .await
        .expect("delivered");
    assert_eq!(
        (
            q.depth(QueueName::Shards).expect("depth"),
            q.in_flight(QueueName::Shards).expect("in_flight")
        ),
        (1, 1)
    );
    q.ack(QueueName::Shards, &d.handle).await.expect("ack");
    assert_eq!(q.in_flight(QueueName::Shards).expect("in_flight"), 0);
    assert!(!q.is_idle().await.expect("is_idle"), "one is still queued");
}

#[tokio::test]
async fn huge_timeouts_are_capped_not_panics() {
    let q = LocalQueue::in_memory(QueueConfig {
        visibility_timeout: Duration::MAX,
        max_receives: 0,
    });
    assert_eq!(q.config().max_receives, 1, "at least one receive");
    assert!(q.config().visibility_timeout <= Duration::from_secs(12 * 3600));
    q.send_batch(QueueName::Shards, vec!["x".into()])
        .await
        .expect("send");
    let d = recv(&q, QueueName::Shards, Duration::MAX)
        .await
        .expect("delivered at once");
    assert_eq!((d.body.as_str(), d.attempt), ("x", 1));
    assert!(
        q.is_in_flight(QueueName::Shards, &d.handle)
            .expect("is_in_flight")
    );
    q.release(QueueName::Shards, &d.handle)
        .await
        .expect("release");
    assert_eq!(
        q.dead_letters(QueueName::Shards)
            .await
            .expect("dead_letters"),
        ["x"],
        "max_receives 1: one try"
    );
}

/// Long enough that nothing times out by itself during a test.
fn long_visibility() -> QueueConfig {
    QueueConfig {
        visibility_timeout: Duration::from_secs(30),
        max_receives: 3,
    }
}

#[tokio::test]
async fn queued_and_dead_messages_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state/queue.sqlite3");
    {
        let q = LocalQueue::open(&path, long_visibility()).expect("open");
        q.send_batch(QueueName::Shards, vec!["kept".into()])
            .await
            .expect("send");
        q.send_batch(QueueName::Reports, vec!["poison".into()])
            .await
            .expect("send");
        for _ in 0..3 {
            let d = recv(&q, QueueName::Reports, Duration::ZERO)
                .await
                .expect("delivered");
            q.release(QueueName::Reports, &d.handle)
                .await
                .expect("release");
        }
    }
    let q = LocalQueue::open(&path, long_visibility()).expect("reopen");
    assert_eq!(
        q.dead_letters(QueueName::Reports)
            .await
            .expect("dead_letters"),
        ["poison"]
    );
    let d = recv(&q, QueueName::Shards, Duration::ZERO)
        .await
        .expect("a queued message survives the process");
    assert_eq!((d.body.as_str(), d.attempt), ("kept", 1));
}

/// A process dies holding a delivery; the next one on the state directory
/// takes it back at start instead of waiting out the visibility timeout.
#[tokio::test]
async fn release_orphans_redelivers_what_a_dead_instance_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.sqlite3");
    let lost = {
        let q = LocalQueue::open(&path, long_visibility()).expect("open");
        q.send_batch(QueueName::Shards, vec!["job-1".into(), "job-2".into()])
            .await
            .expect("send");
        recv(&q, QueueName::Shards, Duration::ZERO)
            .await
            .expect("delivered")
        // Dropped without an ack: the process "crashed".
    };
    assert_eq!(lost.attempt, 1);
    let q = LocalQueue::open(&path, long_visibility()).expect("reopen");
    assert!(
        q.is_in_flight(QueueName::Shards, &lost.handle)
            .expect("is_in_flight"),
        "the dead instance's lease outlives it"
    );
    let mine = recv(&q, QueueName::Shards, Duration::ZERO)
        .await
        .expect("the other message");
    assert_ne!(mine.body, lost.body);
    assert_eq!(
        recv(&q, QueueName::Shards, Duration::ZERO).await,
        None,
        "the orphan stays invisible until released"
    );
    assert_eq!(q.release_orphans().expect("release_orphans"), 1);
    let again = recv(&q, QueueName::Shards, Duration::ZERO)
        .await
        .expect("the orphan is visible at once");
    assert_eq!(
        (again.body.as_str(), again.attempt),
        (lost.body.as_str(), 2),
        "same body, the lost delivery counted"
    );
    assert!(
        q.is_in_flight(QueueName::Shards, &mine.handle)
            .expect("is_in_flight"),
        "this instance's own lease is left alone"
    );
    q.ack(QueueName::Shards, &lost.handle)
        .await
        .expect("stale ack");
    assert!(
        q.is_in_flight(QueueName::Shards, &again.handle)
            .expect("is_in_flight"),
        "the dead instance's handle no longer acks"
    );
    assert_eq!(
        q.release_orphans().expect("release_orphans"),
        0,
        "nothing else to take back"
    );
    for d in [mine, again] {
        q.ack(QueueName::Shards, &d.handle).await.expect("ack");
    }
    assert!(q.is_idle().await.expect("is_idle"));
}

#[tokio::test]
async fn release_orphans_dead_letters_a_delivery_that_was_the_last() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.sqlite3");
    let once = QueueConfig {
        visibility_timeout: Duration::from_secs(30),
        max_receives: 1,
    };
    {
        let q = LocalQueue::open(&path, once).expect("open");
        q.send_batch(QueueName::Results, vec!["last".into()])
            .await
            .expect("send");
        recv(&q, QueueName::Results, Duration::ZERO)
            .await
            .expect("delivered");
    }
    let q = LocalQueue::open(&path, once).expect("reopen");
    assert!(
        !q.is_idle().await.expect("is_idle"),
        "an orphan is in flight"
    );
    assert_eq!(q.release_orphans().expect("release_orphans"), 1);
    assert_eq!(recv(&q, QueueName::Results, Duration::ZERO).await, None);
    assert_eq!(
        q.dead_letters(QueueName::Results)
            .await
            .expect("dead_letters"),
        ["last"]
    );
    assert!(q.is_idle().await.expect("is_idle"));
}

/// Two instances on one file stand for two processes (`serve` and a
/// `testexec worker`): eight receivers race over the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_file_never_share_a_delivery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.sqlite3");
    let a = Arc::new(LocalQueue::open(&path, long_visibility()).expect("open a"));
    let b = Arc::new(LocalQueue::open(&path, long_visibility()).expect("open b"));
    let sent: Vec<String> = (0..60).map(|i| format!("job-{i}")).collect();
    a.send_batch(QueueName::Shards, sent.clone())
        .await
        .expect("send");
    let mut tasks = Vec::new();
    for q in [a.clone(), b.clone()] {
        for _ in 0..4 {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(m) = q
                    .receive(QueueName::Shards, Duration::ZERO)
                    .await
                    .expect("receive (no SQLITE_BUSY)")
                {
                    got.push(m);
                }
                (q, got)
            }));
        }
    }
    let mut received = Vec::new();
    for t in tasks {
        let (q, got) = t.await.expect("task");
        received.extend(got.into_iter().map(|m| (q.clone(), m)));
    }
    let mut bodies: Vec<&str> = received.iter().map(|(_, m)| m.body.as_str()).collect();
    bodies.sort_unstable();
    let mut expected: Vec<&str> = sent.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(bodies, expected, "each message delivered exactly once");
    assert!(received.iter().all(|(_, m)| m.attempt == 1));
    for q in [&a, &b] {
        assert_eq!(
            q.in_flight(QueueName::Shards).expect("in_flight"),
            60,
            "both instances see every lease"
        );
        assert_eq!(recv(&**q, QueueName::Shards, Duration::ZERO).await, None);
    }
    for (q, m) in &received {
        q.ack(QueueName::Shards, &m.handle).await.expect("ack");
    }
    assert!(a.is_idle().await.expect("idle") && b.is_idle().await.expect("idle"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_by_one_instance_is_received_by_the_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.sqlite3");
    let a = Arc::new(LocalQueue::open(&path, long_visibility()).expect("open a"));
    let b = Arc::new(LocalQueue::open(&path, long_visibility()).expect("open b"));
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { recv(&*b, QueueName::Requests, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let sent_at = tokio::time::Instant::now();
    a.send_batch(QueueName::Requests, vec!["hello".into()])
        .await
        .expect("send");
    let m = waiting
        .await
        .expect("task")
        .expect("received by the other instance");
    assert!(
        sent_at.elapsed() < Duration::from_secs(5),
        "found by polling, not at the end of the wait"
    );
    assert_eq!((m.body.as_str(), m.attempt), ("hello", 1));
    assert!(
        a.is_in_flight(QueueName::Requests, &m.handle)
            .expect("is_in_flight"),
        "the sender sees the receiver's lease"
    );
    assert_eq!(
        recv(&*a, QueueName::Requests, Duration::ZERO).await,
        None,
        "in flight at b: a cannot take it"
    );
    b.ack(QueueName::Requests, &m.handle).await.expect("ack");
    assert!(a.is_idle().await.expect("idle"), "the ack is seen by a");
}

#[tokio::test]
async fn queue_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.sqlite3");
    drop(LocalQueue::open(&path, long_visibility()).expect("open"));
    assert!(rusqlite_free_bump_version(&path), "could bump user_version");
    match LocalQueue::open(&path, long_visibility()) {
        Err(e @ QueueError::Open { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("newer") && text.contains(&path.display().to_string()),
                "{text}"
            );
        }
        Err(other) => panic!("expected QueueError::Open, got {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

/// Two connections on one file (e.g. `testexec serve` and `testexec runs`)
/// still complete each shard exactly once: `BEGIN IMMEDIATE` plus the busy
/// timeout serialise them instead of failing with SQLITE_BUSY.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_on_one_file_complete_each_shard_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("runs.sqlite3");
    let a = Arc::new(SqliteRunStore::open(&path).expect("open a"));
    let b = Arc::new(SqliteRunStore::open(&path).expect("open b"));
    let n = 20;
    let (run, shards) = contract::sample_run(RunId::new(), n);
    a.create_run(&run, &shards).await.expect("create");
    let mut tasks = Vec::new();
    for i in 0..n {
        // Every shard is completed through both connections at once.
        for store in [a.clone(), b.clone()] {
            let c = contract::completion(ShardId::new(run.id, i), 1, contract::shard_counts(i));
            tasks.push(tokio::spawn(async move { store.complete_shard(&c).await }));
        }
    }
    let mut applied = 0;
    for t in tasks {
        if let Completion::Applied { .. } = t.await.expect("task").expect("no SQLITE_BUSY") {
            applied += 1;
        }
    }
    assert_eq!(
        applied, n,
        "each shard applied once across both connections"
    );
    let mut expected = testexec::domain::model::Counts::default();
    (0..n).for_each(|i| expected.add(&contract::shard_counts(i)));
    let got = b.get_run(run.id).await.expect("get").expect("run");
    assert_eq!((got.shards_done, got.counts), (n, expected));
    assert!(b.begin_report(run.id).await.expect("begin"));
    assert!(
        !a.begin_report(run.id).await.expect("begin"),
        "the other connection sees it"
    );
}
