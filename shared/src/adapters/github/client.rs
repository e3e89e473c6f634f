//! The HTTP side: one reqwest client, GitHub's headers, retries.
//!
//! Retry rules, in order:
//! - success → done;
//! - rate limited (429, or 403 with `Retry-After`, `x-ratelimit-remaining: 0`
//!   or a "secondary rate limit" message) → wait what GitHub asks
//!   (`Retry-After` seconds, else until `x-ratelimit-reset`, else a minute);
//! - 5xx or a transport error → exponential backoff with jitter, on
//!   `backon` (or `Retry-After`);
//! - any other 4xx → fail now with GitHub's `message`.
//!
//! Waiting is capped ([`RetryPolicy::max_total_wait`]). When the next wait
//! would cross the cap, the call fails with [`GithubError::Unavailable`] and
//! its `retry_after_secs`: the caller's queue brings the job back later, so a
//! GitHub outage delays a report instead of losing it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::{Authenticator, Secret};
use super::config::{GithubConfig, RetryPolicy};
use super::time::now_secs;
use crate::app::metrics::{self, GithubResult};
use crate::errors::GithubError;

const API_VERSION: &str = "2022-11-28";
const USER_AGENT: &str = concat!("testexec/", env!("CARGO_PKG_VERSION"));
/// Error bodies are read for their `message` only; never buffer a huge one.
const ERROR_BODY_MAX_BYTES: usize = 64 * 1024;

/// Requests with GitHub's headers and the retry rules above. No knowledge of
/// credentials beyond putting one in the header.
pub(crate) struct Transport {
    http: reqwest::Client,
    base: String,
    retry: RetryPolicy,
    request_timeout: Duration,
}

/// What one failed attempt asks of the retry loop.
enum Verdict {
    Retry {
        /// The wait GitHub asked for (`Retry-After`, the rate limit's
        /// reset), if any; else the exponential backoff decides.
        asked: Option<Duration>,
        reason: String,
        rate_limited: bool,
    },
    Fail(GithubError),
}

impl Transport {
    fn new(config: &GithubConfig) -> Result<Self, GithubError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static(API_VERSION),
        );
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .connect_timeout(config.connect_timeout)
            // Tarballs redirect to codeload; reqwest drops Authorization when
            // a redirect changes host, so the token never reaches it.
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| GithubError::Config(format!("cannot build the HTTP client: {e}")))?;
        let base = config.api_base.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(GithubError::Config(format!(
                "the API base must be an http(s) URL, got `{base}`"
            )));
        }
        Ok(Self {
            http,
            base,
            retry: config.retry,
            request_timeout: config.request_timeout,
        })
    }

    /// Sends with retries; returns the first successful response, body
    /// unread. Only idempotent-enough requests come through here: GitHub's
    /// writes we make are PATCHes of whole state, statuses (last one wins)
    /// and check-run creation (a duplicate after a lost response is the price
    /// of not losing the run; see docs/github.md).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        bearer: &Secret,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<Response, GithubError> {
        let url = format!("{}{}", self.base, path);
        let attempts = AtomicU32::new(0);
        let (method, url, attempts_ref) = (&method, &url, &attempts);
        let once = move || async move {
            attempts_ref.fetch_add(1, Ordering::Relaxed);
            let mut req = self
                .http
                .request(method.clone(), url)
                .header(AUTHORIZATION, format!("Bearer {}", bearer.expose()))
                .timeout(timeout.unwrap_or(self.request_timeout));
            if let Some(body) = body {
                req = req.json(body);
            }
            // Every attempt counts, so retries and rate limits show.
            let verdict = match req.send().await {
                Ok(resp) if resp.status().is_success() => Ok(resp),
                Ok(resp) => Err(self.judge(method, path, resp).await),
                Err(e) => Err(Verdict::Retry {
                    asked: None,
                    // reqwest's Display names the URL, never headers.
                    reason: format!("transport error: {e}"),
                    rate_limited: false,
                }),
            };
            metrics::github_request(match &verdict {
                Ok(_) => GithubResult::Ok,
                Err(Verdict::Retry {
                    rate_limited: true, ..
                }) => GithubResult::RateLimited,
                Err(_) => GithubResult::Error,
            });
            verdict
        };
        let mut waited = Duration::ZERO;
        let budget = self.retry.max_total_wait;
        let outcome = once
            .retry(retry_backoff(&self.retry))
            .when(|v| matches!(v, Verdict::Retry { .. }))
            .adjust(|v, backoff| match v {
                Verdict::Retry { asked, .. } => {
                    let wait = plan_wait(*asked, backoff, waited, budget)?;
                    waited += wait;
                    Some(wait)
                }
                Verdict::Fail(_) => None,
            })
            .notify(|v, wait| {
                if let Verdict::Retry {
                    rate_limited: true,
                    ..
                } = v
                {
                    metrics::github_rate_limit_wait(wait);
                }
                if let Verdict::Retry { reason, .. } = v {
                    let attempt = attempts.load(Ordering::Relaxed);
                    tracing::warn!(%method, path, attempt, wait_ms = wait.as_millis() as u64, reason = %reason, "GitHub API call will be retried");
                }
            })
            .await;
        match outcome {
            Ok(resp) => Ok(resp),
            Err(Verdict::Fail(e)) => Err(e),
            Err(Verdict::Retry {
                asked,
                reason,
                rate_limited,
            }) => {
                // A rate limit says when it lifts; an outage does not.
                let retry_after = match (rate_limited, asked) {
                    (true, Some(asked)) => asked,
                    _ => self.retry.requeue_after,
                };
                Err(GithubError::Unavailable {
                    method: method.to_string(),
                    path: path.to_string(),
                    attempts: attempts.load(Ordering::Relaxed),
                    last: reason,
                    retry_after_secs: retry_after.as_secs().max(1),
                })
            }
        }
    }

    /// Sends and parses the JSON answer (`Null` for an empty body).
    pub(crate) async fn json(
        &self,
        method: Method,
        path: &str,
        bearer: &Secret,
        body: Option<&Value>,
    ) -> Result<Value, GithubError> {
        let resp = self.send(method.clone(), path, bearer, body, None).await?;
        let bytes = resp.bytes().await.map_err(|e| GithubError::Decode {
            method: method.to_string(),
            path: path.to_string(),
            message: format!("reading the body failed: {e}"),
        })?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| GithubError::Decode {
            method: method.to_string(),
            path: path.to_string(),
            message: format!("invalid JSON: {e}"),
        })
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        value: Value,
    ) -> Result<T, GithubError> {
        serde_json::from_value(value).map_err(|e| GithubError::Decode {
            method: method.to_string(),
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    async fn judge(&self, method: &Method, path: &str, resp: Response) -> Verdict {
        let status = resp.status();
        let headers = resp.headers().clone();
        let retry_after = header_u64(&headers, "retry-after").map(Duration::from_secs);
        let exhausted = headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        let reset_wait = header_u64(&headers, "x-ratelimit-reset")
            .map(|reset| Duration::from_secs(reset.saturating_sub(now_secs()).max(1)));
        let (message, documentation_url) = error_message(resp).await;

        let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (retry_after.is_some()
                    || exhausted
                    || message.to_ascii_lowercase().contains("rate limit")));
        if rate_limited {
            // GitHub's guidance: Retry-After first, then the reset time when
            // the quota is spent, else (secondary limits) at least a minute.
            let wait = retry_after
                .or(if exhausted { reset_wait } else { None })
                .unwrap_or(Duration::from_secs(60));
            return Verdict::Retry {
                asked: Some(wait),
                reason: format!("rate limited ({status}): {message}"),
                rate_limited: true,
            };
        }
        if status.is_server_error() {
            return Verdict::Retry {
                asked: retry_after,
                reason: format!("{status}: {message}"),
                rate_limited: false,
            };
        }
        Verdict::Fail(GithubError::Api {
            method: method.to_string(),
            path: path.to_string(),
            status: status.as_u16(),
            message,
            documentation_url,
        })
    }
}

/// The waits between attempts when GitHub names none (5xx, transport
/// errors): `base_backoff` doubling up to `max_backoff`, each drawn from the
/// upper half of its step so that callers failing together do not retry
/// together; one fewer than `max_attempts`. Running out ends the retries
/// even where GitHub did name a wait.
fn retry_backoff(policy: &RetryPolicy) -> ExponentialBuilder {
    crate::adapters::retry::jittered(
        policy.base_backoff,
        policy.max_backoff,
        policy.max_attempts.saturating_sub(1) as usize,
    )
}

/// The wait before the next attempt, or `None` to stop: none when the
/// attempts are used up (`backoff` is `None`), else what GitHub asked for,
/// else the backoff; and none if it would take the total past `budget`
/// ([`RetryPolicy::max_total_wait`]).
fn plan_wait(
    asked: Option<Duration>,
    backoff: Option<Duration>,
    waited: Duration,
    budget: Duration,
) -> Option<Duration> {
    let backoff = backoff?;
    let wait = asked.unwrap_or(backoff);
    (waited + wait <= budget).then_some(wait)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// GitHub's `{"message", "documentation_url"}`, or the start of whatever
/// else came back (proxies answer with HTML).
async fn error_message(mut resp: Response) -> (String, Option<String>) {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = ERROR_BODY_MAX_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ERROR_BODY_MAX_BYTES {
            break;
        }
    }
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) {
        let message = map
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string);
        let doc = map
            .get("documentation_url")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(mut message) = message {
            // Validation failures (422) put the specifics in `errors`.
            if let Some(errors) = map.get("errors").filter(|e| !e.is_null()) {
                let _ = write!(message, " ({})", truncate_chars(&errors.to_string(), 500));
            }
            return (message, doc);
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() {
        ("no error message".to_string(), None)
    } else {
        (truncate_chars(text, 200), None)
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `owner/name` with GitHub's allowed characters only, so it can go into a
/// URL path as is (and cannot climb to another endpoint).
pub(crate) fn check_repo(repo: &str) -> Result<(), GithubError> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p != "."
            && p != ".."
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    };
    match repo.split_once('/') {
        Some((owner, name)) if ok_part(owner) && ok_part(name) => Ok(()),
        _ => Err(GithubError::InvalidInput {
            what: "repository (expected `owner/name`)",
            value: truncate_chars(repo, 100),
        }),
    }
}

/// A commit SHA: hex, 40 (SHA-1) or 64 (SHA-256) characters.
pub(crate) fn check_sha(sha: &str) -> Result<(), GithubError> {
    if matches!(sha.len(), 40 | 64) && sha.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(GithubError::InvalidInput {
            what: "commit SHA (expected 40 hex characters)",
            value: truncate_chars(sha, 80),
        })
    }
}

/// The GitHub API client: transport plus credentials. Build one per host
/// and share it (behind an `Arc`) between [`GithubSource`] and
/// [`GithubNotifier`], so they share the installation-token cache.
///
/// [`GithubSource`]: super::tarball::GithubSource
/// [`GithubNotifier`]: super::notifier::GithubNotifier
#[derive(Debug)]
pub struct GithubClient {
    pub(crate) transport: Transport,
    pub(crate) auth: Authenticator,
    pub(crate) config: GithubConfig,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base)
            .finish()
    }
}

impl GithubClient {
    pub fn new(config: GithubConfig) -> Result<Self, GithubError> {
        Ok(Self {
            transport: Transport::new(&config)?,
            auth: Authenticator::new(&config.auth)?,
            config,
        })
    }

    pub fn config(&self) -> &GithubConfig {
        &self.config
    }

    /// True when check runs are available (App credentials).
    pub fn is_app(&self) -> bool {
        self.auth.is_app()
    }

    /// The credential for calls on `repo`.
    pub async fn token_for(
        &self,
        repo: &str,
        installation: Option<u64>,
    ) -> Result<Secret, GithubError> {
        check_repo(repo)?;
        self.auth
            .token_for(&self.transport, repo, installation)
            .await
    }

    /// A JSON call on behalf of `repo`'s installation.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        repo: &str,
        installation: Option<u64>,
        body: Option<&Value>,
    ) -> Result<Value, GithubError> {
        let token = self.token_for(repo, installation).await?;
        self.transport.json(method, path, &token, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use backon::BackoffBuilder;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_keeps_the_policys_attempts_and_caps() {
        let fast = RetryPolicy {
            max_attempts: 7,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            ..RetryPolicy::default()
        };
        for policy in [RetryPolicy::default(), fast] {
            for _ in 0..100 {
                let waits: Vec<_> = retry_backoff(&policy).build().collect();
                crate::adapters::retry::assert_jittered(
                    &waits,
                    policy.base_backoff,
                    policy.max_backoff,
                    policy.max_attempts as usize - 1,
                );
            }
        }
        // The defaults: 4 waits between 5 attempts, in [0.5, 1) s, [1, 2) s,
        // [2, 4) s and [4, 8) s.
        let waits: Vec<_> = retry_backoff(&RetryPolicy::default()).build().collect();
        assert_eq!(waits.len(), 4);
        assert!(waits[3] >= SEC * 4 - Duration::from_micros(1) && waits[3] <= SEC * 8);
    }

    #[test]
    fn githubs_wait_wins_within_the_attempts_and_the_budget() {
        let budget = SEC * 60;
        // 5xx or transport error: the backoff.
        assert_eq!(
            plan_wait(None, Some(SEC), Duration::ZERO, budget),
            Some(SEC)
        );
        // Retry-After / x-ratelimit-reset over the backoff.
        assert_eq!(
            plan_wait(Some(SEC * 30), Some(SEC), Duration::ZERO, budget),
            Some(SEC * 30)
        );
        // Attempts used up: no wait, whatever GitHub asked.
        assert_eq!(plan_wait(Some(SEC), None, Duration::ZERO, budget), None);
        assert_eq!(plan_wait(None, None, Duration::ZERO, budget), None);
        // The total may reach the budget, not cross it.
        assert_eq!(
            plan_wait(None, Some(SEC * 16), SEC * 44, budget),
            Some(SEC * 16)
        );
        assert_eq!(plan_wait(None, Some(SEC * 16), SEC * 45, budget), None);
        assert_eq!(
            plan_wait(Some(SEC * 1800), Some(SEC), Duration::ZERO, budget),
            None
        );
    }

    #[test]
    fn repo_and_sha_validation() {
        assert!(check_repo("octo-org/hello.world_2").is_ok());
        for bad in ["", "x", "a/b/c", "../x", "a/..", "a /b", "a/b?x=1", "a/"] {
            assert!(check_repo(bad).is_err(), "{bad}");
        }
        assert!(check_sha(&"a".repeat(40)).is_ok());
        assert!(check_sha("abc").is_err());
        assert!(check_sha(&"g".repeat(40)).is_err());
    }
}
