//! The four functions end to end, as Lambda runs them: each function's
//! binary polls its own cargo-lambda Runtime API emulator (`cargo lambda
//! watch --only-lambda-apis`), all
//! talking to moto (DynamoDB, S3, SQS). The test plays API Gateway (an HTTP
//! API v2 event in) and the SQS event source mappings: it receives from each
//! queue, invokes the consuming function with an SQS event, deletes what the
//! function did not list in `batchItemFailures` and leaves the rest to
//! reappear after the visibility timeout.
//!
//! Included: a duplicated shard delivery (the same message in two batches)
//! and an execute crash (the function process is killed mid-shard; its
//! message comes back after the visibility timeout and the run still ends
//! with exact counts). Skipped without the emulators (see
//! `testexec::testkit::emulators`); `TESTEXEC_REQUIRE_E2E=1` makes it
//! mandatory.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use base64::Engine as _;
use serde_json::{Value, json};
use testexec::adapters::aws::provision::{self, ProvisionOptions};
use testexec::adapters::aws::{AwsBackends, AwsSettings};
use testexec::app::messages::{QueueName, keys};
use testexec::app::ports::{BlobStore, RunStore};
use testexec::domain::model::{RunId, RunStatus};
use testexec::testkit::emulators;

const RUNNER: &str = testexec::testkit::fake_suite::RUNNER;
const FUNCTIONS: [&str; 4] = ["trigger", "execute", "collect", "report"];
const TOKEN: &str = "e2e-token-0123456789abcdef";
/// Short, so the crashed shard's message comes back quickly.
const VISIBILITY: Duration = Duration::from_secs(6);

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cargo_lambda() -> Option<String> {
    emulators::endpoint("TESTEXEC_TEST_CARGO_LAMBDA")
}

/// One cargo-lambda Runtime API per function (`cargo lambda watch
/// --only-lambda-apis`), each polled by the function's binary from the
/// workspace build. The binaries are those `cargo nextest run --workspace
/// --all-features` already compiled deps for: letting `cargo lambda watch`
/// build them would compile the library a second time with the functions'
/// own feature set (minutes on a cold CI machine). Every process group is
/// killed on drop.
struct Emulator {
    apis: HashMap<&'static str, Child>,
    functions: HashMap<&'static str, Child>,
    ports: HashMap<&'static str, u16>,
    logs: PathBuf,
    cargo_lambda: String,
    env: Vec<(String, String)>,
}

impl Emulator {
    fn start(cargo_lambda: &str, env: Vec<(String, String)>, logs: &Path) -> Self {
        let mut emulator = Self {
            apis: HashMap::new(),
            functions: HashMap::new(),
            ports: HashMap::new(),
            logs: logs.to_path_buf(),
            cargo_lambda: cargo_lambda.to_string(),
            env,
        };
        for f in FUNCTIONS {
            emulator.spawn(f);
        }
        emulator
    }

    fn log_file(&self, f: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{f}.log")))
            .unwrap()
    }

    fn spawn(&mut self, f: &'static str) {
        let port = emulators::free_port();
        let log = self.log_file(f);
        // No `--timeout`: it also ends the function's idle long poll for
        // the next event, which lambda_runtime cannot take.
        let api = Command::new(&self.cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "--quiet"])
            .args(["--manifest-path", &format!("functions/{f}/Cargo.toml")])
            .args(["-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("starting cargo lambda watch --only-lambda-apis");
        self.apis.insert(f, api);
        self.ports.insert(f, port);
    }

    /// Starts the function's process once its Runtime API listens, with
    /// the variables Lambda sets (the function answers as `_`, the
    /// emulator's name for its one function).
    fn spawn_function(&mut self, f: &'static str) {
        let log = self.log_file(f);
        let child = Command::new(built_dir().join(f))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{}/.rt", self.ports[f]),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", built_dir().join(f).display()));
        self.functions.insert(f, child);
    }

    /// Kills a function's Runtime API and process and starts new ones: the
    /// emulator keeps a dead process's invocation in flight, whereas Lambda
    /// would start a new execution environment.
    async fn restart(&mut self, f: &'static str) {
        for children in [&mut self.apis, &mut self.functions] {
            if let Some(mut child) = children.remove(f) {
                kill_group(&mut child);
            }
        }
        self.spawn(f);
        self.wait_listening(f).await;
    }

    async fn wait_listening(&mut self, f: &'static str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.ports[f])).is_err() {
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch for {f} did not listen:\n{}",
                self.log(f)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.spawn_function(f);
    }

    fn url(&self, function: &str) -> String {
        // One function per Runtime API, so every invocation names `_`.
        format!(
            "http://127.0.0.1:{}/2015-03-31/functions/_/invocations",
            self.ports[function]
        )
    }

    fn log(&self, function: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{function}.log"))).unwrap_or_default()
    }
}

/// Where cargo put this test binary's workspace binaries: the test runs
/// from `<target>/debug/deps/`.
fn built_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("a test binary under <target>/<profile>/deps")
        .to_path_buf()
}

fn kill_group(child: &mut Child) {
    // The group: cargo-lambda, cargo run and the function process.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for child in self.functions.values_mut().chain(self.apis.values_mut()) {
            kill_group(child);
        }
    }
}

use std::os::unix::process::CommandExt as _;

/// A repository with the fake runner. The shard that runs `tests/c.txt`
/// kills its executor (the `execute` process, the wrapper's parent) the
/// first time, like an out-of-memory kill would.
fn make_repo(root: &Path, marker: &Path) {
    std::fs::write(root.join("runner.py"), RUNNER).unwrap();
    let wrapper = format!(
        r#"case " $* " in *tests/c.txt*) if [ ! -e '{m}' ]; then : > '{m}'; kill -9 $PPID; sleep 5; fi;; esac; exec python3 runner.py "$@""#,
        m = marker.display()
    );
    let manifest = format!(
        r#"[suites.fake]
command = ["sh", "-c", {wrapper:?}, "sh", "{{junit}}", "{{files}}", "--", "{{tests}}"]
files = ["tests/**/*.txt"]
shards = 3
retries = 0
timeout_seconds = 60
test_id = "pytest"
"#
    );
    std::fs::write(root.join("testexec.toml"), manifest).unwrap();
    std::fs::create_dir_all(root.join("tests")).unwrap();
    std::fs::write(root.join("tests/a.txt"), "t1 pass\nt2 fail\n").unwrap();
    std::fs::write(root.join("tests/b.txt"), "t3 pass\nt4 skip\n").unwrap();
    std::fs::write(root.join("tests/c.txt"), "t5 pass\nt6 pass\n").unwrap();
}

/// An API Gateway HTTP API (v2) event from the real sample, carrying
/// `POST /runs` with a base64 body.
fn runs_event(body: &Value) -> Value {
    let text = std::fs::read_to_string(
        workspace_root().join("fixtures/aws/lambda_http-apigw_v2_proxy_request.json"),
    )
    .unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["rawPath"] = json!("/runs");
    event["requestContext"]["http"]["method"] = json!("POST");
    event["requestContext"]["http"]["path"] = json!("/runs");
    let headers = event["headers"].as_object_mut().unwrap();
    headers.insert("authorization".into(), json!(format!("Bearer {TOKEN}")));
    headers.insert("content-type".into(), json!("application/json"));
    event["isBase64Encoded"] = json!(true);
    event["body"] =
        json!(base64::engine::general_purpose::STANDARD.encode(body.to_string().as_bytes()));
    event
}

struct Driver {
    http: reqwest::Client,
    sqs: aws_sdk_sqs::Client,
    settings: AwsSettings,
    emulator: Emulator,
}

/// How an invocation ended.
enum Invoked {
    Ok(Value),
    /// The function returned an error, or never answered (it died).
    Failed(String),
}

impl Driver {
    async fn invoke(&self, function: &str, event: &Value, timeout: Duration) -> Invoked {
        let sent = self
            .http
            .post(self.emulator.url(function))
            .json(event)
            .timeout(timeout)
            .send()
            .await;
        match sent {
            Err(e) => Invoked::Failed(format!("no answer: {e}")),
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if status.is_success() && value.get("errorType").is_none() {
                    Invoked::Ok(value)
                } else {
                    Invoked::Failed(format!("{status}: {text}"))
                }
            }
        }
    }

    /// Plays the SQS event source mapping once for `queue`: up to `max`
    /// messages in one batch. `duplicate` invokes the batch a second time
    /// before deleting (a duplicated delivery). Returns how many messages
    /// were received and whether an invocation failed as a whole.
    async fn pump(
        &self,
        queue: QueueName,
        function: &str,
        max: i32,
        timeout: Duration,
        duplicate: bool,
    ) -> (usize, bool) {
        let url = self.settings.queues.get(queue).to_string();
        let out = self
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(max)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .expect("receive");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return (0, false);
        }
        let records = |bump: u32| -> Vec<Value> {
            messages
                .iter()
                .map(|m| {
                    let count: u32 = m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1);
                    json!({
                        "messageId": m.message_id(),
                        "receiptHandle": m.receipt_handle(),
                        "body": m.body(),
                        "attributes": {"ApproximateReceiveCount": (count + bump).to_string()},
                        "messageAttributes": {},
                        "eventSource": "aws:sqs",
                        "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{}", queue.as_str()),
                        "awsRegion": "us-east-1",
                    })
                })
                .collect()
        };
        let mut failed: Option<HashSet<String>> = None;
        let rounds = if duplicate { 2 } else { 1 };
        for round in 0..rounds {
            let event = json!({ "Records": records(round) });
            match self.invoke(function, &event, timeout).await {
                Invoked::Ok(resp) => {
                    let ids: HashSet<String> = resp["batchItemFailures"]
                        .as_array()
                        .unwrap_or_else(|| {
                            panic!("{function} answered without batchItemFailures: {resp}")
                        })
                        .iter()
                        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
                        .collect();
                    if !ids.is_empty() {
                        eprintln!("{function}: batch item failures {ids:?}");
                    }
                    failed = Some(ids);
                }
                Invoked::Failed(why) => {
                    // Like the event source mapping: the whole batch comes
                    // back after the visibility timeout.
                    eprintln!(
                        "{function} invocation failed ({why}); leaving {} message(s)",
                        messages.len()
                    );
                    return (messages.len(), true);
                }
            }
        }
        let failed = failed.unwrap_or_default();
        for m in &messages {
            if !failed.contains(m.message_id().unwrap_or_default()) {
                self.sqs
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        (messages.len(), false)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_functions_run_a_suite_under_the_lambda_emulator() {
    let Some(sdk) = emulators::moto().await else {
        return;
    };
    let Some(bin) = cargo_lambda() else {
        return;
    };
    let started = Instant::now();
    let endpoint = std::env::var("TESTEXEC_TEST_MOTO_ENDPOINT").unwrap();
    let prefix = emulators::unique_name("lam");
    let settings = provision::provision(
        &sdk,
        &prefix,
        ProvisionOptions {
            visibility: VISIBILITY,
            max_receives: 5,
            s3_path_style: true,
        },
    )
    .await
    .expect("provisioning on moto");

    let scratch = tempfile::tempdir().unwrap();
    let repo = scratch.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let marker = scratch.path().join("crashed-once");
    make_repo(&repo, &marker);
    let work = scratch.path().join("work");
    let logs = scratch.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();

    let mut env: Vec<(String, String)> = provision::to_env(&settings)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    // Requests name the checkout; the function was given it at start.
    let local_repos = format!("e2e-repo={}", repo.display());
    env.extend(
        [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("TESTEXEC_API_TOKEN", TOKEN),
            ("TESTEXEC_LOCAL_REPOS", local_repos.as_str()),
            ("TESTEXEC_WORK_ROOT", work.to_str().unwrap()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("RUST_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    // The four function binaries, with the workspace test build's feature
    // set (`--bins --tests` activates the same dev-dependency features), so
    // cargo reuses every library it already compiled for the suite.
    // Without the variables cargo sets for a test process: ring's build
    // script reruns when CARGO_MANIFEST_DIR changes, and a rebuilt ring
    // rebuilds rustls and the whole AWS SDK (3.5 min, measured).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(&cargo);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let per_package = [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| name.starts_with(p));
        if per_package
            || name.starts_with("NEXTEST")
            || name == "CARGO_PRIMARY_PACKAGE"
            || name == "CARGO_TARGET_TMPDIR"
        {
            build.env_remove(name.as_ref());
        }
    }
    let status = build
        .args([
            "build",
            "--workspace",
            "--all-features",
            "--bins",
            "--tests",
        ])
        .current_dir(workspace_root())
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the functions");
    let built = started.elapsed();

    let emulator = Emulator::start(&bin, env, &logs);
    let mut driver = Driver {
        http: reqwest::Client::new(),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        settings: settings.clone(),
        emulator,
    };
    for f in FUNCTIONS {
        driver.emulator.wait_listening(f).await;
    }

    // API Gateway v2 → trigger: answered 202 with a run id, request queued.
    let request = json!({"repo": "e2e-repo", "suite": "fake"});
    let answer = match driver
        .invoke("trigger", &runs_event(&request), Duration::from_secs(120))
        .await
    {
        Invoked::Ok(v) => v,
        Invoked::Failed(why) => panic!("trigger failed: {why}\n{}", driver.emulator.log("trigger")),
    };
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let run: RunId = body["run_id"].as_str().unwrap().parse().unwrap();

    // The test as the event source mappings.
    let backends = AwsBackends::new(&sdk, &settings);
    let normal = Duration::from_secs(90);
    // A killed execute never answers: its invocation is given up on sooner.
    let execute_timeout = Duration::from_secs(20);
    let mut duplicated = false;
    let mut crashes = 0;
    let deadline = Instant::now() + Duration::from_secs(150);
    let final_run = loop {
        assert!(
            Instant::now() < deadline,
            "run {run} not final in time; logs:\n{}\n{}",
            driver.emulator.log("execute"),
            driver.emulator.log("collect")
        );
        let mut moved = 0;
        moved += driver
            .pump(QueueName::Requests, "trigger", 10, normal, false)
            .await
            .0;
        // Execute takes one shard per batch (as the template's BatchSize 1);
        // the first shard message is delivered twice.
        let (n, failed) = driver
            .pump(
                QueueName::Shards,
                "execute",
                1,
                execute_timeout,
                !duplicated,
            )
            .await;
        if n > 0 && !failed {
            duplicated = true;
        }
        if failed {
            crashes += 1;
            driver.emulator.restart("execute").await;
        }
        moved += n;
        moved += driver
            .pump(QueueName::Results, "collect", 10, normal, false)
            .await
            .0;
        moved += driver
            .pump(QueueName::Reports, "report", 10, normal, false)
            .await
            .0;
        let current = backends.store.get_run(run).await.expect("get_run");
        if let Some(r) = current.filter(|r| r.status.is_final()) {
            break r;
        }
        if moved == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };

    assert!(marker.exists(), "the crash hook never ran");
    assert_eq!(crashes, 1, "exactly one execute invocation died");
    assert!(duplicated, "no shard message was delivered twice");
    // Both executions of the duplicated message reached collect, which
    // applied one (the counts below are exact, not doubled).
    assert!(
        driver
            .emulator
            .log("collect")
            .contains("duplicate shard result ignored"),
        "collect never saw the duplicate:\n{}",
        driver.emulator.log("collect")
    );
    assert_eq!(final_run.status, RunStatus::Failed, "{final_run:?}");
    assert_eq!(final_run.shard_count, 3);
    assert_eq!(final_run.shards_done, 3);
    let c = final_run.counts;
    assert_eq!(
        (c.tests, c.passed, c.failed, c.errors, c.skipped, c.flaky),
        (6, 4, 1, 0, 1, 0),
        "{c:?}"
    );
    // The crashed shard ran again on a later delivery (attempt ≥ 2).
    let shards = backends.store.list_shards(run).await.unwrap();
    assert!(
        shards.iter().any(|s| s.attempt.unwrap_or(0) >= 2),
        "no shard was applied from a redelivery: {shards:?}"
    );

    // Reports in S3 with the same counts.
    let report: Value = serde_json::from_slice(
        &backends
            .blobs
            .get(&keys::report(run, "report.json"))
            .await
            .expect("report.json"),
    )
    .unwrap();
    let summary = &report["results"]["summary"];
    assert_eq!(
        (
            summary["tests"].as_u64(),
            summary["passed"].as_u64(),
            summary["failed"].as_u64(),
            summary["skipped"].as_u64()
        ),
        (Some(6), Some(4), Some(1), Some(1)),
        "{summary}"
    );
    let junit = String::from_utf8(
        backends
            .blobs
            .get(&keys::report(run, "junit.xml"))
            .await
            .expect("junit.xml"),
    )
    .unwrap();
    assert!(
        junit.contains("t2") && junit.contains("<failure"),
        "{junit}"
    );
    assert_eq!(junit.matches("<testcase").count(), 6, "{junit}");

    // The sweep through report's scheduled event: nothing left to do.
    let schedule: Value = serde_json::from_str(
        &std::fs::read_to_string(
            workspace_root()
                .join("fixtures/aws/aws_lambda_events-example-eventbridge-schedule.json"),
        )
        .unwrap(),
    )
    .unwrap();
    match driver.invoke("report", &schedule, normal).await {
        Invoked::Ok(v) => assert_eq!(
            v,
            json!({"sweep": {"errored_shards": [], "reports_queued": [], "recounted": []}}),
        ),
        Invoked::Failed(why) => panic!("sweep failed: {why}\n{}", driver.emulator.log("report")),
    }
    eprintln!(
        "e2e: build {:.1}s, total {:.1}s",
        built.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
