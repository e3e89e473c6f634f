//! Ctrl-C and SIGTERM on `testexec run`: every process the run started dies
//! (daemons outside the process group too), the run ends errored with the
//! reason, scratch directories are removed, and the exit code is 128 + the
//! signal.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A test command that starts a daemon (double fork + setsid) and then
/// hangs, recording both pids.
const SLOW: &str = r#"
import os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open(os.path.join(here, "daemon.pid"), "w").write(str(os.getpid()))
        time.sleep(600)
    os._exit(0)
open(os.path.join(here, "runner.pid"), "w").write(str(os.getpid()))
time.sleep(600)
"#;

fn repo(dir: &Path) {
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("slow.py"), SLOW).unwrap();
    std::fs::write(dir.join("tests/a.txt"), "").unwrap();
    std::fs::write(
        dir.join("testexec.toml"),
        "[suites.slow]\ncommand = [\"python3\", \"slow.py\", \"{junit}\"]\nfiles = [\"tests/*.txt\"]\ntimeout_seconds = 600\n",
    )
    .unwrap();
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().and_then(|r| r.trim().chars().next()))
        .is_some_and(|state| !matches!(state, 'Z' | 'X'))
}

fn wait_for_file(path: &Path, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn interrupt_mid_run(signal: i32, expected_code: i32, name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    repo(&repo_dir);
    let state = tmp.path().join("state");
    let child = Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args(["run", "--jobs", "1", "--state-dir"])
        .arg(&state)
        .arg(&repo_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The shard runs in a scratch copy of the repository under the state
    // directory; find the pids it wrote there.
    let work = state.join("work");
    let deadline = Instant::now() + Duration::from_secs(60);
    let shard_dir = loop {
        let found = walk(&work).into_iter().find(|p| p.ends_with("runner.pid"));
        if let Some(p) = found {
            break p.parent().unwrap().to_path_buf();
        }
        assert!(Instant::now() < deadline, "the shard never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    let runner = wait_for_file(&shard_dir.join("runner.pid"), Duration::from_secs(10));
    let daemon = wait_for_file(&shard_dir.join("daemon.pid"), Duration::from_secs(10));
    assert!(alive(runner) && alive(daemon));

    let sent = Instant::now();
    // SAFETY: kill(2) on the child we spawned.
    unsafe {
        libc_kill(child.id() as i32, signal);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(expected_code), "{stderr}");
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "{:?}",
        sent.elapsed()
    );
    assert!(!alive(runner), "the test command survived {name}");
    assert!(!alive(daemon), "the daemon survived {name}");
    assert!(
        !shard_dir.exists(),
        "scratch left behind: {}",
        shard_dir.display()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("errored"), "{stdout}\n{stderr}");

    // The stored run is final, with the reason.
    let runs = Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args(["runs", "--json", "--state-dir"])
        .arg(&state)
        .arg(&repo_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&runs.stdout);
    assert!(text.contains("\"errored\""), "{text}");
    let report_dir = walk(&state.join("blobs"));
    let summary = report_dir
        .iter()
        .find(|p| p.ends_with("summary.md"))
        .expect("a report");
    let summary = std::fs::read_to_string(summary).unwrap();
    assert!(summary.contains(&format!("received {name}")), "{summary}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

#[test]
fn ctrl_c_kills_everything_the_run_started_and_ends_it_errored() {
    interrupt_mid_run(2, 130, "SIGINT");
}

#[test]
fn sigterm_does_the_same_with_exit_143() {
    interrupt_mid_run(15, 143, "SIGTERM");
}
