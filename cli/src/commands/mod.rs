//! One module per subcommand. Each exposes `XxxArgs` (clap) and
//! `run(args) -> anyhow::Result<ExitCode>`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

pub mod cost;
pub mod flaky;
pub mod junit;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod run;
pub mod runs;
pub mod serve;
pub mod sweep;
pub mod worker;

/// Exit codes follow test runners: 0 all passed, 1 tests failed, 2 usage or
/// infrastructure error.
pub const TESTS_FAILED: u8 = 1;
pub const USAGE_OR_INFRA: u8 = 2;

pub fn exit_usage_or_infra() -> ExitCode {
    ExitCode::from(USAGE_OR_INFRA)
}

/// Standard output for what a command prints, until its reader goes away.
///
/// Rust ignores SIGPIPE, so writing to a pipe whose reader has exited
/// (`testexec runs | head -1`) fails with EPIPE, and `println!` turns that
/// into a panic. Here a closed pipe is the end of the output: that write
/// and every later one are dropped, and the command finishes with its own
/// exit status, as it would had the reader read everything. Other errors
/// (a full disk behind `>`) are returned. Write through `out!`/`outln!`.
pub struct Stdout;

/// Set once the reader of standard output has gone away.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// True, and remembered, when `e` says the reader has gone away.
fn reader_gone(e: &io::Error) -> bool {
    let gone = e.kind() == io::ErrorKind::BrokenPipe;
    if gone {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
    gone
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if STDOUT_CLOSED.load(Ordering::Relaxed) {
            return Ok(buf.len());
        }
        match io::stdout().write(buf) {
            Err(e) if reader_gone(&e) => Ok(buf.len()),
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if STDOUT_CLOSED.load(Ordering::Relaxed) {
            return Ok(());
        }
        match io::stdout().flush() {
            Err(e) if reader_gone(&e) => Ok(()),
            other => other,
        }
    }
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
