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

/// The state directory: explicit, else `<repo>/.testexec`; always
/// absolute, so no path derived from it (work directories, globs) depends
/// on where the command was started or on a `./` prefix.
pub fn state_dir_for(repo: &Path, explicit: Option<&Path>) -> PathBuf {
    let dir = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo.join(".testexec"));
    absolute(&dir)
}

/// `path` made absolute once, at the edge (the current directory is read
/// once here, never later).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
