//! `testexec cost`: the monthly bill on AWS, Google Cloud and Azure for a
//! team's numbers (the model: `testexec::domain::cost`, docs/cost.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use testexec::domain::cost::{Arch, CallModel, Cloud, Estimate, PriceList, Workload, estimate};

/// The list prices and measured calls this build ships with.
const PRICES: &str = include_str!("../../../cost/prices.toml");
const CALLS: &str = include_str!("../../../cost/aws-calls.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CloudArg {
    Aws,
    Gcp,
    Azure,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchArg {
    Arm64,
    X86_64,
}

#[derive(Debug, clap::Args)]
pub struct CostArgs {
    /// Runs a day (pushes, pull requests, schedules, by hand).
    #[arg(long, default_value_t = 50.0)]
    pub runs_per_day: f64,
    /// Tests in one run.
    #[arg(long, default_value_t = 2000.0)]
    pub tests: f64,
    /// Shards per run.
    #[arg(long, default_value_t = 8.0)]
    pub shards: f64,
    /// Average minutes one shard runs, setup included.
    #[arg(long, default_value_t = 4.0)]
    pub shard_minutes: f64,
    /// Reports, logs and JUnit kept per run, in MB.
    #[arg(long, default_value_t = 2.0)]
    pub report_mb: f64,
    /// Days runs and their files are kept.
    #[arg(long, default_value_t = 30.0)]
    pub retention_days: f64,
    /// Memory of one shard executor, in GB.
    #[arg(long, default_value_t = 2.0)]
    pub execute_memory_gb: f64,
    /// vCPUs of one shard executor (containers; Lambda scales CPU with memory).
    #[arg(long, default_value_t = 1.0)]
    pub execute_vcpus: f64,
    /// Lambda architecture.
    #[arg(long, value_enum, default_value_t = ArchArg::Arm64)]
    pub arch: ArchArg,
    #[arg(long, value_enum, default_value_t = CloudArg::All)]
    pub cloud: CloudArg,
    /// A price list to use instead of the built-in one (same format as
    /// cost/prices.toml).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Print the estimates as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CostArgs) -> anyhow::Result<ExitCode> {
    let (prices_text, prices_name) = match &args.prices {
        Some(path) => (
            read_limited(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            PRICES.to_string(),
            "cost/prices.toml (built in)".to_string(),
        ),
    };
    let prices = PriceList::parse(&prices_text, &prices_name)?;
    let calls = CallModel::from_json(CALLS, "cost/aws-calls.json (built in)")?;
    let workload = Workload {
        runs_per_day: args.runs_per_day,
        tests_per_run: args.tests,
        shards: args.shards,
        shard_minutes: args.shard_minutes,
        report_mb: args.report_mb,
        retention_days: args.retention_days,
        execute_memory_gb: args.execute_memory_gb,
        execute_vcpus: args.execute_vcpus,
        arch: match args.arch {
            ArchArg::Arm64 => Arch::Arm64,
            ArchArg::X86_64 => Arch::X86_64,
        },
    };
    let clouds: Vec<Cloud> = match args.cloud {
        CloudArg::Aws => vec![Cloud::Aws],
        CloudArg::Gcp => vec![Cloud::Gcp],
        CloudArg::Azure => vec![Cloud::Azure],
        CloudArg::All => Cloud::ALL.to_vec(),
    };
    let estimates = clouds
        .into_iter()
        .map(|cloud| estimate(cloud, &workload, &prices, &calls, &prices_name))
        .collect::<Result<Vec<Estimate>, _>>()?;
    if args.json {
        let doc = serde_json::json!({
            "prices_as_of": prices.as_of,
            "workload": workload,
            "estimates": estimates,
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{} runs/day × {} shards × {} min, {} tests, {} MB kept {} days (list prices of {}; {})",
        workload.runs_per_day,
        workload.shards,
        workload.shard_minutes,
        workload.tests_per_run,
        workload.report_mb,
        workload.retention_days,
        prices.as_of,
        prices_name
    )?;
    for e in &estimates {
        outln!()?;
        outln!(
            "{} ({}): ${:.2}/month, idle ${:.2}/month",
            e.cloud.name(),
            e.region,
            e.monthly_usd,
            e.idle_usd
        )?;
        outln!(
            "  {:<30} {:>16} {:>16} {:>10}",
            "item",
            "quantity",
            "billable",
            "usd"
        )?;
        for line in &e.lines {
            outln!(
                "  {:<30} {:>16.2} {:>16.2} {:>10.2}",
                line.item,
                line.quantity,
                line.billable,
                line.usd
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A price list is small; a larger file is a mistake, not a price list.
fn read_limited(path: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read;
    const MAX_BYTES: u64 = 1024 * 1024;
    let file = testexec::domain::regular_file::open(path)?;
    let mut text = String::new();
    file.take(MAX_BYTES + 1).read_to_string(&mut text)?;
    anyhow::ensure!(
        text.len() as u64 <= MAX_BYTES,
        "{} is larger than 1 MiB; a price list is a few kilobytes",
        path.display()
    );
    Ok(text)
}
