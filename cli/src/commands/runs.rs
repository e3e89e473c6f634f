//! `testexec runs`: list past local runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use testexec::app::pipeline::LocalPipeline;
use testexec::app::ports::NoNotifier;

use super::state_dir_for;

/// List past runs, newest first.
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Repository root whose `.testexec/` holds the runs.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// State directory [default: PATH/.testexec].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let state_dir = state_dir_for(&args.path, args.state_dir.as_deref());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let runs = runtime.block_on(async {
        let pipeline = LocalPipeline::open(&state_dir, Arc::new(NoNotifier))?;
        anyhow::Ok(pipeline.ports.store.list_runs(args.limit).await?)
    })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&runs)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        outln!(
            "no runs yet in {} (start one with `testexec run`)",
            state_dir.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<26}  {:<9}  {:<12}  {:>6}  {:>6}  {:>6}  {:>6}",
        "run",
        "status",
        "suite",
        "shards",
        "tests",
        "failed",
        "flaky"
    )?;
    for r in runs {
        outln!(
            "{:<26}  {:<9}  {:<12}  {:>6}  {:>6}  {:>6}  {:>6}",
            r.id.to_string(),
            r.status.as_str(),
            r.suite,
            r.shard_count,
            r.counts.tests,
            r.counts.failed + r.counts.errors,
            r.counts.flaky
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
