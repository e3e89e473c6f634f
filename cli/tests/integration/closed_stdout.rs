//! Output into a pipe whose reader is gone (`testexec runs | head -1`
//! once `head` has exited): the command ends quietly with its own exit
//! status. Rust ignores SIGPIPE, so such a write fails with EPIPE, and
//! `println!` turns that into a panic (exit 101 and a backtrace hint).

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A stdout whose read end is already closed: every write fails with
/// EPIPE, whatever the timing (dropping a piped child's stdout after the
/// spawn would race with its first write).
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: `pipe` writes two new descriptors into the two-slot array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe(2)");
    // SAFETY: both descriptors were just created and nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

fn into_closed_pipe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args(args)
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .expect("run testexec")
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/junit")
        .join(name)
        .display()
        .to_string()
}

fn assert_quiet_success(args: &[&str]) {
    let out = into_closed_pipe(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
}

#[test]
fn runs_into_a_closed_pipe_exits_0_without_a_panic() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_str().unwrap();
    assert_quiet_success(&["runs", "--state-dir", dir]);
    assert_quiet_success(&["runs", "--json", "--state-dir", dir]);
}

#[test]
fn junit_into_a_closed_pipe_exits_0_without_a_panic() {
    let report = fixture("dorny-jest-junit.xml");
    assert_quiet_success(&["junit", &report]);
    assert_quiet_success(&["junit", "--format", "json", &report]);
}
