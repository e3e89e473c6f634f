//! One run against the history: which failures are new, which are known
//! flaky, which are quarantined, which tests were fixed; whether the run
//! fails; and each test's history after the run.
//!
//! The one guarantee: a failure of a test that was **not** flaky before
//! this run is a new failure and fails the run, whatever else is
//! quarantined. Automatic quarantine only ever covers tests the history
//! shows flaky; the manual list in `testexec.toml` is the user's decision.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::classify::{Class, ClassifyPolicy, classify};
use super::{HistoryEntry, QuarantineState, TestHistory};
use crate::domain::model::Outcome;

/// `[quarantine]` in `testexec.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuarantinePolicy {
    /// Test ids (as reports show them, `classname::name`) always
    /// quarantined, until removed from the list.
    pub tests: BTreeSet<String>,
    /// Quarantine tests classified flaky automatically.
    pub auto: bool,
    /// Clean passes in a row after which an automatically quarantined test
    /// leaves quarantine (and its earlier history is forgiven).
    pub release_after: u32,
}

pub const DEFAULT_RELEASE_AFTER: u32 = 10;

impl Default for QuarantinePolicy {
    fn default() -> Self {
        QuarantinePolicy {
            tests: BTreeSet::new(),
            auto: false,
            release_after: DEFAULT_RELEASE_AFTER,
        }
    }
}

/// Both tables, as the report handler needs them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryPolicy {
    pub flaky: ClassifyPolicy,
    pub quarantine: QuarantinePolicy,
}

/// Why a quarantined test is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuarantineReason {
    /// Listed in `testexec.toml`.
    Manual,
    /// Classified flaky by the history.
    Auto,
}

/// One test of this run as triage sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriagedTest {
    pub id: String,
    pub outcome: Outcome,
    /// The class before this run.
    pub class_before: Class,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<QuarantineReason>,
    /// The last results before this run, oldest first (`P`, `F`, `M` for
    /// passed on retry, `S`), for a short outcome strip.
    pub recent: String,
    /// The test's source file, when the runner wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Its owners from `CODEOWNERS` (filled in by the report handler).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
}

/// The four groups the reports show, each in run order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Triage {
    /// Failures of tests that were not flaky before: first everywhere.
    pub new_failures: Vec<TriagedTest>,
    /// Known flaky tests (not quarantined) that failed or passed on retry.
    pub known_flaky: Vec<TriagedTest>,
    /// Quarantined tests that failed or passed on retry: they do not fail
    /// the run.
    pub quarantined: Vec<TriagedTest>,
    /// Tests that failed in their previous run and pass now.
    pub fixed: Vec<TriagedTest>,
    /// Tests seen for the first time.
    pub new_tests: u64,
    /// Tests that entered or left automatic quarantine with this run.
    pub entered_quarantine: Vec<String>,
    pub left_quarantine: Vec<String>,
    /// Failures that fail the run (new failures and known flaky ones not
    /// quarantined), and failures excused by quarantine: exact even when
    /// the lists above are cut at [`MAX_LISTED`].
    pub failing: u64,
    pub quarantined_failures: u64,
}

/// Groups held at most this many tests each (counts stay exact).
pub const MAX_LISTED: usize = 1_000;

/// The four groups in the order every report shows them, with a title
/// and what the group means.
pub const GROUPS: [(&str, &str, &str); 4] = [
    (
        "new-failures",
        "New failures",
        "failing tests that were not flaky before: they fail the run",
    ),
    (
        "known-flaky",
        "Known flaky",
        "flaky tests that failed or passed on retry; a failure here still fails the run",
    ),
    (
        "quarantined",
        "Quarantined",
        "quarantined tests that failed or passed on retry: they do not fail the run",
    ),
    (
        "fixed",
        "Fixed since last run",
        "tests that failed in their previous run and pass now",
    ),
];

impl Triage {
    /// The groups of [`GROUPS`], in order.
    pub fn groups(&self) -> [&[TriagedTest]; 4] {
        [
            &self.new_failures,
            &self.known_flaky,
            &self.quarantined,
            &self.fixed,
        ]
    }

    /// Every listed test, mutably (to fill in owners).
    pub fn tests_mut(&mut self) -> impl Iterator<Item = &mut TriagedTest> {
        self.new_failures
            .iter_mut()
            .chain(self.known_flaky.iter_mut())
            .chain(self.quarantined.iter_mut())
            .chain(self.fixed.iter_mut())
    }

    /// True when some failure is not quarantined: the run fails.
    pub fn fails_run(&self) -> bool {
        !self.new_failures.is_empty() || self.known_flaky.iter().any(|t| t.outcome.is_failure())
    }

    /// True when the run has failures and all of them are quarantined.
    pub fn only_quarantined_failures(&self) -> bool {
        !self.fails_run() && self.quarantined.iter().any(|t| t.outcome.is_failure())
    }

    /// Adds the triage of another part of the same run (report triages a
    /// large run in chunks of tests): lists stay in run order and cut at
    /// [`MAX_LISTED`], counts add up.
    pub fn absorb(&mut self, other: Triage) {
        for (mine, theirs) in [
            (&mut self.new_failures, other.new_failures),
            (&mut self.known_flaky, other.known_flaky),
            (&mut self.quarantined, other.quarantined),
            (&mut self.fixed, other.fixed),
        ] {
            for t in theirs {
                Triage::push(mine, t);
            }
        }
        self.new_tests += other.new_tests;
        self.entered_quarantine.extend(other.entered_quarantine);
        self.left_quarantine.extend(other.left_quarantine);
        self.failing += other.failing;
        self.quarantined_failures += other.quarantined_failures;
    }

    fn push(list: &mut Vec<TriagedTest>, t: TriagedTest) {
        if list.len() < MAX_LISTED {
            list.push(t);
        }
    }
}

/// One test's result in this run, as triage takes it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub id: String,
    pub entry: HistoryEntry,
    pub file: Option<String>,
}

/// Sorts this run's results into the four groups and returns each test's
/// history with this run recorded and its quarantine state updated.
/// `before` holds the stored histories (tests never seen are absent).
pub fn triage(
    observed: &[Observed],
    mut before: HashMap<String, TestHistory>,
    policy: &HistoryPolicy,
) -> (Triage, Vec<TestHistory>) {
    let mut out = Triage::default();
    let mut after = Vec::with_capacity(observed.len());
    for o in observed {
        let mut history = before
            .remove(&o.id)
            .unwrap_or_else(|| TestHistory::new(&o.id));
        // A report computed again (its job redelivered after the history
        // was saved) must judge against the history as it was before
        // this run, or the verdict could change between deliveries.
        history.entries.retain(|e| e.run != o.entry.run);
        if history
            .quarantine
            .as_ref()
            .is_some_and(|q| q.since_run == o.entry.run)
        {
            history.quarantine = None;
        }
        let class_before = classify(&history.entries, &policy.flaky);
        let quarantined = if policy.quarantine.tests.contains(&o.id) {
            Some(QuarantineReason::Manual)
        } else if history.quarantine.is_some() && class_before == Class::Flaky {
            // Only a test that is still flaky stays excused: one that became
            // broken (or was forgiven) fails the run again.
            Some(QuarantineReason::Auto)
        } else {
            None
        };
        let previous = history.entries.last().cloned();
        let t = TriagedTest {
            id: o.id.clone(),
            outcome: o.entry.outcome,
            class_before,
            quarantined,
            recent: strip(&history.entries, 20),
            file: o.file.clone(),
            owners: Vec::new(),
        };
        let failed = o.entry.failed();
        let mixed = o.entry.mixed();
        if class_before == Class::New {
            out.new_tests += 1;
        }
        if failed {
            // `Auto` is only set for a test still classified flaky.
            if quarantined.is_some() {
                out.quarantined_failures += 1;
            } else {
                out.failing += 1;
            }
        }
        if failed || mixed {
            match (quarantined, class_before) {
                (Some(_), _) => Triage::push(&mut out.quarantined, t),
                (None, Class::Flaky) => Triage::push(&mut out.known_flaky, t),
                // A pass on retry of a test not known flaky does not fail
                // the run; it is newly detected flaky.
                _ if !failed => Triage::push(&mut out.known_flaky, t),
                _ => Triage::push(&mut out.new_failures, t),
            }
        } else if o.entry.passed() && previous.as_ref().is_some_and(|p| p.failed()) {
            Triage::push(&mut out.fixed, t);
        }

        if o.file.is_some() {
            history.file.clone_from(&o.file);
        }
        if history.record(o.entry.clone()) {
            match update_quarantine(&mut history, &o.entry, policy) {
                Some(true) => out.entered_quarantine.push(o.id.clone()),
                Some(false) => out.left_quarantine.push(o.id.clone()),
                None => {}
            }
        }
        after.push(history);
    }
    (out, after)
}

/// Applies this run's entry (already recorded) to the automatic
/// quarantine state: `Some(true)` entered, `Some(false)` left.
fn update_quarantine(
    history: &mut TestHistory,
    entry: &HistoryEntry,
    policy: &HistoryPolicy,
) -> Option<bool> {
    if let Some(q) = history.quarantine.as_mut() {
        if entry.clean_pass() {
            q.clean_passes += 1;
        } else if entry.failed() || entry.mixed() {
            q.clean_passes = 0;
        }
        if q.clean_passes >= policy.quarantine.release_after.max(1) {
            // Only flakes after this can put it back; its class (and so
            // "known flaky" in reports) still counts the whole window.
            history.quarantine = None;
            history.released_ms = Some(entry.at_ms);
            return Some(false);
        }
        return None;
    }
    if policy.quarantine.auto && classify(history.since_release(), &policy.flaky) == Class::Flaky {
        history.quarantine = Some(QuarantineState {
            since_run: entry.run.clone(),
            since_ms: entry.at_ms,
            clean_passes: 0,
        });
        return Some(true);
    }
    None
}

/// The last `n` results as letters, oldest first.
pub fn strip(entries: &[HistoryEntry], n: usize) -> String {
    entries[entries.len().saturating_sub(n)..]
        .iter()
        .map(HistoryEntry::letter)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(run: u64, outcome: Outcome) -> HistoryEntry {
        HistoryEntry {
            run: format!("r{run}"),
            at_ms: run,
            commit: Some(format!("c{run}")),
            branch: Some("main".into()),
            outcome,
            attempts: Vec::new(),
            duration_secs: 0.1,
        }
    }

    fn seen(id: &str, pattern: &str) -> TestHistory {
        let mut h = TestHistory::new(id);
        for (i, c) in pattern.chars().enumerate() {
            h.record(entry(
                i as u64,
                match c {
                    'F' => Outcome::Failed,
                    'M' => Outcome::Flaky,
                    _ => Outcome::Passed,
                },
            ));
        }
        h
    }

    /// Triage in chunks, absorbed, is the triage of the whole run.
    #[test]
    fn chunks_absorbed_equal_the_whole_run() {
        let ids: Vec<String> = (0..40).map(|i| format!("t{i:02}")).collect();
        let outcomes = [
            Outcome::Failed,
            Outcome::Passed,
            Outcome::Flaky,
            Outcome::Passed,
        ];
        let results: Vec<(&str, Outcome)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), outcomes[i % 4]))
            .collect();
        let observed = run(9, &results);
        // Some known flaky, some failing last time, the rest new.
        let before = || -> HashMap<String, TestHistory> {
            ids.iter()
                .enumerate()
                .filter(|(i, _)| i % 3 != 0)
                .map(|(i, id)| {
                    let pattern = if i % 2 == 0 { "PFPFPFPP" } else { "PPPPPPPF" };
                    (id.clone(), seen(id, pattern))
                })
                .collect()
        };
        let policy = HistoryPolicy::default();
        let (whole, whole_records) = triage(&observed, before(), &policy);
        let mut parts = Triage::default();
        let mut records = Vec::new();
        for chunk in observed.chunks(7) {
            let mut b = before();
            b.retain(|id, _| chunk.iter().any(|o| &o.id == id));
            let (part, r) = triage(chunk, b, &policy);
            parts.absorb(part);
            records.extend(r);
        }
        assert_eq!(parts, whole);
        assert_eq!(records, whole_records);
        assert!(whole.new_tests > 0 && whole.failing > 0 && !whole.fixed.is_empty());
    }

    fn run(n: u64, results: &[(&str, Outcome)]) -> Vec<Observed> {
        results
            .iter()
            .map(|(id, o)| Observed {
                id: id.to_string(),
                entry: entry(n, *o),
                file: None,
            })
            .collect()
    }

    fn ids(list: &[TriagedTest]) -> Vec<&str> {
        list.iter().map(|t| t.id.as_str()).collect()
    }

    #[test]
    fn a_new_failure_fails_the_run_even_beside_quarantined_tests() {
        let mut before = HashMap::new();
        let mut flaky = seen("flaky", "PPMPPFPP");
        flaky.quarantine = Some(QuarantineState {
            since_run: "r2".into(),
            since_ms: 2,
            clean_passes: 0,
        });
        before.insert("flaky".into(), flaky);
        before.insert("stable".into(), seen("stable", "PPPPPPPP"));
        let policy = HistoryPolicy::default();
        let (t, after) = triage(
            &run(
                100,
                &[("flaky", Outcome::Failed), ("stable", Outcome::Failed)],
            ),
            before.clone(),
            &policy,
        );
        assert_eq!(ids(&t.new_failures), ["stable"]);
        assert_eq!(ids(&t.quarantined), ["flaky"]);
        assert!(t.fails_run());
        assert_eq!(after.len(), 2);
        assert_eq!(after[1].entries.len(), 9);

        // The quarantined failure alone does not fail the run.
        let (t, _) = triage(
            &run(
                100,
                &[("flaky", Outcome::Failed), ("stable", Outcome::Passed)],
            ),
            before.clone(),
            &policy,
        );
        assert!(!t.fails_run());
        assert!(t.only_quarantined_failures());
    }

    #[test]
    fn known_flaky_without_quarantine_still_fails_the_run() {
        let before = HashMap::from([("f".to_string(), seen("f", "PPMPP"))]);
        let (t, _) = triage(
            &run(9, &[("f", Outcome::Failed)]),
            before.clone(),
            &HistoryPolicy::default(),
        );
        assert_eq!(ids(&t.known_flaky), ["f"]);
        assert!(t.new_failures.is_empty());
        assert!(t.fails_run());
    }

    #[test]
    fn new_tests_fixed_tests_and_passes_on_retry() {
        let before = HashMap::from([("was-red".to_string(), seen("was-red", "PPF"))]);
        let (t, _) = triage(
            &run(
                9,
                &[
                    ("was-red", Outcome::Passed),
                    ("brand-new", Outcome::Failed),
                    ("retried", Outcome::Flaky),
                ],
            ),
            before.clone(),
            &HistoryPolicy::default(),
        );
        assert_eq!(ids(&t.fixed), ["was-red"]);
        assert_eq!(ids(&t.new_failures), ["brand-new"]);
        assert_eq!(ids(&t.known_flaky), ["retried"]);
        assert_eq!(t.new_tests, 2);
        assert_eq!(t.known_flaky[0].class_before, Class::New);
    }

    #[test]
    fn manual_quarantine_covers_a_listed_test() {
        let mut policy = HistoryPolicy::default();
        policy.quarantine.tests.insert("listed".into());
        let (t, _) = triage(
            &run(1, &[("listed", Outcome::Failed)]),
            HashMap::new(),
            &policy,
        );
        assert_eq!(t.quarantined[0].quarantined, Some(QuarantineReason::Manual));
        assert!(!t.fails_run());
    }

    #[test]
    fn auto_quarantine_enters_when_flaky_and_leaves_after_clean_passes() {
        let mut policy = HistoryPolicy::default();
        policy.quarantine.auto = true;
        policy.quarantine.release_after = 3;
        let mut h: HashMap<String, TestHistory> = HashMap::new();
        let mut n = 0;
        let mut step = |o: Outcome, h: &mut HashMap<String, TestHistory>| {
            n += 1;
            let (t, after) = triage(&run(n, &[("t", o)]), h.clone(), &policy);
            h.insert("t".into(), after.into_iter().next().unwrap());
            t
        };
        step(Outcome::Passed, &mut h);
        let t = step(Outcome::Flaky, &mut h);
        assert_eq!(t.entered_quarantine, ["t"]);
        assert!(h["t"].quarantine.is_some());
        let t = step(Outcome::Failed, &mut h);
        assert_eq!(ids(&t.quarantined), ["t"]);
        step(Outcome::Passed, &mut h);
        step(Outcome::Passed, &mut h);
        assert!(h["t"].quarantine.is_some());
        let t = step(Outcome::Passed, &mut h);
        assert_eq!(t.left_quarantine, ["t"]);
        assert!(h["t"].quarantine.is_none());
        // Out of quarantine: a failure is known flaky and fails the run; a
        // new flake after the release puts it back.
        let t = step(Outcome::Failed, &mut h);
        assert_eq!(ids(&t.known_flaky), ["t"]);
        assert!(t.fails_run() && t.entered_quarantine.is_empty());
        let t = step(Outcome::Flaky, &mut h);
        assert_eq!(t.entered_quarantine, ["t"]);
    }

    #[test]
    fn a_quarantined_test_that_becomes_broken_fails_the_run_again() {
        let mut policy = HistoryPolicy::default();
        policy.quarantine.auto = true;
        let mut h = seen("t", "PMPFFFFF");
        h.quarantine = Some(QuarantineState {
            since_run: "r1".into(),
            since_ms: 1,
            clean_passes: 0,
        });
        let before = HashMap::from([("t".to_string(), h)]);
        let (t, _) = triage(&run(50, &[("t", Outcome::Failed)]), before, &policy);
        assert_eq!(ids(&t.new_failures), ["t"]);
        assert_eq!(t.new_failures[0].class_before, Class::Broken);
    }

    #[test]
    fn a_report_computed_again_gives_the_same_verdict() {
        let mut policy = HistoryPolicy::default();
        policy.quarantine.auto = true;
        let before = HashMap::from([("t".to_string(), seen("t", "PPPP"))]);
        let this_run = run(9, &[("t", Outcome::Flaky)]);
        let (first, saved) = triage(&this_run, before, &policy);
        assert_eq!(first.entered_quarantine, ["t"]);
        // The history was saved, then the job came back.
        let again = HashMap::from([("t".to_string(), saved[0].clone())]);
        let (second, saved_again) = triage(&this_run, again, &policy);
        assert_eq!(second, first);
        assert_eq!(saved_again, saved);
    }

    #[test]
    fn a_repeated_report_records_once() {
        let (_, after) = triage(
            &run(1, &[("t", Outcome::Passed)]),
            HashMap::new(),
            &HistoryPolicy::default(),
        );
        let before = HashMap::from([("t".to_string(), after[0].clone())]);
        let (_, again) = triage(
            &run(1, &[("t", Outcome::Passed)]),
            before.clone(),
            &HistoryPolicy::default(),
        );
        assert_eq!(again[0].entries.len(), 1);
        assert_eq!(strip(&again[0].entries, 5), "P");
    }
}
