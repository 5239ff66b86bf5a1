//! One HTTPS exchange with the API: builds the ureq agent the way an embedded client needs it (no proxy from
//! the environment, no redirects, statuses as values, bounded bodies) and turns ureq's errors into ours.

mod connection;
mod proxy;
mod resolver;

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use ureq::http::{self, Uri};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::unversioned::transport::{Connector, RustlsConnector};
use ureq::AsSendBody;
use zeroize::Zeroize;

use crate::cancel::{cancelled, Cancel};
use crate::config::{Config, Proxy, Secret, Trust};
use crate::error::{Error, ErrorKind, Result};
use crate::log::{Level, Logger};
use crate::time;

use connection::{GuardingConnector, SteadyTimeouts};
pub(crate) use proxy::proxy_secrets;
use proxy::ProxyConnector;
use resolver::CachingResolver;

/// One of our errors, carried through ureq (inside an `io::Error`) from a connector or a connection to
/// [`map_ureq_error`], which hands it over as it is: a proxy's refusal, a stalled connection.
#[derive(Debug)]
pub(super) struct PathError(Error);

impl PathError {
    fn carry(e: Error) -> ureq::Error {
        ureq::Error::Io(std::io::Error::other(PathError(e)))
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for PathError {}

/// What every connection of a client is made with.
#[derive(Clone, Debug)]
struct ConnectSettings {
    proxy: Option<Proxy>,
    user_agent: String,
    stall: Duration,
}

/// The largest answer body read; a catalog of a few thousand items fits many times over.
const MAX_BODY_BYTES: u64 = crate::limits::MAX_ANSWER_BYTES;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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

/// base64(user ":" password), the Basic credentials (RFC 7617) of the OAuth client and of a proxy, built in
/// buffers of their final size so that no copy is left behind by a reallocation.
pub(crate) fn basic_credentials(user: &str, password: &Secret) -> Secret {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let secret = password.expose();
    let mut input = Vec::with_capacity(user.len() + 1 + secret.len());
    input.extend_from_slice(user.as_bytes());
    input.push(b':');
    input.extend_from_slice(secret.as_bytes());
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    input.zeroize();
    Secret::new(out)
}

pub(crate) struct Transport {
    /// Replaced by a fresh one when the client is cancelled: the old one is shut down, which ends every
    /// request in flight on it at once (a blocked read or write returns; a connect in progress is bounded
    /// by the connect timeout).
    agent: Mutex<ureq::Agent>,
    /// What a fresh agent is made of.
    agent_config: ureq::config::Config,
    connect: ConnectSettings,
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
            // An idle time of zero: no connection is kept.
            .max_idle_connections(if config.keepalive.idle.is_zero() { 0 } else { 8 })
            .max_idle_connections_per_host(8)
            .max_idle_age(config.keepalive.idle)
            .timeout_global(Some(config.request_timeout))
            .timeout_connect(Some(config.connect_timeout))
            // No per-read or per-write timeout: one read may wait for what is left of the call's deadline
            // (a server that takes 2 s of a 3 s request timeout is answered). SteadyTimeouts keeps the socket
            // timeouts steady between requests.
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build();
        let connect = ConnectSettings {
            proxy: config.proxy.clone(),
            user_agent: config.user_agent.clone(),
            stall: config.keepalive.stall,
        };
        Transport {
            agent: Mutex::new(make_agent(&agent_config, &connect)),
            agent_config,
            connect,
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
        let fresh = make_agent(&self.agent_config, &self.connect);
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

fn make_agent(config: &ureq::config::Config, connect: &ConnectSettings) -> ureq::Agent {
    ureq::Agent::with_parts(
        config.clone(),
        // ureq's DefaultConnector without its SOCKS and native-tls links (TLS is rustls), with our own CONNECT
        // step (ureq's reports a refusal as a bare string and would chain the whole connector again for the
        // proxy's connection), and SteadyTimeouts between TCP and TLS. The rustls configuration, and so its
        // session cache, lives as long as the agent: new connections resume TLS sessions (fewer bytes: no
        // certificate chain).
        ProxyConnector::new(connect.proxy.as_ref(), &connect.user_agent)
            .chain(SteadyTimeouts)
            .chain(RustlsConnector::default())
            .chain(GuardingConnector::new(connect.stall)),
        // With a proxy, the proxy's name is looked up (the proxy looks Realer's up).
        CachingResolver::new(connect.proxy.as_ref()),
    )
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
    match e {
        _ if kind == ErrorKind::TlsCertTime => err.message.push_str(" (check the device clock)"),
        // Another certificate for the server's name: what a TLS-inspecting middlebox or a captive portal
        // shows (or a CA file that is not Realer's).
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension) => {
            err.message = format!(
                "TLS: the server's certificate is not signed by the configured CA: a TLS-inspection proxy or \
                 captive portal? ({e})"
            );
        }
        _ => {}
    }
    err
}

fn io_error(e: &std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    if let Some(inner) = e.get_ref() {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return rustls_error(tls);
        }
        if let Some(PathError(ours)) = inner.downcast_ref::<PathError>() {
            return ours.clone();
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
        U::Tls(_) | U::Pem(_) => Error::new(ErrorKind::Tls, format!("TLS: {e}")),
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
    fn basic_credentials_are_base64() {
        let b = |id: &str, secret: &str| basic_credentials(id, &Secret::new(secret)).expose().to_string();
        assert_eq!(b("cdv_x", "demo-secret"), "Y2R2X3g6ZGVtby1zZWNyZXQ=");
        assert_eq!(b("f", "o"), "Zjpv");
        assert_eq!(b("fo", "o"), "Zm86bw==");
        assert_eq!(b("fo", "ob"), "Zm86b2I=");
    }

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
