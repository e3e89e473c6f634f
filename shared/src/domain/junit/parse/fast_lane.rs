//! The fast lane: the common shapes of a JUnit report read straight from
//! the input's buffer, with quick-xml reading everything else.
//!
//! Why: quick-xml scans every tag quote by quote to find its end, copies it
//! into its event buffer and hands out the bytes; the handlers then split
//! the same bytes again to find the attributes: quick-xml's tokenizer was
//! 35–48 % of the reader's instructions, the start tags' handlers (their
//! second scan, decoding and case building) up to 45 % (`docs/benchmarks.md`,
//! JUnit ingest, round 4). The fast lane scans a start tag once, attribute
//! by attribute, finding its end in the same pass; checks an end tag
//! against the open element in one comparison; and steps over the
//! whitespace between tags.
//!
//! It reads only what it reads exactly as quick-xml would (the same event
//! over the same bytes, at the same position) and only what lies whole in
//! the bytes the input has buffered. On anything else (a comment, CDATA, a
//! processing instruction, a reference, a tag outside the subset below,
//! text that is captured or outside the root, a tag across the end of the
//! buffer) it steps aside before consuming a byte, and quick-xml reads the
//! next event and reports any error exactly as it always has. Both read
//! the same `BufRead`: quick-xml consumes exactly the bytes of each event
//! it reads, so after any markup event either may read the next one.
//!
//! Accepted start tags: `<` name (ASCII letters, digits, `_ : . -`), then
//! attributes `key="value"` or `key='value'` (keys of the same bytes,
//! whitespace allowed around `=`), separated by whitespace or not at all
//! after a value, then `>` or `/>`. On these, quick-xml's end search (the
//! first `>` outside quotes) and its attribute iterator agree with the
//! scan; the tests hold both to that.
//!
//! End tags are checked here for both lanes (quick-xml's own check is off):
//! an end tag the fast lane reads is one it has matched to the open element;
//! one quick-xml reads is matched by [`OpenNames::close`], which reports a
//! mismatch with quick-xml's own error.

use quick_xml::errors::{Error as XmlError, IllFormedError};

use super::attrs::{is_ws, skip_ws};
use super::tag::AttrSpan;

/// What the fast lane read at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scanned<'a> {
    /// `len` bytes from `<` to `>`; the content is `1..len - 1` (`len - 2`
    /// for an empty element); the attributes are in the lane's spans.
    Start {
        len: usize,
        name_len: usize,
        empty: bool,
        /// The content as a `str`, when every byte of it is ASCII and none
        /// is `&` or NUL: its values need no decoding and no check.
        plain: Option<&'a str>,
    },
    /// `</name>` closing the open element.
    End { len: usize },
    /// Text up to the next `<` or `&` (not consumed): quick-xml reads a
    /// reference as an event of its own, and the lane leaves it to quick-xml.
    Text { len: usize },
}

/// What text at this point of the document is to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextHere {
    /// Skipped unread (inside the root, in no capturing element).
    Ignored,
    /// Decoded and kept (a failure body, system-out...).
    Captured,
    /// Outside the root, where anything but whitespace is an error: left
    /// to quick-xml, and to the reader's check of its text event.
    Outside,
}

/// The spans of the last start tag scanned, reused from tag to tag.
#[derive(Default)]
pub(super) struct FastLane {
    spans: Vec<AttrSpan>,
}

/// The bytes a name or an attribute key may hold in the fast lane: ASCII
/// letters, digits and `_ . -` ([`NAME`]) and `:` ([`COLON`]); never a
/// quote, `>`, `/`, `=`, `&` or whitespace. A table, because the loops over
/// names and keys were the lane's largest cost (~15 instructions a byte with
/// the comparisons written out, ~4 with a lookup).
const NAME: u8 = 1;
const COLON: u8 = 2;
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-' {
            t[c] = NAME;
        }
        c += 1;
    }
    t[b':' as usize] = COLON;
    t
};

/// Length of the run of bytes of class `NAME` at the start of `s`.
#[inline(always)]
fn name_run(s: &[u8]) -> usize {
    s.iter()
        .position(|&c| CLASS[c as usize] != NAME)
        .unwrap_or(s.len())
}

/// Length of the run of name bytes, `:` included, at the start of `s`.
#[inline(always)]
fn qname_run(s: &[u8]) -> usize {
    s.iter()
        .position(|&c| CLASS[c as usize] == 0)
        .unwrap_or(s.len())
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is zero. The lowest set bit
/// is exact (borrows only run upwards, past the first zero byte); bits
/// above it may be set spuriously.
#[inline(always)]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(LO) & !word & HI
}

/// Where the first `quote` is in `s`: a word at a time, because values are
/// short (a `time`, a class name, a test name: 5–60 bytes), where a
/// `memchr` call cost ~100 instructions a value in the profile.
///
/// `plain` is cleared if a byte up to the quote may be non-ASCII, `&` or
/// NUL (or one after it, in the same word: a false alarm only costs the
/// reader its own check of the tag).
#[inline(always)]
fn find_quote(s: &[u8], quote: u8, plain: &mut bool) -> Option<usize> {
    let pattern = LO * u64::from(quote);
    let amp = LO * u64::from(b'&');
    let mut i = 0;
    let mut dirty = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let raw = u64::from_le_bytes(chunk.try_into().ok()?);
        dirty |= (raw & HI) | zero_bytes(raw) | zero_bytes(raw ^ amp);
        let quotes = zero_bytes(raw ^ pattern);
        if quotes != 0 {
            *plain &= dirty == 0;
            return Some(i + (quotes.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    *plain &= dirty == 0;
    for (at, &c) in s.iter().enumerate().skip(i) {
        if c == quote {
            return Some(at);
        }
        if c >= 0x80 || c == 0 || c == b'&' {
            *plain = false;
        }
    }
    None
}

impl FastLane {
    pub(super) fn spans(&self) -> &[AttrSpan] {
        &self.spans
    }

    /// Reads one event at the start of `window`, if it is one the lane
    /// reads. `open` is the element an end tag may close here (`None`: let
    /// quick-xml read every end tag).
    #[inline]
    pub(super) fn scan<'w>(
        &mut self,
        window: &'w [u8],
        open: Option<&[u8]>,
        text: TextHere,
    ) -> Option<Scanned<'w>> {
        match *window.first()? {
            b'<' => match *window.get(1)? {
                b'/' => {
                    let name = open?;
                    let end = 2 + name.len();
                    (window.get(2..end)? == name && *window.get(end)? == b'>')
                        .then_some(Scanned::End { len: end + 1 })
                }
                _ => self.scan_start(window),
            },
            b'&' => None,
            _ if text != TextHere::Outside => {
                memchr::memchr2(b'<', b'&', window).map(|len| Scanned::Text { len })
            }
            _ => None,
        }
    }

    /// A start tag at `window[0] == b'<'`, split into `spans` on the way.
    fn scan_start<'w>(&mut self, window: &'w [u8]) -> Option<Scanned<'w>> {
        self.spans.clear();
        // Offsets are kept as `u32`: a tag longer than that is left to
        // quick-xml (the window is never that long in practice).
        let b = &window[..window.len().min(u32::MAX as usize)];
        let name_len = qname_run(&b[1..]);
        if name_len == 0 {
            return None;
        }
        let mut i = 1 + name_len;
        // Names, keys, whitespace, `=` and quotes are ASCII, and neither
        // `&` nor NUL, by the grammar above; values are checked as their
        // closing quote is searched for.
        let mut plain = true;
        // The name ends at whitespace, `>` or `/>` (quick-xml's name runs
        // to the first whitespace: `<a"b>` or `<a=b>` is a name of its own).
        let after_name = *b.get(i)?;
        if !(is_ws(after_name) || after_name == b'>' || after_name == b'/') {
            return None;
        }
        loop {
            // Mostly one space, or none after the name: the general loop
            // only where there is more.
            if b.get(i) == Some(&b' ') {
                i += 1;
            }
            if is_ws(*b.get(i)?) {
                i = skip_ws(b, i);
            }
            match *b.get(i)? {
                b'>' => {
                    return Some(Scanned::Start {
                        len: i + 1,
                        name_len,
                        empty: false,
                        plain: plain.then(|| ascii_str(&b[1..i])),
                    });
                }
                b'/' => {
                    return (*b.get(i + 1)? == b'>').then(|| Scanned::Start {
                        len: i + 2,
                        name_len,
                        empty: true,
                        plain: plain.then(|| ascii_str(&b[1..i])),
                    });
                }
                _ => {}
            }
            // An attribute right after a value needs no whitespace
            // (`<a b="1"c="2">`), as in quick-xml's iterator.
            let key = i;
            let mut local = key;
            i += name_run(&b[i..]);
            if b.get(i) == Some(&b':') {
                local = i + 1;
                i = local + qname_run(&b[local..]);
            }
            let key_end = i;
            if key_end == key {
                return None;
            }
            if is_ws(*b.get(i)?) {
                i = skip_ws(b, i);
            }
            if *b.get(i)? != b'=' {
                return None;
            }
            i += 1;
            if is_ws(*b.get(i)?) {
                i = skip_ws(b, i);
            }
            let quote = *b.get(i)?;
            if quote != b'"' && quote != b'\'' {
                return None;
            }
            let value = i + 1;
            let len = find_quote(&b[value..], quote, &mut plain)?;
            i = value + len + 1;
            // Offsets into the content, which starts after the `<`; all
            // below `u32::MAX` (see above).
            self.spans.push(AttrSpan {
                local: (local - 1) as u32,
                key_end: (key_end - 1) as u32,
                value: (value - 1) as u32,
                value_end: (value + len - 1) as u32,
            });
        }
    }
}

/// `bytes` as a `str`, for a tag whose every byte the scan saw to be ASCII.
#[inline(always)]
fn ascii_str(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii(), "the scan let a non-ASCII byte through");
    // SAFETY: ASCII is valid UTF-8. Only `scan_start` calls this, on a
    // tag whose bytes are each a name or key byte (ASCII by `CLASS`),
    // whitespace, `=`, a quote, or a value byte that `find_quote` checked
    // to be below 0x80. `std::str::from_utf8` over every tag again was
    // ~9 % of the reader's time.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// The names of the open elements, for the end tag check.
#[derive(Default)]
pub(super) struct OpenNames {
    bytes: Vec<u8>,
    /// Where each name starts in `bytes`, and whether quick-xml read its
    /// start tag (and so holds it on its own stack, which only quick-xml's
    /// reading of the end tag pops: the fast lane leaves such end tags to
    /// it, which keeps that stack bounded by the depth).
    starts: Vec<(usize, bool)>,
}

impl OpenNames {
    pub(super) fn push(&mut self, name: &[u8], by_quick_xml: bool) {
        self.starts.push((self.bytes.len(), by_quick_xml));
        self.bytes.extend_from_slice(name);
    }

    /// The open element, if the fast lane may read its end tag.
    #[inline]
    pub(super) fn fast_closable(&self) -> Option<&[u8]> {
        match self.starts.last() {
            Some(&(start, false)) => Some(&self.bytes[start..]),
            _ => None,
        }
    }

    /// Closes the open element whose end tag the fast lane read.
    #[inline]
    pub(super) fn pop(&mut self) {
        if let Some((start, _)) = self.starts.pop() {
            self.bytes.truncate(start);
        }
    }

    /// Closes the open element with an end tag quick-xml read, whose
    /// (trimmed) name is `found`: the error quick-xml itself reports when
    /// it checks end names, byte for byte.
    pub(super) fn close(&mut self, found: &[u8]) -> Result<(), XmlError> {
        let text = |b: &[u8]| std::str::from_utf8(b).unwrap_or_default().to_owned();
        match self.starts.pop() {
            Some((start, _)) => {
                let expected = &self.bytes[start..];
                if expected != found {
                    return Err(XmlError::IllFormed(IllFormedError::MismatchedEndTag {
                        expected: text(expected),
                        found: text(found),
                    }));
                }
                self.bytes.truncate(start);
                Ok(())
            }
            None => Err(XmlError::IllFormed(IllFormedError::UnmatchedEndTag(text(
                found,
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use quick_xml::Reader;
    use quick_xml::events::Event;

    use super::*;

    /// What quick-xml makes of the first event of `input`: the content of
    /// a start tag, whether it is empty, its name's length, its attribute
    /// pairs (or `None` on an attribute error), and the bytes it consumed.
    #[allow(clippy::type_complexity)]
    fn quick_xml(
        input: &[u8],
    ) -> Option<(Vec<u8>, bool, usize, Option<Vec<(Vec<u8>, Vec<u8>)>>, u64)> {
        let mut reader = Reader::from_reader(input);
        let (e, empty) = match reader.read_event() {
            Ok(Event::Start(e)) => (e, false),
            Ok(Event::Empty(e)) => (e, true),
            _ => return None,
        };
        let pairs: Result<Vec<_>, _> = e
            .attributes()
            .with_checks(false)
            .map(|a| a.map(|a| (a.key.local_name().as_ref().to_vec(), a.value.to_vec())))
            .collect();
        Some((
            e.to_vec(),
            empty,
            e.name().as_ref().len(),
            pairs.ok(),
            reader.buffer_position(),
        ))
    }

    /// Wherever the lane reads a start tag, quick-xml reads the same tag:
    /// same end, content, name and attributes (and no attribute error).
    #[test]
    fn start_tags_are_read_as_quick_xml_reads_them() {
        let tags: &[&[u8]] = &[
            br#"<testcase name="a" classname="c" time="1"/>"#,
            br#"<testcase name="a"classname="c">"#,
            b"<testcase\n              name=\"a\"\n\t\ttime='0.5'\r\n>",
            br#"<t a = "1" b= '2' >"#,
            br#"<t/>"#,
            br#"<t>"#,
            br#"<t />"#,
            br#"<ns:t ns:a="1" xmlns:ns="u" a:b:c="2"/>"#,
            br#"<t a="x>y" b='"' c="'"/>"#,
            br#"<t a="" b=''/>"#,
            br#"<t a="1"/ >"#,
            br#"<t a="1" / >"#,
            br#"<t a b="1">"#,
            br#"<t a=1>"#,
            br#"<t ="1">"#,
            br#"<t "1">"#,
            br#"<t"x">"#,
            br#"<t=x>"#,
            br#"<t a="1"#,
            br#"<t a="1""#,
            br#"<t a="1" "#,
            b"<t\xc3\xa9 a=\"1\">",
            b"<t k\xc3\xa9=\"1\">",
            b"<t a=\"\xc3\xa9&amp;\0\">",
            br#"<t :a="1" a:="2">"#,
            br#"<t a:="2">"#,
            br#"<>"#,
            br#"< t>"#,
            br#"<-.:_9 x.y-z="1">"#,
        ];
        for &tag in tags {
            let mut lane = FastLane::default();
            let Some(Scanned::Start {
                len,
                name_len,
                empty,
                plain,
            }) = lane.scan(tag, None, TextHere::Ignored)
            else {
                continue;
            };
            let shown = String::from_utf8_lossy(tag);
            let (content, q_empty, q_name_len, q_pairs, q_len) =
                quick_xml(tag).unwrap_or_else(|| panic!("quick-xml reads no start tag in {shown}"));
            let content_end = len - 1 - usize::from(empty);
            assert_eq!(&tag[1..content_end], &content[..], "{shown}");
            assert_eq!(
                (empty, name_len, len as u64),
                (q_empty, q_name_len, q_len),
                "{shown}"
            );
            let pairs: Vec<_> = lane
                .spans()
                .iter()
                .map(|s| {
                    let c = &tag[1..];
                    (
                        c[s.local as usize..s.key_end as usize].to_vec(),
                        c[s.value as usize..s.value_end as usize].to_vec(),
                    )
                })
                .collect();
            assert_eq!(Some(pairs), q_pairs, "{shown}");
            // A plain tag is its content, ASCII, with no `&` or NUL; every
            // tag of that kind is found plain.
            let clean = content.is_ascii() && !content.contains(&b'&') && !content.contains(&0);
            assert_eq!(
                plain.map(str::as_bytes),
                clean.then_some(&content[..]),
                "{shown}"
            );
        }
    }

    /// The lane reads the ordinary shapes (steps aside from none of them),
    /// and steps aside from what it does not read exactly.
    #[test]
    fn what_the_lane_reads_and_what_it_leaves() {
        let mut lane = FastLane::default();
        let mut scan =
            |input: &'static [u8], open: Option<&'static [u8]>, text| lane.scan(input, open, text);
        let reads: &[&[u8]] = &[
            br#"<testcase name="a" time="1"/>"#,
            b"<testcase\n              name=\"a\">",
            br#"<skipped/>"#,
        ];
        for &tag in reads {
            assert!(
                matches!(
                    scan(tag, None, TextHere::Ignored),
                    Some(Scanned::Start { .. })
                ),
                "{}",
                String::from_utf8_lossy(tag)
            );
        }
        let leaves: &[&[u8]] = &[
            br#"<testcase name="a"/ >"#,
            br#"<t a b="1">"#,
            br#"<!-- c -->"#,
            br#"<![CDATA[x]]>"#,
            br#"<?pi?>"#,
            b"<t\xc3\xa9>",
            br#"<t a="1"#,
            br#"<t a="1" "#,
        ];
        for &tag in leaves {
            assert_eq!(
                scan(tag, None, TextHere::Ignored),
                None,
                "{}",
                String::from_utf8_lossy(tag)
            );
        }
        // End tags: only the open element's, written plainly.
        let open = Some(&b"testcase"[..]);
        assert_eq!(
            scan(b"</testcase>", open, TextHere::Ignored),
            Some(Scanned::End { len: 11 })
        );
        assert_eq!(scan(b"</testcase >", open, TextHere::Ignored), None);
        assert_eq!(scan(b"</testcases>", open, TextHere::Ignored), None);
        assert_eq!(scan(b"</testcas>", open, TextHere::Ignored), None);
        assert_eq!(scan(b"</testcase>", None, TextHere::Ignored), None);
        assert_eq!(scan(b"</testcase", open, TextHere::Ignored), None);
        // Texts: up to `<` or `&`; never outside the root; never to the
        // end of the window (it may go on).
        assert_eq!(
            scan(b"\n  <t/>", None, TextHere::Ignored),
            Some(Scanned::Text { len: 3 })
        );
        assert_eq!(
            scan(b"a &amp; b<", None, TextHere::Captured),
            Some(Scanned::Text { len: 2 })
        );
        assert_eq!(scan(b"&amp; b<", None, TextHere::Captured), None);
        assert_eq!(scan(b"\n  <t/>", None, TextHere::Outside), None);
        assert_eq!(scan(b"no end", None, TextHere::Ignored), None);
    }

    #[test]
    fn find_quote_finds_the_first_quote_at_every_offset() {
        for len in 0..40 {
            for at in 0..=len {
                let mut s = vec![b'x'; len];
                if at < len {
                    s[at] = b'"';
                    // A second quote and bytes that borrow in the word trick
                    // (0x01, 0x00, 0x80, 0x21 = '"' + 1) after it.
                    s.extend_from_slice(b"\x01\x00\x80\x21\"");
                }
                let expected = s.iter().position(|&c| c == b'"');
                let mut plain = true;
                assert_eq!(
                    find_quote(&s, b'"', &mut plain),
                    expected,
                    "len {len} at {at}"
                );
            }
        }
        let mut plain = true;
        assert_eq!(
            find_quote(b"\x21\x21\x21\x21\x21\x21\x21\x22", b'"', &mut plain),
            Some(7)
        );
        assert_eq!(find_quote(b"\x23\x22", b'"', &mut plain), Some(1));
        assert_eq!(find_quote(b"abc'", b'"', &mut plain), None);
        assert!(plain);
        // Whatever the place of a non-ASCII byte, `&` or NUL before the
        // quote, in a word or in the tail, the value is not plain.
        for bad in [b'&', 0, 0x80, 0xc3, 0xff] {
            for len in 1..24 {
                for at in 0..len {
                    let mut s = vec![b'x'; len];
                    s[at] = bad;
                    s.push(b'"');
                    let mut plain = true;
                    assert_eq!(find_quote(&s, b'"', &mut plain), Some(len));
                    assert!(!plain, "byte {bad:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn an_end_tag_quick_xml_reads_is_checked_as_quick_xml_checks_it() {
        let mut names = OpenNames::default();
        names.push(b"testsuite", false);
        names.push(b"testcase", true);
        assert_eq!(
            names.fast_closable(),
            None,
            "quick-xml opened it: its own end tag"
        );
        let err = names.close(b"failure").unwrap_err();
        assert_eq!(
            err.to_string(),
            "ill-formed document: expected `</testcase>`, but `</failure>` was found"
        );
        let mut names = OpenNames::default();
        names.push(b"testsuite", false);
        assert_eq!(names.fast_closable(), Some(&b"testsuite"[..]));
        names.close(b"testsuite").expect("matches");
        let err = names.close(b"testsuite").unwrap_err();
        assert_eq!(
            err.to_string(),
            "ill-formed document: close tag `</testsuite>` does not match any open tag"
        );
    }
}
