//! The reads: the runs API (`GET /runs`, `GET /runs/{id}`), the runs page,
//! the report files and shard logs, and the answers for unknown routes.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, PreEscaped, html};
use serde_json::json;

use super::ApiError;
use super::state::FrontDoor;
use crate::app::messages::keys;
use crate::app::ports::content_type;
use crate::app::run_list::{DEFAULT_PAGE, MAX_PAGE, MAX_SCAN, RunPage, RunQuery};
use crate::domain::history::{MAX_BRANCH_BYTES, branch_name};
use crate::domain::model::{Origin, RunId, RunStatus, ShardId};
use crate::domain::report::human_duration;

fn parse_id(id: &str) -> Result<RunId, ApiError> {
    id.parse()
        .map_err(|e: crate::errors::IdError| ApiError::new(400, e.to_string()))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, e.to_string())
}

/// `GET /runs`: one page of the run list as JSON, `{"runs", "next",
/// "truncated"}`; `next` is the `before` of the next (older) page.
pub(crate) async fn list_runs(
    State(door): State<FrontDoor>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<axum::Json<RunPage>, ApiError> {
    Ok(axum::Json(runs_of(&door, query).await?.1))
}

/// The page of runs a request's query asks for, and the query.
async fn runs_of(
    door: &FrontDoor,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<(RunQuery, RunPage), ApiError> {
    let query = run_query(query)?;
    let page = door
        .ports
        .store
        .list_runs_page(&query)
        .await
        .map_err(internal)?;
    Ok((query, page))
}

pub(crate) async fn get_run(
    State(door): State<FrontDoor>,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let store = &door.ports.store;
    let Some(run) = store.get_run(id).await.map_err(internal)? else {
        return Err(ApiError::new(
            404,
            format!(
                "run {id} not found (a run accepted moments ago appears once the trigger has planned it)"
            ),
        ));
    };
    let shards = store.list_shards(id).await.map_err(internal)?;
    let report =
        (run.status.is_final() && run.shard_count > 0).then(|| format!("/runs/{id}/report"));
    Ok(axum::Json(
        json!({ "run": run, "shards": shards, "report": report }),
    ))
}

pub(crate) async fn report_page(
    door: State<FrontDoor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    report_file(door, Path((id, "index.html".to_string()))).await
}

pub(crate) async fn report_file(
    State(door): State<FrontDoor>,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let content_type = match file.as_str() {
        "index.html" => content_type::HTML,
        "report.json" => content_type::JSON,
        "summary.md" => content_type::MARKDOWN,
        "junit.xml" => content_type::XML,
        _ => {
            return Err(ApiError::new(
                404,
                format!(
                    "no report file `{}`; there are index.html, report.json, summary.md, junit.xml",
                    file.chars().take(100).collect::<String>()
                ),
            ));
        }
    };
    let bytes = door
        .ports
        .blobs
        .get(&keys::report(id, &file))
        .await
        .map_err(|e| {
            ApiError::new(
                404,
                format!("{e} (the report is written when the run finishes)"),
            )
        })?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// The log of the execution that was applied for a shard.
pub(crate) async fn shard_log(
    State(door): State<FrontDoor>,
    Path((id, index)): Path<(String, u32)>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let shards = door.ports.store.list_shards(id).await.map_err(internal)?;
    let Some(attempt) = shards
        .iter()
        .find(|s| s.id.index == index)
        .and_then(|s| s.attempt)
    else {
        return Err(ApiError::new(
            404,
            format!("shard {index} of run {id} has no log yet"),
        ));
    };
    let bytes = door
        .ports
        .blobs
        .get(&keys::log(ShardId::new(id, index), attempt))
        .await
        .map_err(|e| ApiError::new(404, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, content_type::TEXT)], bytes).into_response())
}

/// The query string of a page of the run list, taken apart with a 400
/// naming the parameter for anything wrong. Empty values count as absent
/// (what a link that clears a filter sends).
fn run_query(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<RunQuery, ApiError> {
    let mut params = Params::of(query)?;
    let status = match params.take("status", 20)? {
        None => None,
        Some(name) => Some(RunStatus::from_name(&name).ok_or_else(|| {
            let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::new(
                400,
                format!(
                    "status: `{name}` is not a run status; use one of {}",
                    all.join(", ")
                ),
            )
        })?),
    };
    let branch = params.take("branch", MAX_BRANCH_BYTES)?;
    let suite = params.take("suite", MAX_NAME_BYTES)?;
    let before = match params.take("before", 40)? {
        None => None,
        Some(id) => Some(id.parse::<RunId>().map_err(|_| {
            ApiError::new(
                400,
                format!("before: `{id}` is not a run id; pass the `next` of the previous page"),
            )
        })?),
    };
    let limit = match params.take("limit", 10)? {
        None => DEFAULT_PAGE,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    format!("limit: `{n}` must be a whole number from 1 to {MAX_PAGE}"),
                )
            })?,
    };
    params.finish("status, branch, suite, before, limit")?;
    Ok(RunQuery {
        status,
        branch,
        suite,
        before,
        limit,
    })
}

/// Longest suite name or repository a query may name (manifest suite names
/// are at most 64 bytes; `owner/name` at most 140).
pub(crate) const MAX_NAME_BYTES: usize = 200;

/// A request's query parameters, taken one by one.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn of(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ) -> Result<Params, ApiError> {
        match query {
            Ok(Query(pairs)) => Ok(Params(pairs)),
            Err(e) => Err(ApiError::new(
                400,
                format!("the query string cannot be read ({e}); encode values with %XX"),
            )),
        }
    }

    /// The value of `name`, if given and not empty: at most `max_bytes`,
    /// no control characters, given once.
    pub(crate) fn take(
        &mut self,
        name: &str,
        max_bytes: usize,
    ) -> Result<Option<String>, ApiError> {
        let mut found: Vec<String> = Vec::new();
        self.0.retain(|(k, v)| {
            if k == name {
                found.push(v.clone());
                false
            } else {
                true
            }
        });
        if found.len() > 1 {
            return Err(ApiError::new(
                400,
                format!("{name}: given {} times; give it once", found.len()),
            ));
        }
        let Some(value) = found.pop().filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if value.len() > max_bytes || value.chars().any(char::is_control) {
            return Err(ApiError::new(
                400,
                format!(
                    "{name}: at most {max_bytes} bytes without control characters (got {} bytes)",
                    value.len()
                ),
            ));
        }
        Ok(Some(value))
    }

    /// Fails on a parameter nobody took: a misspelt filter must not
    /// silently show everything.
    pub(crate) fn finish(self, known: &str) -> Result<(), ApiError> {
        match self.0.first() {
            None => Ok(()),
            Some((k, _)) => Err(ApiError::new(
                400,
                format!(
                    "unknown query parameter `{}`; this page takes {known}",
                    k.chars().take(60).collect::<String>()
                ),
            )),
        }
    }
}

/// Everything but RFC 3986's unreserved characters: links stay readable
/// (`tests.test_api::test_x` keeps its dots and underscores) and a value
/// can hold `&`, `=`, `#`, `/` or spaces.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A query value in a link.
pub(crate) fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// The link to the run list with `query`'s filters, starting at `before`.
fn runs_href(path: &str, query: &RunQuery, before: Option<RunId>) -> String {
    let mut parts = Vec::new();
    if let Some(s) = query.status {
        parts.push(format!("status={}", s.as_str()));
    }
    if let Some(b) = &query.branch {
        parts.push(format!("branch={}", encode(b)));
    }
    if let Some(s) = &query.suite {
        parts.push(format!("suite={}", encode(s)));
    }
    if let Some(b) = before {
        parts.push(format!("before={b}"));
    }
    if query.limit != DEFAULT_PAGE {
        parts.push(format!("limit={}", query.limit));
    }
    if parts.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

/// Seconds between two clock readings in milliseconds.
fn span_secs(from_ms: u64, to_ms: u64) -> f64 {
    to_ms.saturating_sub(from_ms) as f64 / 1000.0
}

/// `2026-11-27 11:06:04 UTC` for a page, from the RFC 3339 form.
pub(crate) fn when(ms: u64) -> (String, String) {
    let iso = crate::adapters::github::time::rfc3339(ms);
    let shown = iso.replacen('T', " ", 1).replace('Z', " UTC");
    (iso, shown)
}

/// How often a page showing unfinished runs reloads itself, in seconds.
const REFRESH_SECS: u32 = 5;

const PAGE_STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}tr[data-status=passed] .st{color:#1a7f37}tr[data-status=failed] .st,tr[data-status=errored] .st{color:#cf222e}tr[data-status=running] .st,tr[data-status=reporting] .st{color:#9a6700}.muted{color:#777;font-size:90%}nav a{margin-right:.6em}nav a.on{font-weight:bold;text-decoration:none;color:inherit}code{font-size:90%}";

/// The `<head>` of the host's own pages.
pub(crate) fn page_head(title: &str, style: &str) -> maud::Markup {
    page_head_refreshing(title, style, None)
}

/// [`page_head`], reloading every `refresh` seconds when set: a page of
/// running runs follows them without a script (the CSP allows no fetch).
fn page_head_refreshing(title: &str, style: &str, refresh: Option<u32>) -> maud::Markup {
    html! {
        head {
            meta charset="utf-8";
            @if let Some(secs) = refresh {
                meta http-equiv="refresh" content=(secs);
            }
            // No /favicon.ico request (a 404 and a console error).
            (PreEscaped(crate::domain::report::html::ICON_LINK))
            title { (title) }
            style { (PreEscaped(style)) }
        }
    }
}

/// What started a run, with the GitHub audit trail (who, which delivery).
fn trigger_cell(origin: &Origin) -> maud::Markup {
    html! {
        span data-testid="run-trigger" { (origin.trigger()) }
        @if let Origin::GitHub { sender, delivery, .. } = origin {
            @if let Some(login) = sender {
                " by " span data-testid="run-sender" { "@" (login) }
            }
            br;
            span class="muted" title="X-GitHub-Delivery" { "delivery " code data-testid="run-delivery" { (delivery) } }
        }
    }
}

/// The runs page: newest first, filtered and paged like `GET /runs`.
/// Every value goes through maud's escaping.
pub(crate) async fn runs_page(
    State(door): State<FrontDoor>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Html<String>, ApiError> {
    let (query, page) = runs_of(&door, query).await?;
    let now = door.ports.clock.now_ms();
    let refresh = page
        .runs
        .iter()
        .any(|r| !r.status.is_final())
        .then_some(REFRESH_SECS);
    let filtered = query.status.is_some() || query.branch.is_some() || query.suite.is_some();
    let with = |change: &dyn Fn(&mut RunQuery)| {
        let mut q = query.clone();
        change(&mut q);
        runs_href("/", &q, None)
    };
    let page_html = html! {
        (DOCTYPE)
        html lang="en" {
            (page_head_refreshing("testexec runs", PAGE_STYLE, refresh))
            body {
                h1 { "testexec runs" }
                p {
                    a href="/tests" { "tests dashboard" } " · "
                    a href=(runs_href("/runs", &query, query.before)) { "JSON" }
                    @if refresh.is_some() {
                        " · " span class="muted" data-testid="auto-refresh" { "refreshing every " (REFRESH_SECS) " s while runs are running" }
                    }
                }
                nav data-testid="status-filter" {
                    "status: "
                    a href=(with(&|q| q.status = None)) class=[query.status.is_none().then_some("on")] { "all" }
                    @for st in RunStatus::ALL {
                        a href=(with(&|q| q.status = Some(st))) class=[(query.status == Some(st)).then_some("on")] { (st.as_str()) }
                    }
                }
                @if filtered {
                    p data-testid="active-filters" {
                        @if let Some(b) = &query.branch {
                            "branch " code { (b) } " " a href=(with(&|q| q.branch = None)) title="remove this filter" { "×" } " · "
                        }
                        @if let Some(s) = &query.suite {
                            "suite " code { (s) } " " a href=(with(&|q| q.suite = None)) title="remove this filter" { "×" } " · "
                        }
                        a href="/" { "clear filters" }
                    }
                }
                p { span data-testid="runs-shown" { (page.runs.len()) } " runs" @if query.before.is_some() { " (older page)" } }
                table {
                    thead { tr { th { "run" } th { "status" } th { "started" } th { "duration" } th { "trigger" } th { "commit" } th { "branch" } th { "suite" } th { "repo" } th { "tests" } th { "failed" } th { "flaky" } th { "shards" } } }
                    tbody {
                        @for r in &page.runs {
                            @let (iso, shown) = when(r.created_ms);
                            tr data-testid="run-row" data-status=(r.status.as_str()) data-run=(r.id) {
                                td {
                                    @if r.status.is_final() && r.shard_count > 0 {
                                        a href={ "/runs/" (r.id) "/report" } { (r.id) }
                                    } @else {
                                        a href={ "/runs/" (r.id) } { (r.id) }
                                    }
                                }
                                td title=[r.error.as_deref()] {
                                    span class="st" { (r.status.as_str()) }
                                    @if !r.status.is_final() {
                                        br;
                                        progress value=(r.shards_done) max=(r.shard_count.max(1)) {}
                                        " " span data-testid="run-progress" { (r.shards_done) "/" (r.shard_count) } " shards"
                                    }
                                }
                                td { time datetime=(iso) data-testid="run-started" { (shown) } }
                                td data-testid="run-duration" {
                                    @match r.finished_ms {
                                        Some(f) => (human_duration(span_secs(r.created_ms, f))),
                                        None if r.status.is_final() => "-",
                                        None => { (human_duration(span_secs(r.created_ms, now))) " so far" },
                                    }
                                }
                                td { (trigger_cell(&r.origin)) }
                                td data-testid="run-commit" {
                                    @if let Some(c) = &r.source.commit {
                                        code title=(c) { (c.chars().take(7).collect::<String>()) }
                                    }
                                }
                                td data-testid="run-branch" {
                                    @if let Some(git_ref) = &r.source.git_ref {
                                        @let b = branch_name(git_ref);
                                        a href=(with(&|q| q.branch = Some(b.to_string()))) title="only this branch" { (b) }
                                    }
                                }
                                td { a href=(with(&|q| q.suite = Some(r.suite.clone()))) title="only this suite" data-testid="run-suite" { (r.suite) } }
                                td { (r.source.repo) }
                                td data-testid="run-tests" { (r.counts.tests) }
                                td { (r.counts.failed + r.counts.errors) }
                                td { (r.counts.flaky) }
                                td { (r.shard_count) }
                            }
                        }
                    }
                }
                p {
                    @if query.before.is_some() {
                        a href=(runs_href("/", &query, None)) data-testid="newest" { "← newest" } " "
                    }
                    @if let Some(next) = page.next {
                        a href=(runs_href("/", &query, Some(next))) data-testid="older" { "older →" }
                    }
                    @if page.truncated {
                        span class="muted" data-testid="truncated" { "this store lists only the newest " (MAX_SCAN) " runs; older ones are not shown" }
                    }
                }
            }
        }
    };
    Ok(Html(page_html.into_string()))
}

pub(crate) async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        404,
        format!(
            "no route {method} {}; the routes are listed in docs/http.md",
            uri.path().chars().take(200).collect::<String>()
        ),
    )
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        405,
        format!(
            "{method} is not allowed on {}",
            uri.path().chars().take(200).collect::<String>()
        ),
    )
}
