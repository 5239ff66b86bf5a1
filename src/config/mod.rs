//! Client configuration. Every setter checks its value where it is set, so a firmware engineer learns
//! about a bad URL or an unreadable CA file at that line, not at the first request.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};
use crate::limits::MAX_ID_LEN;
use crate::log::Logger;

mod keys;

pub(crate) const DEFAULT_BASE_URL: &str = "https://api.therealer.com";
const MAX_CA_BYTES: usize = 4 << 20;
const MAX_SETTING_LEN: usize = 1024;
const MAX_TIMEOUT_MS: u64 = 3_600_000;
const MAX_ATTEMPTS: u32 = 100;

/// A value that must never be printed: `Debug` shows `<redacted>`. Its bytes are wiped when it is dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for Secret {}

impl Secret {
    /// Wraps `s`; it is wiped when the last copy is dropped.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which certificates the client trusts for the server.
#[derive(Clone, Debug, Default)]
pub enum Trust {
    /// The bundled Mozilla root certificates (webpki-roots).
    #[default]
    MozillaRoots,
    /// Only these CA certificates (DER), parsed and checked when they were set.
    Certificates(Arc<Vec<CertificateDer<'static>>>),
}

/// What a push does when the outbox is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FullPolicy {
    /// Refuse the new items (`ErrorKind::OutboxFull`): nothing stored is lost.
    #[default]
    Refuse,
    /// Delete the oldest pending items to make room (counted in `dropped`, logged).
    DropOldest,
}

/// Where the outbox lives and how large it may grow (0 = no limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxSettings {
    /// The SQLite file (made when missing; `-wal`, `-shm`, `-reserve` and `-flush` files beside it).
    pub path: String,
    /// The most items kept, pending and dead letters together (0 = no limit).
    pub max_items: u64,
    /// The most bytes of item JSON kept, pending and dead letters together (0 = no limit).
    pub max_bytes: u64,
    /// What a push does when the outbox is full.
    pub when_full: FullPolicy,
}

/// Retry policy for transient failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (1 = never retry).
    pub max_attempts: u32,
    /// The first backoff's upper bound; each retry doubles it (full jitter: a random wait up to the bound).
    pub base_delay: Duration,
    /// The bound no backoff exceeds; a `Retry-After` longer than this ends the call with the error.
    pub max_delay: Duration,
}

/// An HTTP proxy that every connection goes through with `CONNECT` (TLS stays end to end: the proxy sees the
/// host and port asked for, never what is said). Its credentials, when it has any, are never shown: `Debug`
/// and [`Proxy::url`] give `http://host:port` only.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    /// User name and password for `Proxy-Authorization: Basic`, percent-decoded.
    credentials: Option<(Secret, Secret)>,
}

impl Proxy {
    /// Reads `http://[user[:password]@]host:port[/]`. User and password may be percent-encoded (a ':' or '@' in
    /// them must be). Messages never repeat the user info.
    pub fn parse(url: &str) -> Result<Proxy> {
        check_len("proxy URL", url)?;
        let refused =
            |why: &str| Error::config(format!("proxy URL: {why} (expected http://[user:password@]host:port)"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| refused("no scheme"))?;
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(refused("only http:// proxies are supported (the tunnel carries TLS to Realer itself)"));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (userinfo, authority) = match rest.rsplit_once('@') {
            Some((u, a)) => (Some(u), a),
            None => (None, rest),
        };
        if authority.is_empty() || authority.contains(['/', '?', '#']) {
            return Err(refused("a path, query or fragment is not allowed"));
        }
        if !authority.is_ascii() || authority.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err(refused("the host must be printable ASCII without spaces"));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or_else(|| refused("no ']' after the IPv6 address"))?;
                if h.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(refused("the address in [] is not IPv6"));
                }
                (format!("[{h}]"), after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            },
        };
        if host.is_empty() || (!host.starts_with('[') && host.contains([':', '@', '[', ']'])) {
            return Err(refused("no valid host"));
        }
        let port = port.ok_or_else(|| refused("no port (proxies listen on 3128, 8080 and others: say which)"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| refused("the port is not a number from 1 to 65535"))?;
        let credentials = match userinfo {
            None => None,
            Some(info) => {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                let user =
                    percent_decode(user).ok_or_else(|| refused("the user name is not valid percent-encoded UTF-8"))?;
                let password = percent_decode(password)
                    .ok_or_else(|| refused("the password is not valid percent-encoded UTF-8"))?;
                if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                    return Err(refused("the user name must be non-empty, without ':' or control characters"));
                }
                if password.chars().any(char::is_control) {
                    return Err(refused("the password must not hold control characters"));
                }
                Some((Secret::new(user), Secret::new(password)))
            }
        };
        Ok(Proxy { host, port, credentials })
    }

    /// The host as written in the URL (an IPv6 address in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port the URL names.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://host:port`: the proxy as messages name it, without its credentials.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Whether the proxy URL carried a user name (and password) for `Proxy-Authorization`.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The user name and password.
    pub(crate) fn credentials(&self) -> Option<(&Secret, &Secret)> {
        self.credentials.as_ref().map(|(u, p)| (u, p))
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Proxy");
        d.field("url", &self.url());
        if self.credentials.is_some() {
            d.field("credentials", &format_args!("<redacted>"));
        }
        d.finish()
    }
}

/// RFC 3986 percent-decoding into UTF-8; `None` for a malformed escape or bytes that are not UTF-8. The
/// intermediate bytes are wiped.
fn percent_decode(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = |c: Option<u8>| (c? as char).to_digit(16);
            let (Some(hi), Some(lo)) = (hex(it.next()), hex(it.next())) else {
                bytes.zeroize();
                return None;
            };
            bytes.push((hi * 16 + lo) as u8);
        } else {
            bytes.push(b);
        }
    }
    match String::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            e.into_bytes().zeroize();
            None
        }
    }
}

/// How kept-alive connections are used (see [`Config::set_keepalive`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// A request on a reused connection that gets no byte of answer this long (plus the time its own bytes
    /// take at 20 kbit/s) is sent again on a new connection; zero: never.
    pub stall: Duration,
    /// A pooled connection idle this long is closed, not reused; zero: every request on a new connection.
    pub idle: Duration,
}

/// Why 5 s: on a slow cellular link (600 ms round trip, 20 kbit/s) the first byte of an answer comes one
/// round trip after the request has left, plus the server's time (well under a second for Realer) and a
/// radio waking from idle (up to about 2 s on 2G/3G): about 3.5 s at worst. The request's own transfer time
/// is added on top (at 20 kbit/s), so a large batch on a slow link does not trip it either.
pub(crate) const DEFAULT_STALL: Duration = Duration::from_secs(5);
/// Why 15 s: shorter than the keep-alive timeouts of common servers and load balancers (nginx 75 s, AWS ALB
/// 60 s, realer-sim 30 s), so the server rarely closes first, and than the idle timeouts of the NATs and
/// firewalls a device meets (30 s and up), so a reused connection has rarely been forgotten on the path.
pub(crate) const DEFAULT_IDLE: Duration = Duration::from_secs(15);

/// Everything a client needs: where Realer is, the device and its credentials, trust, timeouts, retries, the
/// outbox, the logger. Every setter checks its value; `Client::new` copies it.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) base_url: String,
    pub(crate) allow_insecure_loopback: bool,
    pub(crate) device_id: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Secret,
    pub(crate) scope: Option<String>,
    pub(crate) trust: Trust,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) user_agent: String,
    pub(crate) logger: Option<Logger>,
    pub(crate) outbox: Option<OutboxSettings>,
    pub(crate) proxy: Option<Proxy>,
    pub(crate) keepalive: Keepalive,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            base_url: DEFAULT_BASE_URL.to_string(),
            allow_insecure_loopback: false,
            device_id: None,
            client_id: None,
            client_secret: Secret::default(),
            scope: None,
            trust: Trust::MozillaRoots,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(30),
            },
            user_agent: concat!("librealer/", env!("CARGO_PKG_VERSION")).to_string(),
            logger: None,
            outbox: None,
            proxy: None,
            keepalive: Keepalive { stall: DEFAULT_STALL, idle: DEFAULT_IDLE },
        }
    }
}

fn check_len(what: &str, v: &str) -> Result<()> {
    if v.len() > MAX_SETTING_LEN {
        return Err(Error::config(format!("{what} is longer than {MAX_SETTING_LEN} bytes")));
    }
    Ok(())
}

/// Ids travel in URL paths and JSON: keep them to URL-safe ASCII.
pub(crate) fn check_id(what: &str, id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("{what} is longer than {MAX_ID_LEN} characters"));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))) {
        return Err(format!("{what} contains {c:?}: only letters, digits, '-', '_', '.' and '~' are allowed"));
    }
    if id == "." || id == ".." {
        // In a URL path these are not names: /devices/../commands is /commands.
        return Err(format!("{what} {id:?} is not an id: '.' and '..' mean a place in a URL path"));
    }
    if id.bytes().all(|b| b.is_ascii_digit()) && id.parse::<u64>().is_err() {
        return Err(format!("{what} is a number too large for Realer's integer ids"));
    }
    Ok(())
}

impl Config {
    /// The defaults: Realer's production base URL, the bundled Mozilla roots, 10 s to connect and 30 s per call, 5
    /// attempts, no outbox, no logger.
    pub fn new() -> Config {
        Config::default()
    }

    /// Allows `http://` base URLs, for 127.0.0.1 and ::1 only (a local test server). Call before
    /// `set_base_url`.
    pub fn allow_insecure_loopback(&mut self, allow: bool) {
        self.allow_insecure_loopback = allow;
    }

    /// The API's origin, `https://host[:port][/prefix]`. A plain `http://` URL is refused unless
    /// [`Config::allow_insecure_loopback`] was called and the host is 127.0.0.1 or ::1.
    pub fn set_base_url(&mut self, url: &str) -> Result<()> {
        check_len("base URL", url)?;
        if url.contains('@') {
            // user:password@host: the URL is not echoed, it may hold a password.
            return Err(Error::config(
                "base URL must not contain '@' (user info such as user:password@ is refused, and the URL is not \
                 shown here since it may hold a password): give credentials with realer_config_set_credentials",
            ));
        }
        let url = url.trim_end_matches('/');
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::config(format!("base URL {url:?} has no scheme: use https://host")))?;
        if rest.contains(['?', '#', ' ']) || !rest.is_ascii() || rest.chars().any(|c| c.is_ascii_control()) {
            return Err(Error::config(format!(
                "base URL {url:?} must be https://host[:port][/path] without user info, query, fragment or spaces"
            )));
        }
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => v6
                .split_once(']')
                .ok_or_else(|| Error::config(format!("base URL {url:?} has no ']' after its IPv6 address")))?,
            None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
        };
        if host.is_empty() {
            return Err(Error::config(format!("base URL {url:?} has no host")));
        }
        if !port.is_empty() {
            // ":port", 1 to 65535: anything else was taken as no port at all (443) by the HTTP stack.
            let digits = port.strip_prefix(':').unwrap_or(port);
            let valid = port.starts_with(':')
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.parse::<u16>().is_ok_and(|p| p != 0);
            if !valid {
                return Err(Error::config(format!(
                    "base URL {url:?}: port {digits:?} is not a number from 1 to 65535"
                )));
            }
        }
        match scheme.to_ascii_lowercase().as_str() {
            "https" => {}
            "http" => {
                if !(host == "127.0.0.1" || host == "::1") {
                    return Err(Error::config(format!(
                        "base URL {url:?}: plain http is refused for device traffic; only 127.0.0.1 or ::1 may use it, after realer_config_allow_insecure_loopback"
                    )));
                }
                if !self.allow_insecure_loopback {
                    return Err(Error::config(format!(
                        "base URL {url:?}: plain http to loopback needs realer_config_allow_insecure_loopback first"
                    )));
                }
            }
            other => return Err(Error::config(format!("base URL scheme {other:?} is not https"))),
        }
        self.base_url = url.to_string();
        Ok(())
    }

    /// The device whose catalog and feed data every call is about (Realer's id: digits, or a string id).
    pub fn set_device_id(&mut self, device_id: &str) -> Result<()> {
        check_id("device id", device_id).map_err(Error::config)?;
        self.device_id = Some(device_id.to_string());
        Ok(())
    }

    /// The OAuth client id and secret. Client ids are not checked against Realer's `cdv_` form, since test
    /// servers use others; the id may not contain ':' (Basic authentication could not carry it).
    pub fn set_credentials(&mut self, client_id: &str, client_secret: &str) -> Result<()> {
        check_len("client id", client_id)?;
        check_len("client secret", client_secret)?;
        if client_id.is_empty() || client_id.contains(':') || client_id.chars().any(char::is_control) {
            return Err(Error::config("client id must be non-empty, without ':' or control characters"));
        }
        if client_secret.is_empty() || client_secret.chars().any(char::is_control) {
            return Err(Error::config("client secret must be non-empty, without control characters"));
        }
        self.client_id = Some(client_id.to_string());
        self.client_secret = Secret::new(client_secret);
        Ok(())
    }

    /// Space-separated OAuth scopes; an empty string means "send no scope" (Realer grants both defaults).
    pub fn set_scope(&mut self, scope: &str) -> Result<()> {
        check_len("scope", scope)?;
        let scope = scope.trim();
        // RFC 6749 scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        if scope
            .split(' ')
            .any(|t| t.is_empty() || t.bytes().any(|b| !(0x21..=0x7e).contains(&b) || b == b'"' || b == b'\\'))
            && !scope.is_empty()
        {
            return Err(Error::config(format!("scope {scope:?} is not a space-separated list of scope tokens")));
        }
        self.scope = (!scope.is_empty()).then(|| scope.to_string());
        Ok(())
    }

    /// Trusts only the CA certificates in this PEM file: a regular file (or a link to one) of at most 4 MiB.
    /// A FIFO, a device such as /dev/zero or a directory is refused before it is read: the first would block
    /// the call, the second would never end.
    pub fn set_ca_file(&mut self, path: &str) -> Result<()> {
        let failed = |e: std::io::Error| Error::config(format!("CA file {path:?}: {e}"));
        let not_regular = || Error::config(format!("CA file {path:?} is not a regular file"));
        // Looked at before it is opened: opening a FIFO for reading waits for a writer.
        if !std::fs::metadata(path).map_err(failed)?.is_file() {
            return Err(not_regular());
        }
        // Without blocking, should it have been replaced by a FIFO since; then checked again, as opened.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(failed)?;
        let meta = file.metadata().map_err(failed)?;
        if !meta.is_file() {
            return Err(not_regular());
        }
        if meta.len() > MAX_CA_BYTES as u64 {
            return Err(Error::config(format!("CA file {path:?} is larger than {MAX_CA_BYTES} bytes")));
        }
        let mut pem = Vec::with_capacity(meta.len() as usize);
        // Bounded even if the file grows while it is read.
        file.take(MAX_CA_BYTES as u64 + 1).read_to_end(&mut pem).map_err(failed)?;
        if pem.len() > MAX_CA_BYTES {
            return Err(Error::config(format!("CA file {path:?} is larger than {MAX_CA_BYTES} bytes")));
        }
        self.set_ca_pem(&pem).map_err(|e| Error::config(format!("CA file {path:?}: {}", e.message)))
    }

    /// Trusts only the CA certificates in this PEM text. Every certificate must parse; at least one is needed.
    pub fn set_ca_pem(&mut self, pem: &[u8]) -> Result<()> {
        if pem.len() > MAX_CA_BYTES {
            return Err(Error::config(format!("CA PEM is larger than {MAX_CA_BYTES} bytes")));
        }
        let mut certs = Vec::new();
        for item in CertificateDer::pem_slice_iter(pem) {
            let cert = item.map_err(|e| Error::config(format!("CA PEM is malformed: {e}")))?;
            certs.push(cert);
        }
        if certs.is_empty() {
            return Err(Error::config("CA PEM holds no CERTIFICATE section"));
        }
        // ureq silently skips certificates it cannot use: check each one here instead.
        for (i, cert) in certs.iter().enumerate() {
            let mut store = rustls::RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates([cert.clone()]);
            if added != 1 {
                return Err(Error::config(format!(
                    "CA PEM certificate #{} of {} is not a usable X.509 CA certificate",
                    i + 1,
                    certs.len()
                )));
            }
        }
        self.trust = Trust::Certificates(Arc::new(certs));
        Ok(())
    }

    /// `connect` bounds establishing a connection (TCP and TLS); `request` bounds one whole library call,
    /// token fetches, retries and backoff included.
    pub fn set_timeouts(&mut self, connect: Duration, request: Duration) -> Result<()> {
        for (what, d) in [("connect timeout", connect), ("request timeout", request)] {
            if d.is_zero() || d.as_millis() > u128::from(MAX_TIMEOUT_MS) {
                return Err(Error::config(format!("{what} must be between 1 ms and {MAX_TIMEOUT_MS} ms")));
            }
        }
        self.connect_timeout = connect;
        self.request_timeout = request;
        Ok(())
    }

    /// The retries of transient failures: `max_attempts` per call (1 to 100, the first included), backoff from
    /// `base_delay` up to `max_delay` (at most an hour), all within the request timeout.
    pub fn set_retry(&mut self, max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Result<()> {
        if max_attempts == 0 || max_attempts > MAX_ATTEMPTS {
            return Err(Error::config(format!("max_attempts must be between 1 and {MAX_ATTEMPTS}")));
        }
        if base_delay > max_delay {
            return Err(Error::config("base_delay_ms must not exceed max_delay_ms"));
        }
        if max_delay.as_millis() > u128::from(MAX_TIMEOUT_MS) {
            return Err(Error::config(format!("max_delay_ms must be at most {MAX_TIMEOUT_MS}")));
        }
        self.retry = RetryPolicy { max_attempts, base_delay, max_delay };
        Ok(())
    }

    /// The `User-Agent` header: 1 to 256 printable ASCII characters.
    pub fn set_user_agent(&mut self, user_agent: &str) -> Result<()> {
        if user_agent.is_empty() || user_agent.len() > 256 || user_agent.bytes().any(|b| !(0x20..=0x7e).contains(&b)) {
            return Err(Error::config("user agent must be 1 to 256 printable ASCII characters"));
        }
        self.user_agent = user_agent.to_string();
        Ok(())
    }

    /// Keeps unsent items in the SQLite file at `path` (made when missing), at most `max_items` items and
    /// `max_bytes` bytes of item JSON (0 = no limit). The file is opened when a client is made.
    pub fn set_outbox(&mut self, path: &str, max_items: u64, max_bytes: u64) -> Result<()> {
        check_len("outbox path", path)?;
        if path.is_empty() {
            return Err(Error::config("outbox path is empty"));
        }
        // SQLite would read a FIFO (blocking) or a device as its database. A missing file is made later.
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            return Err(Error::config(format!("outbox path {path:?} is not a regular file")));
        }
        let when_full = self.outbox.as_ref().map(|o| o.when_full).unwrap_or_default();
        self.outbox = Some(OutboxSettings { path: path.to_string(), max_items, max_bytes, when_full });
        Ok(())
    }

    /// What a push does when the outbox is full. Call after [`Config::set_outbox`].
    pub fn set_outbox_when_full(&mut self, policy: FullPolicy) -> Result<()> {
        match &mut self.outbox {
            Some(o) => {
                o.when_full = policy;
                Ok(())
            }
            None => Err(Error::config("no outbox is configured: call realer_config_set_outbox first")),
        }
    }

    /// Sends every request through the HTTP proxy at `url` (`http://[user:password@]host:port`) with
    /// `CONNECT`; an empty string: straight to Realer (the default). Proxies are never taken from the
    /// environment's `http_proxy`/`HTTPS_PROXY` variables: only this setting (or `REALER_PROXY`) sets one.
    pub fn set_proxy(&mut self, url: &str) -> Result<()> {
        self.proxy = if url.is_empty() { None } else { Some(Proxy::parse(url)?) };
        Ok(())
    }

    /// How kept-alive connections are used: `stall`, how long a request on a reused connection may wait for
    /// the first byte of its answer before it is sent again on a new connection (plus the time its own bytes
    /// take at 20 kbit/s; zero: never); `idle`, how long an unused connection is kept for the next request
    /// (zero: a new connection for every request). Each at most an hour.
    pub fn set_keepalive(&mut self, stall: Duration, idle: Duration) -> Result<()> {
        for (what, d) in [("stall timeout", stall), ("idle timeout", idle)] {
            if d.as_millis() > u128::from(MAX_TIMEOUT_MS) {
                return Err(Error::config(format!("{what} must be at most {MAX_TIMEOUT_MS} ms")));
            }
        }
        self.keepalive = Keepalive { stall, idle };
        Ok(())
    }

    /// Where log lines go (`None`: nowhere). Lines never hold the client secret or a token.
    pub fn set_logger(&mut self, logger: Option<Logger>) {
        self.logger = logger;
    }

    /// The settings a client cannot work without.
    pub(crate) fn check_complete(&self) -> Result<()> {
        if self.device_id.is_none() {
            return Err(Error::config(format!(
                "no device id: call realer_config_set_device_id (or set {})",
                keys::DEVICE_ID
            )));
        }
        if self.client_id.is_none() {
            return Err(Error::config(format!(
                "no credentials: call realer_config_set_credentials (or set {} and {})",
                keys::CLIENT_ID,
                keys::CLIENT_SECRET
            )));
        }
        Ok(())
    }
}

/// The read-only views of a configuration that tools (the `realer` field tool) show.
impl Config {
    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The device id, when set.
    pub fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }

    /// The OAuth client id, when set (never the secret).
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The scope requested, when one is set.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The CA certificates (DER) the client trusts instead of the bundled Mozilla roots, when set.
    pub fn trusted_certificates(&self) -> Option<Vec<Vec<u8>>> {
        match &self.trust {
            Trust::MozillaRoots => None,
            Trust::Certificates(certs) => Some(certs.iter().map(|c| c.to_vec()).collect()),
        }
    }

    /// The connect and request timeouts.
    pub fn timeouts(&self) -> (std::time::Duration, std::time::Duration) {
        (self.connect_timeout, self.request_timeout)
    }

    /// The HTTP proxy connections go through, when one is set.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    /// How kept-alive connections are used.
    pub fn keepalive(&self) -> Keepalive {
        self.keepalive
    }

    /// The outbox file, when one is configured.
    pub fn outbox_path(&self) -> Option<&str> {
        self.outbox.as_ref().map(|o| o.path.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_rules() {
        let mut c = Config::new();
        assert!(c.set_base_url("https://api.therealer.com/").is_ok());
        assert_eq!(c.base_url, "https://api.therealer.com");
        assert!(c.set_base_url("https://127.0.0.1:8443/prefix").is_ok());
        assert!(c.set_base_url("https://[::1]:8443").is_ok());
        assert!(c.set_base_url("http://api.therealer.com").is_err());
        assert!(c.set_base_url("http://127.0.0.1:80").is_err(), "needs the opt-in");
        c.allow_insecure_loopback(true);
        assert!(c.set_base_url("http://127.0.0.1:80").is_ok());
        assert!(c.set_base_url("http://[::1]:80").is_ok());
        assert!(c.set_base_url("http://localhost:80").is_err());
        assert!(c.set_base_url("http://10.0.0.1").is_err());
        for bad in ["ftp://x", "api.therealer.com", "https://", "https://a?b", "https://u@h", "https://h #"] {
            assert!(c.set_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_url_ports_are_checked_and_user_info_is_never_echoed() {
        let mut c = Config::new();
        for bad in
            ["https://h:99999", "https://h:0", "https://h:", "https://h:44x", "https://[::1]:70000", "https://:443"]
        {
            let e = c.set_base_url(bad).unwrap_err();
            assert!(e.message.contains("base URL"), "{bad}: {}", e.message);
        }
        assert!(c.set_base_url("https://h:99999").unwrap_err().message.contains("port"));
        assert!(c.set_base_url("https://h:65535").is_ok());
        assert!(c.set_base_url("https://[::1]:1").is_ok());
        for bad in [
            "https://alice:hunter2@api.example.com",
            "https://alice:hunter2@h?q#f",
            "https://hunter2@h/p",
            "ftp://alice:hunter2@h",
        ] {
            let e = c.set_base_url(bad).unwrap_err();
            assert!(!e.message.contains("hunter2") && !e.message.contains("alice"), "{bad}: {}", e.message);
            assert!(e.message.contains("base URL"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn device_ids_that_would_change_the_path_are_refused() {
        let mut c = Config::new();
        for bad in [".", "..", "a/b", "a?b", "a#b", "a%2e", "%2e%2e"] {
            let e = c.set_device_id(bad).unwrap_err();
            assert!(e.message.starts_with("device id"), "{bad}: {}", e.message);
        }
        assert_eq!(c.device_id, None);
        for good in ["a.b", "...", ".x", "x.", "cdv_1", "12345"] {
            assert!(c.set_device_id(good).is_ok(), "{good}");
        }
        assert!(check_id("command id", "..").unwrap_err().starts_with("command id"));
    }

    #[test]
    fn secrets_are_wiped_when_dropped() {
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroized_on_drop::<Secret>();
    }

    #[test]
    fn ids_and_scope() {
        let mut c = Config::new();
        assert!(c.set_device_id("12345").is_ok());
        assert!(c.set_device_id("cdv_0123456789abcdefghijklmnop").is_ok());
        for bad in ["", "12/45", "a b", "99999999999999999999999", "é"] {
            assert!(c.set_device_id(bad).is_err(), "{bad}");
        }
        assert!(c.set_scope("iot:catalog:read iot:feed-data:write").is_ok());
        assert_eq!(c.scope.as_deref(), Some("iot:catalog:read iot:feed-data:write"));
        assert!(c.set_scope("").is_ok());
        assert_eq!(c.scope, None);
        assert!(c.set_scope("a  b").is_err());
        assert!(c.set_scope("a\"b").is_err());
    }

    #[test]
    fn secret_is_not_in_debug() {
        let mut c = Config::new();
        c.set_credentials("cdv_x", "very-secret-value").unwrap();
        assert!(!format!("{c:?}").contains("very-secret-value"));
        assert!(c.set_credentials("a:b", "s").is_err());
    }

    #[test]
    fn ca_pem_rules() {
        let mut c = Config::new();
        assert!(c.set_ca_pem(b"").is_err());
        assert!(c.set_ca_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
        let junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = c.set_ca_pem(junk).unwrap_err();
        assert!(e.message.contains("#1"), "{}", e.message);
        assert!(c.set_ca_file("/nonexistent/ca.pem").is_err());
    }

    #[test]
    fn proxy_urls_are_checked_and_their_credentials_never_shown() {
        let p = Proxy::parse("http://proxy.corp:3128").unwrap();
        assert_eq!((p.host(), p.port(), p.url(), p.has_credentials()), ("proxy.corp", 3128, p.url(), false));
        assert_eq!(p.url(), "http://proxy.corp:3128");
        let p = Proxy::parse("HTTP://[::1]:8080/").unwrap();
        assert_eq!(p.url(), "http://[::1]:8080");
        let p = Proxy::parse("http://al%40ice:p%40ss:w@rd@10.0.0.1:3128").unwrap();
        let (user, password) = p.credentials().unwrap();
        assert_eq!((user.expose(), password.expose()), ("al@ice", "p@ss:w@rd"), "the last '@' ends the user info");
        assert_eq!(format!("{p:?}"), r#"Proxy { url: "http://10.0.0.1:3128", credentials: <redacted> }"#);
        for bad in [
            "proxy.corp:3128",
            "https://proxy.corp:3128",
            "socks5://proxy.corp:1080",
            "http://proxy.corp",
            "http://proxy.corp:0",
            "http://proxy.corp:99999",
            "http://proxy.corp:31x8",
            "http://proxy.corp:3128/path",
            "http://:3128",
            "http://[zz]:3128",
            "http://pro xy:3128",
            "http://hunter2-user:hunter2-pass@proxy.corp",
            "http://hunter2-user:hunter2%zz@proxy.corp:3128",
            "http://hunter2-user%0a:x@proxy.corp:3128",
        ] {
            let e = Proxy::parse(bad).unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::Config, "{bad}");
            assert!(e.message.starts_with("proxy URL"), "{bad}: {}", e.message);
            assert!(!e.message.contains("hunter2"), "{bad}: {}", e.message);
        }
        let mut c = Config::new();
        c.set_proxy("http://u:secret-pass@proxy.corp:3128").unwrap();
        assert!(!format!("{c:?}").contains("secret-pass") && !format!("{c:?}").contains("\"u\""));
        c.set_proxy("").unwrap();
        assert!(c.proxy.is_none());
        c.apply_env(|k| (k == "REALER_PROXY").then(|| "http://p:1".to_string())).unwrap();
        assert_eq!(c.proxy.as_ref().map(Proxy::url).as_deref(), Some("http://p:1"));
        let e = c.apply_env(|k| (k == "REALER_PROXY").then(|| "ftp://p".to_string())).unwrap_err();
        assert!(e.message.starts_with("REALER_PROXY: proxy URL"), "{}", e.message);
        assert!(c.set_keepalive(Duration::ZERO, Duration::from_secs(3600)).is_ok());
        assert!(c.set_keepalive(Duration::from_millis(3_600_001), Duration::ZERO).is_err());
    }

    #[test]
    fn env_is_applied_and_named() {
        let mut c = Config::new();
        let env = |k: &str| match k {
            "REALER_DEVICE_ID" => Some("777".to_string()),
            "REALER_CLIENT_ID" => Some("cid".to_string()),
            "REALER_CLIENT_SECRET" => Some("sec".to_string()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.device_id.as_deref(), Some("777"));
        let e = c.apply_env(|k| (k == "REALER_BASE_URL").then(|| "http://x".to_string())).unwrap_err();
        assert!(e.message.starts_with("REALER_BASE_URL"));
        assert!(c.apply_env(|k| (k == "REALER_CLIENT_ID").then(|| "x".to_string())).is_err());
    }
}
