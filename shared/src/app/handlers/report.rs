//! report: render a finished run, update timing history, tell the notifier,
//! and make the run final.
//!
//! Every step is a whole-object write or a conditional update, so a report
//! job delivered twice (or retried after a notifier outage) produces the
//! same files and one final status.

use serde::Serialize;

use tracing::Instrument;

use crate::app::handlers::{Ports, Settings, decode};
use crate::app::messages::{ReportJob, keys};
use crate::app::ports::{RunOutcome, content_type};
use crate::domain::model::{Counts, Run, RunId, RunStatus, ShardRecord, ShardStatus, TestCase};
use crate::domain::plan::Timings;
use crate::domain::report::{self, ReportInput, ReportLinks};
use crate::errors::{BlobError, HandlerError};

/// Where the rendered files went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportOutcome {
    pub run: RunId,
    pub status: RunStatus,
    pub counts: Counts,
    pub html: Option<String>,
    pub summary_markdown: String,
    /// False when the run was already final (a duplicate report job).
    pub finalised_now: bool,
}

pub const REPORT_FILES: [&str; 4] = ["index.html", "report.json", "summary.md", "junit.xml"];

pub async fn report(
    ports: &Ports,
    settings: &Settings,
    body: &str,
) -> Result<ReportOutcome, HandlerError> {
    let job: ReportJob = decode("report job", body)?;
    let span = tracing::info_span!("report", run_id = %job.run);
    render_and_finish(ports, settings, job)
        .instrument(span)
        .await
}

/// The work of [`report`], inside the run span.
async fn render_and_finish(
    ports: &Ports,
    settings: &Settings,
    job: ReportJob,
) -> Result<ReportOutcome, HandlerError> {
    let run = ports
        .store
        .get_run(job.run)
        .await?
        .ok_or_else(|| HandlerError::UnknownRun {
            run: job.run.to_string(),
        })?;
    let shards = ports.store.list_shards(run.id).await?;
    let cases = load_cases(ports, &shards).await?;

    let (status, error) = verdict(&run, &shards);
    let mut final_run = run.clone();
    final_run.status = status;
    final_run.error = error.clone();
    final_run.finished_ms.get_or_insert(ports.clock.now_ms());

    let links = report_links(ports, settings, run.id, &shards).await?;
    let input = ReportInput {
        run: &final_run,
        shards: &shards,
        cases: &cases,
        links: links.clone(),
        tool_name: "testexec",
    };
    let summary_markdown =
        report::markdown::summary(&input, report::markdown::GITHUB_SUMMARY_MAX_BYTES);
    let mut html = Vec::new();
    report::html::render(&input, &mut html).map_err(io("rendering index.html"))?;
    let mut ctrf = Vec::new();
    report::ctrf::write(&input, &mut ctrf).map_err(|e| io("rendering report.json")(e.into()))?;
    let mut junit = Vec::new();
    report::junit_xml::write(&input, &mut junit).map_err(io("rendering junit.xml"))?;

    ports
        .blobs
        .put(
            &keys::report(run.id, "index.html"),
            html,
            content_type::HTML,
        )
        .await?;
    ports
        .blobs
        .put(
            &keys::report(run.id, "report.json"),
            ctrf,
            content_type::JSON,
        )
        .await?;
    ports
        .blobs
        .put(
            &keys::report(run.id, "summary.md"),
            summary_markdown.clone().into_bytes(),
            content_type::MARKDOWN,
        )
        .await?;
    ports
        .blobs
        .put(&keys::report(run.id, "junit.xml"), junit, content_type::XML)
        .await?;

    if !run.status.is_final() {
        update_timings(ports, &run, &cases).await?;
    }

    let failures: Vec<TestCase> = cases
        .iter()
        .filter(|(_, c)| c.outcome.is_failure())
        .map(|(_, c)| c.clone())
        .collect();
    let outcome = RunOutcome {
        run: final_run.clone(),
        shards: shards.clone(),
        summary_markdown: summary_markdown.clone(),
        failures,
        report_link: links.html.clone(),
    };
    // Tell the outside world before the final write: if the notifier is
    // down, the error sends this job back through the queue and the run
    // stays in `reporting` until it succeeds (or the job dead-letters).
    ports.notifier.run_finished(&outcome).await?;
    let finalised_now = ports
        .store
        .finish_run(
            run.id,
            status,
            final_run.finished_ms.unwrap_or_default(),
            error,
        )
        .await?;
    tracing::info!(status = %status, tests = final_run.counts.tests, finalised_now, "run reported");
    Ok(ReportOutcome {
        run: run.id,
        status,
        counts: final_run.counts,
        html: links.html,
        summary_markdown,
        finalised_now,
    })
}

/// The run's verdict: errored shards first (their tests may not have run),
/// then failures.
pub fn verdict(run: &Run, shards: &[ShardRecord]) -> (RunStatus, Option<String>) {
    let errored: Vec<String> = shards
        .iter()
        .filter(|s| matches!(s.status, ShardStatus::Errored | ShardStatus::Pending))
        .map(|s| {
            let why = s
                .error
                .as_deref()
                .and_then(|e| e.lines().next())
                .unwrap_or("no result");
            format!("shard {}: {why}", s.id.index)
        })
        .collect();
    if !errored.is_empty() {
        (RunStatus::Errored, Some(errored.join("\n")))
    } else if !run.counts.all_passed() {
        (RunStatus::Failed, None)
    } else {
        (RunStatus::Passed, None)
    }
}

/// The applied execution's cases of every completed shard, by shard index.
pub(crate) async fn load_cases(
    ports: &Ports,
    shards: &[ShardRecord],
) -> Result<Vec<(u32, TestCase)>, HandlerError> {
    let mut out = Vec::new();
    for shard in shards {
        let Some(attempt) = shard.attempt else {
            continue;
        };
        let key = keys::cases(shard.id, attempt);
        let bytes = match ports.blobs.get(&key).await {
            Ok(bytes) => bytes,
            // A swept shard has no cases blob.
            Err(BlobError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        for (n, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let case: TestCase =
                serde_json::from_str(line).map_err(|e| HandlerError::BadMessage {
                    what: "stored test case",
                    detail: format!("{key} line {}: {e}", n + 1),
                })?;
            out.push((shard.id.index, case));
        }
    }
    Ok(out)
}

/// Links the reports point at: the host's public pages when it has them
/// (`Settings::public_url`, e.g. `testexec serve` behind a domain), else the
/// blob store's own links (file paths locally, presigned URLs in the cloud).
async fn report_links(
    ports: &Ports,
    settings: &Settings,
    run: RunId,
    shards: &[ShardRecord],
) -> Result<ReportLinks, HandlerError> {
    if let Some(base) = settings
        .public_url
        .as_deref()
        .map(|b| b.trim_end_matches('/'))
    {
        let file = |name: &str| Some(format!("{base}/runs/{run}/report/{name}"));
        return Ok(ReportLinks {
            html: Some(format!("{base}/runs/{run}/report")),
            ctrf: file("report.json"),
            junit: file("junit.xml"),
            markdown: file("summary.md"),
            shard_logs: shards
                .iter()
                .map(|s| {
                    s.attempt
                        .map(|_| format!("{base}/runs/{run}/shards/{}/log", s.id.index))
                })
                .collect(),
        });
    }
    let mut shard_logs = Vec::with_capacity(shards.len());
    for shard in shards {
        shard_logs.push(match shard.attempt {
            Some(attempt) => ports.blobs.link(&keys::log(shard.id, attempt)).await?,
            None => None,
        });
    }
    Ok(ReportLinks {
        html: ports.blobs.link(&keys::report(run, "index.html")).await?,
        ctrf: ports.blobs.link(&keys::report(run, "report.json")).await?,
        junit: ports.blobs.link(&keys::report(run, "junit.xml")).await?,
        markdown: ports.blobs.link(&keys::report(run, "summary.md")).await?,
        shard_logs,
    })
}

/// Merges this run's timings into the history the next plan balances with.
/// Two reports of one suite racing may lose one run's update; history is an
/// estimate and the next run refreshes it.
async fn update_timings(
    ports: &Ports,
    run: &Run,
    cases: &[(u32, TestCase)],
) -> Result<(), HandlerError> {
    let key = keys::timings(&run.source.repo, &run.suite);
    let mut history = match ports.blobs.get(&key).await {
        Ok(bytes) => Timings::from_json(&String::from_utf8_lossy(&bytes), &key).unwrap_or_default(),
        Err(BlobError::NotFound { .. }) => Timings::default(),
        Err(e) => return Err(e.into()),
    };
    let observed = Timings::from_cases(
        cases
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c.outcome != crate::domain::model::Outcome::Skipped),
    );
    history.merge(&observed);
    ports
        .blobs
        .put(&key, history.to_json().into_bytes(), content_type::JSON)
        .await?;
    Ok(())
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> HandlerError {
    move |source| HandlerError::Io {
        context: context.to_string(),
        source,
    }
}
