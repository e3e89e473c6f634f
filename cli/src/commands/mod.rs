//! One module per subcommand. Each exposes `XxxArgs` (clap) and
//! `run(args) -> anyhow::Result<ExitCode>`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub mod junit;
pub mod plan;
pub mod report;
pub mod run;
pub mod runs;
pub mod serve;
pub mod worker;

/// Exit codes follow test runners: 0 all passed, 1 tests failed, 2 usage or
/// infrastructure error.
pub const TESTS_FAILED: u8 = 1;
pub const USAGE_OR_INFRA: u8 = 2;

pub fn exit_usage_or_infra() -> ExitCode {
    ExitCode::from(USAGE_OR_INFRA)
}

/// The state directory: explicit, else `<repo>/.testexec`.
pub fn state_dir_for(repo: &Path, explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo.join(".testexec"))
}
