//! Bounded text capture and attribute value parsing.

/// Collects text up to a byte cap, keeping the head and the tail.
///
/// Failure output is most useful at both ends: the head holds the assertion,
/// the tail the innermost frames or the last log lines. When the text is
/// longer than the cap, the middle is replaced by `\n…[N bytes cut]…\n`.
/// The kept parts never exceed the cap and are cut on char boundaries.
/// Memory is bounded by about twice the cap while text streams in, whatever
/// the size of the input.
pub(crate) struct Capped {
    head_cap: usize,
    tail_cap: usize,
    head: String,
    tail: String,
    cut: u64,
    /// Once the head is full, everything else goes to the tail.
    head_full: bool,
}

impl Capped {
    pub(crate) fn new(cap: usize) -> Self {
        let head_cap = cap / 2;
        Self {
            head_cap,
            tail_cap: cap - head_cap,
            head: String::new(),
            tail: String::new(),
            cut: 0,
            head_full: false,
        }
    }

    pub(crate) fn push(&mut self, mut s: &str) {
        if !self.head_full {
            let room = self.head_cap - self.head.len();
            if s.len() <= room {
                self.head.push_str(s);
                return;
            }
            let take = floor_char_boundary(s, room);
            self.head.push_str(&s[..take]);
            s = &s[take..];
            self.head_full = true;
        }
        self.tail.push_str(s);
        // Compact lazily so that pushing many small chunks stays amortised O(n).
        if self.tail.len() > self.tail_cap.saturating_mul(2).max(4096) {
            self.trim_tail();
        }
    }

    fn trim_tail(&mut self) {
        if self.tail.len() > self.tail_cap {
            let start = ceil_char_boundary(&self.tail, self.tail.len() - self.tail_cap);
            self.cut += start as u64;
            self.tail.drain(..start);
        }
    }

    /// The captured text, trimmed of surrounding whitespace (report writers
    /// indent element bodies); `None` when nothing but whitespace was seen.
    pub(crate) fn finish(mut self) -> Option<String> {
        self.take()
    }

    /// [`finish`](Self::finish) for a reused buffer: returns the text in a
    /// `String` of exactly its size and leaves `self` empty, its buffers'
    /// capacity kept for the next text.
    pub(crate) fn take(&mut self) -> Option<String> {
        self.trim_tail();
        let text = if self.cut == 0 {
            self.head.push_str(&self.tail);
            let trimmed = trim(&self.head);
            (!trimmed.is_empty()).then(|| trimmed.to_owned())
        } else {
            let text = format!("{}\n…[{} bytes cut]…\n{}", self.head, self.cut, self.tail);
            let trimmed = trim(&text);
            (!trimmed.is_empty()).then(|| trimmed.to_owned())
        };
        self.clear();
        text
    }

    /// Forgets the text seen so far, keeping the buffers' capacity.
    pub(crate) fn clear(&mut self) {
        self.head.clear();
        self.tail.clear();
        self.cut = 0;
        self.head_full = false;
    }
}

/// Caps a single string (an attribute value) the same way as [`Capped`].
pub(crate) fn cap_str(s: &str, cap: usize) -> String {
    if s.len() <= cap {
        return s.to_owned();
    }
    let mut c = Capped::new(cap);
    c.push(s);
    c.finish().unwrap_or_default()
}

/// `str::trim`, with the ASCII whitespace around an element body (a
/// newline and indentation) stripped byte by byte first: `str::trim`
/// decodes and classifies each character, ~3 % of a nextest report's
/// instructions. Where an end is not ASCII, `str::trim` finishes the job,
/// so the result is always `str::trim`'s.
fn trim(s: &str) -> &str {
    // `char::is_whitespace` in ASCII: tab, LF, VT, FF, CR and space.
    let ws = |b: &u8| matches!(b, b'\t'..=b'\r' | b' ');
    let bytes = s.as_bytes();
    let start = bytes.iter().position(|b| !ws(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    // Only ASCII bytes were stripped: both ends are character boundaries.
    let inner = &s[start..end];
    match inner.as_bytes() {
        [first, .., last] if first.is_ascii() && last.is_ascii() => inner,
        [only] if only.is_ascii() => inner,
        _ => inner.trim(),
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Why a time attribute was not taken as is.
#[derive(Debug, PartialEq)]
pub(crate) enum TimeIssue {
    Negative,
    Garbage,
}

/// Parses a `time` attribute in seconds.
///
/// Accepted: plain decimals, scientific notation (`1.4e-05`, Perl and CUnit),
/// thousands separators (`1,234.5`, Ant/TestNG under some locales: a comma is
/// taken as a thousands separator only when it separates groups of exactly
/// three digits; otherwise a single comma is a decimal comma, `0,5`).
/// Negative values become 0 and garbage (`<<computed>>`, `NaN`, `inf`) too;
/// the caller records a warning for both.
#[inline]
pub(crate) fn parse_time(raw: &str) -> Result<f64, (f64, TimeIssue)> {
    // The common form, inlined into the caller: this runs for every case.
    // Negative values go the other way, where only whether they are zero
    // is worked out, not their value.
    if !raw.starts_with('-')
        && let Some(v) = parse_plain_decimal(raw)
    {
        return Ok(v);
    }
    parse_time_other(raw)
}

/// [`parse_time`] for every form.
#[inline(never)]
fn parse_time_other(raw: &str) -> Result<f64, (f64, TimeIssue)> {
    // A negative plain decimal becomes 0 whatever its digits: only whether
    // it is zero (`-0.0` is kept as it is) matters, not its value, which
    // past 2^53 would need the general parser.
    if let Some(zero) = negative_plain_decimal(raw) {
        return if zero {
            Ok(-0.0)
        } else {
            Err((0.0, TimeIssue::Negative))
        };
    }
    // The fast path takes no whitespace, so the (Unicode) trim is only paid
    // by the other forms.
    let parsed = if let Some(v) = parse_plain_decimal(raw) {
        Some(v)
    } else {
        let s = raw.trim();
        if s.contains(',') {
            normalise_commas(s).and_then(|n| n.parse::<f64>().ok())
        } else {
            s.parse::<f64>().ok()
        }
    };
    match parsed {
        Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Some(v) if v.is_finite() => Err((0.0, TimeIssue::Negative)),
        _ => Err((0.0, TimeIssue::Garbage)),
    }
}

/// Fast path for the overwhelmingly common `-?digits[.digits]` whose digits,
/// read as an integer, are at most 2^53: that integer is exact in an f64 and
/// so is 10^k (k ≤ 22), so one division is correctly rounded and equals what
/// `str::parse::<f64>` returns (the classic Clinger fast path, which std also
/// ends in, after general-purpose parsing that cost ~250 instructions per
/// test case). Anything else, surrounding whitespace included, returns
/// `None` and goes through `str::parse`.
#[inline]
fn parse_plain_decimal(s: &str) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    const MAX_EXACT: u64 = 1 << 53;
    let (negative, digits) = match s.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        bytes => (false, bytes),
    };
    let mut mantissa: u64 = 0;
    let mut dot = None;
    for (i, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                if mantissa > MAX_EXACT {
                    return None;
                }
            }
            b'.' if dot.is_none() && i > 0 => dot = Some(i),
            _ => return None,
        }
    }
    let frac_len = match dot {
        None if digits.is_empty() => return None,
        None => 0,
        Some(i) if i + 1 == digits.len() => return None,
        Some(i) => digits.len() - i - 1,
    };
    let value = mantissa as f64 / *POW10.get(frac_len)?;
    Some(if negative { -value } else { value })
}

/// For `-digits[.digits]` (the syntax [`parse_plain_decimal`] takes, any
/// number of digits after the point, fewer than 300 before it so that the
/// value is finite): whether every digit is zero. `None` for anything else.
fn negative_plain_decimal(s: &str) -> Option<bool> {
    let digits = s.as_bytes().strip_prefix(b"-")?;
    let mut dot = None;
    let mut zero = true;
    for (i, &b) in digits.iter().enumerate() {
        match b {
            b'0' => {}
            b'1'..=b'9' => zero = false,
            b'.' if dot.is_none() && i > 0 => dot = Some(i),
            _ => return None,
        }
    }
    match dot {
        None if digits.is_empty() || digits.len() >= 300 => None,
        Some(i) if i + 1 == digits.len() || i >= 300 => None,
        _ => Some(zero),
    }
}

fn normalise_commas(s: &str) -> Option<String> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = int.trim_start_matches(['-', '+']);
    let groups: Vec<&str> = digits.split(',').collect();
    let grouped = groups.len() > 1
        && (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|g| g.len() == 3)
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
    if grouped {
        let mut out = int.replace(',', "");
        if let Some(f) = frac {
            out.push('.');
            out.push_str(f);
        }
        Some(out)
    } else if frac.is_none() && groups.len() == 2 {
        Some(s.replacen(',', ".", 1))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_is_str_trim() {
        let samples = [
            "",
            " ",
            "\n\t\r\x0B\x0C ",
            "a",
            " a ",
            "\n  body\n  ",
            "\u{a0}x\u{a0}",
            " \u{3000} x \u{2029}\n",
            "\u{85}",
            "é",
            " é ",
            "x\u{1680}",
            "\x1F a \x1F",
            "\u{200B}z\u{200B}",
        ];
        for s in samples {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }

    #[test]
    fn short_text_is_kept_whole_and_trimmed() {
        let mut c = Capped::new(16);
        c.push("  hello ");
        c.push("world\n");
        assert_eq!(c.finish().as_deref(), Some("hello world"));
        assert_eq!(Capped::new(16).finish(), None);
    }

    #[test]
    fn long_text_keeps_head_and_tail_within_cap() {
        let mut c = Capped::new(10);
        for chunk in ["abcde", "fghij", "klmno", "pqrst", "uvwxyz"] {
            c.push(chunk);
        }
        assert_eq!(
            c.finish().as_deref(),
            Some("abcde\n…[16 bytes cut]…\nvwxyz")
        );
    }

    #[test]
    fn cuts_fall_on_char_boundaries() {
        // 'é' is 2 bytes, '𒍺' 4 bytes: no cut may split them.
        let text = "éééééé𒍺𒍺𒍺𒍺";
        let mut c = Capped::new(7);
        c.push(text);
        let out = c.finish().unwrap();
        let (head, rest) = out.split_once("\n…[").unwrap();
        let tail = rest.split_once("]…\n").unwrap().1;
        assert_eq!(head, "é"); // 3 bytes allowed: one 2-byte char fits, not two
        assert_eq!(tail, "𒍺"); // 4 bytes allowed
        assert!(head.len() + tail.len() <= 7);
        assert!(out.contains(&format!("[{} bytes cut]", text.len() - 6)));
    }

    #[test]
    fn times_in_the_wild() {
        assert_eq!(parse_time("0.25"), Ok(0.25));
        assert_eq!(parse_time(" 1,234.5 "), Ok(1234.5));
        assert_eq!(parse_time("12,345,678"), Ok(12_345_678.0));
        assert_eq!(parse_time("0,5"), Ok(0.5));
        assert_eq!(parse_time("1.4e-05"), Ok(1.4e-05));
        assert_eq!(parse_time("4.50611114501953e-05"), Ok(4.50611114501953e-05));
        assert_eq!(parse_time("-345345"), Err((0.0, TimeIssue::Negative)));
        assert_eq!(parse_time("<<computed>>"), Err((0.0, TimeIssue::Garbage)));
        assert_eq!(parse_time("NaN"), Err((0.0, TimeIssue::Garbage)));
        assert_eq!(parse_time("inf"), Err((0.0, TimeIssue::Garbage)));
        assert_eq!(parse_time(""), Err((0.0, TimeIssue::Garbage)));
        assert_eq!(parse_time("1,23,4"), Err((0.0, TimeIssue::Garbage)));
        assert_eq!(parse_time("5."), Ok(5.0));
        assert_eq!(parse_time(".5"), Ok(0.5));
        assert_eq!(parse_time("-0.0"), Ok(-0.0));
    }

    #[test]
    fn plain_decimal_fast_path_matches_std() {
        let samples = [
            "0",
            "0.006",
            "0.1",
            "0.3",
            "165.872",
            "4416.244657678726",
            "-4416.244657678726",
            "0.000001",
            "123456789012345",
            "1234567890123456",
            "00000000000000000001.5",
            "9007199254740993",
            "1.7976931348623157",
            "0.30000000000000004",
            "42",
            "-0",
        ];
        for s in samples {
            if let Some(fast) = parse_plain_decimal(s) {
                assert_eq!(fast.to_bits(), s.parse::<f64>().unwrap().to_bits(), "{s}");
            }
        }
        for s in ["", "-", ".5", "5.", "1e5", "+1", "1.2.3", "0x10", "1,5"] {
            assert_eq!(parse_plain_decimal(s), None, "{s}");
        }
        // Negative plain decimals skip the value: same verdict as std's.
        for s in [
            "-4416.244657678726",
            "-9914.724436494967123",
            "-0",
            "-0.000",
            "-00.0001",
            "-1",
            "-.5",
            "-5.",
            "-1e5",
            "--1",
            "-1.2.3",
            "- 1",
        ] {
            let std = match s.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v.to_bits()),
                Ok(v) if v.is_finite() => Err(TimeIssue::Negative),
                _ => Err(TimeIssue::Garbage),
            };
            let fast = match negative_plain_decimal(s) {
                Some(true) => Some(Ok((-0.0f64).to_bits())),
                Some(false) => Some(Err(TimeIssue::Negative)),
                None => None,
            };
            if let Some(fast) = fast {
                assert_eq!(fast, std, "{s}");
            }
            let via = parse_time(s).map(f64::to_bits).map_err(|(_, issue)| issue);
            let std_full = match s.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v.to_bits()),
                Ok(v) if v.is_finite() => Err(TimeIssue::Negative),
                _ => Err(TimeIssue::Garbage),
            };
            if !s.contains(',') {
                assert_eq!(via, std_full, "{s}");
            }
        }
        assert_eq!(
            negative_plain_decimal(&format!("-{}", "9".repeat(299))),
            Some(false)
        );
        assert_eq!(
            negative_plain_decimal(&format!("-{}", "9".repeat(300))),
            None
        );
        // Pseudo-random decimals with up to 16 digits, up to 22 after the point.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = x % 10_000_000_000_000_000;
            let scale = (x >> 50) as usize % 23;
            let mut s = digits.to_string();
            if scale > 0 {
                while s.len() <= scale {
                    s.insert(0, '0');
                }
                s.insert(s.len() - scale, '.');
            }
            let std = s.parse::<f64>().unwrap();
            if let Some(fast) = parse_plain_decimal(&s) {
                assert_eq!(fast.to_bits(), std.to_bits(), "{s}");
            }
        }
    }
}
