//! [`create_table`]: the table, its indexes and TTL as `template.yaml`
//! declares them, for tests, emulators and hand-made deployments.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::error::{backend, backend_msg};
use super::layout::*;
use crate::errors::StoreError;

fn attr(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| backend("create table", e))
}

fn key_schema(hash: &str, range: &str) -> Result<Vec<KeySchemaElement>, StoreError> {
    let el = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| backend("create table", e))
    };
    Ok(vec![el(hash, KeyType::Hash)?, el(range, KeyType::Range)?])
}

fn gsi(name: &str, hash: &str, range: &str) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(key_schema(hash, range)?))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| backend("create table", e))
}

/// How long [`create_table`] waits for the table and its indexes to be ACTIVE.
const TABLE_WAIT: Duration = Duration::from_secs(300);

/// Creates the table as `template.yaml` declares it (tests, emulators, a
/// hand-made deployment): keys `PK`/`SK`, on-demand billing, the GSIs
/// `runs-by-time` and `active-runs` (projection ALL), TTL on `expires_at`.
/// An existing table is fine (it must have both indexes); waits until the
/// table and its indexes are ACTIVE.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let res = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(vec![
            attr(PK)?,
            attr(SK)?,
            attr(GSI1_PK)?,
            attr(GSI1_SK)?,
            attr(GSI2_PK)?,
            attr(GSI2_SK)?,
        ]))
        .set_key_schema(Some(key_schema(PK, SK)?))
        .global_secondary_indexes(gsi(RUNS_BY_TIME, GSI1_PK, GSI1_SK)?)
        .global_secondary_indexes(gsi(ACTIVE_RUNS, GSI2_PK, GSI2_SK)?)
        .send()
        .await;
    match res {
        Ok(_) => tracing::info!(table, "created DynamoDB table"),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::debug!(table, "DynamoDB table exists already");
        }
        Err(e) => return Err(backend("create table", e)),
    }

    let deadline = tokio::time::Instant::now() + TABLE_WAIT;
    loop {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| backend("describe table", e))?;
        let desc = out.table.ok_or_else(|| {
            backend_msg(
                "describe table",
                format!("no description of table `{table}`"),
            )
        })?;
        let indexes = desc.global_secondary_indexes();
        for wanted in [RUNS_BY_TIME, ACTIVE_RUNS] {
            if !indexes.iter().any(|i| i.index_name() == Some(wanted)) {
                return Err(backend_msg(
                    "create table",
                    format!(
                        "table `{table}` exists without the global secondary index `{wanted}`; it was not made by this version (see docs/backends.md)"
                    ),
                ));
            }
        }
        let indexes_active = indexes.iter().all(|i| {
            i.index_status()
                .is_none_or(|s| *s == aws_sdk_dynamodb::types::IndexStatus::Active)
        });
        if desc.table_status() == Some(&TableStatus::Active) && indexes_active {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(backend_msg(
                "create table",
                format!("table `{table}` not ACTIVE after {}s", TABLE_WAIT.as_secs()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| backend("describe time to live", e))?;
    let current = ttl.time_to_live_description();
    let enabled = current.is_some_and(|d| {
        matches!(
            d.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) && d.attribute_name() == Some(EXPIRES_AT)
    });
    if !enabled {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(EXPIRES_AT)
            .enabled(true)
            .build()
            .map_err(|e| backend("enable time to live", e))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| backend("enable time to live", e))?;
    }
    Ok(())
}
