//! Cold start of Lambda function binaries under a local Runtime API.
//!
//! Serves the Lambda Runtime API on 127.0.0.1 (HTTP/1.1, std only), starts
//! each function binary with the environment a Lambda sandbox gives it, and
//! measures **init**: from the spawn of the process to its first
//! `GET /2018-06-01/runtime/invocation/next`, which a `lambda_runtime` binary
//! sends once `main` has built its clients and handed over to the runtime
//! loop. At that moment it also reads the process's peak resident set
//! (`VmHWM` in `/proc/<pid>/status`), then kills it: no invocation is served,
//! so no AWS call is ever made and the dummy credentials never leave.
//!
//! Binaries are measured round-robin (round 1 of every binary, then round 2,
//! ...) so that a burst of load on a shared machine hits all of them alike.
//! The first binary given is the peer that ratios are quoted against.
//!
//! Usage:
//! `lambda-init [--runs N] [--warmup W] [--timeout-ms T] [--env KEY=VALUE]... NAME=PATH...`
//! (defaults: 30 runs, 2 warm-up spawns per binary not counted, 10 s timeout).
//! When `PATH`'s directory holds a `bootstrap.zip` (the layout of
//! `cargo lambda build --output-format zip`), its size is reported too.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Targets from issue 4, part 5.
const TARGET_INIT_MS: f64 = 20.0;
const TARGET_ZIP_BYTES: u64 = 8_000_000;
/// A request head larger than this is not a Runtime API client talking.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Bounds on the command line, so a typo cannot start a day-long run.
const MAX_RUNS: usize = 10_000;
const MAX_BINARIES: usize = 32;
/// What is kept of a failed function's stderr in the error message.
const STDERR_TAIL_BYTES: usize = 4 * 1024;

/// One request the Runtime API received: when its head was complete, and
/// which method and path it asked for.
struct Request {
    at: Instant,
    method: String,
    path: String,
}

/// Environment a function sees in a Lambda sandbox (provided.al2023), minus
/// what only matters once an invocation is served. Credentials are dummies:
/// the SDK clients need them to be constructed, and no request is sent.
fn lambda_env(api: &str, name: &str) -> Vec<(String, String)> {
    let fixed = [
        ("AWS_LAMBDA_RUNTIME_API", api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", format!("testexec-{name}")),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/testexec-{name}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/11/27/[$LATEST]00000000000000000000000000000000".into(),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIDBENCHMARKONLY000".into()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "benchmark-only-not-a-secret".into(),
        ),
        ("AWS_SESSION_TOKEN", "benchmark-only-session-token".into()),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
        ("_HANDLER", "bootstrap".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("TZ", ":UTC".into()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
        // testexec's own settings (shared/src/backends/aws/mod.rs, `env`),
        // as template.yaml sets them.
        ("TESTEXEC_TABLE", "testexec-bench".into()),
        ("TESTEXEC_BUCKET", "testexec-bench-123456789012".into()),
        (
            "TESTEXEC_SHARDS_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/testexec-shards".into(),
        ),
        (
            "TESTEXEC_RESULTS_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/testexec-results".into(),
        ),
        (
            "TESTEXEC_REPORTS_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/testexec-reports".into(),
        ),
        (
            "TESTEXEC_REQUESTS_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/testexec-requests".into(),
        ),
        ("TESTEXEC_LINK_TTL_SECS", "86400".into()),
    ];
    fixed.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Reads one request head (up to the blank line) and answers nothing: the
/// function is killed before it could use an answer.
fn read_head(stream: &mut TcpStream) -> Result<(String, String), String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    let mut reader = BufReader::new(stream.take(MAX_HEAD_BYTES as u64));
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("reading the request line: {e}"))?;
    let mut parts = line.split_whitespace();
    let (method, path) = match (parts.next(), parts.next()) {
        (Some(m), Some(p)) => (m.to_string(), p.to_string()),
        _ => return Err(format!("not an HTTP request line: {line:?}")),
    };
    loop {
        let mut header = String::new();
        let n = reader
            .read_line(&mut header)
            .map_err(|e| format!("reading headers: {e}"))?;
        if n == 0 {
            return Err(format!(
                "request head over {MAX_HEAD_BYTES} bytes or cut short"
            ));
        }
        if header == "\r\n" || header == "\n" {
            return Ok((method, path));
        }
    }
}

/// The Runtime API: accepts connections for ever, one request head each,
/// and reports them in arrival order. Connections are kept open (a real
/// Runtime API answers on them; closing would look like a network error to
/// the function) until the next one arrives, by which time the function that
/// opened it is dead.
fn serve(listener: TcpListener, tx: mpsc::Sender<Request>) {
    let mut _held: Option<TcpStream> = None;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        match read_head(&mut stream) {
            Ok((method, path)) => {
                let at = Instant::now();
                if tx.send(Request { at, method, path }).is_err() {
                    return;
                }
            }
            Err(e) => eprintln!("runtime api: {e}"),
        }
        _held = Some(stream);
    }
}

/// `VmHWM` (peak resident set) of a live process, in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time a live process has run so far, over all its threads, in ms
/// (first field of each `/proc/<pid>/task/<tid>/schedstat`, in ns). Unlike
/// wall time it does not grow when the machine is busy with other work.
fn cpu_ms(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e6)
}

fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(STDERR_TAIL_BYTES);
    String::from_utf8_lossy(&text[start..]).into_owned()
}

struct Target {
    name: String,
    path: PathBuf,
    /// Per counted run: init wall time and CPU time in ms, peak RSS in kB.
    init_ms: Vec<f64>,
    cpu_ms: Vec<f64>,
    rss_kb: Vec<u64>,
}

struct Sample {
    init_ms: f64,
    cpu_ms: f64,
    rss_kb: u64,
}

struct Harness {
    api: String,
    rx: mpsc::Receiver<Request>,
    extra_env: Vec<(String, String)>,
    timeout: Duration,
    /// Each function's stderr, kept to explain a failed init.
    logs: PathBuf,
}

impl Harness {
    /// Spawns `target` once and waits for its first `/next`.
    fn measure(&self, target: &Target) -> Result<Sample, String> {
        let stderr_path = self.logs.join(format!("{}.stderr", target.name));
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| format!("creating {}: {e}", stderr_path.display()))?;
        let mut cmd = Command::new(&target.path);
        cmd.env_clear()
            .envs(lambda_env(&self.api, &target.name))
            .envs(self.extra_env.iter().cloned())
            .current_dir(target.path.parent().unwrap_or(Path::new("/")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", target.path.display()))?;
        let outcome = self.wait_for_next(&mut child, start, &stderr_path);
        // Kill whatever happened; the function never gets an invocation.
        let _ = child.kill();
        let _ = child.wait();
        outcome
    }

    fn wait_for_next(
        &self,
        child: &mut Child,
        start: Instant,
        stderr_path: &Path,
    ) -> Result<Sample, String> {
        let deadline = start + self.timeout;
        loop {
            match self.rx.recv_timeout(Duration::from_millis(20)) {
                // A late request from an earlier, already killed process.
                Ok(req) if req.at < start => continue,
                Ok(req)
                    if req.method == "GET" && req.path.ends_with("/runtime/invocation/next") =>
                {
                    let init = req.at.duration_since(start).as_secs_f64() * 1e3;
                    let gone = "process gone before /proc was read";
                    let rss_kb = peak_rss_kb(child.id()).ok_or(gone)?;
                    let cpu_ms = cpu_ms(child.id()).ok_or(gone)?;
                    return Ok(Sample {
                        init_ms: init,
                        cpu_ms,
                        rss_kb,
                    });
                }
                Ok(req) => {
                    return Err(format!(
                        "{} {} before /next (an init error?); stderr:\n{}",
                        req.method,
                        req.path,
                        stderr_tail(stderr_path)
                    ));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the Runtime API thread stopped".into());
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "exited ({status}) before asking for an invocation; stderr:\n{}",
                    stderr_tail(stderr_path)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no /next within {:?}; stderr:\n{}",
                    self.timeout,
                    stderr_tail(stderr_path)
                ));
            }
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn median_u64(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Sizes in MB (10^6 bytes), like the "zip ≤ 8 MB".
fn mb(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1e6)
}

struct Args {
    runs: usize,
    warmup: usize,
    timeout: Duration,
    extra_env: Vec<(String, String)>,
    targets: Vec<Target>,
}

const USAGE: &str =
    "usage: lambda-init [--runs N] [--warmup W] [--timeout-ms T] [--env KEY=VALUE]... NAME=PATH...";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runs: 30,
        warmup: 2,
        timeout: Duration::from_secs(10),
        extra_env: Vec::new(),
        targets: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    let number = |flag: &str, v: Option<String>, max: usize| -> Result<usize, String> {
        let v = v.ok_or(format!("{flag} needs a value; {USAGE}"))?;
        match v.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!("{flag} {v:?}: expected a whole number up to {max}")),
        }
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => args.runs = number("--runs", it.next(), MAX_RUNS)?.max(1),
            "--warmup" => args.warmup = number("--warmup", it.next(), MAX_RUNS)?,
            "--timeout-ms" => {
                let ms = number("--timeout-ms", it.next(), 600_000)?.max(1);
                args.timeout = Duration::from_millis(ms as u64);
            }
            "--env" => {
                let kv = it.next().ok_or(format!("--env needs KEY=VALUE; {USAGE}"))?;
                let (k, v) = kv
                    .split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or(format!("--env {kv:?}: expected KEY=VALUE"))?;
                args.extra_env.push((k.to_string(), v.to_string()));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => {
                let (name, path) = other
                    .split_once('=')
                    .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                    .ok_or(format!("{other:?}: expected NAME=PATH; {USAGE}"))?;
                let path = PathBuf::from(path);
                if !path.is_file() {
                    return Err(format!(
                        "{name}: no binary at {} (build it with scripts/bench/lambda.sh)",
                        path.display()
                    ));
                }
                args.targets.push(Target {
                    name: name.to_string(),
                    path,
                    init_ms: Vec::new(),
                    cpu_ms: Vec::new(),
                    rss_kb: Vec::new(),
                });
            }
        }
    }
    if args.targets.is_empty() {
        return Err(format!("no binary given; {USAGE}"));
    }
    if args.targets.len() > MAX_BINARIES {
        return Err(format!("at most {MAX_BINARIES} binaries per run"));
    }
    Ok(args)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("lambda-init: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let Args {
        runs,
        warmup,
        timeout,
        extra_env,
        mut targets,
    } = parse_args()?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let api = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?
        .to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || serve(listener, tx));
    let harness = Harness {
        api,
        rx,
        extra_env,
        timeout,
        logs: std::env::temp_dir().join(format!("lambda-init-{}", std::process::id())),
    };
    std::fs::create_dir_all(&harness.logs)
        .map_err(|e| format!("creating {}: {e}", harness.logs.display()))?;
    let outcome = measure_all(&harness, &mut targets, warmup, runs);
    let _ = std::fs::remove_dir_all(&harness.logs);
    outcome?;
    report(&mut targets, runs);
    Ok(())
}

fn measure_all(
    harness: &Harness,
    targets: &mut [Target],
    warmup: usize,
    runs: usize,
) -> Result<(), String> {
    // Warm-up spawns load each binary into the page cache; Lambda too reads
    // the (already unpacked) bootstrap from a local disk.
    for target in targets.iter() {
        for _ in 0..warmup {
            harness
                .measure(target)
                .map_err(|e| format!("{}: {e}", target.name))?;
        }
    }
    for _ in 0..runs {
        for target in targets.iter_mut() {
            let sample = harness
                .measure(target)
                .map_err(|e| format!("{}: {e}", target.name))?;
            target.init_ms.push(sample.init_ms);
            target.cpu_ms.push(sample.cpu_ms);
            target.rss_kb.push(sample.rss_kb);
        }
    }
    Ok(())
}

fn report(targets: &mut [Target], runs: usize) {
    let mut medians = BTreeMap::new();
    println!(
        "init = spawn -> first GET /runtime/invocation/next; {runs} runs each, round-robin; \
         CPU = the process's CPU time (all threads) by then; RSS = VmHWM at that moment"
    );
    println!();
    println!(
        "| binary | init min ms | median | p90 | max | CPU median ms | peak RSS MiB | binary MB | bootstrap.zip MB | median init ÷ peer | CPU ÷ peer | RSS ÷ peer | zip ÷ peer |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut peer: Option<(f64, f64, u64, Option<u64>)> = None;
    for t in targets.iter_mut() {
        t.init_ms.sort_by(f64::total_cmp);
        t.cpu_ms.sort_by(f64::total_cmp);
        let median = percentile(&t.init_ms, 50.0);
        let cpu = percentile(&t.cpu_ms, 50.0);
        let rss = median_u64(&t.rss_kb);
        let bin_size = std::fs::metadata(&t.path).map(|m| m.len()).ok();
        let zip = t
            .path
            .parent()
            .map(|d| d.join("bootstrap.zip"))
            .and_then(|z| std::fs::metadata(z).ok())
            .map(|m| m.len());
        let (pm, pc, pr, pz) = *peer.get_or_insert((median, cpu, rss, zip));
        let zip_ratio = match (zip, pz) {
            (Some(z), Some(p)) if p > 0 => format!("{:.1}×", z as f64 / p as f64),
            _ => "–".into(),
        };
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {:.2}× | {:.2}× | {:.1}× | {} |",
            t.name,
            t.init_ms[0],
            median,
            percentile(&t.init_ms, 90.0),
            t.init_ms[t.init_ms.len() - 1],
            cpu,
            rss as f64 / 1024.0,
            bin_size.map_or("–".into(), mb),
            zip.map_or("–".into(), mb),
            median / pm,
            cpu / pc,
            rss as f64 / pr as f64,
            zip_ratio,
        );
        medians.insert(t.name.clone(), (median, percentile(&t.init_ms, 90.0), zip));
    }
    println!();
    for (name, (median, p90, zip)) in &medians {
        let init_ok = if *p90 <= TARGET_INIT_MS {
            "meets"
        } else {
            "MISSES"
        };
        let zip_ok = match zip {
            Some(z) if *z <= TARGET_ZIP_BYTES => "meets",
            Some(_) => "MISSES",
            None => "no zip:",
        };
        println!(
            "{name}: init median {median:.2} ms / p90 {p90:.2} ms {init_ok} the ≤ {TARGET_INIT_MS} ms target; \
             zip {} {zip_ok} the ≤ 8 MB target",
            zip.map_or("–".into(), |z| format!("{} MB", mb(z))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A Runtime API on a free port, and the harness reading its requests.
    fn harness(timeout: Duration) -> Harness {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let api = listener.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || serve(listener, tx));
        let logs = std::env::temp_dir().join(format!("lambda-init-test-{}", std::process::id()));
        std::fs::create_dir_all(&logs).unwrap();
        Harness {
            api,
            rx,
            extra_env: Vec::new(),
            timeout,
            logs,
        }
    }

    fn target(path: &str) -> Target {
        Target {
            name: "t".into(),
            path: PathBuf::from(path),
            init_ms: Vec::new(),
            cpu_ms: Vec::new(),
            rss_kb: Vec::new(),
        }
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=30).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 15.0);
        assert_eq!(percentile(&v, 90.0), 27.0);
        assert_eq!(percentile(&v, 100.0), 30.0);
        assert_eq!(percentile(&[4.0], 90.0), 4.0);
    }

    #[test]
    fn the_runtime_api_reports_method_and_path_once_the_head_is_complete() {
        let h = harness(Duration::from_secs(5));
        let mut client = TcpStream::connect(&h.api).unwrap();
        // The head arrives in two pieces: nothing may be reported before the blank line.
        client
            .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n")
            .unwrap();
        assert!(h.rx.recv_timeout(Duration::from_millis(200)).is_err());
        let sent_end = Instant::now();
        client.write_all(b"user-agent: test\r\n\r\n").unwrap();
        let req = h.rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/2018-06-01/runtime/invocation/next");
        assert!(req.at >= sent_end);
    }

    #[test]
    fn a_function_that_exits_during_init_is_an_error_not_a_sample() {
        let h = harness(Duration::from_secs(5));
        let err = h.measure(&target("/bin/true")).err().unwrap();
        assert!(err.contains("exited"), "{err}");
        assert!(err.contains("before asking for an invocation"), "{err}");
    }
}
