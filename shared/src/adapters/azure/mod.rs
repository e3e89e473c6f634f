//! Azure backends: [`TableRunStore`] (one Azure Table), [`AzureBlobStore`]
//! (one Blob Storage container) and [`AzureQueue`] (four Storage Queues,
//! each with a `-poison` queue), all in one storage account.
//!
//! This file is the adapter's front door: the parts live in private
//! modules, one concern each, and what the rest of the crate uses is
//! re-exported here. No Azure SDK type leaves this module.
//!
//! - `transport`: the HTTP client (the workspace's reqwest on rustls + ring)
//!   under every `azure_core` pipeline.
//! - `auth`: managed-identity tokens or SharedKey (azurite), SAS links.
//! - `queue`: Storage Queues (`azure_storage_queue`).
//! - `blob`: Blob Storage (`azure_storage_blob`).
//! - `table`: a small Tables REST client on `azure_core`'s pipeline (no
//!   maintained 1.x Tables crate exists) and the run store on it.
//! - `provision`: creating the queues, container and table (tests, local).
//!
//! Layout, conditional writes and limits: `docs/backends.md`, "Azure".

mod auth;
mod blob;
mod error;
pub mod provision;
mod queue;
mod table;
mod transport;

use std::sync::Arc;
use std::time::Duration;

pub use auth::BadAccountKey;
pub use blob::AzureBlobStore;
pub use queue::{AzureQueue, MAX_WIRE_BYTES, OVERFLOW_PREFIX, QueueNames};
pub use table::{MAX_DELIVERY_KEY_BYTES, MAX_ENTITY_BYTES, MAX_ERROR_BYTES, TableRunStore};

use crate::errors::ConfigError;

/// Environment variable names, shared by the host, the deployment files
/// (which set them) and the tests (which point them at azurite).
pub mod env {
    /// The storage account's name.
    pub const ACCOUNT: &str = "TESTEXEC_AZURE_STORAGE_ACCOUNT";
    /// The account key: set only for azurite's development account. Unset,
    /// the managed identity authorises every request.
    pub const KEY: &str = "TESTEXEC_AZURE_STORAGE_KEY";
    /// Client id of a user-assigned managed identity (optional).
    pub const CLIENT_ID: &str = "TESTEXEC_AZURE_CLIENT_ID";
    /// Service endpoints; default `https://<account>.<service>.core.windows.net`.
    pub const BLOB_ENDPOINT: &str = "TESTEXEC_AZURE_BLOB_ENDPOINT";
    pub const QUEUE_ENDPOINT: &str = "TESTEXEC_AZURE_QUEUE_ENDPOINT";
    pub const TABLE_ENDPOINT: &str = "TESTEXEC_AZURE_TABLE_ENDPOINT";
    pub const CONTAINER: &str = "TESTEXEC_AZURE_CONTAINER";
    pub const TABLE: &str = "TESTEXEC_AZURE_TABLE";
    /// Queues are `<prefix>-shards|results|reports|requests` (+ `-poison`).
    pub const QUEUE_PREFIX: &str = "TESTEXEC_AZURE_QUEUE_PREFIX";
    /// The lease a receive takes on a message, in seconds.
    pub const VISIBILITY_SECS: &str = "TESTEXEC_AZURE_VISIBILITY_SECS";
    /// Deliveries before a message moves to its poison queue.
    pub const MAX_DEQUEUES: &str = "TESTEXEC_AZURE_MAX_DEQUEUES";
    /// Seconds a report link stays valid (the AWS variable, same meaning).
    pub const LINK_TTL_SECS: &str = "TESTEXEC_LINK_TTL_SECS";
}

/// A SAS (and the user delegation key signing it) lives at most 7 days.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Storage Queues' longest visibility timeout (7 days).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most deliveries before a message is poison (as SQS's maxReceiveCount).
pub const MAX_DEQUEUES: u32 = 1000;

/// Where the Azure backends live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSettings {
    pub account: String,
    pub blob_endpoint: String,
    pub queue_endpoint: String,
    pub table_endpoint: String,
    /// The account key (azurite only); `None`: managed identity.
    pub key: Option<String>,
    pub client_id: Option<String>,
    pub container: String,
    pub table: String,
    pub queue_prefix: String,
    pub visibility: Duration,
    pub max_dequeues: u32,
    pub link_ttl: Duration,
}

const HINT: &str = "the Container Apps template sets it; when running by hand, export it (see docs/deploy-azure.md)";

impl AzureSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let required = |var: &'static str| {
            get(var)
                .map(|v| v.trim().to_string())
                .ok_or(ConfigError::Missing { var, hint: HINT })
        };
        let account = required(env::ACCOUNT)?;
        if !(3..=24).contains(&account.len())
            || !account
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(ConfigError::Invalid {
                var: env::ACCOUNT,
                value: account.chars().take(40).collect(),
                reason: "a storage account name is 3-24 lowercase letters and digits".into(),
            });
        }
        let endpoint = |var: &'static str, service: &str| -> Result<String, ConfigError> {
            let value = get(var)
                .map(|v| v.trim().trim_end_matches('/').to_string())
                .unwrap_or_else(|| format!("https://{account}.{service}.core.windows.net"));
            match azure_core::http::Url::parse(&value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(value),
                _ => Err(ConfigError::Invalid {
                    var,
                    value: value.chars().take(80).collect(),
                    reason:
                        "expected an http(s) URL such as https://<account>.blob.core.windows.net"
                            .into(),
                }),
            }
        };
        let secs =
            |var: &'static str, default: u64, max: Duration| -> Result<Duration, ConfigError> {
                let Some(raw) = get(var) else {
                    return Ok(Duration::from_secs(default));
                };
                let invalid = || ConfigError::Invalid {
                    var,
                    value: raw.chars().take(40).collect(),
                    reason: format!("expected whole seconds between 1 and {}", max.as_secs()),
                };
                let n: u64 = raw.trim().parse().map_err(|_| invalid())?;
                if n == 0 || n > max.as_secs() {
                    return Err(invalid());
                }
                Ok(Duration::from_secs(n))
            };
        let max_dequeues = match get(env::MAX_DEQUEUES) {
            None => 5,
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_DEQUEUES).contains(&n) => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        var: env::MAX_DEQUEUES,
                        value: raw.chars().take(40).collect(),
                        reason: format!("expected a whole number between 1 and {MAX_DEQUEUES}"),
                    });
                }
            },
        };
        let queue_prefix = required(env::QUEUE_PREFIX)?;
        queue::QueueNames::new(&queue_prefix).map_err(|reason| ConfigError::Invalid {
            var: env::QUEUE_PREFIX,
            value: queue_prefix.chars().take(40).collect(),
            reason,
        })?;
        let table = required(env::TABLE)?;
        if !(3..=63).contains(&table.len())
            || !table.bytes().all(|b| b.is_ascii_alphanumeric())
            || !table.as_bytes()[0].is_ascii_alphabetic()
        {
            return Err(ConfigError::Invalid {
                var: env::TABLE,
                value: table.chars().take(70).collect(),
                reason: "a table name is 3-63 letters and digits, starting with a letter".into(),
            });
        }
        Ok(Self {
            blob_endpoint: endpoint(env::BLOB_ENDPOINT, "blob")?,
            queue_endpoint: endpoint(env::QUEUE_ENDPOINT, "queue")?,
            table_endpoint: endpoint(env::TABLE_ENDPOINT, "table")?,
            key: get(env::KEY),
            client_id: get(env::CLIENT_ID),
            container: required(env::CONTAINER)?,
            table,
            queue_prefix,
            visibility: secs(env::VISIBILITY_SECS, 300, MAX_VISIBILITY)?,
            max_dequeues,
            link_ttl: secs(env::LINK_TTL_SECS, 24 * 3600, MAX_LINK_TTL)?,
            account,
        })
    }

    /// The credential these settings name: the account key when one is
    /// set (azurite), else the managed identity.
    fn credential(&self) -> Result<auth::StorageCredential, ConfigError> {
        if let Some(key) = &self.key {
            // Checked here so a bad key fails at start, naming the variable.
            auth::SharedKeyPolicy::new(
                &self.account,
                &azure_core::credentials::Secret::new(key.clone()),
                auth::Service::Table,
            )
            .map_err(|e| ConfigError::Invalid {
                var: env::KEY,
                value: "<redacted>".into(),
                reason: e.to_string(),
            })?;
            return Ok(auth::StorageCredential::SharedKey {
                account: self.account.clone(),
                key: azure_core::credentials::Secret::new(key.clone()),
            });
        }
        let options = azure_identity::ManagedIdentityCredentialOptions {
            user_assigned_id: self
                .client_id
                .clone()
                .map(azure_identity::UserAssignedId::ClientId),
            client_options: client_options(None).map_err(|e| ConfigError::Invalid {
                var: env::ACCOUNT,
                value: self.account.clone(),
                reason: e,
            })?,
        };
        let credential =
            azure_identity::ManagedIdentityCredential::new(Some(options)).map_err(|e| {
                ConfigError::Invalid {
                    var: env::CLIENT_ID,
                    value: self.client_id.clone().unwrap_or_default(),
                    reason: format!("cannot set up the managed identity credential: {e}"),
                }
            })?;
        Ok(auth::StorageCredential::Token(credential))
    }
}

/// Client options every Azure client of this module shares: our transport,
/// plus SharedKey signing when the credential is the account key.
pub(crate) fn client_options(
    signer: Option<auth::SharedKeyPolicy>,
) -> Result<azure_core::http::ClientOptions, String> {
    let transport =
        transport::transport().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut options = azure_core::http::ClientOptions {
        transport: Some(transport),
        ..Default::default()
    };
    if let Some(signer) = signer {
        options.per_try_policies.push(Arc::new(signer));
    }
    Ok(options)
}

/// The three Azure backends, built once per process and shared.
#[derive(Clone)]
pub struct AzureBackends {
    pub store: Arc<TableRunStore>,
    pub blobs: Arc<AzureBlobStore>,
    pub queue: Arc<AzureQueue>,
}

impl AzureBackends {
    pub fn new(settings: &AzureSettings) -> Result<Self, ConfigError> {
        let credential = settings.credential()?;
        fn invalid<'a>(
            var: &'static str,
            value: &'a str,
        ) -> impl FnOnce(String) -> ConfigError + 'a {
            move |reason| ConfigError::Invalid {
                var,
                value: value.chars().take(80).collect(),
                reason,
            }
        }
        let blobs = Arc::new(
            AzureBlobStore::new(settings, &credential)
                .map_err(invalid(env::BLOB_ENDPOINT, &settings.blob_endpoint))?,
        );
        let queue = Arc::new(
            AzureQueue::new(settings, &credential, blobs.clone())
                .map_err(invalid(env::QUEUE_ENDPOINT, &settings.queue_endpoint))?,
        );
        let store = Arc::new(
            TableRunStore::new(settings, &credential)
                .map_err(invalid(env::TABLE_ENDPOINT, &settings.table_endpoint))?,
        );
        Ok(Self {
            store,
            blobs,
            queue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, String> {
        [
            (env::ACCOUNT, "devstoreaccount1"),
            (env::CONTAINER, "blobs"),
            (env::TABLE, "runs"),
            (env::QUEUE_PREFIX, "tx"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
    }

    #[test]
    fn settings_default_to_the_public_endpoints_and_managed_identity() {
        let vars = full();
        let s = AzureSettings::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(
            s.blob_endpoint,
            "https://devstoreaccount1.blob.core.windows.net"
        );
        assert_eq!(s.key, None);
        assert_eq!((s.visibility.as_secs(), s.max_dequeues), (300, 5));
    }

    #[test]
    fn settings_name_the_missing_or_bad_variable() {
        for (var, value, needle) in [
            (env::CONTAINER, None, "TESTEXEC_AZURE_CONTAINER"),
            (env::ACCOUNT, Some("Bad_Name"), "3-24 lowercase"),
            (
                env::QUEUE_PREFIX,
                Some("a--b"),
                "TESTEXEC_AZURE_QUEUE_PREFIX",
            ),
            (env::TABLE, Some("1runs"), "TESTEXEC_AZURE_TABLE"),
            (
                env::VISIBILITY_SECS,
                Some("0"),
                "TESTEXEC_AZURE_VISIBILITY_SECS",
            ),
            (
                env::MAX_DEQUEUES,
                Some("1001"),
                "TESTEXEC_AZURE_MAX_DEQUEUES",
            ),
            (env::LINK_TTL_SECS, Some("700000"), "604800"),
            (env::BLOB_ENDPOINT, Some("ftp://x"), "http(s) URL"),
        ] {
            let mut vars = full();
            match value {
                Some(v) => vars.insert(var, v.to_string()),
                None => vars.remove(var),
            };
            let err = AzureSettings::from_lookup(|k| vars.get(k).cloned()).unwrap_err();
            assert!(err.to_string().contains(needle), "{var}: {err}");
        }
    }

    #[test]
    fn a_bad_key_is_named_but_not_echoed() {
        let mut vars = full();
        vars.insert(env::KEY, "!!secret!!".into());
        let s = AzureSettings::from_lookup(|k| vars.get(k).cloned()).unwrap();
        let err = s.credential().unwrap_err().to_string();
        assert!(
            err.contains("TESTEXEC_AZURE_STORAGE_KEY") && !err.contains("!!secret!!"),
            "{err}"
        );
    }
}
