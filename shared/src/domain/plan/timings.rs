//! Timing history: seconds per test file and per test, as the planner sees it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::model::{TestCase, add_duration};
use crate::errors::PlanError;

use super::MAX_FILES;

/// The only history format version this build reads and writes.
pub const TIMINGS_VERSION: u64 = 1;

/// Observed durations: seconds per test file, and per test within each file.
///
/// Keys are normalised paths (see [`normalize_path`]) so that `./tests/a.py`
/// from one runner and `tests/a.py` from the manifest meet. `BTreeMap`s keep
/// every iteration (and so the JSON and the plan) in one canonical order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    files: BTreeMap<String, f64>,
    tests: BTreeMap<String, BTreeMap<String, f64>>,
    /// What one shard or queue batch spends outside its tests (checkout,
    /// setup, the runner's start), as the last run measured it.
    batch_startup_secs: Option<f64>,
}

/// The on-disk shape; kept separate so the in-memory type can change freely.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimingsFile {
    version: u64,
    #[serde(default)]
    files: BTreeMap<String, f64>,
    #[serde(default)]
    tests: BTreeMap<String, BTreeMap<String, f64>>,
    /// Absent until a run measured it, so older histories read unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch_startup_secs: Option<f64>,
}

/// Only the version, read first so a future format gets a version error
/// rather than a confusing field error.
#[derive(Deserialize)]
struct VersionOnly {
    version: Option<serde_json::Value>,
}

impl Timings {
    /// An empty history.
    pub fn new() -> Timings {
        Timings::default()
    }

    /// Builds timings from test cases: per test its duration (repeated ids in
    /// one file are summed), per file the sum of its tests.
    ///
    /// The file is `TestCase::file`; when a report gave none, the case's
    /// scope (classname, else suite, as in [`TestCase::key`]) stands in, which
    /// for JUnit-style Java reports is the test class.
    pub fn from_cases<'a>(cases: impl IntoIterator<Item = &'a TestCase>) -> Timings {
        let mut observer = Timings::observer();
        cases.into_iter().for_each(|case| observer.add(case));
        observer.finish()
    }

    /// [`from_cases`](Self::from_cases) for cases read one at a time (the
    /// report handler streams them from disk).
    pub fn observer() -> TimingsObserver {
        TimingsObserver::default()
    }

    /// Folds in newer observations: for every file `newer` knows, its file
    /// time and its per-test times replace ours wholesale.
    ///
    /// Replacement rather than an average: the latest run reflects the
    /// current code (tests added, fixtures changed), and replacing the whole
    /// file keeps deleted tests from lingering in the history.
    pub fn merge(&mut self, newer: &Timings) {
        if newer.batch_startup_secs.is_some() {
            self.batch_startup_secs = newer.batch_startup_secs;
        }
        for (file, secs) in &newer.files {
            self.files.insert(file.clone(), *secs);
            match newer.tests.get(file) {
                Some(t) => {
                    self.tests.insert(file.clone(), t.clone());
                }
                None => {
                    self.tests.remove(file);
                }
            }
        }
    }

    /// [`merge`](Self::merge) taking `newer` by value: its maps are moved,
    /// not copied (the report handler's observation of a large run).
    pub fn merge_owned(&mut self, newer: Timings) {
        if newer.batch_startup_secs.is_some() {
            self.batch_startup_secs = newer.batch_startup_secs;
        }
        let mut tests = newer.tests;
        for (file, secs) in newer.files {
            match tests.remove(&file) {
                Some(t) => {
                    self.tests.insert(file.clone(), t);
                }
                None => {
                    self.tests.remove(&file);
                }
            }
            self.files.insert(file, secs);
        }
    }

    /// Records one file's duration (replacing any earlier value and its tests).
    /// Negative or non-finite values are stored as 0.
    pub fn insert_file(&mut self, file: &str, secs: f64) {
        let file = normalize_path(file);
        self.tests.remove(&file);
        self.files.insert(file, sanitize(secs));
    }

    /// Records one test's duration within a file; the file's time becomes the
    /// sum of its tests unless it was larger (setup time outside the tests).
    pub fn insert_test(&mut self, file: &str, test: &str, secs: f64) {
        let file = normalize_path(file);
        let tests = self.tests.entry(file.clone()).or_default();
        tests.insert(test.to_string(), sanitize(secs));
        let sum = tests.values().copied().fold(0.0, add_duration);
        let entry = self.files.entry(file).or_insert(0.0);
        *entry = entry.max(sum);
    }

    /// True when this history has never seen the test: its file is not in
    /// it, or the file's tests are and this one is not. A file known only
    /// by its total (past [`MAX_TIMED_TESTS`]) says nothing about its tests,
    /// so they count as seen; so does a case tied to no file.
    pub fn never_saw(&self, case: &TestCase) -> bool {
        let Some(file) = history_file(case) else {
            return false;
        };
        match (self.files.contains_key(&file), self.tests.get(&file)) {
            (false, _) => true,
            (true, Some(tests)) => !tests.contains_key(&case.key()),
            (true, None) => false,
        }
    }

    /// The measured start-up of one shard or batch: its wall time minus
    /// its tests' (the median over the last run's shards), if measured.
    /// Queue mode sizes its batches from it.
    pub fn batch_startup_secs(&self) -> Option<f64> {
        self.batch_startup_secs
    }

    /// Records the start-up of one shard or batch (see
    /// [`batch_startup_secs`](Self::batch_startup_secs)); negative or
    /// non-finite values are stored as 0.
    pub fn set_batch_startup_secs(&mut self, secs: f64) {
        self.batch_startup_secs = Some(sanitize(secs));
    }

    /// Seconds for a file, if it was ever observed.
    pub fn file_secs(&self, file: &str) -> Option<f64> {
        self.files.get(normalized(file).as_ref()).copied()
    }

    /// Per-test seconds for a file, if known.
    pub fn test_secs(&self, file: &str) -> Option<&BTreeMap<String, f64>> {
        self.tests
            .get(normalize_path(file).as_str())
            .filter(|t| !t.is_empty())
    }

    /// Seconds for each of `sorted` (normalised, ascending, distinct paths):
    /// one merge pass over both sorted lists instead of a tree search each.
    pub(crate) fn lookup_sorted<S: AsRef<str>>(&self, sorted: &[S]) -> Vec<Option<f64>> {
        let mut out = Vec::with_capacity(sorted.len());
        let mut history = self.files.iter().peekable();
        for file in sorted {
            let file = file.as_ref();
            while history.next_if(|(k, _)| k.as_str() < file).is_some() {}
            out.push(
                history
                    .next_if(|(k, _)| k.as_str() == file)
                    .map(|(_, v)| *v),
            );
        }
        out
    }

    /// Files that have per-test history, in path order.
    pub fn files_with_tests(&self) -> impl Iterator<Item = &str> {
        self.tests
            .iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(k, _)| k.as_str())
    }

    /// Every file with a known time, in path order.
    pub fn files(&self) -> impl Iterator<Item = (&str, f64)> {
        self.files.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The history format: `{"version":1,"files":{path:secs},"tests":{path:{id:secs}}}`,
    /// keys sorted, so equal timings give byte-identical text.
    pub fn to_json(&self) -> String {
        let doc = TimingsFile {
            version: TIMINGS_VERSION,
            files: self.files.clone(),
            tests: self.tests.clone(),
            batch_startup_secs: self.batch_startup_secs,
        };
        // Serialising maps of strings to finite floats cannot fail.
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }

    /// Parses the history format. `origin` (usually the file path) names the
    /// input in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Timings, PlanError> {
        let bad = |message: String| PlanError::BadTimingsJson {
            origin: origin.to_string(),
            message,
        };
        let head: VersionOnly = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        match head.version {
            None => return Err(bad("missing field `version`".into())),
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(TIMINGS_VERSION) => {}
            Some(serde_json::Value::Number(n)) if n.as_u64().is_some() => {
                return Err(PlanError::UnsupportedTimingsVersion {
                    origin: origin.to_string(),
                    version: n.as_u64().unwrap_or_default(),
                });
            }
            Some(other) => {
                return Err(bad(format!(
                    "`version` must be a positive integer, found {other}"
                )));
            }
        }
        let doc: TimingsFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if doc.files.len() > MAX_FILES || doc.tests.len() > MAX_FILES {
            return Err(PlanError::TooManyTimings {
                origin: origin.to_string(),
                count: doc.files.len().max(doc.tests.len()),
                max: MAX_FILES,
            });
        }
        let check = |what: &'static str, path: &str, value: f64| {
            if (0.0..=MAX_SECS).contains(&value) {
                Ok(())
            } else {
                Err(PlanError::BadDuration {
                    origin: origin.to_string(),
                    what,
                    path: path.to_string(),
                    value,
                })
            }
        };
        let mut timings = Timings::new();
        if let Some(secs) = doc.batch_startup_secs {
            check("start-up", "batch_startup_secs", secs)?;
            timings.batch_startup_secs = Some(secs);
        }
        for (file, secs) in &doc.files {
            check("file", file, *secs)?;
            timings.files.insert(normalize_path(file), *secs);
        }
        for (file, tests) in doc.tests {
            for (id, secs) in &tests {
                check("test", &format!("{file}::{id}"), *secs)?;
            }
            let file = normalize_path(&file);
            // A file known only through its tests takes their sum; a file
            // time larger than the sum (setup) is kept.
            let sum = tests.values().copied().fold(0.0, add_duration);
            let entry = timings.files.entry(file.clone()).or_insert(sum);
            *entry = entry.max(sum);
            timings.tests.insert(file, tests);
        }
        Ok(timings)
    }
}

/// The start-up of one shard or batch, from `(wall, tests)` seconds of each
/// finished shard of a run: the median of `wall - tests` (never negative),
/// the median so that one shard stuck on a slow checkout or a timeout does
/// not set it; `None` without a shard to measure.
pub fn median_batch_startup(shards: impl IntoIterator<Item = (f64, f64)>) -> Option<f64> {
    let mut startups: Vec<f64> = shards
        .into_iter()
        .filter(|(wall, tests)| wall.is_finite() && tests.is_finite())
        .map(|(wall, tests)| (wall - tests).max(0.0))
        .collect();
    if startups.is_empty() {
        return None;
    }
    Some(super::median(&mut startups))
}

/// The form paths are compared in: forward slashes, no leading `./`.
pub fn normalize_path(path: &str) -> String {
    normalized(path).into_owned()
}

/// Borrows when the path is already normal (the common case): lookups for
/// a million files should not allocate a million strings.
pub(crate) fn normalized(path: &str) -> Cow<'_, str> {
    let mut p = path.trim();
    if p.contains('\\') {
        let owned = p.replace('\\', "/");
        let mut q = owned.as_str();
        while let Some(rest) = q.strip_prefix("./") {
            q = rest;
        }
        return Cow::Owned(q.to_string());
    }
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    Cow::Borrowed(p)
}

/// The file a case's time is recorded under: its `file`, else its scope
/// (classname, else suite, as in [`TestCase::key`]), which for JUnit-style
/// Java reports is the test class. `None`: nothing ties it to a file.
fn history_file(case: &TestCase) -> Option<String> {
    match &case.file {
        Some(f) if !f.is_empty() => Some(normalize_path(f)),
        _ => {
            let scope = if case.classname.is_empty() {
                &case.suite
            } else {
                &case.classname
            };
            (!scope.is_empty()).then(|| normalize_path(scope))
        }
    }
}

/// Reports can carry garbage (negative or NaN times); treat it as "took no
/// measurable time" rather than poisoning every sum.
fn sanitize(secs: f64) -> f64 {
    if secs.is_finite() && secs > 0.0 {
        secs.min(MAX_SECS)
    } else {
        0.0
    }
}

/// Longest duration accepted for one file or test (about 31 years): keeps
/// sums of a million entries finite, so plans never contain infinities.
pub const MAX_SECS: f64 = crate::domain::model::MAX_DURATION_SECS;

/// Tests whose own times one observation keeps; past this many (a shard of
/// a million generated cases) only per-file sums are kept, so the report
/// handler's memory and the history file stay bounded. Splitting a file
/// across shards by its tests is what per-test times are for, and no file
/// of that many tests is run in one shard anyway.
pub const MAX_TIMED_TESTS: usize = 100_000;

/// Observations gathered by [`Timings::observer`].
#[derive(Debug, Default)]
pub struct TimingsObserver {
    /// Every observation per file and test, summed only in `finish` and in
    /// sorted order, so the floating-point totals do not depend on the
    /// order of the reports.
    obs: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
    tests: usize,
    /// Past [`MAX_TIMED_TESTS`]: every duration per file (8 bytes each),
    /// summed in sorted order too.
    files_only: Option<BTreeMap<String, Vec<f64>>>,
}

impl TimingsObserver {
    pub fn add(&mut self, case: &TestCase) {
        let Some(file) = history_file(case) else {
            // Nothing ties this case to a file; it cannot inform a plan.
            return;
        };
        let secs = sanitize(case.duration_secs);
        if let Some(files) = self.files_only.as_mut() {
            files.entry(file).or_default().push(secs);
            return;
        }
        let per_test = self.obs.entry(file).or_default();
        let key = case.key();
        match per_test.get_mut(&key) {
            Some(values) => values.push(secs),
            None => {
                per_test.insert(key, vec![secs]);
                self.tests += 1;
                if self.tests > MAX_TIMED_TESTS {
                    let obs = std::mem::take(&mut self.obs);
                    self.files_only = Some(
                        obs.into_iter()
                            .map(|(file, tests)| (file, tests.into_values().flatten().collect()))
                            .collect(),
                    );
                }
            }
        }
    }

    pub fn finish(self) -> Timings {
        let mut timings = Timings::new();
        if let Some(files) = self.files_only {
            for (file, mut values) in files {
                values.sort_by(f64::total_cmp);
                timings
                    .files
                    .insert(file, values.iter().copied().fold(0.0, add_duration));
            }
            return timings;
        }
        for (file, tests) in self.obs {
            let mut per_test = BTreeMap::new();
            for (id, mut values) in tests {
                values.sort_by(f64::total_cmp);
                per_test.insert(id, values.iter().copied().fold(0.0, add_duration));
            }
            // Capped like each value: history must read back (`from_json`
            // refuses anything above MAX_SECS).
            let file_secs = per_test.values().copied().fold(0.0, add_duration);
            timings.files.insert(file.clone(), file_secs);
            timings.tests.insert(file, per_test);
        }
        timings
    }
}

#[cfg(test)]
mod observer_tests {
    use super::*;
    use crate::domain::model::Outcome;

    fn case(file: &str, name: &str, secs: f64) -> TestCase {
        TestCase {
            file: Some(file.into()),
            duration_secs: secs,
            ..TestCase::new("s", "c", name, Outcome::Passed)
        }
    }

    #[test]
    fn a_test_is_new_only_where_the_history_knows_its_file_tests() {
        let mut t = Timings::from_cases(&[case("a.py", "known", 1.0)]);
        t.insert_file("sums_only.py", 3.0);
        assert!(!t.never_saw(&case("a.py", "known", 0.0)));
        assert!(
            !t.never_saw(&case("./a.py", "known", 0.0)),
            "paths normalised"
        );
        assert!(t.never_saw(&case("a.py", "added", 0.0)));
        assert!(t.never_saw(&case("new_file.py", "x", 0.0)));
        assert!(
            !t.never_saw(&case("sums_only.py", "x", 0.0)),
            "no per-test history"
        );
        let unplaced = TestCase::new("", "", "x", Outcome::Passed);
        assert!(!t.never_saw(&unplaced), "tied to no file");
    }

    /// Past MAX_TIMED_TESTS an observation keeps file sums only: the same
    /// sums, without a map entry per test.
    #[test]
    fn a_huge_run_keeps_file_sums_only() {
        let mut small = Timings::observer();
        let mut huge = Timings::observer();
        for i in 0..=MAX_TIMED_TESTS {
            let c = case(
                if i % 2 == 0 { "a.py" } else { "b.py" },
                &format!("t{i}"),
                0.5,
            );
            huge.add(&c);
            if i < 10 {
                small.add(&c);
            }
        }
        let small = small.finish();
        assert_eq!(small.file_secs("a.py"), Some(2.5));
        assert_eq!(small.test_secs("a.py").map(BTreeMap::len), Some(5));
        let huge = huge.finish();
        let files = (MAX_TIMED_TESTS + 1) as f64 * 0.5;
        assert_eq!(
            huge.file_secs("a.py").unwrap() + huge.file_secs("b.py").unwrap(),
            files
        );
        assert!(huge.test_secs("a.py").is_none());

        // Merging it replaces the files' per-test history too.
        let mut history = small.clone();
        history.merge_owned(huge);
        assert!(history.test_secs("a.py").is_none());
        // Odd indices: MAX_TIMED_TESTS / 2 tests of 0.5 s.
        assert_eq!(
            history.file_secs("b.py"),
            Some((MAX_TIMED_TESTS / 2) as f64 * 0.5)
        );
    }
}

#[cfg(test)]
mod batch_startup_tests {
    use super::*;

    #[test]
    fn batch_startup_round_trips_merges_and_is_absent_until_measured() {
        let mut old = Timings::new();
        old.insert_file("a.py", 2.0);
        let json = old.to_json();
        assert!(!json.contains("batch_startup_secs"), "{json}");
        assert_eq!(
            Timings::from_json(&json, "t").unwrap().batch_startup_secs(),
            None
        );

        let mut newer = Timings::new();
        newer.insert_file("b.py", 1.0);
        newer.set_batch_startup_secs(0.25);
        let back = Timings::from_json(&newer.to_json(), "t").unwrap();
        assert_eq!(back.batch_startup_secs(), Some(0.25));
        assert_eq!(back, newer);

        // A newer run's measure replaces the old; a run without one keeps it.
        old.merge(&newer);
        assert_eq!(old.batch_startup_secs(), Some(0.25));
        old.merge_owned(Timings::new());
        assert_eq!(old.batch_startup_secs(), Some(0.25));

        let bad = r#"{"version":1,"files":{},"batch_startup_secs":-1}"#;
        assert!(Timings::from_json(bad, "t").is_err());
        let bad = r#"{"version":1,"files":{},"batch_startup_secs":"0.2"}"#;
        assert!(Timings::from_json(bad, "t").is_err());
    }
}

#[cfg(test)]
mod median_batch_startup_tests {
    use super::median_batch_startup;

    #[test]
    fn the_median_of_wall_minus_tests_ignores_one_stuck_shard() {
        assert_eq!(median_batch_startup([]), None);
        assert_eq!(
            median_batch_startup([(1.2, 1.0)]).map(|s| (s * 100.0).round()),
            Some(20.0)
        );
        // One shard waited 30 s for a checkout: the median stays at 0.2 s.
        let s = median_batch_startup([(1.2, 1.0), (30.5, 0.5), (2.2, 2.0)]).unwrap();
        assert!((s - 0.2).abs() < 1e-9, "{s}");
        // A runner that reports more test time than its wall counts as 0.
        assert_eq!(median_batch_startup([(1.0, 1.5)]), Some(0.0));
        let even = median_batch_startup([(1.1, 1.0), (1.3, 1.0)]).unwrap();
        assert!((even - 0.2).abs() < 1e-9, "{even}");
        assert_eq!(median_batch_startup([(f64::NAN, 1.0)]), None);
    }
}
