//! Report writers: everything a finished run is rendered into.
//!
//! - [`markdown`]: the Check Run summary / PR comment, within a byte budget.
//! - [`html`]: one self-contained `index.html` that works offline.
//! - [`ctrf`]: CTRF JSON (`report.json`).
//! - [`junit_xml`]: one merged JUnit file (`junit.xml`).
//!
//! All writers read a [`ReportInput`] and write to a string or a `Write`;
//! uploading is the report handler's job. They never hold the run's cases:
//! they read them in passes through a [`CaseSource`] and take the rest
//! (counts, first failures, slowest, suites) from one [`Digest`], so memory
//! does not grow with the run. They never panic on input: test names,
//! messages and timings come from untrusted JUnit files.

pub mod ctrf;
pub mod html;
pub mod junit_xml;
pub mod markdown;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;

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

/// The run's test cases, each with the index of the shard that ran it, read
/// as often as a writer needs: a slice for tests and small runs, spooled
/// JSON-lines files for the report handler, so that no writer needs every
/// case in memory at once.
pub trait CaseSource: std::fmt::Debug + Sync {
    /// How many cases `for_each` visits.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with each case's position, shard and case, in order; stops
    /// at the first error (of `f` or of reading the source).
    fn for_each(
        &self,
        f: &mut dyn FnMut(usize, u32, &TestCase) -> io::Result<()>,
    ) -> io::Result<()>;

    /// The case at `index` (`< len()`).
    fn get(&self, index: usize) -> io::Result<(u32, TestCase)>;
}

impl CaseSource for Vec<(u32, TestCase)> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn for_each(
        &self,
        f: &mut dyn FnMut(usize, u32, &TestCase) -> io::Result<()>,
    ) -> io::Result<()> {
        for (i, (shard, case)) in self.iter().enumerate() {
            f(i, *shard, case)?;
        }
        Ok(())
    }

    fn get(&self, index: usize) -> io::Result<(u32, TestCase)> {
        self.as_slice().get(index).cloned().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("no test case {index}"))
        })
    }
}

/// Failures, and flaky tests, held with their texts: at most this many of
/// each (the HTML shows 2,000 failures and 1,000 flaky tests; the Markdown
/// summary fits far fewer).
pub const HELD_CASES: usize = 2_000;
/// And only while the held texts add up to at most this many bytes, so that
/// 2,000 failures with 64 KiB outputs cannot cost 500 MB; past it, writers
/// say how many more there are and where they are.
pub const HELD_TEXT_BYTES: usize = 16 * 1024 * 1024;
/// Slowest tests kept (the HTML shows 20, the Markdown 10).
pub const SLOWEST_HELD: usize = 20;

/// One suite name, in order of first appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteDigest {
    pub name: String,
    pub counts: Counts,
    /// Sum of its cases' durations, in input order.
    pub secs: f64,
}

/// What the writers need from the cases besides reading them in order,
/// gathered in one pass. Memory is bounded by the caps above and the number
/// of distinct suite names, never by the number of cases.
#[derive(Debug, Clone, Default)]
pub struct Digest {
    pub counts: Counts,
    /// How many failed or errored tests there are...
    pub failure_count: u64,
    /// ... and the first of them, in input order (see [`HELD_CASES`]).
    pub failures: Vec<(u32, TestCase)>,
    pub flaky_count: u64,
    pub flaky: Vec<(u32, TestCase)>,
    /// The slowest tests, slowest first (ties in input order), without
    /// their texts.
    pub slowest: Vec<(u32, TestCase)>,
    pub suites: Vec<SuiteDigest>,
    /// True when each suite's cases come in one unbroken run, so the merged
    /// JUnit file can be written in one pass.
    pub suites_contiguous: bool,
    /// Sum of every case's duration, in input order.
    pub total_secs: f64,
}

/// A candidate for the slowest list; `Ord` puts the slower first-seen case
/// above.
struct Slow {
    secs: f64,
    index: usize,
    shard: u32,
    case: TestCase,
}

impl Ord for Slow {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.secs
            .total_cmp(&other.secs)
            .then(other.index.cmp(&self.index))
    }
}

impl PartialOrd for Slow {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Slow {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Slow {}

impl Digest {
    /// One pass over `cases`.
    pub fn of(cases: &dyn CaseSource) -> io::Result<Digest> {
        let mut d = Digest {
            suites_contiguous: true,
            // Where `Iterator::sum` starts, so totals equal what it gave.
            total_secs: -0.0,
            ..Digest::default()
        };
        let mut slot: HashMap<String, usize> = HashMap::new();
        let mut current: Option<usize> = None;
        let mut held_text = 0usize;
        // A min-heap of the slowest so far: its root gives way first.
        let mut slowest: BinaryHeap<Reverse<Slow>> = BinaryHeap::new();
        cases.for_each(&mut |index, shard, case| {
            d.counts.record(case.outcome);
            let seconds = secs(case.duration_secs);
            d.total_secs += seconds;

            let g = match slot.get(case.suite.as_str()) {
                Some(&g) => g,
                None => {
                    slot.insert(case.suite.clone(), d.suites.len());
                    d.suites.push(SuiteDigest {
                        name: case.suite.clone(),
                        counts: Counts::default(),
                        secs: 0.0,
                    });
                    d.suites.len() - 1
                }
            };
            if current.is_some_and(|c| c != g) && d.suites[g].counts.tests > 0 {
                d.suites_contiguous = false;
            }
            current = Some(g);
            d.suites[g].counts.record(case.outcome);
            d.suites[g].secs += seconds;

            let held = if case.outcome.is_failure() {
                d.failure_count += 1;
                Some(&mut d.failures)
            } else if case.outcome == Outcome::Flaky {
                d.flaky_count += 1;
                Some(&mut d.flaky)
            } else {
                None
            };
            if let Some(held) = held {
                let text = text_bytes(case);
                if held.len() < HELD_CASES && held_text + text <= HELD_TEXT_BYTES {
                    held_text += text;
                    held.push((shard, case.clone()));
                }
            }

            let beats_least = slowest.len() < SLOWEST_HELD
                || slowest
                    .peek()
                    .is_some_and(|Reverse(least)| seconds.total_cmp(&least.secs).is_gt());
            if beats_least {
                slowest.push(Reverse(Slow {
                    secs: seconds,
                    index,
                    shard,
                    case: without_texts(case),
                }));
                if slowest.len() > SLOWEST_HELD {
                    slowest.pop();
                }
            }
            Ok(())
        })?;
        d.slowest = slowest
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(s)| (s.shard, s.case))
            .collect();
        Ok(d)
    }
}

/// Bytes of text a held case carries.
fn text_bytes(case: &TestCase) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    opt(&case.message)
        + opt(&case.details)
        + opt(&case.system_out)
        + opt(&case.system_err)
        + case
            .retries
            .iter()
            .map(|a| opt(&a.message) + opt(&a.details))
            .sum::<usize>()
}

/// A case's identity, verdict and timing, without messages and output.
pub fn without_texts(case: &TestCase) -> TestCase {
    TestCase {
        suite: case.suite.clone(),
        classname: case.classname.clone(),
        name: case.name.clone(),
        file: case.file.clone(),
        file_derived: case.file_derived,
        line: case.line,
        duration_secs: case.duration_secs,
        outcome: case.outcome,
        message: None,
        details: None,
        system_out: None,
        system_err: None,
        retries: Vec::new(),
    }
}

/// Everything a report writer reads.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub run: &'a Run,
    pub shards: &'a [ShardRecord],
    /// Every test case of the run, each with the index of the shard that ran it.
    pub cases: &'a dyn CaseSource,
    /// One pass over `cases`: counts, failures, flaky, slowest, suites.
    pub digest: &'a Digest,
    pub links: ReportLinks,
    /// The test tool when known (e.g. "pytest"), else "testexec".
    pub tool_name: &'a str,
    /// The run against its tests' history (new failures, known flaky,
    /// quarantined, fixed), when the backend keeps history.
    pub triage: Option<&'a crate::domain::history::triage::Triage>,
}

impl ReportInput<'_> {
    /// Counts over the cases themselves, so every report agrees with the
    /// tests it lists (the run's counters are sums over shards and can only
    /// differ if a shard's cases were lost; the lists are what readers check).
    pub fn counts(&self) -> Counts {
        self.digest.counts
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
