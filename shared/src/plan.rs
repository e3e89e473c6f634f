//! placeholder until the plan module lands (replaced at merge)
#![allow(dead_code, unused_variables)]
use serde::{Deserialize, Serialize};

use crate::model::TestCase;
#[derive(Debug, thiserror::Error)]
#[error("plan")]
pub struct PlanError;
#[derive(Debug, Clone, Default)]
pub struct Timings;
impl Timings {
    pub fn from_cases<'a>(cases: impl IntoIterator<Item = &'a TestCase>) -> Timings {
        Timings
    }
    pub fn merge(&mut self, newer: &Timings) {}
    pub fn to_json(&self) -> String {
        String::new()
    }
    pub fn from_json(text: &str, origin: &str) -> Result<Timings, PlanError> {
        Err(PlanError)
    }
}
pub enum ShardTarget {
    Count(u32),
    TargetSeconds(f64),
}
pub struct PlanRequest<'a> {
    pub files: &'a [String],
    pub timings: &'a Timings,
    pub target: ShardTarget,
    pub split_by_test: bool,
    pub max_shards: u32,
}
pub fn plan(req: &PlanRequest) -> Result<Plan, PlanError> {
    Err(PlanError)
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub shards: Vec<ShardPlan>,
    pub estimated_makespan_secs: f64,
    pub lower_bound_secs: f64,
    pub known_share: f64,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardPlan {
    pub index: u32,
    pub estimated_secs: f64,
}
impl ShardPlan {
    pub fn files(&self) -> Vec<&str> {
        vec![]
    }
    pub fn tests(&self) -> Vec<&str> {
        vec![]
    }
}
