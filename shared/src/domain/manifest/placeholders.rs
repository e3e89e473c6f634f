//! `{placeholder}` templates inside argv elements, junit globs and env values.
//!
//! Templates are expanded into argv *elements*: nothing here ever goes through
//! a shell, so a file name with spaces or `$` stays one argument.

use super::Expansion;

/// The placeholders testexec knows. Anything else between braces is an error
/// at parse time, so a typo (`{file}`) cannot silently reach the test runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholder {
    /// Zero or more elements, one per file of the shard. Must stand alone.
    Files,
    /// The selected tests, as `test_id` renders them. Must stand alone.
    Tests,
    /// Tests of the shard's files that other shards run (a file split by
    /// test), as `test_id` renders them (`--deselect=<id>`). Must stand alone.
    SkipTests,
    /// Path of the JUnit file the shard should write (chosen by the executor).
    Junit,
    /// 0-based shard index.
    Shard,
    ShardCount,
    RunId,
}

impl Placeholder {
    pub(crate) const ALL: [Placeholder; 7] = [
        Placeholder::Files,
        Placeholder::Tests,
        Placeholder::SkipTests,
        Placeholder::Junit,
        Placeholder::Shard,
        Placeholder::ShardCount,
        Placeholder::RunId,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Placeholder::Files => "files",
            Placeholder::Tests => "tests",
            Placeholder::SkipTests => "skip_tests",
            Placeholder::Junit => "junit",
            Placeholder::Shard => "shard",
            Placeholder::ShardCount => "shard_count",
            Placeholder::RunId => "run_id",
        }
    }

    /// `{files}`, `{tests}` and `{skip_tests}` expand to a variable number
    /// of elements, so they cannot be glued to other text.
    pub(crate) fn is_list(self) -> bool {
        matches!(
            self,
            Placeholder::Files | Placeholder::Tests | Placeholder::SkipTests
        )
    }

    fn from_name(name: &str) -> Option<Placeholder> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Text(String),
    Placeholder(Placeholder),
}

/// Why a template does not parse. `offset` is a byte offset into the element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    Unknown { name: String },
    Unclosed,
    StrayClose,
}

impl TemplateError {
    pub(crate) fn message_and_hint(&self) -> (String, String) {
        let known = Placeholder::ALL
            .iter()
            .map(|p| format!("{{{}}}", p.name()))
            .collect::<Vec<_>>()
            .join(", ");
        match self {
            TemplateError::Unknown { name } => {
                let names: Vec<&str> = Placeholder::ALL.iter().map(|p| p.name()).collect();
                let hint = match super::suggest(name, &names) {
                    Some(s) => format!(
                        "did you mean `{{{s}}}`? Known placeholders: {known}; write `{{{{` for a literal brace"
                    ),
                    None => format!(
                        "known placeholders: {known}; write `{{{{` and `}}}}` for literal braces"
                    ),
                };
                (format!("unknown placeholder `{{{name}}}`"), hint)
            }
            TemplateError::Unclosed => (
                "unclosed `{`".to_string(),
                format!("placeholders look like {known}; write `{{{{` for a literal `{{`"),
            ),
            TemplateError::StrayClose => (
                "unmatched `}`".to_string(),
                "write `}}` for a literal `}`".to_string(),
            ),
        }
    }
}

/// Splits a template into literal text and placeholders; `{{`/`}}` are
/// literal braces.
pub(crate) fn parse_template(s: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|&(_, n)| n) == Some('{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek().map(|&(_, n)| n) == Some('}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let rest = &s[i + 1..];
                let end = rest.find('}').ok_or(TemplateError::Unclosed)?;
                let name = &rest[..end];
                if name.contains('{') {
                    return Err(TemplateError::Unclosed);
                }
                let p = Placeholder::from_name(name).ok_or_else(|| TemplateError::Unknown {
                    name: name.to_string(),
                })?;
                if !text.is_empty() {
                    out.push(Segment::Text(std::mem::take(&mut text)));
                }
                out.push(Segment::Placeholder(p));
                // Skip the name and the closing brace.
                for _ in 0..name.chars().count() + 1 {
                    chars.next();
                }
            }
            '}' => return Err(TemplateError::StrayClose),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(Segment::Text(text));
    }
    Ok(out)
}

/// The placeholders a template uses (after parsing succeeded).
pub(crate) fn placeholders(segments: &[Segment]) -> impl Iterator<Item = Placeholder> + '_ {
    segments.iter().filter_map(|s| match s {
        Segment::Placeholder(p) => Some(*p),
        Segment::Text(_) => None,
    })
}

/// True when the element uses `p` anywhere.
pub(crate) fn mentions(element: &str, p: Placeholder) -> bool {
    parse_template(element).is_ok_and(|s| placeholders(&s).any(|q| q == p))
}

/// True when the element is exactly `{tests}` (or `{files}`): a list slot.
pub(crate) fn is_standalone(element: &str, p: Placeholder) -> bool {
    matches!(parse_template(element).as_deref(), Ok([Segment::Placeholder(q)]) if *q == p)
}

/// How scalar placeholders are rendered into the surrounding text.
#[derive(Clone, Copy)]
pub(crate) enum Render {
    Plain,
    /// Inside a glob: substituted values are literal paths, so their glob
    /// metacharacters are escaped.
    Glob,
}

fn scalar(p: Placeholder, x: &Expansion<'_>) -> String {
    match p {
        Placeholder::Junit => x.junit.to_string(),
        Placeholder::Shard => x.shard.to_string(),
        Placeholder::ShardCount => x.shard_count.to_string(),
        Placeholder::RunId => x.run_id.to_string(),
        // Only reachable for hand-built suites that skipped validation: a
        // space-joined list is the least surprising rendering.
        Placeholder::Files => x.files.join(" "),
        Placeholder::Tests => x.tests.join(" "),
        Placeholder::SkipTests => x.skip_tests.join(" "),
    }
}

fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '*' | '?' | '[' | ']' | '{' | '}' | '\\' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Expands one element into `out`: a standalone list placeholder becomes
/// zero or more elements, anything else exactly one element.
pub(crate) fn expand_into(element: &str, x: &Expansion<'_>, render: Render, out: &mut Vec<String>) {
    let Ok(segments) = parse_template(element) else {
        // Validated manifests never get here; a hand-built suite keeps its
        // text verbatim rather than panicking.
        out.push(element.to_string());
        return;
    };
    match segments.as_slice() {
        [Segment::Placeholder(Placeholder::Files)] => out.extend(x.files.iter().cloned()),
        [Segment::Placeholder(Placeholder::Tests)] => out.extend(x.tests.iter().cloned()),
        [Segment::Placeholder(Placeholder::SkipTests)] => out.extend(x.skip_tests.iter().cloned()),
        _ => out.push(expand_scalar_segments(&segments, x, render)),
    }
}

/// Expands a template that must yield exactly one string (env values).
pub(crate) fn expand_one(template: &str, x: &Expansion<'_>) -> String {
    match parse_template(template) {
        Ok(segments) => expand_scalar_segments(&segments, x, Render::Plain),
        Err(_) => template.to_string(),
    }
}

fn expand_scalar_segments(segments: &[Segment], x: &Expansion<'_>, render: Render) -> String {
    let mut s = String::new();
    for seg in segments {
        match (seg, render) {
            (Segment::Text(t), Render::Plain) => s.push_str(t),
            // Literal braces in a glob template came from `{{`/`}}`: they
            // are glob alternation syntax, so they pass through unescaped.
            (Segment::Text(t), Render::Glob) => s.push_str(t),
            (Segment::Placeholder(p), Render::Plain) => s.push_str(&scalar(*p, x)),
            (Segment::Placeholder(p), Render::Glob) => s.push_str(&escape_glob(&scalar(*p, x))),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x<'a>(files: &'a [String], tests: &'a [String]) -> Expansion<'a> {
        Expansion {
            files,
            tests,
            skip_tests: &[],
            junit: "out/j.xml",
            shard: 2,
            shard_count: 4,
            run_id: "RUN",
        }
    }

    #[test]
    fn parses_text_placeholders_and_escapes() {
        assert_eq!(
            parse_template("--junitxml={junit}").unwrap(),
            vec![
                Segment::Text("--junitxml=".into()),
                Segment::Placeholder(Placeholder::Junit)
            ]
        );
        assert_eq!(
            parse_template("{{x}}").unwrap(),
            vec![Segment::Text("{x}".into())]
        );
        assert_eq!(parse_template("").unwrap(), vec![]);
        assert_eq!(parse_template("{shard}/{shard_count}").unwrap().len(), 3);
    }

    #[test]
    fn rejects_bad_templates() {
        assert_eq!(
            parse_template("{file}"),
            Err(TemplateError::Unknown {
                name: "file".into()
            })
        );
        assert_eq!(parse_template("{junit"), Err(TemplateError::Unclosed));
        assert_eq!(parse_template("{a{junit}"), Err(TemplateError::Unclosed));
        assert_eq!(parse_template("a}"), Err(TemplateError::StrayClose));
        let (msg, hint) = TemplateError::Unknown {
            name: "file".into(),
        }
        .message_and_hint();
        assert!(msg.contains("`{file}`"), "{msg}");
        assert!(hint.contains("did you mean `{files}`"), "{hint}");
    }

    #[test]
    fn list_placeholders_expand_to_many_or_no_elements() {
        let files = vec!["a b.py".to_string(), "c.py".to_string()];
        let mut out = vec![];
        expand_into("{files}", &x(&files, &[]), Render::Plain, &mut out);
        assert_eq!(out, files);
        out.clear();
        expand_into("{tests}", &x(&files, &[]), Render::Plain, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn scalars_embed_and_globs_escape_substituted_values() {
        let mut out = vec![];
        expand_into("--junitxml={junit}", &x(&[], &[]), Render::Plain, &mut out);
        expand_into("{{{shard}}}", &x(&[], &[]), Render::Plain, &mut out);
        assert_eq!(
            out,
            vec!["--junitxml=out/j.xml".to_string(), "{2}".to_string()]
        );
        let tricky = Expansion {
            junit: "r[1]/*.xml",
            ..x(&[], &[])
        };
        let mut g = vec![];
        expand_into("{junit}", &tricky, Render::Glob, &mut g);
        assert_eq!(g, vec!["r[[]1[]]/[*].xml".to_string()]);
        assert_eq!(expand_one("{run_id}-{shard}", &x(&[], &[])), "RUN-2");
    }

    #[test]
    fn invalid_templates_in_hand_built_suites_do_not_panic() {
        let mut out = vec![];
        expand_into("{nope", &x(&[], &[]), Render::Plain, &mut out);
        assert_eq!(out, vec!["{nope".to_string()]);
    }
}
