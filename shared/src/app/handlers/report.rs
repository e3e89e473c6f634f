//! report: render a finished run, update timing history, tell the notifier,
//! and make the run final.
//!
//! Every step is a whole-object write or a conditional update, so a report
//! job delivered twice (or retried after a notifier outage) produces the
//! same files and one final status.

use serde::Serialize;

use tracing::Instrument;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::app::handlers::{Ports, Settings, decode, history, scratch_dir};
use crate::app::messages::{ReportJob, keys};
use crate::app::ports::{RunOutcome, content_type};
use crate::domain::history::triage::Triage;
use crate::domain::model::{Counts, Run, RunId, RunStatus, ShardRecord, ShardStatus, TestCase};
use crate::domain::plan::{Timings, median_batch_startup};
use crate::domain::report::{self, CaseSource, Digest, ReportInput, ReportLinks};
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

/// Failures handed to the notifier (GitHub annotations: 1,000 by default).
pub const MAX_NOTIFIED_FAILURES: usize = 1_000;

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
    // Every case stays on disk: downloaded, indexed, and read in passes.
    let scratch = scratch_dir(settings, "report-")?;
    let cases = download_cases(ports, &shards, scratch.path()).await?;
    let digest = Digest::of(&cases).map_err(io("reading the run's test cases"))?;

    // The run against its tests' history: which failures are new, which are
    // quarantined (and so do not fail it).
    let context = history::load_context(ports, run.id).await?;
    // History is written only by the report that finalises the run.
    let save = !run.status.is_final();
    let mut triage = history::triage_run(ports, &run, &cases, &context.policy, save).await?;
    if let Some(t) = triage.as_mut() {
        history::fill_owners(t, &context);
    }

    let (status, error) = verdict(&run, &shards, triage.as_ref());
    let mut final_run = run.clone();
    final_run.status = status;
    final_run.error = error.clone();
    final_run.finished_ms.get_or_insert(ports.clock.now_ms());

    let links = report_links(ports, settings, run.id, &shards).await?;
    let input = ReportInput {
        run: &final_run,
        shards: &shards,
        cases: &cases,
        digest: &digest,
        links: links.clone(),
        tool_name: "testexec",
        triage: triage.as_ref(),
    };
    let summary_markdown =
        report::markdown::summary(&input, report::markdown::GITHUB_SUMMARY_MAX_BYTES);
    let mut html = Vec::new();
    report::html::render(&input, &mut html).map_err(io("rendering index.html"))?;
    // The two files that list every test go straight to disk.
    let ctrf = scratch.path().join("report.json");
    write_file(&ctrf, "rendering report.json", |out| {
        report::ctrf::write(&input, out).map_err(std::io::Error::from)
    })?;
    let junit = scratch.path().join("junit.xml");
    write_file(&junit, "rendering junit.xml", |out| {
        report::junit_xml::write(&input, out)
    })?;

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
        .put_file(
            &keys::report(run.id, "report.json"),
            &ctrf,
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
        .put_file(
            &keys::report(run.id, "junit.xml"),
            &junit,
            content_type::XML,
        )
        .await?;

    if !run.status.is_final() {
        update_timings(ports, &run, &shards, &cases).await?;
    }

    // GitHub shows at most `max_annotations` (1,000 by default): the held
    // first failures are more than enough, and bounded.
    let failures: Vec<TestCase> = digest
        .failures
        .iter()
        .take(MAX_NOTIFIED_FAILURES)
        .map(|(_, c)| c.clone())
        .collect();
    drop(scratch);
    let outcome = RunOutcome {
        run: final_run.clone(),
        shards: shards.clone(),
        summary_markdown: summary_markdown.clone(),
        failures,
        report_link: links.html.clone(),
        triage,
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
    if finalised_now {
        crate::app::metrics::run_finished(
            &run,
            status,
            &final_run.counts,
            final_run.finished_ms.unwrap_or_default(),
        );
    }
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
/// then failures, except failures of quarantined tests (`triage`).
pub fn verdict(
    run: &Run,
    shards: &[ShardRecord],
    triage: Option<&Triage>,
) -> (RunStatus, Option<String>) {
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
    } else if !run.counts.all_passed() && !triage.is_some_and(Triage::only_quarantined_failures) {
        (RunStatus::Failed, None)
    } else {
        (RunStatus::Passed, None)
    }
}

/// The failing cases of every completed shard's applied execution, by
/// identity only (what "rerun failed" selects by): read from disk one at a
/// time, so memory grows with the failures, never with the run.
pub(crate) async fn load_failing_cases(
    ports: &Ports,
    settings: &Settings,
    shards: &[ShardRecord],
) -> Result<Vec<TestCase>, HandlerError> {
    let scratch = scratch_dir(settings, "rerun-")?;
    let cases = download_cases(ports, shards, scratch.path()).await?;
    let mut failing = Vec::new();
    cases
        .for_each(&mut |_, _, case| {
            if case.outcome.is_failure() {
                failing.push(report::without_texts(case));
            }
            Ok(())
        })
        .map_err(io("reading an earlier run's test cases"))?;
    Ok(failing)
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
///
/// It also records what a shard spends outside its tests (the median of
/// each finished shard's wall minus its cases' times): queue mode keeps
/// its batches well above that start-up (`plan::queue_plan`).
async fn update_timings(
    ports: &Ports,
    run: &Run,
    shards: &[ShardRecord],
    cases: &dyn CaseSource,
) -> Result<(), HandlerError> {
    let key = keys::timings(&run.source.repo, &run.suite);
    let mut history = match ports.blobs.get(&key).await {
        Ok(bytes) => Timings::from_json(&String::from_utf8_lossy(&bytes), &key).unwrap_or_default(),
        Err(BlobError::NotFound { .. }) => Timings::default(),
        Err(e) => return Err(e.into()),
    };
    let mut observed = Timings::observer();
    // Test seconds per shard index, skipped cases included (they ran too).
    let mut shard_tests: BTreeMap<u32, f64> = BTreeMap::new();
    cases
        .for_each(&mut |_, shard, c| {
            let t = shard_tests.entry(shard).or_default();
            *t = crate::domain::model::add_duration(*t, c.duration_secs);
            if c.outcome != crate::domain::model::Outcome::Skipped {
                observed.add(c);
            }
            Ok(())
        })
        .map_err(io("reading the run's test cases for timings"))?;
    let mut observed = observed.finish();
    let walls = shards.iter().filter_map(|s| {
        let wall = s.finished_ms?.checked_sub(s.started_ms?)? as f64 / 1000.0;
        let tests = shard_tests.get(&s.id.index).copied()?;
        (s.status != ShardStatus::Pending).then_some((wall, tests))
    });
    if let Some(startup) = median_batch_startup(walls) {
        observed.set_batch_startup_secs(startup);
    }
    history.merge_owned(observed);
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

/// Writes a file through a buffer, naming what failed.
fn write_file(
    path: &Path,
    context: &'static str,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), HandlerError> {
    let mut out = BufWriter::with_capacity(64 * 1024, File::create(path).map_err(io(context))?);
    body(&mut out).map_err(io(context))?;
    out.flush().map_err(io(context))
}

/// Downloads the applied execution's cases of every completed shard.
async fn download_cases(
    ports: &Ports,
    shards: &[ShardRecord],
    dir: &Path,
) -> Result<SpooledCases, HandlerError> {
    let mut files = Vec::new();
    for shard in shards {
        let Some(attempt) = shard.attempt else {
            continue;
        };
        let key = keys::cases(shard.id, attempt);
        let path = dir.join(format!("cases-{}.jsonl", shard.id.index));
        match ports.blobs.get_to_file(&key, &path).await {
            Ok(()) => files.push((shard.id.index, key, path)),
            // A swept shard has no cases blob.
            Err(BlobError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    SpooledCases::open(files).map_err(io("indexing the run's test cases"))
}

/// Test cases in JSON-lines files (collect's cases blobs), one file per
/// shard, read line by line: 8 bytes of index per case stay in memory (where
/// its line starts, for [`CaseSource::get`]), never the cases.
#[derive(Debug)]
pub struct SpooledCases {
    /// Shard index, blob key (for errors) and local path.
    files: Vec<(u32, String, PathBuf)>,
    /// Position of each file's first case.
    starts: Vec<usize>,
    /// Each file's length: where its last line ends.
    ends: Vec<u64>,
    /// Byte offset of each case's line in its file.
    offsets: Vec<u64>,
    /// The file `get` read last, kept open: fetching by position goes
    /// mostly forward through one file.
    open: std::sync::Mutex<Option<(usize, File)>>,
}

impl SpooledCases {
    /// Indexes the files: one scan for line starts, no parsing.
    pub fn open(files: Vec<(u32, String, PathBuf)>) -> std::io::Result<SpooledCases> {
        let mut starts = Vec::with_capacity(files.len());
        let mut ends = Vec::with_capacity(files.len());
        let mut offsets = Vec::new();
        let mut line = Vec::new();
        for (_, _, path) in &files {
            starts.push(offsets.len());
            let mut reader = BufReader::with_capacity(64 * 1024, File::open(path)?);
            let mut at = 0u64;
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line)?;
                if n == 0 {
                    break;
                }
                if !line.iter().all(u8::is_ascii_whitespace) {
                    offsets.push(at);
                }
                at += n as u64;
            }
            ends.push(at);
        }
        Ok(SpooledCases {
            files,
            starts,
            ends,
            offsets,
            open: std::sync::Mutex::new(None),
        })
    }

    fn parse(&self, file: usize, n: usize, line: &[u8]) -> std::io::Result<TestCase> {
        serde_json::from_slice(line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "stored test case {} line {}: {e}",
                    self.files[file].1,
                    n + 1
                ),
            )
        })
    }
}

impl CaseSource for SpooledCases {
    fn len(&self) -> usize {
        self.offsets.len()
    }

    fn for_each(
        &self,
        f: &mut dyn FnMut(usize, u32, &TestCase) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut line = Vec::new();
        let mut index = 0;
        for (file, (shard, _, path)) in self.files.iter().enumerate() {
            let mut reader = BufReader::with_capacity(64 * 1024, File::open(path)?);
            let mut n = 0;
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                if !line.iter().all(u8::is_ascii_whitespace) {
                    let case = self.parse(file, n, &line)?;
                    f(index, *shard, &case)?;
                    index += 1;
                }
                n += 1;
            }
        }
        Ok(())
    }

    fn get(&self, index: usize) -> std::io::Result<(u32, TestCase)> {
        let offset = *self.offsets.get(index).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no test case {index}"),
            )
        })?;
        let file = self.starts.partition_point(|&s| s <= index) - 1;
        let end = match self.starts.get(file + 1) {
            Some(&next_file) if index + 1 == next_file => self.ends[file],
            _ => self
                .offsets
                .get(index + 1)
                .copied()
                .unwrap_or(self.ends[file]),
        };
        let mut line = vec![0; usize::try_from(end - offset).map_err(std::io::Error::other)?];
        {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            if open.as_ref().is_none_or(|(f, _)| *f != file) {
                *open = Some((file, File::open(&self.files[file].2)?));
            }
            let Some((_, handle)) = open.as_mut() else {
                unreachable!("opened just above")
            };
            handle.seek(SeekFrom::Start(offset))?;
            handle.read_exact(&mut line)?;
        }
        Ok((
            self.files[file].0,
            self.parse(file, index - self.starts[file], &line)?,
        ))
    }
}
