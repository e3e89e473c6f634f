//! `testexec sweep`: one pass of the sweep (runs past their deadline get
//! their silent shards errored; lost hand-offs to report are queued again),
//! then exit. The shape a scheduled job needs where no process stays up to
//! sweep on a timer: a Container Apps scheduled job, a Cloud Scheduler →
//! Cloud Run job, a Kubernetes CronJob. (`testexec serve` sweeps every
//! minute itself; Lambda's report function on its 5-minute schedule.)

use std::path::PathBuf;
use std::process::ExitCode;

use testexec::app::handlers::sweep::sweep;
use testexec::hosts::backend_set::{BACKEND_ENV, BackendKind, BackendSet};

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Backend set (as `serve` and `worker` take it).
    #[arg(long, env = BACKEND_ENV, default_value = "local")]
    pub backend: String,
    /// State directory (the local backend's state; scratch space for all).
    #[arg(long, env = "TESTEXEC_STATE_DIR", default_value = ".testexec")]
    pub state_dir: PathBuf,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let kind = BackendKind::parse(&args.backend)?;
        let backends = BackendSet::open(kind, &args.state_dir, |k| std::env::var(k).ok()).await?;
        let pipeline = &backends.pipeline;
        let outcome = sweep(&pipeline.ports, &pipeline.settings).await?;
        tracing::info!(
            errored_shards = outcome.errored_shards.len(),
            reports_queued = outcome.reports_queued.len(),
            recounted = outcome.recounted.len(),
            "sweep done"
        );
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&outcome)?)?;
        } else {
            outln!(
                "sweep: {} shard(s) errored past their run's deadline, {} run(s) recounted, {} run(s) handed to report",
                outcome.errored_shards.len(),
                outcome.recounted.len(),
                outcome.reports_queued.len()
            )?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
