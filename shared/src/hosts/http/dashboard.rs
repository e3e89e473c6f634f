//! The tests dashboard: `GET /tests` (a page) and `GET /api/tests` (the
//! same data as JSON). For each (repository, suite) of the recent runs:
//! the flakiest and the slowest tests with their last results and duration
//! trend, and the suite's pass rate and duration over its recent runs.
//! Classified with the policy of the scope's latest run (docs/flaky.md).
//! A store that cannot list a suite's history (DynamoDB) shows the runs
//! part only and says why.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Html;
use maud::{DOCTYPE, html};
use serde::Serialize;

use super::ApiError;
use super::pages::page_head;
use super::state::FrontDoor;
use crate::app::handlers::history::load_context;
use crate::domain::history::HistoryScope;
use crate::domain::history::summary::{TestSummary, sort_flakiest, sort_slowest};
use crate::domain::model::{Run, RunStatus};
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
                                        td { (t.id) }
                                        td { (t.class.as_str()) }
                                        td { (t.quarantined.map_or("-", |q| if matches!(q, crate::domain::history::triage::QuarantineReason::Manual) { "manual" } else { "auto" })) }
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
                                        td { (t.id) }
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
