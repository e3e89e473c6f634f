//! Per-test history, classification and quarantine (see `docs/flaky.md`).
//!
//! - this module: what one test's history holds ([`TestHistory`]), how a
//!   run's result is appended to it (bounded, idempotent), and the limits
//!   every store applies the same way (key length, item size, TTL);
//! - [`classify`]: healthy / flaky / broken / new from the history;
//! - [`triage`]: one run's failures sorted into new failures, known flaky,
//!   quarantined and fixed, the run's verdict, and the quarantine state;
//! - [`summary`]: one test's figures for `testexec flaky` and the dashboard.
//!
//! Everything here is pure: stores load and save [`TestHistory`] records,
//! the report handler calls these functions in between.

pub mod classify;
pub mod summary;
pub mod triage;

#[cfg(test)]
mod simulation;

use serde::{Deserialize, Serialize};

use crate::domain::model::{Outcome, TestCase};

/// Results kept per test (the classification window can be no longer).
/// 50 entries of at most ~450 bytes keep one record far below DynamoDB's
/// 400 KB item limit and a single-digit number of write units.
pub const MAX_ENTRIES: usize = 50;
/// A test not seen for this long is forgotten (the store's TTL).
pub const TTL_MS: u64 = 90 * 24 * 3600 * 1000;
/// Longest test id stored as is; longer ids are shortened by
/// [`storage_key`] (DynamoDB sort keys stop at 1,024 bytes).
pub const MAX_KEY_BYTES: usize = 512;
/// Longest branch name kept in an entry (git allows more, nobody uses it).
pub const MAX_BRANCH_BYTES: usize = 255;
/// Longest commit kept (a SHA-256 object id is 64 hex characters).
pub const MAX_COMMIT_BYTES: usize = 64;
/// Attempt outcomes kept per entry: `retries` is at most 10, plus the final.
pub const MAX_ATTEMPTS: usize = 11;

/// One run's result for one test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// Stored with one-letter names: a record holds up to 50 entries and
/// DynamoDB bills writes per kilobyte.
pub struct HistoryEntry {
    /// The run id (dedupes a report delivered twice).
    #[serde(rename = "r")]
    pub run: String,
    #[serde(rename = "t")]
    pub at_ms: u64,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Branch name without `refs/heads/`; `None` for runs with no ref
    /// (local runs), which count as the default branch.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The folded verdict of the run.
    #[serde(rename = "o")]
    pub outcome: Outcome,
    /// Every attempt's outcome, oldest first, when the test was retried.
    #[serde(rename = "a", default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Outcome>,
    #[serde(rename = "d", default)]
    pub duration_secs: f64,
}

impl HistoryEntry {
    /// The entry for `case` in a run on `commit` / `git_ref`, every
    /// string bounded.
    pub fn of(
        case: &TestCase,
        run: &str,
        at_ms: u64,
        commit: Option<&str>,
        git_ref: Option<&str>,
    ) -> HistoryEntry {
        let attempts = if case.retries.is_empty() {
            Vec::new()
        } else {
            case.retries
                .iter()
                .map(|a| a.outcome)
                .chain(std::iter::once(case.outcome))
                .take(MAX_ATTEMPTS)
                .collect()
        };
        let mut entry = HistoryEntry {
            run: String::new(),
            at_ms,
            commit: None,
            branch: None,
            outcome: case.outcome,
            attempts,
            duration_secs: if case.duration_secs.is_finite() && case.duration_secs > 0.0 {
                case.duration_secs
                    .min(crate::domain::model::MAX_DURATION_SECS)
            } else {
                0.0
            },
        };
        entry.stamp(run, commit, git_ref);
        entry
    }

    /// Sets what every entry of one run shares (run id, commit, branch),
    /// bounded. The report observes a whole run's tests before it triages
    /// them a chunk at a time, and stamps each chunk only then: three
    /// strings per test otherwise held for the whole run.
    pub fn stamp(&mut self, run: &str, commit: Option<&str>, git_ref: Option<&str>) {
        self.run = cut(run, 64);
        self.commit = commit.map(|c| cut(c, MAX_COMMIT_BYTES));
        self.branch = git_ref.map(|r| cut(branch_name(r), MAX_BRANCH_BYTES));
    }

    /// Passed in the end (a pass after a retry counts).
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Passed | Outcome::Flaky)
    }

    pub fn failed(&self) -> bool {
        self.outcome.is_failure()
    }

    /// Both a failure and a pass inside this one run.
    pub fn mixed(&self) -> bool {
        self.outcome == Outcome::Flaky
            || (self.attempts.iter().any(|o| o.is_failure())
                && self
                    .attempts
                    .iter()
                    .any(|o| matches!(o, Outcome::Passed | Outcome::Flaky)))
    }

    /// Passed at the first try.
    pub fn clean_pass(&self) -> bool {
        self.outcome == Outcome::Passed && !self.mixed()
    }

    /// The entry as one letter of an outcome strip: `P` passed, `F`
    /// failed, `M` mixed (passed on retry), `S` skipped.
    pub fn letter(&self) -> char {
        match self.outcome {
            Outcome::Passed if self.mixed() => 'M',
            Outcome::Passed => 'P',
            Outcome::Flaky => 'M',
            Outcome::Failed | Outcome::Error => 'F',
            Outcome::Skipped => 'S',
        }
    }
}

/// `refs/heads/main` → `main`; other refs (tags, `refs/pull/1/merge`) stay.
pub fn branch_name(git_ref: &str) -> &str {
    git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref)
}

/// A test in automatic quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineState {
    /// The run after which the test was quarantined.
    pub since_run: String,
    pub since_ms: u64,
    /// Clean passes in a row since then (or since the last failure).
    pub clean_passes: u32,
}

/// Everything kept about one test of one suite of one repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestHistory {
    /// The test's identity, [`TestCase::key`] (classname or suite, name):
    /// stable across shards and file moves.
    pub id: String,
    /// Oldest first, at most [`MAX_ENTRIES`].
    #[serde(default)]
    pub entries: Vec<HistoryEntry>,
    pub last_seen_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineState>,
    /// When the test last left automatic quarantine: only entries after it
    /// can put it back (its class still counts the whole window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_ms: Option<u64>,
    /// The test's source file as the runner last reported it, so the
    /// per-test page can name its owners from `CODEOWNERS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl TestHistory {
    pub fn new(id: &str) -> TestHistory {
        TestHistory {
            id: id.to_string(),
            entries: Vec::new(),
            last_seen_ms: 0,
            quarantine: None,
            released_ms: None,
            file: None,
        }
    }

    /// Appends one run's entry, keeping the newest [`MAX_ENTRIES`]. A
    /// second entry for the same run (a report job delivered twice) is
    /// dropped: returns false then.
    pub fn record(&mut self, entry: HistoryEntry) -> bool {
        if self.entries.iter().any(|e| e.run == entry.run) {
            return false;
        }
        self.last_seen_ms = self.last_seen_ms.max(entry.at_ms);
        self.entries.push(entry);
        // Entries arrive in report order, which two racing reports may swap.
        self.entries.sort_by_key(|e| e.at_ms);
        let excess = self.entries.len().saturating_sub(MAX_ENTRIES);
        self.entries.drain(..excess);
        true
    }

    /// Entries since the last release from quarantine (all when never
    /// released): what automatic quarantine judges by.
    pub fn since_release(&self) -> &[HistoryEntry] {
        let from = self
            .released_ms
            .map_or(0, |c| self.entries.partition_point(|e| e.at_ms <= c));
        &self.entries[from..]
    }

    /// True when the record is past its TTL at `now_ms` (stores whose TTL
    /// deletes lazily filter these out on read).
    pub fn expired(&self, now_ms: u64) -> bool {
        self.last_seen_ms.saturating_add(TTL_MS) < now_ms
    }

    /// When the store may delete the record.
    pub fn expires_ms(&self) -> u64 {
        self.last_seen_ms.saturating_add(TTL_MS)
    }

    /// The record as stored: JSON, at most `max_bytes`, dropping the oldest
    /// entries if needed (a record within the caps above never needs it).
    pub fn to_json_within(&self, max_bytes: usize) -> String {
        let mut record = self.clone();
        loop {
            // Serialising our own plain struct cannot fail.
            let json = serde_json::to_string(&record).unwrap_or_default();
            if json.len() <= max_bytes || record.entries.is_empty() {
                return json;
            }
            let drop = record.entries.len().div_ceil(4);
            record.entries.drain(..drop);
        }
    }

    /// Reads a stored record; `key` names it in the error.
    pub fn from_json(json: &str, key: &str) -> Result<TestHistory, crate::errors::StoreError> {
        serde_json::from_str(json).map_err(|e| crate::errors::StoreError::Corrupt {
            key: key.to_string(),
            message: e.to_string(),
        })
    }
}

/// The first `limit` records by storage key: `list_history`'s order, for
/// stores whose own keys are hashes.
pub fn first_in_key_order(records: &mut Vec<TestHistory>, limit: usize) {
    records.sort_by_cached_key(|r| storage_key(&r.id));
    records.truncate(limit);
}

/// Which history a run belongs to: one per repository and suite.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryScope {
    pub repo: String,
    pub suite: String,
}

impl HistoryScope {
    pub fn new(repo: &str, suite: &str) -> HistoryScope {
        HistoryScope {
            repo: repo.to_string(),
            suite: suite.to_string(),
        }
    }

    /// One string for a store's partition key: `repo` cannot contain a
    /// newline (it is `owner/name` or a label), so the pair is unambiguous.
    pub fn partition(&self) -> String {
        format!("{}\n{}", self.repo, self.suite)
    }
}

/// The key a test is stored under: its id, or for ids over
/// [`MAX_KEY_BYTES`] a prefix plus a hash of the whole id (two long ids
/// sharing a prefix stay apart). Every store uses this, so a test has the
/// same key everywhere.
pub fn storage_key(id: &str) -> String {
    if id.len() <= MAX_KEY_BYTES {
        return id.to_string();
    }
    format!(
        "{}#{:016x}",
        cut(id, MAX_KEY_BYTES - 17),
        fnv1a(id.as_bytes())
    )
}

/// A fixed-length id of a test within its scope, for stores whose keys
/// refuse the characters test ids are full of (`/`, `#`, `?`): two
/// independent 64-bit hashes of the scope and the storage key.
pub fn record_id(scope: &HistoryScope, id: &str) -> String {
    let text = format!("{}\n{}", scope.partition(), storage_key(id));
    format!(
        "h-{:016x}{:016x}",
        fnv1a(text.as_bytes()),
        fnv1a_from(0x6c62_272e_07bb_0142, text.as_bytes())
    )
}

/// FNV-1a, 64 bits: stable across builds and platforms (unlike `Hash`).
fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(0xcbf2_9ce4_8422_2325, bytes)
}

fn fnv1a_from(basis: u64, bytes: &[u8]) -> u64 {
    let mut h = basis;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::Attempt;

    fn entry(run: &str, at: u64, outcome: Outcome) -> HistoryEntry {
        let case = TestCase::new("s", "c", "t", outcome);
        HistoryEntry::of(&case, run, at, Some("abc"), Some("refs/heads/main"))
    }

    #[test]
    fn record_caps_entries_and_ignores_a_repeated_run() {
        let mut h = TestHistory::new("c::t");
        for i in 0..(MAX_ENTRIES as u64 + 7) {
            assert!(h.record(entry(&format!("r{i}"), 1000 + i, Outcome::Passed)));
        }
        assert_eq!(h.entries.len(), MAX_ENTRIES);
        assert_eq!(h.entries[0].run, "r7");
        assert!(!h.record(entry("r40", 5000, Outcome::Failed)));
        assert_eq!(h.entries.len(), MAX_ENTRIES);
        assert_eq!(h.last_seen_ms, 1000 + MAX_ENTRIES as u64 + 6);
    }

    #[test]
    fn entries_keep_attempts_and_the_branch_name() {
        let mut case = TestCase::new("s", "c", "t", Outcome::Flaky);
        case.retries.push(Attempt {
            outcome: Outcome::Failed,
            duration_secs: None,
            message: None,
            details: None,
        });
        case.duration_secs = f64::NAN;
        let e = HistoryEntry::of(&case, "r", 1, None, Some("refs/heads/feature/x"));
        assert_eq!(e.attempts, vec![Outcome::Failed, Outcome::Flaky]);
        assert_eq!(e.branch.as_deref(), Some("feature/x"));
        assert_eq!(e.duration_secs, 0.0);
        assert!(e.mixed() && e.passed() && !e.clean_pass());
        let long = "x".repeat(10_000);
        let e = HistoryEntry::of(&case, &long, 1, Some(&long), Some(&long));
        assert_eq!(e.commit.unwrap().len(), MAX_COMMIT_BYTES);
        assert_eq!(e.branch.unwrap().len(), MAX_BRANCH_BYTES);
    }

    #[test]
    fn entries_since_release_start_after_it() {
        let mut h = TestHistory::new("t");
        for i in 0..5 {
            h.record(entry(&format!("r{i}"), i, Outcome::Failed));
        }
        assert_eq!(h.since_release().len(), 5);
        h.released_ms = Some(2);
        assert_eq!(h.since_release().len(), 2);
        assert_eq!(h.since_release()[0].run, "r3");
    }

    #[test]
    fn long_ids_get_distinct_bounded_keys() {
        let a = format!("{}a", "p".repeat(2000));
        let b = format!("{}b", "p".repeat(2000));
        assert_eq!(storage_key("short::id"), "short::id");
        assert!(storage_key(&a).len() <= MAX_KEY_BYTES);
        assert_ne!(storage_key(&a), storage_key(&b));
        let multibyte = "é".repeat(600);
        assert!(storage_key(&multibyte).len() <= MAX_KEY_BYTES);
    }

    #[test]
    fn record_ids_are_fixed_length_and_tell_scopes_apart() {
        let unit = HistoryScope::new("o/r", "unit");
        let e2e = HistoryScope::new("o/r", "e2e");
        let a = record_id(&unit, "a/b#c?d");
        assert_eq!(a.len(), 34);
        assert!(a[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, record_id(&e2e, "a/b#c?d"));
        assert_ne!(a, record_id(&unit, "a/b#c?e"));
        assert_eq!(a, record_id(&unit, "a/b#c?d"));
    }

    #[test]
    fn a_full_record_fits_the_budget_and_an_oversized_one_is_trimmed() {
        let mut h = TestHistory::new(&"i".repeat(MAX_KEY_BYTES));
        let long = "x".repeat(1000);
        let mut case = TestCase::new("s", "c", "t", Outcome::Failed);
        case.retries = vec![
            Attempt {
                outcome: Outcome::Failed,
                duration_secs: None,
                message: None,
                details: None,
            };
            20
        ];
        for i in 0..MAX_ENTRIES as u64 {
            h.record(HistoryEntry::of(&case, &long, i, Some(&long), Some(&long)));
            h.entries.last_mut().unwrap().run = format!("{i:064}");
        }
        // Every field at its cap: far below DynamoDB's 400 KB.
        let full = h.to_json_within(usize::MAX);
        assert!(full.len() < 40_000, "{}", full.len());
        let trimmed = h.to_json_within(10_000);
        assert!(trimmed.len() <= 10_000);
        let back = TestHistory::from_json(&trimmed, "k").unwrap();
        assert!(!back.entries.is_empty() && back.entries.len() < MAX_ENTRIES);
        assert_eq!(back.entries.last(), h.entries.last());
        let err = TestHistory::from_json("{", "hist/k").unwrap_err();
        assert!(err.to_string().contains("hist/k"), "{err}");
    }

    #[test]
    fn records_expire_ninety_days_after_last_seen() {
        let mut h = TestHistory::new("t");
        h.record(entry("r", 1_000, Outcome::Passed));
        assert!(!h.expired(1_000 + TTL_MS));
        assert!(h.expired(1_001 + TTL_MS));
        assert_eq!(h.expires_ms(), 1_000 + TTL_MS);
    }
}
