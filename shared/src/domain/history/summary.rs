//! One test's history summed up for people: `testexec flaky` and the
//! `serve` tests dashboard show the same figures.

use serde::Serialize;

use super::TestHistory;
use super::classify::{Class, classify};
use super::triage::{HistoryPolicy, QuarantineReason, strip};

/// Results shown in a strip and in a duration trend.
pub const STRIP_LEN: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestSummary {
    pub id: String,
    pub class: Class,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<QuarantineReason>,
    /// Recorded runs where it ran (skips left out) and failed.
    pub runs: usize,
    pub failures: usize,
    /// The last results, oldest first (`P`, `F`, `M`, `S`).
    pub recent: String,
    pub mean_secs: f64,
    /// The last durations, oldest first: the trend.
    pub durations: Vec<f64>,
}

impl TestSummary {
    pub fn of(h: &TestHistory, policy: &HistoryPolicy) -> TestSummary {
        let n = h.entries.len();
        let secs: f64 = h.entries.iter().map(|e| e.duration_secs).sum();
        TestSummary {
            id: h.id.clone(),
            class: classify(&h.entries, &policy.flaky),
            quarantined: if policy.quarantine.tests.contains(&h.id) {
                Some(QuarantineReason::Manual)
            } else if h.quarantine.is_some() {
                Some(QuarantineReason::Auto)
            } else {
                None
            },
            runs: h
                .entries
                .iter()
                .filter(|e| e.passed() || e.failed())
                .count(),
            failures: h.entries.iter().filter(|e| e.failed() || e.mixed()).count(),
            recent: strip(&h.entries, STRIP_LEN),
            mean_secs: if n == 0 { 0.0 } else { secs / n as f64 },
            durations: h.entries[n.saturating_sub(STRIP_LEN)..]
                .iter()
                .map(|e| e.duration_secs)
                .collect(),
        }
    }

    /// Worth a look: not healthy, or quarantined.
    pub fn notable(&self) -> bool {
        self.quarantined.is_some() || matches!(self.class, Class::Flaky | Class::Broken)
    }
}

/// Broken first, then flaky, new, healthy; more failures first within a
/// class, then by id.
pub fn sort_flakiest(rows: &mut [TestSummary]) {
    let rank = |c: Class| match c {
        Class::Broken => 0,
        Class::Flaky => 1,
        Class::New => 2,
        Class::Healthy => 3,
    };
    rows.sort_by(|a, b| {
        rank(a.class)
            .cmp(&rank(b.class))
            .then(b.failures.cmp(&a.failures))
            .then(a.id.cmp(&b.id))
    });
}

/// Slowest first by mean duration.
pub fn sort_slowest(rows: &mut [TestSummary]) {
    rows.sort_by(|a, b| b.mean_secs.total_cmp(&a.mean_secs).then(a.id.cmp(&b.id)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::history::HistoryEntry;
    use crate::domain::model::Outcome;

    fn history(id: &str, pattern: &str, secs: f64) -> TestHistory {
        let mut h = TestHistory::new(id);
        for (i, c) in pattern.chars().enumerate() {
            h.record(HistoryEntry {
                run: format!("r{i}"),
                at_ms: i as u64,
                commit: None,
                branch: None,
                outcome: match c {
                    'F' => Outcome::Failed,
                    'M' => Outcome::Flaky,
                    'S' => Outcome::Skipped,
                    _ => Outcome::Passed,
                },
                attempts: Vec::new(),
                duration_secs: secs * (i + 1) as f64,
            });
        }
        h
    }

    #[test]
    fn figures_and_orders() {
        let policy = HistoryPolicy::default();
        let mut rows: Vec<TestSummary> = [
            history("healthy", "PPPP", 1.0),
            history("flaky", "PMPFPS", 0.1),
            history("broken", "PFFFFF", 0.5),
        ]
        .iter()
        .map(|h| TestSummary::of(h, &policy))
        .collect();
        let flaky = &rows[1];
        assert_eq!((flaky.runs, flaky.failures), (5, 2));
        assert_eq!(flaky.recent, "PMPFPS");
        assert_eq!(flaky.durations.len(), 6);
        assert!((flaky.mean_secs - 0.35).abs() < 1e-9);
        assert!(flaky.notable() && !rows[0].notable());
        sort_flakiest(&mut rows);
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["broken", "flaky", "healthy"]);
        sort_slowest(&mut rows);
        assert_eq!(rows[0].id, "healthy");
    }
}
