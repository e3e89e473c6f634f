//! Which files of the repository a suite selects (`files` minus `exclude`).

use std::fs;
use std::path::{Path, PathBuf};

use globset::{GlobSet, GlobSetBuilder};

use super::{MAX_LISTED_FILES, MAX_WALK_DEPTH, Suite, build_glob};
use crate::errors::ManifestError;

/// Directories never worth walking: VCS data, our own scratch space, and
/// dependency/build trees that are huge and full of other projects' tests.
/// Hidden directories (`.venv`, `.tox`, `.git`…) are skipped as well.
const SKIPPED_DIRS: &[&str] = &["node_modules", "target", "__pycache__"];

fn skipped(name: &str) -> bool {
    name.starts_with('.') || SKIPPED_DIRS.contains(&name)
}

fn glob_set(suite: &Suite, globs: &[String]) -> Result<GlobSet, ManifestError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        // Parsing validated every glob; a hand-built suite gets an error.
        let glob = build_glob(g).map_err(|e| ManifestError::Walk {
            suite: suite.name.clone(),
            path: g.clone(),
            message: format!("invalid glob: {}", e.kind()),
        })?;
        b.add(glob);
    }
    b.build().map_err(|e| ManifestError::Walk {
        suite: suite.name.clone(),
        path: String::new(),
        message: e.to_string(),
    })
}

pub(crate) fn list_files(suite: &Suite, root: &Path) -> Result<Vec<String>, ManifestError> {
    if suite.files.is_empty() {
        return Err(ManifestError::NoFileGlobs {
            suite: suite.name.clone(),
        });
    }
    let include = glob_set(suite, &suite.files)?;
    let exclude = glob_set(suite, &suite.exclude)?;
    let walk_err = |path: &Path, e: std::io::Error| ManifestError::Walk {
        suite: suite.name.clone(),
        path: path.display().to_string(),
        message: e.to_string(),
    };

    let canon_root = fs::canonicalize(root).map_err(|e| walk_err(root, e))?;
    let start = match suite.working_dir.as_deref() {
        Some(w) if w != "." => root.join(w),
        _ => root.to_path_buf(),
    };
    // working_dir was checked for `..` at parse time, but it may still be a
    // symlink pointing out of the repository.
    let canon_start = fs::canonicalize(&start)
        .ok()
        .filter(|s| s.starts_with(&canon_root) && s.is_dir());
    let Some(canon_start) = canon_start else {
        return Err(ManifestError::BadWorkingDir {
            suite: suite.name.clone(),
            working_dir: suite.working_dir.clone().unwrap_or_default(),
            root: root.display().to_string(),
        });
    };

    let mut out = Vec::new();
    // Iterative walk: (absolute dir, relative prefix, depth).
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(canon_start, String::new(), 0)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| walk_err(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| walk_err(&dir, e))?;
            // Names that are not UTF-8 cannot be matched by globs nor passed
            // faithfully in a String argv; leave them out.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            // `file_type` does not follow symlinks.
            let ft = entry.file_type().map_err(|e| walk_err(&entry.path(), e))?;
            if ft.is_dir() {
                if skipped(&name) || exclude.is_match(&rel) {
                    continue;
                }
                if depth + 1 > MAX_WALK_DEPTH {
                    return Err(ManifestError::TooDeep {
                        suite: suite.name.clone(),
                        path: rel,
                        limit: MAX_WALK_DEPTH,
                    });
                }
                stack.push((entry.path(), rel, depth + 1));
                continue;
            }
            if ft.is_symlink() {
                // Never follow symlinked directories (no loops, no escaping
                // the tree); a symlinked file counts only if it resolves
                // to a file inside the repository.
                match fs::canonicalize(entry.path()) {
                    Ok(target) if target.starts_with(&canon_root) && target.is_file() => {}
                    _ => continue,
                }
            } else if !ft.is_file() {
                continue; // sockets, fifos, devices
            }
            if include.is_match(&rel) && !exclude.is_match(&rel) {
                if out.len() >= MAX_LISTED_FILES {
                    return Err(ManifestError::TooManyFiles {
                        suite: suite.name.clone(),
                        root: root.display().to_string(),
                        limit: MAX_LISTED_FILES,
                    });
                }
                out.push(rel);
            }
        }
    }
    if out.is_empty() {
        return Err(ManifestError::NoFilesMatch {
            suite: suite.name.clone(),
            globs: suite.files.clone(),
            exclude: suite.exclude.clone(),
            root: start.display().to_string(),
        });
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}
