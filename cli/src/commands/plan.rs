//! `testexec plan`: show how a suite's test files would be split into shards.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use testexec::domain::manifest::{MANIFEST_FILE, Manifest, Shards};
use testexec::domain::plan::{Plan, PlanRequest, ShardTarget, Timings, WorkUnit, plan};

/// Width of the load bar in the text table, in characters.
const BAR_WIDTH: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table per shard plus the plan's quality figures.
    Text,
    /// The full plan as JSON (every unit of every shard).
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitTests {
    /// Split when the suite's runner supports selecting tests.
    Auto,
    On,
    Off,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Repository root holding `testexec.toml`.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Suite to plan (default: the manifest's default suite).
    #[arg(long, value_name = "NAME")]
    pub suite: Option<String>,
    /// Number of shards (default: the suite's `shards` setting).
    #[arg(long, value_name = "N", conflicts_with = "target_seconds")]
    pub shards: Option<u32>,
    /// Aim for shards of about this many seconds instead of a fixed count.
    #[arg(long, value_name = "SECS")]
    pub target_seconds: Option<f64>,
    /// Timing sources, applied in order (later ones win per file): JUnit
    /// reports (`.xml`), testexec histories (`.json`), or directories of them.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub timings: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Upper bound on the shard count (the backend's concurrency).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_shards: u32,
    /// Cut files longer than the ideal shard into groups of tests.
    #[arg(long, value_enum, default_value_t = SplitTests::Auto)]
    pub split_tests: SplitTests,
    /// Plan the files named in the timings instead of listing the suite's
    /// files (no manifest needed; requires --shards or --target-seconds).
    #[arg(long)]
    pub from_timings: bool,
}

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let timings = load_timings(&args.timings)?;

    let (files, suite_target, selection, label) = if args.from_timings {
        if timings.is_empty() {
            bail!("--from-timings needs at least one --timings source that names test files");
        }
        let files: Vec<String> = timings.files().map(|(f, _)| f.to_string()).collect();
        (files, None, false, "files from timings".to_string())
    } else {
        let manifest_path = args.path.join(MANIFEST_FILE);
        let manifest = Manifest::load(&manifest_path).with_context(|| {
            format!(
                "loading {} (hint: pass the repository root as PATH)",
                manifest_path.display()
            )
        })?;
        let suite = match &args.suite {
            Some(name) => manifest
                .suite(name)
                .with_context(|| format!("suite `{name}` in {}", manifest_path.display()))?,
            None => manifest.default_suite().with_context(|| {
                format!(
                    "{}: no default suite (hint: pass --suite NAME)",
                    manifest_path.display()
                )
            })?,
        };
        let files = suite.list_files(&args.path).with_context(|| {
            format!(
                "listing the suite's test files under {}",
                args.path.display()
            )
        })?;
        let target = match suite.shards {
            Shards::Count(n) => ShardTarget::Count(n),
            Shards::Auto {
                target_shard_seconds,
            } => ShardTarget::TargetSeconds(target_shard_seconds as f64),
        };
        let label = match &args.suite {
            Some(name) => format!("suite `{name}`"),
            None => "default suite".to_string(),
        };
        (files, Some(target), suite.supports_test_selection(), label)
    };

    let target = match (args.shards, args.target_seconds, suite_target) {
        (Some(n), _, _) => ShardTarget::Count(n),
        (None, Some(t), _) => ShardTarget::TargetSeconds(t),
        (None, None, Some(t)) => t,
        (None, None, None) => bail!("--from-timings needs --shards N or --target-seconds SECS"),
    };
    let split_by_test = match args.split_tests {
        SplitTests::Auto => selection,
        SplitTests::On => true,
        SplitTests::Off => false,
    };
    let request = PlanRequest {
        files: &files,
        timings: &timings,
        target,
        split_by_test,
        max_shards: args.max_shards,
        keep_with_file: None,
    };
    let plan = plan(&request).with_context(|| format!("planning {label}"))?;
    if !timings.is_empty() && plan.known_share == 0.0 {
        // Almost always a path mismatch, which silently degrades the plan to
        // an equal-count split: say so on stderr (stdout may be JSON).
        eprintln!(
            "warning: none of the {} listed files appear in the timings ({} files); \
             timings must name files relative to the repository root",
            files.len(),
            timings.len()
        );
    }

    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&plan)?)?,
        Format::Text => out!("{}", render_text(&plan, &label, files.len()))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads every timing source in order and merges them, later sources winning.
fn load_timings(paths: &[PathBuf]) -> anyhow::Result<Timings> {
    let mut timings = Timings::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading timings directory {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| matches!(extension(p).as_deref(), Some("xml" | "json")))
                .collect();
            // Directory order is arbitrary; sort so the merge order is stable.
            entries.sort();
            for entry in entries {
                timings.merge(&load_one(&entry)?);
            }
        } else {
            timings.merge(&load_one(path)?);
        }
    }
    Ok(timings)
}

fn load_one(path: &Path) -> anyhow::Result<Timings> {
    match extension(path).as_deref() {
        Some("xml") => {
            let report = testexec::domain::junit::read_file(path)
                .with_context(|| format!("reading JUnit timings from {}", path.display()))?;
            Ok(Timings::from_cases(&report.cases))
        }
        Some("json") => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading timings history {}", path.display()))?;
            Ok(Timings::from_json(&text, &path.display().to_string())?)
        }
        _ => bail!(
            "timings source {}: expected a JUnit report (.xml) or a testexec timings history (.json)",
            path.display()
        ),
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

fn render_text(plan: &Plan, label: &str, file_count: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{label}: {file_count} files into {} shards (requested {})",
        plan.shards.len(),
        plan.requested_shards
    );
    let _ = writeln!(
        out,
        "{:>5}  {:>10}  {:>5}  {:>6}  load",
        "shard", "est. secs", "files", "tests"
    );
    for shard in &plan.shards {
        let split_tests: usize = shard
            .units
            .iter()
            .map(|u| match u {
                WorkUnit::Tests { tests, .. } => tests.len(),
                WorkUnit::File { .. } => 0,
            })
            .sum();
        let fill = if plan.estimated_makespan_secs > 0.0 {
            ((shard.estimated_secs / plan.estimated_makespan_secs) * BAR_WIDTH as f64).round()
                as usize
        } else {
            BAR_WIDTH
        };
        let tests = if split_tests > 0 {
            split_tests.to_string()
        } else {
            "-".to_string()
        };
        let _ = writeln!(
            out,
            "{:>5}  {:>10.1}  {:>5}  {:>6}  {}",
            shard.index,
            shard.estimated_secs,
            shard.files().len(),
            tests,
            "#".repeat(fill.min(BAR_WIDTH))
        );
    }
    let _ = writeln!(
        out,
        "makespan {:.1} s, lower bound {:.1} s, ratio {:.3}, total {:.1} s",
        plan.estimated_makespan_secs,
        plan.lower_bound_secs,
        plan.quality_ratio(),
        plan.total_secs
    );
    let source = match plan.fallback_source {
        testexec::domain::plan::FallbackSource::Median => "median of known files",
        testexec::domain::plan::FallbackSource::Default => "default, no history",
    };
    let _ = writeln!(
        out,
        "known timings for {:.0}% of files; others estimated at {:.2} s ({source})",
        plan.known_share * 100.0,
        plan.fallback_secs
    );
    for note in &plan.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}
