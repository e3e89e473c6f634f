//! sweep: make sure no run hangs forever.
//!
//! Runs on a schedule (the report function's scheduled event, or a timer in
//! `testexec serve`). A run past its deadline with shards that never
//! reported gets those shards completed as errored, naming them; a run whose
//! hand-off to report was lost (a collector or report crashed) is handed
//! over again. Every write is the same conditional write the handlers use,
//! so a sweep racing a late result is harmless.

use serde::Serialize;

use crate::app::handlers::{Ports, Settings, encode};
use crate::app::messages::{MESSAGE_VERSION, QueueName, ReportJob};
use crate::app::ports::{Completion, ShardCompletion};
use crate::domain::model::{Counts, RunId, RunStatus, ShardId, ShardStatus};
use crate::errors::HandlerError;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SweepOutcome {
    /// Shards completed as errored because they never reported.
    pub errored_shards: Vec<ShardId>,
    /// Runs handed (again) to report.
    pub reports_queued: Vec<RunId>,
    /// Runs whose counts were rebuilt from their shards (`recount_run`).
    pub recounted: Vec<RunId>,
}

pub async fn sweep(ports: &Ports, settings: &Settings) -> Result<SweepOutcome, HandlerError> {
    sweep_at(ports, settings, ports.clock.now_ms()).await
}

/// The sweep as of `now` (ms since the epoch); `u64::MAX` treats every
/// deadline as passed, which a single-process host uses once its queues are
/// idle and nothing can report any more.
pub async fn sweep_at(
    ports: &Ports,
    settings: &Settings,
    now: u64,
) -> Result<SweepOutcome, HandlerError> {
    let mut outcome = SweepOutcome::default();
    let active = ports.store.list_active_runs().await?;
    let mut overdue_runs = 0;
    for run in &active {
        let overdue = now > run.deadline_ms.saturating_add(settings.sweep_grace_ms);
        overdue_runs += usize::from(overdue);
        let mut hand_over = false;
        if run.status == RunStatus::Running {
            if overdue {
                let reason =
                    "never reported before the run's deadline (worker lost, or the job never ran)";
                let errored =
                    error_pending_shards(ports, run, reason, now.min(ports.clock.now_ms())).await?;
                outcome.errored_shards.extend(errored);
                // No collector of this run can still be between its writes
                // once it has been quiet longer than the grace.
                let settled_before = now
                    .min(ports.clock.now_ms())
                    .saturating_sub(settings.sweep_grace_ms);
                if ports.store.recount_run(run.id, settled_before).await? {
                    outcome.recounted.push(run.id);
                }
            }
            hand_over = ports.store.begin_report(run.id).await?;
        } else if run.status == RunStatus::Reporting && overdue {
            // Report is idempotent: a second job re-renders the same files.
            hand_over = true;
        }
        if hand_over {
            let job = ReportJob {
                v: MESSAGE_VERSION,
                run: run.id,
            };
            ports
                .queue
                .send_batch(QueueName::Reports, vec![encode(&job)])
                .await?;
            outcome.reports_queued.push(run.id);
        }
    }
    // `u64::MAX` is a host forcing an idle sweep, not the clock: its
    // "overdue" says nothing about stuck runs.
    let overdue_runs = if now == u64::MAX { 0 } else { overdue_runs };
    crate::app::metrics::sweep(
        active.len(),
        overdue_runs,
        outcome.errored_shards.len(),
        outcome.reports_queued.len(),
    );
    Ok(outcome)
}

/// Completes every shard of `run` that is still pending as errored with
/// `reason` (the same conditional write collect uses, so a late result
/// that wins the race is kept). Returns the shards this call completed.
async fn error_pending_shards(
    ports: &Ports,
    run: &crate::domain::model::Run,
    reason: &str,
    now: u64,
) -> Result<Vec<ShardId>, HandlerError> {
    let mut errored = Vec::new();
    for shard in ports.store.list_shards(run.id).await? {
        if shard.status != ShardStatus::Pending {
            continue;
        }
        let completion = ShardCompletion {
            shard: shard.id,
            attempt: 0,
            status: ShardStatus::Errored,
            counts: Counts::default(),
            started_ms: run.created_ms,
            finished_ms: now,
            error: Some(reason.to_string()),
        };
        if let Completion::Applied { .. } = ports.store.complete_shard(&completion).await? {
            tracing::warn!(run_id = %run.id, shard_id = %shard.id, reason, "shard completed as errored");
            errored.push(shard.id);
        }
    }
    Ok(errored)
}

/// Ends a run now (Ctrl-C on `testexec run`): its unfinished shards are
/// completed as errored with `reason`, and the report is written at once
/// (no queue: the host is shutting down), so the run ends `errored` with
/// the reason in its report instead of `running` until its deadline.
/// Returns the report's outcome, or `None` if the run was already final.
pub async fn cancel(
    ports: &Ports,
    settings: &Settings,
    run_id: RunId,
    reason: &str,
) -> Result<Option<crate::app::handlers::report::ReportOutcome>, HandlerError> {
    let Some(run) = ports.store.get_run(run_id).await? else {
        return Err(HandlerError::UnknownRun {
            run: run_id.to_string(),
        });
    };
    if run.status.is_final() {
        return Ok(None);
    }
    if run.status == RunStatus::Running {
        error_pending_shards(ports, &run, reason, ports.clock.now_ms()).await?;
        ports.store.begin_report(run.id).await?;
    }
    let job = ReportJob {
        v: MESSAGE_VERSION,
        run: run.id,
    };
    let outcome = crate::app::handlers::report::report(ports, settings, &encode(&job)).await?;
    Ok(Some(outcome))
}
