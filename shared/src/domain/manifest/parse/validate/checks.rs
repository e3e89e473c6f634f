//! Checks shared by several fields: placeholders per slot, argv elements,
//! repository-relative paths, globs and integer ranges.

use std::ops::Range;

use toml::Spanned;

use super::super::{Argv, Ctx};
use crate::domain::manifest::build_glob;
use crate::domain::manifest::placeholders::{self, Placeholder, Segment};
use crate::errors::ManifestError;

/// Which placeholders a field accepts, and why not the others.
#[derive(Clone, Copy)]
pub(super) enum Slot {
    /// `joined_tests`: the suite's `test_id` renders `{tests}` as exactly
    /// one element (a regex, a filterset), so it may be part of one, as in
    /// `-Dtest={tests}`.
    Command {
        joined_tests: bool,
    },
    Setup,
    Junit,
    Env,
}

impl Slot {
    fn allows(self, p: Placeholder) -> bool {
        match self {
            Slot::Command { .. } => true,
            Slot::Setup => matches!(
                p,
                Placeholder::Shard | Placeholder::ShardCount | Placeholder::RunId
            ),
            Slot::Junit | Slot::Env => !p.is_list(),
        }
    }

    fn why_not(self) -> &'static str {
        match self {
            Slot::Command { .. } => "",
            Slot::Setup => {
                "setup runs before the tests: only {shard}, {shard_count} and {run_id} are available; {files}, {tests} and {junit} belong in `command`"
            }
            Slot::Junit => {
                "a junit glob is one string: {files} and {tests} are only available in `command`"
            }
            Slot::Env => {
                "an environment value is one string: {files} and {tests} are only available in `command`"
            }
        }
    }
}

pub(super) fn check_template(
    cx: &Ctx,
    suite: &str,
    field: &str,
    slot: Slot,
    value: &Spanned<String>,
) -> Result<Vec<Segment>, ManifestError> {
    let span = value.span();
    let s = value.get_ref();
    if s.contains('\0') {
        return Err(cx.err(
            span,
            suite,
            field,
            "contains a NUL byte",
            "processes cannot receive NUL in arguments or environment",
        ));
    }
    let segments = placeholders::parse_template(s).map_err(|e| {
        let (m, h) = e.message_and_hint();
        cx.err(span.clone(), suite, field, format!("{m} in {s:?}"), h)
    })?;
    for p in placeholders::placeholders(&segments) {
        if !slot.allows(p) {
            return Err(cx.err(
                span,
                suite,
                field,
                format!("placeholder `{{{}}}` is not allowed here", p.name()),
                slot.why_not(),
            ));
        }
        let embeddable = matches!(
            (slot, p),
            (Slot::Command { joined_tests: true }, Placeholder::Tests)
        );
        if p.is_list() && segments.len() > 1 && !embeddable {
            let name = p.name();
            return Err(cx.err(
                span,
                suite,
                field,
                format!("`{{{name}}}` must be a whole argv element, not part of {s:?}"),
                format!(
                    "`{{{name}}}` expands to zero or more arguments, one per item; put it in its own element, e.g. [\"pytest\", \"{{{name}}}\"]"
                ),
            ));
        }
    }
    Ok(segments)
}

pub(super) fn check_argv(
    cx: &Ctx,
    suite: &str,
    field: &str,
    slot: Slot,
    argv: &Argv,
) -> Result<(), ManifestError> {
    for (i, el) in argv.iter().enumerate() {
        check_template(cx, suite, &format!("{field}[{i}]"), slot, el)?;
    }
    Ok(())
}

/// Rejects paths that could leave the repository: absolute, drive-letter or
/// containing a `..` component.
pub(super) fn check_relative(
    cx: &Ctx,
    suite: &str,
    field: &str,
    value: &Spanned<String>,
) -> Result<(), ManifestError> {
    let s = value.get_ref();
    let bytes = s.as_bytes();
    let absolute = s.starts_with('/')
        || s.starts_with('\\')
        || (bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':');
    if absolute {
        return Err(cx.err(
            value.span(),
            suite,
            field,
            format!("{s:?} is absolute"),
            "paths and globs are relative to the repository (or working_dir); drop the leading `/`",
        ));
    }
    if s.split(['/', '\\']).any(|c| c == "..") {
        return Err(cx.err(
            value.span(),
            suite,
            field,
            format!("{s:?} contains `..`"),
            "paths and globs must stay inside the repository; `..` components are not allowed",
        ));
    }
    Ok(())
}

pub(super) fn check_globs(
    cx: &Ctx,
    suite: &str,
    field: &str,
    globs: &[Spanned<String>],
    templated: bool,
) -> Result<Vec<String>, ManifestError> {
    let mut out = Vec::with_capacity(globs.len());
    for (i, g) in globs.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if g.get_ref().is_empty() {
            return Err(cx.err(
                g.span(),
                suite,
                f,
                "empty glob",
                "remove it, or write a pattern such as \"tests/**\"",
            ));
        }
        // Templated globs are checked as they will be matched: with sample
        // values substituted (`{{`/`}}` then become glob braces).
        let pattern = if templated {
            check_template(cx, suite, &f, Slot::Junit, g)?;
            let x = crate::domain::manifest::Expansion {
                files: &[],
                tests: &[],
                skip_tests: &[],
                junit: "junit.xml",
                shard: 0,
                shard_count: 1,
                run_id: "01J9Z3V8K4QW5T6Y7X8C9B0N1M",
            };
            let mut v = Vec::new();
            placeholders::expand_into(g.get_ref(), &x, placeholders::Render::Glob, &mut v);
            v.pop().unwrap_or_default()
        } else {
            g.get_ref().clone()
        };
        check_relative(cx, suite, &f, &Spanned::new(g.span(), pattern.clone()))?;
        if let Err(e) = build_glob(&pattern) {
            return Err(cx.err(
                g.span(),
                suite,
                f,
                format!("invalid glob {:?}: {}", g.get_ref(), e.kind()),
                "globs use `*`, `?`, `**`, `[abc]` and `{a,b}`; escape a literal metacharacter as `[*]`",
            ));
        }
        out.push(g.get_ref().clone());
    }
    Ok(out)
}

pub(super) fn int_in(
    cx: &Ctx,
    suite: &str,
    field: &str,
    v: &Spanned<i64>,
    range: std::ops::RangeInclusive<i64>,
    hint: &str,
) -> Result<u64, ManifestError> {
    let n = *v.get_ref();
    if range.contains(&n) {
        // The range is non-negative, so the conversion cannot fail.
        return Ok(u64::try_from(n).unwrap_or_default());
    }
    Err(cx.err(
        v.span(),
        suite,
        field,
        format!(
            "{field} = {n} is out of range {}..={}",
            range.start(),
            range.end()
        ),
        hint,
    ))
}

pub(super) fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn strings(
    v: Option<Spanned<Vec<Spanned<String>>>>,
) -> Option<(Range<usize>, Vec<Spanned<String>>)> {
    v.map(|v| (v.span(), v.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert!(is_env_name("_A1"));
        assert!(!is_env_name("1A"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
    }
}
