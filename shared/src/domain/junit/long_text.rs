//! Cuts overlong text runs out of the byte stream before quick-xml sees it.
//!
//! quick-xml hands out a text event (or a CDATA section, a comment, a start
//! tag with its attributes) only once it has read the whole of it into one
//! buffer, so a 300 MB `<system-out>` used to cost 300 MB before
//! [`Capped`](super::text::Capped) could cut it, and then again for its
//! decoded copy. [`LongTextCut`] sits between the (UTF-8) input and the XML
//! reader and tracks just enough of the syntax to know where a run of
//! character data lies: text between tags, an attribute value, the inside of
//! a CDATA section, comment or processing instruction. A run longer than
//! twice `keep` bytes is passed on as its first and last `keep` bytes around
//! the same `\n…[N bytes cut]…\n` marker the reader's own cap writes (N
//! counts bytes of the file). Memory is bounded by `keep` and the chunk size
//! whatever the input; the full text stays in the JUnit file, which execute
//! uploaded to the blob store.
//!
//! Cuts never split a UTF-8 sequence and never an entity or character
//! reference (`&amp;`, `&#10;`), so what is passed on parses as the input
//! would have. `keep` is at least half the reader's text cap less some room
//! for the marker, so a cut text still fills the cap and a text the cap
//! keeps whole is never touched.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::ops::Range;

const CHUNK: usize = 64 * 1024;
/// Longest entity or character reference waited for at a cut (`&#x10FFFF;`
/// is 10 bytes; an undefined entity may be longer, and is kept literally).
const MAX_REF: usize = 64;
/// Kept bytes never go below this, so small caps (tests, the fuzzer) still
/// exercise the reader's own cap on texts of ordinary size.
const MIN_KEEP: usize = 32 * 1024 - 32;

/// Bytes kept on each side of a cut for a reader whose text cap is `cap`:
/// head + marker + tail stay within the cap, so the reader keeps them as is.
pub(crate) fn keep_for(cap: usize) -> usize {
    (cap / 2).saturating_sub(32).max(MIN_KEEP)
}

/// Where in the document the next byte is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Character data between tags; ends at `<`.
    Text,
    /// Just after `<`: collecting the bytes that say what follows.
    Open { len: u8, bang: bool },
    /// Inside a tag; `Some(quote)` inside an attribute value (a run).
    Tag(Option<u8>),
    /// Inside `<![CDATA[`; ends at `]]>`.
    CData,
    /// Inside `<!--`; ends at `-->`.
    Comment,
    /// Inside `<?`; ends at `?>`.
    Pi,
}

impl Mode {
    /// Modes whose runs may hold entity references.
    fn has_refs(self) -> bool {
        matches!(self, Mode::Text | Mode::Tag(Some(_)))
    }
}

/// Handed out through [`BufRead`]: bytes that pass unchanged are lent
/// straight from the input chunk (`pending`, a range of `input`), so a
/// report with no long run is never copied here; only what a cut changes
/// goes through `out`. The XML reader reads this directly (no `BufReader`
/// on top, which copied every byte once more).
pub(crate) struct LongTextCut<R> {
    inner: R,
    input: Box<[u8]>,
    in_pos: usize,
    in_end: usize,
    eof: bool,
    /// Output that is not a plain range of `input` (a cut's marker and
    /// tail, and whatever came before them in this chunk).
    out: Vec<u8>,
    out_pos: usize,
    /// Unchanged input bytes that follow `out`, lent from `input`.
    pending: Range<usize>,
    keep: usize,
    mode: Mode,
    /// Bytes of the current run passed on so far (the head).
    run: usize,
    /// The head is full: the rest of the run goes to `tail`.
    cutting: bool,
    tail: VecDeque<u8>,
    dropped: u64,
    /// An `&` in the head with no `;` after it yet.
    open_ref: bool,
    /// Last two bytes of the run, to find `]]>`, `-->` and `?>`.
    last2: [u8; 2],
    /// Lending input unseen (see [`markup_ended`](Self::markup_ended)):
    /// the state machine above is asleep, and wakes only for a segment
    /// that might hold a run long enough to cut.
    fast: bool,
    /// Start of the current segment in `input`, a point where the state
    /// machine is known to be at the start of a text with nothing open.
    seg_start: usize,
    /// Whether `fast` may ever be set: false only in tests, where the state
    /// machine alone is the reference the fast path must match.
    lends_unseen: bool,
}

impl<R: Read> LongTextCut<R> {
    pub(crate) fn new(inner: R, keep: usize) -> Self {
        Self {
            inner,
            input: vec![0; CHUNK].into_boxed_slice(),
            in_pos: 0,
            in_end: 0,
            eof: false,
            out: Vec::new(),
            out_pos: 0,
            pending: 0..0,
            keep: keep.max(MAX_REF),
            mode: Mode::Text,
            run: 0,
            cutting: false,
            tail: VecDeque::new(),
            dropped: 0,
            open_ref: false,
            last2: [0; 2],
            fast: true,
            seg_start: 0,
            lends_unseen: true,
        }
    }

    /// The state machine alone, never lending unseen: the reference.
    #[cfg(test)]
    fn machine_only(mut self) -> Self {
        self.fast = false;
        self.lends_unseen = false;
        self
    }

    /// The XML reader has just read a markup event to its closing `>`
    /// (a tag, comment, CDATA section, PI or declaration), so the next
    /// byte starts a text: the state machine, were it awake, would be in
    /// `Mode::Text` with no run open.
    ///
    /// This is what makes the cut a single pass over the input in the
    /// common case. Between two such points lies one segment, a text (with
    /// its references) and one markup; every run is inside one segment,
    /// and nothing is ever cut from a run of at most `keep` bytes. So while
    /// the current segment has at most `keep` bytes, input is lent to the
    /// reader unseen. When it grows past that, or reaches the end of the
    /// chunk, the state machine replays the segment from its start (a
    /// known state) and takes over from there exactly as if it had run all
    /// along, until it sees the segment's markup close. The machine's scan
    /// of every tag (0.35–0.40× the cost of quick-xml's own event loop) is
    /// paid only for segments of over `keep` bytes and the one segment that
    /// straddles each chunk boundary.
    ///
    /// A mark while the reader is still reading what the machine handed
    /// out before it fell asleep is ignored: the machine's own clean point
    /// stays the segment start.
    #[inline]
    pub(crate) fn markup_ended(&mut self) {
        if self.fast && self.out_pos == self.out.len() && self.pending.start > self.seg_start {
            self.seg_start = self.pending.start;
        }
    }

    /// The state machine at the start of a text with nothing open: where a
    /// segment may start.
    #[inline]
    fn is_clean(&self) -> bool {
        self.mode == Mode::Text && self.run == 0 && !self.cutting
    }

    /// Wakes the state machine: replays the current segment, lent unseen
    /// up to `in_pos`, from its start over the whole chunk, so that every
    /// run is looked at in the same pieces as if the machine had run all
    /// along (where it ends a run's head depends on them). Nothing in the
    /// lent part differs from the input: no run in it reached `keep` bytes
    /// and, unless the chunk ends first, it holds no `&` (see `refill`), so
    /// no head ends inside it. Only what the replay passes on beyond
    /// `in_pos` is handed out.
    fn wake(&mut self) {
        self.fast = false;
        self.mode = Mode::Text;
        self.run = 0;
        self.cutting = false;
        self.tail.clear();
        self.dropped = 0;
        self.open_ref = false;
        self.last2 = [0; 2];
        let input = std::mem::take(&mut self.input);
        let lent = self.in_pos;
        let mut at = self.seg_start;
        self.pending = at..at;
        while at < lent {
            at = self.step(&input[..self.in_end], at);
        }
        self.input = input;
        if self.out.is_empty() {
            self.pending.start = lent;
        } else {
            // `out` starts with the pending bytes from the segment start.
            self.out_pos = lent - self.seg_start;
        }
        self.in_pos = at;
    }

    /// Processes one chunk of input into `out`.
    fn process(&mut self) -> io::Result<()> {
        if self.in_pos == self.in_end {
            let n = loop {
                match self.inner.read(&mut self.input) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            self.in_pos = 0;
            self.in_end = n;
            if n == 0 {
                self.eof = true;
                // A run cut off by the end of the input: hand on what was
                // kept, so the reader reports the truncation as it would.
                self.end_run(&[]);
                return Ok(());
            }
        }
        let input = std::mem::take(&mut self.input);
        let mut at = self.in_pos;
        let end = self.in_end;
        // Up to the first point where a segment may start: from there the
        // input is lent unseen again (see `markup_ended`).
        // At least one step: a wake at an `&` that starts a text finds the
        // machine clean already, and would wake again at once.
        let mut stepped = false;
        while at < end && !(stepped && self.lends_unseen && self.is_clean()) {
            at = self.step(&input[..end], at);
            stepped = true;
        }
        if self.lends_unseen && self.is_clean() {
            self.fast = true;
            self.seg_start = at;
        }
        self.input = input;
        self.in_pos = at;
        Ok(())
    }

    /// Input bytes `range` pass on unchanged: lent from `input`, copied
    /// only when something else was pushed between them and the range
    /// already pending.
    #[inline]
    fn emit(&mut self, input: &[u8], range: Range<usize>) {
        if self.pending.end == range.start {
            self.pending.end = range.end;
        } else {
            self.flush(input);
            self.pending = range;
        }
    }

    /// Copies the pending range to `out`, before other bytes are pushed.
    fn flush(&mut self, input: &[u8]) {
        if !self.pending.is_empty() {
            self.out.extend_from_slice(&input[self.pending.clone()]);
        }
        self.pending = 0..0;
    }

    /// Handles the input from `at` on, up to and including the next byte
    /// that changes the mode; returns where to go on.
    fn step(&mut self, input: &[u8], at: usize) -> usize {
        let rest = &input[at..];
        match self.mode {
            Mode::Text => match find_short(b'<', rest) {
                // The common case, a short text whole in this chunk: passed
                // on as it is, and a tag that is not a comment, CDATA or
                // PI goes straight to tag mode.
                Some(i) if self.run == 0 && !self.cutting && i <= self.keep => {
                    self.emit(input, at..at + i + 1);
                    self.mode = match rest.get(i + 1) {
                        Some(b'!' | b'?') | None => Mode::Open {
                            len: 0,
                            bang: false,
                        },
                        Some(_) => Mode::Tag(None),
                    };
                    at + i + 1
                }
                Some(i) => {
                    self.run_bytes(input, at..at + i);
                    self.end_run(input);
                    self.emit(input, at + i..at + i + 1);
                    self.mode = Mode::Open {
                        len: 0,
                        bang: false,
                    };
                    at + i + 1
                }
                None => {
                    self.run_bytes(input, at..input.len());
                    input.len()
                }
            },
            Mode::Open { len, bang } => {
                let b = rest[0];
                // `<![CDATA[` and `<!--` are told apart byte by byte: the
                // prefix may straddle two chunks.
                const CDATA: &[u8] = b"![CDATA[";
                let next = match (len, b) {
                    (0, b'?') => Some(Mode::Pi),
                    (0, b'!') => Some(Mode::Open { len: 1, bang: true }),
                    (1, b'-') if bang => Some(Mode::Open {
                        len: 2,
                        bang: false,
                    }),
                    (2, b'-') if !bang => Some(Mode::Comment),
                    (n, b)
                        if bang && usize::from(n) < CDATA.len() && CDATA[usize::from(n)] == b =>
                    {
                        if usize::from(n) + 1 == CDATA.len() {
                            Some(Mode::CData)
                        } else {
                            Some(Mode::Open {
                                len: n + 1,
                                bang: true,
                            })
                        }
                    }
                    _ => None,
                };
                match next {
                    Some(mode) => {
                        self.emit(input, at..at + 1);
                        self.mode = mode;
                        self.last2 = [0; 2];
                        at + 1
                    }
                    // Anything else is a tag (or a DOCTYPE, refused later):
                    // the byte is read again as part of it.
                    None => {
                        self.mode = Mode::Tag(None);
                        at
                    }
                }
            }
            Mode::Tag(None) => {
                // Nearly every tag: its `>` is in this chunk, the tag is no
                // longer than `keep` (so no value in it is), and its quotes
                // are all of one kind and paired, so that `>` is outside
                // any value. Settled with one `memchr` and one counting
                // pass instead of a search per quote; the loop below
                // decides exactly the same way whenever this applies.
                // (A `'` before the `>` sends the tag to the loop below.)
                if let Some(i) = memchr::memchr2(b'>', b'\'', rest)
                    && rest[i] == b'>'
                    && i <= self.keep
                    && double_quotes_even(&rest[..i])
                {
                    self.emit(input, at..at + i + 1);
                    self.mode = Mode::Text;
                    return at + i + 1;
                }
                // A whole tag in one go when its attribute values are short
                // and in this chunk (nearly always): no per-value
                // bookkeeping.
                let mut from = 0;
                loop {
                    let Some(i) = memchr::memchr3(b'"', b'\'', b'>', &rest[from..]) else {
                        self.emit(input, at..input.len());
                        return input.len();
                    };
                    let i = from + i;
                    let quote = rest[i];
                    if quote == b'>' {
                        self.emit(input, at..at + i + 1);
                        self.mode = Mode::Text;
                        return at + i + 1;
                    }
                    match memchr::memchr(quote, &rest[i + 1..]) {
                        Some(len) if len <= self.keep => from = i + 1 + len + 1,
                        // Long, or running into the next chunk: a run.
                        _ => {
                            self.emit(input, at..at + i + 1);
                            self.mode = Mode::Tag(Some(quote));
                            return at + i + 1;
                        }
                    }
                }
            }
            Mode::Tag(Some(quote)) => match memchr::memchr(quote, rest) {
                Some(i) => {
                    self.run_bytes(input, at..at + i);
                    self.end_run(input);
                    self.emit(input, at + i..at + i + 1);
                    self.mode = Mode::Tag(None);
                    at + i + 1
                }
                None => {
                    self.run_bytes(input, at..input.len());
                    input.len()
                }
            },
            Mode::CData | Mode::Comment | Mode::Pi => match memchr::memchr(b'>', rest) {
                Some(i) => {
                    self.run_bytes(input, at..at + i);
                    let closes = match self.mode {
                        Mode::CData => self.last2 == *b"]]",
                        Mode::Comment => self.last2 == *b"--",
                        _ => self.last2[1] == b'?',
                    };
                    if closes {
                        self.end_run(input);
                        self.emit(input, at + i..at + i + 1);
                        self.mode = Mode::Text;
                    } else {
                        self.run_bytes(input, at + i..at + i + 1);
                    }
                    at + i + 1
                }
                None => {
                    self.run_bytes(input, at..input.len());
                    input.len()
                }
            },
        }
    }

    /// Bytes `range` of `input` inside the current run.
    fn run_bytes(&mut self, input: &[u8], mut range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        let bytes = &input[range.clone()];
        match bytes {
            [.., a, b] => self.last2 = [*a, *b],
            [b] => self.last2 = [self.last2[1], *b],
            [] => {}
        }
        if !self.cutting {
            let room = self.keep - self.run;
            if bytes.len() <= room {
                self.pass(input, range);
                return;
            }
            let cut = self.head_cut(bytes, room);
            self.pass(input, range.start..range.start + cut);
            range.start += cut;
            self.cutting = true;
        }
        let bytes = &input[range];
        // The tail keeps the last `keep` bytes.
        if bytes.len() >= self.keep {
            self.dropped += (self.tail.len() + bytes.len() - self.keep) as u64;
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.keep..]);
        } else {
            let over = (self.tail.len() + bytes.len()).saturating_sub(self.keep);
            self.dropped += over as u64;
            self.tail.drain(..over);
            self.tail.extend(bytes);
        }
    }

    /// Passes head bytes on, noting whether they leave a reference open.
    fn pass(&mut self, input: &[u8], range: Range<usize>) {
        let bytes = &input[range.clone()];
        if self.mode.has_refs() {
            match (memchr::memrchr(b'&', bytes), memchr::memrchr(b';', bytes)) {
                (Some(amp), Some(semi)) => self.open_ref = amp > semi,
                (Some(_), None) => self.open_ref = true,
                (None, Some(_)) => self.open_ref = false,
                (None, None) => {}
            }
        }
        self.run += bytes.len();
        self.emit(input, range);
    }

    /// Where to end the head within `bytes`, `room` bytes being left: not
    /// inside a UTF-8 sequence, and not inside a reference (moved past its
    /// `;` when that is near, else back before its `&`).
    fn head_cut(&self, bytes: &[u8], room: usize) -> usize {
        let mut cut = room;
        while cut < bytes.len() && cut - room < 3 && is_continuation(bytes[cut]) {
            cut += 1;
        }
        if !self.mode.has_refs() {
            return cut;
        }
        let head = &bytes[..cut];
        let open = match (memchr::memrchr(b'&', head), memchr::memrchr(b';', head)) {
            (Some(amp), Some(semi)) if amp > semi => Some(amp),
            (Some(amp), None) => Some(amp),
            (None, None) if self.open_ref => None,
            _ => return cut,
        };
        let reach = &bytes[cut..bytes.len().min(cut + MAX_REF)];
        match (memchr::memchr(b';', reach), open) {
            (Some(i), _) => cut + i + 1,
            (None, Some(amp)) => amp,
            // The `&` was passed on in an earlier chunk and no `;` is near:
            // an overlong name, which the reader keeps literally anyway.
            (None, None) => cut,
        }
    }

    /// The run ended: pass the tail on, behind the marker if bytes were cut.
    fn end_run(&mut self, input: &[u8]) {
        if self.cutting {
            self.flush(input);
            if self.dropped > 0 {
                // The tail must start on a character and outside a reference.
                let mut skip = 0;
                while skip < self.tail.len() && skip < 3 && is_continuation(self.tail[skip]) {
                    skip += 1;
                }
                if self.mode.has_refs() {
                    let window = self.tail.iter().skip(skip).take(MAX_REF);
                    for (i, &b) in window.enumerate() {
                        match b {
                            b'&' => break,
                            b';' => {
                                skip += i + 1;
                                break;
                            }
                            _ => {}
                        }
                    }
                }
                self.dropped += skip as u64;
                self.tail.drain(..skip);
                use std::io::Write as _;
                let _ = write!(self.out, "\n…[{} bytes cut]…\n", self.dropped);
            }
            let (a, b) = self.tail.as_slices();
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b);
        }
        self.tail.clear();
        self.run = 0;
        self.cutting = false;
        self.dropped = 0;
        self.open_ref = false;
        self.last2 = [0; 2];
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Below this many bytes a plain loop beats a call to `memchr`'s
/// vectorised routines (their dispatch and set-up).
const SHORT: usize = 16;

/// `memchr` that first looks at the first [`SHORT`] bytes one by one: the
/// text between two tags is mostly a newline and some indentation.
#[inline]
fn find_short(needle: u8, hay: &[u8]) -> Option<usize> {
    let head = &hay[..hay.len().min(SHORT)];
    if let Some(i) = head.iter().position(|&b| b == needle) {
        return Some(i);
    }
    if hay.len() <= SHORT {
        return None;
    }
    memchr::memchr(needle, &hay[SHORT..]).map(|i| i + SHORT)
}

/// Whether a tag's bytes, which hold no `'`, hold an even number of `"`:
/// then each value closes before the next opens, and a `>` after them is
/// outside every value.
fn double_quotes_even(tag: &[u8]) -> bool {
    if tag.len() <= SHORT {
        // End tags and bare start tags: a few bytes, looked at directly.
        return tag.iter().filter(|&&b| b == b'"').count() % 2 == 0;
    }
    // memchr's vectorised count: cheaper than one search per quote for the
    // many short values of real reports.
    memchr::memchr_iter(b'"', tag).count() % 2 == 0
}

impl<R: Read> LongTextCut<R> {
    /// Processes input until there is output or the input has ended. Kept
    /// out of line: the XML reader calls `fill_buf` several times per event,
    /// and with all of `process` inlined each call paid a long prologue.
    #[inline(never)]
    fn refill(&mut self) -> io::Result<()> {
        while self.out_pos == self.out.len() && self.pending.is_empty() {
            self.out.clear();
            self.out_pos = 0;
            if self.fast {
                // Lent unseen while the segment stays within `keep` bytes.
                let limit = self.seg_start + self.keep;
                if self.in_pos < self.in_end && self.in_pos < limit {
                    let mut end = self.in_end.min(limit);
                    // A segment that can reach `keep` bytes in this chunk
                    // holds a run the machine may cut here, and it may end
                    // that run's head back at an `&` whose reference it
                    // cannot see the end of: the last `&` of the head, when
                    // no `;` follows it (`head_cut`). So such a segment is
                    // not lent past an `&` unseen unless a `;` follows the
                    // last `&` of what is lent: every head then ends at or
                    // after that `;`. (Attribute values full of `&lt;` and
                    // `&quot;` stopped the lending at each tag that held
                    // one, and quick-xml read the tag.) Where `keep` bytes
                    // of the segment run past the chunk, no head can end
                    // in it: the next chunk's piece of the run starts
                    // afresh.
                    if limit <= self.in_end {
                        let lent = &self.input[self.in_pos..end];
                        if let Some(amp) = memchr::memrchr(b'&', lent)
                            && memchr::memchr(b';', &lent[amp..]).is_none()
                        {
                            end = self.in_pos + amp;
                        }
                    }
                    if end > self.in_pos {
                        self.pending = self.in_pos..end;
                        self.in_pos = end;
                        return Ok(());
                    }
                }
                // A long segment, an `&` in one that may become long, or
                // the end of the chunk: the machine takes over until the
                // segment's markup closes.
                self.wake();
                if self.out_pos < self.out.len() || !self.pending.is_empty() {
                    return Ok(());
                }
            }
            if self.eof {
                return Ok(());
            }
            self.process()?;
        }
        Ok(())
    }
}

impl<R: Read> BufRead for LongTextCut<R> {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.out_pos == self.out.len() && self.pending.is_empty() {
            self.refill()?;
        }
        if self.out_pos < self.out.len() {
            Ok(&self.out[self.out_pos..])
        } else {
            Ok(&self.input[self.pending.clone()])
        }
    }

    #[inline]
    fn consume(&mut self, amount: usize) {
        if self.out_pos < self.out.len() {
            self.out_pos = (self.out_pos + amount).min(self.out.len());
        } else {
            self.pending.start = (self.pending.start + amount).min(self.pending.end);
        }
    }
}

impl<R: Read> Read for LongTextCut<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader delivering `chunk` bytes at a time, to cross every
    /// boundary the adapter must handle.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn cut(input: &[u8], keep: usize, chunk: usize) -> String {
        let mut adapter = LongTextCut::new(Trickle(input, chunk), keep);
        let mut out = Vec::new();
        adapter.read_to_end(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let mut reference = LongTextCut::new(Trickle(input, chunk), keep).machine_only();
        let mut expected = Vec::new();
        reference.read_to_end(&mut expected).unwrap();
        assert_eq!(out.as_bytes(), expected, "lent unseen vs the state machine");
        out
    }

    /// Reads as the XML reader does, at most `step` bytes at a time, and
    /// says `markup_ended` after each `>` (in the documents given, every
    /// `>` closes markup, as quick-xml would report it).
    fn cut_marked(input: &[u8], keep: usize, chunk: usize, step: usize) -> String {
        let mut adapter = LongTextCut::new(Trickle(input, chunk), keep);
        let mut out = Vec::new();
        loop {
            let available = adapter.fill_buf().unwrap();
            if available.is_empty() {
                break;
            }
            let n = available.len().min(step);
            let gt = available[..n].iter().position(|&b| b == b'>');
            let n = gt.map_or(n, |i| i + 1);
            out.extend_from_slice(&available[..n]);
            adapter.consume(n);
            if gt.is_some() {
                adapter.markup_ended();
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// Lending input unseen between markup ends changes nothing: the same
    /// bytes come out as from the state machine alone (`cut` checks its
    /// own lending against it too), whatever
    /// the chunk and read sizes, with long runs before, between and after
    /// stretches of short markup, and across the chunk boundaries.
    #[test]
    fn marks_change_nothing() {
        let short = "<a b=\"1\"/>\n  <c>t&amp;u</c><!--x--><![CDATA[y]]>".repeat(30);
        let long = |c: &str| c.repeat(700);
        let docs = [
            format!(
                "<r>{short}<a m=\"{m}\"><![CDATA[{c}]]><!--{k}-->{t}</a>{short}<t>{t}&#10;{t}</t>{short}</r>",
                m = long("m"),
                c = long("c"),
                k = long("k"),
                t = long("t"),
            ),
            format!("<r>{short}{}</r>", "é&amp;x&#10;".repeat(300)),
            format!("<r>{short}<x>{}", long("z")),
            short.clone(),
        ];
        for doc in &docs {
            for keep in [64, 100, 333] {
                for chunk in [1, 5, 64, 4096, 1 << 20] {
                    let plain = cut(doc.as_bytes(), keep, chunk);
                    for step in [1, 7, 1000, usize::MAX] {
                        assert_eq!(
                            cut_marked(doc.as_bytes(), keep, chunk, step),
                            plain,
                            "keep {keep} chunk {chunk} step {step}"
                        );
                    }
                }
            }
        }
        // And the runs were cut at all.
        assert!(cut(docs[0].as_bytes(), 100, 64).contains("bytes cut]"));
    }

    /// quick-xml's events over the cut, saying `markup_ended` after each
    /// markup event as the reader does, or over the state machine alone.
    fn events(input: &[u8], keep: usize, chunk: usize, marks: bool) -> Vec<String> {
        use quick_xml::events::Event;
        let mut cut = LongTextCut::new(Trickle(input, chunk), keep);
        if !marks {
            cut = cut.machine_only();
        }
        let mut reader = quick_xml::Reader::from_reader(cut);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            buf.clear();
            let position = reader.buffer_position();
            match reader.read_event_into(&mut buf) {
                Ok(Event::Eof) => return out,
                Ok(event) => {
                    let text = matches!(event, Event::Text(_) | Event::GeneralRef(_));
                    out.push(format!("{position} {event:?}"));
                    if marks && !text {
                        reader.get_mut().markup_ended();
                    }
                }
                Err(e) => {
                    out.push(format!("{} {e}", reader.error_position()));
                    return out;
                }
            }
        }
    }

    /// The same events with the reader's marks as with the machine alone,
    /// including where the machine ends a cut run's head back at an `&`
    /// it cannot see the reference end of (a bare `&` in a long value):
    /// such a segment must not be lent past that `&` unseen.
    #[test]
    fn marks_from_the_reader_change_nothing() {
        let pad = "<!---->".repeat(20);
        let docs = [
            format!(
                "<r>{pad}<f m='{}&{}'/></r>",
                "y".repeat(40),
                "y".repeat(300)
            ),
            format!(
                "<r>{pad}<f m=\"{}&{}\">t</f></r>",
                "y".repeat(90),
                "y".repeat(300)
            ),
            format!(
                "<r>{pad}<t>{}&amp;{}</t></r>",
                "y".repeat(40),
                "y".repeat(300)
            ),
            format!("<r>{pad}<t>{}&{}</t></r>", "y".repeat(40), "y".repeat(300)),
            format!(
                "<r>{pad}<!--{}&{}--><x/></r>",
                "y".repeat(40),
                "y".repeat(300)
            ),
            format!(
                "<r>{pad}<t>{}é&#10;{}</t></r>",
                "y".repeat(98),
                "é".repeat(300)
            ),
            // Closed references before a bare `&`, in a value and in a
            // text: lent up to the last `&` with no `;` after it, no
            // further.
            format!(
                "<r>{pad}<f m=\"a&lt;b&gt;{}&{}\"/><f m='&quot;{}'/></r>",
                "y".repeat(30),
                "y".repeat(300),
                "z".repeat(150)
            ),
            format!(
                "<r>{pad}<t>&amp;{}&#10;{}&{}</t></r>",
                "y".repeat(20),
                "y".repeat(20),
                "y".repeat(300)
            ),
            // Many short values with references, as jest writes names.
            format!(
                "<r>{pad}{}</r>",
                "<c n=\"&lt;x&gt; &quot;q&quot;\"/>\n".repeat(40)
            ),
        ];
        for doc in &docs {
            for keep in [64, 100] {
                for chunk in [1, 3, 50, 200, 4096] {
                    assert_eq!(
                        events(doc.as_bytes(), keep, chunk, true),
                        events(doc.as_bytes(), keep, chunk, false),
                        "keep {keep} chunk {chunk}: {doc}"
                    );
                }
            }
        }
    }

    #[test]
    fn short_runs_and_markup_pass_unchanged() {
        let xml =
            r#"<?xml version="1.0"?><!-- c --><a b="x>y" c='q"'><![CDATA[a]]>b]]></a>t&amp;u<b/>"#;
        for chunk in [1, 2, 3, 7, 64] {
            assert_eq!(cut(xml.as_bytes(), 64, chunk), xml);
        }
    }

    #[test]
    fn long_runs_keep_head_and_tail_everywhere() {
        let long = |c: &str| c.repeat(1000);
        let xml = format!(
            "<a m=\"{}\"><![CDATA[{}]]><!--{}-->{}</a>",
            long("m"),
            long("c"),
            long("k"),
            long("t")
        );
        for chunk in [1, 5, 4096] {
            let out = cut(xml.as_bytes(), 100, chunk);
            // `]]` and `--` belong to the run until the `>` that ends it.
            let expected = format!(
                "<a m=\"{m}\n…[800 bytes cut]…\n{m}\"><![CDATA[{c}\n…[802 bytes cut]…\n{c2}]]><!--{k}\n…[802 bytes cut]…\n{k2}-->{t}\n…[800 bytes cut]…\n{t}</a>",
                m = "m".repeat(100),
                c = "c".repeat(100),
                c2 = "c".repeat(98),
                k = "k".repeat(100),
                k2 = "k".repeat(98),
                t = "t".repeat(100),
            );
            assert_eq!(out, expected, "chunk {chunk}");
        }
    }

    #[test]
    fn cuts_respect_characters_and_references() {
        // 'é' is 2 bytes and `&amp;` 5: with keep = 65 every cut point falls
        // inside one of them somewhere in the run.
        for keep in 64..72 {
            let body = "é&amp;x&#10;".repeat(200);
            let xml = format!("<a>{body}</a>");
            let out = cut(xml.as_bytes(), keep, 13);
            let inner = out
                .strip_prefix("<a>")
                .unwrap()
                .strip_suffix("</a>")
                .unwrap();
            let (head, rest) = inner.split_once("\n…[").unwrap();
            let tail = rest.split_once("]…\n").unwrap().1;
            for part in [head, tail] {
                // Every `&` starts a whole reference.
                for (i, _) in part.match_indices('&') {
                    let r = &part[i..];
                    assert!(r.starts_with("&amp;") || r.starts_with("&#10;"), "{part:?}");
                }
                assert!(!part.ends_with('&'));
            }
            assert!(tail.ends_with("&#10;"));
            assert!(head.starts_with("é&amp;"));
        }
    }

    #[test]
    fn an_unclosed_run_at_the_end_is_handed_on() {
        let xml = format!("<a>{}", "z".repeat(1000));
        let out = cut(xml.as_bytes(), 100, 64);
        assert!(out.starts_with("<a>zzz") && out.ends_with("zzz"));
        assert!(out.contains("[800 bytes cut]"));
    }
}
