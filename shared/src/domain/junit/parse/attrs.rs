//! Attribute values: the fast tag splitter, value decoding and the
//! readings of `time`, `status` and `result` shared by every element.

use std::borrow::Cow;

use quick_xml::escape::unescape;

use super::Parser;
use super::tag::{Tag, TagAttrs};
use crate::domain::junit::CaseRef;
use crate::domain::junit::text::{TimeIssue, cap_str, parse_time};
use crate::domain::model::{MAX_DURATION_SECS, Outcome};
use crate::errors::JunitError;

#[derive(Default)]
pub(super) struct TimeStats {
    pub(super) missing: u64,
    pub(super) negative: u64,
    pub(super) garbage: u64,
    pub(super) first_negative: Option<String>,
    pub(super) first_garbage: Option<String>,
    pub(super) huge: u64,
    pub(super) first_huge: Option<String>,
}

/// Names and paths that held NUL bytes (see [`Parser::escape_nul`]).
#[derive(Default)]
pub(super) struct NulStats {
    pub(super) count: u64,
    pub(super) first: Option<String>,
}

impl<F: FnMut(CaseRef<'_>)> Parser<'_, F> {
    /// Replaces each NUL in a name or path by the two characters `\0`.
    /// XML forbids NUL, but runners that print raw bytes write it anyway,
    /// and a NUL cannot travel further: not in argv (a rerun by test id),
    /// not in a C string, not to a terminal. `what` names the value in the
    /// warning.
    pub(super) fn escape_nul(&mut self, value: String, what: &str) -> String {
        if memchr::memchr(0, value.as_bytes()).is_none() {
            return value;
        }
        let escaped = value.replace('\0', "\\0");
        self.nuls.count += 1;
        self.nuls
            .first
            .get_or_insert_with(|| format!("{what} {:?}", cap_str(&escaped, 200)));
        escaped
    }

    /// Reads the attributes we use. Values are unescaped and capped; a value
    /// with an undefined entity is kept raw rather than failing the whole
    /// report. Only the `wanted` keys are decoded (`wanted` names each
    /// by a `K` of the caller's, so that `f` dispatches on it without
    /// comparing the key's bytes a second time): most attributes
    /// (timestamps, hostnames, assertions=...) are skipped without even a
    /// UTF-8 check. Values are lent as `Cow`s borrowing the event buffer, so
    /// that numbers and status words are parsed without allocating: only the
    /// caller decides what becomes an owned `String`.
    ///
    /// Returns whether the tag is "plain": valid UTF-8 with no `&` and no
    /// NUL byte anywhere, so that every value is lent as written and holds
    /// no NUL ([`escape_nul`](Self::escape_nul) has nothing to do).
    pub(super) fn attrs<'b, K>(
        &mut self,
        e: &Tag<'b>,
        position: u64,
        wanted: impl Fn(&[u8]) -> Option<K>,
        mut f: impl FnMut(K, Cow<'b, str>),
    ) -> Result<bool, JunitError> {
        let cap = self.limits.max_text_bytes;
        let mut unknown = 0;
        let raw = e.attributes_raw();
        // One UTF-8 check and one search for `&`/NUL over the whole tag
        // instead of one of each per wanted value (a call each, for values
        // of a few bytes). A value of a plain tag is a slice of `plain`
        // between two ASCII quotes, so on char boundaries, and decodes to
        // itself: exactly what `decode_value` would return for it.
        let plain = match e.attrs {
            TagAttrs::Scanned {
                plain: Some(content),
                ..
            } => Some(&content[e.name_len..]),
            _ => match memchr::memchr2(b'&', 0, raw) {
                None => std::str::from_utf8(raw).ok(),
                Some(_) => None,
            },
        };
        // One pair of the tag: decoded only when wanted.
        let mut pair = |key: &[u8], value: &'b [u8]| {
            if let Some(key) = wanted(key) {
                let decoded = match plain {
                    Some(plain) if value.len() <= cap => {
                        let at = value.as_ptr() as usize - raw.as_ptr() as usize;
                        Cow::Borrowed(&plain[at..at + value.len()])
                    }
                    _ => decode_value(value, cap, &mut unknown),
                };
                f(key, decoded);
            }
        };
        match e.attrs {
            // Split already, by the scan that found the tag's end.
            TagAttrs::Scanned { spans, .. } => {
                for s in spans {
                    pair(
                        &e.content[s.local as usize..s.key_end as usize],
                        &e.content[s.value as usize..s.value_end as usize],
                    );
                }
            }
            TagAttrs::Event(event) => {
                // quick-xml's `Attributes` iterator was the top entry of the
                // profile (~18 % of instructions): a general state machine
                // with error recovery. Well-formed tags, i.e. nearly all of
                // them, are split by `split_attributes` instead, which
                // yields exactly the same pairs.
                let mut delivered = 0;
                let split = split_attributes(raw, |_, key, value| {
                    delivered += 1;
                    pair(key, value);
                });
                if split.is_err() {
                    // Something quick-xml rejects (or might): let it report
                    // its own error, skipping the attributes already handed
                    // out. Duplicate checks are quadratic and buy nothing
                    // here: the last value wins.
                    for (i, attr) in event.attributes().with_checks(false).enumerate() {
                        let attr = attr.map_err(|err| self.malformed(position, err.to_string()))?;
                        let key = local_name(attr.key.as_ref());
                        if i >= delivered
                            && let Some(key) = wanted(key)
                        {
                            let value = decode_value(&attr.value, cap, &mut unknown).into_owned();
                            f(key, Cow::Owned(value));
                        }
                    }
                }
            }
        }
        self.unknown_entities += unknown;
        Ok(plain.is_some())
    }

    /// A `time` attribute in seconds; `what` names the element in the
    /// warnings. Small enough to be inlined into each element's handler:
    /// what is not a plain duration goes to [`time_issue`](Self::time_issue).
    #[inline]
    pub(super) fn time(&mut self, raw: Option<&str>, what: &str) -> Option<f64> {
        let raw = raw?;
        match parse_time(raw) {
            Ok(v) if v <= MAX_DURATION_SECS => Some(v),
            parsed => self.time_issue(raw, parsed, what),
        }
    }

    /// [`time`](Self::time) for a value past any real run, negative or
    /// unreadable: counted for the warnings.
    #[cold]
    #[inline(never)]
    fn time_issue(
        &mut self,
        raw: &str,
        parsed: Result<f64, (f64, TimeIssue)>,
        what: &str,
    ) -> Option<f64> {
        let example = || format!("{what} time=\"{}\"", cap_str(raw, 64));
        match parsed {
            // Finite but past any real run (`1.7e308`): capped, so that no
            // sum of durations can overflow to `inf`.
            Ok(_) => {
                self.times.huge += 1;
                self.times.first_huge.get_or_insert_with(example);
                Some(MAX_DURATION_SECS)
            }
            Err((v, issue)) => {
                match issue {
                    TimeIssue::Negative => {
                        self.times.negative += 1;
                        self.times.first_negative.get_or_insert_with(example);
                    }
                    TimeIssue::Garbage => {
                        self.times.garbage += 1;
                        self.times.first_garbage.get_or_insert_with(example);
                    }
                }
                Some(v).filter(|_| issue == TimeIssue::Negative)
            }
        }
    }
}

/// Outcome of a case without result children, from the `result` attribute
/// (GoogleTest) and then `status` (GoogleTest, Bazel, the C++ "tst" runner).
/// The first one that says something other than "passed" wins.
pub(super) fn attr_outcome(result: Option<&str>, status: Option<&str>) -> Outcome {
    // Most writers put neither attribute.
    if result.is_none() && status.is_none() {
        return Outcome::Passed;
    }
    [result, status]
        .into_iter()
        .flatten()
        .map(|v| {
            // Case-insensitive without lowercasing into a new String: this
            // runs for every case of a GoogleTest report.
            let v = v.trim();
            let is = |words: &[&str]| words.iter().any(|w| v.eq_ignore_ascii_case(w));
            if is(&[
                "disabled",
                "skipped",
                "skip",
                "notrun",
                "not run",
                "suppressed",
                "ignored",
                "pending",
            ]) {
                Outcome::Skipped
            } else if is(&["failed", "failure", "fail"]) {
                Outcome::Failed
            } else if is(&["error", "errored", "broken"]) {
                Outcome::Error
            } else {
                Outcome::Passed
            }
        })
        .find(|o| *o != Outcome::Passed)
        .unwrap_or(Outcome::Passed)
}

/// Splits the attribute part of a tag into `(key, raw value)` pairs the way
/// quick-xml's `Attributes` iterator does in XML mode without duplicate
/// checks (same whitespace set, the key's first byte taken as is, a value may
/// be followed directly by the next key), but as one straight loop with a
/// `memchr` for the closing quote. Returns `Err` on anything quick-xml would
/// reject (no `=`, unquoted or unterminated value); the pairs before it have
/// been handed out already.
///
/// `f` gets the key, its local name (as [`local_name`] gives it, found in
/// the same pass) and the raw value.
fn split_attributes<'b>(
    bytes: &'b [u8],
    mut f: impl FnMut(&'b [u8], &'b [u8], &'b [u8]),
) -> Result<(), ()> {
    let mut i = 0;
    loop {
        i = skip_ws(bytes, i);
        if i == bytes.len() {
            return Ok(());
        }
        let start = i;
        // Where the local name starts: after the first `:`.
        let mut local = if bytes[i] == b':' { i + 1 } else { usize::MAX };
        i += 1;
        while i < bytes.len() {
            match bytes[i] {
                b'=' | b' ' | b'\t' | b'\r' | b'\n' => break,
                b':' if local == usize::MAX => local = i + 1,
                _ => {}
            }
            i += 1;
        }
        let key = &bytes[start..i];
        let local = if local == usize::MAX {
            key
        } else {
            &bytes[local..i]
        };
        i = skip_ws(bytes, i);
        if bytes.get(i) != Some(&b'=') {
            return Err(());
        }
        i = skip_ws(bytes, i + 1);
        let quote = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return Err(()),
        };
        let value_start = i + 1;
        let len = memchr::memchr(quote, &bytes[value_start..]).ok_or(())?;
        f(key, local, &bytes[value_start..value_start + len]);
        i = value_start + len + 1;
    }
}

/// XML whitespace.
#[inline(always)]
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The index of the first byte from `i` on that is not XML whitespace.
#[inline(always)]
pub(super) fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && is_ws(bytes[i]) {
        i += 1;
        // Writers that put each attribute on a line of its own indent
        // it with a run of spaces (14 a line in Ant's reports): eight,
        // then four at a time, where a byte loop cost ~5 % of such a
        // report's instructions.
        if bytes[i - 1] == b'\n' {
            while let Some(w) = bytes.get(i..i + 8)
                && w == b"        "
            {
                i += 8;
            }
            if let Some(w) = bytes.get(i..i + 4)
                && w == b"    "
            {
                i += 4;
            }
        }
    }
    i
}

/// The part after the namespace prefix, as quick-xml's `local_name` (split at
/// the first `:`): `<ns:testcase>` and its attributes are read like plain
/// ones. A byte loop: names are a few bytes, where a `memchr` call cost ~70
/// instructions a tag.
#[inline]
pub(super) fn local_name(key: &[u8]) -> &[u8] {
    match key.iter().position(|&b| b == b':') {
        Some(colon) => &key[colon + 1..],
        None => key,
    }
}

/// An attribute value as quick-xml's `unescape_value` gives it (UTF-8, the
/// predefined entities and character references decoded), capped. Borrows
/// from the event buffer unless something had to change. Invalid UTF-8 or an
/// undefined entity keeps the value as written and bumps `unknown`.
fn decode_value<'b>(raw: &'b [u8], cap: usize, unknown: &mut u64) -> Cow<'b, str> {
    let value = match std::str::from_utf8(raw) {
        // Most values hold no reference at all: one `memchr` settles it.
        Ok(s) if memchr::memchr(b'&', raw).is_none() => Cow::Borrowed(s),
        Ok(s) => unescape(s).unwrap_or_else(|_| {
            *unknown += 1;
            Cow::Borrowed(s)
        }),
        Err(_) => {
            *unknown += 1;
            String::from_utf8_lossy(raw)
        }
    };
    if value.len() <= cap {
        value
    } else {
        Cow::Owned(cap_str(&value, cap))
    }
}

#[cfg(test)]
mod tests {
    use quick_xml::events::BytesStart;

    use super::*;

    /// `split_attributes` must hand out exactly what quick-xml's iterator
    /// does, and fail wherever quick-xml reports an error.
    #[test]
    fn split_attributes_agrees_with_quick_xml() {
        let tags = [
            r#"t a="1" b='2'"#,
            "t\ta = \"x y\"\n\r b\t=\t'\"'",
            r#"t a="1"b="2""#,
            r#"t ns:a="&amp;" c:d:e="x""#,
            r#"t ="x""#,
            r#"t a="" b=''"#,
            "t",
            "t   ",
            r#"t a"#,
            r#"t a b="1""#,
            r#"t a= "#,
            r#"t a=1 b="2""#,
            r#"t a="1" b="2"#,
            r#"t a="1" b='2" c="3""#,
            r#"t a="<<computed>>" b="é""#,
            r#"t :a="1" a:="2" a::b="3" ::="4""#,
            // Indentation runs around the 8- and 4-space steps, ending in
            // other whitespace, in the middle of `=`, or at the end.
            "t\n              name=\"n\"\n              classname='c'",
            "t\n        a=\"1\"\n    b=\"2\"\n            c=\"3\"",
            "t\n       a=\"1\"\n   b=\"2\"\n\n        \t c=\"3\"",
            "t\n            \r\n a\n                =\n     '1'",
            "t a=\"1\"\n                ",
            "t a=\"1\"\n            b",
            "t\n        \n",
            // Keys that a wanted key is a prefix of, and the reverse.
            r#"t name_x="1" name="2" classnamefoo="3" classname="4" nam="5""#,
            // Repeated keys are all handed out, in order.
            r#"t name="1" name='2' name="3""#,
            // Non-ASCII keys and values, and a quote of the other kind inside.
            r#"t nämé="日本" ключ='a "b" c' x="it's""#,
            // Missing quotes.
            r#"t name="1"#,
            r#"t name=1""#,
            r#"t name="1" classname='2"#,
            "t\n        name=\"1\"\n        classname=",
        ];
        for tag in tags {
            let start = BytesStart::from_content(tag, 1);
            let mut fast = Vec::new();
            let ok = split_attributes(start.attributes_raw(), |k, local, v| {
                assert_eq!(local, local_name(k), "{tag}");
                fast.push((k.to_vec(), v.to_vec()))
            })
            .is_ok();
            let mut slow = Vec::new();
            let mut slow_ok = true;
            for attr in start.attributes().with_checks(false) {
                match attr {
                    Ok(a) => slow.push((a.key.as_ref().to_vec(), a.value.to_vec())),
                    Err(_) => {
                        slow_ok = false;
                        break;
                    }
                }
            }
            assert_eq!(ok, slow_ok, "{tag}");
            assert_eq!(fast, slow, "{tag}");
        }
    }

    /// The testcase attributes as the reader takes them, through the whole
    /// reader: wanted keys matched whole (not as prefixes), the last of a
    /// repeated key winning, either quote, entities decoded, non-ASCII kept,
    /// and a missing quote reported as quick-xml reports it.
    #[test]
    fn testcase_attributes_through_the_reader() {
        use crate::domain::junit::{Limits, read};

        let case = |attrs: &str| {
            let xml = format!("<testsuite name=\"s\"><testcase {attrs}/></testsuite>");
            read(xml.as_bytes(), "t.xml", &Limits::default()).map(|r| {
                let c = &r.cases[0];
                (c.name.clone(), c.classname.clone(), c.duration_secs)
            })
        };
        let ok = |name: &str, classname: &str, time: f64| {
            Ok::<_, String>((name.to_owned(), classname.to_owned(), time))
        };
        let got = |attrs| case(attrs).map_err(|e| e.to_string());
        assert_eq!(
            got(r#"name_x="a" name="n" classnamefoo="b" classname="c" timex="9" time="1.5""#),
            ok("n", "c", 1.5)
        );
        assert_eq!(
            got(r#"nam="a" name="n" classnam="b" classname="c""#),
            ok("n", "c", 0.0)
        );
        assert_eq!(
            got(r#"name="1" classname="x" name='2' time="3" time="4""#),
            ok("2", "x", 4.0)
        );
        assert_eq!(
            got(r#"name='say "hi"' classname="it's &amp; &lt;b&gt; &#x41;""#),
            ok(r#"say "hi""#, "it's & <b> A", 0.0)
        );
        assert_eq!(
            got("\n              name=\"é 日本\"\n              classname='ü'"),
            ok("é 日本", "ü", 0.0)
        );
        assert_eq!(got(r#"ns:name="n" x:classname="c""#), ok("n", "c", 0.0));
        // An undefined entity is kept as written.
        assert_eq!(got(r#"name="a &bogus; b""#), ok("a &bogus; b", "", 0.0));
        // Malformed attributes: the error is quick-xml's own.
        for attrs in [
            r#"name=1"#,
            r#"name"#,
            r#"name="1" classname"#,
            r#"name="1" classname = "#,
            "\n              name=\"1\"\n              classname",
        ] {
            let err = case(attrs).expect_err(attrs);
            assert_eq!(err.kind(), "malformed", "{attrs}: {err}");
        }
        // A quote left open swallows the rest of the input.
        let err = case(r#"name="1" classname='2"#).expect_err("unterminated");
        assert_eq!(err.kind(), "truncated", "{err}");
    }

    #[test]
    fn attribute_values_decode_like_unescape_value() {
        let mut unknown = 0;
        assert_eq!(decode_value(b"a &lt; b", 100, &mut unknown), "a < b");
        assert_eq!(decode_value(b"&#x41;&#66;", 100, &mut unknown), "AB");
        assert_eq!(unknown, 0);
        assert_eq!(decode_value(b"&nope;", 100, &mut unknown), "&nope;");
        assert_eq!(decode_value(b"\xff", 100, &mut unknown), "\u{FFFD}");
        assert_eq!(unknown, 2);
        assert!(matches!(
            decode_value(b"plain", 100, &mut unknown),
            Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn attr_outcome_ignores_case_and_padding() {
        assert_eq!(attr_outcome(Some(" Not Run "), None), Outcome::Skipped);
        assert_eq!(
            attr_outcome(Some("completed"), Some("FAIL")),
            Outcome::Failed
        );
        assert_eq!(attr_outcome(None, Some("Broken")), Outcome::Error);
        assert_eq!(attr_outcome(Some("run"), Some("run")), Outcome::Passed);
    }
}
