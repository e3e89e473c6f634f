//! Reproducers found by fuzzing `source::extract_tar_gz` (fuzz/fuzz_targets/source_archive.rs).
//! Each archive is built here from the minimised input's entries so the test
//! says what it checks; see docs/fuzzing.md.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use testexec::adapters::source::{SnapshotLimits, extract_tar_gz};
use testexec::errors::SourceError;

/// A gzip'd tar holding only symlinks, `(path, target)`, in order.
fn links_archive(links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, target) in links {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_link_name(target).unwrap();
        b.append_data(&mut h, path, io::empty()).unwrap();
    }
    let raw = b.into_inner().unwrap();
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&raw).unwrap();
    gz.finish().unwrap()
}

/// Extracts into `<scratch>/dest` and returns the result and what ended up
/// beside `dest`.
fn extract(archive: &[u8]) -> (Result<(), SourceError>, Vec<String>, tempfile::TempDir) {
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let result = extract_tar_gz(archive, &dest, &SnapshotLimits::default(), false).map(|_| ());
    let beside = fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "dest")
        .collect();
    (result, beside, scratch)
}

/// Every symlink under `dir` that resolves must resolve inside `root`.
fn assert_links_inside(dir: &Path, root: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            if let Ok(resolved) = fs::canonicalize(&path) {
                assert!(
                    resolved.starts_with(root),
                    "{} resolves to {}",
                    path.display(),
                    resolved.display()
                );
            }
        } else if meta.is_dir() {
            assert_links_inside(&path, root);
        }
    }
}

/// `a -> .` then `a/b -> ..`: judged lexically `a/b/..` is `a`, inside; on
/// disk `a/b` is `dest/b`, and `..` from there is the directory holding
/// `dest`. A third link `a/b/c` was then created outside `dest`.
#[test]
fn a_link_below_a_link_cannot_escape_or_write_outside() {
    let (result, beside, scratch) =
        extract(&links_archive(&[("a", "."), ("a/b", ".."), ("a/b/c", "x")]));
    assert!(beside.is_empty(), "written outside dest: {beside:?}");
    let err = result.unwrap_err();
    assert!(matches!(err, SourceError::UnsafeEntry { .. }), "{err}");
    let root = fs::canonicalize(scratch.path().join("dest")).unwrap();
    assert_links_inside(&root, &root);
}

/// `a -> .` then `b -> a/..`: `..` after a component that is itself a
/// symlink climbs from the symlink's target, out of `dest`.
#[test]
fn dot_dot_after_a_component_is_refused() {
    let (result, beside, scratch) = extract(&links_archive(&[("a", "."), ("b", "a/..")]));
    assert!(beside.is_empty(), "written outside dest: {beside:?}");
    let err = result.unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    let root = fs::canonicalize(scratch.path().join("dest")).unwrap();
    assert_links_inside(&root, &root);
}

/// Links that only climb through their own (real) parents still work.
#[test]
fn leading_dot_dots_inside_the_tree_still_extract() {
    let (result, beside, scratch) = extract(&links_archive(&[
        ("docs/readme", "../README.md"),
        ("x/y/z", "../../docs"),
    ]));
    result.unwrap();
    assert!(beside.is_empty());
    let dest = scratch.path().join("dest");
    assert_eq!(
        fs::read_link(dest.join("docs/readme")).unwrap(),
        Path::new("../README.md")
    );
    assert_eq!(
        fs::read_link(dest.join("x/y/z")).unwrap(),
        Path::new("../../docs")
    );
}

/// A header claiming a size near `u64::MAX` overflowed the byte budget
/// check (`stats.bytes + size`), a panic wherever overflow checks are on.
#[test]
fn a_huge_declared_size_is_refused_not_overflowed() {
    // One small file first so the running total is non-zero.
    let mut raw = Vec::new();
    {
        let mut b = tar::Builder::new(&mut raw);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "first", &b"x"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(u64::MAX);
        h.set_mode(0o644);
        h.set_path("huge").unwrap();
        h.set_cksum();
        b.append(&h, io::empty()).unwrap_or(());
    }
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&raw).unwrap();
    let archive = gz.finish().unwrap();
    let (result, beside, _scratch) = extract(&archive);
    assert!(beside.is_empty());
    assert!(result.is_err());
}
