//! `testexec flaky`: the test history of a local repository, as report
//! classifies it (docs/flaky.md): broken and flaky tests first, with their
//! quarantine, pass rate and last results.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde::Serialize;
use testexec::app::messages::RunRequest;
use testexec::app::pipeline::LocalPipeline;
use testexec::app::ports::{Clock, NoNotifier, SystemClock};
use testexec::domain::history::classify::{Class, classify};
use testexec::domain::history::triage::strip;
use testexec::domain::history::{HistoryScope, TestHistory};
use testexec::domain::manifest::{MANIFEST_FILE, Manifest};

use super::state_dir_for;

/// Tests listed at most (and read from the store).
const MAX_LISTED: usize = 100_000;

/// Show flaky, broken and quarantined tests from the local test history.
#[derive(Debug, clap::Args)]
pub struct FlakyArgs {
    /// Repository root (its `testexec.toml` gives the thresholds).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// State directory [default: PATH/.testexec].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The suite (needed when the manifest has several).
    #[arg(long)]
    pub suite: Option<String>,
    /// List healthy and new tests too.
    #[arg(long)]
    pub all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One test as `testexec flaky` shows it.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    class: Class,
    quarantined: Option<&'static str>,
    runs: usize,
    failures: usize,
    recent: String,
    mean_secs: f64,
}

pub fn run(args: FlakyArgs) -> anyhow::Result<ExitCode> {
    let manifest_path = args.path.join(MANIFEST_FILE);
    let manifest = Manifest::load(&manifest_path)?;
    let suite = match &args.suite {
        Some(name) => manifest.suite(name)?,
        None => manifest.default_suite()?,
    };
    let repo = RunRequest::local(&args.path).source.repo;
    let scope = HistoryScope::new(&repo, &suite.name);
    let state_dir = state_dir_for(&args.path, args.state_dir.as_deref());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let records = runtime.block_on(async {
        let pipeline = LocalPipeline::open(&state_dir, Arc::new(NoNotifier))?;
        let now = SystemClock.now_ms();
        anyhow::Ok(
            pipeline
                .ports
                .store
                .list_history(&scope, MAX_LISTED, now)
                .await?,
        )
    })?;
    let mut rows: Vec<Row> = records
        .iter()
        .map(|h| row(h, &manifest))
        .filter(|r| {
            args.all || r.quarantined.is_some() || matches!(r.class, Class::Flaky | Class::Broken)
        })
        .collect();
    // Broken first, then flaky, then the rest; most failures first within.
    rows.sort_by(|a, b| {
        rank(a.class)
            .cmp(&rank(b.class))
            .then(b.failures.cmp(&a.failures))
            .then(a.id.cmp(&b.id))
    });
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "suite {} of {repo}: {} tests with history, {} shown",
        suite.name,
        records.len(),
        rows.len()
    )?;
    if rows.is_empty() {
        outln!(
            "no flaky, broken or quarantined tests (run `testexec flaky --all` to list every test)"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<8}  {:<11}  {:>9}  {:<20}  test",
        "class",
        "quarantine",
        "failures",
        "last results"
    )?;
    for r in rows {
        outln!(
            "{:<8}  {:<11}  {:>9}  {:<20}  {}",
            r.class.as_str(),
            r.quarantined.unwrap_or("-"),
            format!("{}/{}", r.failures, r.runs),
            r.recent,
            r.id
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn row(h: &TestHistory, manifest: &Manifest) -> Row {
    let policy = &manifest.history;
    let ran = h
        .entries
        .iter()
        .filter(|e| e.passed() || e.failed())
        .count();
    let secs: f64 = h.entries.iter().map(|e| e.duration_secs).sum();
    Row {
        id: h.id.clone(),
        class: classify(&h.entries, &policy.flaky),
        quarantined: if policy.quarantine.tests.contains(&h.id) {
            Some("manual")
        } else if h.quarantine.is_some() {
            Some("auto")
        } else {
            None
        },
        runs: ran,
        failures: h.entries.iter().filter(|e| e.failed()).count(),
        recent: strip(&h.entries, 20),
        mean_secs: if h.entries.is_empty() {
            0.0
        } else {
            secs / h.entries.len() as f64
        },
    }
}

fn rank(class: Class) -> u8 {
    match class {
        Class::Broken => 0,
        Class::Flaky => 1,
        Class::New => 2,
        Class::Healthy => 3,
    }
}
