//! `testexec sweep`: one pass over the backend a scheduled job names. A run
//! long past its deadline whose shards never reported gets them errored
//! and is handed to report; a second pass finds nothing more to do.

use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use testexec::app::pipeline::LocalPipeline;
use testexec::app::ports::NoNotifier;
use testexec::testkit::contract::{run_id_at, sample_run};

fn sweep(state: &std::path::Path) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args(["sweep", "--backend", "local", "--json", "--state-dir"])
        .arg(state)
        .env_remove("TESTEXEC_BACKEND")
        .output()
        .unwrap();
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_overdue_run_is_swept_once_and_handed_to_report() {
    let state = tempfile::tempdir().unwrap();
    // Two days ago: far past the run's one-hour deadline.
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 48 * 3600 * 1000;
    let (run, shards) = sample_run(run_id_at(created), 3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let local = LocalPipeline::open(state.path(), Arc::new(NoNotifier)).unwrap();
        local
            .pipeline()
            .ports
            .store
            .create_run(&run, &shards)
            .await
            .unwrap();
    });

    let (code, json, err) = sweep(state.path());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        json["errored_shards"].as_array().map(Vec::len),
        Some(3),
        "{json:#}"
    );
    assert_eq!(json["reports_queued"][0], run.id.to_string(), "{json:#}");

    let (code, json, err) = sweep(state.path());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        json["errored_shards"].as_array().map(Vec::len),
        Some(0),
        "{json:#}"
    );
}

#[test]
fn an_unknown_backend_is_refused_naming_the_choices() {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_testexec"))
        .args(["sweep", "--backend", "nimbus", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TESTEXEC_BACKEND") && err.contains("local"),
        "{err}"
    );
}
