//! TOML text → validated [`Manifest`].
//!
//! Two layers: serde structs (`Raw*`, `deny_unknown_fields`) keep every
//! value's span, then `validate_*` checks meaning and builds the public
//! types. Every error carries `origin:line:column`, the suite and the field.

use crate::domain::selector::TestIdFormat;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

use super::placeholders::{self, Placeholder, Segment};
use super::{
    DEFAULT_COMPLETED_EXIT_CODES, DEFAULT_TIMEOUT_SECONDS, MAX_RETRIES, MAX_SHARDS, MAX_SUITES,
    MAX_TIMEOUT_SECONDS, Manifest, Shards, Suite, build_glob, suggest,
};
use crate::errors::{ManifestError, ManifestLocation};

const TOP_FIELDS: &[&str] = &["suites"];
const SUITE_FIELDS: &[&str] = &[
    "setup",
    "command",
    "files",
    "exclude",
    "shards",
    "target_shard_seconds",
    "timeout_seconds",
    "retries",
    "junit",
    "artifacts",
    "env",
    "working_dir",
    "test_id",
    "completed_exit_codes",
];
const MAX_SUITE_NAME: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    suites: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawSuite>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    setup: Option<Spanned<SetupArgvs>>,
    command: Option<Spanned<CommandArgv>>,
    files: Option<Spanned<Vec<Spanned<String>>>>,
    exclude: Option<Spanned<Vec<Spanned<String>>>>,
    shards: Option<Spanned<RawShards>>,
    target_shard_seconds: Option<Spanned<i64>>,
    timeout_seconds: Option<Spanned<i64>>,
    retries: Option<Spanned<i64>>,
    junit: Option<Spanned<Vec<Spanned<String>>>>,
    artifacts: Option<Spanned<Vec<Spanned<String>>>>,
    env: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    working_dir: Option<Spanned<String>>,
    test_id: Option<Spanned<TestIdFormat>>,
    completed_exit_codes: Option<Spanned<Vec<Spanned<i64>>>>,
}

type Argv = Vec<Spanned<String>>;

/// The hint for an argv given as a string: split on whitespace so the user
/// sees their own command as an array. Only a hint — we never split for real,
/// because quoting rules are exactly what "never a shell" avoids.
fn shell_string_error<E: de::Error>(field: &str, value: &str) -> E {
    let words: Vec<String> = value.split_whitespace().map(|w| format!("{w:?}")).collect();
    E::custom(format!(
        "`{field}` is a shell string; testexec never runs a shell, so quoting and `&&` would not mean what they seem \
         (hint: use an argv array: {field} = [{}])",
        words.join(", ")
    ))
}

struct CommandArgv(Argv);

impl<'de> Deserialize<'de> for CommandArgv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Argv;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an argv array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Argv, E> {
                Err(shell_string_error("command", v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Argv, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = seq.next_element()? {
                    out.push(x);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V).map(CommandArgv)
    }
}

/// `setup` is one argv (`["make"]`) or a list of them (`[["a"], ["b"]]`).
struct SetupArgvs(Vec<Argv>);

enum StrOrArgv {
    Str(Spanned<String>),
    Argv(Argv),
}

impl<'de> Deserialize<'de> for SetupArgvs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<Argv>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an argv array of strings, or an array of argv arrays")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Err(shell_string_error("setup", v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(x) = seq.next_element::<Spanned<StrOrArgvDe>>()? {
                    items.push(x.into_inner().0);
                }
                let all_str = items.iter().all(|i| matches!(i, StrOrArgv::Str(_)));
                let all_argv = items.iter().all(|i| matches!(i, StrOrArgv::Argv(_)));
                if items.is_empty() {
                    Ok(vec![])
                } else if all_str {
                    Ok(vec![
                        items
                            .into_iter()
                            .filter_map(|i| match i {
                                StrOrArgv::Str(s) => Some(s),
                                StrOrArgv::Argv(_) => None,
                            })
                            .collect(),
                    ])
                } else if all_argv {
                    Ok(items
                        .into_iter()
                        .filter_map(|i| match i {
                            StrOrArgv::Argv(a) => Some(a),
                            StrOrArgv::Str(_) => None,
                        })
                        .collect())
                } else {
                    Err(de::Error::custom(
                        "`setup` mixes strings and arrays (hint: use one argv, setup = [\"make\", \"fixtures\"], \
                         or a list of argvs, setup = [[\"pip\", \"install\", \"-e\", \".\"], [\"make\", \"fixtures\"]])",
                    ))
                }
            }
        }
        d.deserialize_any(V).map(SetupArgvs)
    }
}

struct StrOrArgvDe(StrOrArgv);

impl<'de> Deserialize<'de> for StrOrArgvDe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Strings keep their own span (for placeholder errors) by going
        // through `Spanned`; arrays carry spans per element already.
        let v = Spanned::<StrOrSeq>::deserialize(d)?;
        let span = v.span();
        Ok(StrOrArgvDe(match v.into_inner() {
            StrOrSeq::Str(s) => StrOrArgv::Str(Spanned::new(span, s)),
            StrOrSeq::Seq(a) => StrOrArgv::Argv(a),
        }))
    }
}

enum StrOrSeq {
    Str(String),
    Seq(Argv),
}

impl<'de> Deserialize<'de> for StrOrSeq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrOrSeq;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an argv array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrSeq, E> {
                Ok(StrOrSeq::Str(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrOrSeq, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = seq.next_element()? {
                    out.push(x);
                }
                Ok(StrOrSeq::Seq(out))
            }
        }
        d.deserialize_any(V)
    }
}

enum RawShards {
    Count(i64),
    Auto,
}

impl<'de> Deserialize<'de> for RawShards {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawShards;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a shard count such as 4, or \"auto\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawShards, E> {
                Ok(RawShards::Count(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawShards, E> {
                Ok(RawShards::Count(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawShards, E> {
                if v == "auto" {
                    Ok(RawShards::Auto)
                } else if v.trim().parse::<i64>().is_ok() {
                    Err(E::custom(format!(
                        "shards = {v:?} is a string (hint: drop the quotes: shards = {})",
                        v.trim()
                    )))
                } else {
                    Err(E::custom(format!(
                        "invalid shards {v:?} (hint: use a count such as shards = 4, or shards = \"auto\" with target_shard_seconds = 120)"
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Builds located errors for one manifest text.
struct Ctx<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    fn at(
        &self,
        span: Option<Range<usize>>,
        suite: Option<&str>,
        field: Option<String>,
    ) -> Box<ManifestLocation> {
        let (line, column) = line_column(self.text, span.map(|s| s.start).unwrap_or(0));
        Box::new(ManifestLocation {
            origin: self.origin.to_string(),
            line,
            column,
            suite: suite.map(str::to_string),
            field,
        })
    }

    fn err(
        &self,
        span: Range<usize>,
        suite: &str,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ManifestError {
        ManifestError::Invalid {
            at: self.at(Some(span), Some(suite), Some(field.into())),
            message: message.into(),
            hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
        }
    }
}

/// 1-based line and character column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

pub(crate) fn parse(text: &str, origin: &str) -> Result<Manifest, ManifestError> {
    let cx = Ctx { text, origin };
    if text.len() as u64 > super::MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            path: origin.to_string(),
            limit: super::MAX_MANIFEST_BYTES,
        });
    }
    let raw: RawManifest = toml::from_str(text).map_err(|e| serde_error(&cx, &e))?;
    let Some(suites) = raw.suites.filter(|s| !s.get_ref().is_empty()) else {
        return Err(ManifestError::Invalid {
            at: cx.at(None, None, None),
            message: "no suites defined".into(),
            hint: Some("add one table per suite, e.g. [suites.unit] with command = [\"pytest\", \"{files}\"]".into()),
        });
    };
    if suites.get_ref().len() > MAX_SUITES {
        return Err(ManifestError::Invalid {
            at: cx.at(Some(suites.span()), None, Some("suites".into())),
            message: format!(
                "{} suites defined; the limit is {MAX_SUITES}",
                suites.get_ref().len()
            ),
            hint: Some("merge suites that share a command".into()),
        });
    }
    let mut out = BTreeMap::new();
    for (name, suite) in suites.into_inner() {
        let span = name.span();
        let name = name.into_inner();
        validate_suite_name(&cx, &name, span.clone())?;
        let suite = validate_suite(&cx, &name, span, suite.into_inner())?;
        out.insert(name, suite);
    }
    Ok(Manifest { suites: out })
}

fn validate_suite_name(cx: &Ctx, name: &str, span: Range<usize>) -> Result<(), ManifestError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SUITE_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        return Ok(());
    }
    Err(ManifestError::Invalid {
        at: cx.at(Some(span), Some(name), None),
        message: format!("invalid suite name {name:?}"),
        hint: Some(format!(
            "suite names are 1 to {MAX_SUITE_NAME} ASCII letters, digits, `-` or `_` (they are typed after --suite)"
        )),
    })
}

/// Turns a toml/serde error into a located one, naming suite and field by
/// finding which key's value contains the error's span.
fn serde_error(cx: &Ctx, e: &toml::de::Error) -> ManifestError {
    let span = e.span();
    let (suite, field) = span
        .as_ref()
        .map(|s| locate(cx.text, s.start))
        .unwrap_or_default();
    let mut message = e.message().trim().to_string();
    let mut hint = None;
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let unknown = rest.split('`').next().unwrap_or_default().to_string();
        let (known, place) = if suite.is_some() {
            (SUITE_FIELDS, "a suite")
        } else {
            (TOP_FIELDS, "the top level")
        };
        message = format!("unknown field `{unknown}` in {place}");
        hint = Some(match suggest(&unknown, known) {
            Some(s) => format!("did you mean `{s}`?"),
            None if suite.is_none() => {
                format!("suites are tables under `suites`: write [suites.{unknown}]")
            }
            None => format!("known fields: {}", known.join(", ")),
        });
    } else if let Some((m, h)) = message.split_once(" (hint: ") {
        // Our own visitors put the hint in parentheses; lift it out.
        hint = Some(h.trim_end_matches(')').to_string());
        message = m.to_string();
    } else if message.contains("duplicate key") {
        hint = Some(
            "each key may appear only once in a table: remove or merge the repeated one".into(),
        );
    } else if field.as_deref().is_some_and(|f| f.starts_with("env"))
        && message.contains("expected a string")
    {
        hint = Some("environment values are strings: quote them, e.g. PORT = \"8080\"".into());
    } else if field.as_deref().is_some_and(|f| !f.starts_with("env"))
        && message.contains("expected a sequence")
    {
        hint = Some("use an array, e.g. files = [\"tests/**/test_*.py\"]".into());
    }
    if hint.is_none() {
        hint = field
            .as_deref()
            .and_then(example_for)
            .map(|e| format!("expected something like {e}"));
    }
    ManifestError::Invalid {
        at: cx.at(span, suite.as_deref(), field),
        message,
        hint,
    }
}

/// A correct example of a field, for type errors that have no better hint.
fn example_for(field: &str) -> Option<&'static str> {
    let base = field.split(['[', '.']).next().unwrap_or_default();
    Some(match base {
        "command" => {
            "command = [\"python\", \"-m\", \"pytest\", \"--junitxml={junit}\", \"{files}\"]"
        }
        "setup" => "setup = [\"pip\", \"install\", \"-e\", \".\"]",
        "files" | "exclude" => "files = [\"tests/**/test_*.py\"]",
        "junit" => "junit = [\"{junit}\"]",
        "artifacts" => "artifacts = [\"coverage/**\"]",
        "env" => "env = { PYTHONDONTWRITEBYTECODE = \"1\" }",
        "shards" => "shards = 4, or shards = \"auto\"",
        "target_shard_seconds" => "target_shard_seconds = 120",
        "timeout_seconds" => "timeout_seconds = 900",
        "retries" => "retries = 1",
        "working_dir" => "working_dir = \"services/api\"",
        "completed_exit_codes" => "completed_exit_codes = [0, 1]",
        "test_id" => "test_id = \"pytest\" (or \"name\", \"class_dot_name\", \"class_hash_name\")",
        "suites" => "[suites.unit] followed by command = [...]",
        _ => return None,
    })
}

/// The suite and field (`command[2]`) whose key or value contains `pos`.
fn locate(text: &str, pos: usize) -> (Option<String>, Option<String>) {
    // Recoverable parsing still yields a tree for syntax errors such as
    // duplicate keys.
    let (root, _) = toml::de::DeTable::parse_recoverable(text);
    let contains = |s: Range<usize>| s.start <= pos && pos < s.end.max(s.start + 1);
    let root = root.into_inner();
    for (key, value) in &root {
        if key.get_ref() != "suites" {
            if contains(key.span()) || contains(value.span()) {
                return (None, Some(key.get_ref().to_string()));
            }
            continue;
        }
        let Some(suites) = value.get_ref().as_table() else {
            return (None, Some("suites".into()));
        };
        for (name, suite) in suites {
            let Some(fields) = suite.get_ref().as_table() else {
                if contains(name.span()) || contains(suite.span()) {
                    return (Some(name.get_ref().to_string()), None);
                }
                continue;
            };
            for (fkey, fval) in fields {
                if contains(fkey.span()) || contains(fval.span()) {
                    let mut field = fkey.get_ref().to_string();
                    if let Some(arr) = fval.get_ref().as_array() {
                        if let Some(i) = arr.iter().position(|el| contains(el.span())) {
                            field = format!("{field}[{i}]");
                        }
                    }
                    return (Some(name.get_ref().to_string()), Some(field));
                }
            }
            if contains(name.span()) {
                return (Some(name.get_ref().to_string()), None);
            }
        }
    }
    // Nothing contains `pos` (e.g. a duplicate key, which is not in the
    // tree): name the last suite declared before it and the key written at it.
    let suite = root
        .iter()
        .filter(|(k, _)| k.get_ref() == "suites")
        .filter_map(|(_, v)| v.get_ref().as_table())
        .flat_map(|t| t.keys())
        .filter(|k| k.span().start < pos)
        .max_by_key(|k| k.span().start)
        .map(|k| k.get_ref().to_string());
    let key: String = text
        .get(pos..)
        .unwrap_or_default()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let field = Some(key).filter(|k| suite.is_some() && SUITE_FIELDS.contains(&k.as_str()));
    (suite, field)
}

/// Which placeholders a field accepts, and why not the others.
#[derive(Clone, Copy)]
enum Slot {
    Command,
    Setup,
    Junit,
    Env,
}

impl Slot {
    fn allows(self, p: Placeholder) -> bool {
        match self {
            Slot::Command => true,
            Slot::Setup => matches!(
                p,
                Placeholder::Shard | Placeholder::ShardCount | Placeholder::RunId
            ),
            Slot::Junit | Slot::Env => !p.is_list(),
        }
    }

    fn why_not(self) -> &'static str {
        match self {
            Slot::Command => "",
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

fn check_template(
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
        if p.is_list() && segments.len() > 1 {
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

fn check_argv(
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
fn check_relative(
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

fn check_globs(
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
            let x = super::Expansion {
                files: &[],
                tests: &[],
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

fn int_in(
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

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn strings(
    v: Option<Spanned<Vec<Spanned<String>>>>,
) -> Option<(Range<usize>, Vec<Spanned<String>>)> {
    v.map(|v| (v.span(), v.into_inner()))
}

fn validate_suite(
    cx: &Ctx,
    name: &str,
    name_span: Range<usize>,
    raw: RawSuite,
) -> Result<Suite, ManifestError> {
    // --- command
    let Some(command) = raw.command else {
        return Err(cx.err(
            name_span,
            name,
            "command",
            "missing `command`",
            "add the test command as an argv, e.g. command = [\"python\", \"-m\", \"pytest\", \"--junitxml={junit}\", \"{files}\"]",
        ));
    };
    let command_span = command.span();
    let command = command.into_inner().0;
    if command.is_empty() || command[0].get_ref().trim().is_empty() {
        return Err(cx.err(
            command_span,
            name,
            "command",
            "empty command",
            "the first element is the program to run, e.g. command = [\"pytest\", \"{files}\"]",
        ));
    }
    check_argv(cx, name, "command", Slot::Command, &command)?;
    // A list placeholder as the program would run the shard's first file
    // (or test id) as the executable, and nothing at all for an empty list.
    if Placeholder::ALL
        .into_iter()
        .any(|p| p.is_list() && placeholders::is_standalone(command[0].get_ref(), p))
    {
        return Err(cx.err(
            command[0].span(),
            name,
            "command",
            "the program is a placeholder",
            "the first element is the program to run; put {files} or {tests} after it, e.g. command = [\"pytest\", \"{files}\"]",
        ));
    }
    let uses = |p: Placeholder| {
        command.iter().any(|e| {
            placeholders::parse_template(e.get_ref())
                .map(|s| placeholders::placeholders(&s).any(|q| q == p))
                .unwrap_or(false)
        })
    };
    let uses_files = uses(Placeholder::Files);
    let uses_tests = uses(Placeholder::Tests);

    // --- setup
    let mut setup = Vec::new();
    if let Some(s) = raw.setup {
        for (i, argv) in s.get_ref().0.iter().enumerate() {
            let field = if s.get_ref().0.len() == 1 {
                "setup".to_string()
            } else {
                format!("setup[{i}]")
            };
            if argv.is_empty() || argv[0].get_ref().trim().is_empty() {
                return Err(cx.err(
                    s.span(),
                    name,
                    field,
                    "empty setup command",
                    "each setup command is an argv whose first element is the program, e.g. [\"make\", \"fixtures\"]",
                ));
            }
            check_argv(cx, name, &field, Slot::Setup, argv)?;
            setup.push(argv.iter().map(|a| a.get_ref().clone()).collect());
        }
    }

    // --- files / exclude
    let files = match strings(raw.files) {
        Some((span, f)) => {
            if f.is_empty() && uses_files {
                return Err(cx.err(
                    span,
                    name,
                    "files",
                    "`files` is empty but the command uses {files}",
                    "list the test files as globs, e.g. files = [\"tests/**/test_*.py\"]",
                ));
            }
            check_globs(cx, name, "files", &f, false)?
        }
        None if uses_files => {
            return Err(cx.err(
                name_span,
                name,
                "files",
                "missing `files`: the command uses {files}",
                "list the test files as globs, e.g. files = [\"tests/**/test_*.py\"]",
            ));
        }
        None => Vec::new(),
    };
    let exclude = match strings(raw.exclude) {
        Some((_, e)) => check_globs(cx, name, "exclude", &e, false)?,
        None => Vec::new(),
    };

    // --- shards
    let shards = match (raw.shards, raw.target_shard_seconds) {
        (None, None) => Shards::Count(1),
        (Some(s), target) => match (s.get_ref(), target) {
            (RawShards::Count(_), Some(t)) => {
                return Err(cx.err(
                    t.span(),
                    name,
                    "target_shard_seconds",
                    "target_shard_seconds only applies to shards = \"auto\"",
                    "either set shards = \"auto\" or remove target_shard_seconds",
                ));
            }
            (RawShards::Count(n), None) => {
                let n = int_in(
                    cx,
                    name,
                    "shards",
                    &Spanned::new(s.span(), *n),
                    1..=i64::from(MAX_SHARDS),
                    "use 1 for an unsharded suite, or \"auto\" to size shards from timings",
                )?;
                Shards::Count(u32::try_from(n).unwrap_or(MAX_SHARDS))
            }
            (RawShards::Auto, None) => {
                return Err(cx.err(
                    s.span(),
                    name,
                    "shards",
                    "shards = \"auto\" needs target_shard_seconds",
                    "add target_shard_seconds = 120 (how long each shard should take)",
                ));
            }
            (RawShards::Auto, Some(t)) => Shards::Auto {
                target_shard_seconds: int_in(
                    cx,
                    name,
                    "target_shard_seconds",
                    &t,
                    1..=MAX_TIMEOUT_SECONDS as i64,
                    "a typical target is 60 to 300 seconds",
                )?,
            },
        },
        (None, Some(t)) => {
            return Err(cx.err(
                t.span(),
                name,
                "target_shard_seconds",
                "target_shard_seconds without shards = \"auto\"",
                "add shards = \"auto\", or remove target_shard_seconds",
            ));
        }
    };
    let sharded = !matches!(shards, Shards::Count(1));
    if sharded && !uses_files && !uses_tests {
        return Err(cx.err(
            command_span,
            name,
            "command",
            "the suite is sharded but the command uses neither {files} nor {tests}, so every shard would run the whole suite",
            "pass the shard's files with a standalone \"{files}\" element (or tests with \"{tests}\"), or set shards = 1",
        ));
    }

    // --- timeout / retries
    let timeout_seconds = match raw.timeout_seconds {
        Some(t) => int_in(
            cx,
            name,
            "timeout_seconds",
            &t,
            1..=MAX_TIMEOUT_SECONDS as i64,
            "the timeout is per shard, in seconds, at most one day (86400)",
        )?,
        None => DEFAULT_TIMEOUT_SECONDS,
    };
    let retries = match raw.retries {
        Some(r) => int_in(
            cx,
            name,
            "retries",
            &r,
            0..=i64::from(MAX_RETRIES),
            "retries re-run failing tests; more than 10 hides broken tests rather than flakes",
        )? as u32,
        None => 0,
    };

    // --- env (before junit: env values may carry {junit})
    let mut env = BTreeMap::new();
    let mut env_uses_junit = false;
    if let Some(e) = raw.env {
        for (k, v) in e.into_inner() {
            let key = k.get_ref();
            if !is_env_name(key) {
                return Err(cx.err(
                    k.span(),
                    name,
                    format!("env.{key}"),
                    format!("invalid environment variable name {key:?}"),
                    "names are letters, digits and `_`, not starting with a digit, e.g. PYTHONDONTWRITEBYTECODE",
                ));
            }
            let segs = check_template(cx, name, &format!("env.{key}"), Slot::Env, &v)?;
            env_uses_junit |= placeholders::placeholders(&segs).any(|p| p == Placeholder::Junit);
            env.insert(key.clone(), v.into_inner());
        }
    }

    // --- junit
    let junit = match strings(raw.junit) {
        Some((span, j)) if j.is_empty() => {
            return Err(cx.err(
                span,
                name,
                "junit",
                "`junit` is empty",
                "testexec reads results from JUnit files: list where the command writes them, or use [\"{junit}\"]",
            ));
        }
        Some((_, j)) => check_globs(cx, name, "junit", &j, true)?,
        None if uses(Placeholder::Junit) || env_uses_junit => vec!["{junit}".to_string()],
        None => {
            return Err(cx.err(
                name_span,
                name,
                "junit",
                "missing `junit`: the command does not mention {junit}, so testexec cannot know where results are written",
                "pass {junit} to the runner (e.g. \"--junitxml={junit}\"), or list the files it writes: junit = [\"target/surefire-reports/TEST-*.xml\"]",
            ));
        }
    };

    let artifacts = match strings(raw.artifacts) {
        Some((_, a)) => check_globs(cx, name, "artifacts", &a, false)?,
        None => Vec::new(),
    };

    // --- working_dir
    let working_dir = match raw.working_dir {
        Some(w) => {
            if w.get_ref().is_empty() {
                return Err(cx.err(
                    w.span(),
                    name,
                    "working_dir",
                    "empty working_dir",
                    "use \".\" for the repository root, or omit it",
                ));
            }
            check_relative(cx, name, "working_dir", &w)?;
            Some(w.into_inner())
        }
        None => None,
    };

    // --- completed_exit_codes: which exits mean "the runner finished"
    // (tests passed or failed). Anything else (pytest's 2 "interrupted",
    // a crash) makes the shard errored even if some JUnit was written.
    let completed_exit_codes = match raw.completed_exit_codes {
        Some(list) => {
            let span = list.span();
            let mut codes = Vec::new();
            for code in list.into_inner() {
                codes.push(int_in(
                    cx,
                    name,
                    "completed_exit_codes",
                    &code,
                    0..=255,
                    "exit codes are 0..=255, e.g. completed_exit_codes = [0, 100] for cargo nextest",
                )? as i32);
            }
            if codes.is_empty() {
                return Err(cx.err(
                    span,
                    name,
                    "completed_exit_codes",
                    "empty completed_exit_codes",
                    "list the exit codes your runner uses for \"tests ran\", e.g. [0, 1]",
                ));
            }
            codes
        }
        None => DEFAULT_COMPLETED_EXIT_CODES.to_vec(),
    };

    // --- test_id: how `{tests}` names a test; only meaningful with `{tests}`.
    let test_id = raw.test_id.map(Spanned::into_inner).unwrap_or_default();

    Ok(Suite {
        name: name.to_string(),
        setup,
        command: command.into_iter().map(Spanned::into_inner).collect(),
        files,
        exclude,
        shards,
        timeout_seconds,
        retries,
        junit,
        artifacts,
        env,
        working_dir,
        test_id,
        completed_exit_codes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters() {
        let t = "ab\nçd\n";
        assert_eq!(line_column(t, 0), (1, 1));
        assert_eq!(line_column(t, 3), (2, 1));
        assert_eq!(line_column(t, 5), (2, 2));
        assert_eq!(line_column(t, 4), (2, 1)); // inside `ç`: clamps back
        assert_eq!(line_column(t, 999), (3, 1));
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("_A1"));
        assert!(!is_env_name("1A"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
    }
}
