//! The `testexec` command. Thin: parse arguments, call the library, print.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `print!` for command output. It writes through [`commands::Stdout`], so
/// a reader that went away ends the output instead of panicking, and it
/// evaluates to an `io::Result<()>` for every other write error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!($crate::commands::Stdout, $($arg)*)
    }};
}

/// `println!` for command output; see [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!($crate::commands::Stdout, $($arg)*)
    }};
}

mod commands;

/// Serverless test execution: plan, shard, run and report test suites.
#[derive(Debug, Parser)]
#[command(name = "testexec", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a suite locally: plan, shard, execute, collect and report.
    Run(commands::run::RunArgs),
    /// List past local runs.
    Runs(commands::runs::RunsArgs),
    /// Show a run's report.
    Report(commands::report::ReportArgs),
    /// Show flaky, broken and quarantined tests from the local test history.
    Flaky(commands::flaky::FlakyArgs),
    /// Serve the front door (webhooks, runs API, pages) and run workers.
    Serve(commands::serve::ServeArgs),
    /// Pull jobs from a queue and run them (a container worker).
    Worker(commands::worker::WorkerArgs),
    /// Read JUnit/xUnit XML reports and summarise them.
    Junit(commands::junit::JunitArgs),
    /// Show how a suite's test files would be split into shards.
    Plan(commands::plan::PlanArgs),
    /// Estimate the monthly bill on AWS, Google Cloud and Azure.
    Cost(commands::cost::CostArgs),
    /// Sweep once (overdue runs, lost report hand-offs), for scheduled jobs.
    Sweep(commands::sweep::SweepArgs),
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Runs(args) => commands::runs::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Flaky(args) => commands::flaky::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Worker(args) => commands::worker::run(args),
        Command::Junit(args) => commands::junit::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Cost(args) => commands::cost::run(args),
        Command::Sweep(args) => commands::sweep::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            commands::exit_usage_or_infra()
        }
    }
}

/// Logs go to stderr: human-readable by default, JSON with
/// `TESTEXEC_LOG_FORMAT=json`; the level comes from `RUST_LOG` (default warn).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("TESTEXEC_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
