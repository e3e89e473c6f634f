//! `testexec run`: the whole pipeline on this machine, one command.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use testexec::app::handlers::trigger::TriggerOutcome;
use testexec::app::messages::Execution;
use testexec::app::messages::RunRequest;
use testexec::app::pipeline::{LocalPipeline, PipelineEvent};
use testexec::app::ports::NoNotifier;
use testexec::domain::model::{Run, RunStatus, ShardId};

use super::{TESTS_FAILED, state_dir_for};

/// Run a suite locally: plan, shard, execute in parallel, collect, report.
///
/// Exit status: 0 all tests passed, 1 tests failed, 2 usage or
/// infrastructure error (including errored shards).
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Repository root holding testexec.toml.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Suite to run (required when the manifest has several).
    #[arg(long, short)]
    pub suite: Option<String>,
    /// Number of shards (overrides the manifest).
    #[arg(long)]
    pub shards: Option<u32>,
    /// Shards executed at the same time [default: number of CPUs].
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Where runs, logs and reports are kept [default: PATH/.testexec].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Print the run as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !args
        .path
        .join(testexec::domain::manifest::MANIFEST_FILE)
        .is_file()
    {
        bail!(
            "no {} in {} (hint: pass the repository root, e.g. `testexec run examples/demo`)",
            testexec::domain::manifest::MANIFEST_FILE,
            args.path.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> anyhow::Result<ExitCode> {
    let state_dir = state_dir_for(&args.path, args.state_dir.as_deref());
    let pipeline = LocalPipeline::open(&state_dir, Arc::new(NoNotifier))
        .with_context(|| format!("opening the state in {}", state_dir.display()))?;
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    // Installed before any process starts: Ctrl-C from here on cancels the
    // run cleanly instead of killing testexec and orphaning its children.
    let signal = super::serve::shutdown_signal_name();
    let mut events = pipeline.subscribe();
    let mut workers = pipeline.spawn_workers(jobs);

    let mut request = RunRequest::local(&args.path);
    request.suite = args.suite.clone();
    request.shards = args.shards;
    let TriggerOutcome::Started { run, plan } = pipeline.trigger(request).await? else {
        bail!("the run was not started (duplicate request)");
    };
    let progress = Progress::new(
        &run,
        plan.shards
            .iter()
            .map(|s| (s.index, s.files().len(), s.estimated_secs)),
    );
    let run_id = run.id;
    let waiter = {
        let pipeline = pipeline.clone();
        tokio::spawn(async move { pipeline.wait_for(run_id).await })
    };
    tokio::pin!(waiter);
    tokio::pin!(signal);
    let mut interrupted = None;
    let finished = loop {
        tokio::select! {
            done = &mut waiter => break done??,
            event = events.recv() => if let Ok(event) = event { progress.on(&event) },
            name = &mut signal => {
                interrupted = Some(name);
                break cancel(&pipeline, run_id, workers.drain(..), name).await?;
            }
        }
    };
    progress.finish();
    for w in workers {
        w.abort();
    }

    let shards = pipeline.ports.store.list_shards(run_id).await?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "run": finished, "shards": shards, "plan": plan })
            )?
        )?;
    } else {
        let mut links = Vec::new();
        for file in testexec::app::handlers::report::REPORT_FILES {
            let key = testexec::app::messages::keys::report(run_id, file);
            links.push(pipeline.ports.blobs.link(&key).await?.unwrap_or(key));
        }
        print_summary(&finished, &shards, &links)?;
    }
    if let Some(name) = interrupted {
        // The shell's convention: 128 + the signal's number.
        return Ok(ExitCode::from(if name == "SIGTERM" { 143 } else { 130 }));
    }
    Ok(match finished.status {
        RunStatus::Passed => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::from(TESTS_FAILED),
        _ => super::exit_usage_or_infra(),
    })
}

/// Ctrl-C or SIGTERM mid-run: stop the workers (dropping a running shard
/// kills its process group and any daemon it started, and removes its
/// scratch directory), then end the run as errored with the reason, with
/// its report, so it does not stay `running` until its deadline.
async fn cancel(
    pipeline: &LocalPipeline,
    run_id: testexec::domain::model::RunId,
    workers: impl Iterator<Item = tokio::task::JoinHandle<()>>,
    signal: &str,
) -> anyhow::Result<Run> {
    eprintln!("testexec: {signal} received; stopping the run's processes");
    for worker in workers {
        worker.abort();
        // Wait for the abort to land, so every guard has run.
        let _ = worker.await;
    }
    let reason = format!("cancelled: testexec run received {signal}");
    testexec::app::handlers::sweep::cancel(&pipeline.ports, &pipeline.settings, run_id, &reason)
        .await?;
    pipeline
        .ports
        .store
        .get_run(run_id)
        .await?
        .context("the cancelled run is gone from the store")
}

/// One bar per shard on a terminal; plain lines otherwise (CI logs).
struct Progress {
    multi: Option<MultiProgress>,
    bars: BTreeMap<u32, ProgressBar>,
    shard_count: u32,
}

impl Progress {
    fn new(run: &Run, shards: impl Iterator<Item = (u32, usize, f64)>) -> Self {
        let tty = std::io::stderr().is_terminal();
        eprintln!(
            "testexec: run {} — suite `{}`, {} shards",
            run.id, run.suite, run.shard_count
        );
        let multi = tty.then(MultiProgress::new);
        let mut bars = BTreeMap::new();
        if let Some(multi) = &multi {
            let style = ProgressStyle::with_template(
                "{spinner} shard {prefix:>3} [{elapsed_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for (index, files, estimate) in shards {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(index.to_string());
                bar.set_message(format!("queued · {files} files · ~{estimate:.0}s planned"));
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(index, bar);
            }
        }
        Self {
            multi,
            bars,
            shard_count: run.shard_count,
        }
    }

    fn say(&self, shard: &ShardId, text: String) {
        match self.bars.get(&shard.index) {
            Some(bar) => bar.set_message(text),
            None => eprintln!(
                "testexec: shard {}/{}: {text}",
                shard.index, self.shard_count
            ),
        }
    }

    fn on(&self, event: &PipelineEvent) {
        match event {
            PipelineEvent::ShardStarted { shard, attempt } => {
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                self.say(shard, format!("running{again}"));
            }
            PipelineEvent::ShardExecuted {
                shard, execution, ..
            } => match execution {
                Execution::Completed { exit_code } => {
                    self.say(shard, format!("ran (exit {exit_code}), collecting"))
                }
                Execution::Errored { reason, .. } => self.say(shard, format!("errored: {reason}")),
            },
            PipelineEvent::ShardCollected { shard, outcome } => {
                let text = match outcome {
                    testexec::app::handlers::collect::CollectOutcome::Applied {
                        status, ..
                    } => {
                        format!("{status}")
                    }
                    testexec::app::handlers::collect::CollectOutcome::Duplicate { .. } => {
                        "duplicate result ignored".into()
                    }
                };
                match self.bars.get(&shard.index) {
                    Some(bar) => bar.finish_with_message(text),
                    None => eprintln!(
                        "testexec: shard {}/{}: {text}",
                        shard.index, self.shard_count
                    ),
                }
            }
            PipelineEvent::RunReported { .. } => {}
            PipelineEvent::HandlerFailed { queue, error } => {
                let line = format!(
                    "testexec: {} handler failed (will retry): {error}",
                    queue.as_str()
                );
                match &self.multi {
                    Some(multi) => {
                        let _ = multi.println(line);
                    }
                    None => eprintln!("{line}"),
                }
            }
        }
    }

    fn finish(&self) {
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.finish();
            }
        }
    }
}

fn print_summary(
    run: &Run,
    shards: &[testexec::domain::model::ShardRecord],
    links: &[String],
) -> std::io::Result<()> {
    outln!()?;
    outln!(
        "{:<7} {:<9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
        "shard",
        "status",
        "tests",
        "passed",
        "failed",
        "skipped",
        "flaky",
        "seconds"
    )?;
    for s in shards {
        let secs = match (s.started_ms, s.finished_ms) {
            (Some(a), Some(b)) => format!("{:.1}", b.saturating_sub(a) as f64 / 1000.0),
            _ => "-".into(),
        };
        outln!(
            "{:<7} {:<9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
            s.id.index,
            s.status.as_str(),
            s.counts.tests,
            s.counts.passed,
            s.counts.failed + s.counts.errors,
            s.counts.skipped,
            s.counts.flaky,
            secs
        )?;
    }
    let c = &run.counts;
    let wall = run
        .finished_ms
        .unwrap_or(run.created_ms)
        .saturating_sub(run.created_ms) as f64
        / 1000.0;
    outln!(
        "{:<7} {:<9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9.1}",
        "total",
        run.status.as_str(),
        c.tests,
        c.passed,
        c.failed + c.errors,
        c.skipped,
        c.flaky,
        wall
    )?;
    if let Some(error) = &run.error {
        outln!("\nerrored:\n{error}")?;
    }
    outln!()?;
    for (n, link) in links.iter().enumerate() {
        outln!("{} {link}", if n == 0 { "report:" } else { "       " })?;
    }
    outln!(
        "result: {} — {} passed · {} failed · {} skipped · {} flaky",
        run.status,
        c.passed + c.flaky,
        c.failed + c.errors,
        c.skipped,
        c.flaky
    )?;
    Ok(())
}
