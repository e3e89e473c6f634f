//! CTRF JSON (`report.json`), following ctrf-io/ctrf `schema/ctrf.schema.json`
//! (committed as `fixtures/ctrf/ctrf.schema.json`; the tests validate against it).
//!
//! The schema forbids unknown properties almost everywhere, so everything
//! testexec-specific goes into `extra` objects. CTRF has no "error" status:
//! errors are `failed` with `rawStatus: "error"`; flaky tests are `passed`
//! with `flaky: true` and `rawStatus: "flaky"`.

use serde::ser::{Error as _, Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value, json};

use super::{CaseSource, ReportInput, secs};
use crate::domain::model::{Attempt, Outcome, TestCase};

/// The CTRF version this writer follows: the one the specification text at
/// the committed schema's commit names (pre-1.0).
pub const SPEC_VERSION: &str = "0.0.0";

/// CTRF's status for an outcome.
pub fn status(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed | Outcome::Flaky => "passed",
        Outcome::Failed | Outcome::Error => "failed",
        Outcome::Skipped => "skipped",
    }
}

/// Seconds to CTRF's integer milliseconds (bad values become 0).
fn ms(seconds: f64) -> u64 {
    // `as` saturates for huge values, and `secs` removed NaN and negatives.
    (secs(seconds) * 1000.0).round() as u64
}

/// The whole document (tests and small runs: it is all in memory).
pub fn to_json(input: &ReportInput<'_>) -> Value {
    let doc = Document {
        head: head(input),
        cases: input.cases,
    };
    // Serialising our own Values cannot fail.
    serde_json::to_value(&doc).expect("CTRF document serialises")
}

/// Writes the CTRF document without holding it in memory: the per-test
/// entries (the bulk of a large run) are built and written one at a time.
pub fn write(input: &ReportInput<'_>, out: impl std::io::Write) -> serde_json::Result<()> {
    serde_json::to_writer_pretty(
        out,
        &Document {
            head: head(input),
            cases: input.cases,
        },
    )
}

/// The document around `results.tests`: everything but the per-test list,
/// which [`Document`] fills in as it is serialised.
fn head(input: &ReportInput<'_>) -> Value {
    let run = input.run;
    let c = input.counts();
    let start = input.start_ms();
    let stop = input.stop_ms();
    let suites = input.digest.suites.len();
    let tool = if input.tool_name.is_empty() {
        "testexec"
    } else {
        input.tool_name
    };

    let mut environment = Map::new();
    environment.insert("repositoryName".into(), json!(run.source.repo));
    if let Some(commit) = &run.source.commit {
        environment.insert("commit".into(), json!(commit));
    }
    if let Some(git_ref) = &run.source.git_ref {
        let branch = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref);
        environment.insert("branchName".into(), json!(branch));
    }
    if !run.suite.is_empty() {
        environment.insert("reportName".into(), json!(run.suite));
    }

    let mut results_extra = Map::new();
    results_extra.insert("runStatus".into(), json!(run.status.as_str()));
    if let Some(triage) = input.triage {
        // The four groups as the summary shows them, under one key.
        results_extra.insert("history".into(), json!(triage));
    }
    results_extra.insert("shardCount".into(), json!(input.shards.len()));
    if let Some(error) = &run.error {
        results_extra.insert("runError".into(), json!(error));
    }
    results_extra.insert(
        "shards".into(),
        Value::Array(
            input
                .shards
                .iter()
                .map(|s| {
                    let mut m = Map::new();
                    m.insert("index".into(), json!(s.id.index));
                    m.insert("status".into(), json!(s.status.as_str()));
                    m.insert("tests".into(), json!(s.counts.tests));
                    m.insert("estimatedMs".into(), json!(ms(s.estimated_secs)));
                    if let Some(v) = s.started_ms {
                        m.insert("start".into(), json!(v));
                    }
                    if let Some(v) = s.finished_ms {
                        m.insert("stop".into(), json!(v));
                    }
                    if let Some(e) = &s.error {
                        m.insert("error".into(), json!(e));
                    }
                    Value::Object(m)
                })
                .collect(),
        ),
    );

    json!({
        "reportFormat": "CTRF",
        "specVersion": SPEC_VERSION,
        "runId": run.id.to_string(),
        "generatedBy": "testexec",
        "results": {
            "tool": { "name": tool },
            "summary": {
                "tests": c.tests,
                "passed": c.passed + c.flaky,
                "failed": c.failed + c.errors,
                "skipped": c.skipped,
                "pending": 0,
                "other": 0,
                "flaky": c.flaky,
                "suites": suites,
                "start": start,
                "stop": stop,
                "duration": stop - start,
                "extra": { "errors": c.errors },
            },
            "tests": Value::Null,
            "environment": environment,
            "extra": results_extra,
        },
    })
}

/// The head document with its `results.tests` produced lazily.
struct Document<'a> {
    head: Value,
    cases: &'a dyn CaseSource,
}

/// `results` with its `tests` produced lazily.
struct Results<'a> {
    results: &'a Map<String, Value>,
    cases: &'a dyn CaseSource,
}

/// The per-test entries, one `Value` alive at a time, read from the source
/// as they are written.
struct Tests<'a>(&'a dyn CaseSource);

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(top) = &self.head else {
            return self.head.serialize(s);
        };
        let mut map = s.serialize_map(Some(top.len()))?;
        for (key, value) in top {
            match value {
                Value::Object(results) if key == "results" => map.serialize_entry(
                    key,
                    &Results {
                        results,
                        cases: self.cases,
                    },
                )?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

impl Serialize for Results<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.results.len()))?;
        for (key, value) in self.results {
            if key == "tests" {
                map.serialize_entry(key, &Tests(self.cases))?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl Serialize for Tests<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        let mut failed = None;
        let read = self.0.for_each(&mut |_, shard, case| {
            seq.serialize_element(&test(shard, case)).map_err(|e| {
                failed = Some(e);
                std::io::Error::other("writing a test entry failed")
            })
        });
        if let Some(e) = failed {
            return Err(e);
        }
        read.map_err(S::Error::custom)?;
        seq.end()
    }
}

fn test(shard: u32, case: &TestCase) -> Value {
    let mut t = Map::new();
    // The schema requires a non-empty name.
    let name = if case.name.is_empty() {
        "(unnamed)"
    } else {
        case.name.as_str()
    };
    t.insert("name".into(), json!(name));
    t.insert("status".into(), json!(status(case.outcome)));
    t.insert("duration".into(), json!(ms(case.duration_secs)));
    let key = case.key();
    if !key.is_empty() {
        t.insert("testId".into(), json!(key));
    }
    if !case.suite.is_empty() {
        t.insert("suite".into(), json!([case.suite]));
    }
    if let Some(file) = &case.file {
        t.insert("filePath".into(), json!(file));
    }
    if let Some(line) = case.line {
        t.insert("line".into(), json!(line));
    }
    if let Some(message) = &case.message {
        t.insert("message".into(), json!(message));
    }
    if let Some(details) = &case.details {
        t.insert("trace".into(), json!(details));
    }
    // Keep the distinctions CTRF's status folds away.
    if matches!(case.outcome, Outcome::Error | Outcome::Flaky) {
        t.insert("rawStatus".into(), json!(case.outcome.as_str()));
    }
    if !case.retries.is_empty() {
        // `retries` equals the number of `retryAttempts` entries (spec 9.20);
        // the entries are the earlier attempts, numbered from 1.
        t.insert("retries".into(), json!(case.retries.len()));
        t.insert(
            "retryAttempts".into(),
            Value::Array(
                case.retries
                    .iter()
                    .enumerate()
                    .map(|(i, a)| attempt(i + 1, a))
                    .collect(),
            ),
        );
    }
    if case.outcome == Outcome::Flaky {
        t.insert("flaky".into(), json!(true));
    }
    if let Some(out) = &case.system_out {
        t.insert("stdout".into(), json!(out.lines().collect::<Vec<_>>()));
    }
    if let Some(err) = &case.system_err {
        t.insert("stderr".into(), json!(err.lines().collect::<Vec<_>>()));
    }
    let mut extra = Map::new();
    extra.insert("shard".into(), json!(shard));
    if !case.classname.is_empty() {
        extra.insert("classname".into(), json!(case.classname));
    }
    if case.file_derived {
        extra.insert("fileDerived".into(), json!(true));
    }
    t.insert("extra".into(), Value::Object(extra));
    Value::Object(t)
}

fn attempt(number: usize, a: &Attempt) -> Value {
    let mut m = Map::new();
    m.insert("attempt".into(), json!(number));
    m.insert("status".into(), json!(status(a.outcome)));
    if let Some(d) = a.duration_secs {
        m.insert("duration".into(), json!(ms(d)));
    }
    if let Some(msg) = &a.message {
        m.insert("message".into(), json!(msg));
    }
    if let Some(trace) = &a.details {
        m.insert("trace".into(), json!(trace));
    }
    if a.outcome == Outcome::Error {
        m.insert("extra".into(), json!({ "rawStatus": "error" }));
    }
    Value::Object(m)
}
