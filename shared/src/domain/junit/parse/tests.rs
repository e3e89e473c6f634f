//! The fast lane against quick-xml alone: the same cases, summary and
//! errors (message and position) on every fixture, on thousands of damaged
//! copies, and with the input arriving a few bytes at a time, so that
//! events straddle the end of the lane's window wherever they can.

use std::io::{Cursor, Read};
use std::path::Path;

use crate::domain::junit::{Limits, Tokenizer, stream_refs_using};

/// Hands out its input `step` bytes at a time, varying `step` so that
/// window ends fall at every kind of place.
struct Trickle<'a> {
    rest: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.step = self.step % 97 + 1;
        let n = self.rest.len().min(self.step).min(buf.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// Everything the reader says about `input`: its result (summary or
/// error, with position) and every case, in order.
fn read(input: impl Read, limits: &Limits, tokenizer: Tokenizer) -> String {
    let mut cases = Vec::new();
    let result = stream_refs_using(tokenizer, input, "report.xml", limits, |case| {
        cases.push(format!("{case:?}"))
    });
    format!("{result:?}\n{}", cases.join("\n"))
}

fn assert_lanes_agree(bytes: &[u8], limits: &Limits, what: &str) {
    let reference = read(Cursor::new(bytes), limits, Tokenizer::QuickXmlOnly);
    let fast = read(Cursor::new(bytes), limits, Tokenizer::FastLane);
    assert_eq!(fast, reference, "{what}: fast lane, whole input");
    // Against quick-xml on the same pieces.
    let pieces = || Trickle {
        rest: bytes,
        step: 0,
    };
    assert_eq!(
        read(pieces(), limits, Tokenizer::FastLane),
        read(pieces(), limits, Tokenizer::QuickXmlOnly),
        "{what}: fast lane, input in pieces"
    );
}

/// xorshift64: seeded, so every run damages the same bytes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// What the damage inserts or writes over: markup of every kind the lane
/// reads or steps aside from, and bytes that break it.
const EDITS: &[&[u8]] = &[
    b"<",
    b">",
    b"\"",
    b"'",
    b"&",
    b"&amp;",
    b"&#x41;",
    b"&bogus;",
    b"=",
    b"/",
    b"/>",
    b" ",
    b"\n",
    b"\t",
    b"\0",
    b"\xff",
    b"\xc3",
    b"</x>",
    b"</testcase>",
    b"</testcase >",
    b"</testcase\n>",
    b"<testcase/ >",
    b"<testcase>",
    b"<testcase name=\"z\">",
    b"<testcase name='q' time=\"1\"/>",
    b"<testcase name=\"a>b\"/>",
    b"<ns:testcase name=\"n\"/>",
    b"</ns:testcase>",
    b"<t\xc3\xa9st>",
    b"</t\xc3\xa9st>",
    b"<testcase name=\"\xc3\xa9\"/>",
    b" b = \"c\"",
    b"\"d=\"e\"",
    b"x:y=\"1\"",
    b"<>",
    b"</>",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<?pi x?>",
    b"<!DOCTYPE x>",
    b"<failure message=\"m&lt;\">",
    b"<system-out>",
    b"</system-out>",
    b"</testsuite>",
    b"\xef\xbb\xbf",
    b"\r\n",
];

fn damaged(data: &[u8], rng: &mut Rng) -> Vec<u8> {
    let markup: Vec<usize> = data
        .iter()
        .enumerate()
        .filter(|(_, b)| b"<>\"=/".contains(b))
        .map(|(i, _)| i)
        .collect();
    let mut d = data.to_vec();
    for _ in 0..=rng.below(3) {
        let at = if !markup.is_empty() && rng.below(10) < 7 {
            (markup[rng.below(markup.len())] + rng.below(5)).saturating_sub(2)
        } else {
            rng.below(d.len())
        }
        .min(d.len());
        let edit = EDITS[rng.below(EDITS.len())];
        match rng.below(3) {
            0 => {
                d.splice(at..at, edit.iter().copied());
            }
            1 => {
                let end = (at + edit.len()).min(d.len());
                d.splice(at..end, edit.iter().copied());
            }
            _ => {
                let end = (at + 1 + rng.below(3)).min(d.len());
                d.drain(at..end);
            }
        }
    }
    if rng.below(5) == 0 {
        d.truncate(rng.below(d.len()));
    }
    d
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/junit");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/junit")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    assert!(files.len() > 70, "the JUnit fixtures are missing");
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&p).expect("read fixture"))
        })
        .collect()
}

#[test]
fn the_lanes_agree_on_every_fixture() {
    for (name, bytes) in fixtures() {
        assert_lanes_agree(&bytes, &Limits::default(), &name);
    }
}

/// Thousands of damaged copies: every error quick-xml reports must come
/// out the same, at the same position, whichever lane met it first.
#[test]
fn the_lanes_agree_on_damaged_fixtures() {
    let mut rng = Rng(0x5eed_f00d);
    let small_texts = Limits {
        max_text_bytes: 64,
        ..Limits::default()
    };
    for (name, bytes) in fixtures() {
        // Fewer copies of the large reports: each is read three times.
        let copies = if bytes.len() > 100_000 { 2 } else { 40 };
        for copy in 0..copies {
            let d = damaged(&bytes, &mut rng);
            let limits = if copy % 4 == 3 {
                &small_texts
            } else {
                &Limits::default()
            };
            assert_lanes_agree(&d, limits, &format!("{name}, damaged copy {copy}"));
        }
    }
}

/// Shapes the lane must step aside from, or read exactly as quick-xml:
/// each inside a small report, whole and in pieces.
#[test]
fn the_lanes_agree_on_edge_shapes() {
    let shapes = [
        r#"<testcase name="a" classname="c" time="1"/>"#,
        r#"<testcase name="a"classname="c"/>"#,
        "<testcase\n              name=\"a\"\n              time=\"0.5\">\n</testcase>",
        r#"<testcase name = "a" time= '2' ></testcase >"#,
        r#"<testcase name="a"></testcase><testcase name="b"/>"#,
        r#"<testcase name="a"/ >"#,
        r#"<testcase name="a" / >"#,
        r#"<testcase name="a>"/>"#,
        r#"<testcase name="it's" classname='say "hi"'/>"#,
        r#"<testcase name="&lt;x&gt;" time="&#49;"/>"#,
        r#"<testcase name="a" name="b"/>"#,
        r#"<ns:testcase ns:name="a" xmlns:ns="u"></ns:testcase>"#,
        r#"<testcase name="a"></ns:testcase>"#,
        r#"<testcase name="a"></testcase></testcase>"#,
        r#"<testcase name="a"><failure message="m">body &amp; more
line two</failure></testcase>"#,
        "<testcase name=\"a\"><system-out>one\r\ntwo\rthree</system-out></testcase>",
        "<testcase name=\"a\"><system-out>\u{85}next\u{2028}line</system-out></testcase>",
        "<testcase name=\"a\"><system-out>bad \u{fffd}</system-out></testcase>",
        r#"<testcase name="a"><skipped/><!-- note --></testcase>"#,
        r#"<testcase name="a"><failure><![CDATA[x < y]]></failure></testcase>"#,
        r#"<testcase name="a" b"#,
        r#"<testcase name="a" b=c/>"#,
        r#"<testcase name="a" ="c"/>"#,
        r#"<testcase name="a" "x"/>"#,
        r#"<testcase name="a"<"#,
        r#"<test"case name="a"/>"#,
        r#"<testcase=x name="a"/>"#,
        "<testcase name=\"\u{e9}\" cl\u{e4}ss=\"x\"/>",
        "<t\u{e9}st></t\u{e9}st>",
        "<testcase name=\"a\">\u{0}</testcase>",
        "<testcase name=\"a\0\"/>",
    ];
    for shape in shapes {
        let doc = format!(
            "<?xml version=\"1.0\"?>\n<testsuites>\n  <testsuite name=\"s\">\n    {shape}\n  </testsuite>\n</testsuites>\n"
        );
        assert_lanes_agree(doc.as_bytes(), &Limits::default(), shape);
        let mut raw = doc.into_bytes();
        raw.extend_from_slice(b"\xff");
        assert_lanes_agree(&raw, &Limits::default(), shape);
    }
}
