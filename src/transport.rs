//! One HTTPS exchange with the API: builds the ureq agent the way an embedded client needs it (no proxy from
//! the environment, no redirects, statuses as values, bounded bodies) and turns ureq's errors into ours.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use ureq::http::{self, Uri};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::time::Duration as UreqDuration;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport as UreqTransport,
};
use ureq::AsSendBody;
use zeroize::Zeroize;

use crate::cancel::{cancelled, Cancel};
use crate::config::{Config, Secret, Trust};
use crate::error::{Error, ErrorKind, Result};
use crate::log::{Level, Logger};
use crate::time;

/// The largest answer body read; a catalog of a few thousand items fits many times over.
const MAX_BODY_BYTES: u64 = crate::limits::MAX_ANSWER_BYTES;
/// How long a looked-up address is reused (curl's default DNS cache time).
const DNS_CACHE_TTL: Duration = Duration::from_secs(60);

/// Host lookups without a thread per request. ureq's default resolver looks the host up before it checks
/// its connection pool, and with a timeout set it starts a thread for every lookup: a thread per request.
/// An IP literal needs no lookup; a name is looked up (by ureq, bounded by the timeout) once a minute.
/// `ureq::unversioned` is not covered by ureq's semver: Cargo.lock pins the version this was written for.
#[derive(Debug, Default)]
struct CachingResolver {
    /// By scheme and authority as written in the URL (a client talks to one host, so this stays short).
    cache: Mutex<Vec<Resolved>>,
    lookup: DefaultResolver,
}

#[derive(Debug)]
struct Resolved {
    https: bool,
    authority: String,
    /// When a name was looked up; `None` for an IP literal, which never expires.
    at: Option<Instant>,
    addrs: ResolvedSocketAddrs,
}

/// Hosts whose addresses are kept at once.
const DNS_CACHE_ENTRIES: usize = 8;

impl CachingResolver {
    fn cache(&self) -> std::sync::MutexGuard<'_, Vec<Resolved>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let Some(authority) = uri.authority() else {
            return self.lookup.resolve(uri, config, timeout);
        };
        let https = uri.scheme_str() == Some("https");
        let fresh = |r: &Resolved| r.at.is_none_or(|at| at.elapsed() < DNS_CACHE_TTL);
        if let Some(r) = self.cache().iter().find(|r| r.https == https && r.authority == authority.as_str()) {
            if fresh(r) {
                return Ok(r.addrs.clone());
            }
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = authority.host();
        let (at, addrs) = match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => {
                let mut addrs = self.empty();
                addrs.push(SocketAddr::new(ip, port));
                (None, addrs)
            }
            Err(_) => (Some(Instant::now()), self.lookup.resolve(uri, config, timeout)?),
        };
        let mut cache = self.cache();
        cache.retain(|r| !(r.https == https && r.authority == authority.as_str()) && fresh(r));
        if cache.len() >= DNS_CACHE_ENTRIES {
            cache.remove(0);
        }
        cache.push(Resolved { https, authority: authority.as_str().to_string(), at, addrs: addrs.clone() });
        Ok(addrs)
    }
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A connection with I/O this recent is taken to be open without probing it.
const FRESH: Duration = Duration::from_secs(1);

/// Wraps ureq's TLS transport (or, for a loopback test server, its TCP transport). It sees every byte of
/// plaintext and every connection's end, so it also:
/// - wipes the connection's plaintext buffers (the request heads with their `Authorization` header, the
///   answers with their tokens) and its own copy of a head when the connection is dropped;
/// - refuses to hand a connection made by another process to this one: after `fork()` the child shares the
///   parent's sockets and TLS state, and a record the child sent would break the parent's session (and the
///   child's answer would go to whichever reads first). The child drops such a connection when it comes out
///   of the pool: its copy of the socket is closed, nothing is written (no TLS close_notify, no shutdown),
///   so the parent's connection is untouched;
/// - rounds each read's and write's timeout down to a multiple of [`TIMEOUT_STEP`], so that the socket
///   timeouts stay the same from one request to the next (otherwise every request costs three setsockopt
///   calls: the remaining time differs each time) while a read may still wait until the call's deadline
///   (less at most one step).
///
/// It also saves system calls on kept-alive requests; half of the syscalls of a small request were these:
/// - ureq probes a pooled connection when it returns to the pool and again when it is taken (two ioctls and
///   a read that would block, each time). A connection used within the last second is taken to be open: a
///   connection idle longer is still probed, so a server's idle close is still seen; one that closes faster
///   fails the request, which the client then sends again at once on a new connection (with the same
///   `message_id`), once per call, outside the retry count.
/// - ureq transmits the request head and the body separately: two TLS records and two sendto calls for
///   one small request. The head is held back and goes out with the body, or before the first read.
#[derive(Debug)]
struct FewerSyscalls;

#[derive(Debug)]
struct Lean<T: UreqTransport> {
    inner: T,
    last_io: Instant,
    /// The request head, transmitted to us but not yet to the peer. Wiped, not just cleared: it holds the
    /// `Authorization` header.
    held: Vec<u8>,
    /// The next output is a request head.
    head_next: bool,
    /// The process that made the connection.
    owner: Owner,
}

/// Forks counted by a pthread_atfork child handler, once the C API has installed it (see [`count_fork`]).
static FORKS: AtomicU64 = AtomicU64::new(0);
static FORKS_COUNTED: AtomicBool = AtomicBool::new(false);

/// For the C API's pthread_atfork child handler, which runs in the child before fork() returns there: one
/// atomic add, async-signal-safe as such a handler must be.
pub(crate) fn count_fork() {
    FORKS.fetch_add(1, Ordering::SeqCst);
}

/// Says that [`count_fork`] is installed: connections made from now on tell a fork by the count, without a
/// getpid system call (two per request: a pooled connection is checked when it is taken and when it returns).
pub(crate) fn forks_are_counted() {
    FORKS_COUNTED.store(true, Ordering::SeqCst);
}

/// The process a connection belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// The fork count when the connection was made (the atfork handler was installed before).
    Counted(u64),
    /// Without the handler (a Rust program using the core directly): the process id.
    Pid(u32),
}

impl Owner {
    fn now() -> Owner {
        if FORKS_COUNTED.load(Ordering::SeqCst) {
            Owner::Counted(FORKS.load(Ordering::SeqCst))
        } else {
            Owner::Pid(std::process::id())
        }
    }

    fn is_this_process(self) -> bool {
        match self {
            Owner::Counted(forks) => forks == FORKS.load(Ordering::SeqCst),
            Owner::Pid(pid) => pid == std::process::id(),
        }
    }
}

/// Socket timeouts are whole multiples of this (see [`FewerSyscalls`]).
const TIMEOUT_STEP: Duration = Duration::from_millis(100);

/// `timeout`, rounded down to a whole number of [`TIMEOUT_STEP`]s when it is longer than one step.
fn steady(mut timeout: NextTimeout) -> NextTimeout {
    if let UreqDuration::Exact(after) = timeout.after {
        let steps = after.as_nanos() / TIMEOUT_STEP.as_nanos();
        if steps >= 2 {
            // At most u32::MAX steps: longer than any configured timeout.
            timeout.after = UreqDuration::Exact(TIMEOUT_STEP * u32::try_from(steps).unwrap_or(u32::MAX));
        }
    }
    timeout
}

impl<T: UreqTransport> Lean<T> {
    fn release_held(&mut self, timeout: NextTimeout) -> std::result::Result<(), ureq::Error> {
        if self.held.is_empty() {
            return Ok(());
        }
        let n = self.held.len();
        self.inner.buffers().output()[..n].copy_from_slice(&self.held);
        self.held.zeroize();
        self.inner.transmit_output(n, timeout)
    }
}

impl<T: UreqTransport> Drop for Lean<T> {
    fn drop(&mut self) {
        self.held.zeroize();
        let buffers = self.inner.buffers();
        buffers.output().zeroize();
        // Consumed input is still in the buffer; once everything is consumed, the free part is all of it.
        let unread = buffers.input().len();
        buffers.input_consume(unread);
        buffers.input_append_buf().zeroize();
    }
}

impl<T: UreqTransport> UreqTransport for Lean<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> std::result::Result<(), ureq::Error> {
        let timeout = steady(timeout);
        self.last_io = Instant::now();
        if self.head_next {
            // A request's first output is its head: hold it; its body, or the first read, follows.
            self.head_next = false;
            // Wiped first, so that growing it leaves no earlier head behind.
            self.held.zeroize();
            self.held.extend_from_slice(&self.inner.buffers().output()[..amount]);
            return Ok(());
        }
        if self.held.is_empty() {
            return self.inner.transmit_output(amount, timeout);
        }
        let held = self.held.len();
        let output = self.inner.buffers().output();
        if held + amount <= output.len() {
            // Both in one transmit: move this output up and put the head before it.
            output.copy_within(..amount, held);
            output[..held].copy_from_slice(&self.held);
            self.held.zeroize();
            return self.inner.transmit_output(held + amount, timeout);
        }
        // No room for both: the head goes first, through the same buffer, so keep this output aside.
        let body = output[..amount].to_vec();
        self.release_held(timeout)?;
        self.inner.buffers().output()[..amount].copy_from_slice(&body);
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        let timeout = steady(timeout);
        self.release_held(timeout)?;
        let r = self.inner.await_input(timeout);
        self.last_io = Instant::now();
        // Whatever is transmitted after a read starts the next request.
        self.head_next = true;
        r
    }

    fn is_open(&mut self) -> bool {
        self.owner.is_this_process() && self.held.is_empty() && (self.last_io.elapsed() < FRESH || self.inner.is_open())
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

impl<In: UreqTransport> Connector<In> for FewerSyscalls {
    type Out = Lean<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Lean {
            inner,
            last_io: Instant::now(),
            held: Vec::new(),
            head_next: true,
            owner: Owner::now(),
        }))
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Method {
    Get,
    Post,
}

pub(crate) enum Body<'a> {
    Empty,
    Form(&'a str),
    Json(&'a [u8]),
}

/// An answer with any HTTP status; the body is read to the end so the connection can be reused.
/// The body is wiped when the answer is dropped: it may hold a token (the token answer, or a server that
/// echoes what it was sent).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub request_id: Option<String>,
    pub is_json: bool,
    pub body: Vec<u8>,
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.body.zeroize();
    }
}

/// The bytes of an `Authorization` header value; wiped when the last request that used them is done.
struct WipedOnDrop(Vec<u8>);

impl AsRef<[u8]> for WipedOnDrop {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for WipedOnDrop {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// An `Authorization` header value, made once per token (validated and copied once, not per request). Its
/// bytes are shared by every request that carries it (a `HeaderValue` clone shares, it does not copy) and
/// wiped when the last one is dropped.
#[derive(Clone)]
pub(crate) struct AuthHeader(HeaderValue);

impl AuthHeader {
    /// `scheme` followed by `credentials`, such as "Bearer " and the token.
    pub(crate) fn with_scheme(scheme: &str, credentials: &Secret) -> Result<AuthHeader> {
        let mut bytes = Vec::with_capacity(scheme.len() + credentials.expose().len());
        bytes.extend_from_slice(scheme.as_bytes());
        bytes.extend_from_slice(credentials.expose().as_bytes());
        // A Bytes made from its owner is used as it is: http does not copy it into a buffer of its own.
        let mut v = HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(WipedOnDrop(bytes)))
            .map_err(|_| Error::protocol("the credentials or token hold characters an HTTP header cannot carry"))?;
        v.set_sensitive(true);
        Ok(AuthHeader(v))
    }
}

impl std::fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

pub(crate) struct Transport {
    /// Replaced by a fresh one when the client is cancelled: the old one is shut down, which ends every
    /// request in flight on it at once (a blocked read or write returns; a connect in progress is bounded
    /// by the connect timeout).
    agent: Mutex<ureq::Agent>,
    /// What a fresh agent is made of.
    agent_config: ureq::config::Config,
    cancel: Cancel,
    /// For one debug line per exchange (method, path, status or error, time taken).
    logger: Option<Logger>,
    base_url: String,
    request_timeout: Duration,
    connect_timeout: Duration,
    /// Set on each request, so that ureq does not make them anew from its configuration every time.
    user_agent: HeaderValue,
    /// Parsed URLs of the paths requested again and again (the token, feed-data and batch paths); others,
    /// such as one command's catalog entry, are parsed when requested.
    uris: Vec<(String, Uri)>,
}

/// A request whose deadline is this close to the whole request timeout runs on the agent's own timeouts
/// (`timeout_global` is the request timeout): a per-request configuration costs a copy of the agent's
/// configuration. Retries, later in the call, carry the time that is left.
const TIMEOUT_SLACK: Duration = Duration::from_millis(20);

impl Transport {
    /// `hot_paths` are parsed once, here.
    pub(crate) fn new(config: &Config, hot_paths: &[&str]) -> Transport {
        let roots = match &config.trust {
            Trust::MozillaRoots => RootCerts::WebPki,
            Trust::Certificates(certs) => RootCerts::new_with_certs(
                &certs.iter().map(|c| Certificate::from_der(c).to_owned()).collect::<Vec<_>>(),
            ),
        };
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .https_only(!config.base_url.starts_with("http://"))
            // ureq reads HTTPS_PROXY and friends by default; a device talks to Realer directly.
            .proxy(None)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .max_idle_connections(8)
            .max_idle_connections_per_host(8)
            .timeout_global(Some(config.request_timeout))
            .timeout_connect(Some(config.connect_timeout))
            // No per-read or per-write timeout: one read may wait for what is left of the call's deadline
            // (a server that takes 2 s of a 3 s request timeout is answered). FewerSyscalls keeps the socket
            // timeouts steady between requests.
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build();
        Transport {
            agent: Mutex::new(make_agent(&agent_config)),
            agent_config,
            cancel: Cancel::default(),
            logger: config.logger.clone(),
            base_url: config.base_url.clone(),
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
            // set_user_agent admits printable ASCII only, which a header value always takes.
            user_agent: HeaderValue::from_str(&config.user_agent).unwrap_or(HeaderValue::from_static("librealer")),
            // A path that does not parse is left out: requesting it reports the error.
            uris: hot_paths
                .iter()
                .filter_map(|p| Some((p.to_string(), parse_uri(&config.base_url, p).ok()?)))
                .collect(),
        }
    }

    /// Cancels every request in flight and refuses new ones until [`Transport::resume`]: sets the flag,
    /// then shuts the agent down (a request that took the agent before the flag was set is on that agent).
    pub(crate) fn cancel(&self) {
        self.cancel.set();
        let fresh = make_agent(&self.agent_config);
        let old = std::mem::replace(&mut *self.lock_agent(), fresh);
        old.shutdown();
    }

    pub(crate) fn resume(&self) {
        self.cancel.clear();
    }

    /// The flag, for the waits of the calls (backoff) to end early.
    pub(crate) fn cancel_state(&self) -> &Cancel {
        &self.cancel
    }

    fn lock_agent(&self) -> std::sync::MutexGuard<'_, ureq::Agent> {
        self.agent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn uri(&self, path: &str) -> Result<Uri> {
        match self.uris.iter().find(|(p, _)| p == path) {
            Some((_, uri)) => Ok(uri.clone()),
            None => parse_uri(&self.base_url, path),
        }
    }

    /// Sends one request; the whole exchange must end by `deadline`. With a debug logger, one line says how
    /// it went.
    pub(crate) fn send(
        &self,
        method: Method,
        path: &str,
        authorization: &AuthHeader,
        body: Body<'_>,
        deadline: Instant,
    ) -> Result<Answer> {
        let Some(logger) = self.logger.as_ref().filter(|l| l.enabled(Level::Debug)) else {
            return self.exchange(method, path, authorization, body, deadline);
        };
        let name = match method {
            Method::Get => "GET",
            Method::Post => "POST",
        };
        let started = Instant::now();
        let r = self.exchange(method, path, authorization, body, deadline);
        let ms = started.elapsed().as_millis();
        match &r {
            Ok(a) => logger.log(Level::Debug, format_args!("{name} {path} -> HTTP {} in {ms} ms", a.status)),
            Err(e) => logger.log(Level::Debug, format_args!("{name} {path} failed after {ms} ms: {e}")),
        }
        r
    }

    fn exchange(
        &self,
        method: Method,
        path: &str,
        authorization: &AuthHeader,
        body: Body<'_>,
        deadline: Instant,
    ) -> Result<Answer> {
        // The agent first, then the flag: a cancel after this check shuts this agent down.
        let agent = self.lock_agent().clone();
        self.cancel.check()?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::new(ErrorKind::Timeout, "the request timeout ran out before the request was sent"));
        }
        let uri = self.uri(path)?;
        let result = match (method, body) {
            (Method::Get, _) => self.run(&agent, http::Method::GET, uri, authorization, None, (), remaining),
            (Method::Post, body) => {
                let (content_type, bytes): (&'static str, &[u8]) = match body {
                    Body::Empty => ("application/json", b""),
                    Body::Form(f) => ("application/x-www-form-urlencoded", f.as_bytes()),
                    Body::Json(j) => ("application/json", j),
                };
                self.run(&agent, http::Method::POST, uri, authorization, Some(content_type), bytes, remaining)
            }
        };
        let failed = |e: ureq::Error| if self.cancel.is_set() { cancelled() } else { map_ureq_error(e) };
        let (parts, mut body) = result.map_err(failed)?.into_parts();
        let header = |name: &HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let retry_after = header(&RETRY_AFTER).and_then(|v| parse_retry_after(v, time::now_unix_ms()));
        let request_id = header(&X_REQUEST_ID).map(str::to_string);
        let is_json = header(&CONTENT_TYPE).is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
        // Sized once from Content-Length (bounded by the answer limit: the length is the server's word, and the
        // pages an overstated length leaves untouched are never resident), so a large answer is not copied
        // through doublings; without it, grown as it comes.
        let expected = body.content_length().unwrap_or(0).min(MAX_BODY_BYTES + 1) as usize;
        let mut bytes = Vec::with_capacity(expected);
        body.as_reader().take(MAX_BODY_BYTES + 1).read_to_end(&mut bytes).map_err(|e| failed(ureq::Error::from(e)))?;
        if bytes.len() as u64 > MAX_BODY_BYTES {
            return Err(Error::protocol(format!("the answer body is larger than {MAX_BODY_BYTES} bytes")));
        }
        Ok(Answer { status: parts.status.as_u16(), retry_after, request_id, is_json, body: bytes })
    }

    #[allow(clippy::too_many_arguments)]
    fn run<S: AsSendBody>(
        &self,
        agent: &ureq::Agent,
        method: http::Method,
        uri: Uri,
        authorization: &AuthHeader,
        content_type: Option<&'static str>,
        body: S,
        remaining: Duration,
    ) -> std::result::Result<http::Response<ureq::Body>, ureq::Error> {
        let mut request = http::Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, authorization.0.clone());
        headers.insert(USER_AGENT, self.user_agent.clone());
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        if remaining + TIMEOUT_SLACK >= self.request_timeout {
            return agent.run(request);
        }
        let request = agent
            .configure_request(request)
            .timeout_global(Some(remaining))
            .timeout_connect(Some(self.connect_timeout.min(remaining)))
            .build();
        agent.run(request)
    }
}

fn make_agent(config: &ureq::config::Config) -> ureq::Agent {
    ureq::Agent::with_parts(config.clone(), DefaultConnector::new().chain(FewerSyscalls), CachingResolver::default())
}

fn parse_uri(base_url: &str, path: &str) -> Result<Uri> {
    Uri::try_from(format!("{base_url}{path}"))
        .map_err(|e| Error::config(format!("the URL of {path} is not valid: {e}")))
}

/// The longest `Retry-After` taken as it is; a longer one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// `Retry-After` in seconds (the contract's form) or as an HTTP date (RFC 9110: IMF-fixdate, or the obsolete
/// RFC 850 and asctime forms), measured from `now_unix_ms` on the wall clock. A date already past is 0;
/// anything beyond a day is a day.
fn parse_retry_after(v: &str, now_unix_ms: i64) -> Option<Duration> {
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = time::parse_http_date_ms(v)?;
    let ms = u64::try_from(at.saturating_sub(now_unix_ms)).unwrap_or(0);
    Some(Duration::from_millis(ms).min(MAX_RETRY_AFTER))
}

fn rustls_error(e: &rustls::Error) -> Error {
    use rustls::CertificateError as C;
    let kind = match e {
        rustls::Error::InvalidCertificate(
            C::Expired | C::NotValidYet | C::ExpiredContext { .. } | C::NotValidYetContext { .. },
        ) => ErrorKind::TlsCertTime,
        _ => ErrorKind::Tls,
    };
    let mut err = Error::new(kind, format!("TLS: {e}"));
    if kind == ErrorKind::TlsCertTime {
        err.message.push_str(" (check the device clock)");
    }
    err.retryable = false;
    err
}

fn io_error(e: &std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    if let Some(inner) = e.get_ref() {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return rustls_error(tls);
        }
    }
    match e.kind() {
        K::TimedOut | K::WouldBlock => Error::new(ErrorKind::Timeout, format!("timed out: {e}")),
        _ => Error::new(ErrorKind::Network, format!("network: {e}")),
    }
}

pub(crate) fn map_ureq_error(e: ureq::Error) -> Error {
    use ureq::Error as U;
    match &e {
        U::Timeout(t) => Error::new(ErrorKind::Timeout, format!("timed out ({t})")),
        U::Io(io) => io_error(io),
        U::Rustls(r) => rustls_error(r),
        U::Tls(_) | U::Pem(_) => {
            let mut err = Error::new(ErrorKind::Tls, format!("TLS: {e}"));
            err.retryable = false;
            err
        }
        U::HostNotFound => Error::new(ErrorKind::Network, "host not found (DNS)"),
        U::ConnectionFailed => Error::new(ErrorKind::Network, "connection failed"),
        U::BadUri(_) | U::RequireHttpsOnly(_) | U::InvalidProxyUrl => Error::config(e.to_string()),
        _ => Error::protocol(format!("HTTP: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auth_header_is_checked_once_and_never_printed() {
        let h = AuthHeader::with_scheme("Bearer ", &Secret::new("tok-123")).unwrap();
        assert_eq!(h.0.to_str().unwrap(), "Bearer tok-123");
        assert!(h.0.is_sensitive());
        assert_eq!(format!("{h:?}"), "<redacted>");
        let err = AuthHeader::with_scheme("Bearer ", &Secret::new("tok\r\nX-Evil: 1")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Protocol);
        assert!(!err.message.contains("X-Evil"), "{}", err.message);
    }

    #[test]
    fn a_connection_belongs_to_the_process_that_made_it() {
        let pid_owned = Owner::Pid(std::process::id());
        assert!(pid_owned.is_this_process());
        assert!(!Owner::Pid(std::process::id() + 1).is_this_process());
        // No connection is made in these unit tests: counting forks here disturbs nothing.
        forks_are_counted();
        let counted = Owner::now();
        assert!(matches!(counted, Owner::Counted(_)) && counted.is_this_process());
        count_fork();
        assert!(!counted.is_this_process(), "made before the (simulated) fork");
        assert!(Owner::now().is_this_process());
        assert!(pid_owned.is_this_process(), "a connection made before counting began still checks its pid");
    }

    #[test]
    fn socket_timeouts_are_whole_steps_below_what_is_left() {
        let t = |ms: u64| NextTimeout { after: UreqDuration::Exact(Duration::from_millis(ms)), ..Default::default() };
        let after = |t: NextTimeout| *t.after;
        assert_eq!(after(steady(t(29_987))), Duration::from_millis(29_900));
        assert_eq!(after(steady(t(29_912))), Duration::from_millis(29_900), "the same value request after request");
        assert_eq!(after(steady(t(200))), Duration::from_millis(200));
        assert_eq!(after(steady(t(199))), Duration::from_millis(199), "below two steps: as it is");
        assert_eq!(after(steady(t(5))), Duration::from_millis(5));
        assert_eq!(after(steady(t(0))), Duration::ZERO);
        let never = NextTimeout::default();
        assert_eq!(steady(never).after, UreqDuration::NotHappening);
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_an_http_date() {
        // 2015-10-21T07:28:00Z
        let now = 1_445_412_480_000;
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("999999999", now), Some(Duration::from_secs(86_400)));
        let later = Some(Duration::from_secs(90));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now), later);
        assert_eq!(parse_retry_after("Wednesday, 21-Oct-15 07:29:30 GMT", now), later, "RFC 850");
        assert_eq!(parse_retry_after("Wed Oct 21 07:29:30 2015", now), later, "asctime");
        assert_eq!(parse_retry_after("Wed Oct  1 07:29:30 2015", now), Some(Duration::ZERO), "asctime, past");
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO), "already past");
        assert_eq!(parse_retry_after("Sat, 21 Oct 2017 07:28:00 GMT", now), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 EST", now), None);
        assert_eq!(parse_retry_after("Wed, 32 Oct 2015 07:28:00 GMT", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
