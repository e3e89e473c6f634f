//! Byte-level input handling: the report size limit and character encodings.
//!
//! The XML tokenizer works on UTF-8 (and ASCII-compatible) bytes only, so a
//! report in UTF-16 (BOM or not) or in a legacy single-byte encoding declared
//! in `<?xml ... encoding="ISO-8859-1"?>` is transcoded to UTF-8 on the fly
//! with `encoding_rs`, chunk by chunk: memory stays flat. Positions in errors
//! are then offsets in the transcoded UTF-8 stream.

use std::io::{self, Read};

use encoding_rs::{CoderResult, Decoder, Encoding, UTF_8, UTF_16BE, UTF_16LE};

/// How many leading bytes we look at for a BOM and the XML declaration.
const SNIFF_BYTES: usize = 512;
const CHUNK: usize = 64 * 1024;

/// Marker carried inside an `io::Error` when the report exceeds its limit, so
/// that the error survives the trip through the XML reader and is reported
/// as `JunitError::TooLarge` rather than as an I/O failure.
#[derive(Debug)]
pub(crate) struct ReportTooLarge;

impl std::fmt::Display for ReportTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("report exceeds max_report_bytes")
    }
}

impl std::error::Error for ReportTooLarge {}

pub(crate) fn is_too_large(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|e| e.is::<ReportTooLarge>())
}

/// Counts raw bytes and fails once more than `limit` were read.
pub(crate) struct Limited<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Limited<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            read: 0,
            limit,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(ReportTooLarge));
        }
        Ok(n)
    }
}

/// What the first bytes say about the encoding.
pub(crate) enum Sniffed {
    /// UTF-8 or ASCII-compatible and declared UTF-8 (or not declared):
    /// hand the bytes to the tokenizer as they are.
    Utf8,
    /// Needs transcoding to UTF-8.
    Other(&'static Encoding),
    /// The declaration names an encoding we do not know.
    Unknown(String),
}

/// Reads up to `SNIFF_BYTES` from `reader` (looping over short reads so a
/// pipe delivering a byte at a time is sniffed the same as a file).
pub(crate) fn read_prefix<R: Read>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut prefix = vec![0; SNIFF_BYTES];
    let mut filled = 0;
    while filled < prefix.len() {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    prefix.truncate(filled);
    Ok(prefix)
}

pub(crate) fn sniff(prefix: &[u8]) -> Sniffed {
    match prefix {
        [0xEF, 0xBB, 0xBF, ..] => return Sniffed::Utf8,
        [0xFF, 0xFE, ..] | [b'<', 0, b'?', 0, ..] => return Sniffed::Other(UTF_16LE),
        [0xFE, 0xFF, ..] | [0, b'<', 0, b'?', ..] => return Sniffed::Other(UTF_16BE),
        _ => {}
    }
    match declared_encoding(prefix) {
        None => Sniffed::Utf8,
        Some(label) => match Encoding::for_label(label) {
            // A UTF-16 label on bytes without a BOM that still look like
            // ASCII is a lie we have seen from hand-edited files: trust the bytes.
            Some(enc) if enc == UTF_8 || enc == UTF_16LE || enc == UTF_16BE => Sniffed::Utf8,
            Some(enc) => Sniffed::Other(enc),
            None => Sniffed::Unknown(String::from_utf8_lossy(label).into_owned()),
        },
    }
}

/// The `encoding="..."` pseudo-attribute of a leading `<?xml ...?>`, if any.
fn declared_encoding(prefix: &[u8]) -> Option<&[u8]> {
    let decl = prefix.strip_prefix(b"<?xml")?;
    let end = decl.windows(2).position(|w| w == b"?>")?;
    let decl = &decl[..end];
    let at = decl.windows(8).position(|w| w == b"encoding")?;
    let rest = decl[at + 8..]
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    let quote = *rest.first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let rest = &rest[1..];
    let close = rest.iter().position(|&b| b == quote)?;
    Some(&rest[..close])
}

/// Streams `inner` decoded from `encoding` to UTF-8, in bounded chunks.
pub(crate) struct Transcoder<R> {
    inner: R,
    decoder: Decoder,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    eof: bool,
    output: Vec<u8>,
    out_start: usize,
    out_end: usize,
    finished: bool,
}

impl<R: Read> Transcoder<R> {
    pub(crate) fn new(inner: R, encoding: &'static Encoding) -> Self {
        Self {
            inner,
            // Removes a BOM of this encoding; a BOM of another one is left to
            // show up as garbage, which the XML reader then reports.
            decoder: encoding.new_decoder_with_bom_removal(),
            input: vec![0; CHUNK],
            in_start: 0,
            in_end: 0,
            eof: false,
            // Worst case expansion of a single-byte encoding is 3 bytes per byte.
            output: vec![0; CHUNK * 3 + 16],
            out_start: 0,
            out_end: 0,
            finished: false,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        while self.out_start == self.out_end && !self.finished {
            if self.in_start == self.in_end && !self.eof {
                let n = loop {
                    match self.inner.read(&mut self.input) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                };
                self.in_start = 0;
                self.in_end = n;
                self.eof = n == 0;
            }
            let (result, read, written, _replaced) = self.decoder.decode_to_utf8(
                &self.input[self.in_start..self.in_end],
                &mut self.output,
                self.eof,
            );
            self.in_start += read;
            self.out_start = 0;
            self.out_end = written;
            if self.eof && result == CoderResult::InputEmpty {
                self.finished = true;
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.refill()?;
        let n = buf.len().min(self.out_end - self.out_start);
        buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
        self.out_start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declaration_encoding_is_found_with_either_quote() {
        assert_eq!(
            declared_encoding(b"<?xml version=\"1.0\" encoding='ISO-8859-1'?><a/>"),
            Some(&b"ISO-8859-1"[..])
        );
        assert_eq!(declared_encoding(b"<?xml version=\"1.0\"?><a/>"), None);
        assert!(matches!(
            sniff(b"<?xml version='1.0' encoding='latin1'?>"),
            Sniffed::Other(_)
        ));
        assert!(matches!(
            sniff(b"<?xml version='1.0' encoding='klingon'?>"),
            Sniffed::Unknown(_)
        ));
    }

    #[test]
    fn transcodes_latin1_across_chunk_boundaries() {
        let latin1: Vec<u8> = std::iter::repeat_n(0xE9u8, CHUNK * 2 + 7).collect();
        let mut out = String::new();
        Transcoder::new(&latin1[..], encoding_rs::WINDOWS_1252)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out.chars().count(), CHUNK * 2 + 7);
        assert!(out.chars().all(|c| c == 'é'));
    }
}
