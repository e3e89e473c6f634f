//! The fast lane: the common shapes of a JUnit report read straight from
//! the input's buffer, with quick-xml reading everything else.
//!
//! Why: quick-xml scans every tag quote by quote to find its end, copies it
//! into its event buffer and hands out the bytes; the handlers then split
//! the same bytes again to find the attributes. Tokenizing was half of the
//! reader's instructions, and the second scan most of the rest. The fast
//! lane scans a start tag once, attribute by attribute, finding its end in
//! the same pass; checks an end tag against the open element in one
//! comparison; and steps over the whitespace between tags.
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

use super::attrs::skip_ws;
use super::tag::AttrSpan;

/// What the fast lane read at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scanned {
    /// `len` bytes from `<` to `>`; the content is `1..len - 1` (`len - 2`
    /// for an empty element); the attributes are in the lane's spans.
    Start {
        len: usize,
        name_len: usize,
        empty: bool,
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

#[inline(always)]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

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

/// Where the first `quote` is in `s`: a word at a time, because values are
/// short (a `time`, a class name, a test name: 5–60 bytes), where a
/// `memchr` call cost ~100 instructions a value in the profile.
#[inline(always)]
fn find_quote(s: &[u8], quote: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(quote);
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().ok()?) ^ pattern;
        // A zero byte of `word` is a quote: the lowest set bit of this
        // mask is exact (borrows only run upwards, past the first zero).
        let zeros = word.wrapping_sub(LO) & !word & HI;
        if zeros != 0 {
            return Some(i + (zeros.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..].iter().position(|&c| c == quote).map(|p| i + p)
}

impl FastLane {
    pub(super) fn spans(&self) -> &[AttrSpan] {
        &self.spans
    }

    /// Reads one event at the start of `window`, if it is one the lane
    /// reads. `open` is the element an end tag may close here (`None`: let
    /// quick-xml read every end tag).
    #[inline]
    pub(super) fn scan(
        &mut self,
        window: &[u8],
        open: Option<&[u8]>,
        text: TextHere,
    ) -> Option<Scanned> {
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
    fn scan_start(&mut self, window: &[u8]) -> Option<Scanned> {
        self.spans.clear();
        // Offsets are kept as `u32`: a tag longer than that is left to
        // quick-xml (the window is never that long in practice).
        let b = &window[..window.len().min(u32::MAX as usize)];
        let name_len = qname_run(&b[1..]);
        if name_len == 0 {
            return None;
        }
        let mut i = 1 + name_len;
        // The name ends at whitespace, `>` or `/>` (quick-xml's name runs
        // to the first whitespace: `<a"b>` or `<a=b>` is a name of its own).
        if !matches!(*b.get(i)?, b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/') {
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
                    });
                }
                b'/' => {
                    return (*b.get(i + 1)? == b'>').then_some(Scanned::Start {
                        len: i + 2,
                        name_len,
                        empty: true,
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
            let len = find_quote(&b[value..], quote)?;
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
