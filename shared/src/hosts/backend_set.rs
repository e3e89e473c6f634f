//! The composition root of the container host and the worker: which
//! adapters back the ports, chosen from configuration (12-factor:
//! `--backend` or `TESTEXEC_BACKEND`, then each backend's own variables).
//!
//! - `local`: SQLite run store, blob directory and durable SQLite queue in
//!   one state directory (`testexec serve`'s default).
//! - `aws`: DynamoDB, S3 and SQS, named by `adapters::aws::env`.
//! - `gcp`: Firestore, Cloud Storage and Pub/Sub, named by
//!   `adapters::gcp::env`.
//! - `azure`: Table Storage, Blob Storage and Storage Queues, named by
//!   `adapters::azure::env`.

use std::path::Path;
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
use std::sync::Arc;
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
use std::time::Duration;

use crate::adapters::github::GithubPorts;
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
use crate::app::handlers::Settings;
use crate::app::pipeline::Pipeline;
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
use crate::app::ports::{BlobStore, JobQueue, QueueConsumer, RunStore};
use crate::errors::{ConfigError, HostError};

/// The variable that picks the backend set.
pub const BACKEND_ENV: &str = "TESTEXEC_BACKEND";

/// A backend set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Local,
    Aws,
    Gcp,
    Azure,
}

impl BackendKind {
    pub const NAMES: &'static str = "local, aws, gcp, azure";

    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(Self::Local),
            "aws" => Ok(Self::Aws),
            "gcp" => Ok(Self::Gcp),
            "azure" => Ok(Self::Azure),
            other => Err(ConfigError::Invalid {
                var: BACKEND_ENV,
                value: other.chars().take(40).collect(),
                reason: format!("expected one of {}", Self::NAMES),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Aws => "aws",
            Self::Gcp => "gcp",
            Self::Azure => "azure",
        }
    }
}

/// The pipeline over the chosen backends, and the local one's concrete
/// parts when the backend is local (the host owns its state directory).
pub struct BackendSet {
    pub kind: BackendKind,
    pub pipeline: Pipeline,
    #[cfg(feature = "local")]
    pub local: Option<crate::app::pipeline::LocalPipeline>,
}

impl BackendSet {
    /// Opens the backends of `kind`. `state_dir` holds the local backend's
    /// state (and is the work root of every backend); `lookup` reads the
    /// environment (`std::env::var` in hosts).
    pub async fn open(
        kind: BackendKind,
        state_dir: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, HostError> {
        let github = GithubPorts::from_lookup(&lookup)?;
        let public_url = ["TESTEXEC_PUBLIC_URL", "TESTEXEC_GITHUB_DETAILS_URL"]
            .iter()
            .find_map(|k| lookup(k).filter(|v| !v.trim().is_empty()));
        match kind {
            BackendKind::Local => Self::open_local(state_dir, github, public_url),
            BackendKind::Aws => Self::open_aws(state_dir, github, public_url, &lookup).await,
            BackendKind::Gcp => Self::open_gcp(state_dir, github, public_url, &lookup).await,
            BackendKind::Azure => Self::open_azure(state_dir, github, public_url, &lookup),
        }
    }

    #[cfg(feature = "local")]
    fn open_local(
        state_dir: &Path,
        github: GithubPorts,
        public_url: Option<String>,
    ) -> Result<Self, HostError> {
        let local = crate::app::pipeline::LocalPipeline::open(state_dir, github.notifier)
            .map_err(|e| ConfigError::Invalid {
                var: "state directory",
                value: state_dir.display().to_string(),
                reason: e.to_string(),
            })?
            .with_source(github.source)
            .with_public_url(public_url);
        Ok(Self {
            kind: BackendKind::Local,
            pipeline: local.pipeline().clone(),
            local: Some(local),
        })
    }

    #[cfg(not(feature = "local"))]
    fn open_local(_: &Path, _: GithubPorts, _: Option<String>) -> Result<Self, HostError> {
        Err(not_built("local"))
    }

    #[cfg(feature = "aws")]
    async fn open_aws(
        state_dir: &Path,
        github: GithubPorts,
        public_url: Option<String>,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, HostError> {
        use crate::adapters::aws::{AwsBackends, AwsSettings, sdk_config};
        let settings = AwsSettings::from_lookup(lookup)?;
        let b = AwsBackends::new(&sdk_config().await, &settings);
        // SQS counts lag; see `Pipeline::with_idle_grace`.
        let host = Host {
            state_dir,
            github,
            public_url,
            idle_grace: Duration::from_secs(60),
        };
        Ok(host.assemble(BackendKind::Aws, b.store, b.blobs, b.queue))
    }

    #[cfg(not(feature = "aws"))]
    async fn open_aws(
        _: &Path,
        _: GithubPorts,
        _: Option<String>,
        _: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, HostError> {
        Err(not_built("aws"))
    }
}

#[cfg(feature = "gcp")]
impl BackendSet {
    async fn open_gcp(
        state_dir: &Path,
        github: GithubPorts,
        public_url: Option<String>,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, HostError> {
        use crate::adapters::gcp::{GcpBackends, GcpSettings, env};
        let settings = GcpSettings::from_lookup(lookup)?;
        let backends = GcpBackends::connect(&settings)
            .await
            .map_err(|e| ConfigError::Invalid {
                var: env::PROJECT,
                value: settings.project.clone(),
                reason: format!("cannot reach the GCP backends: {e}"),
            })?;
        // Idleness is this process's view of Pub/Sub (it has no counts):
        // give other processes' messages time to show.
        let host = Host {
            state_dir,
            github,
            public_url,
            idle_grace: Duration::from_secs(60),
        };
        let b = backends;
        Ok(host.assemble(BackendKind::Gcp, b.store, b.blobs, b.queue))
    }
}

#[cfg(not(feature = "gcp"))]
impl BackendSet {
    async fn open_gcp(
        _: &Path,
        _: GithubPorts,
        _: Option<String>,
        _: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, HostError> {
        Err(not_built("gcp"))
    }
}

#[cfg(feature = "azure")]
impl BackendSet {
    fn open_azure(
        state_dir: &Path,
        github: GithubPorts,
        public_url: Option<String>,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, HostError> {
        use crate::adapters::azure::{AzureBackends, AzureSettings};
        let settings = AzureSettings::from_lookup(lookup)?;
        let b = AzureBackends::new(&settings)?;
        // Storage Queues' approximate counts are exact enough (they include
        // messages in flight), unlike SQS's lagging ones.
        let host = Host {
            state_dir,
            github,
            public_url,
            idle_grace: Duration::from_secs(5),
        };
        Ok(host.assemble(BackendKind::Azure, b.store, b.blobs, b.queue))
    }
}

#[cfg(not(feature = "azure"))]
impl BackendSet {
    fn open_azure(
        _: &Path,
        _: GithubPorts,
        _: Option<String>,
        _: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, HostError> {
        Err(not_built("azure"))
    }
}

/// What every cloud backend set shares: GitHub's source and notifier, the
/// state directory as scratch space, the host's public URL, and how long
/// the queues must look idle before a run is swept early.
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
struct Host<'a> {
    state_dir: &'a Path,
    github: GithubPorts,
    public_url: Option<String>,
    idle_grace: Duration,
}

#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
impl Host<'_> {
    /// The pipeline over a cloud's three adapters.
    fn assemble<Q: JobQueue + QueueConsumer + 'static>(
        self,
        kind: BackendKind,
        store: Arc<dyn RunStore>,
        blobs: Arc<dyn BlobStore>,
        queue: Arc<Q>,
    ) -> BackendSet {
        let ports = crate::app::handlers::Ports {
            store,
            blobs,
            queue: queue.clone(),
            source: self.github.source,
            notifier: self.github.notifier,
            clock: Arc::new(crate::app::ports::SystemClock),
        };
        let settings = Settings {
            work_root: self.state_dir.join("work"),
            public_url: self.public_url,
            ..Settings::default()
        };
        BackendSet {
            kind,
            pipeline: Pipeline::new(ports, settings, queue).with_idle_grace(self.idle_grace),
            #[cfg(feature = "local")]
            local: None,
        }
    }
}

#[allow(dead_code)]
fn not_built(backend: &'static str) -> HostError {
    ConfigError::Invalid {
        var: BACKEND_ENV,
        value: backend.into(),
        reason: format!(
            "this build has no `{backend}` backend; build testexec with `--features {backend}`"
        ),
    }
    .into()
}

#[cfg(all(test, feature = "azure"))]
mod azure_tests {
    use super::*;

    #[test]
    fn azure_is_a_backend_name() {
        assert_eq!(BackendKind::parse(" Azure ").unwrap(), BackendKind::Azure);
        let err = BackendKind::parse("gcs").unwrap_err().to_string();
        assert!(err.contains("azure") && err.contains(BACKEND_ENV), "{err}");
    }

    #[tokio::test]
    async fn azure_names_the_missing_variable() {
        let Err(err) = BackendSet::open(BackendKind::Azure, Path::new("."), |_| None).await else {
            panic!("opened without settings");
        };
        let err = err.to_string();
        assert!(err.contains("TESTEXEC_AZURE_STORAGE_ACCOUNT"), "{err}");
        assert!(err.contains("docs/deploy-azure.md"), "the hint: {err}");
    }
}

#[cfg(all(test, feature = "gcp"))]
mod gcp_tests {
    use super::*;

    #[test]
    fn gcp_is_a_backend_name() {
        assert_eq!(BackendKind::parse(" GCP ").unwrap(), BackendKind::Gcp);
        assert_eq!(BackendKind::Gcp.name(), "gcp");
    }

    #[tokio::test]
    async fn gcp_names_the_missing_variable() {
        let Err(err) = BackendSet::open(BackendKind::Gcp, Path::new("."), |_| None).await else {
            panic!("opened without settings");
        };
        let err = err.to_string();
        assert!(err.contains("GOOGLE_CLOUD_PROJECT"), "{err}");
        assert!(err.contains("docs/deploy-gcp.md"), "the hint: {err}");
    }
}

#[cfg(feature = "http")]
impl BackendKind {
    /// How this backend's push queue delivers to `POST /queues/{queue}`:
    /// Pub/Sub wraps each message in its push envelope and, with
    /// `TESTEXEC_GCP_PUSH_AUDIENCE` set, proves itself with a Google ID
    /// token; the other backends push raw messages as ordinary writes.
    pub fn queue_push(
        self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<crate::hosts::http::QueuePush, ConfigError> {
        use crate::hosts::http::QueuePush;
        match self {
            #[cfg(feature = "gcp")]
            Self::Gcp => {
                use crate::adapters::gcp::GoogleIdTokens;
                use crate::hosts::http::{PushAuthenticator, PushFormat};
                let authenticator = GoogleIdTokens::from_lookup(lookup)?
                    .map(|tokens| Arc::new(tokens) as Arc<dyn PushAuthenticator>);
                Ok(QueuePush {
                    format: PushFormat::PubSub,
                    authenticator,
                })
            }
            _ => {
                let _ = lookup;
                Ok(QueuePush::default())
            }
        }
    }
}

#[cfg(all(feature = "http", feature = "gcp"))]
#[async_trait::async_trait]
impl crate::hosts::http::PushAuthenticator for crate::adapters::gcp::GoogleIdTokens {
    fn describe(&self) -> String {
        crate::adapters::gcp::GoogleIdTokens::describe(self)
    }

    async fn verify(
        &self,
        bearer_token: &str,
    ) -> Result<crate::hosts::http::VerifiedCaller, crate::hosts::http::PushAuthError> {
        use crate::adapters::gcp::IdTokenRejection;
        use crate::hosts::http::{PushAuthError, VerifiedCaller};
        match crate::adapters::gcp::GoogleIdTokens::verify(self, bearer_token).await {
            Ok(sender) => Ok(VerifiedCaller(sender)),
            Err(IdTokenRejection::Invalid(why)) => Err(PushAuthError::Unauthenticated(why)),
            Err(IdTokenRejection::NotForUs(why)) => Err(PushAuthError::Forbidden(why)),
            Err(IdTokenRejection::KeysUnavailable(why)) => Err(PushAuthError::Unavailable(why)),
        }
    }
}
