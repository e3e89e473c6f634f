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

/// Observations gathered by [`Timings::observer`].
#[derive(Debug, Default)]
pub struct TimingsObserver {
    /// Every observation, summed only in `finish` and in sorted order, so
    /// the floating-point totals do not depend on the order of the reports.
    obs: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
}

impl TimingsObserver {
    pub fn add(&mut self, case: &TestCase) {
        let obs = &mut self.obs;
        let file = match &case.file {
            Some(f) if !f.is_empty() => normalize_path(f),
            _ => {
                let scope = if case.classname.is_empty() {
                    &case.suite
                } else {
                    &case.classname
                };
                if scope.is_empty() {
                    // Nothing ties this case to a file; it cannot inform a plan.
                    return;
                }
                normalize_path(scope)
            }
        };
        let secs = sanitize(case.duration_secs);
        obs.entry(file)
            .or_default()
            .entry(case.key())
            .or_default()
            .push(secs);
    }

    pub fn finish(self) -> Timings {
        let obs = self.obs;
        let mut timings = Timings::new();
        for (file, tests) in obs {
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
