//! The signed-push end to end: `testexec serve` receives a signed GitHub
//! push delivery on `POST /webhooks/github`, fetches the commit's tarball
//! from a fake GitHub API, runs the suite in shards and reports a completed
//! Check Run with one annotation per failing test; the check run's "Rerun
//! failed" button then runs only those tests again.
//!
//! The fake GitHub is the test kit's (`testexec::testkit::fake_github`, in
//! process on 127.0.0.1:0): it checks the App JWT, enforces GitHub's limits
//! and records every request; the suite is the fake runner from
//! shared/tests/fixtures, which writes real JUnit.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::Serve;
use testexec::adapters::github::webhook::signature_header;
use testexec::testkit::fake_github::{
    self, APP_ID, FakeGithub, INSTALLATION_ID as INSTALLATION, PRIVATE_KEY_PATH as KEY, Recorded,
};

const REPO: &str = "Codertocat/Hello-World";
const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
const SECRET: &str = "e2e-webhook-secret-9f3c1d";
const RUNNER: &str = testexec::testkit::fake_suite::RUNNER;
const PUSH: &str =
    include_str!("../../../fixtures/github/octokit-push-with-installation.payload.json");
const PING: &str = include_str!("../../../fixtures/github/octokit-ping-payload.json");
const REQUESTED_ACTION: &str =
    include_str!("../../../fixtures/github/octokit-check_run-requested_action.payload.json");

/// Generous: two shared cores may also be compiling.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

// ---- the repository at SHA --------------------------------------------------

const ALPHA: &str = "alpha_one pass\nalpha_two pass\nalpha_three fail\nalpha_four pass\n";
const BETA: &str = "beta_one pass\nbeta_two error\nbeta_three pass\nbeta_four fail\n";

fn manifest() -> String {
    r#"[suites.fake]
command = ["python3", "runner.py", "{junit}", "{files}", "--", "{tests}"]
files = ["tests/**/*.txt"]
shards = 2
retries = 0
timeout_seconds = 60
test_id = "pytest"
"#
    .to_string()
}

/// A `.tar.gz` laid out like GitHub's: everything under `owner-repo-sha/`.
fn tarball() -> Vec<u8> {
    let manifest = manifest();
    fake_github::tar_gz(
        &fake_github::tarball_top_dir(REPO, SHA),
        &[
            ("runner.py", RUNNER),
            ("testexec.toml", &manifest),
            ("tests/test_alpha.txt", ALPHA),
            ("tests/test_beta.txt", BETA),
        ],
    )
}

// ---- testexec serve -------------------------------------------------------

/// `testexec serve` on the repository, talking to the fake GitHub.
fn start_serve(
    fake: &FakeGithub,
    state_dir: &std::path::Path,
    repo_dir: &std::path::Path,
) -> Serve {
    Serve::spawn(|cmd| {
        cmd.arg(repo_dir)
            .args(["--jobs", "2", "--state-dir"])
            .arg(state_dir)
            .env("TESTEXEC_WEBHOOK_SECRET", SECRET)
            .env("TESTEXEC_ALLOWED_REPOS", REPO)
            .env("TESTEXEC_GITHUB_APP_ID", APP_ID.to_string())
            .env("TESTEXEC_GITHUB_PRIVATE_KEY_FILE", KEY)
            .env("TESTEXEC_GITHUB_API_URL", fake.url())
            .env(
                "TESTEXEC_GITHUB_DETAILS_URL",
                "https://testexec.example.com",
            )
            .env_remove("TESTEXEC_GITHUB_PRIVATE_KEY")
            .env_remove("TESTEXEC_GITHUB_TOKEN")
            .env_remove("GITHUB_TOKEN");
    })
}

async fn wait_healthy(http: &reqwest::Client, serve: &Serve) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{}/healthz", serve.url)).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never answered:\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deliver(
    http: &reqwest::Client,
    serve: &Serve,
    event: &str,
    delivery: &str,
    body: &str,
    signature: &str,
) -> (u16, Value) {
    let r = http
        .post(format!("{}/webhooks/github", serve.url))
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", signature)
        .header("Content-Type", "application/json")
        .header("User-Agent", "GitHub-Hookshot/e2e")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let json = r.json().await.unwrap_or(Value::Null);
    (status, json)
}

async fn deliver_signed(
    http: &reqwest::Client,
    serve: &Serve,
    event: &str,
    delivery: &str,
    body: &str,
) -> (u16, Value) {
    let sig = signature_header(SECRET.as_bytes(), body.as_bytes());
    deliver(http, serve, event, delivery, body, &sig).await
}

/// Polls `GET /runs/{id}` until the run is final.
async fn wait_final(http: &reqwest::Client, serve: &Serve, run_id: &str) -> Value {
    let last = crate::support::wait_run_final(http, serve, run_id, RUN_TIMEOUT).await;
    assert_ne!(
        last["status"],
        "rejected",
        "the run was rejected: {last:#}\n{}",
        serve.log()
    );
    last
}

/// Polls the fake until `pred` holds over the recorded requests: the check
/// run is completed by the report step, which may trail the run's status.
async fn wait_requests(
    fake: &FakeGithub,
    serve: &Serve,
    what: &str,
    pred: impl Fn(&[Recorded]) -> bool,
) {
    let deadline = Instant::now() + RUN_TIMEOUT;
    while !pred(&fake.requests()) {
        assert!(
            Instant::now() < deadline,
            "GitHub never saw {what}; requests: {:#?}\n{}",
            summary(&fake.requests()),
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn summary(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn counts(c: &Value) -> [u64; 6] {
    ["tests", "passed", "failed", "errors", "skipped", "flaky"]
        .map(|k| c[k].as_u64().unwrap_or_else(|| panic!("counts.{k} in {c}")))
}

/// Completing updates of check run `id`: PATCHes carrying `output`.
fn completions(requests: &[Recorded], id: u64) -> Vec<Value> {
    let path = format!("/repos/{REPO}/check-runs/{id}");
    requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == path)
        .map(|r| r.body.clone().expect("a JSON body"))
        .collect()
}

fn annotations(patches: &[Value]) -> Vec<Value> {
    patches
        .iter()
        .flat_map(|b| {
            let a = b["output"]["annotations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(a.len() <= 50, "at most 50 annotations per request");
            a
        })
        .collect()
}

/// (path, title, start_line, level) of each annotation, sorted.
fn annotation_keys(annotations: &[Value]) -> Vec<(String, String, u64, String)> {
    let mut keys: Vec<_> = annotations
        .iter()
        .map(|a| {
            assert_eq!(a["start_line"], a["end_line"]);
            (
                a["path"].as_str().unwrap().to_string(),
                a["title"].as_str().unwrap().to_string(),
                a["start_line"].as_u64().unwrap(),
                a["annotation_level"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    keys.sort();
    keys
}

fn check_run_creations(requests: &[Recorded]) -> Vec<Value> {
    let path = format!("/repos/{REPO}/check-runs");
    requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .map(|r| r.body.clone().expect("a JSON body"))
        .collect()
}

// ---- the test -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_push_runs_and_completes_a_check_run_with_annotations() {
    let fake = FakeGithub::start(&[REPO]).await;
    fake.add_tarball(REPO, SHA, tarball());
    let state = tempfile::tempdir().unwrap();
    let empty_repo = tempfile::tempdir().unwrap();
    let serve = start_serve(&fake, state.path(), empty_repo.path());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_healthy(&http, &serve).await;

    // The push fixture deletes a tag; make it a push of SHA to main.
    let mut push: Value = serde_json::from_str(PUSH).unwrap();
    push["ref"] = json!("refs/heads/main");
    push["after"] = json!(SHA);
    push["deleted"] = json!(false);
    push["created"] = json!(false);
    push["installation"]["id"] = json!(INSTALLATION);
    assert_eq!(push["repository"]["full_name"], REPO);
    let push = serde_json::to_string_pretty(&push).unwrap();
    let delivery = "a1b2c3d4-0000-11e3-81ab-4c9367dc0958";

    // A ping answers 200.
    let (status, body) = deliver_signed(
        &http,
        &serve,
        "ping",
        "a1b2c3d4-0000-11e3-81ab-000000000001",
        PING,
    )
    .await;
    assert_eq!(status, 200, "ping: {body}");
    assert!(body.get("pong").is_some(), "ping: {body}");

    // A wrong signature (another secret) answers 401 and starts nothing.
    let forged = signature_header(b"not-the-secret", push.as_bytes());
    let (status, body) = deliver(
        &http,
        &serve,
        "push",
        "a1b2c3d4-0000-11e3-81ab-000000000002",
        &push,
        &forged,
    )
    .await;
    assert_eq!(status, 401, "forged signature: {body}");
    assert!(body.get("run_id").is_none());

    // The signed push starts a run.
    let (status, body) = deliver_signed(&http, &serve, "push", delivery, &push).await;
    assert_eq!(status, 202, "push: {body}\n{}", serve.log());
    let run_id = body["run_id"].as_str().expect("a run id").to_string();

    // A redelivery of the same delivery id is answered like the first
    // (every host answers the same); the trigger recognises the delivery id
    // and starts nothing: its run id never appears.
    let (status, body) = deliver_signed(&http, &serve, "push", delivery, &push).await;
    assert_eq!(status, 202, "redelivery: {body}");
    let redelivered = body["run_id"].as_str().expect("a run id").to_string();
    assert_ne!(redelivered, run_id);

    // The run finishes: 5 passed, 2 failed, 1 error over 2 shards.
    let done = wait_final(&http, &serve, &run_id).await;
    let run = &done["run"];
    assert_eq!(run["status"], "failed", "{done:#}");
    assert_eq!(counts(&run["counts"]), [8, 5, 2, 1, 0, 0], "{done:#}");
    assert_eq!(done["shards"].as_array().map(Vec::len), Some(2), "{done:#}");
    assert_eq!(run["source"]["repo"], REPO);
    assert_eq!(run["source"]["commit"], SHA);
    let runs: Value = http
        .get(format!("{}/runs", serve.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(1),
        "one run for two deliveries: {runs:#}"
    );
    // The audit trail: who pushed, and which delivery started the run.
    assert_eq!(runs["runs"][0]["origin"]["delivery"], delivery, "{runs:#}");
    let sent: Value = serde_json::from_str(&push).unwrap();
    assert_eq!(
        runs["runs"][0]["origin"]["sender"], sent["sender"]["login"],
        "{runs:#}"
    );
    let ghost = http
        .get(format!("{}/runs/{redelivered}", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ghost.status(), 404);

    // GitHub: one in-progress check run at trigger, completed at report.
    wait_requests(&fake, &serve, "the check run completed", |reqs| {
        reqs.iter().any(|r| {
            r.method == "PATCH" && r.body.as_ref().is_some_and(|b| b["status"] == "completed")
        })
    })
    .await;
    let requests = fake.requests();
    let tarball_path = format!("/repos/{REPO}/tarball/{SHA}");
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.method == "GET" && r.path == tarball_path)
            .count(),
        1,
        "one tarball download: {:#?}",
        summary(&requests)
    );
    let created = check_run_creations(&requests);
    assert_eq!(created.len(), 1, "one check run: {:#?}", summary(&requests));
    assert_eq!(created[0]["head_sha"], SHA);
    assert_eq!(created[0]["status"], "in_progress");
    assert_eq!(created[0]["external_id"], run_id.as_str());
    assert_eq!(
        created[0]["details_url"],
        format!("https://testexec.example.com/runs/{run_id}").as_str()
    );
    let check_run_id = 9_000_000_001;
    let patches = completions(&requests, check_run_id);
    assert!(!patches.is_empty());
    let first = &patches[0];
    assert_eq!(first["status"], "completed", "{first:#}");
    assert_eq!(first["conclusion"], "failure");
    assert_eq!(first["external_id"], run_id.as_str());
    let title = first["output"]["title"].as_str().unwrap();
    assert_eq!(title, "2 failed, 1 errors, 5 passed");
    let summary_md = first["output"]["summary"].as_str().unwrap();
    assert!(
        summary_md.contains("Run failed: 8 tests, 2 failed, 1 error"),
        "summary: {summary_md}"
    );
    for key in [
        "tests.test\\_alpha::alpha\\_three",
        "tests.test\\_beta::beta\\_two",
        "tests.test\\_beta::beta\\_four",
    ] {
        assert!(summary_md.contains(key), "{key} in summary: {summary_md}");
    }
    // Links on GitHub point at the server's pages, never at its file system.
    assert!(
        !summary_md.contains("file://"),
        "no local paths leak to GitHub: {summary_md}"
    );
    assert!(
        summary_md.contains(&format!("/runs/{run_id}/report")),
        "report link: {summary_md}"
    );
    let actions = first["actions"].as_array().expect("actions");
    assert!(actions.len() <= 3);
    assert!(
        actions.iter().any(|a| a["identifier"] == "rerun-failed"),
        "{actions:#?}"
    );
    for a in actions {
        assert!(a["label"].as_str().unwrap().chars().count() <= 20);
        assert!(a["identifier"].as_str().unwrap().chars().count() <= 20);
    }
    let mut want: Vec<(String, String, u64, String)> = [
        ("tests/test_alpha.txt", "alpha_three"),
        ("tests/test_beta.txt", "beta_four"),
        ("tests/test_beta.txt", "beta_two"),
    ]
    .iter()
    .map(|(path, name)| {
        (
            path.to_string(),
            // The history group (a first run: every failure is new), then
            // the case key: runner.py's classname (the path, dotted) and name.
            format!(
                "New failures: {}::{name}",
                path.trim_end_matches(".txt").replace('/', ".")
            ),
            // runner.py writes no `line`: the notifier falls back to line 1.
            1,
            "failure".to_string(),
        )
    })
    .collect();
    want.sort();
    let first_annotations = annotations(&patches);
    assert_eq!(annotation_keys(&first_annotations), want);
    let mut messages: Vec<&str> = first_annotations
        .iter()
        .map(|a| a["message"].as_str().unwrap())
        .collect();
    messages.sort_unstable();
    assert_eq!(
        messages,
        [
            "alpha_three failed <&> on purpose",
            "beta_four failed <&> on purpose",
            "boom"
        ]
    );
    let final_check = fake.check_run(check_run_id);
    assert_eq!(final_check["status"], "completed");
    assert_eq!(final_check["conclusion"], "failure");
    assert_eq!(final_check["output"]["annotations_count"], 3);

    // Every API call carried the installation token (minted with the App
    // JWT), and nothing sent to GitHub ever carried the webhook secret.
    let token = fake_github::installation_token(1);
    for r in &requests {
        let auth = r
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The App JWT mints tokens and looks installations up (the source
        // fetch knows the repository but not the run's installation id).
        if r.path.starts_with("/app/") || r.path.ends_with("/installation") {
            assert!(auth.starts_with("Bearer ey"), "App JWT on {}", r.path);
        } else if !r.path.starts_with("/codeload/") {
            assert!(
                auth == format!("Bearer {token}") || auth == format!("token {token}"),
                "installation token on {} {}: {auth}",
                r.method,
                r.path
            );
        }
        assert!(!r.path.contains(SECRET));
        for v in r.headers.values() {
            assert!(!String::from_utf8_lossy(v.as_bytes()).contains(SECRET));
        }
        assert!(!String::from_utf8_lossy(&r.raw_body).contains(SECRET));
    }

    // "Rerun failed": the button's delivery starts a run of the 3 failures only.
    let mut action: Value = serde_json::from_str(REQUESTED_ACTION).unwrap();
    action["requested_action"]["identifier"] = json!("rerun-failed");
    action["check_run"]["id"] = json!(check_run_id);
    action["check_run"]["external_id"] = json!(run_id);
    action["check_run"]["head_sha"] = json!(SHA);
    action["check_run"]["check_suite"]["head_branch"] = json!("main");
    action["repository"]["full_name"] = json!(REPO);
    action["installation"]["id"] = json!(INSTALLATION);
    let action = serde_json::to_string(&action).unwrap();
    let (status, body) = deliver_signed(
        &http,
        &serve,
        "check_run",
        "a1b2c3d4-0000-11e3-81ab-000000000003",
        &action,
    )
    .await;
    assert_eq!(status, 202, "rerun failed: {body}\n{}", serve.log());
    let rerun_id = body["run_id"].as_str().expect("a run id").to_string();
    assert_ne!(rerun_id, run_id);
    let done = wait_final(&http, &serve, &rerun_id).await;
    assert_eq!(done["run"]["status"], "failed", "{done:#}");
    assert_eq!(
        counts(&done["run"]["counts"]),
        [3, 0, 2, 1, 0, 0],
        "{done:#}"
    );

    wait_requests(&fake, &serve, "the rerun's check run completed", |reqs| {
        reqs.iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with("/check-runs/9000000002"))
            .any(|r| r.body.as_ref().is_some_and(|b| b["status"] == "completed"))
    })
    .await;
    let requests = fake.requests();
    let created = check_run_creations(&requests);
    assert_eq!(created.len(), 2, "{:#?}", summary(&requests));
    assert_eq!(created[1]["external_id"], rerun_id.as_str());
    assert_eq!(created[1]["head_sha"], SHA);
    let patches = completions(&requests, 9_000_000_002);
    assert_eq!(patches[0]["conclusion"], "failure");
    assert_eq!(annotation_keys(&annotations(&patches)), want);
    // The first check run was not touched again.
    assert_eq!(
        fake.check_run(check_run_id)["output"]["annotations_count"],
        3
    );
    // GitHub refused nothing it was sent (its limits are the fake's).
    assert_eq!(
        summary(&fake.refused()),
        Vec::<String>::new(),
        "{}",
        serve.log()
    );

    drop(serve);
}
