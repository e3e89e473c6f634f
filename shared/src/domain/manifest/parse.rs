//! TOML text → validated [`Manifest`].
//!
//! Two layers: serde structs (`Raw*`, `deny_unknown_fields`) keep every
//! value's span, then `validate` (one function per field) checks meaning
//! and builds the public types. Every error carries `origin:line:column`,
//! the suite and the field.

use crate::domain::selector::TestIdFormat;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

use super::{MAX_SUITES, Manifest, suggest};
use crate::errors::{ManifestError, ManifestLocation};
use validate::validate_suite;

mod flaky;
mod quarantine;
mod validate;

const TOP_FIELDS: &[&str] = &["suites", "flaky", "quarantine"];
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
    "split_by_test",
    "mode",
    "completed_exit_codes",
];
const MAX_SUITE_NAME: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    suites: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawSuite>>>>,
    flaky: Option<flaky::RawFlaky>,
    quarantine: Option<quarantine::RawQuarantine>,
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
    split_by_test: Option<Spanned<bool>>,
    mode: Option<Spanned<super::Mode>>,
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

/// An error in a top-level table (`[flaky]`, `[quarantine]`): no suite.
fn top_err(
    cx: &Ctx,
    span: Range<usize>,
    field: &str,
    message: impl Into<String>,
    hint: &str,
) -> ManifestError {
    ManifestError::Invalid {
        at: cx.at(Some(span), None, Some(field.to_string())),
        message: message.into(),
        hint: Some(hint.to_string()),
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
    let history = crate::domain::history::triage::HistoryPolicy {
        flaky: flaky::validate(&cx, raw.flaky)?,
        quarantine: quarantine::validate(&cx, raw.quarantine)?,
    };
    let mut out = BTreeMap::new();
    for (name, suite) in suites.into_inner() {
        let span = name.span();
        let name = name.into_inner();
        validate_suite_name(&cx, &name, span.clone())?;
        let suite = validate_suite(&cx, &name, span, suite.into_inner())?;
        out.insert(name, suite);
    }
    Ok(Manifest {
        suites: out,
        history,
    })
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
        let (known, place) = match (suite.is_some(), field.as_deref()) {
            (true, _) => (SUITE_FIELDS, "a suite"),
            (false, Some("flaky")) => (flaky::FIELDS, "[flaky]"),
            (false, Some("quarantine")) => (quarantine::FIELDS, "[quarantine]"),
            _ => (TOP_FIELDS, "the top level"),
        };
        message = format!("unknown field `{unknown}` in {place}");
        hint = Some(match suggest(&unknown, known) {
            Some(s) => format!("did you mean `{s}`?"),
            None if suite.is_none() && place == "the top level" => {
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
        "test_id" => {
            "test_id = \"pytest\" (or \"name\", \"class_dot_name\", \"class_hash_name\", \"go\", \"nextest\", \"jest\", \"maven\")"
        }
        "split_by_test" => "split_by_test = true",
        "mode" => "mode = \"queue\" (or \"static\", the default)",
        "suites" => "[suites.unit] followed by command = [...]",
        "flaky" => "[flaky] followed by window = 50, flip_rate = 0.02, broken_runs = 5",
        "quarantine" => "[quarantine] followed by tests = [\"pkg.Class::test_name\"], auto = true",
        _ => return None,
    })
}

/// The suite and field (`command[2]`) whose key or value contains `pos`.
fn locate(text: &str, pos: usize) -> (Option<String>, Option<String>) {
    // Inside a top-level table other than the suites (`[flaky]`): its spans
    // do not cover its body, so look for the header above `pos`.
    let header = text
        .get(..pos)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .rfind(|l| l.starts_with('['));
    if let Some(table @ ("flaky" | "quarantine")) = header.map(|h| h.trim_matches(['[', ']', ' ']))
    {
        return (None, Some(table.to_string()));
    }
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
}
