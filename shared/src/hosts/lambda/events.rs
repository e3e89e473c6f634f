//! Telling an invocation payload's source apart by shape.
//!
//! Lambda hands a function raw JSON with no type tag; the event source is
//! told apart by the fields only that source sends. An SQS event is
//! `Records` with `eventSource: aws:sqs`; an EventBridge event has
//! `detail-type` and `source`; an HTTP request (API Gateway REST v1, HTTP
//! v2, a Function URL) has `requestContext`; only the trigger decodes it
//! (with `lambda_http`, feature `lambda-http`) and answers it through the
//! front door's Router (see `crate::hosts::http`), so the other functions
//! link none of that. Anything else is a direct invocation (a console test
//! event), read as a run request.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use serde_json::Value;

use crate::errors::EventError;

/// The largest direct-invoke or schedule payload read (Lambda itself caps
/// synchronous payloads at 6 MB; a run request is a few hundred bytes).
pub const MAX_INVOKE_BYTES: usize = 64 * 1024;

/// One decoded invocation.
#[derive(Debug)]
pub enum Event {
    /// An HTTP request, in whichever of API Gateway's shapes it came, as
    /// sent: the function that takes HTTP decodes it (`lambda_http`).
    Http(Box<Value>),
    Sqs(SqsEvent),
    EventBridge(Box<EventBridgeEvent<Value>>),
    /// A direct invocation: the payload itself.
    Invoke(Value),
}

impl Event {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Http(r) => http_kind(r),
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
    if map.contains_key("requestContext") {
        return Ok(Event::Http(Box::new(payload)));
    }
    Ok(Event::Invoke(payload))
}

/// What [`Event::kind`] calls an HTTP request: HTTP APIs and Function URLs
/// send payload format 2.0 (`"version": "2.0"`), REST APIs format 1.0,
/// with `httpMethod` at the top level.
fn http_kind(request: &Value) -> &'static str {
    match request.get("version").and_then(Value::as_str) {
        Some("2.0") => "API Gateway HTTP (v2)",
        _ if request.get("httpMethod").is_some() => "API Gateway REST (v1)",
        _ => "HTTP",
    }
}

/// The name of HTTP requests in [`EventError::Malformed`].
pub const HTTP_KIND: &str = "HTTP (API Gateway or Function URL)";

pub(crate) fn malformed(kind: &'static str, e: serde_json::Error) -> EventError {
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
                // Function URLs send the HTTP API's v2 payload.
                "lambda_http-lambda_function_url_request.json" => Ok("API Gateway HTTP (v2)"),
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

    #[cfg(feature = "lambda-http")]
    #[test]
    fn http_fixtures_become_requests_with_method_path_and_body() {
        use lambda_http::http::Method;
        for (name, method, path) in [
            (
                "aws_lambda_events-example-apigw-request.json",
                Method::POST,
                "/hello/world",
            ),
            (
                "lambda_http-apigw_v2_proxy_request.json",
                Method::POST,
                "/my/path",
            ),
            (
                "lambda_http-apigw_v2_proxy_request_minimal.json",
                Method::GET,
                "/",
            ),
            (
                "lambda_http-lambda_function_url_request.json",
                Method::GET,
                "/my/path",
            ),
        ] {
            let Event::Http(request) = decode(fixture(name)).unwrap() else {
                panic!("{name} is not HTTP");
            };
            let request: lambda_http::request::LambdaRequest =
                serde_json::from_value(*request).unwrap();
            let request: lambda_http::Request = request.into();
            assert_eq!(request.method(), method, "{name}");
            // The REST sample carries its stage (`/testStage`) in the path;
            // the host strips it before routing (`host::strip_stage`).
            assert!(
                request.uri().path().ends_with(path),
                "{name}: {}",
                request.uri()
            );
        }
    }

    #[test]
    fn scalars_and_foreign_records_are_refused_with_the_reason() {
        let e = decode(serde_json::json!("hello")).unwrap_err();
        assert!(e.to_string().contains("a string"), "{e}");
        let e = decode(serde_json::json!({"Records": []})).unwrap_err();
        assert!(e.to_string().contains("eventSource"), "{e}");
    }
}
