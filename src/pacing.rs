//! Outbox flushes after a long outage, spread out so that a fleet does not come back all at once.
//!
//! Each call's own retries (exponential backoff with full jitter) ride over a blip. An outage is different:
//! every device of a fleet keeps flushing into it, each flush retrying within its call, so when Realer comes
//! back most devices are a second or two from their next attempt, and each brings its token request and its
//! whole backlog (bench/fleet measured 7.09 times the steady request rate in the first second). So once flushes
//! have failed for want of Realer for longer than `LONG_OFFLINE` (no connection, a timeout, a 5xx or 429 after
//! the call's retries):
//! - the next flush may send only after a random wait (full jitter) in a window as long as the outage has
//!   lasted, at most `cap` (the retry policy's `max_delay`, or six of the caller's intervals between flushes
//!   when that is longer, at most an hour); a `Retry-After` is a floor. A flush called before then returns at
//!   once, every item pending, with a retryable error that says how long to wait;
//! - a flush that sends makes one attempt per request (a probe): the wait between flushes replaces the call's
//!   retries.
//!
//! Devices then come back spread over about `cap`, each at its own instant (bench/fleet: the busiest second
//! after a five-minute outage at 1.59 times the steady rate). The first flush that Realer answers ends it. The
//! state is the client's, in memory: a restarted process flushes at once.

use std::cell::Cell;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RetryPolicy;
use crate::error::{Error, ErrorKind};

/// How long flushes must have failed for want of Realer before they are paced: longer than a blip, which the
/// calls' own retries ride over, and than any fault a test injects.
pub(crate) const LONG_OFFLINE: Duration = Duration::from_secs(15);
/// The window of the wait grows to this many of the caller's intervals between flushes: devices that flush
/// every P seconds come back spread over 6 P, so the extra requests of their return (a token, the backlog)
/// weigh a sixth of their steady rate each.
const WINDOW_INTERVALS: u32 = 6;
/// The longest window, whatever the intervals.
const MAX_WINDOW: Duration = Duration::from_secs(3600);

thread_local! {
    /// Whether the calls of this thread are a paced flush's probe: one attempt each.
    static PROBING: Cell<bool> = const { Cell::new(false) };
}

#[cfg(feature = "test-hooks")]
thread_local! {
    /// `LONG_OFFLINE` for the flushes of this thread, when a test lowered it.
    static LONG_OFFLINE_HERE: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Sets (or, with `None`, restores) how long flushes must have failed before they are paced, for the
/// flushes this thread makes: a test of the pacing then takes seconds, and tests on other threads keep 15 s.
#[cfg(feature = "test-hooks")]
pub fn set_long_offline_on_this_thread(duration: Option<Duration>) {
    LONG_OFFLINE_HERE.with(|d| d.set(duration));
}

fn long_offline() -> Duration {
    #[cfg(feature = "test-hooks")]
    if let Some(d) = LONG_OFFLINE_HERE.with(Cell::get) {
        return d;
    }
    LONG_OFFLINE
}

/// The retry policy for a call on this thread: the configured one, or one attempt inside a paced flush.
pub(crate) fn policy_for_call(configured: RetryPolicy) -> RetryPolicy {
    if PROBING.with(Cell::get) {
        RetryPolicy { max_attempts: 1, ..configured }
    } else {
        configured
    }
}

/// Makes the calls of this thread probes until it is dropped.
pub(crate) struct Probe(bool);

impl Probe {
    fn start() -> Probe {
        Probe(PROBING.with(|p| p.replace(true)))
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        PROBING.with(|p| p.set(self.0));
    }
}

/// What a flush may do now.
pub(crate) enum Gate {
    /// Send; with a probe, its calls make one attempt each.
    Send(Option<Probe>),
    /// Not before this long; the error to return.
    Wait(Error),
}

/// How a flush that was let through ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Realer answered (some item settled, or a refusal that is not transient).
    Answered,
    /// Stopped by a transient failure before any item was settled, with the server's `Retry-After`.
    Unreachable(Option<Duration>),
    /// Nothing was sent (nothing pending, a local failure, a cancel).
    Nothing,
}

impl Outcome {
    /// A flush's outcome from what it settled and the error that stopped it.
    pub(crate) fn of(settled: u64, error: Option<&Error>) -> Outcome {
        match error {
            _ if settled > 0 => Outcome::Answered,
            None => Outcome::Nothing,
            Some(e) if e.retryable && matches!(e.kind, ErrorKind::Network | ErrorKind::Timeout | ErrorKind::Api) => {
                Outcome::Unreachable(e.retry_after)
            }
            Some(e) if matches!(e.kind, ErrorKind::Api | ErrorKind::Auth) => Outcome::Answered,
            Some(_) => Outcome::Nothing,
        }
    }
}

#[derive(Default)]
struct State {
    /// The first flush of the current run of transient failures.
    offline_since: Option<Instant>,
    not_before: Option<Instant>,
    last_call: Option<Instant>,
    /// The caller's interval between flushes, smoothed.
    interval: Option<Duration>,
}

/// One client's pacing of its flushes.
#[derive(Default)]
pub(crate) struct FlushPacing {
    state: Mutex<State>,
}

impl FlushPacing {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called when a flush begins, at `now`.
    pub(crate) fn begin(&self, now: Instant) -> Gate {
        let mut s = self.lock();
        if let Some(last) = s.last_call {
            let d = now.saturating_duration_since(last);
            s.interval = Some(s.interval.map_or(d, |i| (i * 3 + d) / 4));
        }
        s.last_call = Some(now);
        let Some(since) = s.offline_since else { return Gate::Send(None) };
        let offline = now.saturating_duration_since(since);
        match s.not_before {
            Some(t) if now < t => {
                let wait = t - now;
                let mut e = Error::new(
                    ErrorKind::Network,
                    format!(
                        "outbox: not sent: Realer has not been reached for {} s; the next flush sends in {} ms \
                         (after a long outage, flushes are spread out so that a fleet does not come back at once)",
                        offline.as_secs(),
                        wait.as_millis()
                    ),
                );
                e.retry_after = Some(wait);
                Gate::Wait(e)
            }
            _ if offline >= long_offline() => Gate::Send(Some(Probe::start())),
            _ => Gate::Send(None),
        }
    }

    /// Called when a flush that was let through ends, at `now`; `random` draws the wait.
    pub(crate) fn end(&self, now: Instant, outcome: Outcome, policy: &RetryPolicy, random: u64) {
        let mut s = self.lock();
        match outcome {
            Outcome::Nothing => {}
            Outcome::Answered => {
                s.offline_since = None;
                s.not_before = None;
            }
            Outcome::Unreachable(retry_after) => {
                let since = *s.offline_since.get_or_insert(now);
                s.not_before = wait(now.saturating_duration_since(since), s.interval, policy, retry_after, random)
                    .map(|w| now + w);
            }
        }
    }
}

/// The wait before the next flush after `offline` of failures, or `None` while the outage is short (the calls'
/// own retries are enough).
fn wait(
    offline: Duration,
    interval: Option<Duration>,
    policy: &RetryPolicy,
    retry_after: Option<Duration>,
    random: u64,
) -> Option<Duration> {
    if offline < long_offline() {
        return None;
    }
    let cap = interval.map_or(policy.max_delay, |i| i.saturating_mul(WINDOW_INTERVALS).max(policy.max_delay));
    let window = offline.min(cap).min(MAX_WINDOW);
    let jitter = Duration::from_millis(random % (window.as_millis() as u64 + 1));
    Some(retry_after.map_or(jitter, |ra| ra.max(jitter)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy =
        RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) };

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_window_is_as_long_as_the_outage_and_capped() {
        assert_eq!(wait(s(14), None, &P, None, u64::MAX), None, "a short outage: the calls' retries suffice");
        assert_eq!(wait(s(20), None, &P, None, 20_000), Some(s(20)));
        assert_eq!(wait(s(20), None, &P, None, 20_001), Some(Duration::ZERO), "within [0, 20 s]");
        // Capped by max_delay, or six of the caller's intervals when that is longer.
        assert_eq!(wait(s(600), None, &P, None, 30_000), Some(s(30)));
        assert_eq!(wait(s(600), Some(s(2)), &P, None, 30_000), Some(s(30)));
        assert_eq!(wait(s(600), Some(s(10)), &P, None, 60_000), Some(s(60)));
        assert_eq!(wait(s(600), Some(s(10)), &P, None, 60_001), Some(Duration::ZERO));
        assert!(wait(s(100_000), Some(s(1000)), &P, None, u64::MAX - 1).unwrap() <= MAX_WINDOW);
        // Retry-After is a floor.
        assert_eq!(wait(s(20), None, &P, Some(s(25)), 1_000), Some(s(25)));
    }

    #[test]
    fn a_long_outage_paces_and_probes_and_an_answer_ends_it() {
        let pacing = FlushPacing::default();
        let t0 = Instant::now();
        let Gate::Send(None) = pacing.begin(t0) else { panic!("a first flush sends, with retries") };
        pacing.end(t0, Outcome::Unreachable(None), &P, u64::MAX);
        // Short: the next flush sends, with its retries.
        let t1 = t0 + s(10);
        let Gate::Send(None) = pacing.begin(t1) else { panic!("10 s: not paced yet") };
        pacing.end(t1, Outcome::Unreachable(None), &P, 5_000);
        // Long: a probe, then a wait drawn in [0, 20 s] (here 5 s).
        let t2 = t0 + s(20);
        let Gate::Send(Some(probe)) = pacing.begin(t2) else { panic!("20 s: a probe") };
        assert_eq!(policy_for_call(P).max_attempts, 1, "a probe makes one attempt");
        drop(probe);
        assert_eq!(policy_for_call(P).max_attempts, 5);
        pacing.end(t2, Outcome::Unreachable(None), &P, 5_000);
        let Gate::Wait(e) = pacing.begin(t2 + s(1)) else { panic!("paced") };
        assert_eq!((e.kind, e.retryable, e.retry_after), (ErrorKind::Network, true, Some(s(4))));
        assert!(e.message.contains("next flush sends in 4000 ms"), "{}", e.message);
        let Gate::Send(Some(_)) = pacing.begin(t2 + s(5)) else { panic!("the wait is over: a probe") };
        pacing.end(t2 + s(5), Outcome::Nothing, &P, 0);
        let Gate::Send(Some(_)) = pacing.begin(t2 + s(6)) else { panic!("nothing sent changes nothing") };
        pacing.end(t2 + s(6), Outcome::Answered, &P, 0);
        let Gate::Send(None) = pacing.begin(t2 + s(7)) else { panic!("answered: back to normal") };
    }

    #[test]
    fn outcomes() {
        let net = Error::new(ErrorKind::Network, "refused");
        let mut busy = Error::new(ErrorKind::Api, "503");
        busy.retryable = true;
        busy.retry_after = Some(s(7));
        let refused = Error::new(ErrorKind::Api, "403");
        let disk = Error::new(ErrorKind::Storage, "full");
        assert_eq!(Outcome::of(0, Some(&net)), Outcome::Unreachable(None));
        assert_eq!(Outcome::of(0, Some(&busy)), Outcome::Unreachable(Some(s(7))));
        assert_eq!(Outcome::of(3, Some(&net)), Outcome::Answered, "some items got through");
        assert_eq!(Outcome::of(0, Some(&refused)), Outcome::Answered);
        assert_eq!(Outcome::of(0, Some(&disk)), Outcome::Nothing);
        assert_eq!(Outcome::of(0, None), Outcome::Nothing);
        assert_eq!(Outcome::of(2, None), Outcome::Answered);
    }
}
