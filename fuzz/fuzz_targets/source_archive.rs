//! Fuzzes snapshot extraction (`source::extract_tar_gz`).
//!
//! The input is the *uncompressed* tar stream: the target gzips it before
//! extraction, because mutating compressed bytes would almost always break
//! the deflate stream and never reach the tar logic.
//!
//! Invariants (any violation aborts, and libFuzzer saves the input):
//! - extraction never panics;
//! - nothing is ever created outside `dest`: after each input the scratch
//!   directory holding `dest` contains `dest` alone;
//! - no symlink left in `dest` resolves to a path outside it (a link out of
//!   the tree lets a later reader, or writer, escape).
#![no_main]

use std::fs;
use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;
use testexec::adapters::source::{SnapshotLimits, extract_tar_gz};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, tar)) = data.split_first() else {
        return;
    };
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(tar).expect("gzip into memory");
    let archive = gz.finish().expect("gzip into memory");

    let scratch = tempfile::tempdir().expect("temp dir");
    let dest = scratch.path().join("dest");
    fs::create_dir(&dest).expect("create dest");
    // Small limits so the size and count checks are reached too.
    let limits = SnapshotLimits {
        max_entries: 64,
        max_bytes: 1 << 20,
    };
    let _ = extract_tar_gz(archive.as_slice(), &dest, &limits, flags & 1 == 1);

    let beside: Vec<_> = fs::read_dir(scratch.path())
        .expect("list scratch")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n != "dest")
        .collect();
    assert!(
        beside.is_empty(),
        "extraction wrote outside dest: {beside:?}"
    );

    let root = fs::canonicalize(&dest).expect("canonical dest");
    check_links(&dest, &root);
});

/// Walks `dir` without following links; every link that resolves must
/// resolve inside `root` (dangling links cannot be followed, so they are
/// harmless until something makes them resolve, which the check on later
/// links would catch).
fn check_links(dir: &Path, root: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(resolved) = fs::canonicalize(&path) {
                assert!(
                    resolved.starts_with(root),
                    "symlink {} resolves outside dest, to {}",
                    path.display(),
                    resolved.display()
                );
            }
        } else if meta.is_dir() {
            check_links(&path, root);
        }
    }
}
