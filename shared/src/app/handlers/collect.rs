//! collect: apply each shard result to the run exactly once.
//!
//! Duplicated and late deliveries are normal (at-least-once queues, a
//! redelivered job executed twice). The run store's conditional
//! `complete_shard` decides which result counts; `begin_report` decides which
//! collector hands the finished run to report. Both are safe to repeat, so
//! a collector that crashes anywhere can simply be retried.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use tracing::Instrument;

use crate::app::handlers::execute::try_of_junit_key;
use crate::app::handlers::{Ports, decode, encode};
use crate::app::messages::{Execution, MESSAGE_VERSION, QueueName, ReportJob, ShardResult, keys};
use crate::app::ports::{Completion, ShardCompletion, content_type};
use crate::domain::junit::{self, Limits};
use crate::domain::model::{Attempt, Counts, Outcome, ShardStatus, TestCase};
use crate::errors::HandlerError;

/// Longest error text stored on a shard (the log holds the rest).
const MAX_SHARD_ERROR_BYTES: usize = 8 * 1024;

/// What collect did with one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectOutcome {
    /// This result completed its shard.
    Applied {
        status: ShardStatus,
        handed_to_report: bool,
    },
    /// The shard was already completed by another delivery.
    Duplicate { handed_to_report: bool },
}

pub async fn collect(ports: &Ports, body: &str) -> Result<CollectOutcome, HandlerError> {
    let result: ShardResult = decode("shard result", body)?;
    let span = tracing::info_span!("collect", run_id = %result.shard.run, shard_id = %result.shard, attempt = result.attempt);
    apply(ports, result).instrument(span).await
}

/// The work of [`collect`], inside the run/shard span.
async fn apply(ports: &Ports, result: ShardResult) -> Result<CollectOutcome, HandlerError> {
    // The cases are spooled to a file in here, never held as a whole.
    let scratch = tempfile::Builder::new()
        .prefix("testexec-collect-")
        .tempdir()
        .map_err(|source| HandlerError::Io {
            context: "creating collect's scratch directory".into(),
            source,
        })?;
    let spooled = read_results(ports, &result, scratch.path()).await?;
    let counts = spooled.counts;
    let (status, error) = match &result.execution {
        Execution::Completed { .. } => {
            let unreadable = &spooled.unreadable;
            let status = if !unreadable.is_empty() {
                ShardStatus::Errored
            } else if counts.failed + counts.errors == 0 {
                ShardStatus::Passed
            } else {
                ShardStatus::Failed
            };
            let error = (!unreadable.is_empty()).then(|| unreadable.join("\n"));
            (status, error)
        }
        Execution::Errored { reason, .. } => {
            // Keep whatever JUnit the shard did write: a timeout midway still
            // tells which tests ran.
            let mut error = reason.clone();
            if !result.log_tail.is_empty() {
                error.push_str("\n--- last lines of the log ---\n");
                error.push_str(&result.log_tail);
            }
            (ShardStatus::Errored, Some(error))
        }
    };

    // Cases first: once the shard is marked complete, report may read them.
    ports
        .blobs
        .put_file(
            &keys::cases(result.shard, result.attempt),
            &spooled.path,
            content_type::JSON_LINES,
        )
        .await?;
    drop(scratch);

    let completion = ShardCompletion {
        shard: result.shard,
        attempt: result.attempt,
        status,
        counts,
        started_ms: result.started_ms,
        finished_ms: result.finished_ms,
        error: error.map(|e| truncate_bytes(e, MAX_SHARD_ERROR_BYTES)),
    };
    let applied = ports.store.complete_shard(&completion).await?;
    let all_done = match applied {
        Completion::Applied {
            shards_done,
            shard_count,
        } => shards_done >= shard_count,
        // A retry of a collect that crashed before its hand-off must still
        // be able to make it; begin_report stays the single arbiter.
        Completion::AlreadyCompleted => true,
    };
    let handed_to_report = all_done && ports.store.begin_report(result.shard.run).await?;
    if handed_to_report {
        let job = ReportJob {
            v: MESSAGE_VERSION,
            run: result.shard.run,
        };
        ports
            .queue
            .send_batch(QueueName::Reports, vec![encode(&job)])
            .await?;
        tracing::info!("last shard collected; run handed to report");
    }
    Ok(match applied {
        Completion::Applied { .. } => {
            crate::app::metrics::shard_completed(status, result.started_ms, result.finished_ms);
            CollectOutcome::Applied {
                status,
                handed_to_report,
            }
        }
        Completion::AlreadyCompleted => {
            tracing::info!("duplicate shard result ignored");
            CollectOutcome::Duplicate { handed_to_report }
        }
    })
}

/// A result's folded cases, as JSON lines in a local file.
struct Spooled {
    path: PathBuf,
    counts: Counts,
    /// Unreadable files, named: never dropped silently.
    unreadable: Vec<String>,
}

/// Reads the result's JUnit files and folds retries into single cases,
/// spooling them to `dir/cases.jsonl` with the semantics of [`fold_files`].
///
/// Memory: each file is downloaded to `dir` and streamed (one case and the
/// reader's buffers at a time). Without retries, the first try's cases go
/// straight to the spool. With retries, the later tries' cases are held
/// (they are the re-run failures, usually few) along with the first try's
/// cases that share a key with one of them; the first try is spooled once,
/// then copied line by line with those cases replaced by their folded form.
/// So the bound is the later tries' cases, never the first try's.
async fn read_results(
    ports: &Ports,
    result: &ShardResult,
    dir: &Path,
) -> Result<Spooled, HandlerError> {
    let keys = if result.junit_keys.is_empty() {
        let keys = ports
            .blobs
            .list(&keys::junit_prefix(result.shard, result.attempt))
            .await?;
        if keys.len() != result.junit_files as usize {
            // Execute uploads every file before it sends the result, so a
            // short listing is a store that lost data: retry, then DLQ.
            return Err(HandlerError::Io {
                context: format!(
                    "listing the JUnit files of shard {} attempt {}",
                    result.shard, result.attempt
                ),
                source: std::io::Error::other(format!(
                    "found {} of the {} files execute uploaded",
                    keys.len(),
                    result.junit_files
                )),
            });
        }
        keys
    } else {
        result.junit_keys.clone()
    };
    let mut tries: BTreeMap<u32, Vec<&String>> = BTreeMap::new();
    for key in &keys {
        tries
            .entry(try_of_junit_key(key).unwrap_or(0))
            .or_default()
            .push(key);
    }
    let first: Vec<&String> = tries.remove(&0).unwrap_or_default();
    let mut unreadable = Vec::new();
    let local = dir.join("junit.xml");

    // Later tries, whole: what folding matches against.
    let mut later: Vec<Vec<TestCase>> = Vec::new();
    for keys in tries.values() {
        let mut cases = Vec::new();
        for key in keys {
            ports.blobs.get_to_file(key, &local).await?;
            let outcome = junit::open_report(&local)
                .and_then(|file| junit::read(file, key, &Limits::default()))
                .map_err(|e| e.with_line_from(&local));
            match outcome {
                Ok(report) => cases.extend(report.cases),
                Err(e) => unreadable.push(format!("unreadable JUnit `{key}`: {e}")),
            }
        }
        later.push(cases);
    }
    let refolded: HashSet<String> = later.iter().flatten().map(TestCase::key).collect();

    let out = dir.join("cases.jsonl");
    let first_path = if later.is_empty() {
        out.clone()
    } else {
        dir.join("first-try.jsonl")
    };
    let mut spool = Spool::create(&first_path)?;
    // First-try cases that a later try may fold into, by position.
    let mut held: Vec<(u64, TestCase)> = Vec::new();
    for key in first {
        ports.blobs.get_to_file(key, &local).await?;
        let mark = spool.mark()?;
        let held_before = held.len();
        let mut write_error = None;
        let outcome = junit::open_report(&local).and_then(|file| {
            // Cases are lent and encoded as they are (a `CaseRef` encodes
            // as its `TestCase`): only those a later try may fold are owned.
            junit::stream_refs(file, key, &Limits::default(), |case| {
                if write_error.is_some() {
                    return;
                }
                let position = spool.cases;
                if !refolded.is_empty() && refolded.contains(&case.key()) {
                    // Written now to keep positions; replaced in the copy.
                    if let Err(e) = spool.write_line(&encode(&case), None) {
                        write_error = Some(e);
                    }
                    held.push((position, case.into_owned()));
                } else if let Err(e) = spool.write_line(&encode(&case), Some(case.outcome)) {
                    write_error = Some(e);
                }
            })
        });
        if let Some(e) = write_error {
            return Err(e);
        }
        if let Err(e) = outcome.map_err(|e| e.with_line_from(&local)) {
            // A file that breaks midway gives no cases, as when it was read
            // whole: its verdict cannot be trusted.
            spool.rewind(mark)?;
            held.truncate(held_before);
            unreadable.push(format!("unreadable JUnit `{key}`: {e}"));
        }
    }
    spool.finish()?;
    if later.is_empty() {
        return Ok(Spooled {
            path: out,
            counts: spool.counts,
            unreadable,
        });
    }

    let positions: Vec<u64> = held.iter().map(|(p, _)| *p).collect();
    let mut tries_to_fold = vec![held.into_iter().map(|(_, c)| c).collect::<Vec<_>>()];
    tries_to_fold.extend(later);
    let folded = fold_attempts(tries_to_fold);
    let (replacements, extra) = folded.split_at(positions.len());
    let mut copy = Spool::create(&out)?;
    copy.counts = spool.counts;
    let spooled = std::fs::File::open(&first_path).map_err(spool_error(&first_path))?;
    let mut lines = BufReader::new(spooled);
    let mut line = Vec::new();
    let mut next = positions.iter().zip(replacements).peekable();
    for position in 0.. {
        line.clear();
        let n = lines
            .read_until(b'\n', &mut line)
            .map_err(spool_error(&first_path))?;
        if n == 0 {
            break;
        }
        match next.peek() {
            Some((at, case)) if **at == position => {
                copy.write_line(&encode(case), Some(case.outcome))?;
                next.next();
            }
            _ => copy.write_raw(&line)?,
        }
    }
    for case in extra {
        copy.write_line(&encode(case), Some(case.outcome))?;
    }
    copy.finish()?;
    Ok(Spooled {
        path: out,
        counts: copy.counts,
        unreadable,
    })
}

/// A JSON-lines file of cases being written, with its counts.
struct Spool {
    path: PathBuf,
    file: BufWriter<std::fs::File>,
    /// Lines written.
    cases: u64,
    counts: Counts,
}

/// Where a file's cases start, to drop them if the file turns out broken.
struct Mark {
    bytes: u64,
    cases: u64,
    counts: Counts,
}

impl Spool {
    fn create(path: &Path) -> Result<Spool, HandlerError> {
        let file = std::fs::File::create(path).map_err(spool_error(path))?;
        Ok(Spool {
            path: path.to_owned(),
            file: BufWriter::with_capacity(64 * 1024, file),
            cases: 0,
            counts: Counts::default(),
        })
    }

    /// Writes one line; `outcome` is counted (`None`: counted later).
    fn write_line(&mut self, json: &str, outcome: Option<Outcome>) -> Result<(), HandlerError> {
        self.file
            .write_all(json.as_bytes())
            .and_then(|()| self.file.write_all(b"\n"))
            .map_err(spool_error(&self.path))?;
        self.cases += 1;
        if let Some(outcome) = outcome {
            self.counts.record(outcome);
        }
        Ok(())
    }

    /// Copies a line as it is (it was counted when first written).
    fn write_raw(&mut self, line: &[u8]) -> Result<(), HandlerError> {
        self.file.write_all(line).map_err(spool_error(&self.path))?;
        self.cases += 1;
        Ok(())
    }

    fn mark(&mut self) -> Result<Mark, HandlerError> {
        self.file.flush().map_err(spool_error(&self.path))?;
        let bytes = self
            .file
            .get_mut()
            .stream_position()
            .map_err(spool_error(&self.path))?;
        Ok(Mark {
            bytes,
            cases: self.cases,
            counts: self.counts,
        })
    }

    fn rewind(&mut self, mark: Mark) -> Result<(), HandlerError> {
        self.file.flush().map_err(spool_error(&self.path))?;
        let file = self.file.get_mut();
        file.set_len(mark.bytes)
            .and_then(|()| file.seek(SeekFrom::Start(mark.bytes)).map(|_| ()))
            .map_err(spool_error(&self.path))?;
        self.cases = mark.cases;
        self.counts = mark.counts;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), HandlerError> {
        self.file.flush().map_err(spool_error(&self.path))
    }
}

fn spool_error(path: &Path) -> impl FnOnce(std::io::Error) -> HandlerError + '_ {
    move |source| HandlerError::Io {
        context: format!("spooling test cases to {}", path.display()),
        source,
    }
}

/// Folds the cases of one execution's JUnit files, given as `(key, cases)`.
///
/// Files are grouped by the try that wrote them (read from the upload name,
/// see [`junit_upload_name`](crate::app::handlers::execute::junit_upload_name)):
/// one run of the command may write many files (one per spec, per class),
/// and a test found in two of them is two tests, not a retry. A name that
/// names no try counts as the first try: only a proven later attempt folds.
pub fn fold_files(files: Vec<(String, Vec<TestCase>)>) -> Vec<TestCase> {
    let mut tries: BTreeMap<u32, Vec<TestCase>> = BTreeMap::new();
    for (key, cases) in files {
        let try_index = try_of_junit_key(&key).unwrap_or(0);
        tries.entry(try_index).or_default().extend(cases);
    }
    fold_attempts(tries.into_values().collect())
}

/// Folds several tries of the same tests into one case per test. `tries`
/// holds each try's cases: the first run, then each retry. A later try of a
/// test replaces the earlier verdict, which becomes an [`Attempt`]. A test
/// that failed and then passed is flaky (CTRF's rule), and so is one that
/// passed and then failed (early flake detection runs passing tests again).
///
/// Cases are matched by [`TestCase::key`], one to one: a try runs a test
/// once, so within one try no two cases fold into the same test (Mocha's
/// same-titled tests stay two tests, each with its own rerun). A rerun goes
/// to a still-failing test of its key first, since failures are what is
/// re-run; a case with no test left to match is kept as a test of its own.
pub fn fold_attempts(tries: Vec<Vec<TestCase>>) -> Vec<TestCase> {
    let mut out: Vec<TestCase> = Vec::new();
    // For each test in `out`: the try that last gave it a case.
    let mut given_by: Vec<usize> = Vec::new();
    // Positions in `out` of every test of a key.
    let mut slots: HashMap<String, Vec<usize>> = HashMap::new();
    for (try_no, cases) in tries.into_iter().enumerate() {
        for mut case in cases {
            let known = slots.entry(case.key()).or_default();
            let free = |at: &usize| given_by[*at] != try_no;
            let target = known
                .iter()
                .copied()
                .filter(free)
                .find(|&at| out[at].outcome.is_failure())
                .or_else(|| known.iter().copied().find(free));
            let Some(at) = target else {
                known.push(out.len());
                given_by.push(try_no);
                out.push(case);
                continue;
            };
            given_by[at] = try_no;
            let earlier = std::mem::replace(
                &mut out[at],
                TestCase {
                    retries: Vec::new(),
                    ..case.clone()
                },
            );
            let failed_before = earlier.outcome.is_failure()
                || earlier.retries.iter().any(|a| a.outcome.is_failure());
            // Only a new-test run repeats a test that passed (retries run
            // failures): a failure after a pass is as flaky as the reverse.
            let passes = |o: Outcome| matches!(o, Outcome::Passed | Outcome::Flaky);
            let passed_before =
                passes(earlier.outcome) || earlier.retries.iter().any(|a| passes(a.outcome));
            let mut retries = earlier.retries;
            retries.push(Attempt {
                outcome: earlier.outcome,
                duration_secs: Some(earlier.duration_secs),
                message: earlier.message,
                details: earlier.details,
            });
            retries.append(&mut case.retries);
            let merged = &mut out[at];
            merged.retries = retries;
            let mixed = (failed_before && passes(merged.outcome))
                || (passed_before && merged.outcome.is_failure());
            if mixed {
                merged.outcome = Outcome::Flaky;
            }
        }
    }
    out
}

pub fn count(cases: &[TestCase]) -> Counts {
    let mut counts = Counts::default();
    for case in cases {
        counts.record(case.outcome);
    }
    counts
}

fn truncate_bytes(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("\n…[truncated]");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, outcome: Outcome) -> TestCase {
        TestCase {
            duration_secs: 1.0,
            ..TestCase::new("s", "c", name, outcome)
        }
    }

    #[test]
    fn a_pass_after_a_failure_is_flaky_and_keeps_the_attempt() {
        let folded = fold_attempts(vec![
            vec![
                case("a", Outcome::Failed),
                case("b", Outcome::Passed),
                case("c", Outcome::Error),
            ],
            vec![case("a", Outcome::Passed), case("c", Outcome::Failed)],
        ]);
        assert_eq!(folded.len(), 3);
        assert_eq!(folded[0].outcome, Outcome::Flaky);
        assert_eq!(folded[0].retries.len(), 1);
        assert_eq!(folded[0].retries[0].outcome, Outcome::Failed);
        assert_eq!(folded[1].outcome, Outcome::Passed);
        assert_eq!(folded[2].outcome, Outcome::Failed);
        assert_eq!(folded[2].retries.len(), 1);
        let counts = count(&folded);
        assert_eq!(
            (counts.tests, counts.flaky, counts.failed, counts.passed),
            (3, 1, 1, 1)
        );
    }

    #[test]
    fn a_failure_after_passes_is_flaky_but_steady_outcomes_are_not() {
        // New-test runs repeat passing tests: pass, pass, fail is mixed.
        let tries = |outcomes: &[Outcome]| {
            fold_attempts(outcomes.iter().map(|o| vec![case("n", *o)]).collect())[0].outcome
        };
        use Outcome::{Failed, Passed, Skipped};
        assert_eq!(tries(&[Passed, Passed, Failed]), Outcome::Flaky);
        assert_eq!(tries(&[Passed, Failed, Failed, Failed]), Outcome::Flaky);
        assert_eq!(tries(&[Passed, Passed, Passed, Passed]), Passed);
        assert_eq!(tries(&[Failed, Failed, Failed]), Failed);
        assert_eq!(tries(&[Skipped, Skipped]), Skipped);
    }

    #[test]
    fn repeated_cases_within_one_try_are_kept_apart() {
        // Parametrised tests can share a name within one report; only a
        // later try is a retry.
        let folded = fold_attempts(vec![vec![
            case("a", Outcome::Passed),
            case("a", Outcome::Failed),
        ]]);
        assert_eq!(folded.len(), 2);
    }

    /// One spec file's report as mocha-junit-reporter writes it, with the
    /// test `cart adds an item` passing or failing.
    fn mocha_spec(spec: &str, failing: bool) -> Vec<TestCase> {
        let result = if failing {
            r#"<failure message="expected 2 to equal 1" type="AssertionError"><![CDATA[AssertionError: expected 2 to equal 1
    at Context.<anonymous> (test/cart.spec.js:14:29)]]></failure>"#
        } else {
            ""
        };
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="Mocha Tests" time="0.0020" tests="1" failures="{f}">
  <testsuite name="Root Suite" timestamp="2024-05-14T09:12:03" tests="0" file="{spec}" time="0.0000" failures="0">
  </testsuite>
  <testsuite name="cart" timestamp="2024-05-14T09:12:03" tests="1" file="{spec}" time="0.0020" failures="{f}">
    <testcase name="cart adds an item" time="0.0020" classname="adds an item">
      {result}
    </testcase>
  </testsuite>
</testsuites>"#,
            f = u8::from(failing)
        );
        junit::read(xml.as_bytes(), spec, &Limits::default())
            .unwrap()
            .cases
    }

    fn junit_key(try_index: u32, n: usize, base: &str) -> String {
        let shard = crate::domain::model::ShardId::new(crate::domain::model::RunId::new(), 0);
        keys::junit(
            shard,
            1,
            &crate::app::handlers::execute::junit_upload_name(try_index, n, base),
        )
    }

    /// mocha-junit-reporter with `mochaFile: "results/junit-[hash].xml"`
    /// (the usual Cypress setup) writes one file per spec: the files of one
    /// run of the command are one try, so a test title found in two specs
    /// is two tests, and the failing one stays failed.
    #[test]
    fn files_of_one_try_are_not_attempts_of_each_other() {
        let first_try = || {
            vec![
                (
                    junit_key(0, 0, "junit-0c1f.xml"),
                    mocha_spec("cypress/e2e/cart.cy.js", false),
                ),
                (
                    junit_key(0, 1, "junit-9ab2.xml"),
                    mocha_spec("cypress/e2e/checkout.cy.js", true),
                ),
            ]
        };
        let folded = fold_files(first_try());
        assert_eq!(folded.len(), 2);
        let c = count(&folded);
        assert_eq!((c.tests, c.passed, c.failed, c.flaky), (2, 1, 1, 0));
        assert!(folded.iter().all(|c| c.retries.is_empty()));
        assert_eq!(folded[1].message.as_deref(), Some("expected 2 to equal 1"));

        // A retry of the failing spec (try 1) is an attempt of that test.
        let mut with_retry = first_try();
        with_retry.push((
            junit_key(1, 0, "junit-77e0.xml"),
            mocha_spec("cypress/e2e/checkout.cy.js", false),
        ));
        let folded = fold_files(with_retry);
        let c = count(&folded);
        assert_eq!((c.tests, c.passed, c.failed, c.flaky), (2, 1, 0, 1));
        assert_eq!(folded[1].outcome, Outcome::Flaky);
        assert_eq!(folded[1].retries.len(), 1);
        assert_eq!(folded[1].retries[0].outcome, Outcome::Failed);
        assert!(folded[0].retries.is_empty());
    }

    /// Upload names are read back to their try; a name testexec did not
    /// make is taken as the first try, where nothing folds.
    #[test]
    fn keys_name_their_try() {
        use crate::app::handlers::execute::{junit_upload_name, try_of_junit_key};
        assert_eq!(try_of_junit_key(&junit_key(0, 3, "try-2.xml")), Some(0));
        assert_eq!(try_of_junit_key(&junit_key(12, 0, "TEST-a.xml")), Some(12));
        assert_eq!(try_of_junit_key(&junit_upload_name(1, 0, "x")), Some(1));
        for other in ["runs/r/junit/report.xml", "try-x-0-a.xml", "try-1", ""] {
            assert_eq!(try_of_junit_key(other), None, "{other}");
        }
        let folded = fold_files(vec![
            ("a/junit.xml".into(), vec![case("t", Outcome::Failed)]),
            ("b/junit.xml".into(), vec![case("t", Outcome::Passed)]),
        ]);
        assert_eq!(folded.len(), 2);
    }

    /// Two same-titled tests that both failed and were both re-run: each
    /// rerun is an attempt of one of them, failing ones first, so neither
    /// rerun is lost and no test absorbs two.
    #[test]
    fn reruns_of_same_titled_tests_fold_one_to_one() {
        let folded = fold_attempts(vec![
            vec![case("a", Outcome::Failed), case("a", Outcome::Failed)],
            vec![case("a", Outcome::Passed), case("a", Outcome::Passed)],
        ]);
        assert_eq!(folded.len(), 2);
        assert!(folded.iter().all(|c| c.outcome == Outcome::Flaky));
        assert!(folded.iter().all(|c| c.retries.len() == 1));

        // Only the failing one was re-run (a selection by id): its rerun
        // goes to it, not to the passing twin.
        let folded = fold_attempts(vec![
            vec![case("a", Outcome::Failed), case("a", Outcome::Passed)],
            vec![case("a", Outcome::Passed)],
        ]);
        assert_eq!(
            folded.iter().map(|c| c.outcome).collect::<Vec<_>>(),
            [Outcome::Flaky, Outcome::Passed]
        );
        assert!(folded[1].retries.is_empty());

        // A later try with more cases of a name than before keeps the extra
        // one as a test of its own rather than dropping it.
        let folded = fold_attempts(vec![
            vec![case("a", Outcome::Failed)],
            vec![case("a", Outcome::Passed), case("a", Outcome::Failed)],
        ]);
        assert_eq!(
            folded.iter().map(|c| c.outcome).collect::<Vec<_>>(),
            [Outcome::Flaky, Outcome::Failed]
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = truncate_bytes("ééééé".to_string(), 3);
        assert!(s.starts_with('é'));
        assert!(s.ends_with("[truncated]"));
    }
}
