//! Verifying and routing GitHub webhook deliveries.
//!
//! [`intake`] is the whole front door for a delivery: it bounds the body,
//! proves the body was signed with our secret, checks the headers, parses the
//! JSON and turns the event into a [`WebhookDecision`]. It does no I/O, so
//! every host (Lambda, Cloud Run, Container Apps, `testexec serve`) answers
//! the same way and GitHub's 10-second budget is spent only on the trigger.
//!
//! Dedupe is not done here: a [`RunRequest`] carries the `X-GitHub-Delivery`
//! GUID as `delivery_id`, and the trigger claims it in the run store, so a
//! redelivery of the same GUID starts nothing.

use std::fmt;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::app::messages::RunRequest;
use crate::domain::model::{Origin, SourceRef};
use crate::errors::WebhookError;

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

/// A `push` whose `after` is this deleted the ref.
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

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

/// What to do with a verified delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookDecision {
    /// A `ping` (sent when the hook is created): answer 200, start nothing.
    Pong {
        zen: Option<String>,
        hook_id: Option<u64>,
    },
    /// Start a run: hand the request to the trigger.
    Start(RunRequest),
    /// The "re-run failed tests" button on one of our check runs. The caller
    /// looks up `previous_run`'s failures, fills `request.only_tests` with
    /// them and hands the request to the trigger (or starts the whole suite
    /// when the previous run is unknown).
    RerunFailed {
        request: RunRequest,
        /// Our run id, read from the check run's `external_id` (where the
        /// report stores it); `None` when that is empty.
        previous_run: Option<String>,
        check_run_id: u64,
    },
    /// A genuine delivery that starts nothing; `reason` is for the response
    /// body, which GitHub shows in the hook's delivery log.
    Ignored { reason: String },
}

impl WebhookDecision {
    /// The HTTP status a host should answer with. Work is started after the
    /// answer, hence 202 for runs; ignored deliveries are 202 as well so that
    /// GitHub does not list them as failed deliveries.
    pub fn http_status(&self) -> u16 {
        match self {
            WebhookDecision::Pong { .. } => 200,
            WebhookDecision::Start(_)
            | WebhookDecision::RerunFailed { .. }
            | WebhookDecision::Ignored { .. } => 202,
        }
    }
}

/// What a host does with a [`WebhookDecision`]: answer at once, or start a
/// run (queue it, then answer 202).
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookAction {
    Reply { status: u16, body: Value },
    Start(Box<RunRequest>),
}

impl WebhookDecision {
    /// The answer or the run request, the same for every host: pings get
    /// 200 `{"pong": zen}`, ignored deliveries 202 `{"ignored": reason}`, and
    /// a "re-run failed" click that names no run of ours is ignored.
    pub fn into_action(self) -> WebhookAction {
        let ignored = |reason: &str| WebhookAction::Reply {
            status: 202,
            body: serde_json::json!({ "ignored": reason }),
        };
        match self {
            WebhookDecision::Pong { zen, .. } => WebhookAction::Reply {
                status: 200,
                body: serde_json::json!({ "pong": zen }),
            },
            WebhookDecision::Ignored { reason } => ignored(&reason),
            WebhookDecision::Start(request) => WebhookAction::Start(Box::new(request)),
            WebhookDecision::RerunFailed {
                mut request,
                previous_run,
                ..
            } => match previous_run
                .as_deref()
                .map(str::parse::<crate::domain::model::RunId>)
            {
                Some(Ok(previous)) => {
                    request.rerun_failed_of = Some(previous);
                    WebhookAction::Start(Box::new(request))
                }
                _ => ignored("the check run names no testexec run to rerun"),
            },
        }
    }
}

/// Checks `X-Hub-Signature-256` (`header`) against the raw `body`.
///
/// The comparison is constant-time (`Mac::verify_slice`), so response timing
/// does not reveal how much of a forged digest was right. An empty secret is
/// refused rather than used: HMAC with an empty key is something anyone can
/// compute.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::NoSecret);
    }
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(WebhookError::MissingSignature)?;
    let digest_hex = header
        .strip_prefix("sha256=")
        .ok_or(WebhookError::MalformedSignature {
            reason: "it does not start with `sha256=`",
        })?;
    let expected = decode_hex_digest(digest_hex)?;
    // HMAC accepts keys of any length, so this cannot fail; mapping the error
    // keeps the function free of panics all the same.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::NoSecret)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::SignatureMismatch)
}

/// The `X-Hub-Signature-256` value GitHub would send for `body`: for tests,
/// local e2e scripts and tools that replay deliveries against `serve`.
pub fn signature_header(secret: &[u8], body: &[u8]) -> String {
    // Any key length is valid for HMAC; an empty one yields the empty-key MAC,
    // which `verify_signature` refuses anyway.
    let digest = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            mac.finalize().into_bytes()
        }
        Err(_) => return String::from("sha256="),
    };
    format!("sha256={}", hex::encode(digest))
}

/// Decodes the 64 hex digits of a SHA-256 digest (either case).
fn decode_hex_digest(digest: &str) -> Result<[u8; 32], WebhookError> {
    if digest.len() != 64 {
        return Err(WebhookError::MalformedSignature {
            reason: "the digest is not 64 hex digits long",
        });
    }
    let mut out = [0u8; 32];
    // With the length right, the only error left is a non-hex character
    // (a multi-byte one included: `hex` works on bytes).
    hex::decode_to_slice(digest, &mut out).map_err(|_| WebhookError::MalformedSignature {
        reason: "the digest contains a character that is not a hex digit",
    })?;
    Ok(out)
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
    let delivery_ctx = Delivery {
        event,
        delivery,
        payload: &payload,
    };
    route(config, &delivery_ctx)
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

/// One verified delivery being routed.
struct Delivery<'a> {
    event: &'a str,
    delivery: &'a str,
    payload: &'a Value,
}

impl<'a> Delivery<'a> {
    /// The value at a dotted path such as `pull_request.head.sha`.
    fn get(&self, path: &str) -> Option<&'a Value> {
        path.split('.')
            .try_fold(self.payload, |value, key| value.get(key))
    }

    fn str_at(&self, path: &str) -> Option<&'a str> {
        self.get(path).and_then(Value::as_str)
    }

    fn missing(&self, field: &'static str, expected: &'static str) -> WebhookError {
        WebhookError::Payload {
            event: self.event.to_owned(),
            field,
            expected,
        }
    }

    fn required_str(&self, field: &'static str) -> Result<&'a str, WebhookError> {
        self.str_at(field)
            .ok_or_else(|| self.missing(field, "a string"))
    }

    fn required_u64(&self, field: &'static str) -> Result<u64, WebhookError> {
        self.get(field)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.missing(field, "a positive integer"))
    }

    /// A commit SHA: it ends up in API paths and blob keys, so it must look
    /// like one (SHA-1, or SHA-256 for repositories that use it).
    fn required_sha(&self, field: &'static str) -> Result<String, WebhookError> {
        let sha = self.str_at(field).unwrap_or("");
        if (sha.len() == 40 || sha.len() == 64) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(sha.to_ascii_lowercase())
        } else {
            Err(self.missing(field, "a 40-hex-digit commit SHA"))
        }
    }

    /// `repository.full_name`, checked to be `owner/name` with the
    /// characters GitHub allows: it becomes part of store and blob keys.
    fn repo(&self) -> Result<&'a str, WebhookError> {
        const FIELD: &str = "repository.full_name";
        let name = self.str_at(FIELD).unwrap_or("");
        let valid = name.split_once('/').is_some_and(|(owner, repo)| {
            !owner.is_empty()
                && owner.len() <= 39
                && owner
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !repo.is_empty()
                && repo.len() <= 100
                && repo != "."
                && repo != ".."
                && repo
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
        if valid {
            Ok(name)
        } else {
            Err(self.missing(FIELD, "an `owner/name` repository name"))
        }
    }

    /// A git ref taken from the payload, bounded and free of control
    /// characters because it is shown in reports and logs.
    fn checked_ref(&self, field: &'static str, git_ref: &str) -> Result<String, WebhookError> {
        if git_ref.is_empty()
            || git_ref.len() > 1024
            || git_ref.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err(self.missing(field, "a git ref"));
        }
        Ok(git_ref.to_owned())
    }

    /// `refs/heads/<branch>` from a bare branch name field that GitHub may
    /// send as `null` (e.g. a check suite for a commit no branch points at).
    fn branch_ref(&self, field: &'static str) -> Result<Option<String>, WebhookError> {
        match self.str_at(field) {
            Some(branch) if !branch.is_empty() => self
                .checked_ref(field, &format!("refs/heads/{branch}"))
                .map(Some),
            _ => Ok(None),
        }
    }

    fn installation_id(&self) -> Option<u64> {
        self.get("installation.id").and_then(Value::as_u64)
    }

    fn action(&self) -> Result<&'a str, WebhookError> {
        self.required_str("action")
    }

    /// The normalised request every run-starting event produces.
    fn request(&self, repo: &str, commit: String, git_ref: Option<String>) -> RunRequest {
        RunRequest {
            source: SourceRef {
                repo: repo.to_owned(),
                commit: Some(commit),
                git_ref,
                path: None,
            },
            origin: Origin::GitHub {
                event: self.event.to_owned(),
                delivery: self.delivery.to_owned(),
                installation_id: self.installation_id(),
                check_run_id: None,
            },
            suite: None,
            shards: None,
            only_tests: Vec::new(),
            rerun_failed_of: None,
            delivery_id: Some(self.delivery.to_owned()),
            run_id: None,
        }
    }
}

fn ignored(reason: impl Into<String>) -> WebhookDecision {
    WebhookDecision::Ignored {
        reason: reason.into(),
    }
}

/// "`event` action `x` does not start a run", with the action shortened:
/// it is free text for some events (`repository_dispatch`).
fn ignored_action(event: &str, action: &str) -> WebhookDecision {
    let action: String = action.chars().take(64).collect();
    ignored(format!("`{event}` action `{action}` does not start a run"))
}

fn route(config: &WebhookConfig, d: &Delivery<'_>) -> Result<WebhookDecision, WebhookError> {
    if d.event == "ping" {
        // Answered whatever the allow-list says: GitHub sends it when the hook
        // is created, and a 200 is how the user sees the setup works.
        return Ok(WebhookDecision::Pong {
            zen: d.str_at("zen").map(str::to_owned),
            hook_id: d.get("hook_id").and_then(Value::as_u64),
        });
    }
    // The allow-list is applied before anything else in the payload is
    // interpreted. A repository not on it gets `Ignored` (202), not 403: the
    // delivery is genuine, and an App installed on "all repositories" would
    // otherwise fill its delivery log with failures for a deliberate choice.
    // (No let-chains: the workspace's MSRV is 1.85.)
    if config.allowed_repos.is_some() {
        if let Some(repo) = d.str_at("repository.full_name") {
            if !config.allows(repo) {
                let repo: String = repo.chars().take(140).collect();
                return Ok(ignored(format!("repository not allowed: {repo}")));
            }
        }
    }
    match d.event {
        "push" => route_push(d),
        "pull_request" => route_pull_request(d),
        "check_suite" => route_check_suite(d),
        "check_run" => route_check_run(config, d),
        "merge_group" => route_merge_group(d),
        other => Ok(ignored(format!("event `{other}` does not start a run"))),
    }
}

fn route_push(d: &Delivery<'_>) -> Result<WebhookDecision, WebhookError> {
    let git_ref = d.required_str("ref")?;
    let after = d.required_str("after")?;
    // `before` = zeros (a new branch) is an ordinary run: the branch's first
    // commit deserves testing like any other.
    if d.get("deleted").and_then(Value::as_bool) == Some(true) || after == ZERO_SHA {
        return Ok(ignored(format!(
            "push deletes `{}`; there is nothing to test",
            short(git_ref)
        )));
    }
    if git_ref.starts_with("refs/tags/") {
        return Ok(ignored(format!(
            "push of tag `{}`; tags are not tested (their commit was tested on its branch)",
            short(git_ref)
        )));
    }
    if !git_ref.starts_with("refs/heads/") {
        return Ok(ignored(format!(
            "push to `{}`, which is not a branch",
            short(git_ref)
        )));
    }
    let repo = d.repo()?;
    let commit = d.required_sha("after")?;
    let git_ref = d.checked_ref("ref", git_ref)?;
    Ok(WebhookDecision::Start(d.request(
        repo,
        commit,
        Some(git_ref),
    )))
}

fn route_pull_request(d: &Delivery<'_>) -> Result<WebhookDecision, WebhookError> {
    let action = d.action()?;
    if !matches!(action, "opened" | "synchronize" | "reopened") {
        return Ok(ignored_action(d.event, action));
    }
    // The run is for the base repository: its webhook, its installation,
    // its check runs. The head SHA is what gets tested; for a fork PR that
    // commit lives in the fork, but GitHub also exposes it in the base
    // repository as `refs/pull/<n>/head`, and check runs are bound to the
    // head SHA, so the report lands on the PR either way.
    let repo = d.repo()?;
    let commit = d.required_sha("pull_request.head.sha")?;
    let head_branch = d.required_str("pull_request.head.ref")?;
    // `head.repo` is null when the fork was deleted; treat that as a fork.
    let same_repo = d
        .str_at("pull_request.head.repo.full_name")
        .is_some_and(|head| head.eq_ignore_ascii_case(repo));
    let git_ref = if same_repo {
        d.checked_ref(
            "pull_request.head.ref",
            &format!("refs/heads/{head_branch}"),
        )?
    } else {
        // The fork's branch name means nothing in the base repository.
        let number = d.required_u64("pull_request.number")?;
        format!("refs/pull/{number}/head")
    };
    Ok(WebhookDecision::Start(d.request(
        repo,
        commit,
        Some(git_ref),
    )))
}

fn route_check_suite(d: &Delivery<'_>) -> Result<WebhookDecision, WebhookError> {
    let action = d.action()?;
    if !matches!(action, "requested" | "rerequested") {
        return Ok(ignored_action(d.event, action));
    }
    let repo = d.repo()?;
    let commit = d.required_sha("check_suite.head_sha")?;
    let git_ref = d.branch_ref("check_suite.head_branch")?;
    Ok(WebhookDecision::Start(d.request(repo, commit, git_ref)))
}

fn route_check_run(
    config: &WebhookConfig,
    d: &Delivery<'_>,
) -> Result<WebhookDecision, WebhookError> {
    let action = d.action()?;
    match action {
        "rerequested" => {
            let request = check_run_request(d)?;
            Ok(WebhookDecision::Start(request))
        }
        "requested_action" => {
            let identifier = d.required_str("requested_action.identifier")?;
            if identifier == config.rerun_failed_action {
                let request = check_run_request(d)?;
                let check_run_id = d.required_u64("check_run.id")?;
                let previous_run = d
                    .str_at("check_run.external_id")
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned);
                Ok(WebhookDecision::RerunFailed {
                    request,
                    previous_run,
                    check_run_id,
                })
            } else if identifier == config.rerun_all_action {
                Ok(WebhookDecision::Start(check_run_request(d)?))
            } else {
                // Another app's button, or one we no longer offer.
                let identifier: String = identifier.chars().take(64).collect();
                Ok(ignored(format!(
                    "requested action `{identifier}` is not one of ours (`{}`, `{}`)",
                    config.rerun_failed_action, config.rerun_all_action
                )))
            }
        }
        other => Ok(ignored_action(d.event, other)),
    }
}

fn check_run_request(d: &Delivery<'_>) -> Result<RunRequest, WebhookError> {
    let repo = d.repo()?;
    let commit = d.required_sha("check_run.head_sha")?;
    let git_ref = d.branch_ref("check_run.check_suite.head_branch")?;
    Ok(d.request(repo, commit, git_ref))
}

/// A merge queue asks for checks on the temporary merge commit; a required
/// check that never reports would stall the queue, so it is run like a push.
fn route_merge_group(d: &Delivery<'_>) -> Result<WebhookDecision, WebhookError> {
    let action = d.action()?;
    if action != "checks_requested" {
        return Ok(ignored_action(d.event, action));
    }
    let repo = d.repo()?;
    let commit = d.required_sha("merge_group.head_sha")?;
    let head_ref = d.required_str("merge_group.head_ref")?;
    let git_ref = d.checked_ref("merge_group.head_ref", head_ref)?;
    Ok(WebhookDecision::Start(d.request(
        repo,
        commit,
        Some(git_ref),
    )))
}

/// Refs are echoed in reasons; keep those short.
fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        signature_header(secret, body)
    }

    #[test]
    fn hex_digest_decodes_both_cases() {
        let lower = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let upper = lower.to_ascii_uppercase();
        assert_eq!(decode_hex_digest(lower), decode_hex_digest(&upper));
        let bytes = decode_hex_digest(lower).unwrap();
        assert_eq!(bytes[0], 0x75);
        assert_eq!(bytes[31], 0x17);
    }

    #[test]
    fn hex_digest_rejects_bad_input() {
        let (g64, z63, z65) = ("g".repeat(64), "0".repeat(63), "0".repeat(65));
        let cases: [&str; 5] = ["", "75", &g64, &z63, &z65];
        for bad in cases {
            assert!(matches!(
                decode_hex_digest(bad),
                Err(WebhookError::MalformedSignature { .. })
            ));
        }
        let reason = |digest: &str| match decode_hex_digest(digest) {
            Err(WebhookError::MalformedSignature { reason }) => reason,
            other => panic!("{digest:?} must be malformed, got {other:?}"),
        };
        assert!(reason(&z63).contains("64 hex digits long"));
        assert!(reason(&g64).contains("not a hex digit"));
        assert!(reason(&"é".repeat(32)).contains("not a hex digit"));
        // Multi-byte characters must not split a pair or panic.
        assert!(decode_hex_digest(&"é".repeat(32)).is_err());
    }

    #[test]
    fn empty_secret_is_refused_even_with_a_matching_signature() {
        let header = sign(b"", b"{}");
        assert_eq!(
            verify_signature(b"", b"{}", Some(&header)),
            Err(WebhookError::NoSecret)
        );
    }

    #[test]
    fn signature_header_whitespace_is_tolerated() {
        let header = format!("  {}  ", sign(b"k", b"body"));
        assert_eq!(verify_signature(b"k", b"body", Some(&header)), Ok(()));
        assert_eq!(
            verify_signature(b"k", b"body", Some("   ")),
            Err(WebhookError::MissingSignature)
        );
    }

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
