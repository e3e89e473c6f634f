//! placeholder until `testexec junit` lands
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct JunitArgs {}

pub fn run(_args: JunitArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
