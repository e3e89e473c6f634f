//! The GitHub client against the test kit's fake of the GitHub API
//! (`testexec::testkit::fake_github`), which answers like the real one for
//! the endpoints used, enforces GitHub's limits and records every request.
#![cfg(feature = "github")]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use testexec::adapters::github::auth::GithubAuth;
use testexec::adapters::github::client::GithubClient;
use testexec::adapters::github::config::{GithubConfig, RetryPolicy};
use testexec::adapters::github::notifier::GithubNotifier;
use testexec::adapters::github::tarball::GithubSource;
use testexec::app::ports::{Notifier, RunOutcome, SourceProvider};
use testexec::domain::model::{
    Counts, Origin, Outcome, Run, RunId, RunStatus, ShardId, ShardRecord, ShardStatus, SourceRef,
    TestCase,
};
use testexec::errors::{NotifyError, SourceError};
use testexec::testkit::fake_github::{
    self, APP_ID, FakeGithub, INSTALLATION_ID as INSTALLATION, PRIVATE_KEY_PEM as PRIVATE_KEY,
    PUBLIC_KEY_PEM as PUBLIC_KEY, Recorded, iso8601 as iso, now_secs, tar_gz,
};

const REPO: &str = "octo-org/hello-world";
const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
const DETAILS: &str = "https://testexec.example.com";

// ---- helpers ---------------------------------------------------------------

/// The fake GitHub with the App installed on REPO.
async fn start_fake() -> FakeGithub {
    FakeGithub::start(&[REPO]).await
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        max_total_wait: Duration::from_secs(5),
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        requeue_after: Duration::from_secs(30),
    }
}

fn config(fake: &FakeGithub, auth: GithubAuth) -> GithubConfig {
    let mut c = GithubConfig::new(auth);
    c.api_base = fake.url();
    c.details_base_url = Some(DETAILS.into());
    c.retry = fast_retry();
    c
}

fn app_auth() -> GithubAuth {
    GithubAuth::App {
        app_id: APP_ID,
        private_key_pem: PRIVATE_KEY.into(),
    }
}

fn client(fake: &FakeGithub, auth: GithubAuth) -> Arc<GithubClient> {
    Arc::new(GithubClient::new(config(fake, auth)).unwrap())
}

fn run(status: RunStatus, counts: Counts, check_run_id: Option<u64>) -> Run {
    Run {
        id: RunId::new(),
        source: SourceRef {
            repo: REPO.into(),
            commit: Some(SHA.into()),
            git_ref: Some("refs/heads/main".into()),
            path: None,
        },
        origin: Origin::GitHub {
            event: "push".into(),
            delivery: "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            installation_id: Some(INSTALLATION),
            check_run_id,
            sender: None,
        },
        suite: "unit".into(),
        status,
        shard_count: 2,
        shards_done: 2,
        counts,
        created_ms: 1_700_000_000_000,
        deadline_ms: 1_700_000_900_000,
        finished_ms: Some(1_700_000_120_000),
        error: None,
    }
}

fn failure(i: usize, outcome: Outcome) -> TestCase {
    TestCase {
        suite: "tests".into(),
        classname: format!("tests.test_mod_{i}"),
        name: format!("test_case_{i}"),
        file: Some(format!("tests/test_mod_{i}.py")),
        file_derived: false,
        line: Some(10 + i as u32),
        duration_secs: 0.5,
        outcome,
        message: Some(format!("AssertionError: expected {i}\nsecond line")),
        details: Some(format!(
            "Traceback (most recent call last):\n  File \"tests/test_mod_{i}.py\", line {}\nAssertionError",
            10 + i
        )),
        system_out: None,
        system_err: None,
        retries: vec![],
    }
}

fn outcome(run: Run, failures: Vec<TestCase>, summary: String) -> RunOutcome {
    let shards = (0..run.shard_count)
        .map(|i| {
            let mut s = ShardRecord::pending(ShardId::new(run.id, i), 30.0, 5);
            s.status = if run.status == RunStatus::Passed {
                ShardStatus::Passed
            } else {
                ShardStatus::Failed
            };
            s.started_ms = Some(run.created_ms);
            s.finished_ms = Some(run.created_ms + 60_000);
            s
        })
        .collect();
    RunOutcome {
        run,
        shards,
        summary_markdown: summary,
        failures,
        report_link: Some("https://reports.example.com/runs/x/index.html".into()),
        triage: None,
    }
}

fn counts(passed: u64, failed: u64, errors: u64) -> Counts {
    Counts {
        tests: passed + failed + errors,
        passed,
        failed,
        errors,
        skipped: 0,
        flaky: 0,
    }
}

fn b64url_json(part: &str) -> Value {
    // Decoding by hand keeps the test independent of the code under test.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in part.bytes() {
        let v = alphabet.iter().position(|&a| a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    serde_json::from_slice(&out).unwrap()
}

// ---- auth ------------------------------------------------------------------

#[tokio::test]
async fn app_jwt_is_rs256_with_github_claims_and_the_token_is_cached() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    let r = run(RunStatus::Running, Counts::default(), None);
    let first = notifier.run_started(&r).await.unwrap();
    let second = notifier.run_started(&r).await.unwrap();
    assert!(first.is_some() && second.is_some());

    let tokens = fake.token_requests();
    assert_eq!(tokens.len(), 1, "one installation token for both calls");
    let t = &tokens[0];
    assert_eq!(t.method, "POST");
    assert_eq!(
        t.path,
        format!("/app/installations/{INSTALLATION}/access_tokens")
    );
    let jwt = t.bearer();
    let mut parts = jwt.split('.');
    let header = b64url_json(parts.next().unwrap());
    assert_eq!(header["alg"], "RS256");
    // Signature checked with the public half of the test key.
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[APP_ID.to_string()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap()
        .claims;
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    let now = now_secs();
    assert!(
        iat <= now - 59 && iat >= now - 120,
        "iat backdated 60 s: {iat} vs {now}"
    );
    assert_eq!(exp - iat, 600, "exp = now + 9 min");
    assert_eq!(claims["iss"], APP_ID.to_string());

    for r in fake.api_requests() {
        assert_eq!(r.bearer(), "ghs_test_token_1");
        assert!(
            r.headers["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("testexec/")
        );
        assert_eq!(r.headers["accept"], "application/vnd.github+json");
        assert_eq!(r.headers["x-github-api-version"], "2022-11-28");
    }
}

#[tokio::test]
async fn installation_token_is_refreshed_when_near_expiry() {
    let fake = start_fake().await;
    // Expiring in 4 minutes: inside the 5-minute refresh margin.
    fake.set_token_ttl(240);
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    let r = run(RunStatus::Running, Counts::default(), None);
    notifier.run_started(&r).await.unwrap();
    notifier.run_started(&r).await.unwrap();
    assert_eq!(fake.token_requests().len(), 2);
    let bearers: Vec<String> = fake
        .api_requests()
        .iter()
        .map(|r| r.bearer().to_string())
        .collect();
    assert_eq!(bearers, ["ghs_test_token_1", "ghs_test_token_2"]);
}

#[tokio::test]
async fn concurrent_callers_share_one_token_refresh() {
    let fake = start_fake().await;
    let notifier = Arc::new(GithubNotifier::new(client(&fake, app_auth())));
    let r = run(RunStatus::Running, Counts::default(), None);
    let calls = (0..8).map(|_| {
        let n = notifier.clone();
        let r = r.clone();
        async move { n.run_started(&r).await.unwrap() }
    });
    let ids = futures_join_all(calls).await;
    assert_eq!(ids.len(), 8);
    assert_eq!(fake.token_requests().len(), 1);
}

/// A join-all without the futures crate: spawn each on the runtime.
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_installation_is_looked_up_when_the_run_does_not_carry_it() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    let mut r = run(RunStatus::Running, Counts::default(), None);
    r.origin = Origin::GitHub {
        event: "check_suite".into(),
        delivery: "d".into(),
        installation_id: None,
        check_run_id: None,
        sender: None,
    };
    notifier.run_started(&r).await.unwrap();
    notifier.run_started(&r).await.unwrap();
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            format!("/repos/{REPO}/installation"),
            format!("/app/installations/{INSTALLATION}/access_tokens"),
            format!("/repos/{REPO}/check-runs"),
            format!("/repos/{REPO}/check-runs"),
        ]
    );
}

// ---- check runs ------------------------------------------------------------

#[tokio::test]
async fn run_started_creates_an_in_progress_check_run() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    let r = run(RunStatus::Running, Counts::default(), None);
    let id = notifier.run_started(&r).await.unwrap().unwrap();
    assert_eq!(id, 9_000_000_001);
    let reqs = fake.api_requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, format!("/repos/{REPO}/check-runs"));
    let body = reqs[0].body.as_ref().unwrap();
    assert_eq!(body["name"], "testexec");
    assert_eq!(body["head_sha"], SHA);
    assert_eq!(body["status"], "in_progress");
    assert_eq!(body["external_id"], r.id.to_string());
    assert_eq!(body["details_url"], format!("{DETAILS}/runs/{}", r.id));
    assert_eq!(body["started_at"], iso(r.created_ms / 1000));
    assert!(body.get("conclusion").is_none());
    assert!(body["output"]["title"].is_string() && body["output"]["summary"].is_string());
}

#[tokio::test]
async fn annotations_go_in_chunks_of_50_and_a_second_finish_adds_none() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    let started = run(RunStatus::Running, Counts::default(), None);
    let id = notifier.run_started(&started).await.unwrap().unwrap();

    let mut finished = started.clone();
    finished.status = RunStatus::Failed;
    finished.counts = counts(340, 110, 10);
    finished.origin = Origin::GitHub {
        event: "push".into(),
        delivery: "d".into(),
        installation_id: Some(INSTALLATION),
        check_run_id: Some(id),
        sender: None,
    };
    // 110 failures and 10 errors: errors must come first.
    let mut failures: Vec<TestCase> = (0..110).map(|i| failure(i, Outcome::Failed)).collect();
    failures.extend((110..120).map(|i| failure(i, Outcome::Error)));
    let out = outcome(finished.clone(), failures, "## unit: 110 failed".into());
    notifier.run_finished(&out).await.unwrap();

    let reqs: Vec<Recorded> = fake.api_requests().into_iter().skip(1).collect();
    let shape: Vec<(String, String)> = reqs
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    let cr = format!("/repos/{REPO}/check-runs/{id}");
    assert_eq!(
        shape,
        [
            ("GET".to_string(), cr.clone()),
            ("PATCH".to_string(), cr.clone()),
            ("PATCH".to_string(), cr.clone()),
            ("PATCH".to_string(), cr.clone()),
        ]
    );
    let sizes: Vec<usize> = reqs[1..]
        .iter()
        .map(|r| {
            r.body.as_ref().unwrap()["output"]["annotations"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(sizes, [50, 50, 20]);

    let first = reqs[1].body.as_ref().unwrap();
    assert_eq!(first["status"], "completed");
    assert_eq!(first["conclusion"], "failure");
    assert_eq!(
        first["completed_at"],
        iso(finished.finished_ms.unwrap() / 1000)
    );
    assert_eq!(
        first["output"]["title"],
        "110 failed, 10 errors, 340 passed"
    );
    assert_eq!(first["output"]["summary"], "## unit: 110 failed");
    let a0 = &first["output"]["annotations"][0];
    assert_eq!(a0["path"], "tests/test_mod_110.py", "errors first");
    assert_eq!(a0["start_line"], 120);
    assert_eq!(a0["end_line"], 120);
    assert_eq!(a0["annotation_level"], "failure");
    assert_eq!(a0["title"], "tests.test_mod_110::test_case_110");
    assert_eq!(a0["message"], "AssertionError: expected 110\nsecond line");
    assert!(a0["raw_details"].as_str().unwrap().starts_with("Traceback"));
    let text = first["output"]["text"].as_str().unwrap();
    assert!(text.contains("| Shard |"), "{text}");
    // Later chunks repeat title and summary (GitHub requires them).
    for r in &reqs[2..] {
        let o = &r.body.as_ref().unwrap()["output"];
        assert_eq!(o["title"], first["output"]["title"]);
        assert_eq!(o["summary"], first["output"]["summary"]);
    }
    assert_eq!(fake.check_run(id)["output"]["annotations_count"], 120);

    // Again (a redelivered report job): same check run, no extra annotations.
    let before = fake.requests().len();
    notifier.run_finished(&out).await.unwrap();
    let again: Vec<Recorded> = fake.requests().into_iter().skip(before).collect();
    let shape: Vec<&str> = again.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(shape, ["GET", "PATCH"]);
    let body = again[1].body.as_ref().unwrap();
    assert!(body["output"].get("annotations").is_none());
    assert_eq!(body["output"]["summary"], first["output"]["summary"]);
    assert_eq!(body["conclusion"], "failure");
    assert_eq!(fake.check_run(id)["output"]["annotations_count"], 120);
    assert!(
        fake.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/check-runs"))
            .count()
            == 1
    );
}

#[tokio::test]
async fn finishing_without_a_stored_id_creates_once_then_finds_it_again() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    let r = run(RunStatus::Passed, counts(12, 0, 0), None);
    let out = outcome(r.clone(), vec![], "all good".into());
    notifier.run_finished(&out).await.unwrap();
    notifier.run_finished(&out).await.unwrap();
    let reqs = fake.api_requests();
    let shape: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    let list = format!(
        "/repos/{REPO}/commits/{SHA}/check-runs?check_name=testexec&filter=all&per_page=100"
    );
    let create = format!("/repos/{REPO}/check-runs");
    let patch = format!("/repos/{REPO}/check-runs/9000000001");
    assert_eq!(
        shape,
        [
            ("GET", list.as_str()),
            ("POST", create.as_str()),
            ("GET", list.as_str()),
            ("PATCH", patch.as_str()),
        ]
    );
    let created = reqs[1].body.as_ref().unwrap();
    assert_eq!(created["status"], "completed");
    assert_eq!(created["conclusion"], "success");
    assert_eq!(created["head_sha"], SHA);
    assert_eq!(created["external_id"], r.id.to_string());
}

#[tokio::test]
async fn summary_and_text_are_cut_to_65535_bytes_on_a_char_boundary() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    let mut r = run(RunStatus::Failed, counts(1, 1, 0), Some(0));
    let id = notifier.run_started(&r).await.unwrap().unwrap();
    r.origin = Origin::GitHub {
        event: "push".into(),
        delivery: "d".into(),
        installation_id: Some(INSTALLATION),
        check_run_id: Some(id),
        sender: None,
    };
    // 3-byte chars: 65,535 is a multiple of 3, so offset by one ASCII byte
    // to force a cut inside a char.
    let summary = format!("x{}", "€".repeat(30_000));
    let mut out = outcome(r, vec![failure(1, Outcome::Failed)], summary.clone());
    // Many shards with long notes overflow `text` too.
    out.shards = (0..2000)
        .map(|i| {
            let mut s = ShardRecord::pending(ShardId::new(out.run.id, i), 1.0, 1);
            s.status = ShardStatus::Errored;
            s.error = Some("é".repeat(100));
            s
        })
        .collect();
    notifier.run_finished(&out).await.unwrap();
    let patch = fake
        .api_requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    let o = &patch.body.as_ref().unwrap()["output"];
    let sent = o["summary"].as_str().unwrap();
    assert!(
        sent.len() <= 65_535 && sent.len() >= 65_532,
        "{}",
        sent.len()
    );
    assert!(summary.starts_with(sent));
    let text = o["text"].as_str().unwrap();
    assert!(
        text.len() <= 65_535 && text.len() > 60_000,
        "{}",
        text.len()
    );
}

#[tokio::test]
async fn conclusions_for_passed_failed_and_errored() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    for (status, want) in [
        (RunStatus::Passed, "success"),
        (RunStatus::Failed, "failure"),
        (RunStatus::Errored, "failure"),
    ] {
        let mut r = run(
            status,
            counts(3, u64::from(status == RunStatus::Failed), 0),
            None,
        );
        if status == RunStatus::Errored {
            r.error = Some("shard 1 never reported".into());
        }
        notifier
            .run_finished(&outcome(r, vec![], "s".into()))
            .await
            .unwrap();
        let post = fake
            .api_requests()
            .into_iter()
            .rev()
            .find(|r| r.method == "POST")
            .unwrap();
        let body = post.body.unwrap();
        assert_eq!(body["conclusion"], want, "{status}");
        if status == RunStatus::Errored {
            assert!(
                body["output"]["title"]
                    .as_str()
                    .unwrap()
                    .starts_with("Errored: shard 1 never reported")
            );
        }
    }
}

#[tokio::test]
async fn buttons_respect_githubs_limits() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    for (status, failures, want) in [
        (
            RunStatus::Failed,
            vec![failure(1, Outcome::Failed)],
            vec!["rerun-failed", "rerun-all"],
        ),
        (RunStatus::Passed, vec![], vec!["rerun-all"]),
    ] {
        let r = run(status, counts(3, failures.len() as u64, 0), None);
        notifier
            .run_finished(&outcome(r, failures, "s".into()))
            .await
            .unwrap();
        let post = fake
            .api_requests()
            .into_iter()
            .rev()
            .find(|r| r.method == "POST")
            .unwrap();
        let actions = post.body.unwrap()["actions"].as_array().unwrap().clone();
        assert!(actions.len() <= 3);
        let ids: Vec<&str> = actions
            .iter()
            .map(|a| a["identifier"].as_str().unwrap())
            .collect();
        assert_eq!(ids, want);
        for a in &actions {
            assert!(a["label"].as_str().unwrap().chars().count() <= 20);
            assert!(a["identifier"].as_str().unwrap().chars().count() <= 20);
            assert!(a["description"].as_str().unwrap().chars().count() <= 40);
        }
    }
}

// ---- resilience ------------------------------------------------------------

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_and_retried() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    fake.script(
        "/check-runs",
        429,
        &[("retry-after", "1")],
        json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
    );
    let t0 = Instant::now();
    let id = notifier
        .run_started(&run(RunStatus::Running, Counts::default(), None))
        .await
        .unwrap();
    assert!(id.is_some());
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(fake.api_requests().len(), 2);
}

#[tokio::test]
async fn a_502_twice_then_success_is_retried() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    fake.script_times(
        2,
        "/check-runs",
        502,
        &[],
        json!({"message": "Server Error"}),
    );
    let id = notifier
        .run_started(&run(RunStatus::Running, Counts::default(), None))
        .await
        .unwrap();
    assert_eq!(id, Some(9_000_000_001));
    let posts = fake.api_requests();
    assert_eq!(posts.len(), 3);
    assert!(
        posts.iter().all(|r| r.body == posts[0].body),
        "same request each time"
    );
}

#[tokio::test]
async fn a_lasting_5xx_fails_with_retry_after_for_the_queue() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    fake.script_times(
        10,
        "/check-runs/123",
        503,
        &[],
        json!({"message": "Service Unavailable"}),
    );
    let r = run(RunStatus::Failed, counts(1, 1, 0), Some(123));
    let err = notifier
        .run_finished(&outcome(r, vec![], "s".into()))
        .await
        .unwrap_err();
    let NotifyError::Failed {
        retry_after_secs,
        message,
        ..
    } = err;
    assert_eq!(retry_after_secs, Some(30));
    assert!(message.contains("503"), "{message}");
    // 4 attempts (the policy's maximum), then the error.
    assert_eq!(fake.api_requests().len(), 4);
}

#[tokio::test]
async fn a_spent_rate_limit_with_a_far_reset_fails_fast_with_the_wait() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    let reset = (now_secs() + 1800).to_string();
    fake.script(
        "/check-runs",
        403,
        &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", reset.as_str())],
        json!({"message": "API rate limit exceeded for installation ID 4242.", "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}),
    );
    let t0 = Instant::now();
    let err = notifier
        .run_started(&run(RunStatus::Running, Counts::default(), None))
        .await
        .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "no sleeping past the cap"
    );
    let NotifyError::Failed {
        retry_after_secs, ..
    } = err;
    let wait = retry_after_secs.unwrap();
    assert!((1790..=1800).contains(&wait), "{wait}");
    assert_eq!(fake.api_requests().len(), 1);
}

#[tokio::test]
async fn other_4xx_fail_at_once_with_githubs_message() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    fake.script(
        "/check-runs",
        422,
        &[],
        json!({"message": "Validation Failed", "errors": [{"resource": "CheckRun", "code": "invalid", "field": "head_sha"}], "documentation_url": "https://docs.github.com/rest/checks/runs#create-a-check-run"}),
    );
    let err = notifier
        .run_started(&run(RunStatus::Running, Counts::default(), None))
        .await
        .unwrap_err();
    let NotifyError::Failed {
        retry_after_secs,
        message,
        ..
    } = err;
    assert_eq!(retry_after_secs, None);
    assert!(
        message.contains("422")
            && message.contains("Validation Failed")
            && message.contains("head_sha"),
        "{message}"
    );
    assert!(!message.contains("ghs_"), "no token in errors");
    assert_eq!(fake.api_requests().len(), 1);
}

// ---- tarballs --------------------------------------------------------------

fn source() -> SourceRef {
    SourceRef {
        repo: REPO.into(),
        commit: Some(SHA.into()),
        git_ref: None,
        path: None,
    }
}

#[tokio::test]
async fn tarball_is_downloaded_through_the_redirect_and_extracted() {
    let fake = start_fake().await;
    fake.add_tarball(
        REPO,
        SHA,
        tar_gz(
            &format!("octo-org-hello-world-{}", &SHA[..7]),
            &[
                ("testexec.toml", "[suites.unit]\n"),
                ("tests/test_a.py", "def test_a(): pass\n"),
            ],
        ),
    );
    let src = GithubSource::new(client(&fake, app_auth()));
    let dest = tempfile::tempdir().unwrap();
    src.fetch(&source(), dest.path()).await.unwrap();
    let read = |p: &str| std::fs::read_to_string(dest.path().join(p)).unwrap();
    assert_eq!(read("testexec.toml"), "[suites.unit]\n");
    assert_eq!(read("tests/test_a.py"), "def test_a(): pass\n");
    assert!(
        !dest
            .path()
            .join(format!("octo-org-hello-world-{}", &SHA[..7]))
            .exists()
    );

    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            format!("/repos/{REPO}/installation"),
            format!("/app/installations/{INSTALLATION}/access_tokens"),
            format!("/repos/{REPO}/tarball/{SHA}"),
            format!("/codeload/{REPO}/legacy.tar.gz/{SHA}"),
        ]
    );
    assert_eq!(fake.requests()[2].bearer(), "ghs_test_token_1");
}

#[tokio::test]
async fn unknown_commit_is_not_found() {
    let fake = start_fake().await;
    let src = GithubSource::new(client(&fake, GithubAuth::Token("ghp_test".into())));
    let dest = tempfile::tempdir().unwrap();
    let err = src.fetch(&source(), dest.path()).await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
    // And a missing commit is refused before any request.
    let mut no_commit = source();
    no_commit.commit = None;
    let err = src.fetch(&no_commit, dest.path()).await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn oversized_tarballs_are_refused() {
    let fake = start_fake().await;
    fake.add_tarball(
        REPO,
        SHA,
        tar_gz("top", &[("big.txt", &"x".repeat(100_000))]),
    );
    let mut c = config(&fake, GithubAuth::Token("ghp_test".into()));
    c.max_tarball_bytes = 100;
    let src = GithubSource::new(Arc::new(GithubClient::new(c).unwrap()));
    let dest = tempfile::tempdir().unwrap();
    let err = src.fetch(&source(), dest.path()).await.unwrap_err();
    assert!(matches!(err, SourceError::TooLarge { .. }), "{err}");
    assert!(is_empty(dest.path()));
}

fn is_empty(p: &Path) -> bool {
    std::fs::read_dir(p).unwrap().next().is_none()
}

// ---- token fallback ----------------------------------------------------------

#[tokio::test]
async fn a_token_posts_commit_statuses_instead_of_check_runs() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, GithubAuth::Token("ghp_test_pat".into())));
    let started = run(RunStatus::Running, Counts::default(), None);
    assert_eq!(notifier.run_started(&started).await.unwrap(), None);
    let mut failed = started.clone();
    failed.status = RunStatus::Failed;
    failed.counts = counts(340, 12, 0);
    notifier
        .run_finished(&outcome(
            failed,
            vec![failure(1, Outcome::Failed)],
            "s".into(),
        ))
        .await
        .unwrap();
    let mut passed = started.clone();
    passed.status = RunStatus::Passed;
    passed.counts = counts(352, 0, 0);
    notifier
        .run_finished(&outcome(passed, vec![], "s".into()))
        .await
        .unwrap();

    let reqs = fake.requests();
    assert!(fake.token_requests().is_empty());
    assert_eq!(reqs.len(), 3);
    let path = format!("/repos/{REPO}/statuses/{SHA}");
    let mut states = Vec::new();
    for r in &reqs {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", path.as_str())
        );
        assert_eq!(r.bearer(), "ghp_test_pat");
        let b = r.body.as_ref().unwrap();
        assert_eq!(b["context"], "testexec");
        assert!(b["description"].as_str().unwrap().chars().count() <= 140);
        states.push(b["state"].as_str().unwrap().to_string());
    }
    assert_eq!(states, ["pending", "failure", "success"]);
    let b0 = reqs[0].body.as_ref().unwrap();
    assert_eq!(b0["target_url"], format!("{DETAILS}/runs/{}", started.id));
    let b1 = reqs[1].body.as_ref().unwrap();
    assert_eq!(
        b1["target_url"],
        "https://reports.example.com/runs/x/index.html"
    );
    assert_eq!(b1["description"], "unit: 12 failed, 340 passed");
}

#[tokio::test]
async fn a_secondary_rate_limit_without_headers_asks_the_queue_for_a_minute() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    fake.script(
        "/check-runs",
        403,
        &[],
        json!({"message": "You have exceeded a secondary rate limit and have been temporarily blocked from content creation. Please retry your request again later.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}),
    );
    let t0 = Instant::now();
    let err = notifier
        .run_started(&run(RunStatus::Running, Counts::default(), None))
        .await
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2));
    let NotifyError::Failed {
        retry_after_secs,
        message,
        ..
    } = err;
    assert_eq!(retry_after_secs, Some(60));
    assert!(message.contains("secondary rate limit"), "{message}");
}

#[tokio::test]
async fn runs_without_a_commit_are_not_reported() {
    let fake = start_fake().await;
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    let mut r = run(RunStatus::Passed, counts(1, 0, 0), None);
    r.source = SourceRef {
        repo: "local/checkout".into(),
        commit: None,
        git_ref: None,
        path: Some("/src".into()),
    };
    r.origin = Origin::Local;
    assert_eq!(notifier.run_started(&r).await.unwrap(), None);
    notifier
        .run_finished(&outcome(r, vec![], "s".into()))
        .await
        .unwrap();
    assert!(fake.requests().is_empty());
}

// ---- the fake answers like GitHub -------------------------------------------
//
// The client above is only as well tested as the fake is faithful: these
// pin the fake's refusals to GitHub's (docs.github.com and its answers as
// reported by API users).

/// An App JWT as GitHub documents it, with `claims` merged over the good ones.
fn jwt(claims: Value, alg: jsonwebtoken::Algorithm) -> String {
    let now = now_secs();
    let mut all = json!({"iat": now - 60, "exp": now + 540, "iss": APP_ID.to_string()});
    for (k, v) in claims.as_object().unwrap() {
        all[k] = v.clone();
    }
    let key = match alg {
        jsonwebtoken::Algorithm::RS256 => {
            jsonwebtoken::EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).unwrap()
        }
        _ => jsonwebtoken::EncodingKey::from_secret(b"not the app key"),
    };
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &all, &key).unwrap()
}

async fn call(
    fake: &FakeGithub,
    method: reqwest::Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = http
        .request(method, format!("{}{path}", fake.url()))
        .bearer_auth(bearer);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn mint(fake: &FakeGithub) -> String {
    let path = format!("/app/installations/{INSTALLATION}/access_tokens");
    let jwt = jwt(json!({}), jsonwebtoken::Algorithm::RS256);
    let (status, _, body) = call(fake, reqwest::Method::POST, &path, &jwt, None).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_fake_refuses_app_jwts_github_would_refuse() {
    use jsonwebtoken::Algorithm::{HS256, RS256};
    let fake = start_fake().await;
    let path = format!("/app/installations/{INSTALLATION}/access_tokens");
    let now = now_secs();
    for (why, bearer) in [
        ("HS256", jwt(json!({}), HS256)),
        ("another App", jwt(json!({"iss": "1"}), RS256)),
        (
            "expired",
            jwt(json!({"iat": now - 700, "exp": now - 100}), RS256),
        ),
        (
            "exp over 10 min ahead",
            jwt(json!({"exp": now + 900}), RS256),
        ),
        ("iat in the future", jwt(json!({"iat": now + 120}), RS256)),
        ("a token, not a JWT", "ghp_test_pat".to_string()),
    ] {
        let (status, _, body) = call(&fake, reqwest::Method::POST, &path, &bearer, None).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert!(body["message"].is_string(), "{why}: {body}");
    }
    assert_eq!(fake.tokens_minted(), 0);
    // The good JWT, but for an installation the App does not have.
    let good = jwt(json!({}), RS256);
    let (status, _, _) = call(
        &fake,
        reqwest::Method::POST,
        "/app/installations/1/access_tokens",
        &good,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // A repository the App is not installed on.
    let (status, _, _) = call(
        &fake,
        reqwest::Method::GET,
        "/repos/someone/else/installation",
        &good,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // An installation token after its expiry is bad credentials.
    fake.set_token_ttl(0);
    let token = mint(&fake).await;
    let (status, _, body) = call(
        &fake,
        reqwest::Method::GET,
        &format!("/repos/{REPO}/check-runs/1"),
        &token,
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Bad credentials"))
    );
}

#[tokio::test]
async fn the_fake_refuses_check_runs_over_githubs_limits() {
    let fake = start_fake().await;
    let token = mint(&fake).await;
    let create = format!("/repos/{REPO}/check-runs");
    let base = json!({
        "name": "testexec",
        "head_sha": SHA,
        "status": "completed",
        "conclusion": "failure",
        "output": {"title": "t", "summary": "s"},
    });
    let annotation = json!({
        "path": "a.py", "start_line": 1, "end_line": 1,
        "annotation_level": "failure", "message": "m",
    });
    let action = json!({"label": "Rerun", "description": "d", "identifier": "rerun"});
    let with = |pointer: &str, v: Value| {
        let mut b = base.clone();
        *b.pointer_mut(pointer).unwrap() = v;
        b
    };
    let cases = [
        (
            with(
                "/output",
                json!({"title": "t", "summary": "s", "annotations": vec![annotation.clone(); 51]}),
            ),
            "No more than 50 items are allowed; 51 were supplied.",
        ),
        (
            with(
                "/output",
                json!({"title": "t", "summary": "x".repeat(65_536)}),
            ),
            "Only 65535 characters are allowed; 65536 were supplied.",
        ),
        (
            with(
                "/output",
                json!({"title": "t", "summary": "s", "text": "€".repeat(30_000)}),
            ),
            "Validation Failed",
        ),
        (
            with("/output", json!({"title": "t"})),
            "\"summary\" wasn't supplied.",
        ),
        (
            with(
                "/output",
                json!({"title": "t", "summary": "s", "annotations": [{"path": "a.py", "start_line": 1, "end_line": 1, "message": "m"}]}),
            ),
            "\"annotation_level\" wasn't supplied.",
        ),
        (
            with(
                "/output",
                json!({"title": "t", "summary": "s", "annotations": [{"path": "a.py", "start_line": 1, "end_line": 2, "start_column": 3, "annotation_level": "failure", "message": "m"}]}),
            ),
            "Validation Failed",
        ),
        (with("/conclusion", json!("passed")), "is not a member of"),
        (with("/conclusion", Value::Null), "Validation Failed"),
        (with("/head_sha", json!("main")), "Validation Failed"),
    ];
    for (body, want) in cases {
        let (status, _, answer) = call(
            &fake,
            reqwest::Method::POST,
            &create,
            &token,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 422, "{body:#}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(want),
            "{want} in {answer}"
        );
    }
    let mut actions = base.clone();
    actions["actions"] = json!(vec![action.clone(); 4]);
    let mut long_label = base.clone();
    long_label["actions"] =
        json!([{"label": "x".repeat(21), "description": "d", "identifier": "i"}]);
    for body in [actions, long_label] {
        let (status, _, answer) =
            call(&fake, reqwest::Method::POST, &create, &token, Some(body)).await;
        assert_eq!(status, 422, "{answer}");
    }
    assert!(fake.check_runs().is_empty(), "nothing refused was kept");

    // At the limits, it is accepted; updates append annotations.
    let mut ok = with(
        "/output",
        json!({"title": "t", "summary": "x".repeat(65_535), "annotations": vec![annotation.clone(); 50]}),
    );
    ok["actions"] = json!(vec![action; 3]);
    let (status, _, created) = call(&fake, reqwest::Method::POST, &create, &token, Some(ok)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    let update =
        json!({"output": {"title": "t", "summary": "s", "annotations": vec![annotation; 20]}});
    let path = format!("/repos/{REPO}/check-runs/{id}");
    let (status, _, updated) =
        call(&fake, reqwest::Method::PATCH, &path, &token, Some(update)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["output"]["annotations_count"], 70);
    assert_eq!(fake.annotations(id).len(), 70);
    let (status, _, page) = call(
        &fake,
        reqwest::Method::GET,
        &format!("{path}/annotations?per_page=100"),
        &token,
        None,
    )
    .await;
    assert_eq!((status, page.as_array().map(Vec::len)), (200, Some(70)));

    // Only an App creates check runs; a personal token may post statuses.
    let (status, _, answer) = call(
        &fake,
        reqwest::Method::POST,
        &create,
        "ghp_test_pat",
        Some(base.clone()),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    let statuses = format!("/repos/{REPO}/statuses/{SHA}");
    let long = json!({"state": "success", "context": "testexec", "description": "d".repeat(141)});
    let (status, _, _) = call(
        &fake,
        reqwest::Method::POST,
        &statuses,
        "ghp_test_pat",
        Some(long),
    )
    .await;
    assert_eq!(status, 422);
    let good = json!({"state": "success", "context": "testexec", "description": "d".repeat(140)});
    let (status, _, _) = call(
        &fake,
        reqwest::Method::POST,
        &statuses,
        "ghp_test_pat",
        Some(good),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(fake.statuses(REPO, SHA).len(), 1);
}

#[tokio::test]
async fn the_fake_counts_the_rate_limit_and_the_client_waits_for_the_reset() {
    let fake = start_fake().await;
    fake.set_rate_limit(2);
    let notifier = GithubNotifier::new(client(&fake, app_auth()));
    let r = run(RunStatus::Running, Counts::default(), None);
    notifier.run_started(&r).await.unwrap();
    notifier.run_started(&r).await.unwrap();
    let t0 = Instant::now();
    let err = notifier.run_started(&r).await.unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "no sleeping for an hour"
    );
    let NotifyError::Failed {
        retry_after_secs, ..
    } = err;
    let wait = retry_after_secs.unwrap();
    assert!((3590..=3600).contains(&wait), "{wait}");
    let answered: Vec<(u16, String)> = fake
        .api_requests()
        .iter()
        .map(|r| (r.status, r.path.clone()))
        .collect();
    let create = format!("/repos/{REPO}/check-runs");
    assert_eq!(
        answered,
        [(201, create.clone()), (201, create.clone()), (403, create)]
    );
    // The headers say so (the App's own calls count apart).
    let token = fake_github::installation_token(1);
    let (status, headers, body) = call(
        &fake,
        reqwest::Method::GET,
        &format!(
            "/repos/{REPO}/check-runs/{}",
            fake_github::FIRST_CHECK_RUN_ID
        ),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(headers["x-ratelimit-limit"], "2");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("API rate limit exceeded for installation ID 4242")
    );
}

#[tokio::test]
async fn a_branch_resolves_to_its_commit_and_an_unknown_ref_is_not_found() {
    let fake = start_fake().await;
    fake.set_ref(REPO, "main", SHA);
    let src = GithubSource::new(client(&fake, app_auth()));
    let mut branch = source();
    branch.commit = None;
    branch.git_ref = Some("refs/heads/main".into());
    let resolved = src.resolve(&branch).await.unwrap();
    assert_eq!(resolved.commit.as_deref(), Some(SHA));
    assert_eq!(resolved.git_ref, branch.git_ref);
    branch.git_ref = Some("refs/heads/gone".into());
    let err = src.resolve(&branch).await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
    let answered: Vec<(u16, String)> = fake
        .api_requests()
        .iter()
        .map(|r| (r.status, r.path.clone()))
        .collect();
    assert_eq!(
        answered,
        [
            (200, format!("/repos/{REPO}/commits/refs/heads/main")),
            (422, format!("/repos/{REPO}/commits/refs/heads/gone")),
        ]
    );
}
