//! Adapters: the outside world behind the ports. Each backend sits behind
//! its own cargo feature so a binary links only the one it uses.
//!
//! - [`local`] (feature `local`): SQLite run store, blob directory, local queue.
//! - [`aws`] (feature `aws`): DynamoDB, S3, SQS.
//! - [`gcp`] (feature `gcp`): Firestore, Cloud Storage, Pub/Sub.
//! - [`azure`] (feature `azure`): Table Storage, Blob Storage, Storage Queues.
//! - [`github`] (feature `github`): webhook verification, API client,
//!   Checks notifier, tarball source.
//! - [`source`]: source providers (local directory) and snapshot packing.
//! - [`process`]: running a test command (argv, process group, timeouts).
//! - `retry` (features `aws`, `gcp`, `github`, `azure`): the backoff schedules of the
//!   adapters' retry loops, on the `backon` crate.
//!
//! Store-agnostic helpers every backend shares (blob key rules, and the
//! argument checks of `create_run`, `complete_shard` and `finish_run`) live
//! in this file.

#[cfg(feature = "local")]
pub mod local;

#[cfg(feature = "aws")]
pub mod aws;

#[cfg(feature = "gcp")]
pub mod gcp;

#[cfg(feature = "azure")]
pub mod azure;

#[cfg(feature = "github")]
pub mod github;
pub mod process;
#[cfg(any(
    feature = "aws",
    feature = "gcp",
    feature = "github",
    feature = "azure"
))]
pub(crate) mod retry;
pub mod source;

// ---- blob keys, the same on every blob store ---------------------------------

use crate::errors::BlobError;

/// Name prefix of in-flight writes of the file blob store. No key segment
/// may start with it on any backend, so every key one blob store accepts,
/// the others accept too.
pub const TMP_PREFIX: &str = ".tmp-";

/// Rejects keys that could escape the root or that mean different files on
/// different systems.
pub fn validate_key(key: &str) -> Result<(), BlobError> {
    let reason = if key.is_empty() {
        Some("it is empty")
    } else if key.starts_with('/') {
        Some("it is absolute; keys are relative like `runs/<id>/log.txt`")
    } else if key.contains('\0') {
        Some("it contains a NUL byte")
    } else if key.contains('\\') {
        Some("it contains a backslash; use `/` between segments")
    } else if key.contains("..") {
        Some("it contains `..`")
    } else if key.ends_with('/') {
        Some("it ends with `/` (that is a prefix, not a key)")
    } else if key.split('/').any(|seg| seg.is_empty() || seg == ".") {
        Some("it has an empty or `.` segment")
    } else if key.split('/').any(|seg| seg.starts_with(TMP_PREFIX)) {
        Some("a segment starts with `.tmp-`, which is reserved for in-flight writes")
    } else if key.len() > 1024 {
        Some("it is longer than 1024 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(BlobError::InvalidKey {
            key: key.chars().take(200).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A prefix is a string filter, so it may be empty or end mid-segment; it
/// only has to be unable to leave the root.
pub fn validate_prefix(prefix: &str) -> Result<(), BlobError> {
    let reason = if prefix.starts_with('/') {
        Some("it is absolute")
    } else if prefix.contains('\0') {
        Some("it contains a NUL byte")
    } else if prefix.contains('\\') {
        Some("it contains a backslash")
    } else if prefix.contains("..") {
        Some("it contains `..`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(BlobError::InvalidKey {
            key: prefix.chars().take(200).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A download into a local file that is all or nothing: the bytes go to a
/// `.tmp-*` file beside the destination, which [`AtomicDownload::finish`]
/// syncs and renames over it. Dropped unfinished (an error, a cancelled
/// future), the temporary file is removed, so a failed download never
/// leaves a partial file and never touches an existing one. The object
/// stores' `get_to_file` share it.
#[cfg(any(feature = "aws", feature = "gcp"))]
pub(crate) struct AtomicDownload {
    tmp: std::path::PathBuf,
    dest: std::path::PathBuf,
    file: Option<tokio::fs::File>,
}

#[cfg(any(feature = "aws", feature = "gcp"))]
impl AtomicDownload {
    /// Creates the destination's directory and the temporary file. Errors
    /// name the step (`create directory`, `create file`).
    pub(crate) async fn start(
        dest: &std::path::Path,
    ) -> Result<Self, (&'static str, std::io::Error)> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| ("create directory", e))?;
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("blob");
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!("{TMP_PREFIX}{}-{n}-{name}", std::process::id()));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| ("create file", e))?;
        Ok(Self {
            tmp,
            dest: dest.to_path_buf(),
            file: Some(file),
        })
    }

    pub(crate) async fn write(
        &mut self,
        chunk: &[u8],
    ) -> Result<(), (&'static str, std::io::Error)> {
        use tokio::io::AsyncWriteExt;
        let file = self.file.as_mut().expect("written before finish");
        file.write_all(chunk).await.map_err(|e| ("write", e))
    }

    /// Flushes, syncs (without it a power loss after the rename could leave
    /// an empty file) and renames over the destination.
    pub(crate) async fn finish(mut self) -> Result<(), (&'static str, std::io::Error)> {
        use tokio::io::AsyncWriteExt;
        let mut file = self.file.take().expect("finished once");
        file.flush().await.map_err(|e| ("write", e))?;
        file.sync_data().await.map_err(|e| ("sync", e))?;
        drop(file);
        tokio::fs::rename(&self.tmp, &self.dest)
            .await
            .map_err(|e| ("rename", e))?;
        // Renamed: nothing left for Drop to remove.
        self.tmp = std::path::PathBuf::new();
        Ok(())
    }
}

#[cfg(any(feature = "aws", feature = "gcp"))]
impl Drop for AtomicDownload {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Shuffles `items` deterministically by `seed` (Fisher–Yates over
/// SplitMix64), for the reordering faults of `testkit::faults`: SplitMix64
/// is tiny, well mixed and stable across versions, unlike a dependency's RNG.
#[cfg(feature = "testkit")]
pub(crate) fn seeded_shuffle<T>(items: &mut [T], seed: u64) {
    fn splitmix64(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let mut rng = seed;
    for i in (1..items.len()).rev() {
        let j = (splitmix64(&mut rng) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Refuses a shard list that does not describe `run` exactly: one record per
/// index `0..shard_count`, each of this run. Every run store checks this
/// before writing, so a planner bug cannot leave a run that never finishes.
pub fn check_shard_records(
    run: &crate::domain::model::Run,
    shards: &[crate::domain::model::ShardRecord],
) -> Result<(), crate::errors::StoreError> {
    let invalid = |message: String| crate::errors::StoreError::Invalid {
        run: run.id.to_string(),
        message,
    };
    if shards.len() != run.shard_count as usize {
        return Err(invalid(format!(
            "shard_count is {} but {} shard records were given",
            run.shard_count,
            shards.len()
        )));
    }
    let mut seen = vec![false; shards.len()];
    for shard in shards {
        if shard.id.run != run.id {
            return Err(invalid(format!(
                "shard {} belongs to another run",
                shard.id
            )));
        }
        match seen.get_mut(shard.id.index as usize) {
            Some(slot) if !*slot => *slot = true,
            Some(_) => {
                return Err(invalid(format!(
                    "shard index {} given twice",
                    shard.id.index
                )));
            }
            None => {
                return Err(invalid(format!(
                    "shard index {} is out of range for {} shards",
                    shard.id.index, run.shard_count
                )));
            }
        }
    }
    Ok(())
}

/// Refuses `finish_run` to a status that is not final; every run store
/// checks this before its conditional write.
pub fn check_final_status(
    run: crate::domain::model::RunId,
    status: crate::domain::model::RunStatus,
) -> Result<(), crate::errors::StoreError> {
    if status.is_final() {
        return Ok(());
    }
    Err(crate::errors::StoreError::Invalid {
        run: run.to_string(),
        message: format!("finish_run needs a final status, got `{status}`"),
    })
}

/// Refuses a `complete_shard` whose outcome is still `pending`: completing
/// must move the shard out of `pending`, since that is the very condition
/// every store's exactly-once write tests (a "completion" to `pending` would
/// be counted on the run yet leave the shard to be completed again). Every
/// run store checks this before touching anything.
pub fn check_completion_status(
    shard: crate::domain::model::ShardId,
    status: crate::domain::model::ShardStatus,
) -> Result<(), crate::errors::StoreError> {
    if status != crate::domain::model::ShardStatus::Pending {
        return Ok(());
    }
    Err(crate::errors::StoreError::Invalid {
        run: shard.run.to_string(),
        message: format!("shard {shard} cannot be completed as `pending`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{RunId, ShardId, ShardStatus};
    use crate::errors::StoreError;

    #[test]
    fn a_completion_must_leave_pending() {
        let run = RunId::new();
        let shard = ShardId::new(run, 3);
        for done in [
            ShardStatus::Passed,
            ShardStatus::Failed,
            ShardStatus::Errored,
        ] {
            assert!(check_completion_status(shard, done).is_ok(), "{done:?}");
        }
        match check_completion_status(shard, ShardStatus::Pending) {
            Err(StoreError::Invalid { run: r, message }) => {
                assert_eq!(r, run.to_string());
                assert_eq!(
                    message,
                    format!("shard {run}/3 cannot be completed as `pending`")
                );
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}
