//! What testexec counts, through one facade (the `metrics` crate).
//!
//! Handlers and hosts call the functions here; which exporter receives the
//! values is the host's choice (`serve`: Prometheus text on
//! `--metrics-bind`; Lambda: CloudWatch embedded metric format in the log),
//! so no exporter or cloud type appears in the app layer. Without an
//! installed recorder every call is a no-op (the `metrics` crate's default).
//!
//! Labels come only from closed sets (statuses, outcomes, queue names,
//! route templates, status codes): never a run id, test id, branch, repo or
//! anything a client sends, so series stay bounded and no secret can reach
//! a label. docs/metrics.md lists every metric; a dashboard or alert that
//! names one the code no longer emits fails CI
//! (cli/tests/integration/monitoring.rs).

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::app::messages::QueueName;
use crate::domain::model::{Counts, Origin, Run, RunStatus, ShardStatus};

/// Every metric name, so exporters can describe them and tests can list them.
pub mod names {
    pub const RUNS_STARTED: &str = "testexec_runs_started_total";
    pub const RUNS_FINISHED: &str = "testexec_runs_finished_total";
    pub const RUN_DURATION: &str = "testexec_run_duration_seconds";
    pub const RUNS_OVERDUE: &str = "testexec_runs_overdue";
    pub const RUNS_ACTIVE: &str = "testexec_runs_active";
    pub const SHARDS_COMPLETED: &str = "testexec_shards_completed_total";
    pub const SHARD_QUEUE_WAIT: &str = "testexec_shard_queue_wait_seconds";
    pub const SHARD_DURATION: &str = "testexec_shard_duration_seconds";
    pub const TESTS: &str = "testexec_tests_total";
    pub const WEBHOOK_DELIVERIES: &str = "testexec_webhook_deliveries_total";
    pub const HTTP_REQUESTS: &str = "testexec_http_requests_total";
    pub const HTTP_DURATION: &str = "testexec_http_request_duration_seconds";
    pub const MESSAGES_HANDLED: &str = "testexec_messages_handled_total";
    pub const REDELIVERIES: &str = "testexec_message_redeliveries_total";
    pub const QUEUE_MESSAGES: &str = "testexec_queue_messages";
    pub const SWEEP_SHARDS_ERRORED: &str = "testexec_sweep_shards_errored_total";
    pub const SWEEP_REPORTS_QUEUED: &str = "testexec_sweep_reports_queued_total";
    pub const GITHUB_REQUESTS: &str = "testexec_github_requests_total";
    pub const GITHUB_RATE_LIMIT_WAIT: &str = "testexec_github_rate_limit_wait_seconds_total";

    /// Every name above.
    pub const ALL: [&str; 19] = [
        RUNS_STARTED,
        RUNS_FINISHED,
        RUN_DURATION,
        RUNS_OVERDUE,
        RUNS_ACTIVE,
        SHARDS_COMPLETED,
        SHARD_QUEUE_WAIT,
        SHARD_DURATION,
        TESTS,
        WEBHOOK_DELIVERIES,
        HTTP_REQUESTS,
        HTTP_DURATION,
        MESSAGES_HANDLED,
        REDELIVERIES,
        QUEUE_MESSAGES,
        SWEEP_SHARDS_ERRORED,
        SWEEP_REPORTS_QUEUED,
        GITHUB_REQUESTS,
        GITHUB_RATE_LIMIT_WAIT,
    ];

    /// Histograms (the Prometheus exporter gives them buckets).
    pub const HISTOGRAMS: [&str; 4] = [
        RUN_DURATION,
        SHARD_QUEUE_WAIT,
        SHARD_DURATION,
        HTTP_DURATION,
    ];
}

/// Bucket bounds (seconds) of the request-latency histogram: the intake's
/// target is milliseconds, the original system's p95 target 500 ms.
pub const HTTP_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Bucket bounds (seconds) of runs, shards and queue waits: a second to
/// an hour.
pub const WORK_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Where a run came from, as a label (never the delivery id or event).
pub fn origin_label(origin: &Origin) -> &'static str {
    match origin {
        Origin::Local => "local",
        Origin::Schedule => "schedule",
        Origin::Invoke => "invoke",
        Origin::GitHub { .. } => "github",
    }
}

/// A run was created: planned with shards, or recorded as errored because
/// it could never start (`rejected`: it is counted finished at once).
pub fn run_started(run: &Run, rejected: bool) {
    let origin = origin_label(&run.origin);
    counter!(names::RUNS_STARTED, "origin" => origin).increment(1);
    if rejected {
        counter!(names::RUNS_FINISHED, "status" => RunStatus::Errored.as_str(), "origin" => origin)
            .increment(1);
    }
}

/// A run reached its final status (counted once: only by the caller whose
/// `finish_run` made the transition). Adds its tests by outcome.
pub fn run_finished(run: &Run, status: RunStatus, counts: &Counts, finished_ms: u64) {
    let origin = origin_label(&run.origin);
    counter!(names::RUNS_FINISHED, "status" => status.as_str(), "origin" => origin).increment(1);
    let secs = finished_ms.saturating_sub(run.created_ms) as f64 / 1000.0;
    histogram!(names::RUN_DURATION, "status" => status.as_str()).record(secs);
    for (outcome, n) in [
        ("passed", counts.passed),
        ("failed", counts.failed),
        ("error", counts.errors),
        ("skipped", counts.skipped),
        ("flaky", counts.flaky),
    ] {
        counter!(names::TESTS, "outcome" => outcome).increment(n);
    }
}

/// A shard job was taken by an executor `waited_ms` after trigger queued
/// it (every delivery counts, so a redelivery's wait includes the lost
/// attempt).
pub fn shard_queue_wait(waited_ms: u64) {
    histogram!(names::SHARD_QUEUE_WAIT).record(waited_ms as f64 / 1000.0);
}

/// A shard was completed by its result (once per shard: the applied
/// execution), with how long that execution ran. Shards the sweep errors
/// are counted by [`sweep`].
pub fn shard_completed(status: ShardStatus, started_ms: u64, finished_ms: u64) {
    counter!(names::SHARDS_COMPLETED, "status" => status.as_str()).increment(1);
    histogram!(names::SHARD_DURATION, "status" => status.as_str())
        .record(finished_ms.saturating_sub(started_ms) as f64 / 1000.0);
}

/// What became of one webhook delivery at the front door (or, for
/// `Duplicate`, at the trigger's dedupe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookResult {
    /// Verified and queued.
    Accepted,
    /// Verified; an event that starts nothing.
    Ignored,
    /// Missing or wrong signature, or no secret configured.
    BadSignature,
    /// Verified but refused (a repository not allowed, a bad payload).
    Refused,
    /// A redelivery the trigger had already started.
    Duplicate,
}

impl WebhookResult {
    pub const ALL: [WebhookResult; 5] = [
        WebhookResult::Accepted,
        WebhookResult::Ignored,
        WebhookResult::BadSignature,
        WebhookResult::Refused,
        WebhookResult::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookResult::Accepted => "accepted",
            WebhookResult::Ignored => "ignored",
            WebhookResult::BadSignature => "bad_signature",
            WebhookResult::Refused => "refused",
            WebhookResult::Duplicate => "duplicate",
        }
    }
}

pub fn webhook(result: WebhookResult) {
    counter!(names::WEBHOOK_DELIVERIES, "result" => result.as_str()).increment(1);
}

/// One answered HTTP request. `route` is the router's template (`/runs/{id}`),
/// never the path a client sent.
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let route = route.to_string();
    let method = bounded_method(method);
    counter!(names::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status_label(status))
        .increment(1);
    histogram!(names::HTTP_DURATION, "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
}

/// Methods outside the ones we route are one label, so a client cannot
/// mint series with made-up methods.
fn bounded_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        _ => "other",
    }
}

fn status_label(status: u16) -> &'static str {
    // The statuses the front door answers with; anything else is its class.
    match status {
        200 => "200",
        202 => "202",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        415 => "415",
        422 => "422",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// How a queue message's handling ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageResult {
    Ok,
    /// Failed; another delivery may succeed.
    Failed,
    /// Failed for good (an undecodable body, an unknown version): the
    /// in-process pipeline moves it to the dead letters at once, SQS after
    /// its receive count.
    Permanent,
}

impl MessageResult {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageResult::Ok => "ok",
            MessageResult::Failed => "failed",
            MessageResult::Permanent => "permanent",
        }
    }
}

/// One queue message handled, on any host (in-process workers, Lambda's
/// SQS batches, pushed messages: all go through `handlers::handle_message`). `attempt > 1` is a redelivery (a retry).
pub fn message_handled(queue: QueueName, attempt: u32, result: MessageResult) {
    counter!(names::MESSAGES_HANDLED, "queue" => queue.as_str(), "result" => result.as_str())
        .increment(1);
    if attempt > 1 {
        counter!(names::REDELIVERIES, "queue" => queue.as_str()).increment(1);
    }
}

/// A queue's backlog as its backend reports it (see
/// `QueueConsumer::backlog`).
pub fn queue_backlog(queue: QueueName, waiting: u64, in_flight: u64, dead_letters: u64) {
    for (state, n) in [
        ("waiting", waiting),
        ("in_flight", in_flight),
        ("dead_letters", dead_letters),
    ] {
        gauge!(names::QUEUE_MESSAGES, "queue" => queue.as_str(), "state" => state).set(n as f64);
    }
}

/// What one sweep saw and did. `overdue`: open runs past their deadline
/// and grace (the sweep errors their silent shards; a value that stays
/// above zero means runs are stuck).
pub fn sweep(active: usize, overdue: usize, shards_errored: usize, reports_queued: usize) {
    gauge!(names::RUNS_ACTIVE).set(active as f64);
    gauge!(names::RUNS_OVERDUE).set(overdue as f64);
    counter!(names::SWEEP_SHARDS_ERRORED).increment(shards_errored as u64);
    counter!(names::SWEEP_REPORTS_QUEUED).increment(reports_queued as u64);
}

/// How one GitHub API call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GithubResult {
    Ok,
    /// An answer that was retried or failed (5xx, 4xx, transport).
    Error,
    /// GitHub said to wait (429, or 403 with rate-limit headers).
    RateLimited,
}

impl GithubResult {
    pub fn as_str(self) -> &'static str {
        match self {
            GithubResult::Ok => "ok",
            GithubResult::Error => "error",
            GithubResult::RateLimited => "rate_limited",
        }
    }
}

pub fn github_request(result: GithubResult) {
    counter!(names::GITHUB_REQUESTS, "result" => result.as_str()).increment(1);
}

/// Time spent waiting because GitHub asked us to (rate limits).
pub fn github_rate_limit_wait(wait: Duration) {
    counter!(names::GITHUB_RATE_LIMIT_WAIT).increment(wait.as_secs());
}

/// Creates every counter of a closed label set at zero, so a rate over a
/// window with no event is 0 rather than absent, and dashboards and alerts
/// see the series from the first scrape. Exporters call it once after
/// installing their recorder.
pub fn register_zeroes() {
    for origin in ["local", "schedule", "invoke", "github"] {
        counter!(names::RUNS_STARTED, "origin" => origin).absolute(0);
        for status in [RunStatus::Passed, RunStatus::Failed, RunStatus::Errored] {
            counter!(names::RUNS_FINISHED, "status" => status.as_str(), "origin" => origin)
                .absolute(0);
        }
    }
    for status in [
        ShardStatus::Passed,
        ShardStatus::Failed,
        ShardStatus::Errored,
    ] {
        counter!(names::SHARDS_COMPLETED, "status" => status.as_str()).absolute(0);
    }
    for outcome in ["passed", "failed", "error", "skipped", "flaky"] {
        counter!(names::TESTS, "outcome" => outcome).absolute(0);
    }
    for result in WebhookResult::ALL {
        counter!(names::WEBHOOK_DELIVERIES, "result" => result.as_str()).absolute(0);
    }
    for queue in QueueName::ALL {
        for result in [
            MessageResult::Ok,
            MessageResult::Failed,
            MessageResult::Permanent,
        ] {
            counter!(names::MESSAGES_HANDLED, "queue" => queue.as_str(), "result" => result.as_str())
                .absolute(0);
        }
        counter!(names::REDELIVERIES, "queue" => queue.as_str()).absolute(0);
    }
    counter!(names::SWEEP_SHARDS_ERRORED).absolute(0);
    counter!(names::SWEEP_REPORTS_QUEUED).absolute(0);
    for result in [
        GithubResult::Ok,
        GithubResult::Error,
        GithubResult::RateLimited,
    ] {
        counter!(names::GITHUB_REQUESTS, "result" => result.as_str()).absolute(0);
    }
    counter!(names::GITHUB_RATE_LIMIT_WAIT).absolute(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_methods_map_to_closed_label_sets() {
        assert_eq!(status_label(202), "202");
        assert_eq!(status_label(299), "2xx");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(599), "5xx");
        assert_eq!(bounded_method("POST"), "POST");
        assert_eq!(bounded_method("BREW"), "other");
    }

    /// The `testexec_*` names a file mentions (a histogram's `_bucket`,
    /// `_sum` and `_count` series count as the histogram).
    fn mentioned(path: &str) -> std::collections::BTreeSet<String> {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(path),
        )
        .unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut found = std::collections::BTreeSet::new();
        for (i, _) in text.match_indices("testexec_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|n| names::HISTOGRAMS.contains(n))
                })
                .map_or(name.clone(), str::to_string);
            found.insert(name);
        }
        found
    }

    /// The CloudWatch dashboards (template and Terraform) and the docs name
    /// only metrics the code emits, and the docs name all of them: a
    /// renamed metric fails here. (monitoring/ is checked against a real
    /// scrape by the CLI's integration test `monitoring`.)
    #[test]
    fn dashboards_and_docs_name_only_emitted_metrics() {
        let emitted: std::collections::BTreeSet<String> =
            names::ALL.iter().map(|s| s.to_string()).collect();
        for path in [
            "template.yaml",
            "terraform/aws/module/dashboard.tf",
            "docs/metrics.md",
            "docs/alerts.md",
        ] {
            let unknown: Vec<_> = mentioned(path).difference(&emitted).cloned().collect();
            assert!(
                unknown.is_empty(),
                "{path} names metrics the code does not emit: {unknown:?}"
            );
        }
        let undocumented: Vec<_> = emitted
            .difference(&mentioned("docs/metrics.md"))
            .cloned()
            .collect();
        assert!(
            undocumented.is_empty(),
            "docs/metrics.md lacks {undocumented:?}"
        );
        assert!(mentioned("template.yaml").len() >= 10);
    }
}
