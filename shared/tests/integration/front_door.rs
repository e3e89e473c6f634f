//! The HTTP front door (`hosts::http`) as its callers meet it: over TCP the
//! way `testexec serve` runs it, and through the Lambda host the way API
//! Gateway invokes it, over the local backends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testexec::adapters::github::auth::Secret;
use testexec::adapters::github::webhook::{WebhookConfig, signature_header};
use testexec::app::intake::SourcePolicy;
use testexec::app::messages::{QueueName, TriggerJob};
use testexec::app::pipeline::LocalPipeline;
use testexec::app::ports::NoNotifier;
use testexec::hosts::http::{self, FrontDoor, FrontDoorConfig, ListenOptions};
use testexec::hosts::lambda::{Function, Host};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod pages;

const SECRET: &str = "It's a Secret to Everybody";
const TOKEN: &str = "front-door-test-token-0123456789";

fn workspace_file(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)).unwrap()
}

/// A repository with a manifest, and one without.
fn repos(dir: &Path) -> BTreeMap<String, PathBuf> {
    let demo = dir.join("demo");
    std::fs::create_dir_all(demo.join("tests")).unwrap();
    std::fs::write(
        demo.join("testexec.toml"),
        "[suites.unit]\ncommand = [\"true\"]\nfiles = [\"tests/*.txt\"]\njunit = [\"report.xml\"]\n",
    )
    .unwrap();
    std::fs::write(demo.join("tests/a.txt"), "").unwrap();
    let bare = dir.join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    // A manifest with a mistake (junit must be a list).
    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("testexec.toml"),
        "[suites.unit]\ncommand = [\"true\"]\nfiles = [\"*.txt\"]\njunit = \"report.xml\"\n",
    )
    .unwrap();
    [
        ("demo".to_string(), demo),
        ("bare".to_string(), bare),
        ("broken".to_string(), broken),
    ]
    .into()
}

struct Fixture {
    _dir: tempfile::TempDir,
    pipeline: LocalPipeline,
    config: FrontDoorConfig,
}

fn fixture(token: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = LocalPipeline::open(&dir.path().join("state"), Arc::new(NoNotifier)).unwrap();
    let config = FrontDoorConfig {
        webhook: WebhookConfig::new(SECRET),
        api_token: token.then(|| Secret::new(TOKEN)),
        sources: SourcePolicy {
            allowed_repos: None,
            local_repos: repos(dir.path()),
        },
        queue_push: Some(Default::default()),
    };
    Fixture {
        _dir: dir,
        pipeline,
        config,
    }
}

impl Fixture {
    fn door(&self) -> FrontDoor {
        FrontDoor::new(
            self.pipeline.ports.clone(),
            self.pipeline.settings.clone(),
            self.config.clone(),
        )
    }

    /// Serves the front door on a loopback port, as `testexec serve` does.
    async fn serve(&self, options: ListenOptions) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = http::router(self.door());
        tokio::spawn(http::serve(
            listener,
            router,
            options,
            std::future::pending(),
        ));
        addr
    }

    fn lambda(&self) -> Host {
        Host::new(
            Function::Trigger,
            self.pipeline.ports.clone(),
            self.pipeline.settings.clone(),
        )
        .with_front_door(self.config.clone())
    }

    /// Trigger jobs waiting in the requests queue (taken off it).
    async fn queued_jobs(&self) -> Vec<TriggerJob> {
        let mut jobs = Vec::new();
        while let Some(message) = self
            .pipeline
            .consumer()
            .receive(QueueName::Requests, Duration::ZERO)
            .await
            .unwrap()
        {
            jobs.push(serde_json::from_str(&message.body).unwrap());
            self.pipeline
                .consumer()
                .ack(QueueName::Requests, &message.handle)
                .await
                .unwrap();
        }
        jobs
    }
}

impl Fixture {
    /// Delivers the queued trigger jobs to `POST /queues/trigger` the way a
    /// push queue would; each must be handled (204).
    async fn push_queued_trigger_jobs(&self, addr: SocketAddr) {
        let auth = format!("Bearer {TOKEN}");
        for job in self.queued_jobs().await {
            let body = serde_json::to_vec(&job).unwrap();
            let (status, answer) = over_tcp(
                addr,
                &req(
                    "POST",
                    "/queues/trigger",
                    &[
                        ("authorization", &auth),
                        ("content-type", "application/json"),
                        ("x-testexec-attempt", "1"),
                    ],
                    &body,
                ),
            )
            .await;
            assert_eq!(status, 204, "{answer}");
        }
    }
}

/// One request, as both hosts get it.
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn req(method: &'static str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Req {
    Req {
        method,
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.to_vec(),
    }
}

async fn over_tcp(addr: SocketAddr, r: &Req) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut builder = client.request(
        r.method.parse().unwrap(),
        format!("http://{addr}{}", r.path),
    );
    for (k, v) in &r.headers {
        builder = builder.header(k, v);
    }
    let response = builder.body(r.body.clone()).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The request as an API Gateway HTTP API (v2) event, from the real sample.
fn v2_event(r: &Req) -> Value {
    use base64::Engine as _;
    let mut event: Value = serde_json::from_slice(&workspace_file(
        "fixtures/aws/lambda_http-apigw_v2_proxy_request.json",
    ))
    .unwrap();
    // The sample carries query parameters of its own; the request's replace them.
    let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
    event["rawPath"] = json!(path);
    event["rawQueryString"] = json!(query);
    event
        .as_object_mut()
        .unwrap()
        .remove("queryStringParameters");
    event["requestContext"]["http"]["method"] = json!(r.method);
    event["requestContext"]["http"]["path"] = json!(path);
    let headers = event["headers"].as_object_mut().unwrap();
    headers.retain(|k, _| k != "content-type");
    for (k, v) in &r.headers {
        headers.insert(k.to_ascii_lowercase(), json!(v));
    }
    event["isBase64Encoded"] = json!(true);
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&r.body));
    event
}

async fn over_lambda(host: &Host, r: &Req) -> (u16, Value) {
    let answer = host.invoke(v2_event(r)).await.unwrap();
    let status = answer["statusCode"].as_u64().unwrap() as u16;
    let text = match answer["body"].as_str() {
        Some(body) if answer["isBase64Encoded"] == json!(true) => {
            use base64::Engine as _;
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap(),
            )
            .unwrap()
        }
        Some(body) => body.to_string(),
        None => String::new(),
    };
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Run ids are minted per request; everything else must match byte for byte.
fn without_run_id(mut body: Value) -> Value {
    if let Some(id) = body
        .get("run_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
    {
        assert_eq!(id.len(), 26, "a ULID: {body}");
        body["run_id"] = json!("<run id>");
        body["url"] = json!("/runs/<run id>");
    }
    body
}

fn signed_push(body: &[u8], signature_secret: &str) -> Req {
    let signature = signature_header(signature_secret.as_bytes(), body);
    req(
        "POST",
        http::WEBHOOK_PATH,
        &[
            ("x-github-event", "push"),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("x-hub-signature-256", &signature),
            ("content-type", "application/json"),
        ],
        body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_the_lambda_entry_answer_every_request_identically() {
    let f = fixture(true);
    let addr = f.serve(ListenOptions::default()).await;
    let host = f.lambda();
    let auth = format!("Bearer {TOKEN}");
    let json_ct = ("content-type", "application/json");
    let push = workspace_file("fixtures/github/octokit-push-with-new-branch.payload.json");
    let tag_push = workspace_file("fixtures/github/octokit-push-payload.json");
    let oversized = vec![b' '; http::MAX_RUNS_BODY_BYTES + 1];
    let cases: Vec<(Req, u16)> = vec![
        (signed_push(&push, SECRET), 202),
        (signed_push(&push, "not the secret"), 401),
        (signed_push(&tag_push, SECRET), 202),
        (
            req(
                "POST",
                "/runs",
                &[("authorization", &auth), json_ct],
                br#"{"repo":"demo","shards":2}"#,
            ),
            202,
        ),
        (req("POST", "/runs", &[json_ct], br#"{"repo":"demo"}"#), 401),
        (
            req(
                "POST",
                "/runs",
                &[("authorization", "Bearer wrong"), json_ct],
                br#"{"repo":"demo"}"#,
            ),
            401,
        ),
        (
            req(
                "POST",
                "/runs",
                &[("authorization", &auth), ("content-type", "text/plain")],
                br#"{"repo":"demo"}"#,
            ),
            415,
        ),
        (
            req(
                "POST",
                "/runs",
                &[("authorization", &auth), json_ct],
                &oversized,
            ),
            413,
        ),
        (
            req(
                "POST",
                "/runs",
                &[("authorization", &auth), json_ct],
                br#"{"repo":"demo","bogus":1}"#,
            ),
            400,
        ),
        (
            req(
                "POST",
                "/runs",
                &[("authorization", &auth), json_ct],
                br#"{"path":"/etc"}"#,
            ),
            400,
        ),
        (
            req(
                "POST",
                "/runs",
                &[("authorization", &auth), json_ct],
                br#"{"repo":"elsewhere"}"#,
            ),
            400,
        ),
        (req("GET", "/healthz", &[], b""), 200),
        (req("GET", "/runs", &[], b""), 200),
        (req("GET", "/runs/not-a-run-id", &[], b""), 400),
        (
            req("GET", "/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV", &[], b""),
            404,
        ),
        (req("GET", "/nope", &[], b""), 404),
        (req("PUT", "/runs", &[], b""), 405),
        (req("DELETE", http::WEBHOOK_PATH, &[], b""), 405),
    ];
    let mut queued = 0;
    for (request, expected) in &cases {
        let (tcp_status, tcp_body) = over_tcp(addr, request).await;
        let (lambda_status, lambda_body) = over_lambda(&host, request).await;
        let what = format!("{} {}", request.method, request.path);
        assert_eq!(tcp_status, *expected, "{what} over TCP: {tcp_body}");
        assert_eq!(
            lambda_status, tcp_status,
            "{what}: {lambda_body} vs {tcp_body}"
        );
        assert_eq!(
            serde_json::to_string(&without_run_id(lambda_body)).unwrap(),
            serde_json::to_string(&without_run_id(tcp_body.clone())).unwrap(),
            "{what}"
        );
        if tcp_status >= 400 {
            assert!(
                tcp_body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{what}: {tcp_body}"
            );
        }
        if tcp_body["status"] == "queued" {
            queued += 2;
        }
    }
    // Only the accepted requests were queued, once per host.
    let jobs = f.queued_jobs().await;
    assert_eq!(jobs.len(), queued);
    assert_eq!(queued, 4);
    let local = jobs
        .iter()
        .find(|j| j.request.source.repo == "local/demo")
        .unwrap();
    assert!(
        local
            .request
            .source
            .path
            .as_deref()
            .unwrap()
            .ends_with("/demo")
    );
    assert_eq!(local.request.shards, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_same_origin_json_from_loopback_writes() {
    let f = fixture(false);
    let addr = f.serve(ListenOptions::default()).await;
    let own_origin = format!("http://{addr}");
    let json_ct = ("content-type", "application/json");
    let body = br#"{"repo":"demo"}"#;
    let cases = [
        // What a web page on another site can send without a preflight.
        (
            req(
                "POST",
                "/runs",
                &[
                    ("content-type", "text/plain"),
                    ("origin", "http://evil.example"),
                ],
                body,
            ),
            403,
        ),
        (
            req("POST", "/runs", &[("content-type", "text/plain")], body),
            415,
        ),
        (
            req(
                "POST",
                "/runs",
                &[json_ct, ("origin", "http://evil.example")],
                body,
            ),
            403,
        ),
        (
            req("POST", "/runs", &[json_ct, ("origin", "null")], body),
            403,
        ),
        (req("POST", "/runs", &[], body), 415),
        (
            req("POST", "/runs", &[json_ct, ("origin", &own_origin)], body),
            202,
        ),
        (req("POST", "/runs", &[json_ct], body), 202),
        (req("POST", "/runs", &[json_ct], br#"{"repo":"bare"}"#), 202),
    ];
    for (request, expected) in &cases {
        let (status, answer) = over_tcp(addr, request).await;
        assert_eq!(status, *expected, "{:?}: {answer}", request.headers);
    }
    assert_eq!(f.queued_jobs().await.len(), 3);

    // The same writes from another address: 401 naming the fix.
    let host = f.lambda();
    let (status, answer) = over_lambda(&host, &req("POST", "/runs", &[json_ct], body)).await;
    assert_eq!(status, 401);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("TESTEXEC_API_TOKEN"),
        "{answer}"
    );
    assert!(f.queued_jobs().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iam_verified_caller_needs_no_token() {
    let f = fixture(false);
    let host = f.lambda();
    let mut event = v2_event(&req(
        "POST",
        "/runs",
        &[("content-type", "application/json")],
        br#"{"repo":"demo"}"#,
    ));
    // A client header claiming an identity changes nothing.
    event["headers"]["x-amzn-iam-caller"] = json!("arn:aws:iam::123456789012:user/ci");
    let answer = host.invoke(event.clone()).await.unwrap();
    assert_eq!(answer["statusCode"], 401, "{answer}");
    // The request context API Gateway adds after verifying SigV4.
    event["requestContext"]["authorizer"] = json!({
        "iam": {
            "accessKey": "AKIAEXAMPLE", "accountId": "123456789012", "callerId": "AIDAEXAMPLE",
            "userArn": "arn:aws:iam::123456789012:user/ci", "userId": "AIDAEXAMPLE"
        }
    });
    let answer = host.invoke(event).await.unwrap();
    assert_eq!(answer["statusCode"], 202, "{answer}");
    assert_eq!(f.queued_jobs().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_the_security_headers() {
    let f = fixture(true);
    let addr = f.serve(ListenOptions::default()).await;
    for path in ["/", "/runs", "/nope"] {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_and_idle_connections_are_closed_while_others_are_served() {
    let f = fixture(true);
    let options = ListenOptions {
        header_read_timeout: Duration::from_millis(1500),
        ..ListenOptions::default()
    };
    let addr = f.serve(options).await;
    let mut slow = Vec::new();
    for i in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            // A request head that never ends.
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        slow.push(stream);
    }
    // Others are served at once meanwhile.
    let started = Instant::now();
    let (status, _) = over_tcp(addr, &req("GET", "/healthz", &[], b"")).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Keep trickling bytes into half of the slow ones: still closed.
    for stream in slow.iter_mut().step_by(4) {
        let _ = stream.write_all(b"a").await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for mut stream in slow {
        let mut buf = [0u8; 1024];
        let left = deadline.saturating_duration_since(Instant::now());
        let read = tokio::time::timeout(left, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    // A 408 answer before the close is fine.
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "a slow connection was still open after the timeout"
        );
    }
    let (status, _) = over_tcp(addr, &req("GET", "/healthz", &[], b"")).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_trigger_job_runs_the_trigger_and_a_rejected_one_is_visible() {
    let f = fixture(true);
    let addr = f.serve(ListenOptions::default()).await;
    let auth = format!("Bearer {TOKEN}");
    let json_ct = ("content-type", "application/json");
    // Accept two requests: one for a repository without a manifest.
    let mut runs = Vec::new();
    for repo in ["demo", "bare", "broken"] {
        let body = format!(r#"{{"repo":"{repo}"}}"#);
        let (status, answer) = over_tcp(
            addr,
            &req(
                "POST",
                "/runs",
                &[("authorization", &auth), json_ct],
                body.as_bytes(),
            ),
        )
        .await;
        assert_eq!(status, 202);
        runs.push(answer["run_id"].as_str().unwrap().to_string());
    }
    f.push_queued_trigger_jobs(addr).await;
    let (_, started) = over_tcp(addr, &req("GET", &format!("/runs/{}", runs[0]), &[], b"")).await;
    assert_eq!(started["run"]["status"], "running", "{started}");
    assert_eq!(started["shards"].as_array().unwrap().len(), 1);
    let (_, rejected) = over_tcp(addr, &req("GET", &format!("/runs/{}", runs[1]), &[], b"")).await;
    assert_eq!(rejected["run"]["status"], "errored", "{rejected}");
    assert!(
        rejected["run"]["error"]
            .as_str()
            .unwrap()
            .contains("testexec.toml"),
        "{rejected}"
    );

    // A body that is no message: refused, so the sender's DLQ keeps it.
    let (status, answer) = over_tcp(
        addr,
        &req(
            "POST",
            "/queues/trigger",
            &[("authorization", &auth), json_ct],
            b"{\"v\":1}",
        ),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    // Unknown queue; no credential.
    let (status, _) = over_tcp(
        addr,
        &req(
            "POST",
            "/queues/nope",
            &[("authorization", &auth), json_ct],
            b"{}",
        ),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = over_tcp(addr, &req("POST", "/queues/execute", &[json_ct], b"{}")).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_api_request_is_routed_without_its_stage() {
    let f = fixture(true);
    let host = f.lambda();
    // The real REST (v1) sample: stage `testStage`, which lambda_http puts
    // in front of the path.
    let mut event: Value = serde_json::from_slice(&workspace_file(
        "fixtures/aws/aws_lambda_events-example-apigw-request.json",
    ))
    .unwrap();
    event["path"] = json!("/healthz");
    event["httpMethod"] = json!("GET");
    event["body"] = Value::Null;
    let answer = host.invoke(event).await.unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(answer["body"], "ok", "{answer}");
}

/// Pub/Sub push to the front door as the gcp backend sets it up: envelopes,
/// and OIDC tokens checked by Google's verifier against a JWKS on loopback
/// (the TEST-ONLY key in tests/fixtures/gcp/).
#[cfg(feature = "gcp")]
mod pubsub_push {
    use super::*;
    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use testexec::adapters::gcp::GoogleIdTokens;
    use testexec::hosts::http::{PushAuthenticator, PushFormat, QueuePush};

    const AUDIENCE: &str = "https://testexec-worker-abc123-uc.a.run.app/queues";
    const SENDER: &str = "testexec-push@my-project.iam.gserviceaccount.com";
    const KID: &str = "testexec-test-key-1";

    fn fixture_file(name: &str) -> String {
        String::from_utf8(workspace_file(&format!("shared/tests/fixtures/gcp/{name}"))).unwrap()
    }

    /// Serves the test key set where Google serves its own.
    async fn jwks_server() -> String {
        let jwks = fixture_file("TEST-ONLY-oidc-jwks.json");
        let app = axum::Router::new().route(
            "/oauth2/v3/certs",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { ([("content-type", "application/json")], jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/oauth2/v3/certs")
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// The claims of a Pub/Sub push token (as Google documents them).
    fn claims() -> Value {
        json!({
            "aud": AUDIENCE,
            "azp": "112233445566778899000",
            "email": SENDER,
            "email_verified": true,
            "exp": now() + 3600,
            "iat": now(),
            "iss": "https://accounts.google.com",
            "sub": "112233445566778899000",
        })
    }

    fn sign(claims: &Value, key_pem: &str, kid: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    fn token_with(change: impl FnOnce(&mut Value)) -> String {
        let mut c = claims();
        change(&mut c);
        sign(&c, &fixture_file("TEST-ONLY-oidc-private-key.pem"), KID)
    }

    fn envelope(message: &[u8], attempt: u32) -> Vec<u8> {
        json!({
            "message": {
                "data": base64::engine::general_purpose::STANDARD.encode(message),
                "messageId": "4242",
                "publishTime": "2026-12-06T23:00:00.000Z",
                "attributes": {"queue": "trigger"},
            },
            "subscription": "projects/my-project/subscriptions/testexec-requests-push",
            "deliveryAttempt": attempt,
        })
        .to_string()
        .into_bytes()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_subscriptions_own_google_token_gets_a_push_in() {
        let mut f = fixture(false);
        let tokens = GoogleIdTokens::new(AUDIENCE, SENDER, &jwks_server().await);
        f.config.queue_push = Some(QueuePush {
            format: PushFormat::PubSub,
            authenticator: Some(Arc::new(tokens) as Arc<dyn PushAuthenticator>),
        });
        let addr = f.serve(ListenOptions::default()).await;
        let json_ct = ("content-type", "application/json");

        // A run request from loopback, queued as a trigger job.
        let (status, answer) = over_tcp(
            addr,
            &req(
                "POST",
                "/runs",
                &[json_ct],
                br#"{"repo": "demo", "suite": "unit"}"#,
            ),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        let run = answer["run_id"].as_str().unwrap().to_string();
        let jobs = f.queued_jobs().await;
        assert_eq!(jobs.len(), 1);
        let job = envelope(&serde_json::to_vec(&jobs[0]).unwrap(), 1);

        let push = |token: Option<String>| {
            let auth = token.map(|t| format!("Bearer {t}"));
            let mut headers = vec![json_ct];
            if let Some(a) = &auth {
                headers.push(("authorization", a.as_str()));
            }
            let r = req("POST", "/queues/trigger", &headers, &job);
            async move { over_tcp(addr, &r).await }
        };

        // Refused, each with the status that says why; none reaches the
        // handler (the run stays queued).
        let other_key = String::from_utf8(workspace_file(
            "shared/tests/fixtures/github/TEST-ONLY-app-private-key.pem",
        ))
        .unwrap();
        let unsigned = {
            let b64 =
                |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": KID, "typ": "JWT"})),
                b64(&claims())
            )
        };
        let refused = [
            ("no token (loopback is no credential here)", None, 401),
            ("not a JWT", Some("not-a-token".to_string()), 401),
            ("unsigned (alg none)", Some(unsigned), 401),
            (
                "signed by another key under Google's kid",
                Some(sign(&claims(), &other_key, KID)),
                401,
            ),
            (
                "a kid Google never published",
                Some(sign(
                    &claims(),
                    &fixture_file("TEST-ONLY-oidc-private-key.pem"),
                    "unknown-kid",
                )),
                401,
            ),
            (
                "expired an hour ago",
                Some(token_with(|c| {
                    c["exp"] = json!(now() - 3600);
                    c["iat"] = json!(now() - 7200);
                })),
                401,
            ),
            (
                "another audience",
                Some(token_with(|c| {
                    c["aud"] = json!("https://someone-else.a.run.app")
                })),
                403,
            ),
            (
                "another issuer",
                Some(token_with(|c| {
                    c["iss"] = json!("https://issuer.example.com")
                })),
                403,
            ),
            (
                "another service account",
                Some(token_with(|c| {
                    c["email"] = json!("attacker@evil-project.iam.gserviceaccount.com")
                })),
                403,
            ),
            (
                "an unverified email",
                Some(token_with(|c| c["email_verified"] = json!(false))),
                403,
            ),
        ];
        for (what, token, expected) in refused {
            let (status, answer) = push(token).await;
            assert_eq!(status, expected, "{what}: {answer}");
            assert!(answer["error"].as_str().is_some(), "{what}: {answer}");
        }
        let (status, unplanned) =
            over_tcp(addr, &req("GET", &format!("/runs/{run}"), &[], b"")).await;
        assert_eq!(status, 404, "the trigger ran: {unplanned}");

        // The subscription's own token: the trigger runs and answers 204.
        let (status, answer) = push(Some(token_with(|_| {}))).await;
        assert_eq!(status, 204, "{answer}");
        let (_, started) = over_tcp(addr, &req("GET", &format!("/runs/{run}"), &[], b"")).await;
        assert_eq!(started["run"]["status"], "running", "{started}");
        assert_eq!(started["shards"].as_array().unwrap().len(), 1);

        // A body that is no envelope: 400 naming the shape, after auth.
        let token = format!("Bearer {}", token_with(|_| {}));
        let (status, answer) = over_tcp(
            addr,
            &req(
                "POST",
                "/queues/trigger",
                &[json_ct, ("authorization", &token)],
                &serde_json::to_vec(&jobs[0]).unwrap(),
            ),
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("Pub/Sub push envelope"),
            "{answer}"
        );
    }
}
