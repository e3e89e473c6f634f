//! The run request people write by hand: the body of `POST /runs`, the
//! input of a schedule target and a direct (console) invocation all share
//! one shape, so one page of docs covers them.
//!
//! ```json
//! {"repo": "owner/name", "ref": "main", "suite": "unit"}
//! {"repo": "owner/name", "commit": "<40 hex>", "shards": 4}
//! {"repo": "demo"}   // a repository the host was given at start (serve's PATH, TESTEXEC_LOCAL_REPOS)
//! ```
//!
//! A request never names a directory: a host that runs local checkouts is
//! given them at start, by name ([`SourcePolicy::local_repos`]). Anything
//! else would let whoever reaches the port run any directory's manifest
//! command.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::app::messages::RunRequest;
use crate::domain::model::{Origin, SourceRef};
use crate::errors::EventError;

/// Most shards a request may ask for (the handler caps again by settings).
const MAX_SHARDS: u32 = 1000;
const MAX_REF_LEN: usize = 255;
const MAX_SUITE_LEN: usize = 128;
const MAX_ONLY_TESTS: usize = 10_000;

/// The hand-written run request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// `owner/name` on GitHub (or a label for a local path).
    #[serde(default)]
    pub repo: Option<String>,
    /// Branch or tag; resolved to a commit when the run starts.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// A commit SHA; wins over `ref`.
    #[serde(default)]
    pub commit: Option<String>,
    /// Refused with a hint: requests name repositories, never directories.
    /// Kept as a field so the error can say so instead of "unknown field".
    #[serde(default)]
    pub path: Option<serde_json::Value>,
    #[serde(default)]
    pub suite: Option<String>,
    #[serde(default)]
    pub shards: Option<u32>,
    #[serde(default)]
    pub only_tests: Vec<String>,
}

/// Which sources a host lets requests name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePolicy {
    /// `owner/name` allow-list (case-insensitive); `None` allows all.
    pub allowed_repos: Option<Vec<String>>,
    /// Local checkouts the host was given at start, by the name requests
    /// use for them (`testexec serve`'s PATH, `TESTEXEC_LOCAL_REPOS`).
    pub local_repos: BTreeMap<String, PathBuf>,
}

impl SourcePolicy {
    pub fn allows(&self, repo: &str) -> bool {
        match &self.allowed_repos {
            None => true,
            Some(list) => list.iter().any(|r| r.trim().eq_ignore_ascii_case(repo)),
        }
    }

    /// Parses `TESTEXEC_LOCAL_REPOS`: `name=/abs/path` pairs, comma-separated.
    pub fn parse_local_repos(list: &str) -> Result<BTreeMap<String, PathBuf>, EventError> {
        let mut out = BTreeMap::new();
        for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, path) = pair.split_once('=').ok_or_else(|| {
                bad(format!(
                    "`{pair}` in the local repository list is not `name=/absolute/path`"
                ))
            })?;
            let (name, path) = (name.trim(), PathBuf::from(path.trim()));
            check_local_name(name)?;
            if !path.is_absolute() {
                return Err(bad(format!(
                    "local repository `{name}` must name an absolute path, got `{}`",
                    path.display()
                )));
            }
            out.insert(name.to_string(), path);
        }
        Ok(out)
    }

    fn local_names(&self) -> String {
        if self.local_repos.is_empty() {
            "none is configured".into()
        } else {
            let names: Vec<&str> = self.local_repos.keys().map(String::as_str).collect();
            format!("configured: {}", names.join(", "))
        }
    }
}

/// A local repository's name: what a URL or a log line can carry as is.
pub fn check_local_name(name: &str) -> Result<(), EventError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "local repository name `{}` must be 1-100 letters, digits, `-`, `_` or `.`",
            name.chars().take(80).collect::<String>()
        )))
    }
}

fn bad(message: impl Into<String>) -> EventError {
    EventError::BadRunRequest(message.into())
}

const SHAPE: &str = r#"expected {"repo": "owner/name", "ref": "main", "commit": "<sha>", "suite": "unit", "shards": 4} (all but repo optional)"#;

impl StartRun {
    /// Parses a JSON body; an empty body is refused (a run needs a repo).
    pub fn parse(bytes: &[u8]) -> Result<Self, EventError> {
        serde_json::from_slice(bytes).map_err(|e| bad(format!("{e}; {SHAPE}")))
    }

    /// Parses an already decoded JSON value (schedule input, direct invoke).
    pub fn from_value(value: serde_json::Value) -> Result<Self, EventError> {
        serde_json::from_value(value).map_err(|e| bad(format!("{e}; {SHAPE}")))
    }

    /// Checks every field and builds the trigger's request.
    pub fn into_request(
        self,
        origin: Origin,
        policy: &SourcePolicy,
    ) -> Result<RunRequest, EventError> {
        if let Some(suite) = &self.suite {
            if suite.is_empty()
                || suite.len() > MAX_SUITE_LEN
                || suite.chars().any(char::is_control)
            {
                return Err(bad(format!(
                    "`suite` must be a suite name of 1..={MAX_SUITE_LEN} characters"
                )));
            }
        }
        if let Some(n) = self.shards {
            if n == 0 || n > MAX_SHARDS {
                return Err(bad(format!(
                    "`shards` must be between 1 and {MAX_SHARDS}, got {n}"
                )));
            }
        }
        if self.only_tests.len() > MAX_ONLY_TESTS {
            return Err(bad(format!(
                "`only_tests` lists {} selectors, over the limit of {MAX_ONLY_TESTS}",
                self.only_tests.len()
            )));
        }
        if self.path.is_some() {
            return Err(bad(format!(
                "`path` is not accepted: name a repository with `repo` instead (local repositories are given to the host at start; {})",
                policy.local_names()
            )));
        }
        let repo = self
            .repo
            .ok_or_else(|| bad(format!("`repo` is required; {SHAPE}")))?;
        let source = if let Some(dir) = policy.local_repos.get(&repo) {
            if self.commit.is_some() || self.git_ref.is_some() {
                return Err(bad(format!(
                    "`{repo}` is a local checkout: it runs as it is on disk, so `ref` and `commit` do not apply"
                )));
            }
            let mut local = RunRequest::local(dir).source;
            local.repo = format!("local/{repo}");
            local
        } else {
            if !repo.contains('/') && !policy.local_repos.is_empty() {
                return Err(bad(format!(
                    "no repository `{}` here ({})",
                    repo.chars().take(80).collect::<String>(),
                    policy.local_names()
                )));
            }
            check_repo(&repo)?;
            if !policy.allows(&repo) {
                return Err(bad(format!(
                    "repository `{repo}` is not in TESTEXEC_ALLOWED_REPOS"
                )));
            }
            if let Some(commit) = &self.commit {
                if !(7..=64).contains(&commit.len())
                    || !commit.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(bad("`commit` must be a hexadecimal commit SHA"));
                }
            }
            if let Some(r) = &self.git_ref {
                check_ref(r)?;
            }
            if self.commit.is_none() && self.git_ref.is_none() {
                return Err(bad("name a `ref` (e.g. \"main\") or a `commit`"));
            }
            SourceRef {
                repo,
                commit: self.commit,
                git_ref: self.git_ref,
                path: None,
            }
        };
        Ok(RunRequest {
            source,
            origin,
            suite: self.suite,
            shards: self.shards,
            only_tests: self.only_tests,
            rerun_failed_of: None,
            delivery_id: None,
            run_id: None,
        })
    }
}

/// `owner/name`: two segments of the characters GitHub allows.
fn check_repo(repo: &str) -> Result<(), EventError> {
    let ok_segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    match repo.split_once('/') {
        Some((owner, name)) if ok_segment(owner) && ok_segment(name) => Ok(()),
        _ => Err(bad(format!(
            "`repo` must be `owner/name`, got `{}`",
            repo.chars().take(80).collect::<String>()
        ))),
    }
}

/// A branch or tag name safe to put in an API path.
pub(crate) fn check_ref(r: &str) -> Result<(), EventError> {
    let ok = !r.is_empty()
        && r.len() <= MAX_REF_LEN
        && !r.contains("..")
        && !r.starts_with('/')
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "`ref` must be a branch or tag name (letters, digits, `-_./`, no `..`)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SourcePolicy {
        SourcePolicy {
            allowed_repos: Some(vec!["octo/app".into()]),
            local_repos: BTreeMap::new(),
        }
    }

    #[test]
    fn the_schedule_shape_becomes_a_request() {
        let start = StartRun::parse(br#"{"repo":"Octo/App","ref":"main","suite":"unit"}"#).unwrap();
        let req = start.into_request(Origin::Schedule, &policy()).unwrap();
        assert_eq!(req.source.repo, "Octo/App");
        assert_eq!(req.source.git_ref.as_deref(), Some("main"));
        assert_eq!(req.suite.as_deref(), Some("unit"));
        assert_eq!(req.origin, Origin::Schedule);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases: [(&[u8], &str); 8] = [
            (br#"{"repo":"octo/app","ref":"main","bogus":1}"#, "bogus"),
            (br#"{"ref":"main"}"#, "`repo` is required"),
            (br#"{"repo":"octo","ref":"main"}"#, "owner/name"),
            (
                br#"{"repo":"other/app","ref":"main"}"#,
                "TESTEXEC_ALLOWED_REPOS",
            ),
            (br#"{"repo":"octo/app"}"#, "`ref`"),
            (br#"{"repo":"octo/app","ref":"../x"}"#, "`ref`"),
            (
                br#"{"repo":"octo/app","ref":"main","shards":0}"#,
                "`shards`",
            ),
            (br#"{"path":"/tmp/x"}"#, "`path` is not accepted"),
        ];
        for (body, needle) in cases {
            let err = StartRun::parse(body)
                .and_then(|s| s.into_request(Origin::Invoke, &policy()))
                .unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn local_repositories_are_named_never_paths() {
        let policy = SourcePolicy {
            allowed_repos: None,
            local_repos: SourcePolicy::parse_local_repos("demo=/tmp/some-repo").unwrap(),
        };
        let req = StartRun::parse(br#"{"repo":"demo","shards":2}"#)
            .unwrap()
            .into_request(Origin::Local, &policy)
            .unwrap();
        assert_eq!(req.source.path.as_deref(), Some("/tmp/some-repo"));
        assert_eq!(req.source.repo, "local/demo");
        assert_eq!(req.shards, Some(2));
        for (body, needle) in [
            (&br#"{"path":"/etc"}"#[..], "configured: demo"),
            (br#"{"repo":"other"}"#, "no repository `other`"),
            (br#"{"repo":"demo","ref":"main"}"#, "local checkout"),
        ] {
            let err = StartRun::parse(body)
                .and_then(|s| s.into_request(Origin::Local, &policy))
                .unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        for bad in ["x", "demo=relative", "=/abs", "../x=/abs"] {
            assert!(SourcePolicy::parse_local_repos(bad).is_err(), "{bad}");
        }
    }
}
