//! [`GithubSource`]: a repository at a commit, from GitHub's tarball
//! endpoint, extracted with the same hostile-archive rules as our own
//! snapshots.
//!
//! The download goes to an anonymous temp file first (capped in bytes), then
//! is extracted: the archive can be large, and holding it in memory would
//! tie a Lambda's RAM to the repository size.

use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use tokio::io::AsyncWriteExt;

use super::client::{GithubClient, check_repo, check_sha};
use crate::adapters::source::{SnapshotLimits, extract_tar_gz};
use crate::app::ports::SourceProvider;
use crate::domain::model::SourceRef;
use crate::errors::{GithubError, SourceError};

pub struct GithubSource {
    client: Arc<GithubClient>,
    pub limits: SnapshotLimits,
}

impl GithubSource {
    pub fn new(client: Arc<GithubClient>) -> Self {
        Self {
            client,
            limits: SnapshotLimits::default(),
        }
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> SourceError {
    SourceError::Backend {
        backend: "github",
        source: Box::new(e),
    }
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: what.to_string(),
        source,
    }
}

#[async_trait]
impl SourceProvider for GithubSource {
    /// A branch or tag moves; a run pins the commit it names now.
    async fn resolve(&self, source: &SourceRef) -> Result<SourceRef, SourceError> {
        if source.commit.is_some() {
            return Ok(source.clone());
        }
        let repo = source.repo.as_str();
        let not_found = |detail: String| SourceError::NotFound {
            repo: repo.to_string(),
            detail,
        };
        let git_ref = source
            .git_ref
            .as_deref()
            .ok_or_else(|| not_found("the request names neither a commit nor a ref".into()))?;
        check_repo(repo).map_err(|e| not_found(e.to_string()))?;
        crate::app::intake::check_ref(git_ref).map_err(|e| not_found(e.to_string()))?;
        let path = format!("/repos/{repo}/commits/{git_ref}");
        let commit = self
            .client
            .call(Method::GET, &path, repo, None, None)
            .await
            .map_err(|e| match e.status() {
                Some(404 | 422) => not_found(format!("ref `{git_ref}` not found: {e}")),
                _ => backend(e),
            })?;
        let sha = commit
            .get("sha")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| not_found(format!("GitHub's answer for `{git_ref}` has no sha")))?;
        Ok(SourceRef {
            commit: Some(sha.to_owned()),
            ..source.clone()
        })
    }

    async fn fetch(&self, source: &SourceRef, dest: &Path) -> Result<(), SourceError> {
        let repo = source.repo.as_str();
        let not_found = |detail: String| SourceError::NotFound {
            repo: repo.to_string(),
            detail,
        };
        let Some(sha) = source.commit.as_deref() else {
            return Err(not_found(
                "a GitHub source needs a commit SHA (a branch would move under the run)".into(),
            ));
        };
        check_repo(repo).map_err(|e| not_found(e.to_string()))?;
        check_sha(sha).map_err(|e| not_found(e.to_string()))?;

        let token = match self.client.token_for(repo, None).await {
            Ok(t) => t,
            // `/repos/{repo}/installation` 404s when the App is not installed there.
            Err(GithubError::Api { status: 404, .. }) => {
                return Err(not_found(format!(
                    "the GitHub App is not installed on {repo} (or the repository does not exist)"
                )));
            }
            Err(e) => return Err(backend(e)),
        };
        let path = format!("/repos/{repo}/tarball/{sha}");
        let resp = match self
            .client
            .transport
            .send(
                Method::GET,
                &path,
                &token,
                None,
                Some(self.client.config.download_timeout),
            )
            .await
        {
            Ok(r) => r,
            Err(GithubError::Api { status: 404, .. }) => {
                return Err(not_found(format!(
                    "no commit {sha} in {repo} visible to these credentials"
                )));
            }
            Err(e) => return Err(backend(e)),
        };

        let cap = self.client.config.max_tarball_bytes;
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(SourceError::TooLarge {
                what: "tarball bytes",
                limit: cap,
            });
        }
        let std_file = tempfile::tempfile().map_err(io_err("temporary tarball"))?;
        let mut file = tokio::fs::File::from_std(std_file);
        let mut resp = resp;
        let mut written = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(backend)? {
            written += chunk.len() as u64;
            if written > cap {
                return Err(SourceError::TooLarge {
                    what: "tarball bytes",
                    limit: cap,
                });
            }
            file.write_all(&chunk)
                .await
                .map_err(io_err("temporary tarball"))?;
        }
        file.flush().await.map_err(io_err("temporary tarball"))?;
        let mut std_file = file.into_std().await;
        std_file
            .seek(SeekFrom::Start(0))
            .map_err(io_err("temporary tarball"))?;

        let dest = dest.to_path_buf();
        let limits = self.limits;
        // GitHub wraps the tree in `<owner>-<repo>-<sha>/`: strip it.
        let stats = tokio::task::spawn_blocking(move || {
            extract_tar_gz(std::io::BufReader::new(std_file), &dest, &limits, true)
        })
        .await
        .map_err(backend)??;
        tracing::info!(
            repo,
            sha,
            bytes = written,
            files = stats.files,
            "fetched GitHub tarball"
        );
        Ok(())
    }
}
