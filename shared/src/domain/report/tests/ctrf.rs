use serde_json::{Value, json};

use super::{Rich, T0};
use crate::domain::report::ctrf::{SPEC_VERSION, to_json};

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/ctrf/ctrf.schema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("committed CTRF schema")).unwrap()
}

fn errors(doc: &Value) -> Vec<String> {
    let validator = jsonschema::draft7::new(&schema()).expect("schema compiles");
    validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn rich_report_validates_against_the_ctrf_schema() {
    let doc = to_json(&Rich::new().input());
    assert_eq!(errors(&doc), Vec::<String>::new());
}

#[test]
fn invalid_documents_fail_validation() {
    let good = to_json(&Rich::new().input());

    let mut unknown_field = good.clone();
    unknown_field["results"]["tests"][0]["shard"] = json!(1);
    assert!(
        !errors(&unknown_field).is_empty(),
        "additionalProperties must be enforced"
    );

    let mut error_status = good.clone();
    error_status["results"]["tests"][2]["status"] = json!("error");
    assert!(
        !errors(&error_status).is_empty(),
        "CTRF has no error status"
    );

    let mut float_duration = good.clone();
    float_duration["results"]["tests"][0]["duration"] = json!(0.25);
    assert!(
        !errors(&float_duration).is_empty(),
        "durations are integer ms"
    );

    let mut no_summary = good;
    no_summary["results"]
        .as_object_mut()
        .unwrap()
        .remove("summary");
    assert!(!errors(&no_summary).is_empty());
}

#[test]
fn summary_and_header_follow_ctrf() {
    let doc = to_json(&Rich::new().input());
    assert_eq!(doc["reportFormat"], "CTRF");
    assert_eq!(doc["specVersion"], SPEC_VERSION);
    assert_eq!(doc["runId"], "01J9Z3V8K4QW5T6Y7X8C9B0N1M");
    let results = &doc["results"];
    assert_eq!(results["tool"]["name"], "pytest");
    assert_eq!(
        results["summary"],
        json!({
            "tests": 6, "passed": 3, "failed": 2, "skipped": 1, "pending": 0, "other": 0,
            "flaky": 1, "suites": 4, "start": T0, "stop": T0 + 120_000, "duration": 120_000,
            "extra": { "errors": 1 }
        })
    );
    assert_eq!(results["environment"]["branchName"], "main");
    assert_eq!(
        results["extra"]["shards"][2]["error"],
        "setup failed: <boom> `pip` exit 1"
    );
}

#[test]
fn tests_map_outcomes_retries_and_locations() {
    let doc = to_json(&Rich::new().input());
    let tests = doc["results"]["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 6);

    let passed = &tests[0];
    assert_eq!(passed["status"], "passed");
    assert_eq!(passed["duration"], 250);
    assert_eq!(passed["filePath"], "tests/test_api.py");
    assert_eq!(passed["line"], 10);
    assert_eq!(passed["suite"], json!(["tests/test_api.py"]));
    assert_eq!(passed["testId"], "tests.test_api::test_list");
    assert_eq!(
        passed["extra"],
        json!({ "shard": 0, "classname": "tests.test_api" })
    );
    assert!(passed.get("rawStatus").is_none());

    let failed = &tests[1];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["duration"], 1500);
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .starts_with("assert <script>")
    );
    assert!(failed["trace"].as_str().unwrap().starts_with("Traceback:"));

    let error = &tests[2];
    assert_eq!(error["status"], "failed");
    assert_eq!(error["rawStatus"], "error");
    assert_eq!(
        error["stderr"],
        json!(["stderr line\u{1}with control\u{FFFE}char"])
    );

    assert_eq!(tests[3]["status"], "skipped");
    assert_eq!(tests[3]["message"], "needs postgres");

    let flaky = &tests[4];
    assert_eq!(flaky["status"], "passed");
    assert_eq!(flaky["flaky"], true);
    assert_eq!(flaky["rawStatus"], "flaky");
    assert_eq!(flaky["retries"], 2);
    assert_eq!(
        flaky["retryAttempts"],
        json!([
            { "attempt": 1, "status": "failed", "duration": 500, "message": "timeout", "trace": "trace 1" },
            { "attempt": 2, "status": "failed", "duration": 600, "message": "reset", "extra": { "rawStatus": "error" } }
        ])
    );

    // NaN duration becomes 0; no suite means no `suite` (minItems 1).
    assert_eq!(tests[5]["duration"], 0);
    assert!(tests[5].get("suite").is_none());
}

#[test]
fn unnamed_tests_and_unknown_tools_still_validate() {
    let mut rich = Rich::new();
    rich.cases[0].1.name.clear();
    rich.cases[0].1.classname.clear();
    rich.cases[0].1.suite.clear();
    let mut input = rich.input();
    input.tool_name = "";
    let doc = to_json(&input);
    assert_eq!(doc["results"]["tests"][0]["name"], "(unnamed)");
    assert_eq!(doc["results"]["tool"]["name"], "testexec");
    assert_eq!(errors(&doc), Vec::<String>::new());
}

/// The streaming writer emits exactly the document `to_json` builds.
#[test]
fn streamed_document_equals_the_built_one() {
    let rich = Rich::new();
    let input = rich.input();
    let mut out = Vec::new();
    crate::domain::report::ctrf::write(&input, &mut out).unwrap();
    let streamed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(streamed, to_json(&input));
    assert_eq!(
        streamed["results"]["tests"].as_array().unwrap().len(),
        input.cases.len()
    );
}
