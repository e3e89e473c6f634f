//! The domain model shared by every handler, backend and report writer.
//!
//! Ids are ULIDs so that they sort by creation time (a run listing is a range
//! scan in every store) and can be minted on any worker without coordination.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::errors::IdError;

/// Identifies one run. Displays as the 26-character Crockford base32 ULID.
/// Parsed (text and JSON alike) by [`FromStr`], which refuses what the
/// ULID decoder would silently wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct RunId(Ulid);

impl RunId {
    /// A fresh id for a run starting now.
    pub fn new() -> Self {
        Self(Ulid::new())
    }

    /// The id's creation time in milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for RunId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = Ulid::from_string(s).map_err(|_| IdError::InvalidRunId {
            value: truncate_for_error(s),
        })?;
        // 26 base32 characters carry 130 bits for a 128-bit ULID: the
        // decoder drops the top two, so `8…` would decode as the id `0…`.
        if !matches!(s.as_bytes().first(), Some(b'0'..=b'7')) {
            return Err(IdError::RunIdOverflow {
                value: truncate_for_error(s),
            });
        }
        Ok(Self(id))
    }
}

impl TryFrom<String> for RunId {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> Self {
        id.to_string()
    }
}

/// Identifies one shard of a run: `<run_id>/<index>`, index counted from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ShardId {
    pub run: RunId,
    pub index: u32,
}

impl ShardId {
    pub fn new(run: RunId, index: u32) -> Self {
        Self { run, index }
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.run, self.index)
    }
}

impl FromStr for ShardId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || IdError::InvalidShardId {
            value: truncate_for_error(s),
        };
        let (run, index) = s.split_once('/').ok_or_else(invalid)?;
        Ok(Self {
            run: run.parse().map_err(|_| invalid())?,
            index: index.parse().map_err(|_| invalid())?,
        })
    }
}

impl From<ShardId> for String {
    fn from(id: ShardId) -> Self {
        id.to_string()
    }
}

impl TryFrom<String> for ShardId {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Untrusted ids end up in error messages; keep those messages short.
fn truncate_for_error(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The final verdict on one test case.
///
/// `Flaky` follows CTRF's rule: the test passed in the end after at least one
/// failed attempt. `Error` is a test that could not run to a verdict (an
/// exception outside the assertion, a crash, a failed fixture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed,
    Error,
    Skipped,
    Flaky,
}

impl Outcome {
    /// True when the outcome should fail a run.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Error)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
            Outcome::Flaky => "flaky",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One earlier attempt of a test that was re-run (surefire `flakyFailure`,
/// `rerunFailure`, nextest retries, or a repeated `<testcase>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// One test case as read from a report, after its attempts were folded into
/// a single outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestCase {
    /// Name of the innermost enclosing `<testsuite>` ("" when it had none).
    pub suite: String,
    /// The `classname` attribute ("" when absent).
    pub classname: String,
    pub name: String,
    /// Source file: the `file` attribute, or derived from classname/suite
    /// (see `file_derived`). Shard planning keys timings by this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// True when `file` was not written by the test runner but inferred.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub file_derived: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Wall time of the final attempt, in seconds (never negative).
    pub duration_secs: f64,
    pub outcome: Outcome,
    /// Failure/error/skip message (capped, see the JUnit reader's limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Stack trace or failure body text (capped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_out: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_err: Option<String>,
    /// Earlier attempts, oldest first; empty when the test ran once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<Attempt>,
}

impl TestCase {
    /// A case with just an identity and a verdict; everything else empty.
    pub fn new(suite: &str, classname: &str, name: &str, outcome: Outcome) -> Self {
        Self {
            suite: suite.into(),
            classname: classname.into(),
            name: name.into(),
            file: None,
            file_derived: false,
            line: None,
            duration_secs: 0.0,
            outcome,
            message: None,
            details: None,
            system_out: None,
            system_err: None,
            retries: Vec::new(),
        }
    }

    /// A stable identity for the test across runs: used for timing history,
    /// flake detection and "rerun failed".
    pub fn key(&self) -> String {
        test_key(&self.suite, &self.classname, &self.name)
    }
}

/// [`TestCase::key`] from the three parts, for callers holding borrowed
/// ones (the JUnit reader's lent cases).
pub fn test_key(suite: &str, classname: &str, name: &str) -> String {
    let scope = if classname.is_empty() {
        suite
    } else {
        classname
    };
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}::{name}")
    }
}

/// Longest duration testexec records, for one test and for any sum of
/// durations (a suite, a file's history, a run): 1e9 s, about 31 years.
/// Longer is a broken clock or writer, and the bound keeps every figure
/// finite: JSON has no `inf` (serde_json writes `null`), and timing history
/// written by testexec stays within what it reads back.
pub const MAX_DURATION_SECS: f64 = 1e9;

/// `total + secs`, capped at [`MAX_DURATION_SECS`] (NaN and negatives
/// count as 0): a sum of durations that can never overflow.
pub fn add_duration(total: f64, secs: f64) -> f64 {
    let secs = if secs.is_finite() && secs > 0.0 {
        secs
    } else {
        0.0
    };
    (total + secs).min(MAX_DURATION_SECS)
}

/// Counts of test cases by outcome. `tests` counts every case once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub tests: u64,
    pub passed: u64,
    pub failed: u64,
    pub errors: u64,
    pub skipped: u64,
    pub flaky: u64,
}

impl Counts {
    pub fn record(&mut self, outcome: Outcome) {
        self.tests += 1;
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Error => self.errors += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Flaky => self.flaky += 1,
        }
    }

    pub fn add(&mut self, other: &Counts) {
        self.tests += other.tests;
        self.passed += other.passed;
        self.failed += other.failed;
        self.errors += other.errors;
        self.skipped += other.skipped;
        self.flaky += other.flaky;
    }

    /// True when no test failed or errored.
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && self.errors == 0
    }
}

/// Where a run's source comes from. `repo` is `owner/name` for GitHub, or a
/// label such as `local/<dir name>` for local runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    pub repo: String,
    /// Full commit SHA when known (always for GitHub runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Branch or tag ref, e.g. `refs/heads/main`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ref")]
    pub git_ref: Option<String>,
    /// A local directory (local runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// What started a run. Kept on the run so reports and notifiers can link back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// `testexec run` or `testexec serve`'s POST /runs.
    Local,
    /// A scheduled invocation (EventBridge, Cloud Scheduler).
    Schedule,
    /// A direct invocation (console test event, CLI `invoke`).
    Invoke,
    /// A GitHub webhook delivery.
    GitHub {
        event: String,
        delivery: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        installation_id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check_run_id: Option<u64>,
        /// Who caused the delivery (`sender.login`): with `delivery`, the
        /// audit trail the runs page shows. Absent on runs recorded before
        /// it was kept, and when the payload's login was not a plausible one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<String>,
    },
}

impl Origin {
    /// What started the run, for people: `push`, `pull request`,
    /// `schedule`, `local` (`testexec run` or `POST /runs`), `invoke`.
    pub fn trigger(&self) -> String {
        match self {
            Origin::Local => "local".into(),
            Origin::Schedule => "schedule".into(),
            Origin::Invoke => "invoke".into(),
            Origin::GitHub { event, .. } => event.replace('_', " "),
        }
    }
}

/// Lifecycle of a run. `Running → Reporting` is the single hand-off to the
/// report handler (a conditional write, so exactly one collector wins);
/// `Reporting → Passed | Failed | Errored` is the final write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Reporting,
    Passed,
    Failed,
    Errored,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Reporting,
        RunStatus::Passed,
        RunStatus::Failed,
        RunStatus::Errored,
    ];

    /// The status a store wrote as [`RunStatus::as_str`].
    pub fn from_name(name: &str) -> Option<RunStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == name)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Passed | RunStatus::Failed | RunStatus::Errored
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Reporting => "reporting",
            RunStatus::Passed => "passed",
            RunStatus::Failed => "failed",
            RunStatus::Errored => "errored",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run as the run store keeps it. Counters are the sums over completed
/// shards; they are only ever changed together with a shard's completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub source: SourceRef,
    pub origin: Origin,
    pub suite: String,
    pub status: RunStatus,
    pub shard_count: u32,
    pub shards_done: u32,
    pub counts: Counts,
    pub created_ms: u64,
    /// When the sweep may give up on shards that have not reported: creation
    /// plus the suite's timeout, with room for queueing.
    pub deadline_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// Why the run errored, when it did (e.g. the shards that never reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Lifecycle of one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardStatus {
    Pending,
    Passed,
    Failed,
    /// The shard could not produce a verdict: setup failed, timeout, no JUnit
    /// written, worker lost. Never reported as "0 tests, passed".
    Errored,
}

impl ShardStatus {
    pub const ALL: [ShardStatus; 4] = [
        ShardStatus::Pending,
        ShardStatus::Passed,
        ShardStatus::Failed,
        ShardStatus::Errored,
    ];

    /// The status a store wrote as [`ShardStatus::as_str`].
    pub fn from_name(name: &str) -> Option<ShardStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ShardStatus::Pending => "pending",
            ShardStatus::Passed => "passed",
            ShardStatus::Failed => "failed",
            ShardStatus::Errored => "errored",
        }
    }
}

impl fmt::Display for ShardStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shard as the run store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub id: ShardId,
    pub status: ShardStatus,
    /// Planned duration, for the timeline's "planned vs actual".
    pub estimated_secs: f64,
    pub file_count: u32,
    /// Set once the shard is completed: which execution attempt was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub counts: Counts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ShardRecord {
    pub fn pending(id: ShardId, estimated_secs: f64, file_count: u32) -> Self {
        Self {
            id,
            status: ShardStatus::Pending,
            estimated_secs,
            file_count,
            attempt: None,
            counts: Counts::default(),
            started_ms: None,
            finished_ms: None,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_id_round_trips_through_text_and_json() {
        let id = ShardId::new(RunId::new(), 7);
        let text = id.to_string();
        assert_eq!(text.parse::<ShardId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<ShardId>(&json).unwrap(), id);
    }

    #[test]
    fn bad_ids_are_rejected_with_the_value() {
        let err = "not-a-ulid".parse::<RunId>().unwrap_err();
        assert!(err.to_string().contains("not-a-ulid"));
        assert!("01HZZZZZZZZZZZZZZZZZZZZZZZ".parse::<ShardId>().is_err());
        assert!(format!("{}/x", RunId::new()).parse::<ShardId>().is_err());
    }

    /// 26 base32 characters hold 130 bits and a ULID has 128, so the first
    /// character is 0-7. A larger one overflows: the decoder drops the top
    /// bits and `8…` would be read as the id `0…`, another run.
    #[test]
    fn run_ids_with_an_overflowing_first_character_are_rejected() {
        let max = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ";
        assert_eq!(max.parse::<RunId>().unwrap().to_string(), max);
        let id = RunId::new().to_string();
        for first in "89ABCDEFGHJKMNPQRSTVWXYZabcdefghjkmnpqrstvwxyz".chars() {
            let bad = format!("{first}{}", &id[1..]);
            let err = bad.parse::<RunId>().unwrap_err();
            assert!(err.to_string().contains(&bad), "{err}");
            assert!(err.to_string().contains("0-7"), "{err}");
            assert!(format!("{bad}/0").parse::<ShardId>().is_err(), "{bad}");
            let json = format!("\"{bad}\"");
            assert!(serde_json::from_str::<RunId>(&json).is_err(), "{json}");
        }
    }

    #[test]
    fn run_ids_sort_by_creation() {
        let a = RunId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = RunId::new();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn counts_record_each_outcome_once() {
        let mut c = Counts::default();
        for o in [
            Outcome::Passed,
            Outcome::Failed,
            Outcome::Error,
            Outcome::Skipped,
            Outcome::Flaky,
        ] {
            c.record(o);
        }
        assert_eq!(
            c,
            Counts {
                tests: 5,
                passed: 1,
                failed: 1,
                errors: 1,
                skipped: 1,
                flaky: 1
            }
        );
        assert!(!c.all_passed());
    }

    #[test]
    fn case_key_prefers_classname_then_suite() {
        let mut case = TestCase::new("s", "pkg.Class", "t", Outcome::Passed);
        assert_eq!(case.key(), "pkg.Class::t");
        case.classname.clear();
        assert_eq!(case.key(), "s::t");
    }
}
