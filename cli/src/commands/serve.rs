//! `testexec serve`: the local pipeline as a small HTTP service.
//!
//! POST /runs and POST /webhooks/github answer at once: the request is
//! written durably (SQLite, WAL) and handed to a trigger task; the slow work
//! (snapshot, plan, shards) happens after the answer. Requests accepted
//! before a crash are picked up again at the next start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use serde_json::json;
use testexec::adapters::github::client::GithubClient;
use testexec::adapters::github::config::GithubConfig;
use testexec::adapters::github::notifier::GithubNotifier;
use testexec::adapters::github::tarball::GithubSource;
use testexec::adapters::github::webhook::{self, WebhookAction, WebhookConfig, WebhookHeaders};
use testexec::app::handlers::trigger::RunRequest;
use testexec::app::messages::keys;
use testexec::domain::model::{Run, RunId};
use testexec::app::pipeline::LocalPipeline;
use testexec::app::ports::NoNotifier;
use testexec::domain::report::Html as Escaped;
use tokio::sync::mpsc;

use super::state_dir_for;

/// Largest request body accepted by the JSON API.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Serve the local pipeline over HTTP: a JSON API, HTML pages and a GitHub
/// webhook endpoint.
///
/// Environment: TESTEXEC_WEBHOOK_SECRET (required for /webhooks/github),
/// TESTEXEC_ALLOWED_REPOS (comma-separated owner/name), and the GitHub
/// credentials described in docs/github.md.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Repository root runs are started for when a request names no path.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Port to listen on [env: PORT, default 8080].
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to bind. Loopback by default: POST /runs starts commands.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Shards executed at the same time [default: number of CPUs].
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// State directory [default: PATH/.testexec].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Clone)]
struct AppState {
    pipeline: LocalPipeline,
    intake: Arc<Intake>,
    default_path: PathBuf,
    webhook: Arc<WebhookConfig>,
}

/// The durable inbox of accepted run requests.
struct Intake {
    db: Arc<Mutex<Connection>>,
    writes: std::sync::mpsc::Sender<IntakeWrite>,
}

/// Work for the intake writer thread.
enum IntakeWrite {
    /// A request to record, with where to send the answer.
    Accept(
        Box<RunRequest>,
        tokio::sync::oneshot::Sender<anyhow::Result<Accepted>>,
    ),
    /// What the trigger made of a recorded request. Batched with the
    /// accepts so status updates never contend with them for commits.
    State {
        run: RunId,
        state: &'static str,
        error: Option<String>,
    },
}

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 512;

/// What the intake did with a request.
enum Accepted {
    New(RunId),
    /// The delivery id was accepted before, as this run.
    Duplicate(RunId),
}

/// The JSON body of POST /runs (all optional).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartRun {
    /// Repository directory (default: the server's PATH).
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    suite: Option<String>,
    #[serde(default)]
    shards: Option<u32>,
}

impl Intake {
    fn open(path: &Path, tx: mpsc::UnboundedSender<RunRequest>) -> anyhow::Result<Self> {
        let db = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        // WAL + NORMAL: a commit survives a process crash without an fsync
        // per request (an OS crash may lose the last moments).
        db.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS requests (
                run_id TEXT PRIMARY KEY, delivery TEXT UNIQUE, body TEXT NOT NULL,
                state TEXT NOT NULL, error TEXT);",
        )?;
        let db = Arc::new(Mutex::new(db));
        let (writes, queue) = std::sync::mpsc::channel::<IntakeWrite>();
        let writer_db = db.clone();
        // One writer thread commits whatever requests are waiting in one
        // transaction (group commit): each request is still durable before
        // it is answered, but concurrent requests share the commit.
        std::thread::Builder::new()
            .name("intake-writer".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    let results = write_batch(&writer_db, &batch);
                    let accepts = batch.into_iter().filter_map(|w| match w {
                        IntakeWrite::Accept(request, reply) => Some((*request, reply)),
                        IntakeWrite::State { .. } => None,
                    });
                    for ((request, reply), result) in accepts.zip(results) {
                        if let Ok(Accepted::New(_)) = &result {
                            // The trigger task lives as long as the server.
                            let _ = tx.send(request);
                        }
                        let _ = reply.send(result);
                    }
                }
            })?;
        Ok(Self { db, writes })
    }

    /// Records the request (minting its run id) and hands it to the trigger
    /// task. A delivery id seen before is not recorded again.
    async fn accept(&self, mut request: RunRequest) -> anyhow::Result<Accepted> {
        request.run_id.get_or_insert_with(RunId::new);
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writes
            .send(IntakeWrite::Accept(Box::new(request), reply))
            .map_err(|_| anyhow::anyhow!("the intake writer stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the intake writer stopped"))?
    }

    fn set_state(&self, run: RunId, state: &'static str, error: Option<String>) {
        // Best effort: the run store is the authority once the run exists.
        let _ = self.writes.send(IntakeWrite::State { run, state, error });
    }

    fn state(&self, run: RunId) -> Option<(String, Option<String>)> {
        let db = self.db.lock().ok()?;
        db.query_row(
            "SELECT state, error FROM requests WHERE run_id = ?1",
            params![run.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .ok()
        .flatten()
    }

    fn pending(&self) -> anyhow::Result<Vec<RunRequest>> {
        let db = self
            .db
            .lock()
            .map_err(|_| anyhow::anyhow!("intake lock poisoned"))?;
        let mut stmt =
            db.prepare("SELECT body FROM requests WHERE state = 'queued' ORDER BY run_id")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(request) = serde_json::from_str(&row?) {
                out.push(request);
            }
        }
        Ok(out)
    }
}

/// Inserts a batch in one transaction; one result per request, in order.
fn write_batch(db: &Mutex<Connection>, batch: &[IntakeWrite]) -> Vec<anyhow::Result<Accepted>> {
    let accepts = batch
        .iter()
        .filter(|w| matches!(w, IntakeWrite::Accept(..)))
        .count();
    let failed =
        |e: &dyn std::fmt::Display| (0..accepts).map(|_| Err(anyhow::anyhow!("{e}"))).collect();
    let Ok(mut db) = db.lock() else {
        return failed(&"intake lock poisoned");
    };
    let tx = match db.transaction() {
        Ok(tx) => tx,
        Err(e) => return failed(&e),
    };
    let mut results = Vec::with_capacity(accepts);
    for write in batch {
        match write {
            IntakeWrite::Accept(request, _) => results.push(insert(&tx, request)),
            IntakeWrite::State { run, state, error } => {
                if let Err(e) = tx.execute(
                    "UPDATE requests SET state = ?2, error = ?3 WHERE run_id = ?1",
                    params![run.to_string(), state, error],
                ) {
                    tracing::warn!(run_id = %run, error = %e, "intake state not recorded");
                }
            }
        }
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => failed(&e),
    }
}

/// Records one request unless its delivery id was seen before.
fn insert(tx: &rusqlite::Transaction<'_>, request: &RunRequest) -> anyhow::Result<Accepted> {
    let run = request.run_id.unwrap_or_default();
    let body = serde_json::to_string(request)?;
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO requests (run_id, delivery, body, state) VALUES (?1, ?2, ?3, 'queued')",
        params![run.to_string(), request.delivery_id, body],
    )?;
    if inserted == 1 {
        return Ok(Accepted::New(run));
    }
    let earlier: String = tx.query_row(
        "SELECT run_id FROM requests WHERE delivery = ?1",
        params![request.delivery_id],
        |r| r.get(0),
    )?;
    Ok(Accepted::Duplicate(earlier.parse()?))
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

/// The pipeline, talking to GitHub when credentials are configured.
fn open_pipeline(state_dir: &Path) -> anyhow::Result<LocalPipeline> {
    let configured = [
        "TESTEXEC_GITHUB_APP_ID",
        "TESTEXEC_GITHUB_TOKEN",
        "GITHUB_TOKEN",
    ]
    .iter()
    .any(|k| std::env::var(k).is_ok_and(|v| !v.trim().is_empty()));
    if !configured {
        return Ok(LocalPipeline::open(state_dir, Arc::new(NoNotifier))?);
    }
    let client = Arc::new(GithubClient::new(GithubConfig::from_env()?)?);
    let pipeline = LocalPipeline::open(state_dir, Arc::new(GithubNotifier::new(client.clone())))?;
    Ok(pipeline.with_remote_source(Arc::new(GithubSource::new(client))))
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let state_dir = state_dir_for(&args.path, args.state_dir.as_deref());
    // Report links (also the ones posted to GitHub) point at this server's
    // pages when its public address is known.
    let public_url = ["TESTEXEC_PUBLIC_URL", "TESTEXEC_GITHUB_DETAILS_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()));
    let pipeline = open_pipeline(&state_dir)?.with_public_url(public_url);
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let _workers = pipeline.spawn_workers(jobs);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let intake = Arc::new(Intake::open(&state_dir.join("intake.sqlite3"), tx.clone())?);
    for pending in intake.pending()? {
        let _ = tx.send(pending);
    }
    let default_path = args.path.canonicalize().unwrap_or(args.path.clone());
    let state = AppState {
        pipeline: pipeline.clone(),
        intake: intake.clone(),
        default_path,
        webhook: Arc::new(WebhookConfig::from_lookup(|k| std::env::var(k).ok())),
    };

    // Trigger task: the slow half of POST /runs and of webhook deliveries.
    {
        let pipeline = pipeline.clone();
        let intake = intake.clone();
        tokio::spawn(async move {
            while let Some(request) = rx.recv().await {
                let run_id = request.run_id.unwrap_or_default();
                match pipeline.trigger(request).await {
                    Ok(_) => intake.set_state(run_id, "started", None),
                    Err(e) => {
                        tracing::warn!(run_id = %run_id, error = %e, "run could not start");
                        intake.set_state(run_id, "rejected", Some(e.to_string()));
                    }
                }
            }
        });
    }
    // Sweep: no run hangs forever, even if a worker died.
    {
        let pipeline = pipeline.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                if let Err(e) =
                    testexec::app::handlers::sweep::sweep(&pipeline.ports, &pipeline.settings).await
                {
                    tracing::warn!(error = %e, "sweep failed");
                }
            }
        });
    }

    let app = router(state);
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    eprintln!(
        "testexec: serving on http://{} (state in {})",
        listener.local_addr()?,
        state_dir.display()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page_runs))
        .route("/healthz", get(|| async { "ok" }))
        .route("/runs", get(list_runs).post(start_run))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/report", get(page_report))
        .route("/runs/{id}/report/{file}", get(report_file))
        .route("/runs/{id}/shards/{index}/log", get(shard_log))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // GitHub's own cap; the intake answers 413 itself above its limit.
        .route(
            "/webhooks/github",
            post(github_webhook).layer(DefaultBodyLimit::max(webhook::MAX_BODY_BYTES + 1)),
        )
        .with_state(state)
}

type ApiError = (StatusCode, Json<serde_json::Value>);

fn api_error(status: StatusCode, message: impl Into<String>) -> ApiError {
    (status, Json(json!({ "error": message.into() })))
}

fn parse_id(id: &str) -> Result<RunId, ApiError> {
    id.parse()
        .map_err(|e: testexec::errors::IdError| api_error(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn start_run(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let start: StartRun = if body.iter().all(u8::is_ascii_whitespace) {
        StartRun::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            api_error(
                StatusCode::BAD_REQUEST,
                format!("invalid JSON body: {e} (expected {{\"path\": \"...\", \"suite\": \"...\", \"shards\": N}}, all optional)"),
            )
        })?
    };
    let mut request = RunRequest::local(start.path.as_deref().unwrap_or(&state.default_path));
    request.suite = start.suite;
    request.shards = start.shards;
    let run = match state.intake.accept(request).await {
        Ok(Accepted::New(run) | Accepted::Duplicate(run)) => run,
        Err(e) => {
            return Err(api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("could not record the request: {e}"),
            ));
        }
    };
    let body =
        json!({ "run_id": run.to_string(), "status": "queued", "url": format!("/runs/{run}") });
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/runs/{run}"))],
        Json(body),
    )
        .into_response())
}

/// GitHub deliveries: verified, deduplicated and recorded before the answer;
/// the run starts after it (GitHub waits at most 10 s).
async fn github_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let pairs = headers.iter().filter_map(|(k, v)| {
        v.to_str()
            .ok()
            .map(|v| (k.as_str().to_string(), v.to_string()))
    });
    let headers = WebhookHeaders::from_pairs(pairs);
    let decision = match webhook::intake(&state.webhook, &headers, &body) {
        Ok(decision) => decision,
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            if e.is_unauthorized() {
                tracing::warn!(delivery = ?headers.delivery, "webhook refused: {e}");
            }
            return (status, Json(json!({ "error": e.to_string() }))).into_response();
        }
    };
    let request = match decision.into_action() {
        WebhookAction::Reply { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED);
            return (status, Json(body)).into_response();
        }
        WebhookAction::Start(request) => *request,
    };
    match state.intake.accept(request).await {
        Ok(Accepted::New(run)) => (
            StatusCode::ACCEPTED,
            Json(json!({ "run_id": run.to_string(), "status": "queued" })),
        )
            .into_response(),
        // A redelivery: answer 200 and start nothing.
        Ok(Accepted::Duplicate(run)) => (
            StatusCode::OK,
            Json(json!({ "run_id": run.to_string(), "status": "duplicate delivery" })),
        )
            .into_response(),
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("could not record the delivery: {e}"),
        )
        .into_response(),
    }
}

async fn list_runs(State(state): State<AppState>) -> Result<Json<Vec<Run>>, ApiError> {
    let runs = state
        .pipeline
        .ports
        .store
        .list_runs(100)
        .await
        .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(runs))
}

async fn get_run(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let store = &state.pipeline.ports.store;
    let internal = |e: testexec::errors::StoreError| {
        api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    };
    match store.get_run(id).await.map_err(internal)? {
        Some(run) => {
            let shards = store.list_shards(id).await.map_err(internal)?;
            let report = run.status.is_final().then(|| format!("/runs/{id}/report"));
            Ok(Json(
                json!({ "run": run, "shards": shards, "report": report }),
            ))
        }
        None => match state.intake.state(id) {
            Some((status, error)) => Ok(Json(
                json!({ "run_id": id.to_string(), "status": status, "error": error }),
            )),
            None => Err(api_error(
                StatusCode::NOT_FOUND,
                format!("run {id} not found"),
            )),
        },
    }
}

async fn page_report(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    report_file(State(state), UrlPath((id, "index.html".to_string()))).await
}

async fn report_file(
    State(state): State<AppState>,
    UrlPath((id, file)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let content_type = match file.as_str() {
        "index.html" => testexec::app::ports::content_type::HTML,
        "report.json" => testexec::app::ports::content_type::JSON,
        "summary.md" => testexec::app::ports::content_type::MARKDOWN,
        "junit.xml" => testexec::app::ports::content_type::XML,
        _ => {
            return Err(api_error(
                StatusCode::NOT_FOUND,
                format!("no report file `{file}`"),
            ));
        }
    };
    let bytes = state
        .pipeline
        .ports
        .blobs
        .get(&keys::report(id, &file))
        .await
        .map_err(|e| {
            api_error(
                StatusCode::NOT_FOUND,
                format!("{e} (the report is written when the run finishes)"),
            )
        })?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// The log of the execution that was applied for a shard.
async fn shard_log(
    State(state): State<AppState>,
    UrlPath((id, index)): UrlPath<(String, u32)>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let internal = |e: String| api_error(StatusCode::INTERNAL_SERVER_ERROR, e);
    let shards = state
        .pipeline
        .ports
        .store
        .list_shards(id)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let Some(attempt) = shards
        .iter()
        .find(|s| s.id.index == index)
        .and_then(|s| s.attempt)
    else {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            format!("shard {index} of run {id} has no log yet"),
        ));
    };
    let key = keys::log(testexec::domain::model::ShardId::new(id, index), attempt);
    let bytes = state
        .pipeline
        .ports
        .blobs
        .get(&key)
        .await
        .map_err(|e| api_error(StatusCode::NOT_FOUND, e.to_string()))?;
    Ok((
        [(header::CONTENT_TYPE, testexec::app::ports::content_type::TEXT)],
        bytes,
    )
        .into_response())
}

async fn page_runs(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let runs = state
        .pipeline
        .ports
        .store
        .list_runs(200)
        .await
        .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut rows = String::new();
    for r in &runs {
        let link = if r.status.is_final() {
            format!("<a href=\"/runs/{0}/report\">{0}</a>", r.id)
        } else {
            r.id.to_string()
        };
        rows.push_str(&format!(
            "<tr data-testid=\"run-row\" data-status=\"{status}\"><td>{link}</td><td>{status}</td><td>{suite}</td><td>{repo}</td><td data-testid=\"run-tests\">{tests}</td><td>{failed}</td><td>{flaky}</td><td>{shards}</td></tr>",
            status = r.status.as_str(),
            suite = Escaped(&r.suite),
            repo = Escaped(&r.source.repo),
            tests = r.counts.tests,
            failed = r.counts.failed + r.counts.errors,
            flaky = r.counts.flaky,
            shards = r.shard_count,
        ));
    }
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{icon}<title>testexec runs</title>\
<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}}\
tr[data-status=passed] td:nth-child(2){{color:#1a7f37}}tr[data-status=failed] td:nth-child(2),tr[data-status=errored] td:nth-child(2){{color:#cf222e}}</style></head>\
<body><h1>testexec runs</h1><p>{count} runs</p><table><thead><tr><th>run</th><th>status</th><th>suite</th><th>repo</th><th>tests</th><th>failed</th><th>flaky</th><th>shards</th></tr></thead><tbody>{rows}</tbody></table></body></html>",
        count = runs.len(),
        // No /favicon.ico request (a 404 and a console error).
        icon = testexec::domain::report::html::ICON_LINK,
    )))
}
