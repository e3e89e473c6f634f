//! Pricing a workload on each cloud.
//!
//! Quantities per month come from the measured [`CallModel`] (store, blob
//! and queue calls per run and per shard) and a few stated assumptions,
//! each a named constant below: how long the small handlers run, how often
//! the sweep and the queue pollers wake up, how much a run logs. Execute's
//! time is the team's own `shards × shard_minutes` and dominates every
//! bill but the smallest.

use serde::Serialize;

use super::{CallModel, CloudPrices, CostError, PriceList, Workload, workload::Arch};

pub(crate) const DAYS_PER_MONTH: f64 = 30.0;
const SECONDS_PER_MONTH: f64 = DAYS_PER_MONTH * 24.0 * 3600.0;

/// The sweep runs every 5 minutes (template.yaml's schedule), idle or not.
const SWEEPS_PER_MONTH: f64 = SECONDS_PER_MONTH / 300.0;

/// Handler time per call (assumed; execute's is the workload's own):
/// trigger twice per run (the HTTP intake queues the request, the queued
/// request plans the run), collect once per shard, report once per run plus
/// a little per test, the sweep once per wake-up.
const TRIGGER_SECONDS: f64 = 0.5;
const COLLECT_SECONDS: f64 = 0.3;
const REPORT_SECONDS: f64 = 1.0;
const REPORT_SECONDS_PER_1000_TESTS: f64 = 0.05;
const SWEEP_SECONDS: f64 = 0.1;
/// Memory of trigger and collect (512 MB) and report (1024 MB) in
/// template.yaml; the container hosts give the small handlers 0.5 GiB.
const SMALL_GB: f64 = 0.5;
const REPORT_GB: f64 = 1.0;

/// Lambda's SQS event source mappings long-poll each queue even when it
/// is empty: assumed 5 pollers × one 20 s receive each, on 4 queues.
const SQS_IDLE_RECEIVES_PER_MONTH: f64 = 4.0 * 5.0 * SECONDS_PER_MONTH / 20.0;
/// KEDA's azure-queue scaler reads each scaled queue's length every 10 s
/// (azure/main.bicep's `pollingInterval`), on the 4 handler queues.
const KEDA_PEEKS_PER_MONTH: f64 = 4.0 * SECONDS_PER_MONTH / 10.0;

/// Log volume per run, all functions together (JSON lines with ids).
const LOG_KB_PER_RUN: f64 = 100.0;
/// A run record or shard record, as stored.
const RECORD_KB: f64 = 1.0;
/// Alarms in template.yaml, and the secrets a GitHub App deployment keeps.
const ALARMS: f64 = 10.0;
const SECRETS: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cloud {
    Aws,
    Gcp,
    Azure,
}

impl Cloud {
    pub const ALL: [Cloud; 3] = [Cloud::Aws, Cloud::Gcp, Cloud::Azure];

    pub fn name(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Gcp => "gcp",
            Cloud::Azure => "azure",
        }
    }
}

/// One billed item of a month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// The price's name in the price list.
    pub item: String,
    pub quantity: f64,
    /// After the free allowance.
    pub billable: f64,
    pub usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub cloud: Cloud,
    pub region: String,
    pub lines: Vec<Line>,
    pub monthly_usd: f64,
    /// The same deployment with no run at all.
    pub idle_usd: f64,
}

/// The month's bill on `cloud` for `workload`, and its idle month.
pub fn estimate(
    cloud: Cloud,
    workload: &Workload,
    prices: &PriceList,
    calls: &CallModel,
    prices_file: &str,
) -> Result<Estimate, CostError> {
    workload.validate()?;
    let table = match cloud {
        Cloud::Aws => &prices.aws,
        Cloud::Gcp => &prices.gcp,
        Cloud::Azure => &prices.azure,
    };
    let lines = price(table, prices_file, &usage(cloud, workload, calls))?;
    let idle = Workload {
        runs_per_day: 0.0,
        ..workload.clone()
    };
    let idle_lines = price(table, prices_file, &usage(cloud, &idle, calls))?;
    Ok(Estimate {
        cloud,
        region: table.region.clone(),
        monthly_usd: lines.iter().map(|l| l.usd).sum(),
        idle_usd: idle_lines.iter().map(|l| l.usd).sum(),
        lines,
    })
}

fn price(
    table: &CloudPrices,
    file: &str,
    usage: &[(&'static str, f64)],
) -> Result<Vec<Line>, CostError> {
    usage
        .iter()
        .map(|&(item, quantity)| {
            let price = table
                .items
                .get(item)
                .ok_or_else(|| CostError::MissingPrice {
                    file: file.to_string(),
                    item: item.to_string(),
                })?;
            let (billable, usd) = price.charge(quantity);
            Ok(Line {
                item: item.to_string(),
                quantity,
                billable,
                usd,
            })
        })
        .collect()
}

/// What the handlers do in a month, in the terms every cloud bills.
struct Month {
    runs: f64,
    shards: f64,
    /// Invocations of the small handlers (trigger, collect, report, sweep).
    small_calls: f64,
    /// Their seconds, and GB-seconds at their memory.
    small_seconds: f64,
    small_gb_seconds: f64,
    execute_calls: f64,
    execute_seconds: f64,
    /// Queue messages sent (each is also received and deleted once).
    messages: f64,
    /// Store calls, split the way stores bill them.
    store_write_items: f64,
    store_transact_items: f64,
    store_point_reads: f64,
    store_query_calls: f64,
    store_query_items: f64,
    /// Blob calls.
    blob_writes: f64,
    blob_reads: f64,
    /// Data kept.
    blob_gb: f64,
    store_gb: f64,
}

fn month(w: &Workload, calls: &CallModel) -> Month {
    let runs = w.runs_per_month();
    let s = w.shards;
    let per_run = |f: &dyn Fn(f64) -> f64| runs * f(s);
    let report_seconds = REPORT_SECONDS + REPORT_SECONDS_PER_1000_TESTS * w.tests_per_run / 1000.0;
    let small_calls = runs * (2.0 + s + 1.0) + SWEEPS_PER_MONTH;
    let small_seconds = runs * (2.0 * TRIGGER_SECONDS + s * COLLECT_SECONDS + report_seconds)
        + SWEEPS_PER_MONTH * SWEEP_SECONDS;
    let small_gb_seconds = runs
        * (2.0 * TRIGGER_SECONDS * SMALL_GB
            + s * COLLECT_SECONDS * SMALL_GB
            + report_seconds * REPORT_GB)
        + SWEEPS_PER_MONTH * SWEEP_SECONDS * REPORT_GB;
    // The measured runs start at trigger; a real one comes through the
    // requests queue first (one more message).
    let messages = per_run(&|s| calls.items("sqs.SendMessageBatch", s) + 1.0);
    Month {
        runs,
        shards: s,
        small_calls,
        small_seconds,
        small_gb_seconds,
        execute_calls: runs * s,
        execute_seconds: runs * s * w.shard_minutes * 60.0,
        messages,
        store_write_items: per_run(&|s| {
            calls.items("dynamodb.UpdateItem", s)
                + calls.items("dynamodb.PutItem", s)
                + calls.items("dynamodb.DeleteItem", s)
                + calls.items("dynamodb.BatchWriteItem", s)
        }),
        store_transact_items: per_run(&|s| calls.items("dynamodb.TransactWriteItems", s)),
        store_point_reads: per_run(&|s| {
            calls.items("dynamodb.GetItem", s) + calls.items("dynamodb.BatchGetItem", s)
        }),
        store_query_calls: per_run(&|s| calls.calls("dynamodb.Query", s)),
        // A query of a run's shards returns one record per shard.
        store_query_items: per_run(&|s| calls.calls("dynamodb.Query", s) * (1.0 + s)),
        blob_writes: per_run(&|s| {
            calls.service_calls(
                "s3",
                s,
                &[
                    "PutObject",
                    "ListObjectsV2",
                    "CreateMultipartUpload",
                    "UploadPart",
                    "CompleteMultipartUpload",
                    "CopyObject",
                ],
            )
        }),
        blob_reads: per_run(&|s| calls.service_calls("s3", s, &["GetObject", "HeadObject"])),
        blob_gb: w.runs_kept() * w.report_mb / 1024.0,
        store_gb: w.runs_kept() * (1.0 + w.shards) * RECORD_KB / (1024.0 * 1024.0),
    }
}

fn usage(cloud: Cloud, w: &Workload, calls: &CallModel) -> Vec<(&'static str, f64)> {
    let m = month(w, calls);
    let execute_gb_seconds = m.execute_seconds * w.execute_memory_gb;
    match cloud {
        Cloud::Aws => {
            let gb_seconds_item = match w.arch {
                Arch::Arm64 => "lambda_gb_seconds_arm64",
                Arch::X86_64 => "lambda_gb_seconds_x86_64",
            };
            // Each message: one send (batched, as measured), one receive,
            // one delete; plus the pollers' empty receives.
            let sqs = m.runs * (calls.calls("sqs.SendMessageBatch", m.shards) + 1.0)
                + m.messages * 2.0
                + SQS_IDLE_RECEIVES_PER_MONTH;
            // Transactional writes cost two units per item; a query reads
            // 4 KB units of the records it returns.
            let write_units = m.store_write_items + 2.0 * m.store_transact_items;
            let read_units = m.store_point_reads
                + m.store_query_calls
                    .max((m.store_query_items * RECORD_KB / 4.0).ceil());
            vec![
                ("lambda_requests", m.small_calls + m.execute_calls),
                (gb_seconds_item, m.small_gb_seconds + execute_gb_seconds),
                ("http_api_requests", m.runs),
                ("sqs_requests", sqs),
                ("dynamodb_write_units", write_units),
                ("dynamodb_read_units", read_units),
                ("dynamodb_storage_gb_month", m.store_gb),
                ("dynamodb_pitr_gb_month", m.store_gb),
                ("s3_put_requests", m.blob_writes),
                ("s3_get_requests", m.blob_reads),
                ("s3_storage_gb_month", m.blob_gb),
                (
                    "logs_ingested_gb",
                    m.runs * LOG_KB_PER_RUN / (1024.0 * 1024.0),
                ),
                ("alarms", ALARMS),
                ("secrets", SECRETS),
            ]
        }
        Cloud::Gcp => {
            // Push delivery: every message is one request to the service.
            let requests = m.runs + m.messages + SWEEPS_PER_MONTH;
            // Each publish and each delivery bills at least 1 KB.
            let pubsub_tib = m.messages * 2.0 * 1024.0 / 1024f64.powi(4);
            vec![
                ("run_requests", requests),
                (
                    "run_vcpu_seconds",
                    m.small_seconds + m.execute_seconds * w.execute_vcpus,
                ),
                (
                    "run_gib_seconds",
                    m.small_seconds * SMALL_GB + execute_gb_seconds,
                ),
                ("pubsub_tib", pubsub_tib),
                ("firestore_reads", m.store_point_reads + m.store_query_items),
                (
                    "firestore_writes",
                    m.store_write_items + m.store_transact_items,
                ),
                ("firestore_storage_gib_month", m.store_gb),
                ("gcs_class_a", m.blob_writes),
                ("gcs_class_b", m.blob_reads),
                ("gcs_storage_gb_month", m.blob_gb),
                ("scheduler_jobs", 1.0),
                ("secrets", SECRETS),
            ]
        }
        Cloud::Azure => {
            // Put, get and delete per message, plus KEDA's length checks.
            let queue_ops = m.messages * 3.0 + KEDA_PEEKS_PER_MONTH;
            let table_transactions = m.store_write_items
                + m.store_transact_items
                + m.store_point_reads
                + m.store_query_calls;
            vec![
                ("apps_requests", m.runs + SWEEPS_PER_MONTH),
                (
                    "apps_vcpu_seconds",
                    m.small_seconds + m.execute_seconds * w.execute_vcpus,
                ),
                (
                    "apps_gib_seconds",
                    m.small_seconds * SMALL_GB + execute_gb_seconds,
                ),
                ("queue_operations", queue_ops),
                ("table_transactions", table_transactions),
                ("table_storage_gb_month", m.store_gb),
                ("blob_write_operations", m.blob_writes),
                ("blob_read_operations", m.blob_reads),
                ("blob_storage_gb_month", m.blob_gb),
                // Each job execution reads the secrets it needs once.
                (
                    "key_vault_operations",
                    (m.execute_calls + m.small_calls) * SECRETS,
                ),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::cost::{Price, Tally};
    use std::collections::BTreeMap;

    fn price(usd: f64, per: f64, free: f64) -> Price {
        Price {
            usd,
            per,
            free,
            source: "https://example.test/".into(),
        }
    }

    /// Every item priced at 1 USD per unit, no free tier: the bill is the
    /// sum of the quantities, which are checked by hand below.
    fn flat(items: &[&str]) -> CloudPrices {
        CloudPrices {
            region: "test-1".into(),
            items: items
                .iter()
                .map(|i| (i.to_string(), price(1.0, 1.0, 0.0)))
                .collect(),
        }
    }

    fn calls() -> CallModel {
        let t = |calls, items| Tally { calls, items };
        CallModel {
            per_run: BTreeMap::from([
                ("dynamodb.TransactWriteItems".to_string(), t(1, 1)),
                ("dynamodb.UpdateItem".to_string(), t(2, 2)),
                ("s3.PutObject".to_string(), t(6, 6)),
                ("sqs.SendMessageBatch".to_string(), t(2, 1)),
            ]),
            per_shard: BTreeMap::from([
                ("dynamodb.TransactWriteItems".to_string(), t(0, 1)),
                ("s3.PutObject".to_string(), t(3, 3)),
                ("sqs.SendMessageBatch".to_string(), t(1, 2)),
            ]),
        }
    }

    #[test]
    fn quantities_follow_the_measured_calls_and_the_workload() {
        let w = Workload {
            runs_per_day: 10.0,
            shards: 4.0,
            shard_minutes: 2.0,
            ..Workload::default()
        };
        let m = month(&w, &calls());
        assert_eq!(m.runs, 300.0);
        assert_eq!(m.execute_seconds, 300.0 * 4.0 * 120.0);
        // 1 + 4×2 messages measured, plus the queued request.
        assert_eq!(m.messages, 300.0 * 10.0);
        assert_eq!(m.store_transact_items, 300.0 * 5.0);
        assert_eq!(m.blob_writes, 300.0 * (6.0 + 12.0));
    }

    #[test]
    fn free_allowances_are_taken_first() {
        let p = price(0.20, 1_000_000.0, 1_000_000.0);
        assert_eq!(p.charge(500_000.0), (0.0, 0.0));
        let (billable, usd) = p.charge(3_000_000.0);
        assert_eq!(billable, 2_000_000.0);
        assert!((usd - 0.40).abs() < 1e-12);
    }

    #[test]
    fn an_idle_month_costs_only_what_runs_without_runs() {
        let items = [
            "lambda_requests",
            "lambda_gb_seconds_arm64",
            "http_api_requests",
            "sqs_requests",
            "dynamodb_write_units",
            "dynamodb_read_units",
            "dynamodb_storage_gb_month",
            "dynamodb_pitr_gb_month",
            "s3_put_requests",
            "s3_get_requests",
            "s3_storage_gb_month",
            "logs_ingested_gb",
            "alarms",
            "secrets",
        ];
        let prices = PriceList {
            as_of: "test".into(),
            aws: flat(&items),
            gcp: flat(&[]),
            azure: flat(&[]),
        };
        let w = Workload::default();
        let e = estimate(Cloud::Aws, &w, &prices, &calls(), "test").unwrap();
        let idle_quantity: f64 = usage(
            Cloud::Aws,
            &Workload {
                runs_per_day: 0.0,
                ..w.clone()
            },
            &calls(),
        )
        .iter()
        .map(|(_, q)| q)
        .sum();
        assert!((e.idle_usd - idle_quantity).abs() < 1e-6);
        // Idle: sweeps, pollers, alarms and secrets; nothing per run.
        assert!(e.idle_usd > 0.0 && e.idle_usd < e.monthly_usd);
        let missing = estimate(Cloud::Gcp, &w, &prices, &calls(), "prices.toml").unwrap_err();
        assert!(missing.to_string().contains("run_requests"), "{missing}");
    }

    #[test]
    fn a_workload_out_of_range_names_its_field() {
        let w = Workload {
            shards: 0.0,
            ..Workload::default()
        };
        let err = w.validate().unwrap_err();
        assert!(err.to_string().contains("`shards`"), "{err}");
        let w = Workload {
            shard_minutes: f64::NAN,
            ..Workload::default()
        };
        assert!(
            w.validate()
                .unwrap_err()
                .to_string()
                .contains("shard_minutes")
        );
    }
}
