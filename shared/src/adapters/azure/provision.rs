//! Creating the storage resources (tests, local runs): the container, the
//! table and the eight queues, idempotently. Deployments create the same
//! from `azure/` / `terraform/azure/` instead.

use std::time::Duration;

use super::{AzureBackends, AzureSettings};
use crate::errors::{BlobError, ConfigError, QueueError, StoreError};

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where an emulator (azurite) listens, and its account.
#[derive(Debug, Clone)]
pub struct Emulator {
    pub account: String,
    pub key: String,
    pub blob: String,
    pub queue: String,
    pub table: String,
}

/// Settings for resources named after `name` (lowercase letters, digits,
/// hyphens) on an emulator: container and queue prefix `name`, table
/// `name` without hyphens.
pub fn emulator_settings(
    emu: &Emulator,
    name: &str,
    visibility: Duration,
    max_dequeues: u32,
) -> Result<AzureSettings, ConfigError> {
    let table: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let vars = [
        (super::env::ACCOUNT, emu.account.clone()),
        (super::env::KEY, emu.key.clone()),
        (super::env::BLOB_ENDPOINT, emu.blob.clone()),
        (super::env::QUEUE_ENDPOINT, emu.queue.clone()),
        (super::env::TABLE_ENDPOINT, emu.table.clone()),
        (super::env::CONTAINER, name.to_string()),
        (super::env::TABLE, table),
        (super::env::QUEUE_PREFIX, name.to_string()),
        (
            super::env::VISIBILITY_SECS,
            visibility.as_secs().max(1).to_string(),
        ),
        (super::env::MAX_DEQUEUES, max_dequeues.to_string()),
        (super::env::LINK_TTL_SECS, "600".to_string()),
    ];
    AzureSettings::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
}

/// The environment a host reads (`AzureSettings::from_env`) for `settings`.
/// It includes the account key when there is one: for emulators only.
pub fn to_env(settings: &AzureSettings) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        (super::env::ACCOUNT, settings.account.clone()),
        (super::env::BLOB_ENDPOINT, settings.blob_endpoint.clone()),
        (super::env::QUEUE_ENDPOINT, settings.queue_endpoint.clone()),
        (super::env::TABLE_ENDPOINT, settings.table_endpoint.clone()),
        (super::env::CONTAINER, settings.container.clone()),
        (super::env::TABLE, settings.table.clone()),
        (super::env::QUEUE_PREFIX, settings.queue_prefix.clone()),
        (
            super::env::VISIBILITY_SECS,
            settings.visibility.as_secs().to_string(),
        ),
        (super::env::MAX_DEQUEUES, settings.max_dequeues.to_string()),
        (
            super::env::LINK_TTL_SECS,
            settings.link_ttl.as_secs().to_string(),
        ),
    ];
    if let Some(key) = &settings.key {
        vars.push((super::env::KEY, key.clone()));
    }
    vars
}

/// Builds the backends and creates what they use (idempotent).
pub async fn provision(settings: &AzureSettings) -> Result<AzureBackends, ProvisionError> {
    let backends = AzureBackends::new(settings)?;
    backends.blobs.create_container().await?;
    backends.store.create_table().await?;
    backends.queue.create_queues().await?;
    Ok(backends)
}
