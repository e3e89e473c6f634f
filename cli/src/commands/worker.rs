//! `testexec worker`: pulls one queue and runs its handler, the shape
//! Container Apps jobs, KEDA `ScaledJob`s and Cloud Run worker pools need.
//! Wiring only: backends from `hosts::backend_set`, the loop is the
//! pipeline's.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use testexec::app::messages::QueueName;
use testexec::app::pipeline::WorkLimits;
use testexec::hosts::backend_set::{BACKEND_ENV, BackendKind, BackendSet};
use tokio::sync::watch;

/// Pull jobs from a queue and run them.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The queue (by the function that consumes it): trigger, execute,
    /// collect or report; several, comma-separated, are worked on at once
    /// (e.g. `trigger,collect,report`: one pod, one metrics port). With
    /// --once or --max-jobs the limit applies to each queue.
    #[arg(long, default_value = "execute")]
    pub queue: String,
    /// Take at most one job, waiting up to --wait for it, then exit.
    #[arg(long)]
    pub once: bool,
    /// Exit after this many jobs.
    #[arg(long)]
    pub max_jobs: Option<u64>,
    /// Seconds one receive waits for a job (SQS long polls up to 20).
    #[arg(long, default_value_t = 20)]
    pub wait: u64,
    /// Backend set: local (the state directory's queue), aws or gcp.
    #[arg(long, env = BACKEND_ENV, default_value = "local")]
    pub backend: String,
    /// State directory (the local backend's state; scratch space for all).
    #[arg(long, env = "TESTEXEC_STATE_DIR", default_value = ".testexec")]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub metrics: super::metrics::MetricsArgs,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(work(args))
}

async fn work(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let mut queues = Vec::new();
    for name in args.queue.split(',').map(str::trim) {
        let queue = QueueName::from_function(name).with_context(|| {
            format!("--queue `{name}`: expected trigger, execute, collect or report")
        })?;
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    if !(1..=20).contains(&args.wait) {
        anyhow::bail!("--wait {}: expected 1 to 20 seconds", args.wait);
    }
    let kind = BackendKind::parse(&args.backend)?;
    let backends = BackendSet::open(kind, &args.state_dir, |k| std::env::var(k).ok()).await?;
    let limits = WorkLimits {
        max_jobs: if args.once { Some(1) } else { args.max_jobs },
        exit_when_empty: args.once,
        wait: Duration::from_secs(args.wait),
    };
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        super::serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let metrics = args.metrics.start(&backends.pipeline, stop.clone()).await?;
    let workers: Vec<_> = queues
        .iter()
        .map(|&queue| {
            let pipeline = backends.pipeline.clone();
            let stop = stop.clone();
            tokio::spawn(async move { (queue, pipeline.work(queue, limits, stop).await) })
        })
        .collect();
    for worker in workers {
        let (queue, taken) = worker.await?;
        tracing::info!(queue = queue.as_str(), taken, "worker done");
        eprintln!(
            "testexec worker: {taken} job(s) taken from the {} queue",
            queue.function()
        );
    }
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    Ok(ExitCode::SUCCESS)
}
