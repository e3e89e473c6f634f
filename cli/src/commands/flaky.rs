//! `testexec flaky`: the test history of a local repository, as report
//! classifies it (docs/flaky.md): broken and flaky tests first, with their
//! quarantine, pass rate and last results.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use testexec::app::messages::RunRequest;
use testexec::app::pipeline::LocalPipeline;
use testexec::app::ports::{Clock, NoNotifier, SystemClock};
use testexec::domain::history::HistoryScope;
use testexec::domain::history::summary::{TestSummary, sort_flakiest};
use testexec::domain::history::triage::QuarantineReason;
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
    let mut rows: Vec<TestSummary> = records
        .iter()
        .map(|h| TestSummary::of(h, &manifest.history))
        .filter(|r| args.all || r.notable())
        .collect();
    sort_flakiest(&mut rows);
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
            match r.quarantined {
                Some(QuarantineReason::Manual) => "manual",
                Some(QuarantineReason::Auto) => "auto",
                None => "-",
            },
            format!("{}/{}", r.failures, r.runs),
            r.recent,
            r.id
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
