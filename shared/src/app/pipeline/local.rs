//! [`Pipeline`] over the embedded backends of one state directory.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::Pipeline;
use crate::adapters::local::{FsBlobStore, LocalQueue, QueueConfig, SqliteRunStore};
use crate::adapters::source::LocalDirSource;
use crate::app::handlers::{Ports, Settings};
use crate::app::ports::{Notifier, SourceProvider, SystemClock};
use crate::errors::HandlerError;

/// The embedded backends, the queue and the settings of one state directory,
/// with the generic [`Pipeline`] over them (reached through `Deref`: workers,
/// `trigger`, `wait_for`, `ports`, `settings` are the pipeline's).
#[derive(Clone)]
pub struct LocalPipeline {
    pipeline: Pipeline,
    /// The concrete queue, for hosts and tests that need more than the
    /// ports (depths, `release_orphans` at start).
    pub queue: Arc<LocalQueue>,
    pub store: Arc<SqliteRunStore>,
    pub blobs: Arc<FsBlobStore>,
    pub state_dir: PathBuf,
}

impl Deref for LocalPipeline {
    type Target = Pipeline;

    fn deref(&self) -> &Pipeline {
        &self.pipeline
    }
}

impl LocalPipeline {
    /// Opens (or creates) the state under `state_dir` (usually `.testexec/`).
    pub fn open(state_dir: &Path, notifier: Arc<dyn Notifier>) -> Result<Self, HandlerError> {
        // A delivery is only lost when its worker dies (a task, or a whole
        // process, whose leases the state directory's owner takes back with
        // `LocalQueue::release_orphans` at start); a long visibility timeout
        // keeps a slow shard from being run twice while it is still running
        // (SQS hosts set it to 6x the timeout).
        let config = QueueConfig {
            visibility_timeout: Duration::from_secs(6 * 3600),
            ..QueueConfig::default()
        };
        Self::open_with(state_dir, notifier, config)
    }

    /// Like [`LocalPipeline::open`] with explicit queue settings (tests use
    /// short visibility timeouts to exercise redelivery).
    pub fn open_with(
        state_dir: &Path,
        notifier: Arc<dyn Notifier>,
        config: QueueConfig,
    ) -> Result<Self, HandlerError> {
        std::fs::create_dir_all(state_dir).map_err(|source| HandlerError::Io {
            context: format!("creating {}", state_dir.display()),
            source,
        })?;
        let store = Arc::new(SqliteRunStore::open(state_dir.join("runs.sqlite3"))?);
        let blobs = Arc::new(FsBlobStore::new(state_dir.join("blobs"))?);
        // A file, not memory: queued jobs survive a crash, and a `testexec
        // worker` process on the same state directory consumes them too.
        let queue = Arc::new(LocalQueue::open(&state_dir.join("queue.sqlite3"), config)?);
        let settings = Settings {
            work_root: state_dir.join("work"),
            ..Settings::default()
        };
        let ports = Ports {
            store: store.clone(),
            blobs: blobs.clone(),
            queue: queue.clone(),
            source: Arc::new(LocalDirSource::default()),
            notifier,
            clock: Arc::new(SystemClock),
        };
        Ok(Self {
            pipeline: Pipeline::new(ports, settings, queue.clone()),
            queue,
            store,
            blobs,
            state_dir: state_dir.to_path_buf(),
        })
    }

    /// The generic pipeline inside (e.g. to wrap its consumer).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Report links point at this public base URL (see `Settings::public_url`).
    pub fn with_public_url(mut self, url: Option<String>) -> Self {
        self.pipeline.settings.public_url = url;
        self
    }

    /// Fetches sources through `source` (e.g. local directories plus
    /// GitHub tarballs for webhook runs, `GithubPorts::source`).
    pub fn with_source(mut self, source: Arc<dyn SourceProvider>) -> Self {
        self.pipeline.ports.source = source;
        self
    }
}
