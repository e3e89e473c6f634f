//! execute: run one shard and hand its raw results to collect.
//!
//! The shard runs in a private directory extracted from the run's snapshot,
//! with argv commands (never a shell), a scrubbed environment and one
//! deadline for setup, the run and its retries. Everything it produced is
//! uploaded under `attempt-<n>/`, so a second execution of the same job (a
//! redelivery) never overwrites the first; collect applies only one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::adapters::process::{self, CommandEnd, CommandSpec, LogCapture};
use crate::adapters::source::{SnapshotLimits, extract_tar_gz};
use crate::app::handlers::{Ports, Settings, decode, encode, scratch_dir};
use crate::app::messages::{
    Execution, JobEnvelope, MAX_MESSAGE_BYTES, MESSAGE_VERSION, QueueName, ShardJob, ShardResult,
    keys,
};
use crate::app::ports::content_type;
use crate::domain::junit::CaseRef;
use crate::domain::manifest::{Expansion, Suite};
use crate::domain::model::{Outcome, TestCase};
use crate::domain::plan::Timings;
use crate::errors::{BlobError, HandlerError};

/// Lines of the log carried in the result so an errored shard explains
/// itself without opening the log.
const LOG_TAIL_LINES: usize = 30;
const LOG_TAIL_BYTES: usize = 4096;

/// Runs the shard job in `body` (delivery `attempt`, 1-based), uploads its
/// log and JUnit, and sends a [`ShardResult`] to the results queue.
pub async fn execute(
    ports: &Ports,
    settings: &Settings,
    body: &str,
    attempt: u32,
) -> Result<ShardResult, HandlerError> {
    let job = match decode::<JobEnvelope>("shard job", body)? {
        JobEnvelope::Inline { job } => *job,
        JobEnvelope::Stored { key, .. } => {
            let bytes = ports.blobs.get(&key).await?;
            decode::<ShardJob>("stored shard job", &String::from_utf8_lossy(&bytes))?
        }
    };
    if job.v != MESSAGE_VERSION {
        return Err(HandlerError::UnsupportedVersion {
            found: job.v,
            supported: MESSAGE_VERSION,
        });
    }
    let span =
        tracing::info_span!("execute", run_id = %job.shard.run, shard_id = %job.shard, attempt);
    run_job(ports, settings, job, attempt)
        .instrument(span)
        .await
}

/// The work of [`execute`], inside the run/shard span.
async fn run_job(
    ports: &Ports,
    settings: &Settings,
    job: ShardJob,
    attempt: u32,
) -> Result<ShardResult, HandlerError> {
    let attempt = attempt.max(1);
    let started_ms = ports.clock.now_ms();
    if let Some(queued_ms) = job.queued_ms {
        crate::app::metrics::shard_queue_wait(started_ms.saturating_sub(queued_ms));
    }
    let work = scratch_dir(settings, "shard-")?;
    let mut log = LogCapture::new(settings.log_head_bytes, settings.log_tail_bytes);
    log.line(&format!(
        "testexec: shard {} attempt {attempt}, {} files",
        job.shard,
        job.files.len()
    ));

    let run = ShardRun {
        ports,
        settings,
        job: &job,
        work: work.path(),
        attempt,
    };
    let (execution, junit_files) = run.run(&mut log).await?;

    for (name, path) in &junit_files {
        let key = keys::junit(job.shard, attempt, name);
        ports.blobs.put_file(&key, path, content_type::XML).await?;
    }
    let log_key = keys::log(job.shard, attempt);
    ports
        .blobs
        .put(&log_key, log.to_bytes(), content_type::TEXT)
        .await?;

    let result = ShardResult {
        v: MESSAGE_VERSION,
        shard: job.shard,
        attempt,
        execution,
        started_ms,
        finished_ms: ports.clock.now_ms(),
        log_key,
        junit_files: junit_files.len() as u32,
        junit_keys: Vec::new(),
        log_tail: log.tail_text(LOG_TAIL_LINES, LOG_TAIL_BYTES),
    };
    let result = fit_message(result);
    ports
        .queue
        .send_batch(QueueName::Results, vec![encode(&result)])
        .await?;
    tracing::info!(execution = ?result.execution, junit = result.junit_files, "shard executed");
    Ok(result)
}

/// A result always fits a queue message: its only unbounded parts are
/// texts (the log tail, an error reason), which are cut to fit with a
/// marker; the whole log is in the blob store. Sending an oversized
/// message would fail on every redelivery and run the shard again each
/// time, so this never lets one through.
fn fit_message(mut result: ShardResult) -> ShardResult {
    const MARK: &str =
        "\n[testexec: cut to fit the queue message; the full log is in the blob store]";
    // Room for the JSON around the texts.
    let budget = MAX_MESSAGE_BYTES / 2;
    let cut = |text: &mut String| {
        if text.len() > budget {
            let mut end = budget;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str(MARK);
        }
    };
    cut(&mut result.log_tail);
    if let Execution::Errored { reason, .. } = &mut result.execution {
        cut(reason);
    }
    result
}

struct ShardRun<'a> {
    ports: &'a Ports,
    settings: &'a Settings,
    job: &'a ShardJob,
    work: &'a Path,
    attempt: u32,
}

type JunitFiles = Vec<(String, PathBuf)>;

impl ShardRun<'_> {
    async fn run(&self, log: &mut LogCapture) -> Result<(Execution, JunitFiles), HandlerError> {
        let suite = &self.job.suite;
        let deadline = Instant::now() + Duration::from_secs(suite.timeout_seconds);
        let tree = self.work.join("src");
        match self.fetch_source(&tree).await {
            Ok(()) => {}
            Err(HandlerError::Blob(BlobError::NotFound { key })) => {
                return Ok((
                    errored(format!("source snapshot `{key}` is missing"), None),
                    vec![],
                ));
            }
            Err(e) => return Err(e),
        }
        let cwd = self.cwd();
        let junit_dir = self.work.join("junit");
        std::fs::create_dir_all(&junit_dir).map_err(io("creating the JUnit directory"))?;
        let run_id = self.job.shard.run.to_string();

        let first_junit = junit_dir.join("try-0.xml");
        let (tests, skip_tests) = suite.render_tests(&self.job.tests, &self.job.skip_tests);
        let expansion = Expansion {
            files: &self.job.files,
            tests: &tests,
            skip_tests: &skip_tests,
            junit: &first_junit.display().to_string(),
            shard: self.job.shard.index,
            shard_count: self.job.shard_count,
            run_id: &run_id,
        };
        let env = self.env(suite, &expansion);
        for argv in suite.setup_argvs(&expansion) {
            let shown = describe_argv(&argv);
            let end = self.command(argv, &cwd, &env, deadline, log).await;
            if !end.success() {
                let reason = format!("setup command {shown} {}", end.describe());
                return Ok((errored(reason, end.exit_code()), vec![]));
            }
        }

        let end = self
            .command(suite.command_argv(&expansion), &cwd, &env, deadline, log)
            .await;
        let found = collect_junit(&cwd, &suite.junit_globs(&expansion), &junit_dir, 0)?;
        let stopped_short = matches!(
            end,
            CommandEnd::TimedOut | CommandEnd::NotStarted | CommandEnd::Signalled(_)
        );
        if stopped_short || found.is_empty() {
            let reason = if !stopped_short {
                format!(
                    "the test command {} and wrote no JUnit matching {}",
                    end.describe(),
                    suite.junit_globs(&expansion).join(", ")
                )
            } else {
                format!("the test command {}", end.describe())
            };
            return Ok((errored(reason, end.exit_code()), found));
        }
        let history = self.history_for_new_tests().await;
        let first = read_cases(&found, history.as_ref());
        let mut collected = found;
        if let CommandEnd::Exited(code) = end {
            if !suite.completed_exit_codes.contains(&code) {
                // The runner stopped short (pytest's 2 is "interrupted", e.g.
                // a collection error): what it wrote is kept, but the shard
                // has no complete verdict.
                let failing = first.failing.len();
                let reason = format!(
                    "the test command exited with {code}, which is not one of completed_exit_codes {:?}; its JUnit holds {} cases ({failing} failing)",
                    suite.completed_exit_codes, first.total
                );
                return Ok((errored(reason, Some(code)), collected));
            }
            if code != 0 && first.failing.is_empty() {
                let reason = format!(
                    "the test command exited with {code} but its JUnit reports no failing test"
                );
                return Ok((errored(reason, Some(code)), collected));
            }
        }

        // Re-run what failed; collect marks a later pass as flaky. With
        // `{tests}` only the failing tests run again, else their files.
        let mut failing = Rerun::of(suite, &self.job.files, &first.failing);
        let mut try_index = 0;
        for retry in 1..=suite.retries {
            if failing.is_empty() || Instant::now() >= deadline {
                break;
            }
            log.line(&format!("testexec: retry {retry}: {}", failing.describe()));
            try_index = retry;
            let found = self
                .try_again(&failing, try_index, &expansion, &env, deadline, log)
                .await?;
            failing = Rerun::of(suite, &self.job.files, &read_cases(&found, None).failing);
            collected.extend(found);
        }

        // Early flake detection: tests no earlier run has seen run again,
        // passing or not; collect folds the tries, so mixed outcomes make
        // the test flaky.
        if let (Some(check), Some(new)) = (&self.job.new_tests, first.new_tests()) {
            let again = Rerun::tests_of(suite, new);
            if !again.is_empty() {
                for run in 1..=check.runs {
                    if Instant::now() >= deadline {
                        break;
                    }
                    log.line(&format!(
                        "testexec: new-test run {run} of {}: {} new tests",
                        check.runs,
                        again.tests.len()
                    ));
                    try_index += 1;
                    let found = self
                        .try_again(&again, try_index, &expansion, &env, deadline, log)
                        .await?;
                    collected.extend(found);
                }
            }
        }
        let code = end.exit_code().unwrap_or(-1);
        Ok((Execution::Completed { exit_code: code }, collected))
    }

    /// Where the commands run: the suite's working directory in the
    /// extracted source.
    fn cwd(&self) -> PathBuf {
        let tree = self.work.join("src");
        match &self.job.suite.working_dir {
            Some(dir) => tree.join(dir),
            None => tree,
        }
    }

    /// One more run of the command on `what` (a retry or a new-test run),
    /// its JUnit kept as try `try_index`.
    async fn try_again(
        &self,
        what: &Rerun,
        try_index: u32,
        first: &Expansion<'_>,
        env: &[(String, String)],
        deadline: Instant,
        log: &mut LogCapture,
    ) -> Result<JunitFiles, HandlerError> {
        let suite = &self.job.suite;
        let junit_dir = self.work.join("junit");
        let junit = junit_dir.join(format!("try-{try_index}.xml"));
        let (tests, skip_tests) = suite.render_tests(&what.tests, &[]);
        let expansion = Expansion {
            files: &what.files,
            tests: &tests,
            skip_tests: &skip_tests,
            junit: &junit.display().to_string(),
            ..*first
        };
        let cwd = self.cwd();
        self.command(suite.command_argv(&expansion), &cwd, env, deadline, log)
            .await;
        collect_junit(&cwd, &suite.junit_globs(&expansion), &junit_dir, try_index)
    }

    /// The timing history early flake detection compares the first try
    /// with, when the job asks for it. Without a history (the suite's first
    /// run, or one that cannot be read) every test would look new: the
    /// first run only records what the next ones compare with.
    async fn history_for_new_tests(&self) -> Option<Timings> {
        let check = self.job.new_tests.as_ref()?;
        let bytes = self.ports.blobs.get(&check.history_key).await.ok()?;
        match Timings::from_json(&String::from_utf8_lossy(&bytes), &check.history_key) {
            Ok(t) if !t.is_empty() => Some(t),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(key = %check.history_key, error = %e, "no early flake detection: unreadable timing history");
                None
            }
        }
    }

    async fn fetch_source(&self, tree: &Path) -> Result<(), HandlerError> {
        let archive = self.work.join("source.tar.gz");
        self.ports
            .blobs
            .get_to_file(&self.job.source_key, &archive)
            .await?;
        std::fs::create_dir_all(tree).map_err(io("creating the source directory"))?;
        let tree = tree.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&archive)?;
            extract_tar_gz(
                std::io::BufReader::new(file),
                &tree,
                &SnapshotLimits::default(),
                false,
            )
            .map_err(std::io::Error::other)
        })
        .await
        .map_err(|e| HandlerError::Io {
            context: "extracting the source".into(),
            source: std::io::Error::other(e),
        })?
        .map_err(io("extracting the source"))?;
        Ok(())
    }

    fn env(&self, suite: &Suite, expansion: &Expansion) -> Vec<(String, String)> {
        let run_id = expansion.run_id;
        let suite_env: Vec<(String, String)> = suite.env_vars(expansion).into_iter().collect();
        let ours = vec![
            ("CI".to_string(), "true".to_string()),
            ("TESTEXEC".to_string(), "1".to_string()),
            ("TESTEXEC_RUN_ID".to_string(), run_id.to_string()),
            (
                "TESTEXEC_SHARD".to_string(),
                self.job.shard.index.to_string(),
            ),
            (
                "TESTEXEC_SHARD_COUNT".to_string(),
                self.job.shard_count.to_string(),
            ),
            ("TESTEXEC_ATTEMPT".to_string(), self.attempt.to_string()),
        ];
        process::child_env(&self.settings.passthrough_env, &suite_env, &ours)
    }

    async fn command(
        &self,
        argv: Vec<String>,
        cwd: &Path,
        env: &[(String, String)],
        deadline: Instant,
        log: &mut LogCapture,
    ) -> CommandEnd {
        let timeout = deadline.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            log.line("testexec: no time left before the suite's timeout");
            return CommandEnd::TimedOut;
        }
        process::run(
            &CommandSpec {
                argv,
                cwd: cwd.to_path_buf(),
                env: env.to_vec(),
                timeout,
            },
            log,
        )
        .await
    }
}

fn errored(reason: String, exit_code: Option<i32>) -> Execution {
    Execution::Errored { reason, exit_code }
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> HandlerError {
    move |source| HandlerError::Io {
        context: context.to_string(),
        source,
    }
}

fn describe_argv(argv: &[String]) -> String {
    format!("`{}`", argv.join(" "))
}

/// Finds the JUnit files a try wrote and moves them aside, so the next try's
/// globs only see its own files. Returns `(upload name, path)` pairs.
fn collect_junit(
    cwd: &Path,
    globs: &[String],
    junit_dir: &Path,
    try_index: u32,
) -> Result<JunitFiles, HandlerError> {
    let kept = junit_dir.join(format!("kept-{try_index}"));
    let mut out = Vec::new();
    for (n, path) in crate::domain::output_glob::find_matching(cwd, globs)
        .into_iter()
        .enumerate()
    {
        std::fs::create_dir_all(&kept).map_err(io("keeping JUnit files"))?;
        let base = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "junit.xml".into());
        let name = junit_upload_name(try_index, n, &base);
        let dest = kept.join(&name);
        std::fs::rename(&path, &dest)
            .or_else(|_| std::fs::copy(&path, &dest).map(|_| ()))
            .map_err(io("keeping JUnit files"))?;
        out.push((name, dest));
    }
    Ok(out)
}

/// Upload name of the `n`-th JUnit file found after try `try_index` (0 is
/// the first run of the command, 1.. its retries). Zero-padded so the blob
/// store's sorted listing is write order (collect reads the files by
/// listing, and groups them by try with [`try_of_junit_key`]).
pub fn junit_upload_name(try_index: u32, n: usize, base: &str) -> String {
    format!("try-{try_index:03}-{n:06}-{base}")
}

/// The try whose JUnit file `key` is: [`junit_upload_name`] read back from
/// the key's last component. `None` for a name it did not make.
pub fn try_of_junit_key(key: &str) -> Option<u32> {
    let name = key.rsplit('/').next()?;
    let (index, _) = name.strip_prefix("try-")?.split_once('-')?;
    if !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    index.parse().ok()
}

/// Most new tests one shard runs again: more than this many tests no run
/// has seen at once is a renamed suite or a lost history, not new code, and
/// running them all again would multiply the shard's time.
pub const MAX_NEW_TESTS: usize = 500;

/// ...nor more than this share of the shard's tests, past a small shard.
const MAX_NEW_SHARE: f64 = 0.3;
const SMALL_SHARD_TESTS: usize = 50;

/// What execute needs of a try's JUnit: how many cases it holds, the
/// failing ones and the ones the history has never seen, by identity only.
struct FirstLook {
    total: usize,
    /// Failing cases without their texts: a retry needs only what selects
    /// them, so memory grows with the failures, not with the tests or the
    /// size of their output.
    failing: Vec<TestCase>,
    /// New tests (when a history was given), at most [`MAX_NEW_TESTS`] + 1.
    new: Vec<TestCase>,
}

impl FirstLook {
    /// The new tests to run again, unless there are too many to be new code.
    fn new_tests(&self) -> Option<&[TestCase]> {
        if self.new.is_empty() {
            return None;
        }
        let share = self.new.len() as f64 / self.total.max(1) as f64;
        let too_many = self.new.len() > MAX_NEW_TESTS
            || (self.total >= SMALL_SHARD_TESTS && share > MAX_NEW_SHARE);
        if too_many {
            tracing::info!(
                new = self.new.len(),
                total = self.total,
                "no early flake detection: too many tests are new to the history"
            );
            return None;
        }
        Some(&self.new)
    }
}

/// Streams the given files; unreadable files are collect's business (it
/// reports them), here they just contribute no retries. A file that breaks
/// midway keeps what it gave, which only widens a retry. With a `history`,
/// also notes the tests it has never seen.
fn read_cases(files: &JunitFiles, history: Option<&Timings>) -> FirstLook {
    let mut look = FirstLook {
        total: 0,
        failing: Vec::new(),
        new: Vec::new(),
    };
    let limits = crate::domain::junit::Limits::default();
    for (_, path) in files {
        let Ok(file) = crate::domain::junit::open_report(path) else {
            continue;
        };
        let path = path.display().to_string();
        let _ = crate::domain::junit::stream_refs(file, &path, &limits, |case| {
            look.total += 1;
            let failed = case.outcome.is_failure();
            // Only a failing case, or any with a history to check, is
            // copied out of the reader's buffers.
            if !failed && history.is_none() {
                return;
            }
            let identity = CaseRef {
                message: None,
                details: None,
                system_out: None,
                system_err: None,
                retries: Vec::new(),
                ..case
            }
            .into_owned();
            let new = history.is_some_and(|h| h.never_saw(&identity))
                && look.new.len() <= MAX_NEW_TESTS
                && !matches!(identity.outcome, Outcome::Skipped);
            if !(failed || new) {
                return;
            }
            match (failed, new) {
                (true, true) => {
                    look.new.push(identity.clone());
                    look.failing.push(identity);
                }
                (true, false) => look.failing.push(identity),
                _ => look.new.push(identity),
            }
        });
    }
    look
}

/// What a retry re-runs: failing tests by selector when the command takes
/// `{tests}`, else the shard's files that had failures.
struct Rerun {
    files: Vec<String>,
    tests: Vec<String>,
}

impl Rerun {
    fn of(suite: &Suite, shard_files: &[String], cases: &[TestCase]) -> Self {
        let failing = cases.iter().filter(|c| c.outcome.is_failure());
        let (mut files, mut tests) = (Vec::new(), Vec::new());
        if suite.supports_test_selection() {
            tests = failing.map(|c| suite.test_id.selector(c)).collect();
        } else if suite.command.iter().any(|a| a == "{files}") {
            // Only files of this shard: a derived file name that matches
            // none of them cannot be re-run safely.
            files = failing
                .filter_map(|c| c.file.as_deref())
                .filter(|f| shard_files.iter().any(|s| s == f))
                .map(str::to_string)
                .collect();
        }
        for list in [&mut files, &mut tests] {
            list.sort();
            list.dedup();
        }
        Self { files, tests }
    }

    /// These tests by selector (the suite takes `{tests}`).
    fn tests_of(suite: &Suite, cases: &[TestCase]) -> Self {
        let mut tests: Vec<String> = cases.iter().map(|c| suite.test_id.selector(c)).collect();
        tests.sort();
        tests.dedup();
        Self {
            files: Vec::new(),
            tests,
        }
    }

    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.tests.is_empty()
    }

    fn describe(&self) -> String {
        if self.tests.is_empty() {
            format!("{} files with failures", self.files.len())
        } else {
            format!("{} failing tests", self.tests.len())
        }
    }
}
