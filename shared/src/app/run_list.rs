//! One page of the run list (`GET /runs`, the runs page): filters, a
//! cursor and a bounded read, the same for every store.
//!
//! Runs are listed newest first by id. Run ids are ULIDs, which sort by the
//! time they were minted, and every store's `list_runs` already orders by
//! them, so the cursor is simply the last run id a page looked at: the next
//! page starts strictly after it and no run is skipped or shown twice,
//! whatever was created in between (new runs sort before the cursor).

use serde::Serialize;

use crate::domain::history::branch_name;
use crate::domain::model::{Run, RunId, RunStatus};

/// Runs per page when the caller does not say.
pub const DEFAULT_PAGE: usize = 50;
/// Most runs per page.
pub const MAX_PAGE: usize = 200;
/// Most runs one page request reads from the store, matching or not: a
/// filter that matches rarely costs a bounded read, and the page then
/// says where it stopped (`next`) rather than reading on.
pub const MAX_SCAN: usize = 2_000;

/// Which runs a page shows. Filters combine (all must match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunQuery {
    pub status: Option<RunStatus>,
    /// A branch name (`main`, not `refs/heads/main`); other refs (a tag,
    /// `refs/pull/1/head`) match as written. Runs without a ref (local
    /// runs) match no branch.
    pub branch: Option<String>,
    pub suite: Option<String>,
    /// Only runs older than this one: the previous page's `next`.
    pub before: Option<RunId>,
    /// Runs on the page, 1 to [`MAX_PAGE`].
    pub limit: usize,
}

impl Default for RunQuery {
    fn default() -> Self {
        RunQuery {
            status: None,
            branch: None,
            suite: None,
            before: None,
            limit: DEFAULT_PAGE,
        }
    }
}

impl RunQuery {
    /// True when `run` passes every filter (the cursor is not a filter).
    pub fn matches(&self, run: &Run) -> bool {
        self.status.is_none_or(|s| run.status == s)
            && self.suite.as_deref().is_none_or(|s| run.suite == s)
            && self.branch.as_deref().is_none_or(|b| {
                run.source
                    .git_ref
                    .as_deref()
                    .is_some_and(|r| branch_name(r) == b)
            })
    }
}

/// One page of runs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// The cursor of the next (older) page, when there may be one.
    pub next: Option<RunId>,
    /// True when the store could not look past the newest [`MAX_SCAN`]
    /// runs (it has no cursor of its own), so older matches may exist
    /// that no page can reach.
    pub truncated: bool,
}

impl RunPage {
    /// The page of `query` from `runs`, newest first. `runs` may start
    /// before the cursor (runs at or after it are passed over) and is read
    /// only until the page is full or [`MAX_SCAN`] runs were looked at.
    /// `exhaustive`: when `runs` ends, there is nothing older (false for a
    /// store that read only the newest runs).
    pub fn collect(
        runs: impl IntoIterator<Item = Result<Run, crate::errors::StoreError>>,
        query: &RunQuery,
        exhaustive: bool,
    ) -> Result<RunPage, crate::errors::StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let mut page = Vec::new();
        let mut looked_at = 0usize;
        let mut last_looked_at = None;
        for run in runs {
            let run = run?;
            if query.before.is_some_and(|before| run.id >= before) {
                continue;
            }
            if looked_at == MAX_SCAN {
                // More runs, but this request has read its share: the next
                // page goes on from the last run looked at.
                return Ok(RunPage {
                    runs: page,
                    next: last_looked_at,
                    truncated: false,
                });
            }
            looked_at += 1;
            last_looked_at = Some(run.id);
            if query.matches(&run) {
                if page.len() == limit {
                    let next = page.last().map(|r: &Run| r.id);
                    return Ok(RunPage {
                        runs: page,
                        next,
                        truncated: false,
                    });
                }
                page.push(run);
            }
        }
        Ok(RunPage {
            runs: page,
            next: None,
            truncated: !exhaustive,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Counts, Origin, SourceRef};

    /// A run created at `ms` (its id minted then, as intake does).
    fn run(ms: u64, status: RunStatus, suite: &str, git_ref: Option<&str>) -> Run {
        let id: RunId = ulid::Ulid::from_parts(ms, u128::from(ms))
            .to_string()
            .parse()
            .unwrap();
        Run {
            id,
            source: SourceRef {
                repo: "o/r".into(),
                commit: None,
                git_ref: git_ref.map(str::to_string),
                path: None,
            },
            origin: Origin::Local,
            suite: suite.into(),
            status,
            shard_count: 1,
            shards_done: 0,
            counts: Counts::default(),
            created_ms: ms,
            deadline_ms: ms,
            finished_ms: None,
            error: None,
        }
    }

    fn ids(page: &RunPage) -> Vec<u64> {
        page.runs.iter().map(|r| r.created_ms).collect()
    }

    #[test]
    fn filters_combine_and_pages_neither_skip_nor_repeat() {
        // Newest first, as stores list them.
        let runs: Vec<Run> = (0..25u64)
            .rev()
            .map(|i| {
                run(
                    1_000 + i,
                    if i % 3 == 0 {
                        RunStatus::Failed
                    } else {
                        RunStatus::Passed
                    },
                    if i % 2 == 0 { "unit" } else { "e2e" },
                    (i % 5 != 0).then_some("refs/heads/main"),
                )
            })
            .collect();
        let query = RunQuery {
            suite: Some("unit".into()),
            branch: Some("main".into()),
            limit: 3,
            ..RunQuery::default()
        };
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let q = RunQuery {
                before: cursor,
                ..query.clone()
            };
            let page = RunPage::collect(runs.iter().cloned().map(Ok), &q, true).unwrap();
            assert!(page.runs.len() <= 3);
            seen.extend(ids(&page));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let expected: Vec<u64> = (0..25u64)
            .rev()
            .filter(|i| i % 2 == 0 && i % 5 != 0)
            .map(|i| 1_000 + i)
            .collect();
        assert_eq!(seen, expected);

        let failed = RunQuery {
            status: Some(RunStatus::Failed),
            limit: 100,
            ..RunQuery::default()
        };
        let page = RunPage::collect(runs.iter().cloned().map(Ok), &failed, false).unwrap();
        assert_eq!(page.runs.len(), 9);
        assert!(page.runs.iter().all(|r| r.status == RunStatus::Failed));
        assert_eq!(page.next, None);
        assert!(page.truncated, "a non-exhaustive read says so");
    }

    #[test]
    fn a_rare_match_stops_after_the_scan_budget_and_goes_on_from_there() {
        let n = MAX_SCAN as u64 + 10;
        let runs: Vec<Run> = (0..n)
            .rev()
            .map(|i| {
                let suite = if i == 0 { "rare" } else { "common" };
                run(10_000 + i, RunStatus::Passed, suite, None)
            })
            .collect();
        let query = RunQuery {
            suite: Some("rare".into()),
            ..RunQuery::default()
        };
        let first = RunPage::collect(runs.iter().cloned().map(Ok), &query, true).unwrap();
        assert!(first.runs.is_empty());
        let next = first.next.expect("a cursor to go on from");
        assert_eq!(next, runs[MAX_SCAN - 1].id);
        let second = RunPage::collect(
            runs.iter().cloned().map(Ok),
            &RunQuery {
                before: Some(next),
                ..query
            },
            true,
        )
        .unwrap();
        assert_eq!(ids(&second), [10_000]);
        assert_eq!(second.next, None);
    }

    #[test]
    fn branch_filters_by_name_and_other_refs_as_written() {
        let q = |b: &str| RunQuery {
            branch: Some(b.into()),
            ..RunQuery::default()
        };
        let main = run(1, RunStatus::Passed, "u", Some("refs/heads/main"));
        let pr = run(2, RunStatus::Passed, "u", Some("refs/pull/7/head"));
        let local = run(3, RunStatus::Passed, "u", None);
        assert!(q("main").matches(&main));
        assert!(!q("refs/heads/main").matches(&main));
        assert!(q("refs/pull/7/head").matches(&pr));
        assert!(!q("main").matches(&local));
    }
}
