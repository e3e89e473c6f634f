//! monitoring/ against the real thing: promtool checks the Prometheus
//! config, the alert rules and their unit tests, amtool the Alertmanager
//! example; then a real Prometheus (Debian's `prometheus`) scrapes a real
//! `testexec serve --metrics-bind` while it runs the demo suite three times,
//! and every PromQL expression of every Grafana panel and alert is asked of
//! Prometheus's HTTP API. A panel whose expression returns nothing, or an
//! alert naming a metric no scrape produced (a renamed metric), fails.
//!
//! Needs promtool, prometheus and amtool on PATH (Debian's `prometheus`
//! and `prometheus-alertmanager`) and pytest for the demo
//! (`TESTEXEC_TEST_PYTHON_BIN`); `scripts/test-deps.sh` installs them.
//! Skipped when missing, unless `TESTEXEC_REQUIRE_E2E=1`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testexec::testkit::emulators;

use crate::support::{Serve, copy_suite, post_run, wait_run_final};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn monitoring() -> PathBuf {
    repo_root().join("monitoring")
}

/// PATH with the test venv (pytest for the demo) first, or why not.
fn tools_path() -> Result<OsString, String> {
    for tool in ["promtool", "prometheus", "amtool"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!(
                "{tool} is not on PATH (apt-get install prometheus prometheus-alertmanager, or scripts/test-deps.sh)"
            ));
        }
    }
    let venv = std::env::var_os("TESTEXEC_TEST_PYTHON_BIN")
        .ok_or("TESTEXEC_TEST_PYTHON_BIN is not set (run scripts/test-deps.sh)")?;
    let mut dirs = vec![PathBuf::from(venv)];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).map_err(|e| e.to_string())
}

/// Runs a checking tool; its whole output in the failure message.
fn check(tool: &str, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(monitoring())
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every expression of every panel target in the Grafana dashboards.
fn dashboard_exprs() -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    let dir = monitoring().join("grafana/dashboards");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let dash: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for panel in dash["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let title = panel["title"].as_str().unwrap_or("?");
                exprs.push((
                    format!("{} / {title}", path.file_name().unwrap().to_string_lossy()),
                    target["expr"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    exprs
}

/// Every alert's name and expression: the `- alert:` / `expr:` pairs of
/// the rules file, block scalars (`expr: |`) joined. promtool has checked
/// the file's YAML; the count is asserted below, so a rule this reading
/// missed fails rather than going unchecked.
fn alert_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(monitoring().join("rules/testexec.rules.yaml")).unwrap();
    let mut alerts = Vec::new();
    let mut lines = text.lines().peekable();
    let mut name = None;
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(n) = trimmed.strip_prefix("- alert:") {
            name = Some(n.trim().to_string());
        } else if let Some(e) = trimmed.strip_prefix("expr:") {
            let indent = line.len() - trimmed.len();
            let mut expr = e.trim().to_string();
            if expr == "|" {
                expr.clear();
                while let Some(next) = lines.peek() {
                    let next_indent = next.len() - next.trim_start().len();
                    if next.trim().is_empty() || next_indent <= indent {
                        break;
                    }
                    expr.push_str(next.trim());
                    expr.push(' ');
                    lines.next();
                }
            }
            alerts.push((
                name.take().expect("expr without an alert name"),
                expr.trim().to_string(),
            ));
        }
    }
    alerts
}

/// The metric names an expression selects (`testexec_*` and `up`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() || bytes[i] == '_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_') {
                i += 1;
            }
            let word: String = bytes[start..i].iter().collect();
            // Label names inside {} and by (...) are followed by = or are
            // in a by-list; metric names are what we want: ours and `up`.
            let next = bytes[i..].iter().find(|c| !c.is_whitespace());
            if (word.starts_with("testexec_") || word == "up")
                && !matches!(next, Some('=') | Some('!'))
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus scraping `target` every second, with the repository's
/// alert rules loaded.
fn start_prometheus(target: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let rules = monitoring().join("rules/testexec.rules.yaml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: testexec\n    static_configs:\n      - targets: [\"{target}\"]\n",
        rules.canonicalize().unwrap().display()
    );
    std::fs::write(dir.path().join("prometheus.yaml"), config).unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yaml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .expect("starting prometheus");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

async fn query(
    http: &reqwest::Client,
    prom: &Prometheus,
    expr: &str,
) -> Result<Vec<Value>, String> {
    let answer: Value = http
        .get(format!("{}/api/v1/query", prom.url))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if answer["status"] != "success" {
        return Err(format!("query failed: {answer}"));
    }
    Ok(answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The whole check of one expression: it evaluates, and for a panel it
/// returns at least one series with a number (not NaN).
async fn panel_has_data(
    http: &reqwest::Client,
    prom: &Prometheus,
    expr: &str,
) -> Result<(), String> {
    let result = query(http, prom, expr).await?;
    if result.is_empty() {
        return Err("no series".into());
    }
    let numbers = result
        .iter()
        .filter(|s| s["value"][1].as_str().is_some_and(|v| v != "NaN"))
        .count();
    if numbers == 0 {
        return Err(format!("only NaN: {}", json!(result)));
    }
    Ok(())
}

/// An alert's expression evaluates and every metric it names has series.
async fn alert_metrics_exist(
    http: &reqwest::Client,
    prom: &Prometheus,
    expr: &str,
) -> Result<(), String> {
    query(http, prom, expr).await?;
    for name in metric_names(expr) {
        if query(http, prom, &format!("group({{__name__=\"{name}\"}})"))
            .await?
            .is_empty()
        {
            return Err(format!("no series of `{name}`"));
        }
    }
    Ok(())
}

#[test]
fn alert_expressions_are_read_with_their_metric_names() {
    let alerts = alert_exprs();
    assert_eq!(alerts.len(), 10, "{alerts:?}");
    let (name, expr) = alerts
        .iter()
        .find(|(n, _)| n == "TestexecErrorRate")
        .unwrap();
    assert_eq!(name, "TestexecErrorRate");
    assert_eq!(
        metric_names(expr),
        BTreeSet::from([
            "testexec_http_requests_total".to_string(),
            "testexec_messages_handled_total".to_string()
        ])
    );
    assert_eq!(
        metric_names(r#"up{job="testexec"} == 0"#),
        BTreeSet::from(["up".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_and_alert_has_data_from_a_real_scrape() {
    let path = match tools_path() {
        Ok(path) => path,
        Err(reason) => {
            emulators::skip::<()>(format_args!("the monitoring check cannot run: {reason}"));
            return;
        }
    };
    let started = Instant::now();
    check("promtool", &["check", "config", "prometheus.yaml"]);
    check("promtool", &["check", "rules", "rules/testexec.rules.yaml"]);
    check(
        "promtool",
        &["test", "rules", "rules/testexec.rules.test.yaml"],
    );
    check("amtool", &["check-config", "alertmanager.yaml"]);

    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("demo");
    copy_suite(&repo_root().join("examples/demo"), &repo);
    let state = tmp.path().join("state");
    let serve = Serve::spawn(|c| {
        c.arg(&repo)
            .args(["--jobs", "2", "--metrics-bind", "127.0.0.1:0"])
            .arg("--state-dir")
            .arg(&state)
            .env("PATH", &path)
            .env_remove("TESTEXEC_METRICS_BIND")
            .env("TESTEXEC_WEBHOOK_SECRET", "monitoring-test-secret");
    });
    let metrics = serve
        .log()
        .lines()
        .find_map(|l| l.split("metrics on http://").nth(1).map(str::to_string))
        .expect("serve printed no metrics line")
        .trim_end_matches("/metrics")
        .to_string();
    let prom = start_prometheus(&metrics);
    let http = reqwest::Client::new();

    // A refused POST first (a `path` is never taken): histograms exist only
    // from their first observation, so this one makes the latency
    // histogram's series exist in a scrape before the runs, and rates over
    // it then see the runs' POSTs happen.
    let refused_run = http
        .post(format!("{}/runs", serve.url))
        .json(&json!({"path": "/elsewhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused_run.status(), 400);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = query(
            &http,
            &prom,
            r#"testexec_http_request_duration_seconds_count{method="POST"} and on() up{job="testexec"} == 1"#,
        )
        .await;
        if up.is_ok_and(|r| !r.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "prometheus never scraped serve");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(post_run(&http, &serve, json!({"repo": "demo"})).await);
    }
    // A delivery with a wrong signature: counted, refused.
    let refused = http
        .post(format!("{}/webhooks/github", serve.url))
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", "d-1")
        .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
        .json(&json!({"zen": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    for run in &runs {
        wait_run_final(&http, &serve, run, Duration::from_secs(60)).await;
    }

    // The scrapes after the runs carry their counts: asserted against what
    // we did, not just "some data".
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let finished = query(&http, &prom, "sum(testexec_runs_finished_total)")
            .await
            .unwrap();
        let bad = query(
            &http,
            &prom,
            r#"sum(testexec_webhook_deliveries_total{result="bad_signature"})"#,
        )
        .await
        .unwrap();
        let value = |r: &[Value]| {
            r.first()
                .and_then(|s| s["value"][1].as_str().map(str::to_string))
        };
        if value(&finished).as_deref() == Some("3") && value(&bad).as_deref() == Some("1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not see 3 finished runs and 1 refused delivery: {finished:?} {bad:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The checker itself can fail: a metric nobody emits has no data.
    assert!(
        panel_has_data(&http, &prom, "sum(rate(testexec_no_such_metric_total[5m]))")
            .await
            .is_err()
    );
    assert!(
        alert_metrics_exist(&http, &prom, "testexec_no_such_metric_total > 0")
            .await
            .is_err()
    );

    // Every panel and alert; retried briefly, since rates need two scrapes
    // after the last event and the upkeep drains histograms every 2 s.
    let panels = dashboard_exprs();
    let alerts = alert_exprs();
    assert!(panels.len() >= 20, "{} panel targets", panels.len());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut missing = Vec::new();
        for (what, expr) in &panels {
            if let Err(e) = panel_has_data(&http, &prom, expr).await {
                missing.push(format!("panel {what}: {expr}: {e}"));
            }
        }
        for (name, expr) in &alerts {
            if let Err(e) = alert_metrics_exist(&http, &prom, expr).await {
                missing.push(format!("alert {name}: {expr}: {e}"));
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expressions without data:\n{}",
            missing.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "monitoring: {} panel expressions and {} alerts checked in {:.1}s",
        panels.len(),
        alerts.len(),
        started.elapsed().as_secs_f64()
    );
}
