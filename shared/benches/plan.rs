//! Planning speed and what the improvement pass is worth.
//!
//! `cargo bench -p testexec-shared --bench plan [-- DURATIONS.json ...]`
//!
//! 1. Plans 100,000 files into 1,000 shards (synthetic, heavy-tailed
//!    durations) and prints min/median wall time of `plan` and of LPT alone.
//! 2. For each timings history given (e.g. the `target/bench/durations-*.json`
//!    written by `scripts/bench/plan_quality.py`), prints makespan / lower
//!    bound of LPT alone and of LPT + improvement pass at N = 2..64.

use std::hint::black_box;
use std::time::{Duration, Instant};

use testexec::domain::plan::{PlanRequest, ShardTarget, Timings, plan, plan_lpt_only};

const RUNS: usize = 15;

/// Deterministic xorshift so every run plans the same input.
struct XorShift(u64);
impl XorShift {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Nanoseconds this thread has spent on a CPU (Linux schedstat), if known.
/// Wall time on a shared, overloaded machine mostly measures the other
/// tenants; on-CPU time measures the planner.
fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// (wall min, wall median, on-CPU median, last makespan/LB)
fn time_it(f: impl Fn() -> f64) -> (Duration, Duration, Option<Duration>, f64) {
    let mut wall = Vec::with_capacity(RUNS);
    let mut cpu = Vec::with_capacity(RUNS);
    let mut ratio = 0.0;
    for _ in 0..RUNS {
        let (start, cpu_start) = (Instant::now(), cpu_ns());
        ratio = black_box(f());
        wall.push(start.elapsed());
        if let (Some(a), Some(b)) = (cpu_start, cpu_ns()) {
            cpu.push(Duration::from_nanos(b.saturating_sub(a)));
        }
    }
    wall.sort();
    cpu.sort();
    let cpu_median = (cpu.len() == RUNS).then(|| cpu[RUNS / 2]);
    (wall[0], wall[RUNS / 2], cpu_median, ratio)
}

fn main() {
    // Heavy-tailed durations (most files short, a few long), as in real suites.
    let mut rng = XorShift(0x2545F4914F6CDD1D);
    let files: Vec<String> = (0..100_000)
        .map(|i| format!("tests/pkg{:03}/test_{i:06}.py", i % 997))
        .collect();
    let mut timings = Timings::new();
    for (i, f) in files.iter().enumerate() {
        // 10% of the files have no history and get the median.
        if i % 10 != 0 {
            timings.insert_file(f, (rng.unit() * 6.0).exp() / 20.0);
        }
    }
    let req = PlanRequest {
        files: &files,
        timings: &timings,
        target: ShardTarget::Count(1000),
        split_by_test: false,
        max_shards: 1000,
        keep_with_file: None,
    };
    println!("100,000 files -> 1,000 shards, {RUNS} runs (release):");
    for (name, f) in [
        ("plan (LPT + improvement)", plan as fn(&PlanRequest) -> _),
        ("LPT only", plan_lpt_only),
    ] {
        let (min, median, cpu, ratio) =
            time_it(|| f(&req).map(|p| p.quality_ratio()).unwrap_or(f64::NAN));
        let cpu = cpu.map_or_else(|| "n/a".to_string(), |d| format!("{:.1} ms", ms(d)));
        println!(
            "  {name:<26} wall min {:>6.1} ms, wall median {:>6.1} ms, on-CPU median {cpu:>8}, makespan/LB {ratio:.6}",
            ms(min),
            ms(median)
        );
    }

    for path in std::env::args().skip(1).filter(|a| a.ends_with(".json")) {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        let timings = match Timings::from_json(&text, &path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        let files: Vec<String> = timings.files().map(|(f, _)| f.to_string()).collect();
        println!("\n{path}: {} files", files.len());
        println!("  {:>3}  {:>12}  {:>12}", "N", "LPT only", "LPT+improve");
        for n in [2, 4, 8, 16, 32, 64] {
            let req = PlanRequest {
                files: &files,
                timings: &timings,
                target: ShardTarget::Count(n),
                split_by_test: false,
                max_shards: 1000,
                keep_with_file: None,
            };
            let a = plan_lpt_only(&req)
                .map(|p| p.quality_ratio())
                .unwrap_or(f64::NAN);
            let b = plan(&req).map(|p| p.quality_ratio()).unwrap_or(f64::NAN);
            println!("  {n:>3}  {a:>12.6}  {b:>12.6}");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
