//! Embedded backends for running testexec on one machine (`testexec run`,
//! `testexec serve`): state lives under `.testexec/` in the project.
//!
//! - [`SqliteRunStore`] keeps runs in `.testexec/runs.sqlite3`
//! - [`FsBlobStore`] keeps blobs in `.testexec/blobs/<key>`
//! - [`LocalQueue`] keeps the queues in `.testexec/queue.sqlite3`, shared
//!   by every process on the state directory (`serve`, `run`, `worker`)
//!
//! See `docs/backends.md` for the semantics and how they map to AWS.

pub mod blob_dir;
pub mod queue;
pub mod sqlite;
mod sqlite_file;

pub use blob_dir::FsBlobStore;
pub use queue::{LocalQueue, QueueConfig};
pub use sqlite::SqliteRunStore;

use std::path::{Path, PathBuf};

/// Paths of the local backends under a state directory (usually `.testexec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLayout {
    pub root: PathBuf,
}

impl LocalLayout {
    pub fn new(root: impl AsRef<Path>) -> Self {
        Self {
            root: root.as_ref().to_path_buf(),
        }
    }

    /// The SQLite run store's database file.
    pub fn runs_db(&self) -> PathBuf {
        self.root.join("runs.sqlite3")
    }

    /// The queues' database file.
    pub fn queue_db(&self) -> PathBuf {
        self.root.join("queue.sqlite3")
    }

    /// The blob store's root directory.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }
}
