//! Backoff for the adapters' retry loops (DynamoDB, SQS, GitHub), built on
//! `backon`: each loop names its first delay, its cap and its number of
//! retries here, and runs on `backon`'s `Retryable` / `RetryableWithContext`.

use std::time::Duration;

use backon::ExponentialBuilder;

/// Exponential backoff with "equal jitter": the n-th delay (n from 1) is
/// drawn uniformly from `[d/2, d)`, where `d = first · 2^(n-1)` capped at
/// `cap`; at most `retries` delays. The upper end is the plain exponential
/// schedule, so a jittered loop never waits longer than its unjittered
/// counterpart would, and the lower half keeps the delays growing (full
/// jitter from 0 could retry at once). Callers that compare delays should
/// allow for `backon`'s `f32` arithmetic (nanoseconds).
///
/// `backon` jitters by adding up to one more delay on top (`[b, 2b)`), so the
/// builder starts at `first / 2` and stops growing at `cap / 2`.
pub(crate) fn jittered(first: Duration, cap: Duration, retries: usize) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_factor(2.0)
        .with_min_delay(first / 2)
        .with_max_delay(cap / 2)
        .with_max_times(retries)
        .with_jitter()
}

/// Plain exponential backoff, no jitter: `first`, doubling, capped at `cap`;
/// at most `retries` delays.
#[cfg(feature = "aws")]
pub(crate) fn exponential(first: Duration, cap: Duration, retries: usize) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_factor(2.0)
        .with_min_delay(first)
        .with_max_delay(cap)
        .with_max_times(retries)
}

/// The unjittered schedule `jittered` draws below: `first · 2^(n-1)`
/// capped at `cap`, for tests of every loop's caps.
#[cfg(test)]
pub(crate) fn ceiling(first: Duration, cap: Duration, n: usize) -> Duration {
    let doublings = u32::try_from(n.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(30);
    first.saturating_mul(1 << doublings).min(cap)
}

/// Asserts that `delays` follow `jittered(first, cap, retries)`: exactly
/// `retries` of them, each in `[d/2, d]` of [`ceiling`] (with a microsecond
/// for `f32` rounding) and none over `cap`.
#[cfg(test)]
pub(crate) fn assert_jittered(delays: &[Duration], first: Duration, cap: Duration, retries: usize) {
    const SLACK: Duration = Duration::from_micros(1);
    assert_eq!(delays.len(), retries, "one delay per retry: {delays:?}");
    for (i, &delay) in delays.iter().enumerate() {
        let d = ceiling(first, cap, i + 1);
        assert!(
            delay + SLACK >= d / 2 && delay <= d + SLACK && delay <= cap,
            "delay #{} is {delay:?}, outside [{:?}, {d:?}] (cap {cap:?})",
            i + 1,
            d / 2
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn jittered_delays_stay_under_the_exponential_schedule_and_the_cap() {
        for _ in 0..200 {
            let delays: Vec<_> = jittered(MS * 25, MS * 300, 9).build().collect();
            assert_jittered(&delays, MS * 25, MS * 300, 9);
        }
        // Far past the cap, still capped.
        let last = jittered(MS * 100, MS * 2000, 1000).build().last().unwrap();
        assert!(last >= MS * 1000 && last <= MS * 2000, "{last:?}");
        assert_eq!(jittered(MS, MS, 0).build().count(), 0, "no retries");
        assert_eq!(
            ceiling(MS * 100, MS * 2000, usize::MAX),
            MS * 2000,
            "the test schedule saturates too"
        );
    }

    #[test]
    fn jitter_is_random() {
        let firsts: std::collections::HashSet<Duration> = (0..50)
            .map(|_| jittered(MS * 100, MS * 100, 1).build().next().unwrap())
            .collect();
        assert!(firsts.len() > 1, "50 draws, one value: {firsts:?}");
    }

    #[test]
    #[cfg(feature = "aws")]
    fn exponential_doubles_up_to_the_cap() {
        let ms: Vec<_> = exponential(MS * 100, MS * 2000, 7)
            .build()
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn assert_jittered_catches_a_delay_over_its_step() {
        let too_long = vec![MS * 10, MS * 40];
        let caught = std::panic::catch_unwind(|| assert_jittered(&too_long, MS * 10, MS * 100, 2));
        assert!(caught.is_err(), "40 ms is over the second step's 20 ms");
        let too_many = vec![MS * 10; 3];
        let caught = std::panic::catch_unwind(|| assert_jittered(&too_many, MS * 10, MS * 100, 2));
        assert!(caught.is_err(), "three delays for two retries");
    }
}
