//! The OAuth access token: fetched on demand, cached, renewed once `renew_after` has passed (measured on the
//! monotonic clock from its arrival), dropped on a 401. One fetch in flight per client: other threads wait
//! for it on a condition variable, so no lock is held across network I/O or a log callback.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::Secret;
use crate::error::{Error, ErrorKind, Result};
use crate::time;
use crate::transport::AuthHeader;

/// A token as the server granted it.
#[derive(Debug)]
pub(crate) struct Grant {
    pub access_token: Secret,
    pub renew_after: Option<Duration>,
    pub expires_in: Option<Duration>,
}

impl Grant {
    /// Reads a token answer. `renew_after` may be seconds or an RFC 3339 time; either lifetime may be missing.
    pub(crate) fn parse(v: &Value, now_unix_ms: i64) -> Result<Grant> {
        let access_token = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b)))
            .ok_or_else(|| Error::protocol("token answer has no usable access_token"))?;
        let secs = |key: &str| -> Option<Duration> {
            match v.get(key)? {
                Value::Number(n) => {
                    n.as_f64().filter(|s| *s >= 0.0 && s.is_finite()).map(|s| Duration::from_secs_f64(s.min(1e9)))
                }
                Value::String(s) => match s.parse::<u64>() {
                    Ok(n) => Some(Duration::from_secs(n)),
                    // A time already past (a device clock ahead of the server's) says nothing usable: fall back
                    // to expires_in rather than renew on every call.
                    Err(_) => time::parse_rfc3339_any_ms(s)
                        .ok()
                        .and_then(|at| u64::try_from(at.saturating_sub(now_unix_ms)).ok().filter(|ms| *ms > 0))
                        .map(Duration::from_millis),
                },
                _ => None,
            }
        };
        Ok(Grant {
            access_token: Secret::new(access_token),
            renew_after: secs("renew_after"),
            expires_in: secs("expires_in"),
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    /// The `Authorization` header value, `Bearer <access_token>`.
    pub header: AuthHeader,
    /// Distinguishes tokens, so that many threads seeing a 401 for one token drop it only once.
    pub generation: u64,
    renew_at: Option<Instant>,
}

impl Token {
    fn due(&self, now: Instant) -> bool {
        self.renew_at.is_some_and(|at| now >= at)
    }
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    fetching: bool,
    generation: u64,
}

#[derive(Default)]
pub(crate) struct TokenCache {
    state: Mutex<State>,
    changed: Condvar,
}

/// Clears `fetching` even when the fetch panics, so waiters never hang.
struct FetchGuard<'a>(&'a TokenCache);

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock_state();
        st.fetching = false;
        drop(st);
        self.0.changed.notify_all();
    }
}

impl TokenCache {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under every panic (plain field writes), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A token that is not due for renewal, fetching one with `fetch` when needed. Waits for another
    /// thread's fetch instead of starting a second one; gives up at `deadline`.
    pub(crate) fn get(&self, deadline: Instant, fetch: impl FnOnce() -> Result<Grant>) -> Result<Token> {
        let mut st = self.lock_state();
        loop {
            let now = Instant::now();
            if let Some(t) = &st.token {
                if !t.due(now) {
                    return Ok(t.clone());
                }
            }
            if !st.fetching {
                break;
            }
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                return Err(Error::new(ErrorKind::Timeout, "timed out waiting for another thread's token request"));
            }
            st = self.changed.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        // Due or missing: a renewal that fails leaves no token, so the next call authenticates again.
        st.token = None;
        st.fetching = true;
        drop(st);
        let guard = FetchGuard(self);
        let arrived = Instant::now();
        let result = fetch();
        let mut st = self.lock_state();
        let out = result.and_then(|grant| {
            let header = AuthHeader::new(&Secret::new(format!("Bearer {}", grant.access_token.expose())))?;
            st.generation += 1;
            let renew_after = match (grant.renew_after, grant.expires_in) {
                (Some(r), Some(e)) => Some(r.min(e.mul_f64(0.9))),
                (Some(r), None) => Some(r),
                (None, Some(e)) => Some(e.mul_f64(0.8)),
                (None, None) => None,
            };
            let token =
                Token { header, generation: st.generation, renew_at: renew_after.and_then(|d| arrived.checked_add(d)) };
            st.token = Some(token.clone());
            Ok(token)
        });
        drop(st);
        drop(guard);
        out
    }

    /// Drops the token after the server refused it (401), unless another thread already replaced it.
    pub(crate) fn invalidate(&self, generation: u64) {
        let mut st = self.lock_state();
        if st.token.as_ref().is_some_and(|t| t.generation == generation) {
            st.token = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    fn grant(renew: Option<u64>) -> Grant {
        Grant { access_token: Secret::new("t"), renew_after: renew.map(Duration::from_millis), expires_in: None }
    }

    #[test]
    fn parses_token_answers() {
        let g = Grant::parse(&json!({"access_token":"abc","expires_in":3600,"renew_after":3000}), 0).unwrap();
        assert_eq!((g.renew_after, g.expires_in), (Some(Duration::from_secs(3000)), Some(Duration::from_secs(3600))));
        let g = Grant::parse(&json!({"access_token":"abc","renew_after":"1970-01-01T00:00:10Z"}), 4_000).unwrap();
        assert_eq!(g.renew_after, Some(Duration::from_secs(6)));
        let g =
            Grant::parse(&json!({"access_token":"abc","renew_after":"1970-01-01T00:00:01Z","expires_in":100}), 4_000)
                .unwrap();
        assert_eq!((g.renew_after, g.expires_in), (None, Some(Duration::from_secs(100))), "a past time is ignored");
        let g = Grant::parse(&json!({"access_token":"abc"}), 0).unwrap();
        assert_eq!((g.renew_after, g.expires_in), (None, None));
        assert!(Grant::parse(&json!({"token":"abc"}), 0).is_err());
        assert!(Grant::parse(&json!({"access_token":"a b"}), 0).is_err());
        assert!(!format!("{:?}", Grant::parse(&json!({"access_token":"sekrit"}), 0).unwrap()).contains("sekrit"));
    }

    #[test]
    fn caches_renews_and_invalidates() {
        let cache = TokenCache::default();
        let far = Instant::now() + Duration::from_secs(5);
        let t1 = cache.get(far, || Ok(grant(Some(60_000)))).unwrap();
        let t2 = cache.get(far, || panic!("must be cached")).unwrap();
        assert_eq!(t1.generation, t2.generation);
        cache.invalidate(t1.generation);
        let t3 = cache.get(far, || Ok(grant(Some(0)))).unwrap();
        assert_ne!(t3.generation, t1.generation);
        // renew_after 0: due at once, so the next call fetches again.
        let t4 = cache.get(far, || Ok(grant(None))).unwrap();
        assert_ne!(t4.generation, t3.generation);
        cache.invalidate(t3.generation); // stale generation: no effect
        assert_eq!(cache.get(far, || panic!("cached")).unwrap().generation, t4.generation);
        // A failed renewal leaves nothing behind.
        cache.invalidate(t4.generation);
        assert!(cache.get(far, || Err(Error::protocol("x"))).is_err());
        assert!(cache.lock_state().token.is_none());
    }

    #[test]
    fn one_fetch_in_flight() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, fetches) = (cache.clone(), fetches.clone());
                std::thread::spawn(move || {
                    cache
                        .get(Instant::now() + Duration::from_secs(5), || {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            Ok(grant(Some(60_000)))
                        })
                        .unwrap()
                        .generation
                })
            })
            .collect();
        let gens: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(gens.iter().all(|g| *g == gens[0]));
    }
}
