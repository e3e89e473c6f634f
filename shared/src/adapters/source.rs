//! Source snapshots: packing a tree into the run's `source.tar.gz` once, and
//! extracting an archive safely (ours, or a tarball from GitHub).
//!
//! Extraction treats every archive as hostile: entries may only create paths
//! below the destination, symlinks may only point inside it, hard links,
//! devices and FIFOs are skipped, and the number of entries and the bytes
//! written are capped.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::app::ports::SourceProvider;
use crate::domain::model::SourceRef;
use crate::errors::SourceError;

/// Directories never copied into a snapshot: VCS data and our own state.
const ALWAYS_EXCLUDED: &[&str] = &[".git", ".testexec"];

/// Caps applied when packing and extracting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotLimits {
    pub max_entries: u64,
    pub max_bytes: u64,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        // Generous for real repositories, small enough that a hostile archive
        // cannot fill a Lambda's /tmp (10 GiB at most) or a worker's disk.
        Self {
            max_entries: 200_000,
            max_bytes: 4 << 30,
        }
    }
}

/// What a pack or extract handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    pub files: u64,
    pub bytes: u64,
    pub skipped: u64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Files of a working tree worth snapshotting, relative and sorted: honours
/// `.gitignore` (so virtualenvs and build output stay out) but keeps hidden
/// files such as `.coveragerc` that test runs read.
fn snapshot_entries(root: &Path, limits: &SnapshotLimits) -> Result<Vec<PathBuf>, SourceError> {
    let mut walker = ignore::WalkBuilder::new(root);
    walker
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| !ALWAYS_EXCLUDED.iter().any(|x| e.file_name() == *x));
    let mut out = Vec::new();
    for entry in walker.build() {
        let entry = entry.map_err(|e| SourceError::Backend {
            backend: "walk",
            source: Box::new(e),
        })?;
        let Some(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .to_path_buf();
        if rel.as_os_str().is_empty() {
            continue;
        }
        out.push(rel);
        if out.len() as u64 > limits.max_entries {
            return Err(SourceError::TooLarge {
                what: "files",
                limit: limits.max_entries,
            });
        }
    }
    out.sort();
    Ok(out)
}

/// Packs `root` into a gzip'd tar at `archive`. Deterministic: entries are
/// sorted and carry no owner or timestamp, so the same tree gives the same
/// bytes.
pub fn pack_dir(
    root: &Path,
    archive: &Path,
    limits: &SnapshotLimits,
) -> Result<SnapshotStats, SourceError> {
    let entries = snapshot_entries(root, limits)?;
    let file = File::create(archive).map_err(io_err(archive))?;
    let mut builder = tar::Builder::new(GzEncoder::new(
        io::BufWriter::new(file),
        Compression::fast(),
    ));
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut stats = SnapshotStats::default();
    for rel in entries {
        let full = root.join(&rel);
        let meta = fs::symlink_metadata(&full).map_err(io_err(&full))?;
        stats.bytes += meta.len();
        if stats.bytes > limits.max_bytes {
            return Err(SourceError::TooLarge {
                what: "bytes",
                limit: limits.max_bytes,
            });
        }
        builder
            .append_path_with_name(&full, &rel)
            .map_err(io_err(&full))?;
        stats.files += 1;
    }
    let encoder = builder.into_inner().map_err(io_err(archive))?;
    let mut writer = encoder.finish().map_err(io_err(archive))?;
    writer.flush().map_err(io_err(archive))?;
    Ok(stats)
}

/// Copies the snapshot-worthy files of `from` into `to` (same rules as
/// [`pack_dir`]).
pub fn copy_tree(
    from: &Path,
    to: &Path,
    limits: &SnapshotLimits,
) -> Result<SnapshotStats, SourceError> {
    let mut stats = SnapshotStats::default();
    for rel in snapshot_entries(from, limits)? {
        let src = from.join(&rel);
        let dst = to.join(&rel);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let meta = fs::symlink_metadata(&src).map_err(io_err(&src))?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).map_err(io_err(&src))?;
            if link_stays_inside(&rel, &target) {
                std::os::unix::fs::symlink(&target, &dst).map_err(io_err(&dst))?;
            } else {
                stats.skipped += 1;
            }
            continue;
        }
        stats.bytes += meta.len();
        if stats.bytes > limits.max_bytes {
            return Err(SourceError::TooLarge {
                what: "bytes",
                limit: limits.max_bytes,
            });
        }
        fs::copy(&src, &dst).map_err(io_err(&src))?;
        stats.files += 1;
    }
    Ok(stats)
}

/// Turns an archive path into a safe relative path, or explains why not.
fn safe_relative(path: &Path, strip_top_level: bool) -> Result<Option<PathBuf>, &'static str> {
    let mut out = PathBuf::new();
    let mut components = path.components().peekable();
    if strip_top_level {
        // GitHub tarballs wrap everything in `<owner>-<repo>-<sha>/`.
        match components.next() {
            Some(Component::Normal(_)) => {}
            Some(Component::CurDir) => {
                components.next();
            }
            _ => return Err("has no top-level directory to strip"),
        }
    }
    for c in components {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("climbs out with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// True when a symlink at `link` (relative to the tree root) pointing at
/// `target` resolves inside the tree, judged lexically.
///
/// `..` is only allowed before the first normal component: in `x/..` the
/// `x` may itself be a symlink, and then `..` climbs from *its* target, not
/// back to where the lexical count says (`a -> .` plus `b -> a/..` escapes).
/// Leading `..`s climb through the link's own parents, which extraction
/// guarantees are real directories (see [`below_symlink`]).
fn link_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    let mut descended = false;
    for c in target.components() {
        match c {
            Component::Normal(_) => {
                depth += 1;
                descended = true;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 || descended {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Extracts a gzip'd tar into `dest` (which must exist), refusing anything
/// that would land outside it. Symlinks are created last, so no file is ever
/// written through one.
pub fn extract_tar_gz(
    archive: impl Read,
    dest: &Path,
    limits: &SnapshotLimits,
    strip_top_level: bool,
) -> Result<SnapshotStats, SourceError> {
    let mut tar = tar::Archive::new(GzDecoder::new(archive));
    let mut stats = SnapshotStats::default();
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut entries_seen = 0u64;
    for entry in tar.entries().map_err(io_err(dest))? {
        let mut entry = entry.map_err(io_err(dest))?;
        entries_seen += 1;
        if entries_seen > limits.max_entries {
            return Err(SourceError::TooLarge {
                what: "entries",
                limit: limits.max_entries,
            });
        }
        let raw = entry.path().map_err(io_err(dest))?.into_owned();
        let shown = || raw.display().to_string();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        let rel = match safe_relative(&raw, strip_top_level) {
            Ok(Some(rel)) => rel,
            Ok(None) => continue,
            Err(reason) => {
                return Err(SourceError::UnsafeEntry {
                    entry: shown(),
                    reason,
                });
            }
        };
        let target = dest.join(&rel);
        match kind {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(io_err(&target))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().map_err(io_err(&target))?;
                // Saturating: a hostile header may claim a size near u64::MAX.
                if stats.bytes.saturating_add(size) > limits.max_bytes {
                    return Err(SourceError::TooLarge {
                        what: "bytes",
                        limit: limits.max_bytes,
                    });
                }
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                let mode = entry.header().mode().unwrap_or(0o644);
                let mut out = File::create(&target).map_err(io_err(&target))?;
                // `take` guards against a header that under-reports the size.
                let written = io::copy(
                    &mut (&mut entry).take(limits.max_bytes - stats.bytes + 1),
                    &mut out,
                )
                .map_err(io_err(&target))?;
                stats.bytes += written;
                if stats.bytes > limits.max_bytes {
                    return Err(SourceError::TooLarge {
                        what: "bytes",
                        limit: limits.max_bytes,
                    });
                }
                if mode & 0o111 != 0 {
                    use std::os::unix::fs::PermissionsExt;
                    // Keep the executable bit (scripts, gradlew); never setuid.
                    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                        .map_err(io_err(&target))?;
                }
                stats.files += 1;
            }
            tar::EntryType::Symlink => {
                let link_target = entry
                    .link_name()
                    .map_err(io_err(&target))?
                    .ok_or(SourceError::UnsafeEntry {
                        entry: shown(),
                        reason: "is a symlink without a target",
                    })?
                    .into_owned();
                if !link_stays_inside(&rel, &link_target) {
                    return Err(SourceError::UnsafeEntry {
                        entry: shown(),
                        reason: "is a symlink pointing outside the tree",
                    });
                }
                links.push((rel, link_target));
            }
            // Hard links, devices, FIFOs: nothing a test suite needs, and
            // each is a way to reach outside the tree.
            _ => stats.skipped += 1,
        }
    }
    for (rel, link_target) in links {
        // A link placed below an earlier link would land wherever that one
        // points, and its `..` would climb from there rather than from
        // where `link_stays_inside` assumed: refuse it.
        if below_symlink(dest, &rel) {
            return Err(SourceError::UnsafeEntry {
                entry: rel.display().to_string(),
                reason: "is a symlink inside another symlink",
            });
        }
        let at = dest.join(&rel);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        match std::os::unix::fs::symlink(&link_target, &at) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => stats.skipped += 1,
            Err(e) => {
                return Err(SourceError::Io {
                    path: at.display().to_string(),
                    source: e,
                });
            }
        }
    }
    Ok(stats)
}

/// True when a directory on the way from `dest` to `rel` is a symlink
/// (one created earlier in the same extraction).
fn below_symlink(dest: &Path, rel: &Path) -> bool {
    let Some(parent) = rel.parent() else {
        return false;
    };
    let mut at = dest.to_path_buf();
    for c in parent.components() {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => return true,
            Ok(_) => {}
            // Missing: it and everything below will be created as real
            // directories.
            Err(_) => return false,
        }
    }
    false
}

/// Source provider for local runs: the tree is a directory on this machine.
#[derive(Default)]
pub struct LocalDirSource {
    pub limits: SnapshotLimits,
}

#[async_trait]
impl SourceProvider for LocalDirSource {
    async fn fetch(&self, source: &SourceRef, dest: &Path) -> Result<(), SourceError> {
        let path = source
            .path
            .as_deref()
            .ok_or_else(|| SourceError::NotFound {
                repo: source.repo.clone(),
                detail: "a local run needs a directory path".into(),
            })?;
        let from = PathBuf::from(path);
        if !from.is_dir() {
            return Err(SourceError::NotFound {
                repo: source.repo.clone(),
                detail: format!("`{path}` is not a directory"),
            });
        }
        // Checked before anything is copied: a request naming a large tree
        // with no manifest must not cost a copy of it first.
        let manifest = from.join(crate::domain::manifest::MANIFEST_FILE);
        if !manifest.is_file() {
            return Err(SourceError::NotFound {
                repo: source.repo.clone(),
                detail: format!(
                    "no {} in `{path}`; add one (see docs/manifest.md)",
                    crate::domain::manifest::MANIFEST_FILE
                ),
            });
        }
        let to = dest.to_path_buf();
        let limits = self.limits;
        tokio::task::spawn_blocking(move || copy_tree(&from, &to, &limits))
            .await
            .map_err(|e| SourceError::Backend {
                backend: "local",
                source: Box::new(e),
            })??;
        Ok(())
    }
}

/// Local directories for requests that name a path; another provider (the
/// GitHub tarball API) for the rest. Lets one host serve both local runs
/// and webhook runs.
pub struct SourceRouter {
    pub local: LocalDirSource,
    pub remote: Option<std::sync::Arc<dyn SourceProvider>>,
}

#[async_trait]
impl SourceProvider for SourceRouter {
    async fn fetch(&self, source: &SourceRef, dest: &Path) -> Result<(), SourceError> {
        match (&source.path, &self.remote) {
            (Some(_), _) => self.local.fetch(source, dest).await,
            (None, Some(remote)) => remote.fetch(source, dest).await,
            (None, None) => Err(no_remote(source)),
        }
    }

    async fn resolve(&self, source: &SourceRef) -> Result<SourceRef, SourceError> {
        if source.path.is_some() || source.commit.is_some() {
            return Ok(source.clone());
        }
        match &self.remote {
            Some(remote) => remote.resolve(source).await,
            None => Err(no_remote(source)),
        }
    }
}

fn no_remote(source: &SourceRef) -> SourceError {
    SourceError::NotFound {
        repo: source.repo.clone(),
        detail: "no remote source is configured (set the GitHub credentials, see docs/github.md)"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tree_without_a_manifest_is_refused_before_any_copy() {
        let repo = tempfile::tempdir().unwrap();
        // 10 GiB (sparse): copying it would hit the snapshot limit, so a
        // NotFound here shows the manifest was checked first.
        let big = std::fs::File::create(repo.path().join("big.bin")).unwrap();
        big.set_len(10 << 30).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let source = SourceRef {
            repo: "local/big".into(),
            commit: None,
            git_ref: None,
            path: Some(repo.path().display().to_string()),
        };
        let err = LocalDirSource::default()
            .fetch(&source, &dest.path().join("tree"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SourceError::NotFound { detail, .. } if detail.contains("no testexec.toml")),
            "{err}"
        );
        assert!(!dest.path().join("tree").join("big.bin").exists());
    }

    fn tar_gz(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let raw = b.into_inner().unwrap();
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&raw).unwrap();
        gz.finish().unwrap()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    /// Writes a raw path into a header, bypassing the tar crate's own
    /// checks, the way a hostile archive would.
    fn raw_path(h: &mut tar::Header, path: &str) {
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
    }

    #[test]
    fn pack_then_extract_round_trips_and_honours_gitignore() {
        let src = tempfile::tempdir().unwrap();
        let root = src.path();
        fs::create_dir_all(root.join("tests/unit")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::create_dir_all(root.join("venv/lib")).unwrap();
        fs::write(root.join(".gitignore"), "venv/\n").unwrap();
        fs::write(root.join(".coveragerc"), "[run]\n").unwrap();
        fs::write(root.join("tests/unit/test_a.py"), "def test_a(): pass\n").unwrap();
        fs::write(root.join(".git/HEAD"), "ref").unwrap();
        fs::write(root.join("venv/lib/x.py"), "x").unwrap();
        std::os::unix::fs::symlink("tests/unit", root.join("alias")).unwrap();

        let out = tempfile::tempdir().unwrap();
        let archive = out.path().join("s.tar.gz");
        let stats = pack_dir(root, &archive, &SnapshotLimits::default()).unwrap();
        assert_eq!(stats.files, 4, "{stats:?}"); // .gitignore, .coveragerc, test_a.py, alias

        let dest = out.path().join("x");
        fs::create_dir(&dest).unwrap();
        extract_tar_gz(
            File::open(&archive).unwrap(),
            &dest,
            &SnapshotLimits::default(),
            false,
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(dest.join("tests/unit/test_a.py")).unwrap(),
            "def test_a(): pass\n"
        );
        assert!(dest.join(".coveragerc").exists());
        assert!(!dest.join(".git").exists());
        assert!(!dest.join("venv").exists());
        assert!(dest.join("alias/test_a.py").exists());

        // Deterministic bytes for the same tree.
        let again = out.path().join("t.tar.gz");
        pack_dir(root, &again, &SnapshotLimits::default()).unwrap();
        assert_eq!(fs::read(&archive).unwrap(), fs::read(&again).unwrap());
    }

    #[test]
    fn extraction_refuses_path_traversal() {
        let bytes = tar_gz(|b| {
            let mut h = header(tar::EntryType::Regular, 4);
            raw_path(&mut h, "../evil.txt");
            b.append(&h, &b"evil"[..]).unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("d");
        fs::create_dir(&dest).unwrap();
        let err = extract_tar_gz(&bytes[..], &dest, &SnapshotLimits::default(), false).unwrap_err();
        assert!(matches!(err, SourceError::UnsafeEntry { .. }), "{err}");
        assert!(err.to_string().contains("../evil.txt"));
        assert!(!dir.path().join("evil.txt").exists());
    }

    #[test]
    fn extraction_refuses_escaping_symlinks_and_writes_nothing_through_them() {
        for target in ["/etc", "../../outside", "a/../../.."] {
            let bytes = tar_gz(|b| {
                let mut h = header(tar::EntryType::Symlink, 0);
                h.set_link_name(target).unwrap();
                b.append_data(&mut h, "link", io::empty()).unwrap();
            });
            let dir = tempfile::tempdir().unwrap();
            let err = extract_tar_gz(&bytes[..], dir.path(), &SnapshotLimits::default(), false)
                .unwrap_err();
            assert!(err.to_string().contains("outside"), "{target}: {err}");
        }
    }

    #[test]
    fn extraction_strips_github_top_level_and_skips_hard_links() {
        let bytes = tar_gz(|b| {
            let mut h = header(tar::EntryType::Regular, 2);
            b.append_data(&mut h, "octo-repo-abc123/src/a.txt", &b"hi"[..])
                .unwrap();
            let mut l = header(tar::EntryType::Link, 0);
            l.set_link_name("octo-repo-abc123/src/a.txt").unwrap();
            b.append_data(&mut l, "octo-repo-abc123/hard", io::empty())
                .unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let stats =
            extract_tar_gz(&bytes[..], dir.path(), &SnapshotLimits::default(), true).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("src/a.txt")).unwrap(),
            "hi"
        );
        assert!(!dir.path().join("hard").exists());
        assert_eq!((stats.files, stats.skipped), (1, 1));
    }

    #[test]
    fn extraction_enforces_entry_and_byte_limits() {
        let bytes = tar_gz(|b| {
            for i in 0..5 {
                let mut h = header(tar::EntryType::Regular, 10);
                b.append_data(&mut h, format!("f{i}"), &[b'x'; 10][..])
                    .unwrap();
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let few = SnapshotLimits {
            max_entries: 3,
            max_bytes: 1 << 20,
        };
        assert!(matches!(
            extract_tar_gz(&bytes[..], dir.path(), &few, false),
            Err(SourceError::TooLarge {
                what: "entries",
                ..
            })
        ));
        let small = SnapshotLimits {
            max_entries: 100,
            max_bytes: 25,
        };
        assert!(matches!(
            extract_tar_gz(&bytes[..], dir.path(), &small, false),
            Err(SourceError::TooLarge { what: "bytes", .. })
        ));
    }

    #[test]
    fn symlink_judgement_is_lexical_and_relative_to_the_link() {
        assert!(link_stays_inside(Path::new("a/b/link"), Path::new("../c")));
        assert!(link_stays_inside(Path::new("a/link"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("link"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("a/link"), Path::new("/abs")));
    }
}
