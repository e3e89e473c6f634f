//! Healthy, flaky, broken or new: one test's class from its history.
//!
//! The rules (documented in `docs/flaky.md`, thresholds in `[flaky]` of
//! `testexec.toml`), in the order they are applied:
//!
//! 1. **new**: no entry where it ran (never seen, or only skipped).
//! 2. **broken**: the last `broken_runs` default-branch entries all failed.
//!    Checked before flaky so that a flaky test that breaks for real stops
//!    being excused as flaky after `broken_runs` runs.
//! 3. **flaky**: within the last `window` entries, one run with both a
//!    failure and a pass (a pass on retry), or two runs of the same commit
//!    with different verdicts, or on the default branch at least
//!    `min_flips` failure→pass flips making up at least `flip_rate` of the
//!    transitions. A flip only counts after a failure streak shorter than
//!    `broken_runs`: a test that was broken and got fixed flipped once and
//!    is not flaky.
//! 4. **healthy** otherwise.

use serde::{Deserialize, Serialize};

use super::HistoryEntry;

/// A test's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    New,
    Healthy,
    Flaky,
    Broken,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::New => "new",
            Class::Healthy => "healthy",
            Class::Flaky => "flaky",
            Class::Broken => "broken",
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The thresholds of `[flaky]` in `testexec.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassifyPolicy {
    /// The default branch (flip rate and broken are judged there). Runs
    /// with no ref (local runs) count as the default branch.
    pub default_branch: String,
    /// How many of the newest entries count (at most
    /// [`super::MAX_ENTRIES`]).
    pub window: u32,
    /// Failure→pass flips per transition on the default branch from which
    /// a test is flaky...
    pub flip_rate: f64,
    /// ...provided there are at least this many flips.
    pub min_flips: u32,
    /// Failing on this many default-branch runs in a row is broken.
    pub broken_runs: u32,
    /// Early flake detection: tests the history has never seen run this
    /// many extra times in their shard (0: off). Needs `{tests}`.
    pub new_test_runs: u32,
}

pub const DEFAULT_WINDOW: u32 = 50;
pub const DEFAULT_FLIP_RATE: f64 = 0.02;
pub const DEFAULT_MIN_FLIPS: u32 = 2;
pub const DEFAULT_BROKEN_RUNS: u32 = 5;
pub const DEFAULT_BRANCH: &str = "main";
pub const DEFAULT_NEW_TEST_RUNS: u32 = 3;
/// Most extra runs of a new test: past ten, a test that never failed is
/// as good as proven, and the shard's time is better spent elsewhere.
pub const MAX_NEW_TEST_RUNS: u32 = 10;

impl Default for ClassifyPolicy {
    fn default() -> Self {
        ClassifyPolicy {
            default_branch: DEFAULT_BRANCH.to_string(),
            window: DEFAULT_WINDOW,
            flip_rate: DEFAULT_FLIP_RATE,
            min_flips: DEFAULT_MIN_FLIPS,
            broken_runs: DEFAULT_BROKEN_RUNS,
            new_test_runs: DEFAULT_NEW_TEST_RUNS,
        }
    }
}

impl ClassifyPolicy {
    fn on_default_branch(&self, e: &HistoryEntry) -> bool {
        e.branch.as_deref().is_none_or(|b| b == self.default_branch)
    }
}

/// The class of a test whose counted history (oldest first) is `entries`.
pub fn classify(entries: &[HistoryEntry], policy: &ClassifyPolicy) -> Class {
    let window = (policy.window as usize).max(1);
    let recent = &entries[entries.len().saturating_sub(window)..];
    // Skipped runs say nothing either way.
    let ran: Vec<&HistoryEntry> = recent.iter().filter(|e| e.passed() || e.failed()).collect();
    if ran.is_empty() {
        return Class::New;
    }
    let main: Vec<&HistoryEntry> = ran
        .iter()
        .copied()
        .filter(|e| policy.on_default_branch(e))
        .collect();
    let broken_runs = (policy.broken_runs as usize).max(1);
    if main.len() >= broken_runs && main[main.len() - broken_runs..].iter().all(|e| e.failed()) {
        return Class::Broken;
    }
    if ran.iter().any(|e| e.mixed()) || same_commit_disagrees(&ran) {
        return Class::Flaky;
    }
    let flips = flips(&main, broken_runs);
    let transitions = main.len().saturating_sub(1);
    if transitions > 0
        && flips >= policy.min_flips.max(1) as usize
        && flips as f64 / transitions as f64 >= policy.flip_rate
    {
        return Class::Flaky;
    }
    Class::Healthy
}

/// Two runs of one commit, one passing and one failing. Failures are rare,
/// so start from them: a test that never failed costs one pass.
fn same_commit_disagrees(ran: &[&HistoryEntry]) -> bool {
    ran.iter()
        .filter(|e| e.failed())
        .filter_map(|e| e.commit.as_deref())
        .any(|failed| {
            ran.iter()
                .any(|e| e.passed() && e.commit.as_deref() == Some(failed))
        })
}

/// Failure→pass flips after a failure streak shorter than `broken_runs`.
fn flips(entries: &[&HistoryEntry], broken_runs: usize) -> usize {
    let mut flips = 0;
    let mut streak = 0;
    for e in entries {
        if e.failed() {
            streak += 1;
        } else {
            if streak > 0 && streak < broken_runs {
                flips += 1;
            }
            streak = 0;
        }
    }
    flips
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::Outcome;

    /// Entries from a pattern: `P` pass, `F` fail, `M` pass after retry,
    /// `S` skipped; each on its own commit of `main`.
    fn history(pattern: &str) -> Vec<HistoryEntry> {
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| HistoryEntry {
                run: format!("r{i}"),
                at_ms: i as u64,
                commit: Some(format!("c{i}")),
                branch: Some("main".into()),
                outcome: match c {
                    'P' => Outcome::Passed,
                    'F' => Outcome::Failed,
                    'M' => Outcome::Flaky,
                    _ => Outcome::Skipped,
                },
                attempts: Vec::new(),
                duration_secs: 1.0,
            })
            .collect()
    }

    fn class(pattern: &str) -> Class {
        classify(&history(pattern), &ClassifyPolicy::default())
    }

    #[test]
    fn the_four_classes() {
        assert_eq!(class(""), Class::New);
        assert_eq!(class("SSS"), Class::New);
        assert_eq!(class("PPPPPPPP"), Class::Healthy);
        assert_eq!(class("PPPM"), Class::Flaky);
        assert_eq!(class("PPFPPPFPPP"), Class::Flaky);
        assert_eq!(class("PPPFFFFF"), Class::Broken);
        assert_eq!(class("PFPFPFFFFF"), Class::Broken);
    }

    #[test]
    fn a_fix_or_a_single_failure_is_not_a_flake() {
        // Broken for five runs, then fixed: one flip after a long streak.
        assert_eq!(class("PPFFFFFPPPP"), Class::Healthy);
        // One failure, then green again: one flip is below min_flips.
        assert_eq!(class("PPPFPPPP"), Class::Healthy);
        // Failing now but not yet broken_runs times: healthy until then.
        assert_eq!(class("PPPPFFF"), Class::Healthy);
    }

    #[test]
    fn same_commit_with_both_verdicts_is_flaky_on_any_branch() {
        let mut h = history("PF");
        for e in &mut h {
            e.commit = Some("same".into());
            e.branch = Some("feature".into());
        }
        assert_eq!(classify(&h, &ClassifyPolicy::default()), Class::Flaky);
        h[1].commit = Some("other".into());
        assert_eq!(classify(&h, &ClassifyPolicy::default()), Class::Healthy);
    }

    #[test]
    fn flips_off_the_default_branch_do_not_count() {
        let mut h = history("PFPFPFP");
        for e in &mut h {
            e.branch = Some("feature".into());
        }
        assert_eq!(classify(&h, &ClassifyPolicy::default()), Class::Healthy);
        for e in &mut h {
            e.branch = None; // local runs count as the default branch
        }
        assert_eq!(classify(&h, &ClassifyPolicy::default()), Class::Flaky);
    }

    #[test]
    fn thresholds_come_from_the_policy() {
        let h = history(&format!("F{}FP", "P".repeat(40)));
        let mut p = ClassifyPolicy::default();
        assert_eq!(classify(&h, &p), Class::Flaky);
        p.flip_rate = 0.1;
        assert_eq!(classify(&h, &p), Class::Healthy);
        p = ClassifyPolicy {
            window: 3,
            ..ClassifyPolicy::default()
        };
        assert_eq!(classify(&h, &p), Class::Healthy);
        p = ClassifyPolicy {
            broken_runs: 2,
            ..ClassifyPolicy::default()
        };
        assert_eq!(classify(&history("PPFF"), &p), Class::Broken);
    }
}
