//! Backoff for transient failures: exponential with full jitter, honouring the server's `Retry-After`.

use std::time::Duration;

use crate::config::RetryPolicy;

/// The wait before attempt `failed + 1`, after `failed` failed attempts (1-based), or `None` when the
/// server's `Retry-After` is longer than the policy's `max_delay`: then the caller gets the error, with the
/// wait, instead of a call that blocks longer than it was configured to.
pub(crate) fn backoff(
    policy: &RetryPolicy,
    failed: u32,
    retry_after: Option<Duration>,
    random: u64,
) -> Option<Duration> {
    if let Some(ra) = retry_after {
        if ra > policy.max_delay {
            return None;
        }
    }
    let base = policy.base_delay.as_millis() as u64;
    let cap = base.saturating_mul(1u64 << failed.saturating_sub(1).min(32)).min(policy.max_delay.as_millis() as u64);
    let jittered = Duration::from_millis(random % (cap + 1));
    Some(retry_after.map_or(jittered, |ra| ra.max(jittered)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy =
        RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) };

    #[test]
    fn full_jitter_grows_and_caps() {
        assert_eq!(backoff(&P, 1, None, 0), Some(Duration::ZERO));
        assert_eq!(backoff(&P, 1, None, 500), Some(Duration::from_millis(500)));
        assert_eq!(backoff(&P, 1, None, 501), Some(Duration::ZERO), "within [0, 500]");
        assert_eq!(backoff(&P, 3, None, 2000), Some(Duration::from_millis(2000)));
        assert_eq!(backoff(&P, 3, None, 2001), Some(Duration::ZERO), "within [0, 2000]");
        assert_eq!(backoff(&P, 40, None, u64::MAX), Some(Duration::from_millis(u64::MAX % 30_001)));
        for failed in 1..50 {
            assert!(backoff(&P, failed, None, u64::MAX - 7).unwrap() <= P.max_delay);
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_bounded() {
        assert_eq!(backoff(&P, 1, Some(Duration::from_secs(2)), 0), Some(Duration::from_secs(2)));
        assert_eq!(backoff(&P, 1, Some(Duration::from_secs(31)), 0), None);
    }
}
