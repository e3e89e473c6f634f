//! A seeded simulation of 200 runs of one suite with known flaky, broken
//! and new tests: the classification at its defaults must find the flaky
//! tests with precision and recall of at least 0.95, and automatic
//! quarantine must never hide the failure of a test that is not flaky.
//! Pure and in memory (well under a second), so it runs on every `cargo test`.

use std::collections::HashMap;

use super::classify::{Class, classify};
use super::triage::{HistoryPolicy, Observed, QuarantineReason, triage};
use super::{HistoryEntry, TestHistory};

use crate::domain::model::Outcome;

/// splitmix64: a tiny, well-mixed, seedable generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a simulated test really is.
#[derive(Debug, Clone, Copy)]
enum Truth {
    Healthy,
    /// Fails each attempt independently with this probability.
    Flaky(f64),
    /// Passes before commit `from`, fails from it until commit `until`
    /// (exclusive): code changes break and fix tests, so every run of one
    /// commit agrees.
    Broken {
        from: u32,
        until: u32,
    },
}

struct SimTest {
    id: String,
    /// The run it first appears in.
    born: u32,
    truth: Truth,
}

fn suite(rng: &mut Rng) -> Vec<SimTest> {
    let mut tests = Vec::new();
    let mut add = |id: String, born: u32, truth: Truth| tests.push(SimTest { id, born, truth });
    for i in 0..200 {
        add(format!("healthy::t{i}"), 0, Truth::Healthy);
    }
    // Flake rates spread evenly over 0.05..=0.3.
    for i in 0..30 {
        let p = 0.05 + 0.25 * f64::from(i) / 29.0;
        add(format!("flaky::t{i}"), 0, Truth::Flaky(p));
    }
    for i in 0..16u32 {
        let from = 12 + 11 * i;
        // Half stay broken, half are fixed after four or six runs.
        let until = if i % 2 == 0 {
            u32::MAX
        } else {
            from + 3 + i % 4
        };
        add(format!("broken::t{i}"), 0, Truth::Broken { from, until });
    }
    for i in 0..20u32 {
        let born = 40 + 7 * i;
        let truth = match i % 4 {
            0 | 1 => Truth::Healthy,
            2 => Truth::Flaky(0.05 + 0.25 * rng.unit()),
            // Failing from its first run: a genuinely new failure.
            _ => Truth::Broken {
                from: 0,
                until: u32::MAX,
            },
        };
        add(format!("new::t{i}"), born, truth);
    }
    tests
}

/// The suite retries a failing test once, like suites that use flake
/// detection should; the final outcome folds the two attempts.
fn execute(truth: Truth, commit: u32, rng: &mut Rng) -> (Outcome, Vec<Outcome>) {
    let fails = |rng: &mut Rng| match truth {
        Truth::Healthy => false,
        Truth::Flaky(p) => rng.unit() < p,
        Truth::Broken { from, until } => (from..until).contains(&commit),
    };
    if !fails(rng) {
        return (Outcome::Passed, Vec::new());
    }
    if fails(rng) {
        (Outcome::Failed, vec![Outcome::Failed, Outcome::Failed])
    } else {
        (Outcome::Flaky, vec![Outcome::Failed, Outcome::Flaky])
    }
}

#[derive(Debug, Default)]
struct Score {
    tp: u64,
    fp: u64,
    fn_: u64,
    hidden_new_failures: Vec<String>,
}

fn simulate(seed: u64, policy: &HistoryPolicy) -> Score {
    let mut rng = Rng(seed);
    let tests = suite(&mut rng);
    let mut store: HashMap<String, TestHistory> = HashMap::new();
    let mut score = Score::default();
    let mut commit = 0u32;
    for run in 0..200u32 {
        // Every fifth run re-runs the previous commit; one in five runs is
        // on a feature branch.
        if run % 5 != 4 {
            commit += 1;
        }
        let branch = if rng.unit() < 0.2 { "feature" } else { "main" };
        let present: Vec<&SimTest> = tests.iter().filter(|t| t.born <= run).collect();
        let observed: Vec<Observed> = present
            .iter()
            .map(|t| {
                let (outcome, attempts) = execute(t.truth, commit, &mut rng);
                Observed {
                    id: t.id.clone(),
                    entry: HistoryEntry {
                        run: format!("run{run}"),
                        at_ms: u64::from(run) * 1000,
                        commit: Some(format!("c{commit}")),
                        branch: Some(branch.into()),
                        outcome,
                        attempts,
                        duration_secs: 1.0,
                    },
                    file: None,
                }
            })
            .collect();
        // The class each test had going into this run, scored over the
        // second half for tests seen at least a full window's worth.
        if run >= 100 {
            for t in &present {
                let entries = store.get(&t.id).map_or(&[][..], |h| &h.entries[..]);
                let said_flaky = classify(entries, &policy.flaky) == Class::Flaky;
                let is_flaky = matches!(t.truth, Truth::Flaky(_));
                if is_flaky && entries.len() < policy.flaky.window as usize {
                    continue;
                }
                match (said_flaky, is_flaky) {
                    (true, true) => score.tp += 1,
                    (true, false) => score.fp += 1,
                    (false, true) => score.fn_ += 1,
                    (false, false) => {}
                }
            }
        }
        let (t, after) = triage(&observed, std::mem::take(&mut store), policy);
        // Every failure of a test that is not flaky must be a new failure,
        // in every run.
        for (sim, o) in present.iter().zip(&observed) {
            let is_flaky = matches!(sim.truth, Truth::Flaky(_));
            if o.entry.failed() && !is_flaky && !t.new_failures.iter().any(|x| x.id == o.id) {
                score
                    .hidden_new_failures
                    .push(format!("{} in run {run}", o.id));
            }
        }
        assert!(
            t.quarantined
                .iter()
                .all(|q| q.quarantined == Some(QuarantineReason::Auto)),
            "nothing is listed manually"
        );
        store = after.into_iter().map(|h| (h.id.clone(), h)).collect();
    }
    score
}

fn precision_recall(s: &Score) -> (f64, f64) {
    (
        s.tp as f64 / (s.tp + s.fp).max(1) as f64,
        s.tp as f64 / (s.tp + s.fn_).max(1) as f64,
    )
}

#[test]
fn classification_finds_flaky_tests_and_quarantine_hides_no_new_failure() {
    let mut policy = HistoryPolicy::default();
    policy.quarantine.auto = true;
    for seed in [1, 2] {
        let score = simulate(seed, &policy);
        let (precision, recall) = precision_recall(&score);
        eprintln!(
            "seed {seed}: precision {precision:.4} recall {recall:.4} (tp {} fp {} fn {})",
            score.tp, score.fp, score.fn_
        );
        assert!(
            score.tp > 2000,
            "the simulation scored too little: {score:?}"
        );
        assert!(precision >= 0.95, "seed {seed}: precision {precision}");
        assert!(recall >= 0.95, "seed {seed}: recall {recall}");
        assert!(
            score.hidden_new_failures.is_empty(),
            "seed {seed}: hidden new failures: {:?}",
            score.hidden_new_failures
        );
    }
}

/// The simulation can fail: classifying every test as flaky (a window of
/// one failure) ruins precision; a window too short to remember flakes
/// ruins recall. Guards against a scoring bug that always passes.
#[test]
fn the_simulation_detects_bad_thresholds() {
    let mut loose = HistoryPolicy::default();
    loose.flaky.min_flips = 1;
    loose.flaky.flip_rate = 0.0;
    loose.flaky.broken_runs = 1000;
    let (p, _) = precision_recall(&simulate(1, &loose));
    assert!(p < 0.95, "a loose policy should lose precision, got {p}");
    let mut forgetful = HistoryPolicy::default();
    forgetful.flaky.window = 2;
    let (_, r) = precision_recall(&simulate(1, &forgetful));
    assert!(r < 0.95, "a short window should lose recall, got {r}");
}
