//! `[flaky]`: the thresholds of the flaky-test classification
//! (`domain::history::classify`, documented in `docs/flaky.md`).

use serde::Deserialize;
use toml::Spanned;

use super::{Ctx, top_err};
use crate::domain::history::MAX_ENTRIES;
use crate::domain::history::classify::ClassifyPolicy;
use crate::errors::ManifestError;

pub(super) const FIELDS: &[&str] = &[
    "default_branch",
    "window",
    "flip_rate",
    "min_flips",
    "broken_runs",
];

/// Longest branch name accepted (git refs have no hard limit; 255 is
/// what every forge shows).
const MAX_BRANCH: usize = 255;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlaky {
    default_branch: Option<Spanned<String>>,
    window: Option<Spanned<i64>>,
    flip_rate: Option<Spanned<f64>>,
    min_flips: Option<Spanned<i64>>,
    broken_runs: Option<Spanned<i64>>,
}

pub(super) fn validate(cx: &Ctx, raw: Option<RawFlaky>) -> Result<ClassifyPolicy, ManifestError> {
    let mut policy = ClassifyPolicy::default();
    let Some(raw) = raw else {
        return Ok(policy);
    };
    let max = MAX_ENTRIES as i64;
    if let Some(b) = raw.default_branch {
        let name = b.get_ref();
        let name = name.strip_prefix("refs/heads/").unwrap_or(name);
        if name.is_empty() || name.len() > MAX_BRANCH || name.chars().any(char::is_whitespace) {
            return Err(top_err(
                cx,
                b.span(),
                "flaky.default_branch",
                format!("invalid default_branch {:?}", b.get_ref()),
                "the branch flip rates and \"broken\" are judged on, e.g. default_branch = \"main\"",
            ));
        }
        policy.default_branch = name.to_string();
    }
    let int =
        |v: Option<Spanned<i64>>, field: &str, hint: &str| -> Result<Option<u32>, ManifestError> {
            let Some(v) = v else { return Ok(None) };
            let n = *v.get_ref();
            if (1..=max).contains(&n) {
                return Ok(Some(n as u32));
            }
            Err(top_err(
                cx,
                v.span(),
                &format!("flaky.{field}"),
                format!("{field} = {n} is out of range 1..={max}"),
                hint,
            ))
        };
    for (value, field, slot, hint) in [
        (
            raw.window,
            "window",
            &mut policy.window,
            "how many recent runs of a test count; history keeps at most 50",
        ),
        (
            raw.min_flips,
            "min_flips",
            &mut policy.min_flips,
            "failure→pass flips needed before the flip rate counts, e.g. min_flips = 2",
        ),
        (
            raw.broken_runs,
            "broken_runs",
            &mut policy.broken_runs,
            "failing on this many default-branch runs in a row is broken, e.g. broken_runs = 5",
        ),
    ] {
        if let Some(n) = int(value, field, hint)? {
            *slot = n;
        }
    }
    if let Some(r) = raw.flip_rate {
        let rate = *r.get_ref();
        if !(0.0..=1.0).contains(&rate) {
            return Err(top_err(
                cx,
                r.span(),
                "flaky.flip_rate",
                format!("flip_rate = {rate} is out of range 0.0..=1.0"),
                "the share of default-branch transitions that are failure→pass flips, e.g. flip_rate = 0.02",
            ));
        }
        policy.flip_rate = rate;
    }
    Ok(policy)
}
