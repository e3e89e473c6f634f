//! `[quarantine]`: tests whose failures do not fail a run (the manual
//! list) and the automatic policy (`domain::history::triage`, see
//! `docs/flaky.md`).

use serde::Deserialize;
use toml::Spanned;

use super::{Ctx, top_err};
use crate::domain::history::triage::QuarantinePolicy;
use crate::errors::ManifestError;

pub(super) const FIELDS: &[&str] = &["tests", "auto", "release_after"];

/// Upper bound of the manual list.
pub const MAX_QUARANTINED: usize = 10_000;
/// Longest test id in the list.
const MAX_TEST_ID: usize = 1024;
/// Upper bound of `release_after`.
const MAX_RELEASE_AFTER: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuarantine {
    tests: Option<Spanned<Vec<Spanned<String>>>>,
    auto: Option<Spanned<bool>>,
    release_after: Option<Spanned<i64>>,
}

pub(super) fn validate(
    cx: &Ctx,
    raw: Option<RawQuarantine>,
) -> Result<QuarantinePolicy, ManifestError> {
    let mut policy = QuarantinePolicy::default();
    let Some(raw) = raw else {
        return Ok(policy);
    };
    if let Some(list) = raw.tests {
        if list.get_ref().len() > MAX_QUARANTINED {
            return Err(top_err(
                cx,
                list.span(),
                "quarantine.tests",
                format!(
                    "{} quarantined tests; the limit is {MAX_QUARANTINED}",
                    list.get_ref().len()
                ),
                "a suite with this many flaky tests needs fixing, not a list; try auto = true",
            ));
        }
        for (i, id) in list.into_inner().into_iter().enumerate() {
            let text = id.get_ref().trim();
            if text.is_empty() || text.len() > MAX_TEST_ID {
                return Err(top_err(
                    cx,
                    id.span(),
                    &format!("quarantine.tests[{i}]"),
                    format!("invalid test id {:?}", cut(id.get_ref())),
                    "use the id reports show, `classname::name`, e.g. \"tests.test_api::test_timeout\" (at most 1024 bytes)",
                ));
            }
            policy.tests.insert(text.to_string());
        }
    }
    if let Some(auto) = raw.auto {
        policy.auto = auto.into_inner();
    }
    if let Some(r) = raw.release_after {
        let n = *r.get_ref();
        if !(1..=MAX_RELEASE_AFTER).contains(&n) {
            return Err(top_err(
                cx,
                r.span(),
                "quarantine.release_after",
                format!("release_after = {n} is out of range 1..={MAX_RELEASE_AFTER}"),
                "clean passes in a row before a test leaves automatic quarantine, e.g. release_after = 10",
            ));
        }
        policy.release_after = n as u32;
    }
    Ok(policy)
}

fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}
