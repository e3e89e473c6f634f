//! `testexec serve`: the container host. Wiring only: the backends come
//! from `hosts::backend_set`, the routes from `hosts::http` (the same
//! Router the Lambda host answers API Gateway with), the workers from the
//! library's pipeline.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use testexec::app::intake::{SourcePolicy, check_local_name};
use testexec::hosts::backend_set::{BACKEND_ENV, BackendKind, BackendSet};
use testexec::hosts::http::{self, FrontDoor, FrontDoorConfig, ListenOptions};
use tokio::sync::watch;

use super::state_dir_for;

/// Serve the front door (GitHub webhooks, the runs API, the pages) and run
/// the pipeline's workers.
///
/// Runs start only in the repositories given here, by name: PATH (named
/// after its directory) and each `--repo NAME=DIR`. Writes need
/// `Authorization: Bearer $TESTEXEC_API_TOKEN`; without a token they are
/// taken from loopback only. See docs/http.md.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The repository runs start in when a request names none [default:
    /// `.` with the local backend; none with a cloud backend].
    pub path: Option<PathBuf>,
    /// More repositories requests may name: `NAME=DIR` (repeatable).
    #[arg(long = "repo", value_name = "NAME=DIR")]
    pub repos: Vec<String>,
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to bind. Loopback unless told otherwise; binding another
    /// address needs TESTEXEC_API_TOKEN (or _FILE) for writes to work.
    #[arg(long, env = "TESTEXEC_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Backend set: local (embedded, in the state directory), aws or gcp.
    #[arg(long, env = BACKEND_ENV, default_value = "local")]
    pub backend: String,
    /// Shard workers in this process (0: none, e.g. when `testexec worker`
    /// processes or push queues run them) [default: number of CPUs].
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Accept `POST /queues/{queue}` from a push queue (Pub/Sub push,
    /// Event Grid, Dapr). With the gcp backend the bodies are Pub/Sub push
    /// envelopes, and with TESTEXEC_GCP_PUSH_AUDIENCE and
    /// TESTEXEC_GCP_PUSH_SERVICE_ACCOUNT set only pushes carrying that
    /// subscription's Google ID token get in.
    #[arg(long, env = "TESTEXEC_QUEUE_PUSH")]
    pub queue_push: bool,
    /// State directory [default: PATH/.testexec].
    #[arg(long, env = "TESTEXEC_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub metrics: super::metrics::MetricsArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Shard workers default to one per core.
    let jobs = args.jobs.unwrap_or(cores);
    // The front door answers on one runtime and the pipeline works on
    // another. On one shared runtime a request that arrives while both
    // worker threads are busy planning, collecting or rendering waits in the
    // same task queues as that work; apart, the kernel time-slices the two
    // sets of threads and an answer waits for a core at most, not for a
    // background step to yield (docs/benchmarks.md, "serve intake"). The
    // pipeline's threads are deliberately not given a lower CPU priority:
    // they share the queue's lock with the front door, and a preempted
    // low-priority holder made the p99 twice as long (same section).
    let front = tokio::runtime::Builder::new_multi_thread()
        .thread_name("testexec-http")
        .enable_all()
        .build()?;
    // One core fewer than the machine has (at least one): the workers' own
    // CPU work never takes every core from the front door. Test commands
    // are processes of their own and are not bounded by this.
    let work = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.saturating_sub(1).max(1))
        .thread_name("testexec-work")
        .enable_all()
        .build()?;
    let served = front.block_on(serve(args, jobs, work.handle().clone()));
    // `serve` already gave the workers their grace; what still runs now is
    // cut off, and its messages come back to the queue.
    work.shutdown_timeout(Duration::from_secs(1));
    served
}

/// The repositories requests may name: PATH by its directory name, then
/// each `--repo`, then `TESTEXEC_LOCAL_REPOS`.
fn local_repos(
    path: Option<&std::path::Path>,
    args: &ServeArgs,
    from_env: BTreeMap<String, PathBuf>,
) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut repos = from_env;
    let mut add = |name: &str, dir: &std::path::Path| -> anyhow::Result<()> {
        check_local_name(name)?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("repository `{name}`: {}", dir.display()))?;
        repos.insert(name.to_string(), dir);
        Ok(())
    };
    if let Some(path) = path {
        let root = path
            .canonicalize()
            .with_context(|| format!("repository {}", path.display()))?;
        let root_name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repo".into());
        add(&root_name, &root)?;
    }
    for pair in &args.repos {
        let (name, dir) = pair
            .split_once('=')
            .with_context(|| format!("--repo `{pair}` is not NAME=DIR"))?;
        add(name.trim(), std::path::Path::new(dir.trim()))?;
    }
    Ok(repos)
}

async fn serve(
    args: ServeArgs,
    jobs: usize,
    work: tokio::runtime::Handle,
) -> anyhow::Result<ExitCode> {
    let lookup = |k: &str| std::env::var(k).ok();
    let kind = BackendKind::parse(&args.backend)?;
    let path = match (&args.path, kind) {
        (Some(path), _) => Some(path.clone()),
        (None, BackendKind::Local) => Some(PathBuf::from(".")),
        (None, _) => None,
    };
    let state_dir = match (&args.state_dir, &path) {
        (Some(dir), _) => dir.clone(),
        (None, Some(path)) => state_dir_for(path, None),
        (None, None) => std::env::temp_dir().join("testexec"),
    };
    let mut door = FrontDoorConfig::from_lookup(lookup)?;
    door.sources = SourcePolicy {
        local_repos: local_repos(
            path.as_deref(),
            &args,
            std::mem::take(&mut door.sources.local_repos),
        )?,
        ..door.sources
    };
    door.queue_push = if args.queue_push {
        Some(kind.queue_push(lookup)?)
    } else {
        None
    };
    if !args.bind.is_loopback() && door.api_token.is_none() {
        eprintln!(
            "testexec: warning: listening on {} without TESTEXEC_API_TOKEN: API writes are refused (401) for every caller but loopback",
            args.bind
        );
    }
    let backends = BackendSet::open(kind, &state_dir, lookup).await?;
    if let Some(local) = &backends.local {
        // Jobs a crashed earlier serve had in hand come back now instead of
        // after the visibility timeout.
        let released = local.queue.release_orphans()?;
        if released > 0 {
            eprintln!(
                "testexec: {released} job(s) left in flight by an earlier process were queued again"
            );
        }
    }
    let pipeline = backends.pipeline;
    let (stop_tx, stop) = watch::channel(false);
    // The recorder first: the workers and the first sweep (at once) record
    // into it, and what they record before it exists is lost.
    let metrics = args.metrics.start(&pipeline, stop.clone()).await?;
    let workers = if jobs > 0 {
        // Spawned from inside the background runtime, so they run there.
        let _background = work.enter();
        pipeline.spawn_workers_until(jobs, stop.clone())
    } else {
        Vec::new()
    };
    let sweeper = work.spawn(sweep_every(pipeline.clone(), Duration::from_secs(60), stop));

    let router = http::router(FrontDoor::new(
        pipeline.ports.clone(),
        pipeline.settings.clone(),
        door,
    ));
    let fd_limit = http::raise_fd_limit();
    let listener = http::bind(SocketAddr::new(args.bind, args.port)).await?;
    // Handlers first: a signal right after the line below must be handled.
    let shutdown = shutdown_signal();
    eprintln!(
        "testexec: serving on http://{} ({} backend, state in {}, open-files limit {})",
        listener.local_addr()?,
        kind.name(),
        state_dir.display(),
        fd_limit.map_or_else(|| "unknown".into(), |n| n.to_string()),
    );
    let options = ListenOptions::default();
    http::serve(listener, router, options, shutdown).await?;

    // Workers finish the job in hand; one still running when the grace
    // ends is cut off and its message comes back to the queue.
    let _ = stop_tx.send(true);
    let finish = async {
        for worker in workers {
            let _ = worker.await;
        }
    };
    if tokio::time::timeout(options.shutdown_grace, finish)
        .await
        .is_err()
    {
        eprintln!("testexec: shutdown grace over; unfinished jobs return to the queue");
    }
    sweeper.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    Ok(ExitCode::SUCCESS)
}

/// No run hangs forever, even if a worker died. The first sweep runs at
/// start: it finishes what an earlier process left overdue and sets the
/// run gauges (`testexec_runs_active`, `_overdue`) from the first scrape.
async fn sweep_every(
    pipeline: testexec::app::pipeline::Pipeline,
    every: Duration,
    stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        ticks.tick().await;
        if let Err(e) =
            testexec::app::handlers::sweep::sweep(&pipeline.ports, &pipeline.settings).await
        {
            tracing::warn!(error = %e, "sweep failed");
        }
    }
}

/// Ctrl-C or SIGTERM (what Cloud Run, Container Apps and Kubernetes send).
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let name = shutdown_signal_name();
    async move {
        name.await;
    }
}

/// [`shutdown_signal`], naming the signal that arrived. The handlers are
/// installed when this is called, not when the future is first polled: a
/// signal sent right after the "serving on" line must not kill the process
/// with the default action.
pub(crate) fn shutdown_signal_name() -> impl std::future::Future<Output = &'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                // No handler could be installed: never resolve, the default
                // action still ends the process.
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(interrupt) => "SIGINT",
            () = wait(terminate) => "SIGTERM",
        }
    }
}
