//! Queue mode: instead of one fixed share per worker, the run's work units
//! go into the queue as batches, slowest first, and each of `workers`
//! executors takes the next batch when it is free. A wrong estimate (no
//! history, a noisy machine, a test that got slower) then costs at most
//! the last batch, not a whole shard.
//!
//! Batch sizes follow guided self-scheduling (Polychronopoulos & Kuck,
//! 1987): each batch takes about `remaining / workers` seconds of work, at
//! least one unit. Early batches are large, so few executions pay the
//! per-batch start-up (source, setup, the runner's own start; the halved
//! `remaining / (2 × workers)` variant paid it so often that it was slower,
//! docs/benchmarks.md); the last ones are small, so the workers finish
//! close together.
//!
//! Small, though, not smaller than [`STARTUP_FLOOR_FACTOR`] × the batch
//! start-up the history measured
//! ([`Timings::batch_startup_secs`](super::Timings::batch_startup_secs)): below
//! that a batch spends more of its wall starting than working, and the
//! balance it buys at the end is smaller than the start-ups it adds.

use super::{Plan, ShardPlan, WorkUnit};

/// Most batches one run is cut into: every batch is a shard record and a
/// queue message, and past this many the start-up cost dominates.
pub const MAX_BATCHES: u32 = 10_000;

/// No batch (but the last) holds less work than this many times the
/// measured start-up of one batch. With start-up `s` and a floor of `k·s`,
/// a floor-sized batch is `k/(k+1)` work; the workers can end up to about
/// one floor-sized batch apart, while every batch the floor saves saves
/// `s`. The guided sizes already make about `workers × ln(total / (workers
/// × floor))` batches, so a worker's cost is roughly `s·ln(1/k) + k·s/2`
/// plus constants, least at `k = 2`; docs/benchmarks.md ("Queue mode vs
/// the static plan") measures 1, 2 and 4.
pub const STARTUP_FLOOR_FACTOR: f64 = 2.0;

/// Re-cuts a packed plan's units into queue batches for `workers`
/// executors. The units (whole files and test groups) and their estimates
/// are the packed plan's; only their grouping and order change. Batch 0 is
/// the first to be taken. `startup_secs`, the measured start-up of one
/// batch (`None` without history), sets the batch-size floor.
pub fn queue_plan(packed: Plan, workers: u32, max_batches: u32, startup_secs: Option<f64>) -> Plan {
    queue_plan_with_floor(
        packed,
        workers,
        max_batches,
        startup_secs,
        STARTUP_FLOOR_FACTOR,
    )
}

/// [`queue_plan`] with the floor factor given (the benchmark compares a few).
pub fn queue_plan_with_floor(
    packed: Plan,
    workers: u32,
    max_batches: u32,
    startup_secs: Option<f64>,
    floor_factor: f64,
) -> Plan {
    let workers = workers.max(1);
    let max_batches = max_batches.clamp(1, MAX_BATCHES) as usize;
    let floor = floor_secs(startup_secs, floor_factor);
    let mut units: Vec<WorkUnit> = packed.shards.into_iter().flat_map(|s| s.units).collect();
    // Slowest first; ties by path, then the packed order (a stable sort),
    // so the same inputs give the same batches.
    units.sort_by(|a, b| {
        b.estimated_secs()
            .total_cmp(&a.estimated_secs())
            .then_with(|| a.path().cmp(b.path()))
    });
    let total: f64 = units.iter().map(WorkUnit::estimated_secs).sum();
    let largest = units.first().map(WorkUnit::estimated_secs).unwrap_or(0.0);

    let mut batches: Vec<ShardPlan> = Vec::new();
    let mut remaining = total;
    let mut units = units.into_iter().peekable();
    while units.peek().is_some() {
        let last = batches.len() + 1 == max_batches;
        let target = (remaining / f64::from(workers)).max(floor);
        let mut batch = Vec::new();
        let mut secs = 0.0;
        while let Some(unit) = units.next_if(|_| last || batch.is_empty() || secs < target) {
            secs += unit.estimated_secs();
            batch.push(unit);
        }
        remaining -= secs;
        batches.push(ShardPlan {
            index: batches.len() as u32,
            units: batch,
            estimated_secs: secs,
        });
    }

    let makespan = list_schedule(&batches, workers);
    let mut notes = packed.notes;
    notes.push(format!(
        "queue mode: {} batches, slowest first, taken by {workers} workers as they finish",
        batches.len()
    ));
    if floor > 0.0 {
        notes.push(format!(
            "queue mode: batches of at least {floor:.2} s ({floor_factor} × the measured {:.2} s start-up of a batch)",
            floor / floor_factor
        ));
    }
    Plan {
        shards: batches,
        estimated_makespan_secs: makespan,
        lower_bound_secs: (total / f64::from(workers)).max(largest),
        total_secs: total,
        notes,
        ..packed
    }
}

/// `factor × startup`, or 0 (no floor) when the start-up is unknown or
/// not a usable number.
fn floor_secs(startup_secs: Option<f64>, factor: f64) -> f64 {
    match startup_secs {
        Some(s) if s.is_finite() && s > 0.0 && factor.is_finite() && factor > 0.0 => s * factor,
        _ => 0.0,
    }
}

/// The predicted wall time when each batch, in order, goes to the worker
/// that is free first.
fn list_schedule(batches: &[ShardPlan], workers: u32) -> f64 {
    let mut free_at = vec![0.0f64; workers as usize];
    for batch in batches {
        let first = free_at
            .iter_mut()
            .min_by(|a, b| a.total_cmp(b))
            .expect("at least one worker");
        *first += batch.estimated_secs;
    }
    free_at.into_iter().fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::{PlanRequest, ShardTarget, Timings, plan};

    fn packed(secs: &[f64], workers: u32) -> Plan {
        let files: Vec<String> = (0..secs.len()).map(|i| format!("f{i:02}")).collect();
        let mut t = Timings::new();
        for (f, s) in files.iter().zip(secs) {
            t.insert_file(f, *s);
        }
        plan(&PlanRequest {
            files: &files,
            timings: &t,
            target: ShardTarget::Count(workers),
            split_by_test: false,
            max_shards: 1000,
            keep_with_file: None,
        })
        .unwrap()
    }

    #[test]
    fn batches_shrink_slowest_first_and_hold_every_unit_once() {
        let secs: Vec<f64> = (0..40).map(|i| 1.0 + (i % 7) as f64).collect();
        let q = queue_plan(packed(&secs, 4), 4, MAX_BATCHES, None);
        let mut paths: Vec<&str> = q.shards.iter().flat_map(|s| s.files()).collect();
        assert_eq!(paths.len(), 40);
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 40, "each unit in exactly one batch");
        let sizes: Vec<f64> = q.shards.iter().map(|s| s.estimated_secs).collect();
        assert!(sizes.len() > 4, "more batches than workers: {sizes:?}");
        assert!(
            sizes.first() > sizes.last(),
            "large first, small last: {sizes:?}"
        );
        let units: Vec<f64> = q
            .shards
            .iter()
            .flat_map(|s| &s.units)
            .map(WorkUnit::estimated_secs)
            .collect();
        assert!(units.windows(2).all(|w| w[0] >= w[1]), "slowest first");
        assert!((q.total_secs - secs.iter().sum::<f64>()).abs() < 1e-9);
        assert!(q.estimated_makespan_secs >= q.lower_bound_secs);
        assert!(q.notes.iter().any(|n| n.starts_with("queue mode")));
    }

    /// Many small files after a few large ones: guided sizes alone end in a
    /// long run of one-file batches.
    fn skewed() -> Vec<f64> {
        let mut secs = vec![8.0, 6.0, 5.0];
        secs.extend((0..60).map(|i| 0.1 + f64::from(i % 5) * 0.05));
        secs
    }

    #[test]
    fn no_batch_but_the_last_is_under_the_startup_floor() {
        let startup = 0.4;
        let q = queue_plan(packed(&skewed(), 4), 4, MAX_BATCHES, Some(startup));
        let floor = STARTUP_FLOOR_FACTOR * startup;
        let (last, rest) = q.shards.split_last().unwrap();
        for b in rest {
            assert!(
                b.estimated_secs >= floor - 1e-9,
                "batch {} has {:.2} s, under the floor {floor:.2} s",
                b.index,
                b.estimated_secs
            );
        }
        assert!(last.estimated_secs > 0.0);
        assert_eq!(q.shards.iter().map(|s| s.units.len()).sum::<usize>(), 63);
        assert!(
            q.notes.iter().any(|n| n.contains("start-up")),
            "{:?}",
            q.notes
        );
    }

    #[test]
    fn the_floor_cuts_fewer_batches_and_only_when_start_up_is_known() {
        let plain = queue_plan(packed(&skewed(), 4), 4, MAX_BATCHES, None);
        // Without a measured start-up (no history) nothing changes.
        for unknown in [None, Some(0.0), Some(-1.0), Some(f64::NAN)] {
            let q = queue_plan(packed(&skewed(), 4), 4, MAX_BATCHES, unknown);
            assert_eq!(q.shards, plain.shards, "start-up {unknown:?}");
        }
        let floored = queue_plan(packed(&skewed(), 4), 4, MAX_BATCHES, Some(0.4));
        assert!(
            floored.shards.len() < plain.shards.len(),
            "{} batches with the floor, {} without",
            floored.shards.len(),
            plain.shards.len()
        );
        // The large units still go first and alone: the floor only merges
        // what is smaller than it.
        assert_eq!(floored.shards[0].units.len(), 1);
        assert!((floored.total_secs - plain.total_secs).abs() < 1e-9);
    }

    #[test]
    fn a_larger_factor_gives_larger_tail_batches() {
        let by_factor: Vec<usize> = [1.0, 2.0, 4.0]
            .iter()
            .map(|&k| {
                queue_plan_with_floor(packed(&skewed(), 4), 4, MAX_BATCHES, Some(0.4), k)
                    .shards
                    .len()
            })
            .collect();
        assert!(
            by_factor.windows(2).all(|w| w[0] > w[1]),
            "batches at k = 1, 2, 4: {by_factor:?}"
        );
    }

    #[test]
    fn the_batch_cap_puts_the_rest_in_the_last_batch() {
        let q = queue_plan(packed(&[1.0; 30], 3), 3, 2, None);
        assert_eq!(q.shards.len(), 2);
        assert_eq!(q.shards.iter().map(|s| s.units.len()).sum::<usize>(), 30);
        assert_eq!(q.shards[1].index, 1);
    }
}
