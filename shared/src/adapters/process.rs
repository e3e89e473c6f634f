//! Running a suite's commands: argv only (never a shell), a scrubbed
//! environment, a deadline that kills the whole process group, and output
//! capture that keeps the head and tail of a log of any size.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Environment variables a test command inherits from the worker. Anything
/// else (cloud credentials above all) never reaches code under test.
pub const DEFAULT_PASSTHROUGH_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "TERM",
    "VIRTUAL_ENV",
    "JAVA_HOME",
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "GOMODCACHE",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "NODE_PATH",
    "PIP_CACHE_DIR",
];

/// One command to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// The complete environment of the child (nothing else is inherited).
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandEnd {
    Exited(i32),
    /// Killed by a signal (the number), e.g. OOM-killed.
    Signalled(i32),
    /// Ran past its deadline; the process group was killed.
    TimedOut,
    /// The program could not be started (not found, not executable).
    NotStarted,
}

impl CommandEnd {
    pub fn success(self) -> bool {
        self == CommandEnd::Exited(0)
    }

    pub fn exit_code(self) -> Option<i32> {
        match self {
            CommandEnd::Exited(code) => Some(code),
            _ => None,
        }
    }

    pub fn describe(self) -> String {
        match self {
            CommandEnd::Exited(code) => format!("exited with {code}"),
            CommandEnd::Signalled(sig) => format!("was killed by signal {sig}"),
            CommandEnd::TimedOut => "timed out".into(),
            CommandEnd::NotStarted => "could not be started".into(),
        }
    }
}

/// A bounded log: the first `head_cap` bytes and the last `tail_cap` bytes,
/// with a count of what was cut between them.
#[derive(Debug)]
pub struct LogCapture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    cut: u64,
}

impl LogCapture {
    pub fn new(head_cap: usize, tail_cap: usize) -> Self {
        Self {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap,
            tail_cap,
            cut: 0,
        }
    }

    pub fn write(&mut self, mut bytes: &[u8]) {
        if self.head.len() < self.head_cap {
            let take = bytes.len().min(self.head_cap - self.head.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.is_empty() {
            return;
        }
        if bytes.len() >= self.tail_cap {
            self.cut += (self.tail.len() + bytes.len() - self.tail_cap) as u64;
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.cut += overflow as u64;
        self.tail.extend(bytes);
    }

    pub fn line(&mut self, text: &str) {
        self.write(text.as_bytes());
        self.write(b"\n");
    }

    /// Bytes dropped from the middle.
    pub fn cut_bytes(&self) -> u64 {
        self.cut
    }

    /// The log with a marker where bytes were cut.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.head.clone();
        if self.cut > 0 {
            out.extend_from_slice(format!("\n…[{} bytes cut]…\n", self.cut).as_bytes());
        }
        out.extend(self.tail.iter());
        out
    }

    /// The last `max_lines` lines (at most `max_bytes`), for error messages.
    pub fn tail_text(&self, max_lines: usize, max_bytes: usize) -> String {
        let all = self.to_bytes();
        let start = all.len().saturating_sub(max_bytes);
        let text = String::from_utf8_lossy(&all[start..]);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(max_lines)..].join("\n")
    }
}

/// Set in every command's environment to a value unique to that run of the
/// command. A test that starts a daemon (`setsid`, a double fork) takes it
/// out of the process group, but not out of its environment: after the
/// command, every process still carrying the cookie is killed (the way
/// Jenkins' process tree killer finds a build's strays).
pub const COOKIE_ENV: &str = "TESTEXEC_PROCESS_COOKIE";

/// Runs one command to its end, capturing stdout and stderr into `log`.
/// The child leads its own process group; at the deadline, and also after a
/// normal exit, the whole group is killed so no stray grandchild keeps
/// running (or keeps our pipes open), and so is every process that still
/// carries the command's [`COOKIE_ENV`] (daemons that left the group).
pub async fn run(spec: &CommandSpec, log: &mut LogCapture) -> CommandEnd {
    let Some((program, args)) = spec.argv.split_first() else {
        log.line("testexec: empty command");
        return CommandEnd::NotStarted;
    };
    log.line(&format!("$ {}", shell_words_for_display(&spec.argv)));
    let cookie = ulid::Ulid::new().to_string();
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(COOKIE_ENV, &cookie)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            log.line(&format!("testexec: could not start `{program}`: {e}"));
            return CommandEnd::NotStarted;
        }
    };
    let pgid = child.id().map(|id| id as i32);
    // If this future is dropped mid-run (the worker is cancelled or dies),
    // the whole group goes with it: no orphaned test processes.
    let mut group = GroupGuard {
        pgid,
        cookie: Some(cookie.clone()),
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let pump = |reader: Option<Box<dyn AsyncRead + Unpin + Send>>,
                tx: tokio::sync::mpsc::Sender<Vec<u8>>| async move {
        let Some(mut reader) = reader else { return };
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                break;
            }
        }
    };
    let out_task = tokio::spawn(pump(stdout.map(|s| Box::new(s) as _), tx.clone()));
    let err_task = tokio::spawn(pump(stderr.map(|s| Box::new(s) as _), tx));

    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let mut status = None;
    let mut timed_out = false;
    let mut strays = 0;
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(bytes) => log.write(&bytes),
                None => if status.is_some() { break } else {
                    // Both pipes closed; wait for the exit itself.
                    tokio::select! {
                        s = child.wait() => { status = s.ok(); break }
                        _ = &mut deadline => { timed_out = true; break }
                    }
                },
            },
            s = child.wait(), if status.is_none() => {
                status = s.ok();
                // The leader is gone: end the group, and any daemon it
                // started, so the pipes close.
                kill_group(pgid);
                strays += kill_marked(&cookie);
            }
            _ = &mut deadline, if !timed_out => { timed_out = true; break }
        }
    }
    kill_group(pgid);
    if timed_out {
        let _ = child.kill().await;
        let _ = child.wait().await;
    }
    // Daemons the command started outside its group die with it too; their
    // pipes (if they kept ours) close with them.
    strays += kill_marked(&cookie);
    // Swept: the guard has only the (cheap) group kill left to do, not a
    // second walk of /proc.
    group.cookie = None;
    if strays > 0 {
        log.line(&format!(
            "testexec: killed {strays} process(es) the command left running (daemons outside its process group)"
        ));
    }
    // Drain whatever the pumps still hold; they end once the pipes close.
    while let Ok(Some(bytes)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        log.write(&bytes);
    }
    out_task.abort();
    err_task.abort();

    let end = if timed_out {
        CommandEnd::TimedOut
    } else {
        use std::os::unix::process::ExitStatusExt;
        match status {
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => CommandEnd::Exited(code),
                (None, Some(sig)) => CommandEnd::Signalled(sig),
                (None, None) => CommandEnd::Signalled(0),
            },
            None => CommandEnd::Signalled(0),
        }
    };
    log.line(&format!(
        "testexec: `{program}` {} after {:.1}s",
        end.describe(),
        started.elapsed().as_secs_f64()
    ));
    end
}

/// Kills what a command left behind if its future is dropped mid-run (a
/// cancelled worker): the process group, and processes carrying the cookie
/// until `run` has swept them itself.
struct GroupGuard {
    pgid: Option<i32>,
    cookie: Option<String>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.pgid);
        let killed = self.cookie.as_deref().map_or(0, kill_marked);
        if killed > 0 {
            tracing::warn!(
                processes = killed,
                "killed processes the test command left running outside its process group"
            );
        }
    }
}

/// Kills every process whose environment holds `COOKIE_ENV=cookie`, until
/// none is left (a stray may fork while we look). Returns how many were
/// killed. Linux only (`/proc`); elsewhere the process group is the bound.
pub fn kill_marked(cookie: &str) -> usize {
    let needle = format!("{COOKIE_ENV}={cookie}");
    let me = std::process::id();
    let mut killed = 0;
    for _ in 0..10 {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return killed;
        };
        let mut found = 0;
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            // Unreadable (another user's process, or gone): not ours.
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_bytes())
            {
                // SAFETY: kill(2) on a pid we just found; no memory is
                // touched, and ESRCH (it exited meanwhile) is harmless.
                if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
                    found += 1;
                }
            }
        }
        if found == 0 {
            break;
        }
        killed += found;
    }
    killed
}

fn kill_group(pgid: Option<i32>) {
    if let Some(pgid) = pgid.filter(|p| *p > 0) {
        // SAFETY: kill(2) with a negative pid signals the process group we
        // created for this child; no memory is touched. ESRCH (already gone)
        // is expected and ignored.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Quotes argv for the log only (it is never executed by a shell).
fn shell_words_for_display(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The environment for a child: the pass-through subset of ours, then the
/// suite's own variables, then testexec's.
pub fn child_env(
    passthrough: &[String],
    suite_env: &[(String, String)],
    ours: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = passthrough
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
        .collect();
    for (k, v) in suite_env.iter().chain(ours) {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str], timeout_ms: u64) -> CommandSpec {
        CommandSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: std::env::temp_dir(),
            env: child_env(&["PATH".to_string()], &[], &[]),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[test]
    fn capture_keeps_head_and_tail_and_counts_the_cut() {
        let mut log = LogCapture::new(4, 4);
        log.write(b"0123456789");
        log.write(b"ab");
        assert_eq!(log.cut_bytes(), 4);
        let text = String::from_utf8(log.to_bytes()).unwrap();
        assert!(text.starts_with("0123"));
        assert!(text.ends_with("89ab"));
        assert!(text.contains("[4 bytes cut]"));
    }

    #[tokio::test]
    async fn a_daemon_started_outside_the_process_group_dies_with_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("daemon.pid");
        // The classic daemon: fork, setsid (a new session and group), fork
        // again, keep running; the command itself exits at once.
        let script = format!(
            "import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        open({:?}, 'w').write(str(os.getpid()))\n        time.sleep(300)\n    os._exit(0)\ntime.sleep(0.5)\n",
            pid_file.display().to_string()
        );
        let mut log = LogCapture::new(1 << 16, 1 << 16);
        let started = Instant::now();
        let end = run(&spec(&["python3", "-c", &script], 30_000), &mut log).await;
        assert_eq!(end, CommandEnd::Exited(0), "{}", log.tail_text(20, 4000));
        // It did not wait for the daemon (which holds our pipes) to end.
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .map(|r| r.trim().chars().next().unwrap_or('?'))
            });
        // Gone, or a zombie waiting for its (non-reaping) new parent.
        assert!(
            matches!(state, None | Some('Z') | Some('X')),
            "daemon {pid} still alive: {state:?}"
        );
        assert!(
            log.tail_text(20, 4000).contains("left running"),
            "{}",
            log.tail_text(20, 4000)
        );
    }

    #[tokio::test]
    async fn exit_codes_and_output_are_captured() {
        let mut log = LogCapture::new(1 << 16, 1 << 16);
        let end = run(
            &spec(&["sh", "-c", "echo out; echo err >&2; exit 3"], 10_000),
            &mut log,
        )
        .await;
        assert_eq!(end, CommandEnd::Exited(3));
        let text = String::from_utf8(log.to_bytes()).unwrap();
        assert!(text.contains("out") && text.contains("err"), "{text}");
    }

    #[tokio::test]
    async fn arguments_are_never_interpreted_by_a_shell() {
        let mut log = LogCapture::new(1 << 16, 1 << 16);
        let end = run(
            &spec(
                &["echo", "$(touch /tmp/testexec-pwned)", "; rm -rf /"],
                10_000,
            ),
            &mut log,
        )
        .await;
        assert_eq!(end, CommandEnd::Exited(0));
        assert!(
            String::from_utf8(log.to_bytes())
                .unwrap()
                .contains("$(touch /tmp/testexec-pwned) ; rm -rf /")
        );
        assert!(!std::path::Path::new("/tmp/testexec-pwned").exists());
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let marker = tempfile::NamedTempFile::new().unwrap();
        let path = marker.path().display().to_string();
        let mut log = LogCapture::new(1 << 16, 1 << 16);
        // The grandchild would write the marker after 2 s if it survived.
        let script = format!("(sleep 2; echo alive > {path}) & sleep 30");
        let started = Instant::now();
        let end = run(&spec(&["sh", "-c", &script], 300), &mut log).await;
        assert_eq!(end, CommandEnd::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(std::fs::read_to_string(marker.path()).unwrap(), "");
    }

    #[tokio::test]
    async fn background_children_do_not_hold_the_run_open() {
        let mut log = LogCapture::new(1 << 16, 1 << 16);
        let started = Instant::now();
        let end = run(
            &spec(&["sh", "-c", "sleep 30 & echo done"], 20_000),
            &mut log,
        )
        .await;
        assert_eq!(end, CommandEnd::Exited(0));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn missing_programs_are_reported_not_panicked() {
        let mut log = LogCapture::new(1 << 16, 1 << 16);
        let end = run(&spec(&["definitely-not-a-program-xyz"], 1000), &mut log).await;
        assert_eq!(end, CommandEnd::NotStarted);
        assert!(log.tail_text(5, 1000).contains("could not start"));
    }

    #[test]
    fn child_env_drops_everything_not_passed_through() {
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("TESTEXEC_TEST_SECRET", "s3cr3t") };
        let env = child_env(
            &["PATH".into()],
            &[("A".into(), "1".into())],
            &[("TESTEXEC_SHARD".into(), "0".into())],
        );
        assert!(env.iter().all(|(k, _)| k != "TESTEXEC_TEST_SECRET"));
        assert!(env.iter().any(|(k, v)| k == "A" && v == "1"));
        assert!(env.iter().any(|(k, _)| k == "PATH"));
    }
}
