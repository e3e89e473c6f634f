//! Google Cloud backends: [`FirestoreRunStore`] (Firestore in native mode),
//! [`GcsBlobStore`] (one Cloud Storage bucket) and [`PubSubQueue`] (per
//! queue a topic, a pull subscription and a dead-letter topic).
//!
//! This file is the front door: the parts live in private modules and what
//! the rest of the crate (and the tests) use is re-exported here. No type of
//! the Google client crates leaves this module: errors become the ports'
//! errors with a cause from `error`, settings are plain values.
//!
//! - `store`: the run store; every conditional write a Firestore
//!   transaction (document layout in `docs/backends.md`).
//! - `gcs`: the blob store on the JSON API; signed URLs for links.
//! - `pubsub`: the queues; unary pull, leases from ack deadlines, attempts
//!   from the delivery attempt, dead letters from the dead-letter policy.
//! - `id_token`: who pushed: Pub/Sub push's OIDC tokens, checked with
//!   Google's own verifier (`google-cloud-auth`).
//! - `error`: the causes boxed into `StoreError`/`BlobError`/`QueueError`.
//!
//! Every host builds them once from [`GcpSettings::from_lookup`] (the
//! variables in [`env`]) with [`GcpBackends::connect`]. Credentials are
//! Application Default Credentials (the metadata server on Cloud Run); the
//! emulators are reached through `PUBSUB_EMULATOR_HOST`,
//! `FIRESTORE_EMULATOR_HOST` and `STORAGE_EMULATOR_HOST`.

mod error;
mod gcs;
mod history;
mod id_token;
mod pubsub;
mod store;

use std::sync::Arc;
use std::time::Duration;

pub use error::{FirestoreError, PubSubError, StorageError};
pub use gcs::{
    DEFAULT_CHUNK_SIZE, DEFAULT_RESUMABLE_THRESHOLD, GcsBlobStore, MAX_GET_BYTES, MAX_LINK_TTL,
    StorageEndpoint,
};
pub use id_token::{GOOGLE_JWKS_URL, GoogleIdTokens, IdTokenRejection, MAX_TOKEN_BYTES};
pub use pubsub::{
    MAX_ACK_DEADLINE, MAX_DEAD_LETTERS, MAX_DELIVERY_ATTEMPTS, MAX_PUBLISH_BYTES,
    MAX_PUBLISH_MESSAGES, MIN_ACK_DEADLINE, MIN_DELIVERY_ATTEMPTS, PubSubOptions, PubSubQueue,
    QueueResources, attributes_of, plan_publishes, resources,
};
pub use store::{FirestoreRunStore, MAX_DELIVERY_KEY_BYTES, MAX_DOC_BYTES, MAX_ERROR_BYTES};

use crate::errors::{BlobError, ConfigError, QueueError, StoreError};

/// Environment variable names, shared by the hosts, `gcp-cloudrun/` and
/// `terraform/gcp/` (which set them) and the tests.
pub mod env {
    /// The project of every resource (Google's own variable).
    pub const PROJECT: &str = "GOOGLE_CLOUD_PROJECT";
    /// The Firestore database, `(default)` when unset.
    pub const FIRESTORE_DATABASE: &str = "TESTEXEC_FIRESTORE_DATABASE";
    /// Prefix of the Firestore collections, `testexec_` when unset.
    pub const FIRESTORE_PREFIX: &str = "TESTEXEC_FIRESTORE_PREFIX";
    pub const BUCKET: &str = "TESTEXEC_GCS_BUCKET";
    /// Prefix of the Pub/Sub topics and subscriptions, `testexec` when unset.
    pub const PUBSUB_PREFIX: &str = "TESTEXEC_PUBSUB_PREFIX";
    /// Lease of a pulled message in seconds (1-600), 600 when unset.
    pub const PUBSUB_VISIBILITY_SECS: &str = "TESTEXEC_PUBSUB_VISIBILITY_SECS";
    /// Deliveries before the dead-letter topic (5-100), 5 when unset.
    pub const PUBSUB_MAX_DELIVERIES: &str = "TESTEXEC_PUBSUB_MAX_DELIVERIES";
    /// Seconds a signed report link stays valid (at most 7 days).
    pub const LINK_TTL_SECS: &str = "TESTEXEC_LINK_TTL_SECS";
    /// The emulators (`host:port`; a URL for storage).
    pub const PUBSUB_EMULATOR_HOST: &str = "PUBSUB_EMULATOR_HOST";
    pub const FIRESTORE_EMULATOR_HOST: &str = "FIRESTORE_EMULATOR_HOST";
    pub const STORAGE_EMULATOR_HOST: &str = "STORAGE_EMULATOR_HOST";
    /// The audience Pub/Sub push subscriptions put in their OIDC tokens
    /// (`--push-auth-token-audience`, or the push endpoint URL). Setting it
    /// turns verification on for `POST /queues/{queue}`.
    pub const PUSH_AUDIENCE: &str = "TESTEXEC_GCP_PUSH_AUDIENCE";
    /// The push subscriptions' service account (`--push-auth-service-account`).
    pub const PUSH_SERVICE_ACCOUNT: &str = "TESTEXEC_GCP_PUSH_SERVICE_ACCOUNT";
    /// Where the signing keys are; Google's when unset (tests serve their own).
    pub const PUSH_JWKS_URL: &str = "TESTEXEC_GCP_PUSH_JWKS_URL";
}

/// Where the GCP backends live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpSettings {
    pub project: String,
    pub firestore_database: String,
    pub firestore_prefix: String,
    pub bucket: String,
    pub pubsub_prefix: String,
    pub pubsub: PubSubOptions,
    pub link_ttl: Duration,
    /// `host:port` of the Pub/Sub emulator, if any.
    pub pubsub_emulator: Option<String>,
    /// Base URL of the storage emulator, if any.
    pub storage_emulator: Option<String>,
}

impl GcpSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        const HINT: &str = "the Cloud Run service definition sets it; when running by hand, export it (see docs/deploy-gcp.md)";
        let get = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let required = |var: &'static str| get(var).ok_or(ConfigError::Missing { var, hint: HINT });
        let number =
            |var: &'static str, default: u64, range: std::ops::RangeInclusive<u64>, what: &str| {
                let Some(raw) = get(var) else {
                    return Ok(default);
                };
                match raw.parse::<u64>() {
                    Ok(n) if range.contains(&n) => Ok(n),
                    _ => Err(ConfigError::Invalid {
                        var,
                        value: raw.chars().take(40).collect(),
                        reason: format!(
                            "expected a whole number from {} to {} ({what})",
                            range.start(),
                            range.end()
                        ),
                    }),
                }
            };
        let project = required(env::PROJECT)?;
        let link_ttl = number(
            env::LINK_TTL_SECS,
            24 * 3600,
            1..=MAX_LINK_TTL.as_secs(),
            "seconds; Cloud Storage signs links for at most 7 days",
        )?;
        let visibility = number(
            env::PUBSUB_VISIBILITY_SECS,
            MAX_ACK_DEADLINE.as_secs(),
            1..=MAX_ACK_DEADLINE.as_secs(),
            "seconds; Pub/Sub's longest ack deadline is 600",
        )?;
        let max_deliveries = number(
            env::PUBSUB_MAX_DELIVERIES,
            u64::from(MIN_DELIVERY_ATTEMPTS),
            u64::from(MIN_DELIVERY_ATTEMPTS)..=u64::from(MAX_DELIVERY_ATTEMPTS),
            "Pub/Sub's dead-letter policy range",
        )?;
        let pubsub_prefix = get(env::PUBSUB_PREFIX).unwrap_or_else(|| "testexec".into());
        if let Err(QueueError::InvalidSetting { reason, .. }) =
            resources(&pubsub_prefix, crate::app::messages::QueueName::Shards)
        {
            return Err(ConfigError::Invalid {
                var: env::PUBSUB_PREFIX,
                value: pubsub_prefix.chars().take(40).collect(),
                reason,
            });
        }
        let firestore_prefix = get(env::FIRESTORE_PREFIX).unwrap_or_else(|| "testexec_".into());
        if !store::valid_prefix(&firestore_prefix) {
            return Err(ConfigError::Invalid {
                var: env::FIRESTORE_PREFIX,
                value: firestore_prefix.chars().take(40).collect(),
                reason: "expected up to 100 characters of a-z, 0-9, `-` and `_`".into(),
            });
        }
        let bucket = required(env::BUCKET)?;
        if !gcs::valid_bucket(&bucket) {
            return Err(ConfigError::Invalid {
                var: env::BUCKET,
                value: bucket.chars().take(70).collect(),
                reason: "a bucket name is 3-63 characters of a-z, 0-9, `-`, `_` and `.`, starting and ending with a letter or digit".into(),
            });
        }
        let storage_emulator = get(env::STORAGE_EMULATOR_HOST).map(|h| match h.contains("://") {
            true => h,
            false => format!("http://{h}"),
        });
        Ok(Self {
            project,
            firestore_database: get(env::FIRESTORE_DATABASE).unwrap_or_else(|| "(default)".into()),
            firestore_prefix,
            bucket,
            pubsub_prefix,
            pubsub: PubSubOptions {
                visibility: Duration::from_secs(visibility),
                max_delivery_attempts: max_deliveries as u32,
            },
            link_ttl: Duration::from_secs(link_ttl),
            pubsub_emulator: get(env::PUBSUB_EMULATOR_HOST),
            storage_emulator,
        })
    }
}

/// Why the GCP backends could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to Pub/Sub: {message}")]
    PubSub { message: String },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// Installs rustls' ring provider as the process default, once. The Google
/// clients are built without a provider of their own (the default would
/// be aws-lc, a C build we keep out), so this runs before each client.
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err: a provider is installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

async fn pubsub_client(
    settings: &GcpSettings,
) -> Result<gcloud_pubsub::client::Client, ConnectError> {
    use gcloud_gax::conn::Environment;
    use gcloud_pubsub::client::{Client, ClientConfig};
    install_crypto_provider();
    let fail = |e: &dyn std::fmt::Display| ConnectError::PubSub {
        message: e.to_string(),
    };
    let config = match &settings.pubsub_emulator {
        Some(host) => ClientConfig {
            environment: Environment::Emulator(host.clone()),
            project_id: Some(settings.project.clone()),
            ..ClientConfig::default()
        },
        None => ClientConfig {
            project_id: Some(settings.project.clone()),
            ..ClientConfig::default()
        }
        .with_auth()
        .await
        .map_err(|e| fail(&e))?,
    };
    Client::new(config).await.map_err(|e| fail(&e))
}

/// The three GCP backends, built once per process and shared.
#[derive(Clone)]
pub struct GcpBackends {
    pub store: Arc<FirestoreRunStore>,
    pub blobs: Arc<GcsBlobStore>,
    pub queue: Arc<PubSubQueue>,
}

impl GcpBackends {
    /// Connects to the resources `settings` name (they must exist).
    pub async fn connect(settings: &GcpSettings) -> Result<Self, ConnectError> {
        let store = FirestoreRunStore::connect(
            &settings.project,
            &settings.firestore_database,
            &settings.firestore_prefix,
        )
        .await?;
        let endpoint = match &settings.storage_emulator {
            Some(url) => StorageEndpoint::Emulator(url.clone()),
            None => StorageEndpoint::Google,
        };
        let blobs = GcsBlobStore::connect(endpoint, &settings.bucket, settings.link_ttl).await?;
        let client = pubsub_client(settings).await?;
        let queue = PubSubQueue::new(&client, &settings.pubsub_prefix, settings.pubsub)?;
        Ok(Self {
            store: Arc::new(store),
            blobs: Arc::new(blobs),
            queue: Arc::new(queue),
        })
    }

    /// Creates the bucket, topics and subscriptions `settings` name,
    /// idempotently, then connects (tests, emulators, local runs;
    /// deployments create them from `terraform/gcp/`). Firestore needs no
    /// set-up: collections appear with their first document.
    pub async fn provision(settings: &GcpSettings) -> Result<Self, ConnectError> {
        let client = pubsub_client(settings).await?;
        pubsub::create_queues(&client, &settings.pubsub_prefix, settings.pubsub).await?;
        let backends = Self::connect(settings).await?;
        backends.blobs.create_bucket(&settings.project).await?;
        Ok(backends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, String> {
        [(env::PROJECT, "p"), (env::BUCKET, "bkt-1")]
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect()
    }

    #[test]
    fn settings_name_the_missing_variable() {
        let mut vars = full();
        vars.remove(env::BUCKET);
        let err = GcpSettings::from_lookup(|k| vars.get(k).cloned()).unwrap_err();
        assert!(err.to_string().contains("TESTEXEC_GCS_BUCKET"), "{err}");
        assert!(err.to_string().contains("docs/deploy-gcp.md"), "{err}");
    }

    #[test]
    fn settings_have_defaults_and_bounds() {
        let vars = full();
        let ok = GcpSettings::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(ok.firestore_database, "(default)");
        assert_eq!(ok.pubsub.visibility, Duration::from_secs(600));
        assert_eq!(ok.pubsub.max_delivery_attempts, 5);
        assert_eq!(ok.link_ttl, Duration::from_secs(24 * 3600));
        for (var, bad) in [
            (env::LINK_TTL_SECS, "700000"),
            (env::PUBSUB_VISIBILITY_SECS, "0"),
            (env::PUBSUB_MAX_DELIVERIES, "4"),
            (env::PUBSUB_PREFIX, "Goog"),
            (env::FIRESTORE_PREFIX, "a/b"),
            (env::BUCKET, "No_Caps"),
        ] {
            let mut vars = full();
            vars.insert(var, bad.into());
            let err = GcpSettings::from_lookup(|k| vars.get(k).cloned()).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
        let mut vars = full();
        vars.insert(env::STORAGE_EMULATOR_HOST, "127.0.0.1:4443".into());
        let emu = GcpSettings::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(
            emu.storage_emulator.as_deref(),
            Some("http://127.0.0.1:4443")
        );
    }
}
