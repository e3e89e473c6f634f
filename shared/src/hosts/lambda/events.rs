//! Decoding an invocation payload by its shape.
//!
//! Lambda hands a function raw JSON with no type tag; the event source is
//! told apart by the fields only that source sends. The order of the checks
//! matters: an SQS event is `Records` with `eventSource: aws:sqs`, an
//! EventBridge event has `detail-type` and `source`, a REST API (v1) request
//! has `httpMethod` and `requestContext`, an HTTP API (v2) or Function URL
//! request has `version: "2.0"` and `requestContext.http`. Anything else is a
//! direct invocation (a console test event), read as a run request.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::sqs::SqsEvent;
use base64::Engine as _;
use serde_json::Value;

use crate::errors::EventError;

/// The largest direct-invoke or schedule payload read (Lambda itself caps
/// synchronous payloads at 6 MB; a run request is a few hundred bytes).
pub const MAX_INVOKE_BYTES: usize = 64 * 1024;

/// Which HTTP front door sent a request (they answer in the same format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpSource {
    /// API Gateway REST API, payload format 1.0.
    RestV1,
    /// API Gateway HTTP API, payload format 2.0.
    HttpV2,
    /// A Lambda Function URL (payload format 2.0 on `*.lambda-url.*`).
    FunctionUrl,
}

/// An HTTP request, whatever front door it came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub source: HttpSource,
    pub method: String,
    /// The path as routed, without a stage prefix.
    pub path: String,
    /// Header names lower-cased; multi-value headers keep every value.
    pub headers: Vec<(String, String)>,
    /// The body as sent: text, or base64 when `base64` is true.
    pub body: Option<String>,
    pub base64: bool,
    /// The caller's ARN when API Gateway verified a SigV4 signature (an
    /// `AWS_IAM` route). Set by AWS in the request context, never by the
    /// client, so a route behind IAM auth can trust it.
    pub iam_caller: Option<String>,
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    TooLarge { size: usize, limit: usize },
    BadBase64(String),
}

impl HttpRequest {
    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body bytes, base64-decoded when the front door encoded them,
    /// refused above `limit` bytes. The encoded length is checked first so
    /// an oversized body is never decoded.
    pub fn body_bytes(&self, limit: usize) -> Result<Vec<u8>, BodyError> {
        let Some(body) = &self.body else {
            return Ok(Vec::new());
        };
        if !self.base64 {
            if body.len() > limit {
                return Err(BodyError::TooLarge {
                    size: body.len(),
                    limit,
                });
            }
            return Ok(body.as_bytes().to_vec());
        }
        // Four base64 characters carry three bytes.
        let estimate = body.len() / 4 * 3;
        if estimate > limit.saturating_add(3) {
            return Err(BodyError::TooLarge {
                size: estimate,
                limit,
            });
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| BodyError::BadBase64(e.to_string()))?;
        if bytes.len() > limit {
            return Err(BodyError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        Ok(bytes)
    }
}

/// One decoded invocation.
#[derive(Debug, Clone)]
pub enum Event {
    Http(Box<HttpRequest>),
    Sqs(SqsEvent),
    EventBridge(Box<EventBridgeEvent<Value>>),
    /// A direct invocation: the payload itself.
    Invoke(Value),
}

impl Event {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Http(r) => match r.source {
                HttpSource::RestV1 => "API Gateway REST (v1)",
                HttpSource::HttpV2 => "API Gateway HTTP (v2)",
                HttpSource::FunctionUrl => "Function URL",
            },
            Event::Sqs(_) => "SQS",
            Event::EventBridge(e) if e.detail_type == "Scheduled Event" => "EventBridge schedule",
            Event::EventBridge(_) => "EventBridge",
            Event::Invoke(_) => "direct invoke",
        }
    }
}

/// Tells the event source apart by shape and decodes it.
pub fn decode(payload: Value) -> Result<Event, EventError> {
    let Value::Object(map) = &payload else {
        return Err(EventError::Unrecognised {
            detail: format!("the payload is {}, not a JSON object", json_kind(&payload)),
        });
    };
    if let Some(records) = map.get("Records") {
        let source = records
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r.get("eventSource"))
            .and_then(Value::as_str);
        return match source {
            Some("aws:sqs") => serde_json::from_value(payload)
                .map(Event::Sqs)
                .map_err(|e| malformed("SQS", e)),
            Some(other) => Err(EventError::Unrecognised {
                detail: format!("`Records` from event source `{other}`"),
            }),
            None => Err(EventError::Unrecognised {
                detail: "`Records` is empty or names no eventSource".into(),
            }),
        };
    }
    if map.contains_key("detail-type") && map.contains_key("source") {
        return serde_json::from_value(payload)
            .map(|e| Event::EventBridge(Box::new(e)))
            .map_err(|e| malformed("EventBridge", e));
    }
    let context = map.get("requestContext");
    if map.contains_key("httpMethod") && context.is_some() {
        let request: ApiGatewayProxyRequest =
            serde_json::from_value(payload).map_err(|e| malformed("API Gateway REST", e))?;
        return Ok(Event::Http(Box::new(from_v1(request))));
    }
    if map.get("version").and_then(Value::as_str) == Some("2.0")
        && context.and_then(|c| c.get("http")).is_some()
    {
        let domain = context
            .and_then(|c| c.get("domainName"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Function URLs live on `<id>.lambda-url.<region>.on.aws`.
        if domain.contains(".lambda-url.") {
            let request: LambdaFunctionUrlRequest =
                serde_json::from_value(payload).map_err(|e| malformed("Function URL", e))?;
            return Ok(Event::Http(Box::new(from_function_url(request))));
        }
        let request: ApiGatewayV2httpRequest =
            serde_json::from_value(payload).map_err(|e| malformed("API Gateway HTTP", e))?;
        return Ok(Event::Http(Box::new(from_v2(request))));
    }
    Ok(Event::Invoke(payload))
}

fn malformed(kind: &'static str, e: serde_json::Error) -> EventError {
    EventError::Malformed {
        kind,
        detail: e.to_string(),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn header_pairs(headers: &aws_lambda_events::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_ascii_lowercase(), v.to_string()))
        })
        .collect()
}

/// Drops a `/<stage>` prefix: an HTTP API with a named stage puts it in
/// `rawPath`, and routes are matched without it.
fn strip_stage(path: &str, stage: Option<&str>) -> String {
    let path = if path.is_empty() { "/" } else { path };
    match stage {
        Some(stage) if stage != "$default" && !stage.is_empty() => {
            let prefix = format!("/{stage}");
            match path.strip_prefix(&prefix) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                _ => path.to_string(),
            }
        }
        _ => path.to_string(),
    }
}

fn from_v1(r: ApiGatewayProxyRequest) -> HttpRequest {
    let mut headers = header_pairs(&r.headers);
    // REST APIs send both maps; multi-value carries every value.
    for pair in header_pairs(&r.multi_value_headers) {
        if !headers.contains(&pair) {
            headers.push(pair);
        }
    }
    HttpRequest {
        source: HttpSource::RestV1,
        method: r.http_method.as_str().to_string(),
        // `path` is the resource path as requested, without the stage.
        path: r.path.unwrap_or_else(|| "/".into()),
        headers,
        body: r.body,
        base64: r.is_base64_encoded,
        // REST APIs put the verified IAM identity in `identity`.
        iam_caller: r
            .request_context
            .identity
            .user_arn
            .filter(|a| !a.is_empty()),
    }
}

fn from_v2(r: ApiGatewayV2httpRequest) -> HttpRequest {
    let raw = r
        .raw_path
        .clone()
        .or_else(|| r.request_context.http.path.clone())
        .unwrap_or_else(|| "/".into());
    HttpRequest {
        source: HttpSource::HttpV2,
        method: r.request_context.http.method.as_str().to_string(),
        path: strip_stage(&raw, r.request_context.stage.as_deref()),
        headers: header_pairs(&r.headers),
        body: r.body,
        base64: r.is_base64_encoded,
        iam_caller: r
            .request_context
            .authorizer
            .and_then(|a| a.iam)
            .and_then(|iam| iam.user_arn)
            .filter(|a| !a.is_empty()),
    }
}

fn from_function_url(r: LambdaFunctionUrlRequest) -> HttpRequest {
    let path = r
        .raw_path
        .clone()
        .or_else(|| r.request_context.http.path.clone())
        .unwrap_or_else(|| "/".into());
    HttpRequest {
        source: HttpSource::FunctionUrl,
        method: r
            .request_context
            .http
            .method
            .clone()
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase(),
        path,
        headers: header_pairs(&r.headers),
        body: r.body,
        base64: r.is_base64_encoded,
        iam_caller: r
            .request_context
            .authorizer
            .and_then(|a| a.iam)
            .and_then(|iam| iam.user_arn)
            .filter(|a| !a.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    pub(crate) fn fixture(name: &str) -> Value {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/aws")
            .join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    fn http(name: &str) -> HttpRequest {
        match decode(fixture(name)).unwrap() {
            Event::Http(r) => *r,
            other => panic!("{name} decoded as {}", other.kind()),
        }
    }

    #[test]
    fn every_aws_fixture_decodes_into_its_variant() {
        // Every file in fixtures/aws, so a new sample cannot go untested.
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/aws");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let expected: Result<&str, &str> = match name.as_str() {
                "aws_lambda_events-example-apigw-request-multi-value-parameters.json"
                | "aws_lambda_events-example-apigw-request.json"
                | "lambda_http-apigw_proxy_request.json" => Ok("API Gateway REST (v1)"),
                "aws_lambda_events-example-apigw-v2-request-jwt-authorizer.json"
                | "aws_lambda_events-example-apigw-v2-request-no-authorizer.json"
                | "lambda_http-apigw_v2_proxy_request.json"
                | "lambda_http-apigw_v2_proxy_request_minimal.json" => Ok("API Gateway HTTP (v2)"),
                "lambda_http-lambda_function_url_request.json" => Ok("Function URL"),
                "aws_lambda_events-example-eventbridge-schedule.json" => Ok("EventBridge schedule"),
                "aws_lambda_events-example-eventbridge-event-obj.json" => Ok("EventBridge"),
                "aws_lambda_events-example-sqs-event.json" => Ok("SQS"),
                // Responses are not invocations: they read as a (bad) direct
                // invoke, which the run-request check then refuses.
                "aws_lambda_events-example-apigw-response.json"
                | "aws_lambda_events-example-sqs-batch-response.json" => Ok("direct invoke"),
                // S3 notifications are no event we take.
                "aws_lambda_events-example-s3-event.json"
                | "aws_lambda_events-example-s3-event-with-decoded.json" => Err("aws:s3"),
                other => panic!("fixture {other} has no expectation here; add one"),
            };
            let decoded = decode(fixture(&name));
            match (expected, decoded) {
                (Ok(kind), Ok(event)) => assert_eq!(event.kind(), kind, "{name}"),
                (Err(needle), Err(e)) => assert!(e.to_string().contains(needle), "{name}: {e}"),
                (want, got) => panic!("{name}: expected {want:?}, got {got:?}"),
            }
            seen += 1;
        }
        assert_eq!(seen, 15, "fixtures/aws changed");
    }

    #[test]
    fn http_fixtures_give_method_path_headers_and_body() {
        let v1 = http("aws_lambda_events-example-apigw-request.json");
        assert_eq!(v1.source, HttpSource::RestV1);
        assert_eq!(
            (v1.method.as_str(), v1.path.as_str()),
            ("POST", "/hello/world")
        );
        assert!(v1.header("Host").is_some());
        assert_eq!(v1.body_bytes(100).unwrap(), b"{\r\n\t\"a\": 1\r\n}");

        let v2 = http("lambda_http-apigw_v2_proxy_request.json");
        assert_eq!(v2.source, HttpSource::HttpV2);
        assert_eq!((v2.method.as_str(), v2.path.as_str()), ("POST", "/my/path"));
        assert_eq!(v2.body_bytes(100).unwrap(), b"Hello from Lambda");

        let minimal = http("lambda_http-apigw_v2_proxy_request_minimal.json");
        assert_eq!(
            (minimal.method.as_str(), minimal.path.as_str()),
            ("GET", "/")
        );
        assert_eq!(minimal.body_bytes(10).unwrap(), b"");
        assert_eq!(minimal.header("user-agent"), Some("curl/7.64.1"));

        let url = http("lambda_http-lambda_function_url_request.json");
        assert_eq!(url.source, HttpSource::FunctionUrl);
        assert_eq!(
            (url.method.as_str(), url.path.as_str()),
            ("GET", "/my/path")
        );
    }

    #[test]
    fn a_named_stage_is_stripped_from_http_api_paths() {
        assert_eq!(
            strip_stage("/prod/webhooks/github", Some("prod")),
            "/webhooks/github"
        );
        assert_eq!(strip_stage("/prod", Some("prod")), "/");
        assert_eq!(strip_stage("/production/x", Some("prod")), "/production/x");
        assert_eq!(strip_stage("/runs", Some("$default")), "/runs");
    }

    #[test]
    fn base64_bodies_are_decoded_and_bounded() {
        let mut r = http("lambda_http-apigw_v2_proxy_request_minimal.json");
        r.body = Some(base64::engine::general_purpose::STANDARD.encode(b"{\"a\":1}"));
        r.base64 = true;
        assert_eq!(r.body_bytes(100).unwrap(), b"{\"a\":1}");
        assert!(matches!(r.body_bytes(3), Err(BodyError::TooLarge { .. })));
        r.body = Some("not base64!".into());
        assert!(matches!(r.body_bytes(100), Err(BodyError::BadBase64(_))));
        r.base64 = false;
        r.body = Some("x".repeat(11));
        assert_eq!(
            r.body_bytes(10),
            Err(BodyError::TooLarge {
                size: 11,
                limit: 10
            })
        );
    }

    #[test]
    fn scalars_and_foreign_records_are_refused_with_the_reason() {
        let e = decode(serde_json::json!("hello")).unwrap_err();
        assert!(e.to_string().contains("a string"), "{e}");
        let e = decode(serde_json::json!({"Records": []})).unwrap_err();
        assert!(e.to_string().contains("eventSource"), "{e}");
    }
}
