//! [`BlobStore`] on a directory (`.testexec/blobs`): key `a/b/c` is the file
//! `<root>/a/b/c`.
//!
//! Writes go to a temporary file in the destination's directory, are flushed
//! to disk, then `rename`d over the key: readers see the old object or the
//! new one, never half of one, even if the process dies mid-write. Temporary
//! files start with [`TMP_PREFIX`]; `list` skips them and keys may not use it.
//!
//! File I/O is blocking, so every operation runs in `spawn_blocking`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::app::ports::BlobStore;
use crate::errors::BlobError;

const BACKEND: &str = "files";

// Key rules are shared with the other blob stores, so `InvalidKey` means
// the same thing on every backend.
use crate::adapters::validate_prefix;
pub use crate::adapters::{TMP_PREFIX, validate_key};

/// Distinguishes concurrent writes of one process to the same key.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Blob store rooted at a directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Creates the root if needed. The root is made absolute so `link` can
    /// return a usable `file://` URL whatever the working directory later is.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, BlobError> {
        let root = root.as_ref();
        let io = |e| BlobError::Backend {
            backend: BACKEND,
            operation: "open",
            key: root.display().to_string(),
            source: Box::new(e),
        };
        std::fs::create_dir_all(root).map_err(io)?;
        let root = std::fs::canonicalize(root).map_err(io)?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a key is stored in (after validating the key).
    pub fn path_of(&self, key: &str) -> Result<PathBuf, BlobError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_err(operation: &'static str, key: &str, e: std::io::Error) -> BlobError {
    // A directory at the key's path is a prefix of other keys, not an object.
    if matches!(
        e.kind(),
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
    ) {
        BlobError::NotFound {
            key: key.to_string(),
        }
    } else {
        BlobError::Backend {
            backend: BACKEND,
            operation,
            key: key.to_string(),
            source: Box::new(e),
        }
    }
}

async fn blocking<T: Send + 'static>(
    operation: &'static str,
    key: &str,
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Backend {
            backend: BACKEND,
            operation,
            key: key.to_string(),
            source: Box::new(e),
        })?
}

/// Writes a file beside `dest` with `fill`, syncs it, renames it over `dest`.
fn atomic_write(
    dest: &Path,
    key: &str,
    durable: bool,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), BlobError> {
    let dir = dest.parent().unwrap_or(dest);
    // Not `io_err`: a failure here (say, a blob where a directory is
    // needed) is a failed write, never "not found".
    std::fs::create_dir_all(dir).map_err(|e| BlobError::Backend {
        backend: BACKEND,
        operation: "create directory",
        key: key.to_string(),
        source: Box::new(e),
    })?;
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("blob");
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{TMP_PREFIX}{}-{n}-{name}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        fill(&mut file)?;
        // Without this a power loss after the rename could leave an empty
        // blob. A download (`get_to_file`) skips it: its copy is scratch,
        // fetched again after a crash, and a sync per shard was most of
        // collect's time.
        if durable {
            file.sync_data()?;
        }
        drop(file);
        std::fs::rename(&tmp, dest)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        // A missing source file (put_file) is an error about the source, not
        // "blob not found".
        return Err(BlobError::Backend {
            backend: BACKEND,
            operation: "write",
            key: key.to_string(),
            source: Box::new(e),
        });
    }
    Ok(())
}

/// RFC 3986's unreserved characters and `/` stay as they are.
const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// A `file://` URL for `path`, percent-encoded.
fn file_url(path: &Path) -> String {
    let text = path.to_string_lossy();
    format!(
        "file://{}",
        percent_encoding::utf8_percent_encode(&text, PATH)
    )
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(TMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, root, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            if let Some(rel) = rel.to_str() {
                out.push(rel.replace(std::path::MAIN_SEPARATOR, "/"));
            }
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &str, body: Vec<u8>, _content_type: &str) -> Result<(), BlobError> {
        let dest = self.path_of(key)?;
        let k = key.to_string();
        blocking("put", key, move || {
            atomic_write(&dest, &k, true, |f| std::io::Write::write_all(f, &body))
        })
        .await
    }

    async fn put_file(&self, key: &str, path: &Path, _content_type: &str) -> Result<(), BlobError> {
        let dest = self.path_of(key)?;
        let (k, src) = (key.to_string(), path.to_path_buf());
        blocking("put_file", key, move || {
            let mut source = std::fs::File::open(&src).map_err(|e| BlobError::Backend {
                backend: BACKEND,
                operation: "open source file",
                key: format!("{k} (from {})", src.display()),
                source: Box::new(e),
            })?;
            atomic_write(&dest, &k, true, |f| {
                std::io::copy(&mut source, f).map(|_| ())
            })
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path_of(key)?;
        tokio::fs::read(&path)
            .await
            .map_err(|e| io_err("get", key, e))
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        let src = self.path_of(key)?;
        let (k, dest) = (key.to_string(), path.to_path_buf());
        blocking("get_to_file", key, move || {
            let mut source = std::fs::File::open(&src).map_err(|e| io_err("get_to_file", &k, e))?;
            // Same atomic write, so a reader of `dest` never sees a partial copy.
            atomic_write(&dest, &k, false, |f| {
                std::io::copy(&mut source, f).map(|_| ())
            })
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                Ok(false)
            }
            Err(e) => Err(io_err("exists", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        validate_prefix(prefix)?;
        // Walk only the deepest directory the prefix names in full.
        let dir = match prefix.rfind('/') {
            Some(i) => self.root.join(&prefix[..i]),
            None => self.root.clone(),
        };
        let (root, p) = (self.root.clone(), prefix.to_string());
        blocking("list", prefix, move || {
            let mut keys = Vec::new();
            walk(&dir, &root, &mut keys).map_err(|e| io_err("list", &p, e))?;
            keys.retain(|k| k.starts_with(&p));
            keys.sort();
            Ok(keys)
        })
        .await
    }

    async fn link(&self, key: &str) -> Result<Option<String>, BlobError> {
        Ok(Some(file_url(&self.path_of(key)?)))
    }
}
