//! A team's numbers.

use serde::Serialize;

use crate::errors::CostError;

/// Lambda's CPU architecture (arm64 is cheaper per GB-second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Arm64,
    X86_64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    pub runs_per_day: f64,
    pub tests_per_run: f64,
    pub shards: f64,
    /// Average wall time of one shard, setup included.
    pub shard_minutes: f64,
    /// Reports, logs and JUnit kept per run.
    pub report_mb: f64,
    /// How long runs and their files are kept.
    pub retention_days: f64,
    /// Memory of one execute (Lambda: CPU scales with it; containers get
    /// `execute_vcpus`).
    pub execute_memory_gb: f64,
    pub execute_vcpus: f64,
    pub arch: Arch,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            runs_per_day: 50.0,
            tests_per_run: 2_000.0,
            shards: 8.0,
            shard_minutes: 4.0,
            report_mb: 2.0,
            retention_days: 30.0,
            execute_memory_gb: 2.0,
            execute_vcpus: 1.0,
            arch: Arch::Arm64,
        }
    }
}

impl Workload {
    /// Every number finite and within what a deployment can be: a clear
    /// error naming the field otherwise.
    pub fn validate(&self) -> Result<(), CostError> {
        let checks: [(&'static str, f64, f64, f64); 8] = [
            ("runs_per_day", self.runs_per_day, 0.0, 1_000_000.0),
            ("tests_per_run", self.tests_per_run, 0.0, 100_000_000.0),
            ("shards", self.shards, 1.0, 1_000.0),
            ("shard_minutes", self.shard_minutes, 0.0, 24.0 * 60.0),
            ("report_mb", self.report_mb, 0.0, 100_000.0),
            ("retention_days", self.retention_days, 0.0, 3_650.0),
            ("execute_memory_gb", self.execute_memory_gb, 0.125, 10.0),
            ("execute_vcpus", self.execute_vcpus, 0.25, 8.0),
        ];
        for (field, value, min, max) in checks {
            if !value.is_finite() || value < min || value > max {
                return Err(CostError::OutOfRange {
                    field,
                    value: value.to_string(),
                    min,
                    max,
                });
            }
        }
        Ok(())
    }

    pub fn runs_per_month(&self) -> f64 {
        self.runs_per_day * super::estimate::DAYS_PER_MONTH
    }

    /// Runs whose records and files exist at any time.
    pub fn runs_kept(&self) -> f64 {
        self.runs_per_day * self.retention_days
    }
}
