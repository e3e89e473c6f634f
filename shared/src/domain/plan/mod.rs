//! Timing-balanced shard planning.
//!
//! Pure: callers hand in the suite's files and a [`Timings`] history, and get
//! back a [`Plan`]. No I/O happens here. See `docs/planning.md` for the rules.
//!
//! Outline: every file gets an estimate (its history, else the median of the
//! known files, else [`DEFAULT_FILE_SECS`]); with `split_by_test`, files larger
//! than the ideal shard load are cut into groups of tests; the units are then
//! packed Longest-Processing-Time-first onto the least loaded shard, and a
//! move/swap pass between the fullest and emptiest shard evens out the tail.
//! Inputs are sorted first, so any permutation of the same inputs gives the
//! same plan, byte for byte.

mod lpt;
mod queue;
mod timings;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::errors::PlanError;
pub use queue::{MAX_BATCHES, queue_plan};
pub use timings::{
    MAX_TIMED_TESTS, TIMINGS_VERSION, Timings, TimingsObserver, median_batch_startup,
    normalize_path,
};

/// Most files one plan accepts: far above any real suite, low enough that a
/// plan stays within a Lambda's memory (~100 bytes per file).
pub const MAX_FILES: usize = 1_000_000;

/// Highest `max_shards` accepted: no backend runs more parallel workers.
pub const MAX_SHARDS: u32 = 100_000;

/// Estimate for every file when there is no history at all. Any constant
/// gives the same split (equal file counts per shard); 1 s keeps
/// `TargetSeconds` meaningful ("about t files per shard") and is the order of
/// magnitude of a typical unit-test file.
pub const DEFAULT_FILE_SECS: f64 = 1.0;

/// A file is split into test groups when its estimate exceeds this fraction
/// of the ideal shard load (total / shards). At 1.0 only files that would by
/// themselves push the makespan above the ideal are split: each split costs
/// the file's setup once more per group, so splitting less is cheaper.
pub const SPLIT_FRACTION: f64 = 1.0;

/// How many shards to make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShardTarget {
    /// Exactly this many (fewer if there are fewer work units).
    Count(u32),
    /// As many as needed for shards of about this many seconds:
    /// `ceil(total / t)`, clamped to `1..=max_shards` and to the unit count.
    TargetSeconds(f64),
}

/// Everything [`plan`] needs.
#[derive(Debug, Clone, Copy)]
pub struct PlanRequest<'a> {
    /// The suite's test files, in any order (duplicates are ignored).
    pub files: &'a [String],
    pub timings: &'a Timings,
    pub target: ShardTarget,
    /// May large files be cut into groups of tests (the runner must support
    /// selecting tests within a file)?
    pub split_by_test: bool,
    /// Upper bound on the shard count (the backend's concurrency).
    pub max_shards: u32,
    /// Tests of a split file that must run with "the rest of the file"
    /// rather than in a group of their own: those the runner could not
    /// leave out of the rest exactly. `None`: any test may be split off.
    pub keep_with_file: Option<KeepWithFile<'a>>,
}

/// `(file, test key) -> true` when that test must stay in its file's
/// `includes_unlisted` group (see [`PlanRequest::keep_with_file`]).
#[derive(Clone, Copy)]
pub struct KeepWithFile<'a>(pub &'a dyn Fn(&str, &str) -> bool);

impl std::fmt::Debug for KeepWithFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeepWithFile(..)")
    }
}

/// Where estimates for files without history came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackSource {
    /// The median of the listed files that have history.
    Median,
    /// No listed file had history: [`DEFAULT_FILE_SECS`] for each.
    Default,
}

/// One thing a shard runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkUnit {
    /// A whole test file.
    File { path: String, estimated_secs: f64 },
    /// Some tests of a file (ids as in [`crate::domain::model::TestCase::key`]).
    ///
    /// History only knows the tests that ran before, so exactly one group per
    /// split file has `includes_unlisted`: its runner must also run every
    /// test of `path` that no other group of that file names (tests added
    /// since the history was recorded), otherwise they would never run.
    Tests {
        path: String,
        tests: Vec<String>,
        estimated_secs: f64,
        includes_unlisted: bool,
    },
}

impl WorkUnit {
    pub fn path(&self) -> &str {
        match self {
            WorkUnit::File { path, .. } | WorkUnit::Tests { path, .. } => path,
        }
    }

    pub fn estimated_secs(&self) -> f64 {
        match self {
            WorkUnit::File { estimated_secs, .. } | WorkUnit::Tests { estimated_secs, .. } => {
                *estimated_secs
            }
        }
    }
}

/// One shard's work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardPlan {
    /// 0-based, dense.
    pub index: u32,
    /// Heaviest first.
    pub units: Vec<WorkUnit>,
    pub estimated_secs: f64,
}

impl ShardPlan {
    /// Distinct file paths this shard touches (whole or in part), in unit order.
    pub fn files(&self) -> Vec<&str> {
        let mut seen = std::collections::BTreeSet::new();
        self.units
            .iter()
            .map(WorkUnit::path)
            .filter(|p| seen.insert(*p))
            .collect()
    }

    /// Test ids of the shard's test groups (empty when it runs whole files only).
    pub fn tests(&self) -> Vec<&str> {
        self.units
            .iter()
            .flat_map(|u| match u {
                WorkUnit::Tests { tests, .. } => tests.as_slice(),
                WorkUnit::File { .. } => &[],
            })
            .map(String::as_str)
            .collect()
    }
}

/// The result of [`plan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub shards: Vec<ShardPlan>,
    /// The largest shard estimate: the predicted wall time of the run.
    pub estimated_makespan_secs: f64,
    /// No plan can beat `max(total / shards, largest unit)`.
    pub lower_bound_secs: f64,
    /// Sum of every unit's estimate.
    pub total_secs: f64,
    /// Share (0..=1) of the listed files that had history.
    pub known_share: f64,
    /// The estimate given to each file without history.
    pub fallback_secs: f64,
    pub fallback_source: FallbackSource,
    /// Shards asked for (for `TargetSeconds`, `ceil(total / t)`) before
    /// clamping to `max_shards` and to the number of work units.
    pub requested_shards: u32,
    /// Why the plan differs from the request (fewer shards, split files).
    pub notes: Vec<String>,
}

impl Plan {
    /// `makespan / lower bound` (1.0 is provably optimal); 1.0 for an all-zero plan.
    pub fn quality_ratio(&self) -> f64 {
        if self.lower_bound_secs > 0.0 {
            self.estimated_makespan_secs / self.lower_bound_secs
        } else {
            1.0
        }
    }
}

/// A unit before packing. Units are created in path order (groups of a
/// split file in group order); that creation order is the tie-break.
struct Unit<'a> {
    path: &'a str,
    tests: Option<Vec<String>>,
    includes_unlisted: bool,
    secs: f64,
}

/// Plans the shards. Deterministic: the same files (in any order) and
/// timings give the same plan.
pub fn plan(req: &PlanRequest) -> Result<Plan, PlanError> {
    plan_impl(req, true)
}

/// LPT without the improvement pass; exposed for benchmarks that measure
/// what the pass is worth. Not part of the stable API.
#[doc(hidden)]
pub fn plan_lpt_only(req: &PlanRequest) -> Result<Plan, PlanError> {
    plan_impl(req, false)
}

fn plan_impl(req: &PlanRequest, refine: bool) -> Result<Plan, PlanError> {
    if req.max_shards == 0 || req.max_shards > MAX_SHARDS {
        return Err(PlanError::InvalidMaxShards {
            value: req.max_shards,
            max: MAX_SHARDS,
        });
    }
    match req.target {
        ShardTarget::Count(0) => return Err(PlanError::ZeroShards),
        ShardTarget::TargetSeconds(t) if !(t.is_finite() && t > 0.0) => {
            return Err(PlanError::InvalidTargetSeconds { value: t });
        }
        _ => {}
    }
    if req.files.len() > MAX_FILES {
        return Err(PlanError::TooManyFiles {
            count: req.files.len(),
            max: MAX_FILES,
        });
    }
    // Canonical order first: everything below depends only on this list.
    // Paths are normalised (`./a` is `a`) so history and listing meet; that
    // borrows in the common case.
    let mut files: Vec<Cow<str>> = req.files.iter().map(|f| timings::normalized(f)).collect();
    files.sort_unstable();
    files.dedup();
    // A suite that selects tests may list no files at all (its command takes
    // `{tests}` only): then the tests come from history, and every unit must
    // name its tests, since a shard with no tests would run everything.
    let tests_only = files.is_empty() && req.split_by_test;
    if tests_only {
        files = req.timings.files_with_tests().map(Cow::Borrowed).collect();
        if files.is_empty() {
            return Ok(run_everything_plan(requested_shards(req.target)));
        }
    }
    if files.is_empty() {
        return Err(PlanError::NoFiles);
    }
    // Sorted, so a blank path (which no runner could execute) comes first.
    if files[0].is_empty() {
        return Err(PlanError::BlankPath);
    }

    let known: Vec<Option<f64>> = req.timings.lookup_sorted(&files);
    let mut known_values: Vec<f64> = known.iter().flatten().copied().collect();
    let known_count = known_values.len();
    let (fallback_secs, fallback_source) = if known_values.is_empty() {
        (DEFAULT_FILE_SECS, FallbackSource::Default)
    } else {
        (median(&mut known_values), FallbackSource::Median)
    };
    let estimates: Vec<f64> = known.iter().map(|k| k.unwrap_or(fallback_secs)).collect();
    let whole_total: f64 = estimates.iter().sum();

    let mut notes = Vec::new();
    let requested_shards = match req.target {
        ShardTarget::Count(n) => n,
        ShardTarget::TargetSeconds(t) => shards_for(whole_total, t, u32::MAX),
    };
    let first_n = requested_shards.min(req.max_shards).max(1);

    // Split oversized files into test groups.
    let threshold = SPLIT_FRACTION * whole_total / first_n as f64;
    let mut units: Vec<Unit> = Vec::with_capacity(files.len());
    let mut split_files = 0usize;
    for (i, path) in files.iter().map(|f| f.as_ref()).enumerate() {
        let secs = estimates[i];
        let groups = if req.split_by_test && first_n > 1 && secs > threshold && threshold > 0.0 {
            split_file(path, secs, req, threshold, first_n as usize)
        } else {
            None
        };
        match groups {
            Some(groups) => {
                split_files += 1;
                units.extend(groups);
            }
            None => units.push(Unit {
                path,
                tests: tests_only.then(|| all_tests(req.timings, path)),
                includes_unlisted: tests_only,
                secs,
            }),
        }
    }
    if split_files > 0 {
        notes.push(format!(
            "split {split_files} file(s) longer than the ideal shard load ({threshold:.1} s) into groups of tests"
        ));
    }
    let total: f64 = units.iter().map(|u| u.secs).sum();

    // The final shard count.
    let wanted = match req.target {
        ShardTarget::Count(n) => n,
        ShardTarget::TargetSeconds(t) => shards_for(total, t, u32::MAX),
    };
    let mut n = wanted;
    if n > req.max_shards {
        notes.push(format!(
            "asked for {n} shards, capped at max_shards = {}",
            req.max_shards
        ));
        n = req.max_shards;
    }
    if n as usize > units.len() {
        notes.push(format!(
            "asked for {n} shards but there are only {} work units: planned {} shards so none is empty",
            units.len(),
            units.len()
        ));
        n = units.len() as u32;
    }
    let n = n.max(1) as usize;

    // LPT: heaviest first; ties by path, then group order, so the order is total.
    // Units were created in (path, group order) order, so "ties by path,
    // then group" is "ties by creation index": sort indices on a compact
    // weight array, no string comparisons, no moving of the wide units.
    let secs: Vec<f64> = units.iter().map(|u| u.secs).collect();
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_unstable_by(|&a, &b| secs[b].total_cmp(&secs[a]).then(a.cmp(&b)));
    // Position p in packing order is unit order[p].
    let weights: Vec<f64> = order.iter().map(|&i| secs[i]).collect();
    let mut bins = lpt::pack(&weights, n);
    if refine {
        lpt::refine(&mut bins, &weights);
    }

    let mut shards = Vec::with_capacity(n);
    let mut makespan = 0.0f64;
    for (index, mut bin) in bins.into_iter().enumerate() {
        // Positions follow the global heaviest-first order; sorting restores
        // it after the improvement pass moved items around.
        bin.sort_unstable();
        let estimated_secs = lpt::load_of(&bin, &weights);
        makespan = makespan.max(estimated_secs);
        let mut shard_units = Vec::with_capacity(bin.len());
        for pos in bin {
            let u = &mut units[order[pos]];
            shard_units.push(match u.tests.take() {
                None => WorkUnit::File {
                    path: u.path.to_string(),
                    estimated_secs: u.secs,
                },
                Some(tests) => WorkUnit::Tests {
                    path: u.path.to_string(),
                    tests,
                    estimated_secs: u.secs,
                    includes_unlisted: u.includes_unlisted,
                },
            });
        }
        shards.push(ShardPlan {
            index: index as u32,
            units: shard_units,
            estimated_secs,
        });
    }
    let largest = weights.first().copied().unwrap_or(0.0);
    Ok(Plan {
        shards,
        estimated_makespan_secs: makespan,
        lower_bound_secs: (total / n as f64).max(largest),
        total_secs: total,
        known_share: known_count as f64 / files.len() as f64,
        fallback_secs,
        fallback_source,
        requested_shards,
        notes,
    })
}

/// The shard count asked for before any history is known.
fn requested_shards(target: ShardTarget) -> u32 {
    match target {
        ShardTarget::Count(n) => n,
        ShardTarget::TargetSeconds(_) => 1,
    }
}

/// No files listed and no per-test history for a test-selecting suite: one
/// shard with an empty selection, which runs the whole suite (and records
/// the history the next plan balances with).
fn run_everything_plan(requested_shards: u32) -> Plan {
    single_shard_plan(
        Vec::new(),
        requested_shards,
        DEFAULT_FILE_SECS,
        vec![
            "no files listed and no per-test history yet: one shard runs the whole suite \
             (an empty test selection runs everything); later runs are balanced by its timings"
                .to_string(),
        ],
    )
}

/// A plan of one shard holding `units`; with none, `{files}` and `{tests}`
/// expand to nothing and the command runs the whole suite.
pub fn single_shard_plan(
    units: Vec<WorkUnit>,
    requested_shards: u32,
    fallback_secs: f64,
    notes: Vec<String>,
) -> Plan {
    Plan {
        shards: vec![ShardPlan {
            index: 0,
            units,
            estimated_secs: 0.0,
        }],
        estimated_makespan_secs: 0.0,
        lower_bound_secs: 0.0,
        total_secs: 0.0,
        known_share: 0.0,
        fallback_secs,
        fallback_source: FallbackSource::Default,
        requested_shards,
        notes,
    }
}

/// Every test id history knows for a file, sorted.
fn all_tests(timings: &Timings, path: &str) -> Vec<String> {
    timings
        .test_secs(path)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

/// `ceil(total / t)` clamped to `1..=cap`, computed in f64 so huge totals
/// saturate instead of overflowing.
fn shards_for(total: f64, t: f64, cap: u32) -> u32 {
    (total / t).ceil().clamp(1.0, cap as f64) as u32
}

/// Median of finite values (mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Cuts one file into test groups of about `threshold` seconds, or `None`
/// when it has no per-test history or splitting would not help.
///
/// Time the history attributes to the file but not to any test (setup,
/// collection) is charged to every group in full, because every group
/// repeats it.
fn split_file<'a>(
    path: &'a str,
    secs: f64,
    req: &PlanRequest,
    threshold: f64,
    max_groups: usize,
) -> Option<Vec<Unit<'a>>> {
    let tests = req.timings.test_secs(path)?;
    // A parametrised test's cases (`name[params]`) stay together: runners
    // select them by the bare name, and a parameter added later must run
    // where its siblings do.
    let mut families: BTreeMap<&str, f64> = BTreeMap::new();
    for (id, s) in tests {
        *families.entry(family(id)).or_insert(0.0) += *s;
    }
    let test_sum: f64 = tests.values().sum();
    let overhead = (secs - test_sum).max(0.0);
    // Tests that must stay with the rest of the file travel as one item.
    let keep = |id: &str| req.keep_with_file.is_some_and(|k| (k.0)(path, id));
    let mut kept_secs = None;
    let mut items: Vec<(Option<&str>, f64)> = Vec::with_capacity(families.len());
    for (id, s) in families {
        if keep(id) {
            *kept_secs.get_or_insert(0.0) += s;
        } else {
            items.push((Some(id), s));
        }
    }
    if let Some(s) = kept_secs {
        items.push((None, s));
    }
    if items.len() < 2 {
        return None;
    }
    let k = ((secs / threshold).ceil() as usize).clamp(2, max_groups.min(items.len()).max(2));
    // LPT over the items, heaviest first, ties by id (the kept item last).
    items.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| a.0.is_none().cmp(&b.0.is_none()))
            .then_with(|| a.0.cmp(&b.0))
    });
    let weights: Vec<f64> = items.iter().map(|i| i.1).collect();
    let mut bins = lpt::pack(&weights, k);
    lpt::refine(&mut bins, &weights);
    let mut groups: Vec<(Vec<String>, f64, bool)> = bins
        .into_iter()
        .filter(|b| !b.is_empty())
        .map(|mut b| {
            b.sort_unstable();
            let load = lpt::load_of(&b, &weights) + overhead;
            let holds_kept = b.iter().any(|&i| items[i].0.is_none());
            let mut ids: Vec<String> = b
                .iter()
                .filter_map(|&i| items[i].0.map(str::to_string))
                .collect();
            ids.sort_unstable();
            (ids, load, holds_kept)
        })
        .collect();
    if groups.len() < 2 || groups.iter().all(|g| g.1 >= secs) {
        return None;
    }
    // Canonical group order: by first test id.
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    // The rest of the file (kept tests, tests added since the history)
    // goes to the group holding the kept tests, else to the lightest.
    let rest = groups.iter().position(|g| g.2).unwrap_or_else(|| {
        groups
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1).then(a.0.cmp(&b.0)))
            .map(|(i, _)| i)
            .unwrap_or(0)
    });
    Some(
        groups
            .into_iter()
            .enumerate()
            .map(|(ord, (ids, load, _))| Unit {
                path,
                tests: Some(ids),
                includes_unlisted: ord == rest,
                secs: load,
            })
            .collect(),
    )
}

/// The family of a test id: the id without a trailing `[params]`.
fn family(id: &str) -> &str {
    match (id.find('['), id.ends_with(']')) {
        (Some(open), true) => &id[..open],
        _ => id,
    }
}

#[cfg(test)]
mod tests;
