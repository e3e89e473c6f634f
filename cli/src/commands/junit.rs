//! `testexec junit FILE...`: read JUnit/xUnit reports and summarise them.
//!
//! Reports are streamed one case at a time: only counts, the N slowest cases
//! and the failures are kept, so huge reports do not need huge memory.
//! The JSON shape is documented in `docs/junit.md`; keep the two in step.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use testexec::domain::junit::{self, CaseRef, Limits};
use testexec::domain::model::{Counts, Outcome, add_duration};

use super::{TESTS_FAILED, USAGE_OR_INFRA};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable summary.
    Text,
    /// One JSON document on stdout (shape documented in docs/junit.md).
    Json,
}

/// Read JUnit/xUnit XML reports and summarise them.
///
/// Prints per-report and total counts, the slowest tests and every failure
/// with its file:line and the first line of its message. Counts come from the
/// test case elements, never from `tests=`/`failures=` attributes.
///
/// Exit status: 0 when every report was read (failing tests are data, not an
/// error of this command; see --fail-on-failures); 2 when a report could not
/// be read or parsed (the other reports are still summarised).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  testexec junit target/nextest/ci/junit.xml\n  testexec junit --format json --slowest 5 reports/*.xml"
)]
pub struct JunitArgs {
    /// JUnit/xUnit XML report files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// How many of the slowest tests to list (0 to omit).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub slowest: usize,

    /// List at most N failures (counts stay exact; the rest is only counted,
    /// so a report with millions of failures does not need millions of rows).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_failures: usize,

    /// Exit 1 when any test failed or errored (flaky tests do not count), as
    /// a test runner would. Unreadable reports still exit 2.
    #[arg(long)]
    pub fail_on_failures: bool,

    /// Cap on each message/stack trace/system-out kept in memory, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_text_bytes, hide_short_help = true)]
    pub max_text_bytes: usize,
}

/// The JSON document (`--format json`), version 1.
#[derive(Debug, Serialize)]
struct Output {
    version: u32,
    reports: Vec<ReportOut>,
    totals: Counts,
    duration_secs: f64,
    unreadable: usize,
    slowest: Vec<CaseOut>,
    failures: Vec<CaseOut>,
    /// Failed/errored cases not listed in `failures` because of --max-failures.
    failures_omitted: u64,
}

#[derive(Debug, Serialize)]
struct ReportOut {
    path: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    counts: Option<Counts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suites: Option<usize>,
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorOut>,
}

#[derive(Debug, Serialize)]
struct ErrorOut {
    kind: &'static str,
    message: String,
}

#[derive(Debug, Clone, Serialize)]
struct CaseOut {
    report: String,
    key: String,
    suite: String,
    classname: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
    outcome: Outcome,
    duration_secs: f64,
    /// First non-empty line of the message, else of the details.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl CaseOut {
    fn new(report: &str, case: &CaseRef<'_>) -> Self {
        let message = [case.message.as_deref(), case.details.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|text| text.lines().map(str::trim).find(|l| !l.is_empty()))
            .map(|line| line.chars().take(300).collect());
        Self {
            report: report.to_owned(),
            key: case.key(),
            suite: case.suite.to_owned(),
            classname: case.classname.to_owned(),
            name: case.name.to_owned(),
            file: case.file.map(str::to_owned),
            line: case.line,
            outcome: case.outcome,
            duration_secs: case.duration_secs,
            message,
        }
    }

    fn location(&self) -> String {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{file}:{line}"),
            (Some(file), None) => file.clone(),
            _ => String::new(),
        }
    }
}

/// Failed and errored cases, in reading order, up to `max`.
struct Failures<'a> {
    max: usize,
    list: &'a mut Vec<CaseOut>,
    omitted: &'a mut u64,
}

impl Failures<'_> {
    fn offer(&mut self, report: &str, case: &CaseRef<'_>) {
        if self.list.len() < self.max {
            self.list.push(CaseOut::new(report, case));
        } else {
            *self.omitted += 1;
        }
    }
}

/// Keeps the `n` slowest cases seen so far in bounded memory.
struct Slowest {
    n: usize,
    cases: Vec<CaseOut>,
}

impl Slowest {
    fn offer(&mut self, report: &str, case: &CaseRef<'_>) {
        if self.n == 0 {
            return;
        }
        if self.cases.len() >= self.n
            && self
                .cases
                .last()
                .is_some_and(|c| c.duration_secs >= case.duration_secs)
        {
            return;
        }
        self.cases.push(CaseOut::new(report, case));
        // Small n: an insertion sort step keeps the list ordered.
        self.cases
            .sort_by(|a, b| b.duration_secs.total_cmp(&a.duration_secs));
        self.cases.truncate(self.n);
    }
}

pub fn run(args: JunitArgs) -> anyhow::Result<ExitCode> {
    let limits = Limits {
        max_text_bytes: args.max_text_bytes,
        ..Limits::default()
    };
    let mut out = Output {
        version: 1,
        reports: Vec::new(),
        totals: Counts::default(),
        duration_secs: 0.0,
        unreadable: 0,
        slowest: Vec::new(),
        failures: Vec::new(),
        failures_omitted: 0,
    };
    let mut slowest = Slowest {
        n: args.slowest,
        cases: Vec::new(),
    };
    for path in &args.files {
        let mut failures = Failures {
            max: args.max_failures,
            list: &mut out.failures,
            omitted: &mut out.failures_omitted,
        };
        let report = read_one(path, &limits, &mut slowest, &mut failures);
        if let Some(counts) = &report.counts {
            out.totals.add(counts);
            out.duration_secs =
                add_duration(out.duration_secs, report.duration_secs.unwrap_or(0.0));
        } else {
            out.unreadable += 1;
        }
        out.reports.push(report);
    }
    out.slowest = slowest.cases;

    let mut w = super::Stdout;
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut w, &out).context("writing JSON to stdout")?;
            writeln!(w)?;
        }
        Format::Text => print_text(&mut w, &out).context("writing to stdout")?,
    }
    w.flush()?;
    for report in &out.reports {
        if let Some(err) = &report.error {
            eprintln!("error: {}", err.message);
        }
    }
    Ok(if out.unreadable > 0 {
        ExitCode::from(USAGE_OR_INFRA)
    } else if args.fail_on_failures && !out.totals.all_passed() {
        ExitCode::from(TESTS_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn read_one(
    path: &Path,
    limits: &Limits,
    slowest: &mut Slowest,
    failures: &mut Failures<'_>,
) -> ReportOut {
    let name = path.display().to_string();
    let mut duration = 0.0;
    // Never a plain `File::open`: on a FIFO it would wait for a writer.
    let result = junit::open_report(path).and_then(|file| {
        // Cases are lent: only the few kept (slowest, failures) are copied.
        junit::stream_refs(std::io::BufReader::new(file), &name, limits, |case| {
            duration = add_duration(duration, case.duration_secs);
            slowest.offer(&name, &case);
            if case.outcome.is_failure() {
                failures.offer(&name, &case);
            }
        })
    });
    match result {
        Ok(summary) => ReportOut {
            path: name,
            ok: true,
            counts: Some(summary.counts),
            duration_secs: Some(duration),
            suites: Some(summary.suites.len()),
            warnings: summary.warnings,
            error: None,
        },
        Err(err) => {
            let err = err.with_line_from(path);
            ReportOut {
                path: name,
                ok: false,
                counts: None,
                duration_secs: None,
                suites: None,
                warnings: Vec::new(),
                error: Some(ErrorOut {
                    kind: err.kind(),
                    message: err.to_string(),
                }),
            }
        }
    }
}

fn counts_line(c: &Counts) -> String {
    format!(
        "{} tests: {} passed, {} failed, {} errors, {} skipped, {} flaky",
        c.tests, c.passed, c.failed, c.errors, c.skipped, c.flaky
    )
}

fn print_text(w: &mut impl Write, out: &Output) -> std::io::Result<()> {
    for r in &out.reports {
        match (&r.counts, &r.error) {
            (Some(c), _) => {
                writeln!(
                    w,
                    "{}: {} ({:.3} s)",
                    r.path,
                    counts_line(c),
                    r.duration_secs.unwrap_or(0.0)
                )?;
                for warning in &r.warnings {
                    writeln!(w, "  warning: {warning}")?;
                }
            }
            (None, Some(err)) => writeln!(w, "{}: UNREADABLE ({})", r.path, err.kind)?,
            (None, None) => {}
        }
    }
    let read = out.reports.len() - out.unreadable;
    writeln!(
        w,
        "\nTotal ({read} report(s) read, {} unreadable): {} ({:.3} s)",
        out.unreadable,
        counts_line(&out.totals),
        out.duration_secs
    )?;
    if !out.slowest.is_empty() {
        writeln!(w, "\nSlowest {}:", out.slowest.len())?;
        for c in &out.slowest {
            let loc = c.location();
            let loc = if loc.is_empty() {
                String::new()
            } else {
                format!("  ({loc})")
            };
            writeln!(w, "  {:>10.3} s  {}{loc}", c.duration_secs, c.key)?;
        }
    }
    if !out.failures.is_empty() || out.failures_omitted > 0 {
        let total = out.failures.len() as u64 + out.failures_omitted;
        writeln!(w, "\nFailures ({total}):")?;
        for c in &out.failures {
            let loc = c.location();
            let loc = if loc.is_empty() {
                String::new()
            } else {
                format!("  {loc}")
            };
            writeln!(w, "  {} {}{loc}", c.outcome.as_str().to_uppercase(), c.key)?;
            if let Some(message) = &c.message {
                writeln!(w, "      {message}")?;
            }
        }
        if out.failures_omitted > 0 {
            writeln!(
                w,
                "  … and {} more (see --max-failures)",
                out.failures_omitted
            )?;
        }
    }
    Ok(())
}
