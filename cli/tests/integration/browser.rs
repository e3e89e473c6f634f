//! The HTML pages in a real browser: runs the demo suite with `testexec run`,
//! opens the written `index.html` and then the `testexec serve` pages in
//! headless Chromium (`scripts/browser/check-report.mjs`, playwright-core)
//! and checks there are no console or page errors and that the numbers shown
//! are the run's counts, read independently (`testexec runs --json` and the
//! CTRF `report.json`, never the HTML).
//!
//! Needs node, playwright-core (`TESTEXEC_TEST_NODE_MODULES`), Chromium
//! (`TESTEXEC_TEST_CHROMIUM`, default /usr/bin/chromium) and pytest
//! (`TESTEXEC_TEST_PYTHON_BIN`); `scripts/test-deps.sh` installs them. When
//! something is missing the test is skipped with the reason, unless
//! `TESTEXEC_REQUIRE_E2E=1` (set by `scripts/test.sh`), which makes it fail.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testexec::testkit::emulators;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What the check needs from outside the workspace.
struct BrowserEnv {
    node_modules: PathBuf,
    chromium: PathBuf,
    /// PATH with the test Python venv first (the demo runs `python3 -m pytest`).
    path: OsString,
}

fn works(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn browser_env() -> Result<BrowserEnv, String> {
    let node_modules = std::env::var_os("TESTEXEC_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .ok_or("TESTEXEC_TEST_NODE_MODULES is not set (run scripts/test-deps.sh)")?;
    if !node_modules.join("playwright-core").is_dir() {
        return Err(format!(
            "no playwright-core in {} (run scripts/test-deps.sh)",
            node_modules.display()
        ));
    }
    let chromium = std::env::var_os("TESTEXEC_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.is_file() {
        return Err(format!("no Chromium at {}", chromium.display()));
    }
    if !works(Command::new("node").arg("--version")) {
        return Err("node is not on PATH".into());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("TESTEXEC_TEST_PYTHON_BIN")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(dirs).map_err(|e| e.to_string())?;
    if !works(
        Command::new("python3")
            .args(["-m", "pytest", "--version"])
            .env("PATH", &path),
    ) {
        return Err("no pytest for python3 (set TESTEXEC_TEST_PYTHON_BIN)".into());
    }
    Ok(BrowserEnv {
        node_modules,
        chromium,
        path,
    })
}

/// The environment, or `None` after printing why the test is skipped.
fn browser_env_or_skip() -> Option<BrowserEnv> {
    match browser_env() {
        Ok(env) => Some(env),
        Err(reason) => emulators::skip(format_args!("the browser check cannot run: {reason}")),
    }
}

fn testexec(env: &BrowserEnv, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args(args)
        .env("PATH", &env.path)
        .output()
        .expect("run testexec")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `file://` URL of index.html among the report links `testexec run`
/// prints (the `report:` line and the indented lines after it).
fn index_url(stdout: &str) -> String {
    let mut in_links = false;
    for line in stdout.lines() {
        if line.starts_with("report:") {
            in_links = true;
        } else if !line.starts_with(' ') {
            in_links = false;
        }
        if in_links {
            let link = line.trim_start_matches("report:").trim();
            if link.starts_with("file://") && link.ends_with("/index.html") {
                return link.to_string();
            }
        }
    }
    panic!("no index.html file:// URL in the output of testexec run:\n{stdout}");
}

/// A `file://` URL back to a path (the writer percent-encodes bytes).
fn url_path(url: &str) -> PathBuf {
    let encoded = url
        .strip_prefix("file://")
        .expect("a file:// URL")
        .as_bytes();
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i] == b'%' && i + 2 < encoded.len() {
            let hex = std::str::from_utf8(&encoded[i + 1..i + 3]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            bytes.push(encoded[i]);
            i += 1;
        }
    }
    PathBuf::from(String::from_utf8(bytes).unwrap())
}

/// Runs the browser script on `urls`; one JSON object per URL, in order.
fn check_pages(env: &BrowserEnv, urls: &[String]) -> Vec<Value> {
    let script = repo_root().join("scripts/browser/check-report.mjs");
    let out = Command::new("node")
        .arg(&script)
        .args(urls)
        .env("TESTEXEC_TEST_NODE_MODULES", &env.node_modules)
        .env("TESTEXEC_TEST_CHROMIUM", &env.chromium)
        .output()
        .expect("run node");
    let stdout = text(&out.stdout);
    let pages: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // Every page's errors in one message.
    let errors: Vec<String> = pages
        .iter()
        .flat_map(|page| {
            let errors = page["errors"].as_array().expect("errors array");
            errors.iter().map(move |e| format!("{}: {e}", page["url"]))
        })
        .collect();
    assert!(
        errors.is_empty(),
        "errors in the browser:\n{}",
        errors.join("\n")
    );
    assert!(
        out.status.success(),
        "check-report.mjs exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(pages.len(), urls.len(), "one line per URL:\n{stdout}");
    pages
}

/// The run's counts, from the store (`testexec runs --json`).
struct RunFacts {
    id: String,
    status: String,
    shard_count: u64,
    counts: Value,
}

fn count(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number `{key}` in {v}"))
}

/// Asserts a report page shows exactly the run's numbers.
fn assert_report_page(page: &Value, run: &RunFacts) {
    let totals = &page["totals"];
    for key in ["tests", "passed", "failed", "errors", "skipped", "flaky"] {
        assert_eq!(
            totals[key].as_u64(),
            Some(count(&run.counts, key)),
            "total `{key}` shown on {} (totals {totals}, run counts {})",
            page["url"],
            run.counts
        );
    }
    assert_eq!(
        totals["run_id"],
        run.id.as_str(),
        "run id on {}",
        page["url"]
    );
    assert_eq!(
        totals["status"],
        run.status.as_str(),
        "status on {}",
        page["url"]
    );
    assert_eq!(
        totals["shards"],
        run.shard_count.to_string().as_str(),
        "shard count on {}",
        page["url"]
    );
    // "All tests (N)" and the table: every test has a row (the demo is far
    // below the row cap), and the filter worked over all of them.
    assert_eq!(
        totals["test_rows"].as_u64(),
        Some(count(&run.counts, "tests"))
    );
    assert_eq!(
        page["filter"]["rows"].as_u64(),
        Some(count(&run.counts, "tests")),
        "filter table rows on {}",
        page["url"]
    );
    let steps = page["filter"]["steps"].as_array().expect("filter steps");
    assert!(
        steps.len() >= 4,
        "the filter was exercised on {}: {steps:?}",
        page["url"]
    );
    let failures = count(&run.counts, "failed") + count(&run.counts, "errors");
    assert_eq!(totals["failure_count"].as_u64(), Some(failures));
    assert!(
        page["title"].as_str().unwrap_or("").contains(&run.id),
        "title on {}: {}",
        page["url"],
        page["title"]
    );
}

/// The spawned `testexec serve`, killed when dropped (also on a failed assert).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn wait_healthy(server: &mut Server, port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = http_get(port, "/healthz") {
            if r.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!(
                "testexec serve exited {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "testexec serve not healthy on port {port} after 60 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn report_and_serve_pages_show_the_run_without_browser_errors() {
    let Some(env) = browser_env_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("demo");
    let state = tmp.path().join("state");
    crate::support::copy_suite(&repo_root().join("examples/demo"), &repo);
    let repo_arg = repo.to_str().unwrap();
    let state_arg = state.to_str().unwrap();

    // 1. The run, and its counts read from the store and the CTRF summary.
    let out = testexec(&env, &["run", repo_arg, "--state-dir", state_arg]);
    let stdout = text(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "testexec run exited {:?} (tests ran?)\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    let index = index_url(&stdout);
    let runs = testexec(
        &env,
        &["runs", repo_arg, "--state-dir", state_arg, "--json"],
    );
    assert!(runs.status.success(), "{}", text(&runs.stderr));
    let runs: Value = serde_json::from_slice(&runs.stdout).unwrap();
    let runs = runs.as_array().expect("runs JSON array");
    assert_eq!(runs.len(), 1, "one run in a fresh state dir: {runs:?}");
    let run = RunFacts {
        id: runs[0]["id"].as_str().expect("run id").to_string(),
        status: runs[0]["status"].as_str().expect("run status").to_string(),
        shard_count: count(&runs[0], "shard_count"),
        counts: runs[0]["counts"].clone(),
    };
    assert!(
        count(&run.counts, "tests") > 0,
        "the demo ran tests: {}",
        run.counts
    );
    assert!(
        index.contains(&run.id),
        "{index} is the report of {}",
        run.id
    );

    // The CTRF file next to index.html agrees with the store (CTRF counts
    // flaky tests as passed and errors as failed).
    let ctrf_path = url_path(&index).with_file_name("report.json");
    let ctrf: Value = serde_json::from_slice(&std::fs::read(&ctrf_path).unwrap()).unwrap();
    let summary = &ctrf["results"]["summary"];
    let c = &run.counts;
    assert_eq!(count(summary, "tests"), count(c, "tests"));
    assert_eq!(
        count(summary, "passed"),
        count(c, "passed") + count(c, "flaky")
    );
    assert_eq!(
        count(summary, "failed"),
        count(c, "failed") + count(c, "errors")
    );
    assert_eq!(count(summary, "skipped"), count(c, "skipped"));
    assert_eq!(count(summary, "flaky"), count(c, "flaky"));

    // 2. The self-contained report from disk.
    let pages = check_pages(&env, std::slice::from_ref(&index));
    assert_report_page(&pages[0], &run);
    // The history groups shown are CTRF's; on a fresh state dir nothing was
    // flaky before, so every failure is a new failure and every pass on
    // retry a (newly) flaky test.
    let history = &ctrf["results"]["extra"]["history"];
    let listed = |group: &str| history[group].as_array().map(Vec::len).unwrap_or(0) as u64;
    for group in ["new_failures", "known_flaky", "quarantined", "fixed"] {
        assert_eq!(
            pages[0]["totals"][group].as_u64(),
            Some(listed(group)),
            "history group `{group}` on the report (CTRF history {history})"
        );
    }
    assert_eq!(
        listed("new_failures"),
        count(c, "failed") + count(c, "errors")
    );
    assert_eq!(listed("known_flaky"), count(c, "flaky"));
    assert_eq!(listed("quarantined") + listed("fixed"), 0);
    println!("file report: {}", pages[0]);

    // 3. The same state served over HTTP: the run list and the report.
    let port = emulators::free_port();
    let log_path = tmp.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args(["serve", repo_arg, "--state-dir", state_arg, "--jobs", "1"])
        .args(["--port", &port.to_string()])
        .env("PATH", &env.path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn testexec serve");
    let mut server = Server(child);
    wait_healthy(&mut server, port, &log_path);

    let base = format!("http://127.0.0.1:{port}");
    // A test's page, by the link the dashboard gives (the first test of
    // its tables), and that test's data from the JSON behind the page.
    let dashboard_html = http_get(port, "/tests").expect("GET /tests");
    let test_link = dashboard_html
        .split("href=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].replace("&amp;", "&"))
        .find(|href| href.starts_with("/test?"))
        .unwrap_or_else(|| panic!("no link to a test's page on /tests:\n{dashboard_html}"));
    let urls = [
        format!("{base}/"),
        format!("{base}/runs/{}/report", run.id),
        format!("{base}/tests"),
        format!("{base}/?status={}&suite=demo", run.status),
        format!("{base}{test_link}"),
    ];
    let pages = check_pages(&env, &urls);

    let list = &pages[0];
    let rows = list["runs"].as_array().expect("run rows on /");
    let row = rows
        .iter()
        .find(|r| r["run_id"] == run.id.as_str())
        .unwrap_or_else(|| panic!("no row for run {} on /: {rows:?}", run.id));
    assert_eq!(row["tests"].as_u64(), Some(count(c, "tests")), "row {row}");
    assert_eq!(row["status"], run.status.as_str(), "row {row}");
    assert_eq!(rows.len(), 1, "one run listed: {rows:?}");
    // When it started, how long it took and what started it (a local
    // run: no commit, branch or sender).
    let started = row["started"].as_str().expect("a start time");
    assert!(started.len() == 20 && started.ends_with('Z'), "row {row}");
    let duration = row["duration"].as_str().unwrap_or_default();
    assert!(!duration.is_empty() && duration != "-", "row {row}");
    assert_eq!(row["trigger"], "local", "row {row}");
    assert_eq!(row["sender"], Value::Null, "row {row}");
    assert_eq!(row["suite"], "demo", "row {row}");
    assert_eq!(row["progress"], Value::Null, "a finished run: {row}");
    println!("run list: {list}");

    // Filtered by the run's status and suite: the same one row.
    let filtered = pages[3]["runs"].as_array().expect("run rows");
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert_eq!(filtered[0]["run_id"], run.id.as_str());

    // The test's page shows what its JSON says: one result per kept run
    // (a strip cell, a trend point, a history row), its class.
    let api =
        http_get(port, &test_link.replacen("/test?", "/api/test?", 1)).expect("GET /api/test");
    let (head, body) = api.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let view: Value = serde_json::from_str(body).expect("JSON from /api/test");
    let results: String = view["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|r| r["result"].as_str().expect("result letter"))
        .collect();
    let shown = &pages[4]["test"];
    assert_eq!(shown["strip"], results.as_str(), "{shown} vs {view}");
    let n = results.len() as u64;
    assert!(n >= 1, "{view}");
    for key in [
        "cells_visible",
        "cells_titled",
        "trend_points",
        "history_rows",
    ] {
        assert_eq!(
            shown[key].as_u64(),
            Some(n),
            "`{key}` on the test page: {shown}"
        );
    }
    assert_eq!(shown["class"], view["class"], "{shown}");
    assert_eq!(shown["id"], view["id"], "{shown}");
    println!("test page: {}", pages[4]);

    assert_report_page(&pages[1], &run);
    println!("served report: {}", pages[1]);

    // The tests dashboard and its JSON agree with the run: every test that
    // ran has history, the flaky one is the one flaky test listed, and one
    // finished run makes the pass rate 0 or 100%.
    let dashboard = &pages[2]["totals"];
    let api = http_get(port, "/api/tests").expect("GET /api/tests");
    let (head, body) = api.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let suites: Value = serde_json::from_str(body).expect("JSON from /api/tests");
    let suite = &suites[0];
    let ran = count(c, "tests") - count(c, "skipped");
    assert_eq!(suite["tests"].as_u64(), Some(ran), "{suite}");
    assert_eq!(
        dashboard["history_tests"].as_u64(),
        Some(ran),
        "{dashboard}"
    );
    let flakiest = suite["flakiest"].as_array().expect("flakiest");
    assert_eq!(dashboard["flakiest"].as_u64(), Some(flakiest.len() as u64));
    let flaky_rows = flakiest.iter().filter(|t| t["class"] == "flaky").count() as u64;
    assert_eq!(flaky_rows, count(c, "flaky"), "{suite}");
    let passed = run.status == "passed";
    assert_eq!(
        dashboard["pass_rate"],
        if passed { "100%" } else { "0%" },
        "{dashboard}"
    );
    println!("tests dashboard: {}", pages[2]);

    drop(server);
}
