//! The `testexec` command. Thin: parse arguments, call the library, print.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Read JUnit/xUnit XML reports and summarise them.
    Junit(commands::junit::JunitArgs),
    /// Show how a suite's test files would be split into shards.
    Plan(commands::plan::PlanArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Junit(args) => commands::junit::run(args),
        Command::Plan(args) => commands::plan::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            commands::exit_usage_or_infra()
        }
    }
}
