//! The reads: the runs API (`GET /runs`, `GET /runs/{id}`), the runs page,
//! the report files and shard logs, and the answers for unknown routes.

use axum::extract::{Path, State};
use axum::http::{Method, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, PreEscaped, html};
use serde_json::json;

use super::ApiError;
use super::state::FrontDoor;
use crate::app::messages::keys;
use crate::app::ports::content_type;
use crate::domain::model::{Run, RunId, ShardId};

fn parse_id(id: &str) -> Result<RunId, ApiError> {
    id.parse()
        .map_err(|e: crate::errors::IdError| ApiError::new(400, e.to_string()))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, e.to_string())
}

pub(crate) async fn list_runs(
    State(door): State<FrontDoor>,
) -> Result<axum::Json<Vec<Run>>, ApiError> {
    let runs = door.ports.store.list_runs(100).await.map_err(internal)?;
    Ok(axum::Json(runs))
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

const PAGE_STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}tr[data-status=passed] td:nth-child(2){color:#1a7f37}tr[data-status=failed] td:nth-child(2),tr[data-status=errored] td:nth-child(2){color:#cf222e}";

/// The `<head>` of the host's own pages.
pub(crate) fn page_head(title: &str, style: &str) -> maud::Markup {
    html! {
        head {
            meta charset="utf-8";
            // No /favicon.ico request (a 404 and a console error).
            (PreEscaped(crate::domain::report::html::ICON_LINK))
            title { (title) }
            style { (PreEscaped(style)) }
        }
    }
}

/// The runs page: every value goes through maud's escaping.
pub(crate) async fn runs_page(State(door): State<FrontDoor>) -> Result<Html<String>, ApiError> {
    let runs = door.ports.store.list_runs(200).await.map_err(internal)?;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (page_head("testexec runs", PAGE_STYLE))
            body {
                h1 { "testexec runs" }
                p { (runs.len()) " runs · " a href="/tests" { "tests dashboard" } }
                table {
                    thead { tr { th { "run" } th { "status" } th { "suite" } th { "repo" } th { "tests" } th { "failed" } th { "flaky" } th { "shards" } } }
                    tbody {
                        @for r in &runs {
                            tr data-testid="run-row" data-status=(r.status.as_str()) {
                                td {
                                    @if r.status.is_final() && r.shard_count > 0 {
                                        a href={ "/runs/" (r.id) "/report" } { (r.id) }
                                    } @else {
                                        (r.id)
                                    }
                                }
                                td title=[r.error.as_deref()] { (r.status.as_str()) }
                                td { (r.suite) }
                                td { (r.source.repo) }
                                td data-testid="run-tests" { (r.counts.tests) }
                                td { (r.counts.failed + r.counts.errors) }
                                td { (r.counts.flaky) }
                                td { (r.shard_count) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(page.into_string()))
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
