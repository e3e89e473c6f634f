//! The trigger's HTTP front door (API Gateway v1/v2, Function URL).
//!
//! Requests must answer fast (GitHub gives a webhook 10 s): a request is
//! validated, given a run id and queued as a [`TriggerJob`] on the requests
//! queue, and answered 202 with that id; the trigger function picks the job
//! up from SQS and does the slow work. Errors are JSON `{"error": "..."}`
//! with the status that says what went wrong.

use serde_json::{Value, json};

use crate::adapters::github::webhook::{self, WebhookAction, WebhookConfig, WebhookHeaders};
use crate::app::handlers::trigger::RunRequest;
use crate::hosts::lambda::events::{BodyError, HttpRequest};
use crate::hosts::lambda::request::{SourcePolicy, StartRun};
use crate::app::messages::{MESSAGE_VERSION, QueueName, TriggerJob};
use crate::domain::model::{Origin, RunId};
use crate::app::ports::JobQueue;

/// Largest `POST /runs` body.
pub const MAX_RUNS_BODY_BYTES: usize = 64 * 1024;

pub const WEBHOOK_PATH: &str = "/webhooks/github";
pub const RUNS_PATH: &str = "/runs";

/// How the front door is set up (built once per process).
#[derive(Debug, Clone)]
pub struct HttpIntake {
    pub webhook: WebhookConfig,
    /// Bearer token `POST /runs` requires; `None` turns the route off.
    /// Never logged.
    pub api_token: Option<crate::adapters::github::auth::Secret>,
    pub policy: SourcePolicy,
}

/// An answer in the shape all three front doors take.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Value,
}

impl HttpResponse {
    fn error(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into() }),
        }
    }

    /// The proxy-integration response (the same fields for REST v1, HTTP
    /// v2 and Function URLs).
    pub fn to_lambda(&self) -> Value {
        json!({
            "statusCode": self.status,
            "headers": { "content-type": "application/json" },
            "body": self.body.to_string(),
            "isBase64Encoded": false,
        })
    }
}

/// Routes one request. Never fails: every problem is an HTTP answer.
pub async fn handle(intake: &HttpIntake, queue: &dyn JobQueue, req: &HttpRequest) -> HttpResponse {
    let route = req.path.trim_end_matches('/');
    let route = if route.is_empty() { "/" } else { route };
    match (route, req.method.as_str()) {
        (WEBHOOK_PATH, "POST") => github(intake, queue, req).await,
        (RUNS_PATH, "POST") => runs(intake, queue, req).await,
        (WEBHOOK_PATH | RUNS_PATH, method) => {
            HttpResponse::error(405, format!("{method} is not allowed on {route}; use POST"))
        }
        _ => HttpResponse::error(
            404,
            format!(
                "no route {} {}; this function serves POST {WEBHOOK_PATH} and POST {RUNS_PATH}",
                req.method,
                req.path.chars().take(200).collect::<String>()
            ),
        ),
    }
}

fn body_error(e: BodyError) -> HttpResponse {
    match e {
        BodyError::TooLarge { size, limit } => HttpResponse::error(
            413,
            format!("request body is about {size} bytes, over the {limit}-byte limit"),
        ),
        BodyError::BadBase64(detail) => HttpResponse::error(
            400,
            format!("the base64-encoded body does not decode: {detail}"),
        ),
    }
}

async fn github(intake: &HttpIntake, queue: &dyn JobQueue, req: &HttpRequest) -> HttpResponse {
    let body = match req.body_bytes(intake.webhook.max_body_bytes) {
        Ok(b) => b,
        Err(e) => return body_error(e),
    };
    let headers = WebhookHeaders::from_pairs(req.headers.iter().map(|(k, v)| (k, v)));
    let decision = match webhook::intake(&intake.webhook, &headers, &body) {
        Ok(d) => d,
        Err(e) => {
            if e.is_unauthorized() {
                tracing::warn!(delivery = ?headers.delivery, "webhook refused: {e}");
            } else {
                tracing::info!(delivery = ?headers.delivery, "webhook refused: {e}");
            }
            return HttpResponse::error(e.http_status(), e.to_string());
        }
    };
    match decision.into_action() {
        WebhookAction::Reply { status, body } => HttpResponse { status, body },
        WebhookAction::Start(request) => enqueue(queue, *request).await,
    }
}

async fn runs(intake: &HttpIntake, queue: &dyn JobQueue, req: &HttpRequest) -> HttpResponse {
    if let Some(caller) = &req.iam_caller {
        // The route sits behind API Gateway's AWS_IAM authorizer (template.yaml):
        // the signature was verified before we were invoked, and IAM policy
        // decided who may call. A SigV4 request carries its signature in the
        // Authorization header, so no bearer token can ride along.
        tracing::info!(caller = %caller, "POST /runs authorised by IAM");
    } else {
        let Some(token) = &intake.api_token else {
            return HttpResponse::error(
                401,
                "POST /runs needs a caller signed with AWS SigV4 (the route's AWS_IAM authorizer) or, where the route is not behind IAM, TESTEXEC_API_TOKEN on the trigger function sent as `Authorization: Bearer <token>`",
            );
        };
        let presented = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.expose().as_bytes())) {
            return HttpResponse::error(401, "missing or wrong `Authorization: Bearer <token>`");
        }
    }
    if let Some(ct) = req.header("content-type") {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return HttpResponse::error(
                415,
                format!("content type `{essence}` is not accepted; send application/json"),
            );
        }
    }
    let body = match req.body_bytes(MAX_RUNS_BODY_BYTES) {
        Ok(b) => b,
        Err(e) => return body_error(e),
    };
    let request =
        match StartRun::parse(&body).and_then(|s| s.into_request(Origin::Invoke, &intake.policy)) {
            Ok(r) => r,
            Err(e) => return HttpResponse::error(400, e.to_string()),
        };
    enqueue(queue, request).await
}

/// Compares secrets without an early exit, so timing reveals nothing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Gives the request its run id and queues it for the trigger.
pub async fn enqueue(queue: &dyn JobQueue, mut request: RunRequest) -> HttpResponse {
    let run = *request.run_id.get_or_insert_with(RunId::new);
    let job = TriggerJob {
        v: MESSAGE_VERSION,
        request,
    };
    // Our own plain struct: serialising cannot fail.
    let body = serde_json::to_string(&job).unwrap_or_default();
    match queue.send_batch(QueueName::Requests, vec![body]).await {
        Ok(()) => {
            tracing::info!(run_id = %run, "run request queued");
            HttpResponse {
                status: 202,
                body: json!({ "run_id": run.to_string(), "status": "queued" }),
            }
        }
        Err(e) => {
            tracing::error!(run_id = %run, error = %e, "run request could not be queued");
            HttpResponse::error(503, format!("could not queue the request: {e}; try again"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::QueueError;
    use crate::adapters::github::webhook::signature_header;
    use crate::hosts::lambda::events::{Event, decode};
    use async_trait::async_trait;
    use base64::Engine as _;
    use std::path::PathBuf;
    use std::sync::Mutex;

    const SECRET: &str = "It's a Secret to Everybody";
    const TOKEN: &str = "test-api-token";

    /// The sending port, recording what was queued.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(QueueName, String)>>);

    #[async_trait]
    impl JobQueue for Recorder {
        async fn send_batch(
            &self,
            queue: QueueName,
            bodies: Vec<String>,
        ) -> Result<(), QueueError> {
            let mut sent = self.0.lock().unwrap();
            sent.extend(bodies.into_iter().map(|b| (queue, b)));
            Ok(())
        }
    }

    impl Recorder {
        fn jobs(&self) -> Vec<TriggerJob> {
            let sent = self.0.lock().unwrap();
            sent.iter()
                .map(|(q, b)| {
                    assert_eq!(*q, QueueName::Requests);
                    serde_json::from_str(b).unwrap()
                })
                .collect()
        }
    }

    fn intake() -> HttpIntake {
        HttpIntake {
            webhook: WebhookConfig::new(SECRET),
            api_token: Some(crate::adapters::github::auth::Secret::new(TOKEN)),
            policy: SourcePolicy {
                allowed_repos: Some(vec!["octo/app".into()]),
                allow_local: false,
            },
        }
    }

    fn repo_file(rel: &str) -> Vec<u8> {
        std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(rel),
        )
        .unwrap()
    }

    /// An API Gateway v2 request built from the real sample event.
    /// The v2 fixture turned into a request for `method path`.
    fn v2_event(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        b64: bool,
    ) -> Value {
        let mut event: Value = serde_json::from_slice(&repo_file(
            "fixtures/aws/lambda_http-apigw_v2_proxy_request.json",
        ))
        .unwrap();
        event["rawPath"] = json!(path);
        event["requestContext"]["http"]["method"] = json!(method);
        event["requestContext"]["http"]["path"] = json!(path);
        let map = event["headers"].as_object_mut().unwrap();
        for (k, v) in headers {
            map.insert(k.to_string(), json!(v));
        }
        event["isBase64Encoded"] = json!(b64);
        event["body"] = if b64 {
            json!(base64::engine::general_purpose::STANDARD.encode(body))
        } else {
            json!(String::from_utf8(body.to_vec()).unwrap())
        };
        event
    }

    fn http_request(event: Value) -> HttpRequest {
        match decode(event).unwrap() {
            Event::Http(r) => *r,
            other => panic!("decoded as {}", other.kind()),
        }
    }

    fn v2_request(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        b64: bool,
    ) -> HttpRequest {
        http_request(v2_event(method, path, headers, body, b64))
    }

    fn signed_push(body: &[u8], b64: bool) -> HttpRequest {
        let signature = signature_header(SECRET.as_bytes(), body);
        v2_request(
            "POST",
            WEBHOOK_PATH,
            &[
                ("x-github-event", "push"),
                ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                ("x-hub-signature-256", &signature),
                ("content-type", "application/json"),
            ],
            body,
            b64,
        )
    }

    #[tokio::test]
    async fn a_signed_push_is_queued_as_a_trigger_job() {
        let body = repo_file("fixtures/github/octokit-push-with-new-branch.payload.json");
        for b64 in [false, true] {
            let queue = Recorder::default();
            let response = handle(&intake(), &queue, &signed_push(&body, b64)).await;
            assert_eq!(response.status, 202, "{:?}", response.body);
            let jobs = queue.jobs();
            assert_eq!(jobs.len(), 1);
            let request = &jobs[0].request;
            assert_eq!(request.source.repo, "Codertocat/Hello-World");
            assert_eq!(
                request.source.commit.as_deref(),
                Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246")
            );
            assert_eq!(
                request.delivery_id.as_deref(),
                Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
            );
            // The answer names the run id the queued job carries.
            assert_eq!(
                response.body["run_id"].as_str().unwrap(),
                request.run_id.unwrap().to_string()
            );
            let lambda = response.to_lambda();
            assert_eq!(lambda["statusCode"], 202);
            assert!(lambda["body"].as_str().unwrap().contains("queued"));
        }
    }

    #[tokio::test]
    async fn a_bad_signature_is_401_and_queues_nothing() {
        let body = repo_file("fixtures/github/octokit-push-with-new-branch.payload.json");
        let mut request = signed_push(&body, false);
        request.body = Some(String::from_utf8(body).unwrap().replace("master", "main"));
        let queue = Recorder::default();
        let response = handle(&intake(), &queue, &request).await;
        assert_eq!(response.status, 401, "{:?}", response.body);
        assert!(
            response.body["error"]
                .as_str()
                .unwrap()
                .contains("does not match the body")
        );
        assert!(queue.jobs().is_empty());
    }

    #[tokio::test]
    async fn an_ignored_delivery_is_202_without_a_job() {
        let body = repo_file("fixtures/github/octokit-push-payload.json");
        let queue = Recorder::default();
        let response = handle(&intake(), &queue, &signed_push(&body, false)).await;
        assert_eq!(response.status, 202);
        assert!(response.body["ignored"].as_str().unwrap().contains("tag"));
        assert!(queue.jobs().is_empty());
    }

    #[tokio::test]
    async fn post_runs_queues_a_valid_request() {
        let queue = Recorder::default();
        let auth = format!("Bearer {TOKEN}");
        let request = v2_request(
            "POST",
            RUNS_PATH,
            &[("authorization", &auth), ("content-type", "application/json")],
            br#"{"repo":"octo/app","commit":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","suite":"unit","shards":3}"#,
            true,
        );
        let response = handle(&intake(), &queue, &request).await;
        assert_eq!(response.status, 202, "{:?}", response.body);
        let jobs = queue.jobs();
        assert_eq!(jobs[0].request.shards, Some(3));
        assert_eq!(jobs[0].request.suite.as_deref(), Some("unit"));
    }

    #[tokio::test]
    async fn errors_carry_the_right_status_and_a_message() {
        let auth = format!("Bearer {TOKEN}");
        let json_ct = ("content-type", "application/json");
        let cases: Vec<(HttpRequest, u16, &str)> = vec![
            (
                v2_request("POST", "/nope", &[], b"", false),
                404,
                "no route",
            ),
            (
                v2_request("GET", RUNS_PATH, &[], b"", false),
                405,
                "use POST",
            ),
            (
                v2_request("PUT", WEBHOOK_PATH, &[], b"", false),
                405,
                "use POST",
            ),
            (
                v2_request("POST", RUNS_PATH, &[json_ct], b"{}", false),
                401,
                "Bearer",
            ),
            (
                v2_request(
                    "POST",
                    RUNS_PATH,
                    &[("authorization", "Bearer wrong"), json_ct],
                    b"{}",
                    false,
                ),
                401,
                "wrong",
            ),
            (
                v2_request(
                    "POST",
                    RUNS_PATH,
                    &[("authorization", &auth), ("content-type", "text/plain")],
                    b"{}",
                    false,
                ),
                415,
                "application/json",
            ),
            (
                v2_request(
                    "POST",
                    RUNS_PATH,
                    &[("authorization", &auth), json_ct],
                    &vec![b' '; MAX_RUNS_BODY_BYTES + 1],
                    false,
                ),
                413,
                "limit",
            ),
            (
                v2_request(
                    "POST",
                    RUNS_PATH,
                    &[("authorization", &auth), json_ct],
                    &vec![b' '; MAX_RUNS_BODY_BYTES + 100],
                    true,
                ),
                413,
                "limit",
            ),
            (
                v2_request(
                    "POST",
                    RUNS_PATH,
                    &[("authorization", &auth), json_ct],
                    br#"{"repo":"octo/app","ref":"main","bogus":true}"#,
                    false,
                ),
                400,
                "bogus",
            ),
            (
                v2_request(
                    "POST",
                    RUNS_PATH,
                    &[("authorization", &auth), json_ct],
                    br#"{"repo":"evil/app","ref":"main"}"#,
                    false,
                ),
                400,
                "TESTEXEC_ALLOWED_REPOS",
            ),
        ];
        for (request, status, needle) in cases {
            let queue = Recorder::default();
            let response = handle(&intake(), &queue, &request).await;
            assert_eq!(
                response.status, status,
                "{} {}: {:?}",
                request.method, request.path, response.body
            );
            let message = response.body["error"].as_str().unwrap();
            assert!(message.contains(needle), "{message}");
            assert!(queue.jobs().is_empty());
        }
        // The webhook's own limit answers 413 as well.
        let mut small = intake();
        small.webhook.max_body_bytes = 10;
        let body = repo_file("fixtures/github/octokit-push-with-new-branch.payload.json");
        let response = handle(&small, &Recorder::default(), &signed_push(&body, true)).await;
        assert_eq!(response.status, 413);
    }

    #[tokio::test]
    async fn post_runs_is_off_without_a_token() {
        let mut intake = intake();
        intake.api_token = None;
        let request = v2_request(
            "POST",
            RUNS_PATH,
            &[("authorization", "Bearer x")],
            b"{}",
            false,
        );
        let response = handle(&intake, &Recorder::default(), &request).await;
        assert_eq!(response.status, 401);
        assert!(
            response.body["error"]
                .as_str()
                .unwrap()
                .contains("TESTEXEC_API_TOKEN")
        );
    }

    #[tokio::test]
    async fn post_runs_behind_iam_needs_no_token() {
        let mut intake = intake();
        intake.api_token = None;
        let body = br#"{"repo":"octo/app","commit":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","suite":"unit"}"#;
        let mut event = v2_event(
            "POST",
            RUNS_PATH,
            &[("content-type", "application/json")],
            body,
            false,
        );
        let unsigned = http_request(event.clone());
        assert_eq!(unsigned.iam_caller, None);
        let queue = Recorder::default();
        assert_eq!(handle(&intake, &queue, &unsigned).await.status, 401);
        assert!(queue.jobs().is_empty());

        // The request context API Gateway adds after verifying SigV4.
        event["requestContext"]["authorizer"] = json!({
            "iam": {
                "accessKey": "AKIAEXAMPLE",
                "accountId": "123456789012",
                "callerId": "AIDAEXAMPLE",
                "userArn": "arn:aws:iam::123456789012:user/ci",
                "userId": "AIDAEXAMPLE"
            }
        });
        let signed = http_request(event);
        assert_eq!(
            signed.iam_caller.as_deref(),
            Some("arn:aws:iam::123456789012:user/ci")
        );
        let response = handle(&intake, &queue, &signed).await;
        assert_eq!(response.status, 202, "{:?}", response.body);
        assert_eq!(queue.jobs()[0].request.suite.as_deref(), Some("unit"));
    }
}
