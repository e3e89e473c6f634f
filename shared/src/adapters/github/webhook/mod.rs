//! Verifying and routing GitHub webhook deliveries.
//!
//! [`intake`] is the whole front door for a delivery: it bounds the body,
//! proves the body was signed with our secret, checks the headers, parses the
//! JSON and turns the event into a [`WebhookDecision`]. It does no I/O, so
//! every host (Lambda, Cloud Run, Container Apps, `testexec serve`) answers
//! the same way and GitHub's 10-second budget is spent only on the trigger.
//!
//! Dedupe is not done here: a
//! [`RunRequest`](crate::app::messages::RunRequest) carries the `X-GitHub-Delivery`
//! GUID as `delivery_id`, and the trigger claims it in the run store, so a
//! redelivery of the same GUID starts nothing.
//!
//! The work is split by concern: `verify` proves a body came from GitHub
//! (HMAC-SHA256 over the raw bytes), `route` turns a verified event into a
//! decision. This file is the front door that runs them in order and
//! re-exports the public API, so callers keep writing `webhook::intake`.

mod route;
mod verify;

use std::fmt;

use serde_json::Value;

use crate::errors::WebhookError;
pub use route::{WebhookAction, WebhookDecision};
pub use verify::{signature_header, verify_signature};

/// GitHub never delivers a payload larger than 25 MB; anything bigger did not
/// come from GitHub and is refused before any hashing.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// `requested_action.identifier` of the "Re-run failed tests" button that the
/// report puts on our check runs (GitHub caps identifiers at 20 characters).
pub const RERUN_FAILED_ACTION: &str = "rerun-failed";

/// `requested_action.identifier` of the "Re-run all tests" button.
pub const RERUN_ALL_ACTION: &str = "rerun-all";

/// Header names as GitHub spells them (lookup is case-insensitive).
pub const EVENT_HEADER: &str = "X-GitHub-Event";
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
pub const CONTENT_TYPE_HEADER: &str = "Content-Type";

/// Environment variable holding the webhook secret.
pub const SECRET_ENV: &str = "TESTEXEC_WEBHOOK_SECRET";
/// Environment variable holding the comma-separated repository allow-list.
pub const ALLOWED_REPOS_ENV: &str = "TESTEXEC_ALLOWED_REPOS";

/// Splits a comma-separated `owner/name` list, dropping blanks.
pub fn parse_repo_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect()
}

/// How the intake is set up. Built by the host from its environment.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The webhook secret entered in GitHub. Never logged (see `Debug`).
    pub secret: Vec<u8>,
    /// `owner/name` entries, compared case-insensitively (GitHub treats
    /// repository names that way). `None` accepts every repository that can
    /// sign with the secret.
    pub allowed_repos: Option<Vec<String>>,
    /// Larger bodies are refused with 413 before the signature is computed.
    pub max_body_bytes: usize,
    /// Identifier of the check-run button that re-runs only the failed tests.
    pub rerun_failed_action: String,
    /// Identifier of the check-run button that re-runs the whole suite.
    pub rerun_all_action: String,
}

impl WebhookConfig {
    /// A configuration with GitHub's size cap, our button identifiers and no
    /// allow-list.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
            allowed_repos: None,
            max_body_bytes: MAX_BODY_BYTES,
            rerun_failed_action: RERUN_FAILED_ACTION.to_owned(),
            rerun_all_action: RERUN_ALL_ACTION.to_owned(),
        }
    }

    /// The intake's settings from the environment: `TESTEXEC_WEBHOOK_SECRET`
    /// (without it every delivery is refused with 500/no secret) and
    /// `TESTEXEC_ALLOWED_REPOS` (comma-separated `owner/name`; unset allows
    /// all). `lookup` is the environment (tests pass a map; the Lambda host
    /// passes the environment). Shared by `testexec serve` and the Lambda
    /// trigger so both read the same variables the same way.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut config = Self::new(lookup(SECRET_ENV).unwrap_or_default());
        config.allowed_repos = lookup(ALLOWED_REPOS_ENV).map(|list| parse_repo_list(&list));
        config
    }

    /// True when runs may start for `repo` (`owner/name`).
    pub fn allows(&self, repo: &str) -> bool {
        match &self.allowed_repos {
            None => true,
            Some(list) => list.iter().any(|r| r.trim().eq_ignore_ascii_case(repo)),
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whether a secret is set is useful when diagnosing a 500; its bytes
        // (and even its length) are not anybody's business.
        let secret = if self.secret.is_empty() {
            "<empty>"
        } else {
            "<redacted>"
        };
        f.debug_struct("WebhookConfig")
            .field("secret", &secret)
            .field("allowed_repos", &self.allowed_repos)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("rerun_failed_action", &self.rerun_failed_action)
            .field("rerun_all_action", &self.rerun_all_action)
            .finish()
    }
}

/// The request headers the intake needs, already picked out of whatever
/// header map the host has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookHeaders {
    /// `X-GitHub-Event`.
    pub event: Option<String>,
    /// `X-GitHub-Delivery`.
    pub delivery: Option<String>,
    /// `X-Hub-Signature-256`. The SHA-1 `X-Hub-Signature` is deliberately
    /// not read: GitHub sends it only for compatibility.
    pub signature_256: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
}

impl WebhookHeaders {
    /// Picks the four headers out of `(name, value)` pairs, matching names
    /// case-insensitively (HTTP/2 and API Gateway lower-case them; GitHub
    /// documents them capitalised). The first occurrence of a name wins;
    /// surrounding whitespace is dropped.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut headers = Self::default();
        for (name, value) in pairs {
            let name = name.as_ref().trim();
            let slot = if name.eq_ignore_ascii_case(EVENT_HEADER) {
                &mut headers.event
            } else if name.eq_ignore_ascii_case(DELIVERY_HEADER) {
                &mut headers.delivery
            } else if name.eq_ignore_ascii_case(SIGNATURE_HEADER) {
                &mut headers.signature_256
            } else if name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER) {
                &mut headers.content_type
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(value.as_ref().trim().to_owned());
            }
        }
        headers
    }
}

/// Verifies, parses and routes one delivery.
///
/// Order matters: the size check comes first so an oversized body costs no
/// hashing; the signature comes next and nothing else (headers, JSON) is
/// looked at until it has passed, so an unauthenticated sender learns nothing
/// but "401".
pub fn intake(
    config: &WebhookConfig,
    headers: &WebhookHeaders,
    body: &[u8],
) -> Result<WebhookDecision, WebhookError> {
    if body.len() > config.max_body_bytes {
        return Err(WebhookError::TooLarge {
            size: body.len(),
            limit: config.max_body_bytes,
        });
    }
    verify_signature(&config.secret, body, headers.signature_256.as_deref())?;

    let event = required_header(headers.event.as_deref(), EVENT_HEADER)?;
    if event.len() > 64 || !event.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(WebhookError::InvalidHeader {
            header: EVENT_HEADER,
            reason: "expected an event name such as `push`",
        });
    }
    let delivery = required_header(headers.delivery.as_deref(), DELIVERY_HEADER)?;
    // The GUID becomes part of a store key (the trigger's dedupe claim), so
    // only the characters a GUID has get through.
    if delivery.len() > 128
        || !delivery
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(WebhookError::InvalidHeader {
            header: DELIVERY_HEADER,
            reason: "expected a GUID such as 72d3162e-cc78-11e3-81ab-4c9367dc0958",
        });
    }
    check_content_type(headers.content_type.as_deref())?;

    let payload: Value = serde_json::from_slice(body).map_err(json_error)?;
    if !payload.is_object() {
        return Err(WebhookError::Payload {
            event: event.to_owned(),
            field: "(body)",
            expected: "a JSON object",
        });
    }
    let delivery_ctx = route::Delivery {
        event,
        delivery,
        payload: &payload,
    };
    route::route(config, &delivery_ctx)
}

fn required_header<'a>(
    value: Option<&'a str>,
    header: &'static str,
) -> Result<&'a str, WebhookError> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(WebhookError::MissingHeader { header })
}

/// GitHub offers `application/json` and `application/x-www-form-urlencoded`
/// (the JSON inside a `payload=` form field). Only the first is accepted; the
/// error tells the user which setting to change. A missing header is taken as
/// JSON because some gateways drop it and the body is signed anyway.
fn check_content_type(content_type: Option<&str>) -> Result<(), WebhookError> {
    let Some(raw) = content_type else {
        return Ok(());
    };
    let media_type = raw.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(WebhookError::UnsupportedContentType {
            content_type: raw.chars().take(100).collect(),
        })
    }
}

fn json_error(e: serde_json::Error) -> WebhookError {
    // serde_json's Display ends with " at line L column C"; the position is
    // kept in its own fields, so drop it from the message.
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    WebhookError::Json {
        line: e.line(),
        column: e.column(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let config = WebhookConfig::new("hunter2-very-secret");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert!(format!("{:?}", WebhookConfig::new("")).contains("<empty>"));
    }

    #[test]
    fn allow_list_is_case_insensitive() {
        let mut config = WebhookConfig::new("s");
        assert!(config.allows("any/repo"));
        config.allowed_repos = Some(vec!["Codertocat/Hello-World".into()]);
        assert!(config.allows("codertocat/hello-world"));
        assert!(!config.allows("codertocat/hello"));
    }

    #[test]
    fn json_error_keeps_position_out_of_the_message() {
        let err = serde_json::from_slice::<Value>(b"{\n  \"a\": }").unwrap_err();
        let WebhookError::Json {
            line,
            column,
            message,
        } = json_error(err)
        else {
            panic!("not a Json error");
        };
        assert_eq!(line, 2);
        assert!(column > 0);
        assert!(!message.contains("at line"), "{message}");
    }

    #[test]
    fn content_type_rules() {
        assert!(check_content_type(None).is_ok());
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        let err = check_content_type(Some("application/x-www-form-urlencoded")).unwrap_err();
        assert_eq!(err.http_status(), 415);
    }
}
