//! The field network kit: what stands between a device and Realer, on loopback. A relay that delays, throttles,
//! black-holes and resets TCP connections (the kernel here has no netem), an HTTP front that answers as nginx
//! does, and a CONNECT proxy that answers as squid does. Every impairment changes while it runs. See README.md,
//! section "realer-netkit: the field network kit".
//!
//! Every mode is the same impairable relay on the public port; the front and the CONNECT proxy are plain servers
//! on a private loopback port behind it, so latency, rate, black-holes and resets apply to them too.

mod command;
mod connect;
mod front;
mod pages;
mod relay;
mod service;

use serde::Serialize;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::server::lock;

pub use command::HELP;

/// The nginx version whose pages and headers the front copies (Debian bookworm's).
pub const NGINX_SERVER: &str = "nginx/1.22.1";
/// The squid version whose pages and headers the CONNECT proxy copies (Debian bookworm's).
pub const SQUID_SERVER: &str = "squid/5.7";
/// squid's default Basic realm, sent in `Proxy-Authenticate`.
pub const SQUID_REALM: &str = "Squid proxy-caching web server";

/// Which way bytes flow: `Up` is client to server, `Down` server to client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Up,
    Down,
    /// Both ways: each way on its own for latency and rate; the sum of both for [`Impairment::ResetAfter`].
    Both,
}

impl Dir {
    fn covers(self, index: usize) -> bool {
        matches!((self, index), (Dir::Both, _) | (Dir::Up, UP) | (Dir::Down, DOWN))
    }
}

pub(crate) const UP: usize = 0;
pub(crate) const DOWN: usize = 1;

/// What the front or the CONNECT proxy answers by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// nginx 1.22's answer to `return STATUS`: its HTML page (`text/html`, `Server: nginx/1.22.1`) for every
    /// status nginx has a page for (403, 408, 413 "Request Entity Too Large", 429, 502, 503 "Service Temporarily
    /// Unavailable", 504 "Gateway Time-out", ...); an empty body and an empty reason phrase for the others (425,
    /// 499). `Connection: close` after 400, 408, 413, 414, 500 and 501, as nginx does.
    Nginx(u16),
    /// squid 5's error page for this status: 400 ERR_INVALID_REQ, 403 ERR_ACCESS_DENIED, 407
    /// ERR_CACHE_ACCESS_DENIED (with `Proxy-Authenticate: Basic`), 413 ERR_TOO_BIG, 500 ERR_GATEWAY_FAILURE, 502
    /// ERR_READ_ERROR, 503 ERR_CONNECT_FAIL, 504 ERR_READ_TIMEOUT; any other status gets ERR_ACCESS_DENIED (as
    /// squid's `deny_info STATUS:ERR_ACCESS_DENIED` sends).
    Squid(u16),
    /// This status with no body: `Content-Length: 0` (204: no length at all), as a gateway acknowledges.
    Empty(u16),
    /// 200 with a captive portal's HTML login page.
    Portal,
    /// Close the connection without answering (nginx's `return 444`, and what it does for 408 and 499).
    Close,
}

/// How many requests a [`Rule`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    Next(u32),
    Always,
}

/// "Answer the next `times` requests (under `path_prefix`) with `reply`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub reply: Reply,
    pub times: Times,
    /// Only requests whose path (the front) or `host:port` target (CONNECT) starts with this.
    pub path_prefix: Option<String>,
    /// Adds `Retry-After: SECS` to the answer.
    pub retry_after_secs: Option<u64>,
}

impl Rule {
    /// Answers the next `count` requests.
    pub fn next(count: u32, reply: Reply) -> Rule {
        Rule { reply, times: Times::Next(count), path_prefix: None, retry_after_secs: None }
    }

    /// Answers every request until cleared.
    pub fn always(reply: Reply) -> Rule {
        Rule { reply, times: Times::Always, path_prefix: None, retry_after_secs: None }
    }

    /// Only requests whose path (or CONNECT target) starts with `prefix`.
    pub fn under(mut self, prefix: &str) -> Rule {
        self.path_prefix = Some(prefix.to_string());
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Rule {
        self.retry_after_secs = Some(secs);
        self
    }
}

/// The front's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontTls {
    /// A fresh CA made by the kit ([`Netkit::ca_pem`]); the client trusts it: a reverse proxy or load balancer.
    Trusted,
    /// A fresh CA the kit never gives out ([`Netkit::ca_pem`] is `None`), with a certificate for the same names
    /// (127.0.0.1, ::1, localhost): a TLS-inspecting middlebox or a captive portal.
    Intercepting,
    /// [`FrontTls::Trusted`], but the server certificate expired in 2021.
    Expired,
}

/// Proxy credentials for the CONNECT proxy's Basic authentication. Debug never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    pub fn new(user: &str, password: &str) -> Credentials {
        Credentials { user: user.to_string(), password: password.to_string() }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

/// One change to the kit, applied at once to open connections and new ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Impairment {
    /// One-way delay for every chunk in `dir`, order kept (a 600 ms round trip is 300 ms `Both`). A new
    /// connection's first bytes also wait one round trip more: the TCP handshake, which the kernel completes at
    /// once on loopback.
    Latency(Dir, Duration),
    /// A serial link of this many bits per second in `dir` (each byte takes 8/rate s, no burst); `None` lifts it.
    Rate(Dir, Option<u64>),
    /// Connections idle (no byte either way) longer than this are forgotten, as a carrier NAT does: every later
    /// byte either way is swallowed, no FIN, no RST. `None` turns it off.
    BlackholeIdle(Option<Duration>),
    /// Every open connection goes silent now (as after `BlackholeIdle`).
    BlackholeNow,
    /// `true`: new connections are accepted (SYN-ACK) and then nothing is relayed either way, nothing reaches the
    /// upstream. `false`: relay new connections again.
    BlackholeNew(bool),
    /// After this many more bytes in `dir` (the sum of both with [`Dir::Both`]), each connection is cut with RST
    /// (SO_LINGER 0) on both sides; the bytes before it are delivered. `None` turns it off.
    ResetAfter(Dir, Option<u64>),
    /// Every answer (server bytes that follow client bytes) waits this much longer before its first byte.
    HoldAnswers(Duration),
    /// Close the port: new connections are refused. `cut_existing`: also reset (RST) every open connection.
    Down { cut_existing: bool },
    /// Listen again on the same port.
    Up,
    /// Front and CONNECT proxy: answer by rule (checked in the order added; a request takes one count of the
    /// first rule it matches).
    Answer(Rule),
    /// Front: requests with a body larger than this get nginx's 413 page (`client_max_body_size`); `None`: no limit.
    MaxBody(Option<usize>),
    /// Front: how long a kept-alive client connection may stay idle (nginx's `keepalive_timeout`, default 75 s).
    KeepaliveTimeout(Duration),
    /// CONNECT proxy: require these credentials (`Proxy-Authorization: Basic`), else 407; `None`: no
    /// authentication.
    ProxyCredentials(Option<Credentials>),
}

/// What the kit does.
#[derive(Debug, Clone)]
pub enum Mode {
    /// TCP relay to `upstream` (TLS passes through untouched).
    Relay { upstream: SocketAddr },
    /// Reverse proxy: terminates TLS, forwards requests to `upstream_base_url` (`https://HOST:PORT`, trusting
    /// `upstream_ca_pem`) unless a rule answers.
    Front { upstream_base_url: String, upstream_ca_pem: String, tls: FrontTls },
    /// A captive portal: TLS with a certificate the client does not trust, and its HTML 200 page to every request
    /// that no rule answers. Nothing is forwarded.
    Portal,
    /// HTTP CONNECT proxy (squid-like) to any `host:port`.
    Connect,
}

impl Mode {
    fn name(&self) -> &'static str {
        match self {
            Mode::Relay { .. } => "relay",
            Mode::Front { .. } => "front",
            Mode::Portal => "portal",
            Mode::Connect => "connect",
        }
    }
}

/// Counters since the kit started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Connections accepted on the public port.
    pub connections: u64,
    /// Of those, still open.
    pub open: u64,
    /// Bytes the clients sent (read by the kit), swallowed ones included.
    pub bytes_up: u64,
    /// Bytes the server side sent toward the clients (the upstream, or the front and proxy themselves).
    pub bytes_down: u64,
    /// Connections that went silent (idle black-hole, `BlackholeNow`, `BlackholeNew`).
    pub blackholed: u64,
    /// Connections the kit cut with RST (`ResetAfter`, `Down { cut_existing }`, or a reset passed on).
    pub resets: u64,
    /// Requests the front or the CONNECT proxy read (the length of [`Netkit::log`]).
    pub requests: u64,
}

/// Who answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// The upstream's answer, relayed (CONNECT: the tunnel was opened).
    Upstream,
    /// The kit answered by itself (a rule, the body limit, a failed upstream, a refusal) or closed.
    Kit,
}

/// One request the front or the CONNECT proxy read. Header values are never kept (credentials stay out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// Milliseconds since the kit started.
    pub at_ms: u64,
    /// `POST`, `CONNECT`...; empty for an unreadable request.
    pub method: String,
    /// The path with its query (front), or `host:port` (CONNECT), as received.
    pub target: String,
    /// The request's header names, lower-cased, in arrival order.
    pub header_names: Vec<String>,
    pub body_len: usize,
    /// The status the client got; 0 when the connection was closed without an answer.
    pub status: u16,
    pub by: By,
}

/// State shared by the relay and the services behind it.
pub(crate) struct Shared {
    start: Instant,
    pub(crate) shaping: Mutex<relay::Shaping>,
    pub(crate) http: Mutex<HttpRules>,
    pub(crate) counters: Counters,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) bytes: [AtomicU64; 2],
    pub(crate) blackholed: AtomicU64,
    pub(crate) resets: AtomicU64,
}

pub(crate) struct RuleState {
    rule: Rule,
    remaining: Option<u32>,
}

pub(crate) struct HttpRules {
    rules: Vec<RuleState>,
    pub(crate) max_body: Option<usize>,
    pub(crate) keepalive: Duration,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) log: Vec<Seen>,
}

/// nginx's default `keepalive_timeout`.
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(75);

impl Shared {
    fn new() -> Shared {
        Shared {
            start: Instant::now(),
            shaping: Mutex::new(relay::Shaping::default()),
            http: Mutex::new(HttpRules {
                rules: Vec::new(),
                max_body: None,
                keepalive: DEFAULT_KEEPALIVE,
                credentials: None,
                log: Vec::new(),
            }),
            counters: Counters::default(),
        }
    }

    pub(crate) fn since_start_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The rule answering a request for `target`, taking one of its counts.
    pub(crate) fn take_rule(&self, target: &str) -> Option<(Reply, Option<u64>)> {
        let mut http = lock(&self.http);
        let i = http.rules.iter().position(|r| r.rule.path_prefix.as_ref().is_none_or(|p| target.starts_with(p)))?;
        let state = &mut http.rules[i];
        let answer = (state.rule.reply.clone(), state.rule.retry_after_secs);
        if let Some(left) = &mut state.remaining {
            *left -= 1;
            if *left == 0 {
                http.rules.remove(i);
            }
        }
        Some(answer)
    }

    pub(crate) fn record(&self, seen: Seen) {
        lock(&self.http).log.push(seen);
    }
}

/// A running kit. Dropping it closes its port and every connection, and joins its threads (those still blocked
/// after two seconds are left to end on their own).
pub struct Netkit {
    mode: Mode,
    shared: Arc<Shared>,
    // Declared before the service: the public port closes first.
    relay: relay::Relay,
    /// The front or the CONNECT proxy behind the relay, held for its Drop.
    _service: Option<service::Service>,
    ca_pem: Option<String>,
}

impl Netkit {
    /// Starts a kit on `listen` (port 0 picks a free port).
    pub fn start(listen: SocketAddr, mode: Mode) -> io::Result<Netkit> {
        let shared = Arc::new(Shared::new());
        let (target, service, ca_pem) = match &mode {
            Mode::Relay { upstream } => (*upstream, None, None),
            Mode::Front { upstream_base_url, upstream_ca_pem, tls } => {
                let upstream = front::Upstream::new(upstream_base_url, upstream_ca_pem)?;
                let (front, ca_pem) = front::Front::new(Arc::clone(&shared), Some(upstream), *tls)?;
                let service = service::Service::start("realer-netkit-front", Arc::new(front))?;
                (service.addr(), Some(service), ca_pem)
            }
            Mode::Portal => {
                let (front, _) = front::Front::new(Arc::clone(&shared), None, FrontTls::Intercepting)?;
                let service = service::Service::start("realer-netkit-portal", Arc::new(front))?;
                (service.addr(), Some(service), None)
            }
            Mode::Connect => {
                let proxy = connect::ConnectProxy::new(Arc::clone(&shared));
                let service = service::Service::start("realer-netkit-connect", Arc::new(proxy))?;
                (service.addr(), Some(service), None)
            }
        };
        let relay = relay::Relay::start(listen, target, Arc::clone(&shared))?;
        Ok(Netkit { mode, shared, relay, _service: service, ca_pem })
    }

    /// A TCP relay on 127.0.0.1 (a free port) to `upstream`.
    pub fn relay(upstream: SocketAddr) -> io::Result<Netkit> {
        Netkit::start(loopback(), Mode::Relay { upstream })
    }

    /// An HTTPS reverse proxy on 127.0.0.1 (a free port) to `upstream_base_url`, trusting `upstream_ca_pem`.
    pub fn http_front(upstream_base_url: &str, upstream_ca_pem: &str, tls: FrontTls) -> io::Result<Netkit> {
        Netkit::start(
            loopback(),
            Mode::Front {
                upstream_base_url: upstream_base_url.to_string(),
                upstream_ca_pem: upstream_ca_pem.to_string(),
                tls,
            },
        )
    }

    /// A TLS-intercepting middlebox in front of `upstream_base_url`: [`Netkit::http_front`] with
    /// [`FrontTls::Intercepting`].
    pub fn intercepting(upstream_base_url: &str, upstream_ca_pem: &str) -> io::Result<Netkit> {
        Netkit::http_front(upstream_base_url, upstream_ca_pem, FrontTls::Intercepting)
    }

    /// A captive portal on 127.0.0.1 (a free port): see [`Mode::Portal`].
    pub fn captive_portal() -> io::Result<Netkit> {
        Netkit::start(loopback(), Mode::Portal)
    }

    /// A CONNECT proxy on 127.0.0.1 (a free port), without authentication until
    /// [`Impairment::ProxyCredentials`].
    pub fn connect_proxy() -> io::Result<Netkit> {
        Netkit::start(loopback(), Mode::Connect)
    }

    /// The public address (what the client connects to).
    pub fn addr(&self) -> SocketAddr {
        self.relay.addr()
    }

    /// What a client uses: `https://ADDR` (relay, front, portal) or the proxy URL `http://ADDR` (CONNECT).
    pub fn url(&self) -> String {
        match self.mode {
            Mode::Connect => format!("http://{}", self.addr()),
            _ => format!("https://{}", self.addr()),
        }
    }

    /// The CA (PEM) of the front's certificate, for [`FrontTls::Trusted`] and [`FrontTls::Expired`]; `None`
    /// otherwise (the relay passes the upstream's TLS through).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// `relay`, `front`, `portal` or `connect`.
    pub fn mode_name(&self) -> &'static str {
        self.mode.name()
    }

    /// Applies one change. Errors: an HTTP setting in relay mode, a CONNECT setting outside CONNECT mode, a
    /// front setting outside the front (`InvalidInput`), or the port cannot be bound again (`Up`).
    pub fn set(&self, change: Impairment) -> io::Result<()> {
        let http = !matches!(self.mode, Mode::Relay { .. });
        let front = matches!(self.mode, Mode::Front { .. } | Mode::Portal);
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
        match change {
            Impairment::Latency(dir, d) => self.shape(|s| s.set_each(dir, |i, s| s.latency[i] = d)),
            Impairment::Rate(dir, bps) => {
                if bps == Some(0) {
                    return Err(invalid("a rate of 0 bits/s never delivers: use BlackholeNow"));
                }
                self.shape(|s| s.set_each(dir, |i, s| s.rate[i] = bps))
            }
            Impairment::BlackholeIdle(t) => self.shape(|s| s.blackhole_idle = t),
            Impairment::BlackholeNow => self.relay.blackhole_now(),
            Impairment::BlackholeNew(on) => self.shape(|s| s.blackhole_new = on),
            Impairment::ResetAfter(dir, bytes) => self.shape(|s| s.set_reset_after(dir, bytes)),
            Impairment::HoldAnswers(d) => self.shape(|s| s.hold_answers = d),
            Impairment::Down { cut_existing } => self.relay.set_down(cut_existing),
            Impairment::Up => return self.relay.set_up(),
            Impairment::Answer(rule) => {
                if !http {
                    return Err(invalid("answer: only the front, the portal and the CONNECT proxy answer requests"));
                }
                let remaining = match rule.times {
                    Times::Next(0) => return Ok(()),
                    Times::Next(n) => Some(n),
                    Times::Always => None,
                };
                lock(&self.shared.http).rules.push(RuleState { rule, remaining });
            }
            Impairment::MaxBody(n) => {
                if !front {
                    return Err(invalid("max-body: only the front reads bodies"));
                }
                lock(&self.shared.http).max_body = n;
            }
            Impairment::KeepaliveTimeout(d) => {
                if !front {
                    return Err(invalid("keepalive-timeout: only the front keeps connections alive"));
                }
                if d.is_zero() {
                    return Err(invalid("keepalive-timeout must be more than 0"));
                }
                lock(&self.shared.http).keepalive = d;
            }
            Impairment::ProxyCredentials(c) => {
                if !matches!(self.mode, Mode::Connect) {
                    return Err(invalid("auth: only the CONNECT proxy authenticates"));
                }
                lock(&self.shared.http).credentials = c;
            }
        }
        Ok(())
    }

    /// Every impairment and rule off, and listening again: latency, rate, black-holes (connections already silent
    /// stay silent), reset-after, held answers, down, answers and the body limit. The keep-alive timeout and the
    /// proxy credentials (configuration, not impairments) are kept.
    pub fn clear(&self) -> io::Result<()> {
        *lock(&self.shared.shaping) = relay::Shaping::default();
        {
            let mut http = lock(&self.shared.http);
            http.rules.clear();
            http.max_body = None;
        }
        self.relay.set_up()
    }

    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            connections: c.connections.load(Ordering::SeqCst),
            open: self.relay.open(),
            bytes_up: c.bytes[UP].load(Ordering::SeqCst),
            bytes_down: c.bytes[DOWN].load(Ordering::SeqCst),
            blackholed: c.blackholed.load(Ordering::SeqCst),
            resets: c.resets.load(Ordering::SeqCst),
            requests: lock(&self.shared.http).log.len() as u64,
        }
    }

    /// Every request the front or the CONNECT proxy read, in order (empty for the relay).
    pub fn log(&self) -> Vec<Seen> {
        lock(&self.shared.http).log.clone()
    }

    /// Runs one line of the command language of the `realer-netkit` binary (see [`HELP`]): `Ok(None)` for a
    /// change made (the binary prints `ok`), `Ok(Some(json))` for `stats` and `log`, `Err(message)` for a line
    /// that is not understood or not possible in this mode (nothing changed).
    pub fn command(&self, line: &str) -> Result<Option<String>, String> {
        command::run(self, line)
    }

    fn shape(&self, f: impl FnOnce(&mut relay::Shaping)) {
        f(&mut lock(&self.shared.shaping));
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}
