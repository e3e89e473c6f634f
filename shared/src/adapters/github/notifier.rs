//! [`GithubNotifier`]: the run's face on GitHub. Check runs with App
//! credentials, commit statuses with a token.
//!
//! Idempotency: report may call [`Notifier::run_finished`] again (a retry
//! after an outage, a duplicate queue delivery). It never creates a second
//! check run: it updates the one stored on the run, or finds the one whose
//! `external_id` is the run id. Since GitHub *appends* annotations on every
//! update, it first reads the check run's `annotations_count` and sends only
//! the annotations not yet there; the order is deterministic, so a
//! half-finished earlier attempt is resumed, not repeated.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use super::checks::{self, ANNOTATIONS_PER_REQUEST};
use super::client::{GithubClient, check_repo, check_sha};
use super::time::{now_ms, rfc3339};
use crate::app::ports::{Notifier, RunOutcome};
use crate::domain::model::{Origin, Run};
use crate::errors::{GithubError, NotifyError};

pub struct GithubNotifier {
    client: Arc<GithubClient>,
}

impl GithubNotifier {
    pub fn new(client: Arc<GithubClient>) -> Self {
        Self { client }
    }

    fn check_name(&self) -> &str {
        &self.client.config.check_name
    }

    fn details_url(&self, run: &Run) -> Option<String> {
        checks::details_url(self.client.config.details_base_url.as_deref(), run)
    }

    /// The repo and commit a run reports on, or None for runs GitHub cannot
    /// show (local runs without a commit).
    fn target<'a>(&self, run: &'a Run) -> Result<Option<(&'a str, &'a str)>, GithubError> {
        let Some(sha) = run.source.commit.as_deref() else {
            tracing::debug!(run = %run.id, "no commit: nothing to report on GitHub");
            return Ok(None);
        };
        if !matches!(run.origin, Origin::GitHub { .. })
            && (check_repo(&run.source.repo).is_err() || check_sha(sha).is_err())
        {
            // A local/scheduled run that does not name a GitHub commit.
            return Ok(None);
        }
        check_repo(&run.source.repo)?;
        check_sha(sha)?;
        Ok(Some((run.source.repo.as_str(), sha)))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        run: &Run,
        body: Option<&Value>,
    ) -> Result<Value, GithubError> {
        self.client
            .call(method, path, &run.source.repo, installation(run), body)
            .await
    }

    async fn post_status(
        &self,
        run: &Run,
        sha: &str,
        state: &str,
        target_url: Option<String>,
    ) -> Result<(), GithubError> {
        let mut body = json!({
            "state": state,
            "context": self.check_name(),
            "description": checks::status_description(run),
        });
        if let Some(url) = target_url {
            body["target_url"] = Value::from(url);
        }
        let path = format!("/repos/{}/statuses/{sha}", run.source.repo);
        self.call(Method::POST, &path, run, Some(&body)).await?;
        Ok(())
    }

    /// The check run to complete and how many annotations it already has.
    async fn existing_check_run(
        &self,
        run: &Run,
        sha: &str,
    ) -> Result<Option<(u64, usize)>, GithubError> {
        if let Some(id) = stored_check_run_id(run) {
            let path = format!("/repos/{}/check-runs/{id}", run.source.repo);
            match self.call(Method::GET, &path, run, None).await {
                Ok(v) => return Ok(Some((id, annotations_count(&v)))),
                // Deleted or never visible to us: fall back to a lookup.
                Err(GithubError::Api { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let path = format!(
            "/repos/{}/commits/{sha}/check-runs?check_name={}&filter=all&per_page=100",
            run.source.repo,
            query_escape(self.check_name())
        );
        let listed = self.call(Method::GET, &path, run, None).await?;
        let wanted = run.id.to_string();
        let found = listed["check_runs"].as_array().and_then(|runs| {
            runs.iter()
                .find(|r| r["external_id"].as_str() == Some(wanted.as_str()))
        });
        Ok(found.and_then(|r| Some((r["id"].as_u64()?, annotations_count(r)))))
    }

    async fn complete_check_run(&self, outcome: &RunOutcome, sha: &str) -> Result<(), GithubError> {
        let run = &outcome.run;
        let cap = self.client.config.max_annotations;
        let (annotations, plan) =
            checks::annotations(&outcome.failures, outcome.triage.as_ref(), cap);
        let title = checks::title(run);
        let text = checks::output_text(outcome, &plan, cap);
        let summary = outcome.summary_markdown.as_str();
        let completed_at = rfc3339(run.finished_ms.unwrap_or_else(now_ms));

        let mut full = json!({
            "name": self.check_name(),
            "status": "completed",
            "conclusion": checks::conclusion(run.status),
            "external_id": run.id.to_string(),
            "started_at": rfc3339(run.created_ms),
            "completed_at": completed_at,
            "actions": checks::actions(outcome),
        });
        if let Some(url) = self.details_url(run) {
            full["details_url"] = Value::from(url);
        }

        let repo = &run.source.repo;
        let (id, rest) = match self.existing_check_run(run, sha).await? {
            Some((id, already)) => {
                let rest = &annotations[already.min(annotations.len())..];
                let first = &rest[..rest.len().min(ANNOTATIONS_PER_REQUEST)];
                full["output"] = checks::output(&title, summary, &text, first);
                let path = format!("/repos/{repo}/check-runs/{id}");
                self.call(Method::PATCH, &path, run, Some(&full)).await?;
                (id, &rest[first.len()..])
            }
            None => {
                let first = &annotations[..annotations.len().min(ANNOTATIONS_PER_REQUEST)];
                full["output"] = checks::output(&title, summary, &text, first);
                full["head_sha"] = Value::from(sha);
                let path = format!("/repos/{repo}/check-runs");
                let created = self.call(Method::POST, &path, run, Some(&full)).await?;
                let id = created["id"].as_u64().ok_or_else(|| GithubError::Decode {
                    method: "POST".into(),
                    path: path.clone(),
                    message: "the created check run has no numeric `id`".into(),
                })?;
                (id, &annotations[first.len()..])
            }
        };
        let path = format!("/repos/{repo}/check-runs/{id}");
        for chunk in rest.chunks(ANNOTATIONS_PER_REQUEST) {
            let body = json!({ "output": checks::output(&title, summary, &text, chunk) });
            self.call(Method::PATCH, &path, run, Some(&body)).await?;
        }
        tracing::info!(run = %run.id, check_run = id, annotations = plan.annotated, "check run completed");
        Ok(())
    }
}

fn installation(run: &Run) -> Option<u64> {
    match &run.origin {
        Origin::GitHub {
            installation_id, ..
        } => *installation_id,
        _ => None,
    }
}

fn stored_check_run_id(run: &Run) -> Option<u64> {
    match &run.origin {
        Origin::GitHub { check_run_id, .. } => *check_run_id,
        _ => None,
    }
}

fn annotations_count(check_run: &Value) -> usize {
    check_run["output"]["annotations_count"]
        .as_u64()
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// Everything but RFC 3986's unreserved characters is escaped.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query value (check names may hold spaces or `&`).
fn query_escape(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

#[async_trait]
impl Notifier for GithubNotifier {
    async fn run_started(&self, run: &Run) -> Result<Option<u64>, NotifyError> {
        let Some((repo, sha)) = self.target(run)? else {
            return Ok(None);
        };
        if !self.client.is_app() {
            self.post_status(run, sha, "pending", self.details_url(run))
                .await?;
            return Ok(None);
        }
        let mut body = json!({
            "name": self.check_name(),
            "head_sha": sha,
            "status": "in_progress",
            "external_id": run.id.to_string(),
            "started_at": rfc3339(run.created_ms),
            "output": {
                "title": "Running",
                "summary": format!("Suite `{}` is running in {} shard(s).", run.suite, run.shard_count),
            },
        });
        if let Some(url) = self.details_url(run) {
            body["details_url"] = Value::from(url);
        }
        let path = format!("/repos/{repo}/check-runs");
        let created = self.call(Method::POST, &path, run, Some(&body)).await?;
        let id = created["id"].as_u64().ok_or_else(|| GithubError::Decode {
            method: "POST".into(),
            path,
            message: "the created check run has no numeric `id`".into(),
        })?;
        tracing::info!(run = %run.id, check_run = id, "check run started");
        Ok(Some(id))
    }

    async fn run_finished(&self, outcome: &RunOutcome) -> Result<(), NotifyError> {
        let run = &outcome.run;
        let Some((_, sha)) = self.target(run)? else {
            return Ok(());
        };
        if self.client.is_app() {
            self.complete_check_run(outcome, sha).await?;
        } else {
            let target = outcome
                .report_link
                .clone()
                .or_else(|| self.details_url(run));
            self.post_status(run, sha, checks::status_state(run.status), target)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("testexec"), "testexec");
        assert_eq!(query_escape("unit tests&x"), "unit%20tests%26x");
    }
}
