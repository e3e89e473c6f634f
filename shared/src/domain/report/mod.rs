//! Report writers: everything a finished run is rendered into.
//!
//! - [`markdown`]: the Check Run summary / PR comment, within a byte budget.
//! - [`html`]: one self-contained `index.html` that works offline.
//! - [`ctrf`]: CTRF JSON (`report.json`).
//! - [`junit_xml`]: one merged JUnit file (`junit.xml`).
//!
//! All writers are pure: they read a [`ReportInput`] and write to a string or
//! a `Write`. Uploading is the report handler's job. They never panic on
//! input: test names, messages and timings come from untrusted JUnit files.

pub mod ctrf;
pub mod html;
pub mod junit_xml;
pub mod markdown;

use crate::domain::model::{Counts, Outcome, Run, ShardRecord, TestCase};

/// File names under `runs/<id>/report/` (see [`crate::app::messages::keys::report`]).
pub mod files {
    pub const HTML: &str = "index.html";
    pub const CTRF: &str = "report.json";
    pub const MARKDOWN: &str = "summary.md";
    pub const JUNIT: &str = "junit.xml";
}

/// Links a reader can follow from a report, when the blob store can make them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportLinks {
    pub html: Option<String>,
    pub junit: Option<String>,
    pub ctrf: Option<String>,
    pub markdown: Option<String>,
    /// One entry per shard index (missing or `None`: no link).
    pub shard_logs: Vec<Option<String>>,
}

/// Everything a report writer reads.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub run: &'a Run,
    pub shards: &'a [ShardRecord],
    /// Every test case of the run, each with the index of the shard that ran it.
    pub cases: &'a [(u32, TestCase)],
    pub links: ReportLinks,
    /// The test tool when known (e.g. "pytest"), else "testexec".
    pub tool_name: &'a str,
}

impl ReportInput<'_> {
    /// Counts over the cases themselves, so every report agrees with the
    /// tests it lists (the run's counters are sums over shards and can only
    /// differ if a shard's cases were lost; the lists are what readers check).
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for (_, case) in self.cases {
            counts.record(case.outcome);
        }
        counts
    }

    /// The run's start: its creation, or the earliest shard start if a clock
    /// skew put that earlier (the timeline must never go negative).
    pub fn start_ms(&self) -> u64 {
        self.shards
            .iter()
            .filter_map(|s| s.started_ms)
            .fold(self.run.created_ms, u64::min)
    }

    /// The run's end: when it was finalised, else the last shard to finish,
    /// else its start.
    pub fn stop_ms(&self) -> u64 {
        let last_shard = self.shards.iter().filter_map(|s| s.finished_ms).max();
        let stop = self.run.finished_ms.into_iter().chain(last_shard).max();
        stop.unwrap_or(self.run.created_ms).max(self.start_ms())
    }

    /// Wall time of the run in seconds.
    pub fn duration_secs(&self) -> f64 {
        (self.stop_ms() - self.start_ms()) as f64 / 1000.0
    }

    /// Indices into `cases` of failed and errored tests, in input order.
    pub fn failures(&self) -> Vec<usize> {
        self.indices(|c| c.outcome.is_failure())
    }

    /// Indices into `cases` of flaky tests, in input order.
    pub fn flaky(&self) -> Vec<usize> {
        self.indices(|c| c.outcome == Outcome::Flaky)
    }

    fn indices(&self, keep: impl Fn(&TestCase) -> bool) -> Vec<usize> {
        self.cases
            .iter()
            .enumerate()
            .filter(|(_, (_, c))| keep(c))
            .map(|(i, _)| i)
            .collect()
    }

    /// Indices of the `n` slowest tests, slowest first (ties in input order).
    pub fn slowest(&self, n: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.cases.len()).collect();
        let by_duration_desc = |a: &usize, b: &usize| {
            secs(self.cases[*b].1.duration_secs)
                .total_cmp(&secs(self.cases[*a].1.duration_secs))
                .then(a.cmp(b))
        };
        // Partition first so 100,000 cases don't pay for a full sort.
        if n < idx.len() && n > 0 {
            idx.select_nth_unstable_by(n - 1, by_duration_desc);
            idx.truncate(n);
        } else if n == 0 {
            idx.clear();
        }
        idx.sort_by(by_duration_desc);
        idx
    }

    /// The name a reader sees: `classname::name` or `suite::name`.
    pub fn display_name(case: &TestCase) -> String {
        let name = if case.name.is_empty() {
            "(unnamed)"
        } else {
            case.name.as_str()
        };
        let scope = if case.classname.is_empty() {
            &case.suite
        } else {
            &case.classname
        };
        if scope.is_empty() {
            name.to_string()
        } else {
            format!("{scope}::{name}")
        }
    }

    /// `file:line`, `file`, or `None`.
    pub fn location(case: &TestCase) -> Option<String> {
        let file = case.file.as_deref().filter(|f| !f.is_empty())?;
        Some(match case.line {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        })
    }
}

/// A duration as reported, made safe: NaN, infinities and negatives (seen in
/// real JUnit files) become 0.
pub fn secs(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

/// A duration for people: `850ms`, `12.3s`, `4m 05s`, `1h 02m`.
pub fn human_duration(seconds: f64) -> String {
    let s = secs(seconds);
    if s < 1.0 {
        format!("{}ms", (s * 1000.0).round() as u64)
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        let total = s.round() as u64;
        format!("{}m {:02}s", total / 60, total % 60)
    } else {
        let total = (s / 60.0).round() as u64;
        format!("{}h {:02}m", total / 60, total % 60)
    }
}

/// The longest prefix of `s` that is at most `max_bytes` long and ends on a
/// character boundary.
pub fn truncate_bytes(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
