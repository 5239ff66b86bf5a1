//! The running simulator: a listener thread, one thread per connection (HTTP/1.1 keep-alive over rustls),
//! fault handling around the API handlers, the request log, and stopping/restarting on the same port.

use ring::rand::SystemRandom;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::api::{self, Ctx};
use crate::encoding::{random_hex, redact};
use crate::faults::{self, Fault, QueuedFault, Target, BAD_GATEWAY_HTML};
use crate::feed::{DEFAULT_BYTE_BUDGET, OVER_BUDGET};
use crate::fixture::Fixture;
use crate::fixture::FixtureDesired;
use crate::http::{self, ReadError, Request, Response};
use crate::state::{Desired, Flavour, Labels, LogEntry, Record, Settings, State};
use crate::stats::{self, Stats};
use crate::{admin, time, tls, values};

/// How long an idle keep-alive connection stays open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long stopping waits for each thread before leaving it detached.
const JOIN_GRACE: Duration = Duration::from_secs(2);
/// How long a connection refused for a malformed request still reads (and drops) what its client sends.
const LINGER: Duration = Duration::from_millis(500);

/// How to start a sim.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Devices and catalogs; `None` is [`Fixture::builtin`].
    pub fixture: Option<Fixture>,
    /// `expires_in` of issued tokens. Default 3600.
    pub token_ttl_secs: u64,
    /// `renew_after` of issued tokens. Default 3000.
    pub renew_after_secs: u64,
    /// No log lines on stderr.
    pub quiet: bool,
    /// Serve a server certificate that expired in 2021 (for clients' certificate-time errors).
    pub expired_certificate: bool,
    /// Which of Realer's APIs to play: v1 (the seed page's; default) or v2 (`/desired-states`).
    pub flavour: Flavour,
    /// Seconds added to the sim's clock in its `Date` headers (a server whose clock is off, or a device's).
    pub clock_offset_secs: i64,
    /// The device plan byte budget: feed-data bodies (either endpoint) larger than this get 413/4013.
    /// Default 64 KiB.
    pub byte_budget: usize,
    /// Requests per minute each device may make to the iot/v1 endpoints (a burst of this many, then this
    /// rate); over it: 429/4029 with `Retry-After`. Default `None`: unlimited.
    pub requests_per_minute: Option<u32>,
    /// Token requests per minute each client may make to `/oauth/token`, a budget of its own; over it:
    /// 429/4029 with `Retry-After`. Default `None`: unlimited.
    pub token_requests_per_minute: Option<u32>,
    /// Realer's "local reported-state adoption" for every command: an accepted command report without
    /// `desired_id` becomes the command's value. Default off (fixture commands may enable it one by one).
    pub adopt_local_reports: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            fixture: None,
            token_ttl_secs: 3600,
            renew_after_secs: 3000,
            quiet: false,
            expired_certificate: false,
            flavour: Flavour::V1,
            clock_offset_secs: 0,
            byte_budget: DEFAULT_BYTE_BUDGET,
            requests_per_minute: None,
            token_requests_per_minute: None,
            adopt_local_reports: false,
        }
    }
}

/// A simulator serving on background threads. Dropping it stops the listener and every connection.
pub struct Sim {
    inner: Arc<Inner>,
}

struct Acceptor {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

struct Conn {
    stream: TcpStream,
    handle: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Net {
    /// The sim was dropped: never listen again.
    stopped: bool,
    accept: Option<Acceptor>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
}

pub(crate) struct Inner {
    start: Instant,
    clock_offset_secs: i64,
    token_ttl_secs: u64,
    renew_after_secs: u64,
    quiet: bool,
    pub(crate) admin_token: String,
    pub(crate) rng: SystemRandom,
    pub(crate) state: Mutex<State>,
    tls: Arc<ServerConfig>,
    ca_pem: String,
    addr: SocketAddr,
    net: Mutex<Net>,
}

/// Locks a mutex, ignoring poisoning: a panicking handler must not take the whole sim down.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a connection does after a request.
enum Outcome {
    Answer(Response),
    /// Close the TCP connection without answering and without close_notify.
    Drop,
    /// Never answer; wait for the client to give up.
    Hang,
    /// Answer one byte at a time, this long apart.
    Drip(Response, Duration),
}

fn join_within(handle: JoinHandle<()>, deadline: Instant) {
    while !handle.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
    }
    if handle.is_finished() {
        let _ = handle.join();
    }
}

impl Sim {
    /// Makes a fresh CA and server certificate, binds `opts.listen` and starts serving.
    pub fn start(opts: SimOptions) -> io::Result<Sim> {
        let fixture = opts.fixture.unwrap_or_else(Fixture::builtin);
        let (tls, ca_pem) = tls::make(opts.expired_certificate).map_err(io::Error::other)?;
        let listener = TcpListener::bind(opts.listen)?;
        let addr = listener.local_addr()?;
        let rng = SystemRandom::new();
        let admin_token = random_hex(&rng, 16);
        let settings = Settings {
            byte_budget: opts.byte_budget.max(1),
            requests_per_minute: opts.requests_per_minute.filter(|n| *n > 0),
            token_requests_per_minute: opts.token_requests_per_minute.filter(|n| *n > 0),
            adopt_local_reports: opts.adopt_local_reports,
        };
        let inner = Arc::new(Inner {
            start: Instant::now(),
            clock_offset_secs: opts.clock_offset_secs,
            token_ttl_secs: opts.token_ttl_secs,
            renew_after_secs: opts.renew_after_secs,
            quiet: opts.quiet,
            admin_token,
            rng,
            state: Mutex::new(State::new(&fixture, time::now_unix(), opts.flavour, settings)),
            tls,
            ca_pem,
            addr,
            net: Mutex::new(Net::default()),
        });
        {
            let mut net = lock(&inner.net);
            Inner::spawn_acceptor(&inner, &mut net, listener)?;
        }
        Ok(Sim { inner })
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `https://HOST:PORT`, no trailing slash (IPv6 hosts in brackets).
    pub fn base_url(&self) -> String {
        format!("https://{}", self.inner.addr)
    }

    /// The throwaway CA certificate (PEM) that signed the server certificate.
    pub fn ca_pem(&self) -> String {
        self.inner.ca_pem.clone()
    }

    /// The bearer token of the `/_sim/` admin interface.
    pub fn admin_token(&self) -> String {
        self.inner.admin_token.clone()
    }

    /// Queues `fault` for the next `count` requests matching `target` (FIFO: a request consumes one count of
    /// the first queued fault it matches). Admin requests are never faulted.
    pub fn inject(&self, fault: Fault, target: Target, count: u32) {
        self.inner.inject(fault, target, count);
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.state).faults.clear();
    }

    /// Expires every token issued so far (later requests with them get 401/4001).
    pub fn expire_all_tokens(&self) {
        self.inner.expire_all_tokens();
    }

    /// Revokes every token issued so far, as an operator would (later requests with them get 401/4001); the
    /// number of tokens revoked.
    pub fn revoke_all_tokens(&self) -> usize {
        self.inner.revoke_all_tokens()
    }

    /// Gives a device a new client secret (`secret`, or a random one when `None`) and returns it: token
    /// requests with the old one get 401 `invalid_client` from now on. Tokens already issued stay valid
    /// (revoke them with [`Sim::revoke_all_tokens`]).
    pub fn rotate_client_secret(&self, device_id: &str, secret: Option<&str>) -> Result<String, String> {
        self.inner.rotate_secret(device_id, secret)
    }

    /// The settings in force (those a test may change while the sim runs).
    pub fn settings(&self) -> Settings {
        lock(&self.inner.state).settings.clone()
    }

    /// Sets the device plan byte budget (bytes; at least 1).
    pub fn set_byte_budget(&self, bytes: usize) {
        lock(&self.inner.state).settings.byte_budget = bytes.max(1);
    }

    /// Sets (or with `None` or 0 lifts) the per-device budget of iot/v1 requests per minute. Every budget
    /// starts full again.
    pub fn set_requests_per_minute(&self, per_minute: Option<u32>) {
        let mut state = lock(&self.inner.state);
        state.settings.requests_per_minute = per_minute.filter(|n| *n > 0);
        state.devices.iter_mut().for_each(|d| d.budget = None);
    }

    /// Sets (or with `None` or 0 lifts) the per-client budget of token requests per minute. Every budget
    /// starts full again.
    pub fn set_token_requests_per_minute(&self, per_minute: Option<u32>) {
        let mut state = lock(&self.inner.state);
        state.settings.token_requests_per_minute = per_minute.filter(|n| *n > 0);
        state.devices.iter_mut().for_each(|d| d.token_budget = None);
    }

    /// Turns local reported-state adoption on or off for every command (commands with `local_adoption` in
    /// the fixture, or set with [`Sim::set_local_adoption`], adopt whatever this says).
    pub fn set_adopt_local_reports(&self, adopt: bool) {
        lock(&self.inner.state).settings.adopt_local_reports = adopt;
    }

    /// Turns local reported-state adoption on or off for one command.
    pub fn set_local_adoption(&self, device_id: &str, command_id: &str, adopt: bool) -> Result<(), String> {
        self.inner.set_local_adoption(device_id, command_id, adopt)
    }

    /// The request counters: totals per status and endpoint, and one bucket per second (see [`Stats`]).
    pub fn stats(&self) -> Stats {
        lock(&self.inner.state).stats.clone()
    }

    /// Zeroes the request counters.
    pub fn reset_stats(&self) {
        lock(&self.inner.state).stats = Stats::default();
    }

    /// Every stored feed-data record, in `feed_data_id` order.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.inner.state).records.clone()
    }

    /// Switches the label vocabulary of error answers from now on (contract section 6).
    pub fn set_labels(&self, labels: Labels) {
        lock(&self.inner.state).labels = labels;
    }

    /// Sets a new desired state for a command of a device, as a user would in Realer: its `desired_id` must
    /// be new for the device and its value valid for the command's `value_type`.
    pub fn add_desired_state(&self, device_id: &str, desired: &FixtureDesired, command_id: &str) -> Result<(), String> {
        self.inner.add_desired(device_id, command_id, desired)
    }

    /// A user sets `value` on a command in Realer: a new desired state with a fresh `desired_id`, the next
    /// `sequence_number` of that command, expiring in an hour. Returns it.
    pub fn set_desired_value(&self, device_id: &str, command_id: &str, value: &str) -> Result<FixtureDesired, String> {
        self.inner.set_desired_value(device_id, command_id, value, 3600)
    }

    /// The desired states a device has pending (as `/desired-states` would list them in v2).
    pub fn desired_states(&self, device_id: &str) -> Vec<serde_json::Value> {
        let state = lock(&self.inner.state);
        state.device_index(device_id).map(|d| state.devices[d].desired_states()).unwrap_or_default()
    }

    pub fn tokens_issued(&self) -> u64 {
        lock(&self.inner.state).tokens_issued
    }

    /// Every non-admin request read so far, in the order they were decided.
    pub fn request_log(&self) -> Vec<LogEntry> {
        lock(&self.inner.state).log.clone()
    }

    /// `true`: stop listening and drop every open connection. `false`: listen again on the same port. State
    /// (records, tokens, faults, log) is kept. Panics if the port cannot be bound again.
    pub fn set_down(&self, down: bool) {
        if let Err(e) = self.try_set_down(down) {
            panic!("realer-sim: cannot listen again on {}: {e}", self.inner.addr);
        }
    }

    /// [`Sim::set_down`], reporting a failure to bind the port again instead of panicking.
    pub fn try_set_down(&self, down: bool) -> io::Result<()> {
        Inner::set_down(&self.inner, down)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        lock(&self.inner.net).stopped = true;
        self.inner.stop_listening();
    }
}

impl Inner {
    /// Milliseconds since the sim started (the clock of the request log and the per-second counters).
    pub(crate) fn uptime_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub(crate) fn inject(&self, fault: Fault, target: Target, count: u32) {
        if count > 0 {
            lock(&self.state).faults.push(QueuedFault { fault, target, remaining: count });
        }
    }

    /// Adds a pending desired state (a user set a value in Realer). Its `desired_id` must be new for the device,
    /// and its value valid for the command's `value_type` (Realer validates what users set, too).
    pub(crate) fn add_desired(&self, device_id: &str, command_id: &str, d: &FixtureDesired) -> Result<(), String> {
        let now = time::now_unix();
        let expires_at = match (&d.expires_at, d.expires_in_secs) {
            (Some(at), None) => {
                time::parse_rfc3339_utc(at).map_err(|_| "expires_at must be RFC 3339 UTC".to_string())?
            }
            (None, Some(secs)) => now + secs,
            _ => return Err("give exactly one of expires_at and expires_in_secs".into()),
        };
        let mut state = lock(&self.state);
        let at = state.device_index(device_id).ok_or_else(|| format!("no device {device_id}"))?;
        let device = &mut state.devices[at];
        if device.commands.iter().any(|c| c.known_desired.iter().any(|(id, _)| *id == d.desired_id)) {
            return Err(format!("desired_id {} is already known", d.desired_id));
        }
        let command = device
            .commands
            .iter_mut()
            .find(|c| c.id.to_string() == command_id && c.fields.is_ok())
            .ok_or_else(|| format!("no representable command {command_id} on device {device_id}"))?;
        if let Ok(fields) = &command.fields {
            if let Some(why) = values::command_value_error(&fields.value_type, &d.value) {
                return Err(format!("value {why}"));
            }
        }
        command.max_sequence = command.max_sequence.max(d.sequence_number);
        command.known_desired.push((d.desired_id.clone(), Some(expires_at)));
        command.pending.push(Desired {
            desired_id: d.desired_id.clone(),
            value: d.value.clone(),
            sequence_number: d.sequence_number,
            expires_at,
        });
        Ok(())
    }

    /// A user sets `value`: a desired state with a fresh id and the command's next sequence number.
    pub(crate) fn set_desired_value(
        &self,
        device_id: &str,
        command_id: &str,
        value: &str,
        expires_in_secs: i64,
    ) -> Result<FixtureDesired, String> {
        let sequence_number = {
            let state = lock(&self.state);
            let at = state.device_index(device_id).ok_or_else(|| format!("no device {device_id}"))?;
            state.devices[at]
                .commands
                .iter()
                .find(|c| c.id.to_string() == command_id)
                .map(|c| c.next_sequence_number())
                .ok_or_else(|| format!("no command {command_id} on device {device_id}"))?
        };
        // Realer's public ids: a prefix and 26 characters (30 in all).
        let desired = FixtureDesired {
            desired_id: format!("des_{}", &random_hex(&self.rng, 13)),
            value: value.to_string(),
            sequence_number,
            expires_at: Some(time::format_rfc3339(time::now_unix() + expires_in_secs)),
            expires_in_secs: None,
        };
        self.add_desired(device_id, command_id, &desired)?;
        Ok(desired)
    }

    pub(crate) fn revoke_all_tokens(&self) -> usize {
        let mut state = lock(&self.state);
        let mut n = 0;
        for t in state.tokens.values_mut().filter(|t| !t.revoked) {
            t.revoked = true;
            n += 1;
        }
        n
    }

    pub(crate) fn rotate_secret(&self, device_id: &str, secret: Option<&str>) -> Result<String, String> {
        let secret = match secret {
            Some("") => return Err("client_secret must not be empty".into()),
            Some(s) => s.to_string(),
            None => random_hex(&self.rng, 16),
        };
        let mut state = lock(&self.state);
        let at = state.device_index(device_id).ok_or_else(|| format!("no device {device_id}"))?;
        state.devices[at].client_secret = secret.clone();
        Ok(secret)
    }

    pub(crate) fn set_local_adoption(&self, device_id: &str, command_id: &str, adopt: bool) -> Result<(), String> {
        let mut state = lock(&self.state);
        let at = state.device_index(device_id).ok_or_else(|| format!("no device {device_id}"))?;
        let command = state.devices[at]
            .commands
            .iter_mut()
            .find(|c| c.id.to_string() == command_id && c.fields.is_ok())
            .ok_or_else(|| format!("no representable command {command_id} on device {device_id}"))?;
        command.local_adoption = adopt;
        Ok(())
    }

    pub(crate) fn expire_all_tokens(&self) -> usize {
        let now = Instant::now();
        let mut state = lock(&self.state);
        for t in state.tokens.values_mut() {
            t.expires = t.expires.min(now);
        }
        state.tokens.len()
    }

    pub(crate) fn set_down(this: &Arc<Inner>, down: bool) -> io::Result<()> {
        if down {
            this.stop_listening();
            return Ok(());
        }
        let mut net = lock(&this.net);
        if net.stopped || net.accept.is_some() {
            return Ok(());
        }
        // Connections the sim closed linger in TIME_WAIT; std sets SO_REUSEADDR, and a retry covers the rest.
        let deadline = Instant::now() + Duration::from_secs(3);
        let listener = loop {
            match TcpListener::bind(this.addr) {
                Ok(l) => break l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(e),
            }
        };
        Inner::spawn_acceptor(this, &mut net, listener)
    }

    fn spawn_acceptor(this: &Arc<Inner>, net: &mut Net, listener: TcpListener) -> io::Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let (inner, flag) = (Arc::clone(this), Arc::clone(&stop));
        let handle = thread::Builder::new()
            .name("realer-sim-accept".into())
            .spawn(move || Inner::accept_loop(&inner, listener, &flag))?;
        net.accept = Some(Acceptor { stop, handle });
        Ok(())
    }

    fn accept_loop(this: &Arc<Inner>, listener: TcpListener, stop: &AtomicBool) {
        for stream in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            match stream {
                Ok(stream) => Inner::register(this, stream, stop),
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    fn register(this: &Arc<Inner>, stream: TcpStream, stop: &AtomicBool) {
        let mut net = lock(&this.net);
        if stop.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        let Ok(clone) = stream.try_clone() else {
            return;
        };
        let id = net.next_conn;
        net.next_conn += 1;
        let inner = Arc::clone(this);
        let spawned = thread::Builder::new().name("realer-sim-conn".into()).spawn(move || {
            Inner::serve(&inner, stream);
            lock(&inner.net).conns.remove(&id);
        });
        if let Ok(handle) = spawned {
            net.conns.insert(id, Conn { stream: clone, handle: Some(handle) });
        }
    }

    /// Closes the listening socket and every open connection, then waits (briefly) for their threads.
    fn stop_listening(&self) {
        let (acceptor, conns) = {
            let mut net = lock(&self.net);
            if let Some(a) = &net.accept {
                a.stop.store(true, Ordering::SeqCst);
            }
            let conns: Vec<Conn> = net.conns.drain().map(|(_, c)| c).collect();
            (net.accept.take(), conns)
        };
        let deadline = Instant::now() + JOIN_GRACE;
        if let Some(a) = acceptor {
            // Wake the blocking accept() so the thread sees the flag and drops the listener.
            let wake_ip = match self.addr.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            let _ = TcpStream::connect_timeout(&SocketAddr::new(wake_ip, self.addr.port()), JOIN_GRACE);
            join_within(a.handle, deadline);
        }
        for c in &conns {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        for c in conns {
            if let Some(h) = c.handle {
                join_within(h, deadline);
            }
        }
    }

    fn log_line(&self, line: &str) {
        if !self.quiet {
            eprintln!("realer-sim: {line}");
        }
    }

    /// Serves one connection until it closes.
    fn serve(this: &Arc<Inner>, tcp: TcpStream) {
        let me = this.as_ref();
        let peer = tcp.peer_addr().ok();
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(IDLE_TIMEOUT));
        let Ok(conn) = ServerConnection::new(Arc::clone(&me.tls)) else {
            return;
        };
        let mut tls = StreamOwned::new(conn, tcp);
        let mut buf = Vec::new();
        loop {
            // A budget set above the read limit still gets Realer's 413, not the reader's.
            let max_body = || http::MAX_READ_BODY.max(lock(&me.state).settings.byte_budget.saturating_add(1));
            let req = match http::read_request(&mut tls, &mut buf, &max_body) {
                Ok(Some(req)) => req,
                Ok(None) | Err(ReadError::Closed) => {
                    if tls.conn.is_handshaking() {
                        if let Some(peer) = peer {
                            me.log_line(&format!("{peer}: connection closed before TLS was established"));
                        }
                    }
                    break;
                }
                Err(ReadError::Malformed(status, why)) => {
                    // Only codes of Realer's table: 413 is the byte budget; everything else (a 5xx the
                    // reader chose too) is a bad request.
                    let resp = match status {
                        413 => api::error(&me.rng, 413, 4013, OVER_BUDGET, None),
                        431 => api::error(&me.rng, 431, 4000, why, None),
                        _ => api::error(&me.rng, 400, 4000, why, None),
                    };
                    me.log_line(&format!("malformed request: {why} -> {status}"));
                    let _ = tls.write_all(&resp.serialize(true));
                    let _ = tls.flush();
                    // A lingering close, as nginx's: the rest of the request (a header or body past a limit) is
                    // read and dropped for a moment, so that closing with it unread does not send a reset that
                    // can overtake the answer.
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                    let _ = tls.sock.shutdown(Shutdown::Write);
                    let _ = tls.sock.set_read_timeout(Some(LINGER));
                    let lingering = Instant::now();
                    let mut sink = [0u8; 16 * 1024];
                    while lingering.elapsed() < LINGER && matches!(tls.sock.read(&mut sink), Ok(n) if n > 0) {}
                    return;
                }
            };
            let started = Instant::now();
            let close = !req.keep_alive;
            match Inner::answer(this, &req, started) {
                Outcome::Answer(resp) => {
                    let resp =
                        resp.with_header("Date", time::format_http_date(time::now_unix() + me.clock_offset_secs));
                    let written = tls.write_all(&resp.serialize(close)).and_then(|()| tls.flush());
                    if written.is_err() || close {
                        break;
                    }
                }
                Outcome::Drop => {
                    let _ = tls.sock.shutdown(Shutdown::Both);
                    return;
                }
                Outcome::Drip(resp, every) => {
                    for byte in resp.serialize(true) {
                        if tls.write_all(&[byte]).and_then(|()| tls.flush()).is_err() {
                            break;
                        }
                        thread::sleep(every);
                    }
                    let _ = tls.sock.shutdown(Shutdown::Both);
                    return;
                }
                Outcome::Hang => {
                    let _ = tls.sock.set_read_timeout(None);
                    let mut sink = [0u8; 4096];
                    while matches!(tls.read(&mut sink), Ok(n) if n > 0) {}
                    let _ = tls.sock.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
        tls.conn.send_close_notify();
        let _ = tls.flush();
        let _ = tls.sock.shutdown(Shutdown::Both);
    }

    /// Applies faults, handles the request, and records it.
    fn answer(this: &Arc<Inner>, req: &Request, started: Instant) -> Outcome {
        if req.path == "/_sim" || req.path.starts_with("/_sim/") {
            let resp = admin::handle(this, req);
            this.log_line(&format!(
                "{} {} {} {}ms (admin)",
                req.method,
                req.path,
                resp.status,
                started.elapsed().as_millis()
            ));
            return Outcome::Answer(resp);
        }
        let at_ms = started.duration_since(this.start).as_millis() as u64;
        let bearer = req.authorization("Bearer");
        let (fault, bearer_valid) = {
            let mut state = lock(&this.state);
            let valid = bearer.is_some_and(|t| state.token_valid(t, started));
            (faults::take(&mut state.faults, req), valid)
        };
        let outcome = match &fault {
            None => Outcome::Answer(this.dispatch(req)),
            Some(Fault::Delay { ms }) => {
                thread::sleep(Duration::from_millis(*ms));
                Outcome::Answer(this.dispatch(req))
            }
            Some(Fault::ServiceUnavailable) => {
                Outcome::Answer(api::error(&this.rng, 503, 5003, "the service is temporarily unavailable", None))
            }
            Some(Fault::RateLimited { retry_after_secs }) => {
                Outcome::Answer(api::rate_limited(&this.rng, "too many requests", *retry_after_secs))
            }
            Some(Fault::SubscriptionInactive) => {
                Outcome::Answer(api::error(&this.rng, 402, 4002, "the device's subscription is not active", None))
            }
            Some(Fault::NotFound) => {
                Outcome::Answer(api::error(&this.rng, 404, 4004, &format!("no such path: {}", req.path), None))
            }
            Some(Fault::UnreadableSuccess) => {
                this.dispatch(req);
                Outcome::Answer(api::ok(&this.rng, 200, &serde_json::json!({"code": 2000, "status": "accepted"})))
            }
            Some(Fault::Warnings) => {
                let resp = this.dispatch(req);
                match serde_json::from_slice::<serde_json::Value>(&resp.body) {
                    Ok(serde_json::Value::Object(mut body)) => {
                        body.insert(
                            "warnings".into(),
                            serde_json::json!([{"type": "clock_skew", "message": "value_received_at is 4 minutes ahead"}]),
                        );
                        Outcome::Answer(Response { body: serde_json::to_vec(&body).unwrap_or_default(), ..resp })
                    }
                    _ => Outcome::Answer(resp),
                }
            }
            Some(Fault::Answer { status, body }) => Outcome::Answer(
                Response::new(*status, "application/json", body.clone().into_bytes())
                    .with_header("X-Request-Id", api::request_id(&this.rng)),
            ),
            Some(Fault::ProxyBadGateway) => Outcome::Answer(
                Response::new(502, "text/html", BAD_GATEWAY_HTML.as_bytes().to_vec()).with_header("Server", "nginx"),
            ),
            Some(Fault::CloseBeforeAnswer) => Outcome::Drop,
            Some(Fault::StoreThenClose) => {
                this.dispatch(req);
                Outcome::Drop
            }
            Some(Fault::Hang) => Outcome::Hang,
            Some(Fault::StoreThenHang) => {
                this.dispatch(req);
                Outcome::Hang
            }
            Some(Fault::Drip { ms }) => Outcome::Drip(this.dispatch(req), Duration::from_millis(*ms)),
            Some(Fault::ProxyPage { status, body }) => Outcome::Answer(faults::page(*status, *body)),
            Some(Fault::StoreThenPage { status, body }) => {
                this.dispatch(req);
                Outcome::Answer(faults::page(*status, *body))
            }
            Some(Fault::BodyLimit { max_bytes }) if req.body.len() > *max_bytes => {
                Outcome::Answer(faults::page(413, faults::PageBody::Html))
            }
            Some(Fault::BodyLimit { .. }) => Outcome::Answer(this.dispatch(req)),
        };
        let labels = lock(&this.state).labels;
        let outcome = match outcome {
            Outcome::Answer(resp) => Outcome::Answer(api::relabel(resp, labels)),
            other => other,
        };
        let status = match &outcome {
            Outcome::Answer(resp) => resp.status,
            _ => 0,
        };
        {
            let mut state = lock(&this.state);
            state.stats.count(stats::endpoint(&req.path), status, at_ms / 1000);
            state.log.push(LogEntry {
                method: req.method.clone(),
                path: req.path.clone(),
                status,
                bearer_valid,
                at_ms,
            });
        }
        if !this.quiet {
            let mut line = format!(
                "{} {} {} {}ms",
                req.method,
                req.path,
                if status == 0 { "-".to_string() } else { status.to_string() },
                started.elapsed().as_millis()
            );
            if let Some(t) = bearer {
                line.push_str(&format!(" bearer={}{}", redact(t), if bearer_valid { "" } else { " (invalid)" }));
            }
            if let Some(f) = &fault {
                line.push_str(&format!(" fault={}", f.name()));
            }
            this.log_line(&line);
        }
        outcome
    }

    /// The normal answer to a non-admin request.
    fn dispatch(&self, req: &Request) -> Response {
        let mut state = lock(&self.state);
        let mut ctx = Ctx {
            state: &mut state,
            rng: &self.rng,
            now: Instant::now(),
            now_unix: time::now_unix(),
            token_ttl_secs: self.token_ttl_secs,
            renew_after_secs: self.renew_after_secs,
        };
        api::handle(&mut ctx, req)
    }
}
