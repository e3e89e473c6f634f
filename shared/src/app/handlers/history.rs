//! The history step of trigger and report (see `docs/flaky.md`).
//!
//! Trigger stores what report will need from the repository (the
//! `[flaky]` / `[quarantine]` policy and the `CODEOWNERS` text) next to the
//! run, because report never sees the checkout. Report loads the tests'
//! history in batched reads, triages the run against it
//! (`domain::history::triage`) and writes the updated records back in
//! batched writes, a chunk of tests at a time: O(tests) per run whatever
//! the backend, in memory bounded by the chunk.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::app::handlers::Ports;
use crate::app::messages::keys;
use crate::app::ports::content_type;
use crate::domain::codeowners::CodeOwners;
use crate::domain::history::triage::{HistoryPolicy, Observed, Triage, triage};
use crate::domain::history::{HistoryEntry, HistoryScope, TestHistory};
use crate::domain::model::{Outcome, Run, RunId};
use crate::domain::report::CaseSource;
use crate::errors::{BlobError, HandlerError, StoreError};

/// Tests of one run the history follows; past this the rest are reported
/// without history (a warning says so). Each costs one read and one write.
pub const MAX_HISTORY_TESTS: usize = 200_000;
/// Longest `CODEOWNERS` kept (GitHub ignores files over 3 MB).
pub const MAX_CODEOWNERS_BYTES: usize = 3 * 1024 * 1024;
/// Where GitHub looks for `CODEOWNERS`, in its order.
pub const CODEOWNERS_PATHS: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

/// What trigger hands report about the repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunContext {
    #[serde(default)]
    pub policy: HistoryPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codeowners: Option<String>,
    /// The suite's `working_dir`: test files are relative to it,
    /// `CODEOWNERS` paths to the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

impl RunContext {
    /// The policy of the manifest and the first `CODEOWNERS` GitHub would
    /// use, read from the checkout at `tree` (bounded; unreadable is none).
    pub fn from_checkout(
        policy: HistoryPolicy,
        working_dir: Option<&str>,
        tree: &std::path::Path,
    ) -> RunContext {
        let codeowners = CODEOWNERS_PATHS.iter().find_map(|p| {
            let bytes = std::fs::read(tree.join(p)).ok()?;
            (bytes.len() <= MAX_CODEOWNERS_BYTES).then(|| String::from_utf8_lossy(&bytes).into())
        });
        RunContext {
            policy,
            codeowners,
            working_dir: working_dir.map(str::to_string),
        }
    }
}

pub(crate) async fn save_context(
    ports: &Ports,
    run: RunId,
    context: &RunContext,
) -> Result<(), HandlerError> {
    let body = serde_json::to_vec(context).map_err(|e| HandlerError::Io {
        context: "encoding the run's history context".into(),
        source: std::io::Error::other(e),
    })?;
    ports
        .blobs
        .put(&keys::history_context(run), body, content_type::JSON)
        .await?;
    Ok(())
}

/// The run's context; a run started before history existed has none and
/// gets the defaults.
pub(crate) async fn load_context(ports: &Ports, run: RunId) -> Result<RunContext, HandlerError> {
    let key = keys::history_context(run);
    match ports.blobs.get(&key).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| HandlerError::BadMessage {
            what: "history context",
            detail: format!("{key}: {e}"),
        }),
        Err(BlobError::NotFound { .. }) => Ok(RunContext::default()),
        Err(e) => Err(e.into()),
    }
}

/// Tests triaged per read and write of the history: a chunk's records
/// (up to 50 results each) are what report holds at a time, so its memory
/// stays bounded whatever the run's size.
const TRIAGE_CHUNK: usize = 5_000;

/// The run triaged against its tests' history, `None` when the store keeps
/// no history (a warning says so). With `save`, each chunk's updated
/// records are written as soon as they are made: a report delivered again
/// after that judges against the history without this run's entries
/// (`triage` drops them), so it reaches the same verdict.
pub(crate) async fn triage_run(
    ports: &Ports,
    run: &Run,
    cases: &dyn CaseSource,
    policy: &HistoryPolicy,
    save: bool,
) -> Result<Option<Triage>, HandlerError> {
    let now = ports.clock.now_ms();
    let observed = observe(cases, now)?;
    let scope = HistoryScope::new(&run.source.repo, &run.suite);
    let run_id = run.id.to_string();
    let (commit, git_ref) = (run.source.commit.as_deref(), run.source.git_ref.as_deref());
    let mut total = Triage::default();
    // Consumed chunk by chunk: each chunk's strings are freed once triaged.
    let mut observed = observed.into_iter().peekable();
    while observed.peek().is_some() {
        let chunk: Vec<Observed> = observed
            .by_ref()
            .take(TRIAGE_CHUNK)
            .map(|seen| seen.in_run(&run_id, now, commit, git_ref))
            .collect();
        let chunk = chunk.as_slice();
        let ids: Vec<String> = chunk.iter().map(|o| o.id.clone()).collect();
        let before = match ports.store.load_history(&scope, &ids, now).await {
            Ok(records) => records,
            Err(StoreError::Unsupported { .. }) => {
                tracing::warn!(
                    "this backend keeps no test history: reporting without flaky-test classification"
                );
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let before: HashMap<String, TestHistory> =
            before.into_iter().map(|h| (h.id.clone(), h)).collect();
        let (part, records) = triage(chunk, before, policy);
        total.absorb(part);
        if save && !records.is_empty() {
            ports.store.save_history(&scope, &records).await?;
        }
    }
    Ok(Some(total))
}

/// Names each listed test's owners from `CODEOWNERS` by its file.
pub(crate) fn fill_owners(triage: &mut Triage, context: &RunContext) {
    let Some(text) = context.codeowners.as_deref() else {
        return;
    };
    let owners = CodeOwners::parse(text);
    for test in triage.tests_mut() {
        if let Some(file) = test.file.as_deref() {
            test.owners = owners.owners_of(&context.repo_path(file)).to_vec();
        }
    }
}

impl RunContext {
    /// A test file (relative to the suite's `working_dir`) as a path from
    /// the repository root, which is what `CODEOWNERS` patterns match.
    fn repo_path(&self, file: &str) -> String {
        let base = self
            .working_dir
            .as_deref()
            .map(|w| w.trim_matches('/'))
            .filter(|w| !w.is_empty() && *w != ".");
        match base {
            Some(dir) => format!("{dir}/{}", file.trim_start_matches("./")),
            None => file.to_string(),
        }
    }

    /// The owners of one test file; none without a `CODEOWNERS` (the
    /// per-test page of the HTTP front door).
    #[cfg(feature = "http")]
    pub(crate) fn owners_of(&self, file: &str) -> Vec<String> {
        self.codeowners.as_deref().map_or_else(Vec::new, |text| {
            CodeOwners::parse(text)
                .owners_of(&self.repo_path(file))
                .to_vec()
        })
    }
}

/// A test as `observe` keeps it for the whole report: the parts of its
/// [`Observed`] that differ between tests (the run id, time, commit and
/// branch are added a chunk at a time by [`Seen::in_run`]). Half the size
/// of an `Observed`, for up to [`MAX_HISTORY_TESTS`] tests.
struct Seen {
    id: String,
    file: Option<String>,
    outcome: Outcome,
    attempts: Vec<Outcome>,
    duration_secs: f64,
}

impl Seen {
    fn new(id: String, file: Option<String>, entry: HistoryEntry) -> Self {
        Self {
            id,
            file,
            outcome: entry.outcome,
            attempts: entry.attempts,
            duration_secs: entry.duration_secs,
        }
    }

    fn in_run(
        self,
        run: &str,
        at_ms: u64,
        commit: Option<&str>,
        git_ref: Option<&str>,
    ) -> Observed {
        let mut entry = HistoryEntry {
            run: String::new(),
            at_ms,
            commit: None,
            branch: None,
            outcome: self.outcome,
            attempts: self.attempts,
            duration_secs: self.duration_secs,
        };
        entry.stamp(run, commit, git_ref);
        Observed {
            id: self.id,
            entry,
            file: self.file,
        }
    }
}

/// One entry per test id of the run (a failing duplicate wins, so two
/// cases sharing an id never hide a failure); skipped tests say nothing.
/// What stays per test for the whole report is a [`Seen`] and the id's
/// hash in the index (not a second copy of the id).
fn observe(cases: &dyn CaseSource, now: u64) -> Result<Vec<Seen>, HandlerError> {
    let mut index = IdIndex::default();
    let mut out: Vec<Seen> = Vec::new();
    let mut dropped = 0u64;
    cases
        .for_each(&mut |_, _, case| {
            if case.outcome == Outcome::Skipped {
                return Ok(());
            }
            let id = case.key();
            let entry = HistoryEntry::of(case, "", now, None, None);
            match index.find(&out, &id) {
                Some(i) => {
                    if entry.failed() && !out[i].outcome.is_failure() {
                        let file = out[i].file.take();
                        out[i] = Seen::new(id, file, entry);
                    }
                }
                None if out.len() >= MAX_HISTORY_TESTS => dropped += 1,
                None => {
                    index.insert(&id, out.len());
                    let file = case.file.as_deref().map(|f| cut(f, 1024));
                    out.push(Seen::new(id, file, entry));
                }
            }
            Ok(())
        })
        .map_err(|source| HandlerError::Io {
            context: "reading the run's test cases for history".into(),
            source,
        })?;
    if dropped > 0 {
        tracing::warn!(
            dropped,
            limit = MAX_HISTORY_TESTS,
            "more tests than the history follows per run; the rest have no history"
        );
    }
    Ok(out)
}

/// Positions in `observe`'s list by test id, keyed by the id's 64-bit
/// hash (randomly keyed, as std's maps are). Two ids with one hash (about
/// one run in 10⁹ at 200,000 tests) still resolve: the first keeps the
/// slot, later ones go to `collided`.
#[derive(Default)]
struct IdIndex {
    hasher: std::collections::hash_map::RandomState,
    by_hash: HashMap<u64, usize>,
    collided: HashMap<String, usize>,
}

impl IdIndex {
    fn hash(&self, id: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(id)
    }

    fn find(&self, out: &[Seen], id: &str) -> Option<usize> {
        match self.by_hash.get(&self.hash(id)) {
            Some(&i) if out[i].id == id => Some(i),
            Some(_) => self.collided.get(id).copied(),
            None => None,
        }
    }

    fn insert(&mut self, id: &str, position: usize) {
        let hash = self.hash(id);
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(position);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(id.to_string(), position);
            }
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    crate::domain::report::truncate_bytes(s, max).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str) -> Seen {
        Seen {
            id: id.to_string(),
            file: None,
            outcome: Outcome::Passed,
            attempts: Vec::new(),
            duration_secs: 0.0,
        }
    }

    #[test]
    fn ids_are_found_by_hash_and_a_colliding_id_still_resolves() {
        let mut index = IdIndex::default();
        let out = vec![seen("a"), seen("b"), seen("c")];
        index.insert("a", 0);
        assert_eq!(index.find(&out, "a"), Some(0));
        assert_eq!(index.find(&out, "b"), None, "never inserted");
        // Make "b" collide with "a": its hash's slot points at "a".
        let hash_b = index.hash("b");
        index.by_hash.insert(hash_b, 0);
        assert_eq!(
            index.find(&out, "b"),
            None,
            "a hash hit on another id is not a find"
        );
        index.insert("b", 1);
        assert_eq!(index.find(&out, "b"), Some(1), "the colliding id resolves");
        assert_eq!(index.collided.len(), 1);
        index.insert("c", 2);
        assert_eq!(
            (index.find(&out, "a"), index.find(&out, "c")),
            (Some(0), Some(2))
        );
    }
}
