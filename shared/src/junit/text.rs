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
        self.trim_tail();
        let text = if self.cut == 0 {
            self.head.push_str(&self.tail);
            self.head
        } else {
            format!("{}\n…[{} bytes cut]…\n{}", self.head, self.cut, self.tail)
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            None
        } else if trimmed.len() == text.len() {
            Some(text)
        } else {
            Some(trimmed.to_owned())
        }
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
pub(crate) fn parse_time(raw: &str) -> Result<f64, (f64, TimeIssue)> {
    let s = raw.trim();
    let parsed = if s.contains(',') {
        normalise_commas(s).and_then(|n| n.parse::<f64>().ok())
    } else {
        s.parse::<f64>().ok()
    };
    match parsed {
        Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Some(v) if v.is_finite() => Err((0.0, TimeIssue::Negative)),
        _ => Err((0.0, TimeIssue::Garbage)),
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
    }
}
