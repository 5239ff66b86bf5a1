//! The OAuth access token: fetched on demand, cached, renewed once `renew_after` has passed (measured on the
//! monotonic clock from its arrival), dropped on a 401. One fetch in flight per client: other threads wait
//! for it on a condition variable, each within its own deadline, so no lock is held across network I/O or a
//! log callback; its failure is theirs, and after one that ran out of time the next is made by a caller with
//! time for it, so a token endpoint that answers slowly gets about one request per timeout window.
//! Also what the client knows to be secret (the client secret, its Basic value, the tokens it was granted),
//! to redact from anything a server says.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use zeroize::Zeroize;

use crate::codes::{self, Class};
use crate::config::Secret;
use crate::error::{is_control_text, strip_control, Error, ErrorKind, Result};
use crate::log::{log, Level, Logger};
use crate::time;
use crate::transport::{Answer, AuthHeader, Body, Method, Transport};

/// What replaces a secret in a text.
pub(crate) const REDACTED: &str = "<redacted>";

/// The tokens remembered for redaction: a server may echo a token it has just refused or replaced.
const REMEMBERED_TOKENS: usize = 4;

/// The secrets one client holds; every text a server sent is passed through [`KnownSecrets::clean`].
#[derive(Default)]
pub(crate) struct KnownSecrets {
    /// The client secret and the base64 Basic credentials.
    fixed: Vec<Secret>,
    /// The most recent access tokens, newest last.
    tokens: Mutex<VecDeque<Secret>>,
}

impl KnownSecrets {
    pub(crate) fn new(fixed: Vec<Secret>) -> KnownSecrets {
        KnownSecrets { fixed: fixed.into_iter().filter(|s| !s.expose().is_empty()).collect(), ..Default::default() }
    }

    fn remember_token(&self, token: &Secret) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= REMEMBERED_TOKENS {
            tokens.pop_front();
        }
        tokens.push_back(token.clone());
    }

    fn each(&self, mut f: impl FnMut(&str)) {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        for secret in self.fixed.iter().chain(tokens.iter()) {
            if !secret.expose().is_empty() {
                f(secret.expose());
            }
        }
    }

    fn redact(&self, text: &mut String) {
        self.each(|s| {
            if text.contains(s) {
                let redacted = text.replace(s, REDACTED);
                text.zeroize();
                *text = redacted;
            }
        });
    }

    fn holds_secret(&self, text: &str) -> bool {
        let mut found = false;
        self.each(|s| found |= text.contains(s));
        found
    }

    /// A text a server sent, safe to show: every known secret redacted, each run of control characters one
    /// space. A secret with control characters inserted into it is redacted too (the text then loses them
    /// without a space).
    pub(crate) fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        self.redact(&mut out);
        if !out.chars().any(is_control_text) {
            return out;
        }
        let mut removed: String = out.chars().filter(|c| !is_control_text(*c)).collect();
        if self.holds_secret(&removed) {
            out.zeroize();
            self.redact(&mut removed);
            return removed;
        }
        removed.zeroize();
        let spaced = strip_control(&out).into_owned();
        out.zeroize();
        spaced
    }

    /// An error with every server-provided text cleaned.
    pub(crate) fn clean_error(&self, mut e: Error) -> Error {
        e.map_server_text(&|t| self.clean(t));
        e
    }
}

/// A logger whose every line is cleaned by `secrets` (a log line may quote what a server said).
pub(crate) fn guarded_logger(logger: &Logger, secrets: Arc<KnownSecrets>) -> Logger {
    logger.filtered(move |line| secrets.clean(line))
}

/// Where tokens are issued (contract section 2).
pub(crate) const TOKEN_PATH: &str = "/oauth/token";

/// application/x-www-form-urlencoded value encoding.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One token request (contract section 2): client credentials, the client authenticated with HTTP Basic,
/// `scope` when one is configured. A refusal is an `Auth` error (a 5xx or 429 an `Api` one, retryable); an
/// answer that is neither OAuth's nor Realer's refused nothing of the client's: a `Network` error, not retried.
pub(crate) fn request_token(
    transport: &Transport,
    basic: &AuthHeader,
    scope: Option<&str>,
    logger: &Option<Logger>,
    deadline: Instant,
) -> Result<Grant> {
    let mut form = String::from("grant_type=client_credentials");
    if let Some(scope) = scope {
        form.push_str("&scope=");
        form.push_str(&form_encode(scope));
    }
    let answer = transport.send(Method::Post, TOKEN_PATH, basic, Body::Form(&form), deadline)?;
    if answer.status == 200 {
        let grant = Grant::from_answer(&answer, time::now_unix_ms())?;
        log!(
            logger,
            Level::Info,
            "access token issued (renew after {}, expires in {})",
            seconds_or_unknown(grant.renew_after),
            seconds_or_unknown(grant.expires_in)
        );
        return Ok(grant);
    }
    let retryable = codes::classify(answer.status, None) == Class::Retry;
    let kind = match (retryable, codes::is_authorization_refusal(&answer)) {
        (true, _) => ErrorKind::Api,
        (false, true) => ErrorKind::Auth,
        // A page of the path's own (a firewall's, a gateway's) judged no credentials (contract section 6): the
        // request was refused, as by a proxy, and `Auth` would tell the firmware its credentials are wrong.
        (false, false) => ErrorKind::Network,
    };
    let mut err = codes::error_from_answer(&answer, kind);
    err.message = format!("token request refused: {}", err.message);
    if kind == ErrorKind::Network {
        err.message.push_str(
            " (not Realer's answer: neither OAuth's JSON error nor Realer's; a proxy, gateway or firewall?): it \
             judged no credentials",
        );
    }
    Err(err)
}

/// A token as the server granted it.
#[derive(Debug)]
pub(crate) struct Grant {
    pub access_token: Secret,
    pub renew_after: Option<Duration>,
    pub expires_in: Option<Duration>,
    /// The scopes granted, as the answer's `scope` lists them.
    pub scope: Option<String>,
}

/// What the token endpoint said about the client's current access token; never the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// The scopes granted (space separated), when the answer said.
    pub scope: Option<String>,
    /// How long the token is valid from its arrival, when the answer said.
    pub expires_in: Option<Duration>,
    /// When the client gets a new one, from the token's arrival (Realer's `renew_after`), when the answer said.
    pub renew_after: Option<Duration>,
    /// Since the token arrived.
    pub age: Duration,
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
            scope: v.get("scope").and_then(Value::as_str).map(|s| s.chars().filter(|c| !c.is_control()).collect()),
        })
    }

    /// Reads a token answer (HTTP 200), then wipes the copy of the token its JSON tree holds (the answer's
    /// body is wiped when the answer is dropped).
    pub(crate) fn from_answer(answer: &Answer, now_unix_ms: i64) -> Result<Grant> {
        let mut json = crate::codes::json_body(answer).ok_or_else(|| Error::protocol("token answer is not JSON"))?;
        let grant = Grant::parse(&json, now_unix_ms);
        if let Some(Value::String(token)) = json.get_mut("access_token") {
            token.zeroize();
        }
        grant
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    /// The `Authorization` header value, `Bearer <access_token>`.
    pub header: AuthHeader,
    /// Distinguishes tokens, so that many threads seeing a 401 for one token drop it only once.
    pub generation: u64,
    /// When it arrived.
    pub arrived: Instant,
    renew_at: Option<Instant>,
    /// Set once a request with it was answered with anything but a 401 (shared by every copy): a 401 after
    /// that is an expiry, not a refusal of the credentials (contract section 6).
    answered: Arc<AtomicBool>,
}

impl Token {
    fn due(&self, now: Instant) -> bool {
        self.renew_at.is_some_and(|at| now >= at)
    }

    /// Notes that a request with this token was answered with something other than a 401.
    pub(crate) fn mark_answered(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    /// Whether a request with this token was ever answered with something other than a 401.
    pub(crate) fn was_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }
}

/// How the last token request failed.
struct Failure {
    /// Which request (`State::fetch_seq`).
    seq: u64,
    error: Error,
    /// How long it ran, when it failed because its caller's time ran out: its waiters do not take that
    /// failure as theirs, and the next request is left to a caller with at least half that time.
    ran_out_after: Option<Duration>,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// What was said about `token`, and when it arrived.
    info: Option<(TokenInfo, Instant)>,
    fetching: bool,
    generation: u64,
    /// Counts token requests; the one in flight (or the last) is this one.
    fetch_seq: u64,
    failure: Option<Failure>,
    /// The deadlines of the callers waiting on the condition variable.
    waiting: Vec<Instant>,
}

/// A token request whose error is a timeout this close to its caller's deadline ran out of that caller's time.
const RAN_OUT_SLACK: Duration = Duration::from_millis(50);

#[derive(Default)]
pub(crate) struct TokenCache {
    state: Mutex<State>,
    changed: Condvar,
    /// Learns every token granted.
    secrets: Arc<KnownSecrets>,
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
    pub(crate) fn new(secrets: Arc<KnownSecrets>) -> TokenCache {
        TokenCache { secrets, ..Default::default() }
    }

    /// The client's secrets, the tokens this cache was granted among them.
    pub(crate) fn secrets(&self) -> &KnownSecrets {
        &self.secrets
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under every panic (plain field writes), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A token that is not due for renewal, fetching one with `fetch` when needed. Waits for another thread's
    /// fetch instead of starting a second one, until `deadline`; when that fetch fails, its error is this
    /// call's too, unless it failed because its own caller's time ran out: then the waiter with the latest
    /// deadline makes the next request, if it has at least half the time the failed one had (the others wait
    /// on it, each within its own deadline).
    pub(crate) fn get(&self, deadline: Instant, fetch: impl FnOnce() -> Result<Grant>) -> Result<Token> {
        let mut st = self.lock_state();
        let mut waited_on: Option<u64> = None;
        loop {
            let now = Instant::now();
            if let Some(t) = &st.token {
                if !t.due(now) {
                    return Ok(t.clone());
                }
            }
            if let Some(seq) = waited_on.take() {
                if st.fetching && st.fetch_seq == seq {
                    waited_on = Some(seq);
                } else if let Some(f) = st.failure.as_ref().filter(|f| f.seq == seq && f.ran_out_after.is_none()) {
                    return Err(f.error.clone());
                }
            }
            if st.fetching {
                waited_on = Some(st.fetch_seq);
            } else {
                let latest = st.waiting.iter().all(|d| *d <= deadline);
                let time_enough = st
                    .failure
                    .as_ref()
                    .and_then(|f| f.ran_out_after)
                    .is_none_or(|ran| deadline.saturating_duration_since(now) >= ran / 2);
                if latest && time_enough {
                    break;
                }
            }
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                drop(st);
                // Leaving may make another waiter the latest: it decides again.
                self.changed.notify_all();
                return Err(Error::new(ErrorKind::Timeout, "timed out waiting for the token request in flight"));
            }
            st.waiting.push(deadline);
            st = self.changed.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
            if let Some(i) = st.waiting.iter().position(|d| *d == deadline) {
                st.waiting.swap_remove(i);
            }
        }
        // Due or missing: a renewal that fails leaves no token, so the next call authenticates again.
        st.token = None;
        st.fetching = true;
        st.fetch_seq += 1;
        let seq = st.fetch_seq;
        drop(st);
        let guard = FetchGuard(self);
        let arrived = Instant::now();
        let result = fetch();
        let mut st = self.lock_state();
        let out = result.and_then(|grant| {
            self.secrets.remember_token(&grant.access_token);
            let header = AuthHeader::with_scheme("Bearer ", &grant.access_token)?;
            st.generation += 1;
            let renew_after = match (grant.renew_after, grant.expires_in) {
                (Some(r), Some(e)) => Some(r.min(e.mul_f64(0.9))),
                (Some(r), None) => Some(r),
                (None, Some(e)) => Some(e.mul_f64(0.8)),
                (None, None) => None,
            };
            let token = Token {
                header,
                generation: st.generation,
                arrived: Instant::now(),
                renew_at: renew_after.and_then(|d| arrived.checked_add(d)),
                answered: Arc::default(),
            };
            st.token = Some(token.clone());
            let info = TokenInfo {
                scope: grant.scope.clone(),
                expires_in: grant.expires_in,
                renew_after: grant.renew_after,
                age: Duration::ZERO,
            };
            st.info = Some((info, arrived));
            Ok(token)
        });
        st.failure = out.as_ref().err().map(|e| {
            let ran_out = e.kind == ErrorKind::Timeout && Instant::now() + RAN_OUT_SLACK >= deadline;
            Failure { seq, error: e.clone(), ran_out_after: ran_out.then(|| arrived.elapsed()) }
        });
        drop(st);
        drop(guard);
        out
    }

    /// What was said about the current token, if there is one.
    pub(crate) fn info(&self) -> Option<TokenInfo> {
        let st = self.lock_state();
        st.token.as_ref()?;
        st.info.as_ref().map(|(info, arrived)| TokenInfo { age: arrived.elapsed(), ..info.clone() })
    }

    /// Drops the token after the server refused it (401), unless another thread already replaced it.
    pub(crate) fn invalidate(&self, generation: u64) {
        let mut st = self.lock_state();
        if st.token.as_ref().is_some_and(|t| t.generation == generation) {
            st.token = None;
        }
    }
}

/// A lifetime for a log line: "3000 s", or "not given" (never Rust's `Some(3000s)`).
fn seconds_or_unknown(lifetime: Option<std::time::Duration>) -> String {
    lifetime.map_or_else(|| "not given".to_string(), |d| format!("{} s", d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    fn grant(renew: Option<u64>) -> Grant {
        Grant {
            access_token: Secret::new("t"),
            renew_after: renew.map(Duration::from_millis),
            expires_in: None,
            scope: None,
        }
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("iot:catalog:read iot:feed-data:write"), "iot%3Acatalog%3Aread+iot%3Afeed-data%3Awrite");
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
    fn known_secrets_are_redacted_from_server_text() {
        let secrets = KnownSecrets::new(vec![Secret::new("s3cret"), Secret::new("QmFzaWM="), Secret::new("")]);
        secrets.remember_token(&Secret::new("tok-1"));
        assert_eq!(
            secrets.clean("Basic QmFzaWM= and s3cret, Bearer tok-1"),
            "Basic <redacted> and <redacted>, Bearer <redacted>"
        );
        assert_eq!(secrets.clean("s3c\u{1b}ret"), "<redacted>", "a control character inside is no way around");
        assert_eq!(secrets.clean("a s3\u{200e}cret\r\n"), "a <redacted>");
        assert_eq!(secrets.clean("line\r\nX-Forged: 1\u{1b}[2J"), "line X-Forged: 1 [2J");
        assert_eq!(secrets.clean("nothing here"), "nothing here");
        for i in 2..=5 {
            secrets.remember_token(&Secret::new(format!("tok-{i}")));
        }
        assert_eq!(secrets.clean("tok-2 tok-5"), "<redacted> <redacted>");
        let mut e = Error::new(ErrorKind::Api, "echo s3cret");
        e.details = Some(json!({"s3cret": ["tok-5"]}));
        let e = secrets.clean_error(e);
        assert_eq!(
            (e.message.as_str(), e.details_json()),
            ("echo <redacted>", r#"{"<redacted>":["<redacted>"]}"#.into())
        );
    }

    #[test]
    fn the_token_cache_learns_each_token_for_redaction() {
        let cache = TokenCache::new(Arc::new(KnownSecrets::new(vec![])));
        let far = Instant::now() + Duration::from_secs(5);
        cache
            .get(far, || {
                Ok(Grant { access_token: Secret::new("tok-xyz"), renew_after: None, expires_in: None, scope: None })
            })
            .unwrap();
        assert_eq!(cache.secrets().clean("got tok-xyz"), "got <redacted>");
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
