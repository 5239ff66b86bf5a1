//! Request budgets per device and per client (Realer's plans rate-limit): a generic cell rate algorithm,
//! one timestamp per budget, so a thousand devices cost a thousand `Instant`s.

use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// Takes one request from a budget of `per_minute` requests a minute (at most `per_minute` in a burst, then
/// one every `60 / per_minute` seconds). `tat` is the budget's state (`None`: untouched). `Err` holds the
/// whole seconds (at least 1) until the next request is allowed; a refused request takes nothing.
pub(crate) fn take(tat: &mut Option<Instant>, per_minute: u32, now: Instant) -> Result<(), u64> {
    let per_minute = per_minute.max(1);
    let interval = MINUTE / per_minute;
    let tolerance = MINUTE - interval;
    let next = tat.map_or(now, |t| t.max(now));
    if next > now + tolerance {
        let wait = next - tolerance - now;
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(secs.max(1));
    }
    *tat = Some(next + interval);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let t0 = Instant::now();
        let mut tat = None;
        for _ in 0..3 {
            assert_eq!(take(&mut tat, 3, t0), Ok(()));
        }
        assert_eq!(take(&mut tat, 3, t0), Err(20));
        assert_eq!(take(&mut tat, 3, t0 + Duration::from_millis(19_500)), Err(1));
        assert_eq!(take(&mut tat, 3, t0 + Duration::from_secs(20)), Ok(()));
        assert_eq!(take(&mut tat, 3, t0 + Duration::from_secs(21)), Err(19));
        // A long pause refills the whole burst, no more.
        let later = t0 + Duration::from_secs(600);
        for _ in 0..3 {
            assert_eq!(take(&mut tat, 3, later), Ok(()));
        }
        assert!(take(&mut tat, 3, later).is_err());
    }
}
