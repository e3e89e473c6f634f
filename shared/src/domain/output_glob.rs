//! Finding the files a command wrote (JUnit reports, artifacts) by glob.

use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSetBuilder};

/// Most files one glob search may return: a runaway glob such as `**` in a
/// large tree must not turn into an upload of everything.
pub const MAX_MATCHES: usize = 10_000;

/// Files under `base` matching any of `patterns` (relative to `base`, or
/// absolute), sorted. Ignore files are not honoured: reports often live in
/// ignored directories such as `target/`. Invalid patterns match nothing
/// (the manifest validated them before they got here).
pub fn find_matching(base: &Path, patterns: &[String]) -> Vec<PathBuf> {
    // Patterns are matched against the walked paths as text: a relative or
    // `./`-prefixed base would make `./x/TEST-*.xml` miss `x/TEST-a.xml`.
    let base = &std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let mut out = Vec::new();
    for pattern in patterns {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let text = full.to_string_lossy();
        if !text.contains(['*', '?', '[', '{']) {
            if full.is_file() {
                out.push(full);
            }
            continue;
        }
        // Walk from the longest literal directory prefix of the pattern.
        let root: PathBuf = full
            .components()
            .take_while(|c| {
                !c.as_os_str()
                    .to_string_lossy()
                    .contains(['*', '?', '[', '{'])
            })
            .collect();
        let Ok(glob) = Glob::new(&text) else { continue };
        let Ok(set) = GlobSetBuilder::new().add(glob).build() else {
            continue;
        };
        let walker = ignore::WalkBuilder::new(&root)
            .standard_filters(false)
            .follow_links(false)
            .build();
        for entry in walker.flatten() {
            if entry.file_type().is_some_and(|t| t.is_file()) && set.is_match(entry.path()) {
                out.push(entry.into_path());
                if out.len() >= MAX_MATCHES {
                    break;
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out.truncate(MAX_MATCHES);
    out
}

/// Path of `path` relative to `base`, `/`-separated, if it lies below it.
pub fn relative_slash(base: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(base).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| match c {
            Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_literal_relative_and_absolute_globs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("target/surefire-reports")).unwrap();
        std::fs::write(root.join("target/surefire-reports/TEST-a.xml"), "x").unwrap();
        std::fs::write(root.join("target/surefire-reports/TEST-b.xml"), "x").unwrap();
        std::fs::write(root.join("target/surefire-reports/other.txt"), "x").unwrap();
        std::fs::write(root.join("junit.xml"), "x").unwrap();
        std::fs::write(root.join(".gitignore"), "target/\n").unwrap();

        let found = find_matching(root, &["target/surefire-reports/TEST-*.xml".into()]);
        let names: Vec<String> = found
            .iter()
            .map(|p| relative_slash(root, p).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "target/surefire-reports/TEST-a.xml",
                "target/surefire-reports/TEST-b.xml"
            ]
        );

        let abs = root.join("junit.xml").display().to_string();
        assert_eq!(
            find_matching(Path::new("/nonexistent"), std::slice::from_ref(&abs)),
            vec![PathBuf::from(&abs)]
        );
        assert!(find_matching(root, &["missing.xml".into()]).is_empty());
        assert_eq!(
            find_matching(root, &["**/*.xml".into(), "junit.xml".into()]).len(),
            3
        );
    }
}
