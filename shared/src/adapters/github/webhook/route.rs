//! Routing a verified delivery: which events and actions start a run, and
//! the [`RunRequest`] each one becomes. Everything here reads a payload
//! whose signature has already been checked (see `verify`).

use serde_json::Value;

use super::WebhookConfig;
use crate::app::messages::RunRequest;
use crate::domain::model::{Origin, SourceRef};
use crate::errors::WebhookError;

/// A `push` whose `after` is this deleted the ref.
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

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

/// One verified delivery being routed.
pub(super) struct Delivery<'a> {
    pub(super) event: &'a str,
    pub(super) delivery: &'a str,
    pub(super) payload: &'a Value,
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

    /// `sender.login`, kept for the audit trail only when it looks like a
    /// GitHub login (letters, digits, `-`; apps end in `[bot]`): it is
    /// shown on pages, and an odd value is dropped rather than refusing a
    /// delivery that is otherwise fine.
    fn sender(&self) -> Option<String> {
        let login = self.str_at("sender.login")?;
        let name = login.strip_suffix("[bot]").unwrap_or(login);
        let plausible = !name.is_empty()
            && login.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        plausible.then(|| login.to_owned())
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
                sender: self.sender(),
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

pub(super) fn route(
    config: &WebhookConfig,
    d: &Delivery<'_>,
) -> Result<WebhookDecision, WebhookError> {
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
