//! How a host configures the GitHub side once, from the environment.
//!
//! | variable | meaning |
//! |---|---|
//! | `TESTEXEC_GITHUB_APP_ID` | the GitHub App's numeric id |
//! | `TESTEXEC_GITHUB_PRIVATE_KEY` | the App's private key, PEM (literal `\n` accepted) |
//! | `TESTEXEC_GITHUB_PRIVATE_KEY_FILE` | or a path to the `.pem` file |
//! | `TESTEXEC_GITHUB_TOKEN` (else `GITHUB_TOKEN`) | token fallback when no App is set |
//! | `TESTEXEC_GITHUB_API_URL` | API base, default `https://api.github.com` |
//! | `TESTEXEC_GITHUB_CHECK_NAME` | check run / status context name, default `testexec` |
//! | `TESTEXEC_GITHUB_DETAILS_URL` | base of the run pages; a run links to `<base>/runs/<id>` |
//! | `TESTEXEC_GITHUB_MAX_RETRY_WAIT_SECS` | time one call may spend waiting on retries, default 60 |

use std::time::Duration;

use super::auth::GithubAuth;
use crate::errors::GithubError;

pub const DEFAULT_API_BASE: &str = "https://api.github.com";
pub const DEFAULT_CHECK_NAME: &str = "testexec";

/// Retry behaviour of every API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Sleeping beyond this is left to the caller's queue: a Lambda should
    /// not idle for minutes waiting on a rate-limit reset.
    pub max_total_wait: Duration,
    /// First backoff after a 5xx or transport error; doubles each time.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// What the caller is told to wait when 5xx errors outlast the budget.
    pub requeue_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_total_wait: Duration::from_secs(60),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(16),
            requeue_after: Duration::from_secs(60),
        }
    }
}

/// Everything the GitHub client and notifier need.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    pub auth: GithubAuth,
    /// Without a trailing slash.
    pub api_base: String,
    pub check_name: String,
    /// Base of the run pages (`<base>/runs/<id>`), when a host serves them.
    pub details_base_url: Option<String>,
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    /// Per API call (JSON requests).
    pub request_timeout: Duration,
    /// Per tarball download, body included.
    pub download_timeout: Duration,
    /// Bytes a source tarball may have before the download is aborted.
    pub max_tarball_bytes: u64,
    /// Annotations sent per run; the rest are counted in the check's text.
    pub max_annotations: usize,
}

impl GithubConfig {
    /// Defaults around the given credentials.
    pub fn new(auth: GithubAuth) -> Self {
        Self {
            auth,
            api_base: DEFAULT_API_BASE.to_string(),
            check_name: DEFAULT_CHECK_NAME.to_string(),
            details_base_url: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            download_timeout: Duration::from_secs(600),
            max_tarball_bytes: 2 << 30,
            max_annotations: 1_000,
        }
    }

    /// Reads the variables listed in the module docs. Hosts that keep the
    /// key in Secrets Manager or SSM resolve it into the environment first
    /// (e.g. the Parameters and Secrets Lambda extension, or the deploy
    /// template's dynamic reference).
    pub fn from_env() -> Result<Self, GithubError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any lookup, so it can be tested
    /// without touching the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, GithubError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let auth = match get("TESTEXEC_GITHUB_APP_ID") {
            Some(id) => {
                let app_id: u64 = id.parse().map_err(|_| {
                    GithubError::Config(format!(
                        "TESTEXEC_GITHUB_APP_ID must be the App's numeric id, got `{}`",
                        id.chars().take(40).collect::<String>()
                    ))
                })?;
                let pem = match (
                    get("TESTEXEC_GITHUB_PRIVATE_KEY"),
                    get("TESTEXEC_GITHUB_PRIVATE_KEY_FILE"),
                ) {
                    (Some(pem), _) => pem,
                    (None, Some(path)) => std::fs::read_to_string(&path).map_err(|e| {
                        GithubError::Config(format!(
                            "cannot read TESTEXEC_GITHUB_PRIVATE_KEY_FILE `{path}`: {e}"
                        ))
                    })?,
                    (None, None) => {
                        return Err(GithubError::Config(
                            "TESTEXEC_GITHUB_APP_ID is set but neither TESTEXEC_GITHUB_PRIVATE_KEY nor TESTEXEC_GITHUB_PRIVATE_KEY_FILE is".into(),
                        ));
                    }
                };
                GithubAuth::App {
                    app_id,
                    private_key_pem: unescape_newlines(pem),
                }
            }
            None => match get("TESTEXEC_GITHUB_TOKEN").or_else(|| get("GITHUB_TOKEN")) {
                Some(token) => GithubAuth::Token(token),
                None => {
                    return Err(GithubError::Config(
                        "no GitHub credentials: set TESTEXEC_GITHUB_APP_ID and TESTEXEC_GITHUB_PRIVATE_KEY (GitHub App), or TESTEXEC_GITHUB_TOKEN".into(),
                    ));
                }
            },
        };
        let mut config = Self::new(auth);
        if let Some(base) = get("TESTEXEC_GITHUB_API_URL") {
            if !(base.starts_with("https://") || base.starts_with("http://")) {
                return Err(GithubError::Config(format!(
                    "TESTEXEC_GITHUB_API_URL must be an http(s) URL, got `{base}`"
                )));
            }
            config.api_base = base.trim_end_matches('/').to_string();
        }
        if let Some(name) = get("TESTEXEC_GITHUB_CHECK_NAME") {
            config.check_name = name;
        }
        config.details_base_url =
            get("TESTEXEC_GITHUB_DETAILS_URL").map(|u| u.trim_end_matches('/').to_string());
        if let Some(secs) = get("TESTEXEC_GITHUB_MAX_RETRY_WAIT_SECS") {
            let secs: u64 = secs.parse().map_err(|_| {
                GithubError::Config(format!(
                    "TESTEXEC_GITHUB_MAX_RETRY_WAIT_SECS must be a number of seconds, got `{secs}`"
                ))
            })?;
            config.retry.max_total_wait = Duration::from_secs(secs);
        }
        Ok(config)
    }
}

/// Keys pasted into a single-line variable (SSM, `.env` files) often carry
/// `\n` escapes instead of line breaks; PEM needs the real ones.
fn unescape_newlines(pem: String) -> String {
    if pem.contains('\n') {
        pem
    } else {
        pem.replace("\\n", "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn app_credentials_win_over_a_token() {
        let c = GithubConfig::from_lookup(lookup(&[
            ("TESTEXEC_GITHUB_APP_ID", "123"),
            (
                "TESTEXEC_GITHUB_PRIVATE_KEY",
                "-----BEGIN X-----\\nabc\\n-----END X-----",
            ),
            ("GITHUB_TOKEN", "ghp_x"),
            ("TESTEXEC_GITHUB_API_URL", "https://ghe.example.com/api/v3/"),
            (
                "TESTEXEC_GITHUB_DETAILS_URL",
                "https://testexec.example.com/",
            ),
        ]))
        .unwrap();
        match &c.auth {
            GithubAuth::App {
                app_id,
                private_key_pem,
            } => {
                assert_eq!(*app_id, 123);
                assert!(private_key_pem.contains("\nabc\n"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.api_base, "https://ghe.example.com/api/v3");
        assert_eq!(
            c.details_base_url.as_deref(),
            Some("https://testexec.example.com")
        );
        assert_eq!(c.check_name, "testexec");
        // The secret never shows in Debug.
        assert!(!format!("{c:?}").contains("abc"));
    }

    #[test]
    fn token_fallback_and_errors() {
        let c = GithubConfig::from_lookup(lookup(&[("GITHUB_TOKEN", "ghp_secret")])).unwrap();
        assert!(matches!(c.auth, GithubAuth::Token(_)));
        assert!(!format!("{c:?}").contains("ghp_secret"));
        assert!(GithubConfig::from_lookup(lookup(&[])).is_err());
        let e =
            GithubConfig::from_lookup(lookup(&[("TESTEXEC_GITHUB_APP_ID", "abc")])).unwrap_err();
        assert!(e.to_string().contains("numeric"));
        let e = GithubConfig::from_lookup(lookup(&[("TESTEXEC_GITHUB_APP_ID", "1")])).unwrap_err();
        assert!(e.to_string().contains("PRIVATE_KEY"));
    }
}
