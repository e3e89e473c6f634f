//! The two timestamp conversions the GitHub API needs (RFC 3339 UTC out,
//! `expires_at` in), by `jiff`.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the epoch → `2026-11-27T11:06:04Z` (whole seconds,
/// as GitHub writes them).
pub(crate) fn rfc3339(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    // Past jiff's range (year 9999) only for a broken clock: say so plainly.
    jiff::Timestamp::from_second(secs)
        .map(|ts| ts.to_string())
        .unwrap_or_else(|_| "9999-12-31T23:59:59Z".into())
}

/// Parses an RFC 3339 timestamp (`2016-07-11T22:14:10Z`, with fractions or
/// an offset) into epoch seconds. `None` for anything else: callers then
/// treat the value as unknown.
pub(crate) fn parse_rfc3339(s: &str) -> Option<u64> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    u64::try_from(ts.as_second()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_468_275_250_000), "2016-07-11T22:14:10Z");
        assert_eq!(parse_rfc3339("2016-07-11T22:14:10Z"), Some(1_468_275_250));
        assert_eq!(
            parse_rfc3339("2016-07-11T22:14:10.123Z"),
            Some(1_468_275_250)
        );
        assert_eq!(
            parse_rfc3339("2016-07-12T00:14:10+02:00"),
            Some(1_468_275_250)
        );
        let now = now_secs();
        assert_eq!(parse_rfc3339(&rfc3339(now * 1000)), Some(now));
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "soon", "2016-13-11T22:14:10Z", "2016-07-11T22:14:10"] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }
}
