//! The repository's `testexec.toml`: one table per suite, see `docs/manifest.md`.
//!
//! - `parse`: TOML → validated [`Manifest`], every error located
//!   (`origin:line:column`, suite, field) with a hint.
//! - `placeholders`: `{files}`, `{junit}`… expanded into argv elements,
//!   never through a shell.
//! - `files`: which files of the repository a suite selects.

mod parse;
mod placeholders;
mod selection;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::selector::TestIdFormat;
pub use crate::errors::{ManifestError, ManifestLocation};
use placeholders::{Placeholder, Render};

/// The manifest's file name, at the root of the repository under test.
pub const MANIFEST_FILE: &str = "testexec.toml";
/// Every input has a size limit; a manifest is a few kilobytes in practice.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Upper bound of `shards` (and of what `"auto"` may plan).
pub const MAX_SHARDS: u32 = 1000;
/// Upper bound of `timeout_seconds` and `target_shard_seconds`: one day.
pub const MAX_TIMEOUT_SECONDS: u64 = 86_400;
/// Default `timeout_seconds`: ten minutes, under AWS Lambda's 15-minute cap
/// with room left for setup and uploading results.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 600;
/// Upper bound of `retries`: more than this hides a broken test, not a flake.
pub const MAX_RETRIES: u32 = 10;
/// Upper bound of the number of suites in one manifest.
pub const MAX_SUITES: usize = 256;
/// `list_files` refuses to return more files than this.
pub const MAX_LISTED_FILES: usize = 1_000_000;
/// `list_files` does not descend deeper than this many directories.
pub const MAX_WALK_DEPTH: usize = 64;

/// A parsed and validated `testexec.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub suites: BTreeMap<String, Suite>,
    /// `[flaky]` and `[quarantine]`: defaults when absent.
    #[serde(default)]
    pub history: crate::domain::history::triage::HistoryPolicy,
}

/// One `[suites.<name>]` table, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    pub name: String,
    /// Commands run in order before `command`, each an argv.
    pub setup: Vec<Vec<String>>,
    /// The test command, an argv with placeholders.
    pub command: Vec<String>,
    /// Globs relative to the working directory selecting the test files.
    pub files: Vec<String>,
    pub exclude: Vec<String>,
    pub shards: Shards,
    pub timeout_seconds: u64,
    pub retries: u32,
    /// Globs (relative to the working directory) of the JUnit files the
    /// command writes; may contain scalar placeholders.
    pub junit: Vec<String>,
    pub artifacts: Vec<String>,
    /// Extra environment; values may contain scalar placeholders.
    pub env: BTreeMap<String, String>,
    /// Relative to the repository root; `None` is the root itself.
    pub working_dir: Option<String>,
    /// How `{tests}` names one test (retries, splitting slow files by test).
    #[serde(default)]
    pub test_id: TestIdFormat,
    /// May a file longer than the ideal shard be cut into groups of tests
    /// run by different shards? Needs `{tests}`, `{skip_tests}` and a
    /// `test_id` whose runner can leave out single tests (docs/manifest.md).
    #[serde(default)]
    pub split_by_test: bool,
    /// How shards get their work: a fixed share each, or batches taken
    /// from the queue as workers free up.
    #[serde(default)]
    pub mode: Mode,
    /// Exit codes meaning the runner ran to a verdict (passed or failed).
    #[serde(default = "default_completed_exit_codes")]
    pub completed_exit_codes: Vec<i32>,
}

/// Most runners exit 0 when tests pass and 1 when some fail.
pub const DEFAULT_COMPLETED_EXIT_CODES: [i32; 2] = [0, 1];

fn default_completed_exit_codes() -> Vec<i32> {
    DEFAULT_COMPLETED_EXIT_CODES.to_vec()
}

/// How a suite's work reaches its workers (docs/manifest.md, `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One shard per worker, balanced up front by the timing history.
    #[default]
    Static,
    /// Batches, slowest first, taken by `shards` workers as they finish.
    Queue,
}

/// How many shards a suite runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shards {
    Count(u32),
    /// Let the planner pick a count so each shard takes about this long.
    Auto {
        target_shard_seconds: u64,
    },
}

/// The values placeholders expand to, for one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Expansion<'a> {
    pub files: &'a [String],
    /// `{tests}` and `{skip_tests}` as argv elements, already rendered for
    /// the runner ([`Suite::render_tests`]).
    pub tests: &'a [String],
    pub skip_tests: &'a [String],
    pub junit: &'a str,
    pub shard: u32,
    pub shard_count: u32,
    pub run_id: &'a str,
}

impl Manifest {
    /// Parses and validates manifest text; `origin` (usually the path) is
    /// only used in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest, ManifestError> {
        parse::parse(text, origin)
    }

    /// Reads and parses a manifest, refusing files over [`MAX_MANIFEST_BYTES`].
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        Self::load_as(path, &path.display().to_string())
    }

    /// [`Manifest::load`] for a copy of the user's file (a checkout in a
    /// scratch directory): errors name `shown`, the file the user edits
    /// (`/home/me/repo/testexec.toml`, `owner/name@sha:testexec.toml`),
    /// never the temporary copy.
    pub fn load_as(path: &Path, shown: &str) -> Result<Manifest, ManifestError> {
        let shown = shown.to_string();
        let read_err = |e: std::io::Error| ManifestError::Read {
            path: shown.clone(),
            message: e.to_string(),
        };
        let file = crate::domain::regular_file::open(path).map_err(|e| match e {
            crate::domain::regular_file::OpenError::Io(e) => read_err(e),
            crate::domain::regular_file::OpenError::NotAFile(what) => ManifestError::Read {
                path: shown.clone(),
                message: format!("it is a {what}, not a regular file"),
            },
        })?;
        // Read one byte past the limit rather than trusting metadata: the
        // path may be a pipe or a file that grows while we read it.
        let mut bytes = Vec::new();
        file.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                path: shown,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| ManifestError::Read {
            path: shown.clone(),
            message: format!(
                "not UTF-8 (TOML must be UTF-8): invalid byte at offset {}",
                e.utf8_error().valid_up_to()
            ),
        })?;
        Self::parse(&text, &shown)
    }

    /// The suite called `name`; an unknown name lists the known ones.
    pub fn suite(&self, name: &str) -> Result<&Suite, ManifestError> {
        self.suites
            .get(name)
            .ok_or_else(|| ManifestError::UnknownSuite {
                name: name.to_string(),
                known: self.names(),
            })
    }

    /// The only suite; with several, the caller must pick one (`--suite`).
    pub fn default_suite(&self) -> Result<&Suite, ManifestError> {
        let mut it = self.suites.values();
        match (it.next(), it.next()) {
            (Some(only), None) => Ok(only),
            _ => Err(ManifestError::SuiteRequired {
                known: self.names(),
            }),
        }
    }

    fn names(&self) -> Vec<String> {
        self.suites.keys().cloned().collect()
    }
}

impl Suite {
    /// True when `command` takes `{tests}` (a standalone element, or inside
    /// one for a `test_id` that renders one pattern), i.e. the runner can be
    /// told to run selected tests (retries, splitting files).
    pub fn supports_test_selection(&self) -> bool {
        self.command
            .iter()
            .any(|e| placeholders::mentions(e, Placeholder::Tests))
    }

    /// True when the planner may split this suite's files by test: the
    /// manifest asks for it and validation made sure the command can run
    /// a group of tests and "the rest of the file".
    pub fn splits_files_by_test(&self) -> bool {
        self.split_by_test && self.supports_test_selection() && self.test_id.splits_files()
    }

    /// `{tests}` and `{skip_tests}` for these selectors, as `test_id`
    /// renders them for the runner. A runner without a way to skip single
    /// tests gets no skip elements (its files are never split).
    pub fn render_tests(&self, tests: &[String], skips: &[String]) -> (Vec<String>, Vec<String>) {
        let skips = self.test_id.render_skips(skips).unwrap_or_default();
        (self.test_id.render_tests(tests), skips)
    }

    /// The test command for one shard, placeholders expanded.
    pub fn command_argv(&self, x: &Expansion) -> Vec<String> {
        expand_argv(&self.command, x, Render::Plain)
    }

    /// The setup commands for one shard, placeholders expanded.
    pub fn setup_argvs(&self, x: &Expansion) -> Vec<Vec<String>> {
        self.setup
            .iter()
            .map(|argv| expand_argv(argv, x, Render::Plain))
            .collect()
    }

    /// The JUnit globs for one shard. Substituted values (e.g. the `{junit}`
    /// path) are escaped so they match literally.
    pub fn junit_globs(&self, x: &Expansion) -> Vec<String> {
        expand_argv(&self.junit, x, Render::Glob)
    }

    /// The extra environment for one shard, placeholders expanded.
    pub fn env_vars(&self, x: &Expansion) -> BTreeMap<String, String> {
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), placeholders::expand_one(v, x)))
            .collect()
    }

    /// Files below `root` (the repository root) + `working_dir` matching
    /// `files` minus `exclude`: relative, `/`-separated, sorted, unique.
    pub fn list_files(&self, root: &Path) -> Result<Vec<String>, ManifestError> {
        selection::list_files(self, root)
    }
}

fn expand_argv(templates: &[String], x: &Expansion, render: Render) -> Vec<String> {
    let mut out = Vec::with_capacity(templates.len());
    for t in templates {
        placeholders::expand_into(t, x, render, &mut out);
    }
    out
}

/// Builds a glob matcher the same way for validation and for listing: `*`
/// and `?` stop at `/`, `**` crosses directories, `\` escapes on every OS.
pub(crate) fn build_glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// The closest candidate to a misspelt name, if any is close enough.
pub(crate) fn suggest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    // A prefix (`timeout` for `timeout_seconds`) is as good a hint as a typo.
    if lower.len() >= 3 {
        if let Some(c) = candidates
            .iter()
            .find(|c| c.starts_with(&lower) || lower.starts_with(**c))
        {
            return Some(c);
        }
    }
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, c), *c))
        .filter(|&(d, c)| d <= 2.max(c.len().div_ceil(3)))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters; inputs are short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_cover_typos_and_prefixes() {
        let fields = ["timeout_seconds", "retries", "command", "working_dir"];
        assert_eq!(suggest("timeout", &fields), Some("timeout_seconds"));
        assert_eq!(suggest("retry", &fields), Some("retries"));
        assert_eq!(suggest("comand", &fields), Some("command"));
        assert_eq!(suggest("workdir", &fields), Some("working_dir"));
        assert_eq!(suggest("zzz", &fields), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
