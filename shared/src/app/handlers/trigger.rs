//! trigger: turn a request into a planned run with its shards queued.
//!
//! Order matters for at-least-once delivery: the source snapshot is stored
//! before the run exists (no executor ever finds a run without source), the
//! run is written before its jobs are queued (no result ever arrives for an
//! unknown run), and a failure after the delivery id was claimed releases
//! nothing silently: the error goes back to the caller, and the sweep
//! finalises a run whose jobs never got queued.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::adapters::source::{SnapshotLimits, pack_dir};
use crate::app::handlers::{Ports, Settings, encode, scratch_dir};
use crate::app::messages::{
    JobEnvelope, MAX_MESSAGE_BYTES, MESSAGE_VERSION, NewTestCheck, QueueName, RunRequest, ShardJob,
    keys,
};
use crate::app::ports::content_type;
use crate::domain::manifest::{MANIFEST_FILE, Manifest, Mode, Shards, Suite};
use crate::domain::model::TestCase;
use crate::domain::model::{Counts, Origin, Run, RunId, RunStatus, ShardId, ShardRecord};
use crate::domain::plan::{
    KeepWithFile, Plan, PlanRequest, ShardPlan, ShardTarget, Timings, WorkUnit,
};
use crate::errors::HandlerError;

/// What trigger did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TriggerOutcome {
    Started {
        run: Box<Run>,
        plan: Box<Plan>,
    },
    /// The delivery id was seen before: nothing was started.
    Duplicate {
        delivery: String,
    },
    /// The request can never start; it was recorded as an errored run.
    Rejected {
        error: String,
    },
}

/// Decodes a queued [`crate::app::messages::TriggerJob`]. `None` means its run
/// already exists: the intake fixed the run id, so a redelivered job is the
/// same request and starting it again would only conflict.
pub async fn accept_job(ports: &Ports, body: &str) -> Result<Option<RunRequest>, HandlerError> {
    let job: crate::app::messages::TriggerJob = crate::app::handlers::decode("trigger job", body)?;
    if let Some(run) = job.request.run_id {
        if ports.store.get_run(run).await?.is_some() {
            tracing::info!(run_id = %run, "run already started; duplicate trigger job ignored");
            return Ok(None);
        }
    }
    Ok(Some(job.request))
}

/// How the user knows their manifest: its path on their machine, or the
/// repository and commit it came from; never the scratch copy read here.
fn manifest_label(source: &crate::domain::model::SourceRef) -> String {
    match (&source.path, &source.commit) {
        (Some(path), _) => Path::new(path).join(MANIFEST_FILE).display().to_string(),
        (None, Some(sha)) => format!(
            "{}@{}:{MANIFEST_FILE}",
            source.repo,
            &sha[..sha.len().min(12)]
        ),
        (None, None) => format!("{}:{MANIFEST_FILE}", source.repo),
    }
}

/// Runs the trigger for a queued request; a request that can never start
/// (no manifest, unknown suite, a source that does not exist) becomes an
/// errored run carrying the reason, so whoever holds its run id (the
/// answer to `POST /runs`, a webhook's log) can see why, on every host.
/// Retrying such a request would only fail again, so it is not retried.
pub async fn trigger_job(
    ports: &Ports,
    settings: &Settings,
    request: RunRequest,
) -> Result<TriggerOutcome, HandlerError> {
    let run_id = request.run_id;
    let kept = request.clone();
    match trigger(ports, settings, request).await {
        Err(e) if e.is_permanent() && run_id.is_some() => {
            record_rejection(ports, &kept, &e).await?;
            Ok(TriggerOutcome::Rejected {
                error: e.to_string(),
            })
        }
        other => other,
    }
}

async fn record_rejection(
    ports: &Ports,
    request: &RunRequest,
    error: &HandlerError,
) -> Result<(), HandlerError> {
    let now = ports.clock.now_ms();
    let run = Run {
        id: request.run_id.unwrap_or_default(),
        source: request.source.clone(),
        origin: request.origin.clone(),
        suite: request.suite.clone().unwrap_or_default(),
        status: RunStatus::Errored,
        shard_count: 0,
        shards_done: 0,
        counts: Counts::default(),
        created_ms: now,
        deadline_ms: now,
        finished_ms: Some(now),
        error: Some(format!("the run could not start: {error}")),
    };
    tracing::warn!(run_id = %run.id, error = %error, "run request rejected");
    match ports.store.create_run(&run, &[]).await {
        Ok(()) => {
            crate::app::metrics::run_started(&run, true);
            Ok(())
        }
        // A redelivered job whose rejection was already recorded.
        Err(crate::errors::StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub async fn trigger(
    ports: &Ports,
    settings: &Settings,
    mut request: RunRequest,
) -> Result<TriggerOutcome, HandlerError> {
    let now = ports.clock.now_ms();
    if let Some(delivery) = &request.delivery_id {
        if !ports
            .store
            .claim_delivery(
                &format!("delivery/{delivery}"),
                now,
                settings.delivery_ttl_ms,
            )
            .await?
        {
            tracing::info!(delivery, "duplicate delivery ignored");
            crate::app::metrics::webhook(crate::app::metrics::WebhookResult::Duplicate);
            return Ok(TriggerOutcome::Duplicate {
                delivery: delivery.clone(),
            });
        }
    }

    // A branch names a different commit tomorrow: pin it once, here.
    request.source = ports.source.resolve(&request.source).await?;

    let checkout = scratch_dir(settings, "checkout-")?;
    let tree = checkout.path().join("tree");
    std::fs::create_dir_all(&tree).map_err(|source| HandlerError::Io {
        context: format!("creating {}", tree.display()),
        source,
    })?;
    ports.source.fetch(&request.source, &tree).await?;

    let manifest_path = tree.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Err(HandlerError::NoManifest {
            file: MANIFEST_FILE,
        });
    }
    let manifest = Manifest::load_as(&manifest_path, &manifest_label(&request.source))?;
    let suite = match &request.suite {
        Some(name) => manifest.suite(name)?,
        None => manifest.default_suite()?,
    }
    .clone();

    let run_id = request.run_id.unwrap_or_default();
    let timings = load_timings(ports, &request.source.repo, &suite.name).await;
    let plan = match request.rerun_failed_of {
        Some(previous) => rerun_plan(ports, &suite, previous, &tree, &timings, settings).await?,
        None if !request.only_tests.is_empty() => tests_plan(&suite, request.only_tests.clone())?,
        None => make_plan(&request, &suite, &tree, &timings, settings)?,
    };

    // Store the snapshot once; every shard extracts this same archive.
    let archive = checkout.path().join("source.tar.gz");
    let limits = SnapshotLimits::default();
    let (tree_for_pack, archive_for_pack) = (tree.clone(), archive.clone());
    tokio::task::spawn_blocking(move || pack_dir(&tree_for_pack, &archive_for_pack, &limits))
        .await
        .map_err(|e| HandlerError::Io {
            context: "packing the source".into(),
            source: std::io::Error::other(e),
        })??;
    let source_key = keys::source(run_id);
    ports
        .blobs
        .put_file(&source_key, &archive, content_type::GZIP)
        .await?;

    // Report never sees the checkout: hand it the history policy and owners.
    super::history::save_context(
        ports,
        run_id,
        &super::history::RunContext::from_checkout(
            manifest.history.clone(),
            suite.working_dir.as_deref(),
            &tree,
        ),
    )
    .await?;

    let shard_count = plan.shards.len() as u32;
    let mut run = Run {
        id: run_id,
        source: request.source.clone(),
        origin: request.origin.clone(),
        suite: suite.name.clone(),
        status: RunStatus::Running,
        shard_count,
        shards_done: 0,
        counts: Counts::default(),
        created_ms: now,
        deadline_ms: now + run_budget_ms(&suite),
        finished_ms: None,
        error: None,
    };
    if let Some(check_run_id) = ports.notifier.run_started(&run).await? {
        if let Origin::GitHub {
            check_run_id: slot, ..
        } = &mut run.origin
        {
            *slot = Some(check_run_id);
        }
    }
    let shards: Vec<ShardRecord> = plan
        .shards
        .iter()
        .map(|s| {
            ShardRecord::pending(
                ShardId::new(run_id, s.index),
                s.estimated_secs,
                s.files().len() as u32,
            )
        })
        .collect();
    ports.store.create_run(&run, &shards).await?;
    crate::app::metrics::run_started(&run, false);

    let mut bodies = Vec::with_capacity(plan.shards.len());
    let split = SplitFiles::of(&plan, &suite);
    let new_tests = new_test_check(&manifest, &suite, &request);
    for shard in &plan.shards {
        let ShardWork {
            files,
            tests,
            skip_tests,
        } = shard_work(shard, &suite, &split);
        let job = ShardJob {
            v: MESSAGE_VERSION,
            shard: ShardId::new(run_id, shard.index),
            shard_count,
            suite: suite.clone(),
            source_key: source_key.clone(),
            files,
            tests,
            skip_tests,
            new_tests: new_tests.clone(),
            queued_ms: Some(ports.clock.now_ms()),
        };
        bodies.push(envelope(ports, job).await?);
    }
    ports.queue.send_batch(QueueName::Shards, bodies).await?;
    tracing::info!(run_id = %run_id, shards = shard_count, suite = %suite.name, "run started");
    Ok(TriggerOutcome::Started {
        run: Box::new(run),
        plan: Box::new(plan),
    })
}

/// Timing history is an optimisation: a missing or unreadable history
/// plans with the fallback durations rather than failing the run.
async fn load_timings(ports: &Ports, repo: &str, suite: &str) -> Timings {
    let key = keys::timings(repo, suite);
    match ports.blobs.get(&key).await {
        Ok(bytes) => match Timings::from_json(&String::from_utf8_lossy(&bytes), &key) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(key, error = %e, "ignoring unreadable timing history");
                Timings::default()
            }
        },
        Err(_) => Timings::default(),
    }
}

fn make_plan(
    request: &RunRequest,
    suite: &Suite,
    tree: &Path,
    timings: &Timings,
    settings: &Settings,
) -> Result<Plan, HandlerError> {
    if suite.files.is_empty() {
        // The runner finds its own tests (`go test ./...`, `mvn test`,
        // a `{tests}` command given no selectors): one shard runs them all.
        return Ok(whole_suite_plan(suite));
    }
    let files = suite.list_files(tree)?;
    let target = match (request.shards, &suite.shards) {
        (Some(n), _) => ShardTarget::Count(n),
        (None, Shards::Count(n)) => ShardTarget::Count(*n),
        (
            None,
            Shards::Auto {
                target_shard_seconds,
            },
        ) => ShardTarget::TargetSeconds(*target_shard_seconds as f64),
    };
    let root = match &suite.working_dir {
        Some(dir) => tree.join(dir),
        None => tree.to_path_buf(),
    };
    let packed = plan_files(suite, &files, target, timings, settings, Some(&root))?;
    Ok(match suite.mode {
        Mode::Static => packed,
        // The packed plan's shard count is the number of workers.
        Mode::Queue => {
            let workers = packed.shards.len() as u32;
            let startup = timings.batch_startup_secs();
            crate::domain::plan::queue_plan(packed, workers, settings.max_shards, startup)
        }
    })
}

/// Largest test file whose source is read to check that its tests can be
/// split off exactly; a larger one is not split.
const MAX_SPLIT_SOURCE_BYTES: u64 = 8 * 1024 * 1024;

/// Test files' sources, read once each, for [`TestIdFormat::skips_exactly`]
/// (only the few files long enough to be split are read).
struct SplitSources<'a> {
    root: &'a Path,
    read: std::cell::RefCell<BTreeMap<String, Option<String>>>,
}

impl SplitSources<'_> {
    /// Must this test run with the rest of its file? Yes when its file
    /// cannot be read: then nothing of it is split off.
    fn keep_with_file(&self, suite: &Suite, path: &str, key: &str) -> bool {
        let mut read = self.read.borrow_mut();
        let source = read
            .entry(path.to_string())
            .or_insert_with(|| read_source(&self.root.join(path)));
        match source {
            Some(text) => !suite.test_id.skips_exactly(key, text),
            None => true,
        }
    }
}

fn read_source(path: &Path) -> Option<String> {
    use std::io::Read;
    let file = crate::domain::regular_file::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_SPLIT_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= MAX_SPLIT_SOURCE_BYTES)
        .then(|| String::from_utf8_lossy(&bytes).into_owned())
}

/// Plans `files`; `root` (where the suite's files are) lets a long file
/// be split by test, when the suite allows it.
fn plan_files(
    suite: &Suite,
    files: &[String],
    target: ShardTarget,
    timings: &Timings,
    settings: &Settings,
    root: Option<&Path>,
) -> Result<Plan, HandlerError> {
    let sources = root.map(|root| SplitSources {
        root,
        read: Default::default(),
    });
    let keep = |path: &str, key: &str| {
        sources
            .as_ref()
            .is_none_or(|s| s.keep_with_file(suite, path, key))
    };
    let request = PlanRequest {
        files,
        timings,
        target,
        // Only a suite whose command can run a group of tests and "the
        // rest of the file" (validated with the manifest) is split.
        split_by_test: suite.splits_files_by_test() && root.is_some(),
        max_shards: settings.max_shards,
        keep_with_file: Some(KeepWithFile(&keep)),
    };
    Ok(crate::domain::plan::plan(&request)?)
}

/// A shard's `{files}`, `{tests}` and `{skip_tests}`, as selectors.
#[derive(Debug, Default, PartialEq)]
struct ShardWork {
    files: Vec<String>,
    tests: Vec<String>,
    skip_tests: Vec<String>,
}

/// Every test group of each file the plan split, so the group that runs
/// "the rest of the file" can leave out exactly what the others run.
#[derive(Default)]
struct SplitFiles<'p> {
    listed: BTreeMap<&'p str, Vec<&'p WorkUnit>>,
}

impl<'p> SplitFiles<'p> {
    fn of(plan: &'p Plan, suite: &Suite) -> Self {
        let mut listed: BTreeMap<&str, Vec<&WorkUnit>> = BTreeMap::new();
        // Groups from `tests_plan` (rerun, only-tests) name selectors with
        // no file: they are not parts of a split file.
        if suite.splits_files_by_test() {
            for unit in plan.shards.iter().flat_map(|s| &s.units) {
                if let WorkUnit::Tests { path, .. } = unit {
                    if !path.is_empty() {
                        listed.entry(path).or_default().push(unit);
                    }
                }
            }
        }
        SplitFiles { listed }
    }

    /// Selectors of the tests of `path` that the groups other than `this`
    /// run.
    fn others(&self, path: &str, this: &WorkUnit, suite: &Suite) -> Vec<String> {
        let groups = self.listed.get(path).map(Vec::as_slice).unwrap_or(&[]);
        groups
            .iter()
            .filter(|g| !std::ptr::eq(**g, this))
            .flat_map(|g| match g {
                WorkUnit::Tests { tests, .. } => tests.as_slice(),
                WorkUnit::File { .. } => &[],
            })
            .map(|key| suite.test_id.selector_for_key(path, key))
            .collect()
    }
}

/// What one shard runs. A group of a split file names its tests by the
/// keys the history knows them by; they become runner selectors here. The
/// one group per split file that also takes the file's tests no history
/// knows runs the whole file minus what the other groups run.
fn shard_work(shard: &ShardPlan, suite: &Suite, split: &SplitFiles) -> ShardWork {
    let mut work = ShardWork::default();
    for unit in &shard.units {
        match unit {
            WorkUnit::File { path, .. } => work.files.push(path.clone()),
            WorkUnit::Tests {
                path,
                includes_unlisted: true,
                ..
            } if split.listed.contains_key(path.as_str()) => {
                work.files.push(path.clone());
                work.skip_tests.extend(split.others(path, unit, suite));
            }
            WorkUnit::Tests { path, tests, .. } if split.listed.contains_key(path.as_str()) => {
                work.tests.extend(
                    tests
                        .iter()
                        .map(|k| suite.test_id.selector_for_key(path, k)),
                )
            }
            // Selectors already (rerun failed, only these tests).
            WorkUnit::Tests { tests, .. } => work.tests.extend(tests.iter().cloned()),
        }
    }
    work
}

/// Early flake detection when the manifest asks for it and the command can
/// run single tests. Not for a rerun of failed tests or a hand-picked list:
/// those run known tests on purpose.
fn new_test_check(
    manifest: &Manifest,
    suite: &Suite,
    request: &RunRequest,
) -> Option<NewTestCheck> {
    let runs = manifest.history.flaky.new_test_runs;
    let picked = request.rerun_failed_of.is_some() || !request.only_tests.is_empty();
    (runs > 0 && suite.supports_test_selection() && !picked).then(|| NewTestCheck {
        runs,
        history_key: keys::timings(&request.source.repo, &suite.name),
    })
}

/// One shard with no file list and no selectors: `{files}` and `{tests}`
/// expand to nothing, so the command runs the whole suite.
fn whole_suite_plan(suite: &Suite) -> Plan {
    let mut notes = vec![format!(
        "suite `{}` lists no `files`: its command runs the whole suite in one shard",
        suite.name
    )];
    if !matches!(suite.shards, Shards::Count(1)) {
        notes.push(
            "splitting a suite without `files` across shards needs per-test timings and runner selectors; it runs as one shard for now".into(),
        );
    }
    crate::domain::plan::single_shard_plan(Vec::new(), 1, 0.0, notes)
}

/// One shard running exactly these test selectors.
fn tests_plan(suite: &Suite, selectors: Vec<String>) -> Result<Plan, HandlerError> {
    if !suite.supports_test_selection() {
        return Err(HandlerError::NothingToRerun {
            why: format!(
                "suite `{}` has no {{tests}} placeholder, so single tests cannot be selected",
                suite.name
            ),
        });
    }
    Ok(crate::domain::plan::single_shard_plan(
        vec![WorkUnit::Tests {
            path: String::new(),
            tests: selectors,
            estimated_secs: 0.0,
            includes_unlisted: false,
        }],
        1,
        0.0,
        vec!["only the requested tests run, in one shard".into()],
    ))
}

/// "Rerun failed": the failing tests of an earlier run, by selector when
/// the suite takes `{tests}`, else the files that had failures.
async fn rerun_plan(
    ports: &Ports,
    suite: &Suite,
    previous: RunId,
    tree: &Path,
    timings: &Timings,
    settings: &Settings,
) -> Result<Plan, HandlerError> {
    let shards = ports.store.list_shards(previous).await?;
    if shards.is_empty() {
        return Err(HandlerError::UnknownRun {
            run: previous.to_string(),
        });
    }
    let failing: Vec<TestCase> =
        crate::app::handlers::report::load_failing_cases(ports, settings, &shards).await?;
    if failing.is_empty() {
        return Err(HandlerError::NothingToRerun {
            why: format!("run {previous} has no failed tests"),
        });
    }
    if suite.supports_test_selection() {
        let mut selectors: Vec<String> =
            failing.iter().map(|c| suite.test_id.selector(c)).collect();
        selectors.sort();
        selectors.dedup();
        return tests_plan(suite, selectors);
    }
    let listed = suite.list_files(tree)?;
    let mut files: Vec<String> = failing
        .iter()
        .filter_map(|c| c.file.clone())
        .filter(|f| listed.contains(f))
        .collect();
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err(HandlerError::NothingToRerun {
            why: format!(
                "the failed tests of run {previous} name no file of suite `{}`",
                suite.name
            ),
        });
    }
    plan_files(
        suite,
        &files,
        ShardTarget::Count(1),
        timings,
        settings,
        None,
    )
}

/// Time a run may take before the sweep gives up on silent shards: the
/// suite's timeout for setup, the first try and each retry, plus queueing.
fn run_budget_ms(suite: &Suite) -> u64 {
    let tries = 1 + u64::from(suite.retries);
    (suite.timeout_seconds * (tries + 1) + 15 * 60) * 1000
}

/// Inline when the job fits a message; otherwise store it and send its key.
async fn envelope(ports: &Ports, job: ShardJob) -> Result<String, HandlerError> {
    let shard = job.shard;
    let envelope = JobEnvelope::Inline { job: Box::new(job) };
    let inline = encode(&envelope);
    if inline.len() <= MAX_MESSAGE_BYTES {
        return Ok(inline);
    }
    let job = match envelope {
        JobEnvelope::Inline { job } => job,
        stored @ JobEnvelope::Stored { .. } => return Ok(encode(&stored)),
    };
    let key = keys::job(shard);
    ports
        .blobs
        .put(&key, encode(&*job).into_bytes(), content_type::JSON)
        .await?;
    Ok(encode(&JobEnvelope::Stored {
        v: MESSAGE_VERSION,
        shard,
        key,
    }))
}
