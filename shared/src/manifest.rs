//! STAND-IN for the manifest being written on `wip/manifest`; replaced at
//! merge. Only the interface `testexec plan` uses, over the subset of the
//! documented schema it needs: `[suites.NAME] command = [..]`,
//! `files = ["glob", ...]`, `shards = N | "auto"`, `target_shard_seconds = S`;
//! a `{tests}` element in `command` means the runner selects tests.

use std::collections::BTreeMap;
use std::path::Path;

pub const MANIFEST_FILE: &str = "testexec.toml";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(pub String);

#[derive(Debug, Clone, PartialEq)]
pub enum Shards {
    Count(u32),
    Auto { target_shard_seconds: u64 },
}

#[derive(Debug, Clone)]
pub struct Suite {
    pub shards: Shards,
    include: Vec<String>,
    test_selection: bool,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub suites: BTreeMap<String, Suite>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let err = |m: String| ManifestError(format!("{}: {m}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let value: toml::Table = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut suites = BTreeMap::new();
        for (name, s) in value
            .get("suites")
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default()
        {
            let include = s
                .get("files")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let shards = match s.get("shards") {
                Some(toml::Value::Integer(n)) => Shards::Count(*n as u32),
                _ => Shards::Auto {
                    target_shard_seconds: s
                        .get("target_shard_seconds")
                        .and_then(|v| v.as_integer())
                        .unwrap_or(300) as u64,
                },
            };
            let test_selection = s
                .get("command")
                .and_then(|v| v.as_array())
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("{tests}")));
            suites.insert(
                name,
                Suite {
                    shards,
                    include,
                    test_selection,
                },
            );
        }
        Ok(Manifest { suites })
    }

    pub fn suite(&self, name: &str) -> Result<&Suite, ManifestError> {
        self.suites
            .get(name)
            .ok_or_else(|| ManifestError(format!("no suite `{name}`")))
    }

    pub fn default_suite(&self) -> Result<&Suite, ManifestError> {
        match self.suites.len() {
            1 => Ok(self
                .suites
                .values()
                .next()
                .unwrap_or_else(|| unreachable!())),
            _ => Err(ManifestError(
                "several suites: pick one with --suite".into(),
            )),
        }
    }
}

impl Suite {
    pub fn supports_test_selection(&self) -> bool {
        self.test_selection
    }

    pub fn list_files(&self, root: &Path) -> Result<Vec<String>, ManifestError> {
        let mut b = globset::GlobSetBuilder::new();
        for g in &self.include {
            b.add(globset::Glob::new(g).map_err(|e| ManifestError(e.to_string()))?);
        }
        let set = b.build().map_err(|e| ManifestError(e.to_string()))?;
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)
                .map_err(|e| ManifestError(format!("{}: {e}", dir.display())))?
            {
                let p = entry.map_err(|e| ManifestError(e.to_string()))?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(root) {
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    if set.is_match(&rel) {
                        out.push(rel);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}
