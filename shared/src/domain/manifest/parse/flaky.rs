//! `[flaky]`: the thresholds of the flaky-test classification
//! (`domain::history::classify`, documented in `docs/flaky.md`).

use serde::Deserialize;
use toml::Spanned;

use super::{Ctx, top_err};
use crate::domain::history::MAX_ENTRIES;
use crate::domain::history::classify::{ClassifyPolicy, MAX_NEW_TEST_RUNS};
use crate::errors::ManifestError;

pub(super) const FIELDS: &[&str] = &[
    "default_branch",
    "window",
    "flip_rate",
    "min_flips",
    "broken_runs",
    "new_test_runs",
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
    new_test_runs: Option<Spanned<i64>>,
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
    if let Some(v) = raw.new_test_runs {
        let n = *v.get_ref();
        let max = MAX_NEW_TEST_RUNS as i64;
        if !(0..=max).contains(&n) {
            return Err(top_err(
                cx,
                v.span(),
                "flaky.new_test_runs",
                format!("new_test_runs = {n} is out of range 0..={max}"),
                "extra runs of a test the history has never seen (early flake detection); 0 turns it off, e.g. new_test_runs = 3",
            ));
        }
        policy.new_test_runs = n as u32;
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

/// The `[flaky]` and `[quarantine]` tables through the whole manifest
/// parser (lib tests, so the coverage gate sees them).
#[cfg(test)]
mod tests {
    use crate::domain::manifest::{Manifest, ManifestError};

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, "testexec.toml")
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(m) => panic!("expected an error, parsed {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_has(msg: &str, needles: &[&str]) {
        for n in needles {
            assert!(msg.contains(n), "`{n}` missing from:\n{msg}");
        }
    }

    fn suite_with(extra: &str) -> String {
        format!(
            "[suites.unit]\ncommand = [\"pytest\", \"--junitxml={{junit}}\", \"{{files}}\"]\nfiles = [\"tests/*.py\"]\n{extra}\n"
        )
    }

    #[test]
    fn flaky_and_quarantine_tables_default_and_parse() {
        let m = parse(&suite_with("")).unwrap();
        assert_eq!(m.history.flaky.window, 50);
        assert_eq!(m.history.flaky.default_branch, "main");
        assert!(!m.history.quarantine.auto);
        assert!(m.history.quarantine.tests.is_empty());
        let m = parse(&format!(
            "{}\n[flaky]\ndefault_branch = \"refs/heads/trunk\"\nwindow = 30\nflip_rate = 0.1\nmin_flips = 3\nbroken_runs = 4\n\
             [quarantine]\ntests = [\"pkg.A::test_x\", \" pkg.B::y \"]\nauto = true\nrelease_after = 7\n",
            suite_with("")
        ))
        .unwrap();
        let f = &m.history.flaky;
        assert_eq!(
            (
                f.default_branch.as_str(),
                f.window,
                f.flip_rate,
                f.min_flips,
                f.broken_runs
            ),
            ("trunk", 30, 0.1, 3, 4)
        );
        let q = &m.history.quarantine;
        assert!(q.auto);
        assert_eq!(q.release_after, 7);
        assert!(q.tests.contains("pkg.A::test_x") && q.tests.contains("pkg.B::y"));
    }

    #[test]
    fn flaky_and_quarantine_errors_name_the_field_with_a_hint() {
        let with = |extra: &str| err(&format!("{}\n{extra}\n", suite_with("")));
        assert_has(
            &with("[flaky]\nwindow = 0"),
            &[
                "field `flaky.window`",
                "out of range 1..=50",
                "history keeps at most 50",
            ],
        );
        assert_has(
            &with("[flaky]\nflip_rate = 1.5"),
            &[
                "field `flaky.flip_rate`",
                "0.0..=1.0",
                "e.g. flip_rate = 0.02",
            ],
        );
        assert_has(
            &with("[flaky]\ndefault_branch = \"\""),
            &["flaky.default_branch", "default_branch = \"main\""],
        );
        assert_has(
            &with("[flaky]\nwindw = 3"),
            &["unknown field `windw` in [flaky]", "did you mean `window`?"],
        );
        assert_has(
            &with("[quarantine]\ntests = [\"a\", \"\"]"),
            &["field `quarantine.tests[1]`", "classname::name"],
        );
        assert_has(
            &with("[quarantine]\nrelease_after = 0"),
            &["quarantine.release_after", "1..=1000"],
        );
        assert_has(
            &with("[quarantine]\nauto = \"yes\""),
            &["quarantine", "auto = true"],
        );
        assert_has(&with("[flakey]\nwindow = 3"), &["did you mean `flaky`?"]);
        let many: Vec<String> = (0..10_001).map(|i| format!("\"t{i}\"")).collect();
        assert_has(
            &with(&format!("[quarantine]\ntests = [{}]", many.join(","))),
            &["10001 quarantined tests", "limit is 10000"],
        );
    }
}
