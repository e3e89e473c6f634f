//! The tests dashboard: `GET /tests` (a page) and `GET /api/tests` (the
//! same data as JSON). For each (repository, suite) of the recent runs:
//! the flakiest and the slowest tests with their last results and duration
//! trend, and the suite's pass rate and duration over its recent runs.
//! Classified with the policy of the scope's latest run (docs/flaky.md).
//! Each test links to its own page, `GET /test?repo=&suite=&test=` (JSON
//! at `GET /api/test`): its class, owners, a strip of its kept results and
//! its duration trend. That page reads one record (`load_history`), so it
//! works on every store, DynamoDB included.
//! A store that cannot list a suite's history (DynamoDB) shows the runs
//! part only and says why.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, html};
use serde::Serialize;

use super::ApiError;
use super::pages::{MAX_NAME_BYTES, Params, encode, page_head};
use super::state::FrontDoor;
use crate::app::handlers::history::load_context;
use crate::domain::history::HistoryScope;
use crate::domain::history::summary::{TestSummary, sort_flakiest, sort_slowest};
use crate::domain::history::triage::QuarantineReason;
use crate::domain::model::{Outcome, Run, RunId, RunStatus};
use crate::errors::StoreError;

/// Recent runs the dashboard reads to find suites and trends.
const RUNS_READ: usize = 500;
/// Suites shown, newest activity first.
const MAX_SCOPES: usize = 20;
/// Records read per suite.
const MAX_TESTS: usize = 20_000;
/// Rows per table.
const FLAKIEST: usize = 50;
const SLOWEST: usize = 20;
/// Runs in a suite's trend.
const TREND_RUNS: usize = 30;

#[derive(Debug, Serialize)]
pub(crate) struct SuiteView {
    repo: String,
    suite: String,
    /// Tests with history, or `None` when the store cannot list them.
    tests: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unavailable: Option<String>,
    flakiest: Vec<TestSummary>,
    slowest: Vec<TestSummary>,
    /// Finished runs of the suite, newest first.
    runs: Vec<RunPoint>,
    /// Passed runs over finished runs in `runs`.
    pass_rate: Option<f64>,
}

#[derive(Debug, Serialize)]
struct RunPoint {
    id: String,
    status: RunStatus,
    tests: u64,
    failed: u64,
    secs: Option<f64>,
}

pub(crate) async fn overview(door: &FrontDoor) -> Result<Vec<SuiteView>, ApiError> {
    let runs = door
        .ports
        .store
        .list_runs(RUNS_READ)
        .await
        .map_err(|e| ApiError::new(500, e.to_string()))?;
    // Newest run first, so the first run seen of a scope is its latest.
    let mut scopes: Vec<(HistoryScope, Vec<&Run>)> = Vec::new();
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    for run in &runs {
        let key = (run.source.repo.clone(), run.suite.clone());
        let i = *index.entry(key).or_insert_with(|| {
            scopes.push((HistoryScope::new(&run.source.repo, &run.suite), Vec::new()));
            scopes.len() - 1
        });
        scopes[i].1.push(run);
    }
    let now = door.ports.clock.now_ms();
    let mut out = Vec::new();
    for (scope, runs) in scopes.into_iter().take(MAX_SCOPES) {
        let policy = load_context(&door.ports, runs[0].id)
            .await
            .map(|c| c.policy)
            .unwrap_or_default();
        let listed = door.ports.store.list_history(&scope, MAX_TESTS, now).await;
        let (tests, unavailable, flakiest, slowest) = match listed {
            Ok(records) => {
                let all: Vec<TestSummary> = records
                    .iter()
                    .map(|h| TestSummary::of(h, &policy))
                    .collect();
                let mut flakiest: Vec<TestSummary> =
                    all.iter().filter(|t| t.notable()).cloned().collect();
                sort_flakiest(&mut flakiest);
                flakiest.truncate(FLAKIEST);
                let mut slowest = all.clone();
                sort_slowest(&mut slowest);
                slowest.truncate(SLOWEST);
                (Some(all.len()), None, flakiest, slowest)
            }
            Err(e @ StoreError::Unsupported { .. }) => {
                (None, Some(e.to_string()), Vec::new(), Vec::new())
            }
            Err(e) => return Err(ApiError::new(500, e.to_string())),
        };
        let points: Vec<RunPoint> = runs
            .iter()
            .filter(|r| r.status.is_final())
            .take(TREND_RUNS)
            .map(|r| RunPoint {
                id: r.id.to_string(),
                status: r.status,
                tests: r.counts.tests,
                failed: r.counts.failed + r.counts.errors,
                secs: r
                    .finished_ms
                    .map(|f| f.saturating_sub(r.created_ms) as f64 / 1000.0),
            })
            .collect();
        let passed = points
            .iter()
            .filter(|p| p.status == RunStatus::Passed)
            .count();
        out.push(SuiteView {
            repo: scope.repo,
            suite: scope.suite,
            tests,
            unavailable,
            flakiest,
            slowest,
            pass_rate: (!points.is_empty()).then(|| passed as f64 / points.len() as f64),
            runs: points,
        });
    }
    Ok(out)
}

pub(crate) async fn tests_json(
    State(door): State<FrontDoor>,
) -> Result<axum::Json<Vec<SuiteView>>, ApiError> {
    Ok(axum::Json(overview(&door).await?))
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}.strip span{display:inline-block;width:.7em;text-align:center;font-family:monospace}.P{color:#1a7f37}.F{color:#cf222e}.M{color:#9a6700}.S{color:#777}.muted{color:#777}";

/// One letter a result, coloured by its class.
fn strip(recent: &str) -> maud::Markup {
    html! {
        span class="strip" {
            @for c in recent.chars() {
                span class=(c.to_string()) { (c) }
            }
        }
    }
}

/// `manual`, `auto` or `-`.
fn quarantine_label(q: Option<QuarantineReason>) -> &'static str {
    match q {
        Some(QuarantineReason::Manual) => "manual",
        Some(QuarantineReason::Auto) => "auto",
        None => "-",
    }
}

fn secs(s: f64) -> String {
    format!("{s:.2}s")
}

pub(crate) async fn tests_page(State(door): State<FrontDoor>) -> Result<Html<String>, ApiError> {
    let suites = overview(&door).await?;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (page_head("testexec tests", STYLE))
            body {
                h1 { "testexec tests" }
                p { a href="/" { "runs" } " · " a href="/api/tests" { "JSON" } }
                @if suites.is_empty() {
                    p data-testid="no-suites" { "no runs yet" }
                }
                @for s in &suites {
                    section data-testid="suite" {
                        h2 { (s.suite) " · " (s.repo) }
                        p {
                            @if let Some(n) = s.tests {
                                span data-testid="tests-count" { (n) } " tests with history"
                            }
                            @if let Some(why) = &s.unavailable {
                                span class="muted" { (why) }
                            }
                            @if let Some(rate) = s.pass_rate {
                                " · pass rate " span data-testid="pass-rate" { (format!("{:.0}%", rate * 100.0)) }
                                " over " (s.runs.len()) " runs"
                            }
                        }
                        h3 { "Flakiest tests (" span data-testid="flakiest-count" { (s.flakiest.len()) } ")" }
                        @if !s.flakiest.is_empty() {
                            table {
                                tr { th { "test" } th { "class" } th { "quarantine" } th { "failures" } th { "last results" } }
                                @for t in &s.flakiest {
                                    tr data-testid="flaky-row" data-class=(t.class.as_str()) {
                                        td { a href=(test_href(&s.repo, &s.suite, &t.id)) data-testid="test-link" { (t.id) } }
                                        td { (t.class.as_str()) }
                                        td { (quarantine_label(t.quarantined)) }
                                        td { (t.failures) "/" (t.runs) }
                                        td { (strip(&t.recent)) }
                                    }
                                }
                            }
                        }
                        h3 { "Slowest tests" }
                        @if !s.slowest.is_empty() {
                            table {
                                tr { th { "test" } th { "mean" } th { "last durations" } }
                                @for t in &s.slowest {
                                    tr data-testid="slow-row" {
                                        td { a href=(test_href(&s.repo, &s.suite, &t.id)) data-testid="test-link" { (t.id) } }
                                        td { (secs(t.mean_secs)) }
                                        td class="muted" { (t.durations.iter().map(|d| format!("{d:.2}")).collect::<Vec<_>>().join(" ")) }
                                    }
                                }
                            }
                        }
                        h3 { "Recent runs" }
                        table {
                            tr { th { "run" } th { "status" } th { "tests" } th { "failed" } th { "duration" } }
                            @for r in &s.runs {
                                tr data-testid="suite-run" {
                                    td { a href={ "/runs/" (r.id) "/report" } { (r.id) } }
                                    td { (r.status.as_str()) }
                                    td { (r.tests) }
                                    td { (r.failed) }
                                    td { (r.secs.map(secs).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(page.into_string()))
}

// ---- one test ---------------------------------------------------------------

/// Longest test id a query may name (ids past `history::MAX_KEY_BYTES` are
/// stored under a shortened key, but the page is asked with the full id).
const MAX_TEST_ID_BYTES: usize = 16 * 1024;

/// The link to a test's page.
pub(crate) fn test_href(repo: &str, suite: &str, id: &str) -> String {
    format!(
        "/test?repo={}&suite={}&test={}",
        encode(repo),
        encode(suite),
        encode(id)
    )
}

/// One kept result of a test, with readable names (the stored entry's are
/// one letter long).
#[derive(Debug, Serialize)]
struct ResultView {
    run: String,
    at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    branch: Option<String>,
    outcome: Outcome,
    /// `P`, `F`, `M` (passed on retry) or `S`, as in the strip.
    result: char,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attempts: Vec<Outcome>,
    duration_secs: f64,
}

/// `GET /api/test` and the page behind `GET /test`.
#[derive(Debug, Serialize)]
pub(crate) struct TestView {
    repo: String,
    suite: String,
    #[serde(flatten)]
    summary: TestSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    /// From the repository's `CODEOWNERS` at the test's latest run.
    owners: Vec<String>,
    /// Every kept result, oldest first (at most `history::MAX_ENTRIES`).
    history: Vec<ResultView>,
}

/// Why there is no page: the status and the message (with a hint).
struct Missing(u16, String);

/// One test's view from the query `?repo=&suite=&test=`: a 400 for a
/// missing or bad parameter, `Missing` when the store has no such record.
async fn test_view(
    door: &FrontDoor,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Result<TestView, Missing>, ApiError> {
    let mut params = Params::of(query)?;
    let required = |name: &str, value: Option<String>, what: &str| {
        value.ok_or_else(|| ApiError::new(400, format!("{name}: required ({what})")))
    };
    let repo = params.take("repo", MAX_NAME_BYTES)?;
    let repo = required(
        "repo",
        repo,
        "the repository as the tests dashboard shows it, e.g. owner/name",
    )?;
    let suite = params.take("suite", MAX_NAME_BYTES)?;
    let suite = required("suite", suite, "the suite's name in testexec.toml")?;
    let test = params.take("test", MAX_TEST_ID_BYTES)?;
    let test = required("test", test, "the test id, `classname::name`")?;
    params.finish("repo, suite, test")?;

    let scope = HistoryScope::new(&repo, &suite);
    let now = door.ports.clock.now_ms();
    let record = match door
        .ports
        .store
        .load_history(&scope, std::slice::from_ref(&test), now)
        .await
    {
        Ok(mut records) => records.pop(),
        Err(e @ StoreError::Unsupported { .. }) => {
            return Ok(Err(Missing(404, format!("no test history here: {e}"))));
        }
        Err(e) => return Err(ApiError::new(500, e.to_string())),
    };
    let Some(record) = record else {
        return Ok(Err(Missing(
            404,
            format!(
                "no history for test `{}` of suite `{}` in `{}`: it has not run here in the last 90 days, or the id is spelt differently (ids are `classname::name`, as the tests dashboard at /tests lists them)",
                test.chars().take(200).collect::<String>(),
                suite,
                repo
            ),
        )));
    };
    // The policy and CODEOWNERS of the test's latest run.
    let context = match record.entries.last().map(|e| e.run.parse::<RunId>()) {
        Some(Ok(run)) => load_context(&door.ports, run).await.unwrap_or_default(),
        _ => Default::default(),
    };
    let owners = record
        .file
        .as_deref()
        .map(|f| context.owners_of(f))
        .unwrap_or_default();
    Ok(Ok(TestView {
        summary: TestSummary::of(&record, &context.policy),
        file: record.file.clone(),
        owners,
        history: record
            .entries
            .iter()
            .map(|e| ResultView {
                run: e.run.clone(),
                at_ms: e.at_ms,
                commit: e.commit.clone(),
                branch: e.branch.clone(),
                outcome: e.outcome,
                result: e.letter(),
                attempts: e.attempts.clone(),
                duration_secs: e.duration_secs,
            })
            .collect(),
        repo,
        suite,
    }))
}

/// `GET /api/test?repo=&suite=&test=`: one test's history as JSON.
pub(crate) async fn test_json(
    State(door): State<FrontDoor>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<axum::Json<TestView>, ApiError> {
    match test_view(&door, query).await? {
        Ok(view) => Ok(axum::Json(view)),
        Err(Missing(status, message)) => Err(ApiError::new(status, message)),
    }
}

const TEST_STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}.muted{color:#777}.strip{display:flex;gap:2px;margin:.5em 0 1em}.strip a{display:block;width:14px;height:22px;border-radius:2px}.c-P{background:#1a7f37}.c-F{background:#cf222e}.c-M{background:#d4a72c}.c-S{background:#bbb}svg{border-bottom:1px solid #ddd}polyline{fill:none;stroke:#0969da;stroke-width:1.5}circle{fill:#0969da}";

/// A run id from history, as a link target when it is one of ours.
fn run_link(run: &str) -> Option<String> {
    run.parse::<RunId>()
        .ok()
        .map(|id| format!("/runs/{id}/report"))
}

/// The durations as an inline SVG line, oldest left; scaled to the
/// slowest, so the shape is the trend (the numbers are in the table).
fn sparkline(durations: &[f64]) -> maud::Markup {
    const W: f64 = 320.0;
    const H: f64 = 48.0;
    let max = durations.iter().copied().fold(0.0f64, f64::max);
    let step = if durations.len() > 1 {
        W / (durations.len() - 1) as f64
    } else {
        0.0
    };
    let xy: Vec<(f64, f64)> = durations
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let y = if max > 0.0 {
                H - 3.0 - d / max * (H - 6.0)
            } else {
                H - 3.0
            };
            (i as f64 * step, y)
        })
        .collect();
    let points: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    html! {
        svg data-testid="duration-trend" xmlns="http://www.w3.org/2000/svg" width=(W) height=(H) viewBox={ "-3 0 " (W + 6.0) " " (H) } role="img" {
            title { "durations of the last " (durations.len()) " results, slowest " (secs(max)) }
            polyline points=(points.join(" ")) {}
            // The latest result, so that a single one shows too.
            @if let Some((x, y)) = xy.last() {
                circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" {}
            }
        }
        span class="muted" { " slowest " (secs(max)) @if let Some(last) = durations.last() { " · latest " (secs(*last)) } }
    }
}

/// `GET /test?repo=&suite=&test=`: one test's page.
pub(crate) async fn test_page(
    State(door): State<FrontDoor>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let view = match test_view(&door, query).await? {
        Ok(view) => view,
        Err(Missing(status, message)) => {
            let page = html! {
                (DOCTYPE)
                html lang="en" {
                    (page_head("testexec: no such test", TEST_STYLE))
                    body {
                        h1 { "No such test" }
                        p data-testid="not-found" { (message) }
                        p { a href="/tests" { "tests dashboard" } }
                    }
                }
            };
            let status = axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::NOT_FOUND);
            return Ok((status, Html(page.into_string())).into_response());
        }
    };
    let t = &view.summary;
    let durations: Vec<f64> = view.history.iter().map(|r| r.duration_secs).collect();
    let api = test_href(&view.repo, &view.suite, &t.id).replacen("/test?", "/api/test?", 1);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (page_head(&format!("testexec test {}", t.id), TEST_STYLE))
            body {
                h1 data-testid="test-id" { (t.id) }
                p { "suite " b { (view.suite) } " · " (view.repo) " · " a href="/tests" { "tests dashboard" } " · " a href=(api) { "JSON" } }
                table {
                    tr { th { "class" } td data-testid="test-class" { (t.class.as_str()) } }
                    tr { th { "quarantine" } td { (quarantine_label(t.quarantined)) } }
                    tr { th { "failures" } td { span data-testid="test-failures" { (t.failures) } " of " span data-testid="test-runs" { (t.runs) } " runs" } }
                    tr { th { "mean duration" } td { (secs(t.mean_secs)) } }
                    tr { th { "file" } td { (view.file.as_deref().unwrap_or("-")) } }
                    tr { th { "owners" } td data-testid="test-owners" { @if view.owners.is_empty() { span class="muted" { "unknown" } } @else { (view.owners.join(" ")) } } }
                }
                h2 { "Last " span data-testid="strip-count" { (view.history.len()) } " results" }
                div class="strip" data-testid="outcome-strip" {
                    @for r in &view.history {
                        @let tip = format!(
                            "{} · {} · run {} · commit {} · branch {} · {:.2}s",
                            r.outcome.as_str(),
                            super::pages::when(r.at_ms).1,
                            r.run,
                            r.commit.as_deref().map_or("-", |c| &c[..c.len().min(12)]),
                            r.branch.as_deref().unwrap_or("-"),
                            r.duration_secs
                        );
                        a class={ "c-" (r.result) } href=[run_link(&r.run)] title=(tip) data-testid="strip-cell" data-result=(r.result) data-run=(r.run) {}
                    }
                }
                h2 { "Duration trend" }
                (sparkline(&durations))
                h2 { "History" }
                table {
                    tr { th { "run" } th { "when" } th { "outcome" } th { "attempts" } th { "duration" } th { "commit" } th { "branch" } }
                    @for r in view.history.iter().rev() {
                        tr data-testid="history-row" {
                            td { @if let Some(href) = run_link(&r.run) { a href=(href) { (r.run) } } @else { (r.run) } }
                            td { (super::pages::when(r.at_ms).1) }
                            td { (r.outcome.as_str()) }
                            td { (r.attempts.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" → ")) }
                            td { (secs(r.duration_secs)) }
                            td { code { (r.commit.as_deref().map_or("", |c| &c[..c.len().min(12)])) } }
                            td { (r.branch.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(page.into_string()).into_response())
}
