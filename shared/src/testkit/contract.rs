//! The backend contract: checks every implementation of the ports must
//! pass, written once against the traits.
//!
//! A backend's test file calls each check with a fresh store (the checks
//! assume an empty run store, and a blob store / queue nobody else uses), for
//! example:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn complete_shard_is_exactly_once_under_concurrency() {
//!     let store = std::sync::Arc::new(MyStore::connect_to_fresh_table().await);
//!     testexec::testkit::contract::complete_shard_concurrent_duplicates(store).await;
//! }
//! ```
//!
//! or runs a whole group at once with [`run_store_contract`],
//! [`history_store_contract`] (backends with test history),
//! [`blob_store_contract`] and [`queue_contract`]. The concurrency checks
//! spawn tasks, so they need a multi-threaded tokio runtime to mean anything.
//! Checks panic with a message naming the broken rule, like `assert!`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ulid::Ulid;

use crate::app::messages::{MAX_MESSAGE_BYTES, QueueName};
use crate::app::ports::{BlobStore, Completion, JobQueue, RunStore, ShardCompletion};
use crate::app::run_list::RunQuery;
use crate::domain::history::{HistoryEntry, HistoryScope, QuarantineState, TTL_MS, TestHistory};
use crate::domain::model::{
    Counts, Origin, Outcome, Run, RunId, RunStatus, ShardId, ShardRecord, ShardStatus, SourceRef,
};
use crate::errors::{BlobError, QueueError, StoreError};

// ---- fixtures ---------------------------------------------------------------

/// A run id whose ULID time is `ms`, so tests control the listing order.
pub fn run_id_at(ms: u64) -> RunId {
    let id = Ulid::from_parts(
        ms,
        u128::from(ms).wrapping_mul(0x9E37_79B9_7F4A_7C15) & ((1 << 80) - 1),
    );
    id.to_string()
        .parse()
        .expect("a ULID always parses as a run id")
}

/// A fresh running run with `shard_count` pending shards.
pub fn sample_run(id: RunId, shard_count: u32) -> (Run, Vec<ShardRecord>) {
    let run = Run {
        id,
        source: SourceRef {
            repo: "acme/widgets".into(),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            git_ref: Some("refs/heads/main".into()),
            path: None,
        },
        origin: Origin::GitHub {
            event: "push".into(),
            delivery: "d-1".into(),
            installation_id: Some(42),
            check_run_id: None,
            // Every store must keep the audit trail (the runs page shows it).
            sender: Some("octocat".into()),
        },
        suite: "unit".into(),
        status: RunStatus::Running,
        shard_count,
        shards_done: 0,
        counts: Counts::default(),
        created_ms: id.timestamp_ms(),
        deadline_ms: id.timestamp_ms() + 3_600_000,
        finished_ms: None,
        error: None,
    };
    let shards = (0..shard_count)
        .map(|i| ShardRecord::pending(ShardId::new(id, i), 10.0 + f64::from(i), i + 1))
        .collect();
    (run, shards)
}

/// Counts that differ per shard, so a double-add or a lost add shows.
pub fn shard_counts(index: u32) -> Counts {
    let i = u64::from(index);
    Counts {
        tests: 10 + i,
        passed: 7 + i,
        failed: 1,
        errors: 1,
        skipped: 1,
        flaky: i % 2,
    }
}

pub fn completion(shard: ShardId, attempt: u32, counts: Counts) -> ShardCompletion {
    ShardCompletion {
        shard,
        attempt,
        status: if counts.all_passed() {
            ShardStatus::Passed
        } else {
            ShardStatus::Failed
        },
        counts,
        started_ms: 1_000 + u64::from(shard.index),
        finished_ms: 2_000 + u64::from(shard.index),
        error: None,
    }
}

async fn create<S: RunStore + ?Sized>(store: &S, shard_count: u32) -> (Run, Vec<ShardRecord>) {
    let (run, shards) = sample_run(RunId::new(), shard_count);
    store
        .create_run(&run, &shards)
        .await
        .expect("create_run of a new run must succeed");
    (run, shards)
}

async fn get<S: RunStore + ?Sized>(store: &S, id: RunId) -> Run {
    store
        .get_run(id)
        .await
        .expect("get_run must not fail")
        .unwrap_or_else(|| panic!("run {id} must exist"))
}

// ---- run store ----------------------------------------------------------------

/// Every run store check, one after another, each on its own runs. Needs an
/// empty store (the listing checks count runs).
pub async fn run_store_contract<S: RunStore + ?Sized + 'static>(store: Arc<S>) {
    list_runs_newest_first_with_limit(&*store).await;
    list_runs_page_filters_and_pages(&*store).await;
    create_get_round_trip(&*store).await;
    create_twice_conflicts(&*store).await;
    complete_shard_once_under_duplicates(&*store).await;
    complete_shard_concurrent_duplicates(store.clone()).await;
    complete_many_shards_concurrently(store.clone()).await;
    complete_unknown_shard_is_not_found(&*store).await;
    complete_as_pending_is_invalid(&*store).await;
    begin_report_only_when_all_done_and_once(&*store).await;
    begin_report_concurrent_single_winner(store.clone()).await;
    finish_run_once(&*store).await;
    list_active_runs_excludes_final(&*store).await;
    claim_delivery_dedupes_within_ttl(&*store).await;
}

/// `list_runs_page`: filters by suite, branch and status, and following
/// `next` from page to page lists every matching run once, newest first.
/// Its runs have a suite of their own, so other runs in the store do not
/// matter.
pub async fn list_runs_page_filters_and_pages<S: RunStore + ?Sized>(store: &S) {
    let base = 1_700_100_000_000;
    let mut main_newest_first = Vec::new();
    for i in 0..7u64 {
        let (mut run, shards) = sample_run(run_id_at(base + i * 1000), 1);
        run.suite = "paging".into();
        if i % 3 == 2 {
            run.source.git_ref = Some("refs/heads/feature/x".into());
        } else {
            main_newest_first.insert(0, run.id);
        }
        store.create_run(&run, &shards).await.expect("create_run");
    }
    let query = RunQuery {
        suite: Some("paging".into()),
        branch: Some("main".into()),
        status: Some(RunStatus::Running),
        limit: 2,
        ..RunQuery::default()
    };
    let mut listed = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = store
            .list_runs_page(&RunQuery {
                before: cursor,
                ..query.clone()
            })
            .await
            .expect("list_runs_page");
        assert!(page.runs.len() <= 2, "limit honoured: {page:?}");
        assert!(
            page.runs.iter().all(|r| query.matches(r)),
            "only matching runs: {page:?}"
        );
        listed.extend(page.runs.iter().map(|r| r.id));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        listed, main_newest_first,
        "every run on main once, newest first, across pages"
    );
    let finished = store
        .list_runs_page(&RunQuery {
            suite: Some("paging".into()),
            status: Some(RunStatus::Passed),
            ..RunQuery::default()
        })
        .await
        .expect("list_runs_page");
    assert!(finished.runs.is_empty(), "no run of the suite passed yet");
}

/// A run and its shards read back exactly as written; shards by index.
pub async fn create_get_round_trip<S: RunStore + ?Sized>(store: &S) {
    let (run, mut shards) = sample_run(RunId::new(), 5);
    // Written out of order: list_shards must sort by index, not by insertion.
    shards.reverse();
    store.create_run(&run, &shards).await.expect("create_run");
    assert_eq!(
        get(store, run.id).await,
        run,
        "a run must read back exactly as written"
    );
    shards.reverse();
    assert_eq!(
        store.list_shards(run.id).await.expect("list_shards"),
        shards,
        "shards by index"
    );
    assert_eq!(
        store.get_run(RunId::new()).await.expect("get_run"),
        None,
        "unknown run → None"
    );
    assert!(
        store
            .list_shards(RunId::new())
            .await
            .expect("list_shards of unknown run")
            .is_empty(),
        "unknown run has no shards"
    );
}

/// Newest first (ULID order, not insertion order), and `limit` is honoured.
/// Needs an empty store.
pub async fn list_runs_newest_first_with_limit<S: RunStore + ?Sized>(store: &S) {
    let base = 1_700_000_000_000;
    let ids: Vec<RunId> = (0..5).map(|i| run_id_at(base + i * 1000)).collect();
    for &i in &[2usize, 0, 4, 1, 3] {
        let (run, shards) = sample_run(ids[i], 1);
        store.create_run(&run, &shards).await.expect("create_run");
    }
    let newest_first: Vec<RunId> = ids.iter().rev().copied().collect();
    let all: Vec<RunId> = store
        .list_runs(10)
        .await
        .expect("list_runs")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(all, newest_first, "list_runs must be newest first");
    let two: Vec<RunId> = store
        .list_runs(2)
        .await
        .expect("list_runs")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        two,
        newest_first[..2],
        "list_runs(2) must be the two newest"
    );
    assert!(
        store.list_runs(0).await.expect("list_runs(0)").is_empty(),
        "limit 0 → nothing"
    );
}

/// Creating the same run twice fails with Conflict and changes nothing.
pub async fn create_twice_conflicts<S: RunStore + ?Sized>(store: &S) {
    let (run, shards) = create(store, 2).await;
    let mut other = run.clone();
    other.suite = "other".into();
    match store.create_run(&other, &shards).await {
        Err(StoreError::Conflict { run: r }) => {
            assert_eq!(r, run.id.to_string(), "Conflict names the run")
        }
        other => panic!(
            "second create_run of {} must be Conflict, got {other:?}",
            run.id
        ),
    }
    assert_eq!(
        get(store, run.id).await,
        run,
        "a conflicting create must not overwrite"
    );
}

/// A duplicate completion (same or different payload) changes nothing; the
/// first one updates the shard and the run's counters.
pub async fn complete_shard_once_under_duplicates<S: RunStore + ?Sized>(store: &S) {
    let (run, _) = create(store, 3).await;
    let shard = ShardId::new(run.id, 1);
    let mut first = completion(shard, 1, shard_counts(1));
    first.error = Some("1 test failed".into());
    assert_eq!(
        store.complete_shard(&first).await.expect("complete_shard"),
        Completion::Applied {
            shards_done: 1,
            shard_count: 3
        }
    );
    assert_eq!(
        store.complete_shard(&first).await.expect("duplicate"),
        Completion::AlreadyCompleted
    );
    let late = ShardCompletion {
        attempt: 2,
        counts: shard_counts(7),
        ..first.clone()
    };
    assert_eq!(
        store.complete_shard(&late).await.expect("late attempt"),
        Completion::AlreadyCompleted
    );

    let got = get(store, run.id).await;
    assert_eq!(got.counts, first.counts, "counts added exactly once");
    assert_eq!(got.shards_done, 1);
    assert_eq!(
        got.status,
        RunStatus::Running,
        "completing a shard does not change the run status"
    );
    let shards = store.list_shards(run.id).await.expect("list_shards");
    let s = &shards[1];
    assert_eq!(s.status, first.status);
    assert_eq!(s.attempt, Some(1), "the applied attempt is recorded");
    assert_eq!(s.counts, first.counts);
    assert_eq!(
        (s.started_ms, s.finished_ms),
        (Some(first.started_ms), Some(first.finished_ms))
    );
    assert_eq!(s.error, first.error);
    assert_eq!(
        (s.estimated_secs, s.file_count),
        (11.0, 2),
        "planned fields are kept"
    );
    assert_eq!(
        shards[0].status,
        ShardStatus::Pending,
        "other shards untouched"
    );
    assert_eq!(
        shards[2].status,
        ShardStatus::Pending,
        "other shards untouched"
    );
}

/// 16 tasks complete the same shard at once: exactly one is Applied.
pub async fn complete_shard_concurrent_duplicates<S: RunStore + ?Sized + 'static>(store: Arc<S>) {
    let (run, _) = create(&*store, 2).await;
    let c = completion(ShardId::new(run.id, 0), 1, shard_counts(3));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, c) = (store.clone(), c.clone());
            tokio::spawn(async move { store.complete_shard(&c).await })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        match t
            .await
            .expect("task panicked")
            .expect("complete_shard must not fail under contention")
        {
            Completion::Applied {
                shards_done,
                shard_count,
            } => {
                applied += 1;
                assert_eq!((shards_done, shard_count), (1, 2));
            }
            Completion::AlreadyCompleted => {}
        }
    }
    assert_eq!(applied, 1, "exactly one concurrent completion may apply");
    let got = get(&*store, run.id).await;
    assert_eq!(
        (got.counts, got.shards_done),
        (c.counts, 1),
        "counts added once"
    );
}

/// 50 shards completed at once: every one applies, each sees a distinct
/// `shards_done`, and the run ends with all counts summed.
pub async fn complete_many_shards_concurrently<S: RunStore + ?Sized + 'static>(store: Arc<S>) {
    let n = 50;
    let (run, _) = create(&*store, n).await;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            let c = completion(ShardId::new(run.id, i), 1, shard_counts(i));
            tokio::spawn(async move { store.complete_shard(&c).await })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for t in tasks {
        match t
            .await
            .expect("task panicked")
            .expect("complete_shard must not fail under contention")
        {
            Completion::Applied {
                shards_done,
                shard_count,
            } => {
                assert_eq!(shard_count, n);
                assert!(
                    seen.insert(shards_done),
                    "two completions both saw shards_done = {shards_done}"
                );
            }
            Completion::AlreadyCompleted => panic!("a first completion must apply"),
        }
    }
    assert_eq!(
        seen,
        (1..=n).collect(),
        "each completion sees its own shards_done"
    );
    let mut expected = Counts::default();
    (0..n).for_each(|i| expected.add(&shard_counts(i)));
    let got = get(&*store, run.id).await;
    assert_eq!(
        (got.shards_done, got.counts),
        (n, expected),
        "all shards counted, counts summed"
    );
    let shards = store.list_shards(run.id).await.expect("list_shards");
    assert!(
        shards.iter().all(|s| s.status != ShardStatus::Pending),
        "no shard left pending"
    );
}

/// Completing a shard that does not exist is NotFound, not a silent no-op.
pub async fn complete_unknown_shard_is_not_found<S: RunStore + ?Sized>(store: &S) {
    let (run, _) = create(store, 2).await;
    for shard in [ShardId::new(run.id, 2), ShardId::new(RunId::new(), 0)] {
        match store
            .complete_shard(&completion(shard, 1, Counts::default()))
            .await
        {
            Err(StoreError::NotFound { run: r }) => {
                assert!(
                    r.contains(&shard.run.to_string()),
                    "NotFound must name the run, got `{r}`"
                )
            }
            other => panic!("completing unknown shard {shard} must be NotFound, got {other:?}"),
        }
    }
    assert_eq!(get(store, run.id).await, run, "nothing changed");
}

/// A completion whose status is `pending` is refused (`Invalid`, naming the
/// run) before anything is written: the shard stays completable, and
/// nothing is counted on the run.
pub async fn complete_as_pending_is_invalid<S: RunStore + ?Sized>(store: &S) {
    let (run, shards) = create(store, 2).await;
    let shard = ShardId::new(run.id, 0);
    let mut pending = completion(shard, 1, shard_counts(0));
    pending.status = ShardStatus::Pending;
    match store.complete_shard(&pending).await {
        Err(StoreError::Invalid { run: r, message }) => {
            assert_eq!(r, run.id.to_string(), "Invalid must name the run");
            assert!(message.contains("pending"), "{message}");
        }
        other => panic!("completing shard {shard} as pending must be Invalid, got {other:?}"),
    }
    assert_eq!(get(store, run.id).await, run, "nothing counted");
    assert_eq!(
        store.list_shards(run.id).await.unwrap(),
        shards,
        "no shard changed"
    );
    let done = store
        .complete_shard(&completion(shard, 1, shard_counts(0)))
        .await
        .unwrap();
    assert_eq!(
        done,
        Completion::Applied {
            shards_done: 1,
            shard_count: 2
        },
        "the shard is still completable"
    );
}

/// `begin_report` is false until every shard is done, then true exactly once.
pub async fn begin_report_only_when_all_done_and_once<S: RunStore + ?Sized>(store: &S) {
    let (run, _) = create(store, 2).await;
    assert!(
        !store.begin_report(run.id).await.expect("begin_report"),
        "no shard done yet"
    );
    store
        .complete_shard(&completion(ShardId::new(run.id, 0), 1, shard_counts(0)))
        .await
        .expect("complete");
    assert!(
        !store.begin_report(run.id).await.expect("begin_report"),
        "one shard still pending"
    );
    assert_eq!(get(store, run.id).await.status, RunStatus::Running);
    store
        .complete_shard(&completion(ShardId::new(run.id, 1), 1, shard_counts(1)))
        .await
        .expect("complete");
    assert!(
        store.begin_report(run.id).await.expect("begin_report"),
        "all done → hand-off"
    );
    assert!(
        !store.begin_report(run.id).await.expect("begin_report"),
        "the hand-off happens once"
    );
    assert_eq!(get(store, run.id).await.status, RunStatus::Reporting);
    assert!(
        matches!(
            store.begin_report(RunId::new()).await,
            Err(StoreError::NotFound { .. })
        ),
        "begin_report of an unknown run is NotFound"
    );
}

/// Concurrent collectors finishing the last shard: one hand-off.
pub async fn begin_report_concurrent_single_winner<S: RunStore + ?Sized + 'static>(store: Arc<S>) {
    let (run, _) = create(&*store, 1).await;
    store
        .complete_shard(&completion(ShardId::new(run.id, 0), 1, shard_counts(0)))
        .await
        .expect("complete");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.begin_report(run.id).await })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if t.await
            .expect("task panicked")
            .expect("begin_report must not fail under contention")
        {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent begin_report may win");
}

/// `finish_run` makes the final write once; `Running → final` is allowed
/// (a sweep erroring a run); a non-final status is refused.
pub async fn finish_run_once<S: RunStore + ?Sized>(store: &S) {
    let (run, _) = create(store, 1).await;
    store
        .complete_shard(&completion(ShardId::new(run.id, 0), 1, shard_counts(0)))
        .await
        .expect("complete");
    assert!(store.begin_report(run.id).await.expect("begin_report"));
    assert!(
        store
            .finish_run(run.id, RunStatus::Failed, 5_000, None)
            .await
            .expect("finish_run")
    );
    assert!(
        !store
            .finish_run(run.id, RunStatus::Passed, 6_000, Some("late".into()))
            .await
            .expect("finish_run"),
        "a second finish must not apply"
    );
    let got = get(store, run.id).await;
    assert_eq!(
        (got.status, got.finished_ms, got.error.clone()),
        (RunStatus::Failed, Some(5_000), None)
    );
    assert_eq!(got.counts, shard_counts(0), "finishing keeps the counts");
    assert!(
        !store.begin_report(run.id).await.expect("begin_report"),
        "a final run never reports again"
    );

    // The sweep errors a run whose shards never reported.
    let (stuck, _) = create(store, 2).await;
    let why = Some("shards 0, 1 never reported".to_string());
    assert!(
        store
            .finish_run(stuck.id, RunStatus::Errored, 7_000, why.clone())
            .await
            .expect("finish_run")
    );
    let got = get(store, stuck.id).await;
    assert_eq!(
        (got.status, got.finished_ms, got.error),
        (RunStatus::Errored, Some(7_000), why)
    );

    let (other, _) = create(store, 1).await;
    assert!(
        store
            .finish_run(other.id, RunStatus::Reporting, 1, None)
            .await
            .is_err(),
        "finish_run with a non-final status must be refused"
    );
    assert_eq!(
        get(store, other.id).await.status,
        RunStatus::Running,
        "a refused finish changes nothing"
    );
    assert!(
        matches!(
            store
                .finish_run(RunId::new(), RunStatus::Passed, 1, None)
                .await,
            Err(StoreError::NotFound { .. })
        ),
        "finish_run of an unknown run is NotFound"
    );
}

/// `list_active_runs` returns running and reporting runs, never final ones.
/// Other runs in the store must not be final-but-listed, so any store works.
pub async fn list_active_runs_excludes_final<S: RunStore + ?Sized>(store: &S) {
    let (running, _) = create(store, 1).await;
    let (reporting, _) = create(store, 1).await;
    store
        .complete_shard(&completion(
            ShardId::new(reporting.id, 0),
            1,
            shard_counts(0),
        ))
        .await
        .expect("complete");
    assert!(
        store
            .begin_report(reporting.id)
            .await
            .expect("begin_report")
    );
    let (done, _) = create(store, 1).await;
    assert!(
        store
            .finish_run(done.id, RunStatus::Errored, 1, None)
            .await
            .expect("finish_run")
    );

    let active: BTreeMap<RunId, RunStatus> = store
        .list_active_runs()
        .await
        .expect("list_active_runs")
        .into_iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert!(
        active.values().all(|s| !s.is_final()),
        "no final run is active: {active:?}"
    );
    assert_eq!(
        active.get(&running.id),
        Some(&RunStatus::Running),
        "a running run is active"
    );
    assert_eq!(
        active.get(&reporting.id),
        Some(&RunStatus::Reporting),
        "a reporting run is active"
    );
    assert!(
        !active.contains_key(&done.id),
        "a finished run is not active"
    );
}

/// A delivery id is claimed once per TTL; other keys are independent.
pub async fn claim_delivery_dedupes_within_ttl<S: RunStore + ?Sized>(store: &S) {
    let key = format!("github:{}", Ulid::new());
    let (t0, ttl) = (1_000_000, 60_000);
    assert!(
        store.claim_delivery(&key, t0, ttl).await.expect("claim"),
        "first claim wins"
    );
    assert!(
        !store.claim_delivery(&key, t0, ttl).await.expect("claim"),
        "same instant: duplicate"
    );
    assert!(
        !store
            .claim_delivery(&key, t0 + ttl - 1, ttl)
            .await
            .expect("claim"),
        "within TTL: duplicate"
    );
    let other = format!("{key}-other");
    assert!(
        store
            .claim_delivery(&other, t0 + 1, ttl)
            .await
            .expect("claim"),
        "keys are independent"
    );
    assert!(
        store
            .claim_delivery(&key, t0 + ttl + 1, ttl)
            .await
            .expect("claim"),
        "after the TTL: new claim"
    );
    assert!(
        !store
            .claim_delivery(&key, t0 + ttl + 2, ttl)
            .await
            .expect("claim"),
        "and it holds again"
    );
}

// ---- test history -------------------------------------------------------------

/// A history record of `id` with `n` runs, the last one at `at_ms`.
pub fn sample_history(id: &str, n: u64, at_ms: u64) -> TestHistory {
    let mut h = TestHistory::new(id);
    for i in 0..n {
        h.record(HistoryEntry {
            run: format!("run-{i}"),
            at_ms: at_ms - (n - 1 - i),
            commit: Some(format!("{i:040x}")),
            branch: Some("main".into()),
            outcome: if i % 3 == 0 {
                Outcome::Failed
            } else {
                Outcome::Passed
            },
            attempts: if i % 5 == 0 {
                vec![Outcome::Failed, Outcome::Flaky]
            } else {
                Vec::new()
            },
            duration_secs: 0.25 * i as f64,
        });
    }
    h
}

/// Every history check, each in its own scope. Run by the contract tests
/// of the backends that implement test history (local, AWS).
pub async fn history_store_contract<S: RunStore + ?Sized>(store: &S) {
    history_round_trips_by_scope(store).await;
    history_batches_past_request_limits(store).await;
    history_expires_after_its_ttl(store).await;
}

/// Records read back exactly as written, only those asked for, only from
/// their own scope; a second save replaces.
pub async fn history_round_trips_by_scope<S: RunStore + ?Sized>(store: &S) {
    let now = 1_700_000_000_000;
    let scope = HistoryScope::new("owner/repo", "unit");
    let other = HistoryScope::new("owner/repo", "e2e");
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(
        store
            .load_history(&scope, &ids(&["a::t"]), now)
            .await
            .expect("load")
            .is_empty(),
        "a test never seen has no history"
    );
    // Ids longer than a key may be are stored under a shortened key.
    let long = format!("pkg.{}::t", "x".repeat(3000));
    let mut a = sample_history("a::t", 7, now);
    a.quarantine = Some(QuarantineState {
        since_run: "run-3".into(),
        since_ms: now - 3,
        clean_passes: 2,
    });
    // The file names the test's owners on the per-test page.
    a.file = Some("tests/test_a.py".into());
    let written = vec![a.clone(), sample_history(&long, 3, now)];
    store.save_history(&scope, &written).await.expect("save");
    store
        .save_history(&other, &[sample_history("a::t", 1, now)])
        .await
        .expect("save other scope");
    let mut got = store
        .load_history(&scope, &ids(&["a::t", &long, "missing::t"]), now)
        .await
        .expect("load");
    got.sort_by(|x, y| x.id.cmp(&y.id));
    let mut want = written.clone();
    want.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, want, "history must read back as written");
    let mut updated = a.clone();
    updated.record(HistoryEntry {
        run: "run-next".into(),
        at_ms: now + 1,
        commit: None,
        branch: None,
        outcome: Outcome::Error,
        attempts: Vec::new(),
        duration_secs: 1.0,
    });
    updated.quarantine = None;
    store
        .save_history(&scope, &[updated.clone()])
        .await
        .expect("save again");
    let got = store
        .load_history(&scope, &ids(&["a::t"]), now + 1)
        .await
        .expect("load");
    assert_eq!(got, vec![updated], "a save replaces the record");
    let got = store
        .load_history(&other, &ids(&["a::t"]), now)
        .await
        .expect("load");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].entries.len(), 1, "scopes must not mix");
}

/// More records than one batch request takes (DynamoDB: 25 writes, 100
/// reads), and a run naming a test twice.
pub async fn history_batches_past_request_limits<S: RunStore + ?Sized>(store: &S) {
    let now = 1_700_000_000_000;
    let scope = HistoryScope::new("owner/big", "unit");
    let records: Vec<TestHistory> = (0..230)
        .map(|i| sample_history(&format!("mod{}::test_{i}", i % 7), 4, now))
        .collect();
    store
        .save_history(&scope, &records)
        .await
        .expect("save 230");
    let mut ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    ids.push(ids[0].clone());
    let got = store
        .load_history(&scope, &ids, now)
        .await
        .expect("load 230");
    assert_eq!(got.len(), 230, "every record comes back once");
    let got: BTreeSet<String> = got.into_iter().map(|r| r.id).collect();
    assert_eq!(got, ids.into_iter().collect::<BTreeSet<_>>());
}

/// Listing a scope (stores that implement `list_history`): every
/// unexpired record of that scope, in key order, at most `limit`.
pub async fn history_lists_a_scope<S: RunStore + ?Sized>(store: &S) {
    let now = 1_700_000_000_000;
    let scope = HistoryScope::new("owner/listed", "unit");
    let records: Vec<TestHistory> = ["b::t", "a::t", "c::t"]
        .iter()
        .map(|id| sample_history(id, 2, now))
        .collect();
    store.save_history(&scope, &records).await.expect("save");
    store
        .save_history(
            &HistoryScope::new("owner/listed", "other"),
            &[sample_history("z::t", 1, now)],
        )
        .await
        .expect("save other");
    let ids = |v: Vec<TestHistory>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = store.list_history(&scope, 10, now).await.expect("list");
    assert_eq!(ids(all), ["a::t", "b::t", "c::t"]);
    let two = store.list_history(&scope, 2, now).await.expect("list");
    assert_eq!(ids(two), ["a::t", "b::t"]);
    let later = store
        .list_history(&scope, 10, now + TTL_MS + 1)
        .await
        .expect("list");
    assert!(later.is_empty(), "expired records are not listed");
}

/// A record not seen for 90 days is gone (or at least not returned).
pub async fn history_expires_after_its_ttl<S: RunStore + ?Sized>(store: &S) {
    let then = 1_600_000_000_000;
    let scope = HistoryScope::new("owner/old", "unit");
    store
        .save_history(&scope, &[sample_history("old::t", 2, then)])
        .await
        .expect("save");
    let id = vec!["old::t".to_string()];
    assert_eq!(
        store
            .load_history(&scope, &id, then + TTL_MS)
            .await
            .expect("load")
            .len(),
        1,
        "still within its TTL"
    );
    assert!(
        store
            .load_history(&scope, &id, then + TTL_MS + 1)
            .await
            .expect("load")
            .is_empty(),
        "a record past its TTL must not be returned"
    );
}

// ---- blob store ---------------------------------------------------------------

/// Every blob store check. `scratch` is an empty local directory for files.
pub async fn blob_store_contract<B: BlobStore + ?Sized>(blobs: &B, scratch: &Path) {
    blob_put_get_overwrite(blobs).await;
    blob_missing_is_not_found(blobs, scratch).await;
    blob_list_is_sorted_by_prefix(blobs).await;
    blob_invalid_keys_are_rejected(blobs).await;
    blob_large_file_round_trip(blobs, scratch).await;
}

pub async fn blob_put_get_overwrite<B: BlobStore + ?Sized>(blobs: &B) {
    let key = "runs/01J9Z3V8K4QW5T6Y7X8C9B0N1M/report/summary.md";
    assert!(
        !blobs.exists(key).await.expect("exists"),
        "nothing there yet"
    );
    blobs
        .put(
            key,
            b"# first".to_vec(),
            crate::app::ports::content_type::MARKDOWN,
        )
        .await
        .expect("put");
    assert!(blobs.exists(key).await.expect("exists"));
    assert_eq!(blobs.get(key).await.expect("get"), b"# first");
    blobs
        .put(
            key,
            b"# second, longer".to_vec(),
            crate::app::ports::content_type::MARKDOWN,
        )
        .await
        .expect("put");
    assert_eq!(
        blobs.get(key).await.expect("get"),
        b"# second, longer",
        "a put replaces the object"
    );
    blobs
        .put(key, Vec::new(), crate::app::ports::content_type::MARKDOWN)
        .await
        .expect("put empty");
    assert_eq!(
        blobs.get(key).await.expect("get"),
        b"",
        "empty objects are objects"
    );
    assert!(blobs.exists(key).await.expect("exists"));
    assert!(
        !blobs
            .exists("runs/01J9Z3V8K4QW5T6Y7X8C9B0N1M/report")
            .await
            .expect("exists"),
        "a prefix is not a key"
    );
    assert!(
        matches!(
            blobs.get("runs/01J9Z3V8K4QW5T6Y7X8C9B0N1M/report").await,
            Err(BlobError::NotFound { .. })
        ),
        "get of a prefix is NotFound"
    );
    assert!(
        blobs
            .link(key)
            .await
            .expect("link")
            .is_some_and(|l| !l.is_empty()),
        "link to an object"
    );
}

pub async fn blob_missing_is_not_found<B: BlobStore + ?Sized>(blobs: &B, scratch: &Path) {
    let key = "runs/missing/log.txt";
    match blobs.get(key).await {
        Err(BlobError::NotFound { key: k }) => assert_eq!(k, key, "NotFound names the key"),
        other => panic!("get of a missing key must be NotFound, got {other:?}"),
    }
    assert!(!blobs.exists(key).await.expect("exists"));
    let dest = scratch.join("missing.txt");
    assert!(
        matches!(
            blobs.get_to_file(key, &dest).await,
            Err(BlobError::NotFound { .. })
        ),
        "get_to_file of a missing key must be NotFound"
    );
    assert!(!dest.exists(), "a failed download leaves no file");
}

pub async fn blob_list_is_sorted_by_prefix<B: BlobStore + ?Sized>(blobs: &B) {
    let keys = [
        "list/b/2.xml",
        "list/a/z.txt",
        "list/b/10.xml",
        "list/a/b/c.txt",
        "list/ab/x",
        "lists/other",
    ];
    for k in keys {
        blobs
            .put(
                k,
                k.as_bytes().to_vec(),
                crate::app::ports::content_type::TEXT,
            )
            .await
            .expect("put");
    }
    let list = |p: &'static str| async move { blobs.list(p).await.expect("list") };
    assert_eq!(
        list("list/a/").await,
        ["list/a/b/c.txt", "list/a/z.txt"],
        "nested keys, sorted"
    );
    assert_eq!(
        list("list/a").await,
        ["list/a/b/c.txt", "list/a/z.txt", "list/ab/x"],
        "prefix is a string prefix"
    );
    assert_eq!(
        list("list/b/").await,
        ["list/b/10.xml", "list/b/2.xml"],
        "byte order"
    );
    assert_eq!(list("list/").await.len(), 5);
    assert!(
        list("nothing/here/").await.is_empty(),
        "unknown prefix → empty"
    );
}

/// Keys that could escape a directory or mean different things on
/// different systems are refused by every operation.
pub async fn blob_invalid_keys_are_rejected<B: BlobStore + ?Sized>(blobs: &B) {
    for key in [
        "",
        "/etc/passwd",
        "../outside",
        "runs/../../x",
        "runs\\x",
        "nul\0byte",
    ] {
        let is_invalid = |r: Result<(), BlobError>| matches!(r, Err(BlobError::InvalidKey { .. }));
        assert!(
            is_invalid(blobs.put(key, b"x".to_vec(), "text/plain").await),
            "put `{key:?}` must be InvalidKey"
        );
        assert!(
            is_invalid(blobs.get(key).await.map(drop)),
            "get `{key:?}` must be InvalidKey"
        );
        assert!(
            is_invalid(blobs.exists(key).await.map(drop)),
            "exists `{key:?}` must be InvalidKey"
        );
    }
}

/// A file over S3's 5 MiB multipart threshold goes up and down intact.
pub async fn blob_large_file_round_trip<B: BlobStore + ?Sized>(blobs: &B, scratch: &Path) {
    let size = 6 * 1024 * 1024 + 123;
    let mut state = 0x1234_5678u64;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let src = scratch.join("big-source.bin");
    std::fs::write(&src, &data).expect("write scratch file");
    let key = "runs/big/source.tar.gz";
    blobs
        .put_file(key, &src, crate::app::ports::content_type::GZIP)
        .await
        .expect("put_file");
    let dest = scratch.join("down/big.bin");
    std::fs::create_dir_all(scratch.join("down")).expect("scratch dir");
    blobs.get_to_file(key, &dest).await.expect("get_to_file");
    let back = std::fs::read(&dest).expect("read downloaded file");
    assert!(
        back.len() == data.len() && back == data,
        "large file must round-trip byte for byte"
    );
    assert_eq!(blobs.get(key).await.expect("get").len(), size);
    assert!(
        blobs
            .put_file("runs/big/none", &scratch.join("does-not-exist"), "x")
            .await
            .is_err(),
        "put_file of a missing local file fails"
    );
    assert!(
        !blobs.exists("runs/big/none").await.expect("exists"),
        "and stores nothing"
    );
}

// ---- queue --------------------------------------------------------------------

/// The contract consumes through the [`QueueConsumer`](crate::app::ports::QueueConsumer) port.
pub use crate::app::ports::{QueueConsumer as TestConsumer, Received};

/// How the queue under test is configured.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    pub visibility_timeout: Duration,
    pub max_receives: u32,
}

/// Every queue check, each on its own queue of the pipeline.
pub async fn queue_contract<Q: JobQueue + TestConsumer + ?Sized>(
    queue: &Q,
    settings: QueueSettings,
) {
    queue_delivers_every_message(queue, QueueName::Shards, settings).await;
    queue_redelivers_unacked_after_visibility(queue, QueueName::Results, settings).await;
    queue_dead_letter_moves_a_message_at_once(queue, QueueName::Results, settings).await;
    queue_dead_letters_after_max_receives(queue, QueueName::Reports, settings).await;
    queue_rejects_too_large(queue, QueueName::Shards, settings).await;
    queue_extend_holds_a_message_past_its_timeout(queue, QueueName::Requests, settings).await;
}

async fn recv<Q: TestConsumer + ?Sized>(
    q: &Q,
    queue: QueueName,
    wait: Duration,
) -> Option<Received> {
    q.receive(queue, wait).await.expect("receive must not fail")
}

/// Every sent message is delivered (at least once); acked ones are gone.
pub async fn queue_delivers_every_message<Q: JobQueue + TestConsumer + ?Sized>(
    q: &Q,
    queue: QueueName,
    settings: QueueSettings,
) {
    let sent: Vec<String> = (0..25).map(|i| format!("{{\"n\":{i}}}")).collect();
    q.send_batch(queue, sent[..10].to_vec())
        .await
        .expect("send_batch");
    q.send_batch(queue, sent[10..].to_vec())
        .await
        .expect("send_batch");
    q.send_batch(queue, Vec::new())
        .await
        .expect("an empty batch is fine");
    let mut got = BTreeSet::new();
    while let Some(m) = recv(q, queue, settings.visibility_timeout / 2).await {
        q.ack(queue, &m.handle).await.expect("ack");
        got.insert(m.body);
    }
    assert_eq!(
        got,
        sent.into_iter().collect(),
        "every sent message must be delivered"
    );
    assert_eq!(
        recv(q, queue, settings.visibility_timeout * 2).await,
        None,
        "acked messages never return"
    );
}

/// A delivery that is not acked comes back after the visibility timeout,
/// with attempt 2, and not before.
pub async fn queue_redelivers_unacked_after_visibility<Q: JobQueue + TestConsumer + ?Sized>(
    q: &Q,
    queue: QueueName,
    settings: QueueSettings,
) {
    q.send_batch(queue, vec!["lost".into()])
        .await
        .expect("send_batch");
    let first = recv(q, queue, settings.visibility_timeout)
        .await
        .expect("delivered");
    assert_eq!((first.body.as_str(), first.attempt), ("lost", 1));
    assert_eq!(
        recv(q, queue, Duration::ZERO).await,
        None,
        "in flight: invisible"
    );
    let again = recv(q, queue, settings.visibility_timeout * 4)
        .await
        .expect("redelivered after visibility");
    assert_eq!(
        (again.body.as_str(), again.attempt),
        ("lost", 2),
        "redelivery counts the attempt"
    );
    q.ack(queue, &again.handle).await.expect("ack");
    assert_eq!(
        recv(q, queue, settings.visibility_timeout * 2).await,
        None,
        "acked: gone"
    );
}

/// A consumer that renews its lease keeps the message for three visibility
/// timeouts without a second delivery; once acked it is gone, and renewing
/// the spent handle is not an error.
pub async fn queue_extend_holds_a_message_past_its_timeout<Q: JobQueue + TestConsumer + ?Sized>(
    q: &Q,
    queue: QueueName,
    settings: QueueSettings,
) {
    q.send_batch(queue, vec!["long".into()])
        .await
        .expect("send_batch");
    let held = recv(q, queue, settings.visibility_timeout)
        .await
        .expect("delivered");
    let step = settings.visibility_timeout / 3;
    let started = std::time::Instant::now();
    while started.elapsed() < settings.visibility_timeout * 3 {
        tokio::time::sleep(step).await;
        q.extend(queue, &held.handle).await.expect("extend");
        assert_eq!(
            recv(q, queue, Duration::ZERO).await,
            None,
            "a renewed lease keeps the message invisible after {:?}",
            started.elapsed()
        );
    }
    q.ack(queue, &held.handle).await.expect("ack");
    assert_eq!(
        recv(q, queue, settings.visibility_timeout * 2).await,
        None,
        "acked after the renewals: gone, never delivered twice"
    );
    q.extend(queue, &held.handle)
        .await
        .expect("renewing a spent handle is not an error");
}

/// `dead_letter` on the first delivery: the message is in the dead letters
/// at once and never delivered again.
pub async fn queue_dead_letter_moves_a_message_at_once<Q: JobQueue + TestConsumer + ?Sized>(
    q: &Q,
    queue: QueueName,
    settings: QueueSettings,
) {
    q.send_batch(queue, vec!["hopeless".into()])
        .await
        .expect("send_batch");
    let m = recv(q, queue, settings.visibility_timeout)
        .await
        .expect("delivered");
    assert_eq!(m.attempt, 1);
    q.dead_letter(queue, &m, "undecodable on purpose")
        .await
        .expect("dead_letter");
    assert_eq!(
        recv(q, queue, settings.visibility_timeout * 3).await,
        None,
        "a dead-lettered message is never delivered again"
    );
    assert_eq!(
        q.dead_letters(queue).await.expect("dead_letters"),
        ["hopeless"],
        "it is in the dead letters after one delivery"
    );
    q.dead_letter(queue, &m, "again")
        .await
        .expect("dead-lettering a spent handle is not an error");
}

/// After `max_receives` failed deliveries the message is dead-lettered.
pub async fn queue_dead_letters_after_max_receives<Q: JobQueue + TestConsumer + ?Sized>(
    q: &Q,
    queue: QueueName,
    settings: QueueSettings,
) {
    q.send_batch(queue, vec!["poison".into()])
        .await
        .expect("send_batch");
    for attempt in 1..=settings.max_receives {
        let m = recv(q, queue, settings.visibility_timeout * 4)
            .await
            .expect("delivered until max receives");
        assert_eq!((m.body.as_str(), m.attempt), ("poison", attempt));
    }
    assert_eq!(
        recv(q, queue, settings.visibility_timeout * 3).await,
        None,
        "no delivery after max receives"
    );
    assert_eq!(
        q.dead_letters(queue).await.expect("dead_letters"),
        ["poison"]
    );
}

/// Bodies over the limit are refused with TooLarge; at the limit they go.
pub async fn queue_rejects_too_large<Q: JobQueue + TestConsumer + ?Sized>(
    q: &Q,
    queue: QueueName,
    settings: QueueSettings,
) {
    let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
    match q.send_batch(queue, vec!["small".into(), big]).await {
        Err(QueueError::TooLarge { size, limit, .. }) => {
            assert_eq!((size, limit), (MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES))
        }
        other => panic!("an oversized body must be TooLarge, got {other:?}"),
    }
    let max = "y".repeat(MAX_MESSAGE_BYTES);
    q.send_batch(queue, vec![max.clone()])
        .await
        .expect("a body at the limit is accepted");
    // A backend may have sent "small" before refusing the batch; drain all.
    let mut bodies = Vec::new();
    while let Some(m) = recv(q, queue, settings.visibility_timeout / 2).await {
        q.ack(queue, &m.handle).await.expect("ack");
        bodies.push(m.body);
    }
    assert!(bodies.contains(&max), "the body at the limit is delivered");
    assert!(
        bodies.iter().all(|b| b.len() <= MAX_MESSAGE_BYTES),
        "the oversized body is never delivered"
    );
}

/// Moved to [`crate::testkit::emulators`]; this path keeps older callers
/// building.
pub use super::emulators;
