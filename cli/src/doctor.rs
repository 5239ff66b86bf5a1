//! `realer doctor`: every step of reaching Realer, each PASS, WARN, FAIL (or SKIP when an earlier step it needs
//! failed), with the figure it measured and, when it is not a PASS, the likely cause and the fix. It changes
//! nothing in Realer's data: it reads the catalog and the desired states, and asks for a token.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use realer::{Client, Config, DesiredSource, ErrorKind};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::{json, Value};

use crate::out::{Out, Tone};
use crate::{load_config, Global};

/// Past this, a device's timestamps are wrong enough to matter (and certificates near their edges fail).
const CLOCK_WARN: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

struct Step {
    name: &'static str,
    status: Status,
    detail: String,
    cause: Option<String>,
    fix: Option<String>,
    ms: Option<u128>,
    data: Value,
}

fn step(name: &'static str, status: Status, detail: impl Into<String>) -> Step {
    Step { name, status, detail: detail.into(), cause: None, fix: None, ms: None, data: Value::Null }
}

impl Step {
    fn why(mut self, cause: impl Into<String>, fix: impl Into<String>) -> Step {
        self.cause = Some(cause.into());
        self.fix = Some(fix.into());
        self
    }
    fn took(mut self, since: Instant) -> Step {
        self.ms = Some(since.elapsed().as_millis());
        self
    }
    fn data(mut self, data: Value) -> Step {
        self.data = data;
        self
    }
}

/// The host and port of a base URL (`https://host[:port]`, IPv6 in brackets).
fn host_port(base_url: &str) -> Option<(String, u16, bool)> {
    let (tls, rest) = match base_url.split_once("://")? {
        ("https", rest) => (true, rest),
        ("http", rest) => (false, rest),
        _ => return None,
    };
    let authority = rest.split('/').next()?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None if tls => 443,
        None => 80,
    };
    Some((host, port, tls))
}

/// Records the server's certificate on its way to the real verifier, so that a refused one can be shown.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<Vec<u8>>>,
    refused: Mutex<Option<rustls::Error>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(end_entity.to_vec());
        let verdict = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        if let Err(e) = &verdict {
            *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
        }
        verdict
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Subject, issuer and validity of a DER certificate, for people.
struct CertFacts {
    subject: String,
    issuer: String,
    not_before_ms: i64,
    not_after_ms: i64,
}

fn cert_facts(der: &[u8]) -> Option<CertFacts> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let v = cert.validity();
    Some(CertFacts {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before_ms: v.not_before.timestamp() * 1000,
        not_after_ms: v.not_after.timestamp() * 1000,
    })
}

fn when(ms: i64) -> String {
    realer::time::format_rfc3339_ms(ms).map_or_else(|| ms.to_string(), |s| s.replace(".000Z", "Z"))
}

/// `CONNECT host:port` through the proxy: the tunnel the TLS step then uses.
fn proxy_step(
    proxy: &realer::Proxy,
    host: &str,
    port: u16,
    timeout: Duration,
    steps: &mut Vec<Step>,
) -> Option<TcpStream> {
    let started = Instant::now();
    // CONNECT names an IPv6 address in brackets.
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    let target = format!("{host}:{port}");
    let data = json!({"proxy": proxy.url(), "target": target, "credentials": proxy.has_credentials()});
    match proxy.open_tunnel(&host, port, timeout) {
        Ok(tunnel) => {
            let ms = started.elapsed().as_millis();
            steps.push(
                step("proxy", Status::Pass, format!("{} opened a tunnel to {target} in {ms} ms", proxy.url()))
                    .took(started)
                    .data(data),
            );
            Some(tunnel)
        }
        Err(e) => {
            let m = &e.message;
            let (cause, fix) = if m.contains("HTTP 407") || m.contains("HTTP 401") {
                (
                    "the proxy wants credentials, or refused the ones given",
                    "give the proxy's user name and password in REALER_PROXY: http://user:password@host:port",
                )
            } else if m.contains("HTTP 403") {
                (
                    "the proxy does not allow tunnels to Realer's host and port",
                    "ask the network's administrator to allow CONNECT to Realer's host on its port",
                )
            } else if m.contains("refused CONNECT") {
                ("the proxy could not reach Realer, or failed", "try again later; check the proxy's own route out")
            } else {
                ("the proxy cannot be used", "check REALER_PROXY (host, port) and that the proxy runs")
            };
            steps.push(step("proxy", Status::Fail, m.clone()).took(started).data(data).why(cause, fix));
            None
        }
    }
}

/// The TLS handshake and, on the same connection, `GET /` for the server's `Date` header.
fn tls_and_clock(config: &Config, host: &str, tcp: TcpStream, steps: &mut Vec<Step>) {
    let started = Instant::now();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let trust = match config.trusted_certificates() {
        Some(certs) => {
            for der in &certs {
                let _ = roots.add(CertificateDer::from(der.clone()));
            }
            format!("the {} CA certificate(s) of REALER_CA_FILE", certs.len())
        }
        None => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            "the bundled Mozilla roots".to_string()
        }
    };
    let verifier = match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build() {
        Ok(v) => Arc::new(Recording { inner: v, seen: Mutex::new(None), refused: Mutex::new(None) }),
        Err(e) => {
            steps.push(step("tls", Status::Fail, format!("no usable CA certificate: {e}")));
            return;
        }
    };
    let tls_config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.dangerous().with_custom_certificate_verifier(verifier.clone()).with_no_client_auth());
    let (Ok(tls_config), Ok(name)) = (tls_config, ServerName::try_from(host.to_string())) else {
        steps.push(step("tls", Status::Fail, format!("cannot set up TLS for {host}")));
        return;
    };
    let mut conn = match ClientConnection::new(Arc::new(tls_config), name) {
        Ok(c) => c,
        Err(e) => {
            steps.push(step("tls", Status::Fail, format!("cannot set up TLS: {e}")));
            return;
        }
    };
    let mut sock = tcp;
    let (connect_timeout, _) = config.timeouts();
    let _ = sock.set_read_timeout(Some(connect_timeout));
    let _ = sock.set_write_timeout(Some(connect_timeout));
    let mut failed = None;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            failed = Some(e);
            break;
        }
    }
    let seen = verifier.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let facts = seen.as_deref().and_then(cert_facts);
    let now_ms = realer::time::now_unix_ms();
    let describe = |f: &CertFacts| {
        format!(
            "certificate {}, issued by {}, valid {} to {}",
            f.subject,
            f.issuer,
            when(f.not_before_ms),
            when(f.not_after_ms)
        )
    };
    let data = |f: &Option<CertFacts>| match f {
        Some(f) => json!({"subject": f.subject, "issuer": f.issuer, "not_before": when(f.not_before_ms),
            "not_after": when(f.not_after_ms)}),
        None => Value::Null,
    };
    if let Some(e) = failed {
        let refused = verifier.refused.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let rustls_error = refused.as_ref();
        let detail = facts.as_ref().map_or_else(|| format!("handshake failed: {e}"), describe);
        let s = step("tls", Status::Fail, detail).took(started).data(data(&facts));
        let s = match rustls_error {
            Some(rustls::Error::InvalidCertificate(
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
            )) => s.why(
                format!("the certificate is not valid at the device's time: the device clock says {}", when(now_ms)),
                "set the device's clock (NTP, or a working RTC); if the clock is right, the server's certificate \
                 has expired: tell Realer",
            ),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            )) => s.why(
                format!(
                    "the server's certificate is not signed by the configured CA ({trust}): a TLS-inspection proxy \
                     or captive portal?"
                ),
                "a network that inspects TLS (a corporate proxy) or holds a captive portal (guest Wi-Fi) answers \
                 in Realer's name: ask for an exception for Realer's host, or sign in to the portal; else check \
                 REALER_CA_FILE (unset it to use the bundled Mozilla roots)",
            ),
            Some(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)) => {
                s.why(format!("the certificate is not for {host}"), "check REALER_BASE_URL's host name")
            }
            Some(other) => s.why(
                format!("the server's certificate was refused: {other}"),
                "check REALER_CA_FILE and REALER_BASE_URL",
            ),
            None => s.why(
                format!("the TLS handshake failed: {e}"),
                "check that REALER_BASE_URL points at Realer's HTTPS port",
            ),
        };
        steps.push(s);
        return;
    }
    let protocol = conn.protocol_version().map_or("TLS".to_string(), |v| format!("{v:?}").replace("TLSv1_", "TLS 1."));
    let mut detail = protocol.clone();
    if let Some(f) = &facts {
        detail = format!("{protocol}; {}", describe(f));
    }
    let mut d = data(&facts);
    if let Value::Object(m) = &mut d {
        m.insert("protocol".into(), json!(protocol));
    }
    steps.push(step("tls", Status::Pass, detail).took(started).data(d));
    clock(&mut rustls::Stream::new(&mut conn, &mut sock), host, steps);
}

/// The offset of the server's `Date` from this device's clock.
fn clock(stream: &mut dyn ReadWrite, host: &str, steps: &mut Vec<Step>) {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: realer-doctor\r\nConnection: close\r\n\r\n");
    let sent_ms = realer::time::now_unix_ms();
    let mut head = Vec::new();
    let read = stream.write_all(request.as_bytes()).and_then(|()| {
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    });
    let now_ms = (sent_ms + realer::time::now_unix_ms()) / 2;
    let text = String::from_utf8_lossy(&head);
    let date = text
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("date")).map(|(_, v)| v.trim()));
    let Some(server_ms) = date.and_then(realer::time::parse_http_date_ms) else {
        let why = read.err().map_or("the server sent no Date header".to_string(), |e| format!("no answer: {e}"));
        steps.push(
            step("clock", Status::Warn, "cannot compare clocks").why(why, "nothing to do unless other steps fail"),
        );
        return;
    };
    // A Date has whole seconds: a second of difference is no offset.
    let offset_s = (server_ms - now_ms) as f64 / 1000.0;
    let offset = if offset_s.abs() < 1.5 { 0.0 } else { offset_s.round() };
    let data = json!({"offset_seconds": offset, "device_clock": when(now_ms), "server_clock": when(server_ms)});
    if offset.abs() > CLOCK_WARN.as_secs_f64() {
        let side = if offset > 0.0 { "behind" } else { "ahead of" };
        steps.push(
            step("clock", Status::Warn, format!("this device's clock is {} s {side} the server's", offset.abs()))
                .data(data)
                .why(
                    format!("the device clock says {}, the server {}", when(now_ms), when(server_ms)),
                    "set the clock (NTP): value_received_at of readings would be wrong, and certificates fail \
                     once the offset reaches their validity",
                ),
        );
    } else {
        steps.push(
            step("clock", Status::Pass, format!("within {} s of the server's", offset.abs().max(1.0))).data(data),
        );
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn api_failure(s: Step, e: &realer::Error) -> Step {
    match e.kind {
        ErrorKind::Auth => s.why(
            format!("the token endpoint refused the credentials ({})", e.error_type),
            "check REALER_CLIENT_ID and REALER_CLIENT_SECRET (a secret revoked in Realer?)",
        ),
        ErrorKind::Api if e.http_status == 402 => {
            s.why("the device's subscription is not active", "reactivate it in Realer; the data waits")
        }
        ErrorKind::Api if e.http_status == 403 => s.why(
            "the token may not do this (scope or device policy)",
            "check REALER_DEVICE_ID and REALER_SCOPE (unset it for the default scopes)",
        ),
        ErrorKind::Api if e.http_status == 404 => {
            s.why("no such device or path", "check REALER_DEVICE_ID and REALER_BASE_URL")
        }
        ErrorKind::Timeout => s.why("Realer did not answer in time", "check the network; try again later"),
        _ => s.why(e.message.clone(), "see the message; the steps above show what works"),
    }
}

/// Runs every step and prints them; exit status 0 when nothing FAILed.
pub(crate) fn run(g: &Global, out: &Out) -> ExitCode {
    let mut steps = Vec::new();
    run_steps(g, &mut steps);
    print(out, &steps);
    if steps.iter().any(|s| s.status == Status::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn skip_rest(steps: &mut Vec<Step>, names: &[&'static str], because: &str) {
    for n in names {
        steps.push(step(n, Status::Skip, format!("not tried: {because}")));
    }
}

fn run_steps(g: &Global, steps: &mut Vec<Step>) {
    const NETWORK: [&str; 8] = ["resolve", "connect", "tls", "clock", "token", "catalog", "desired states", "outbox"];
    let network_only = Global { outbox: None, ..g.clone() };
    let config = match load_config(&network_only).and_then(|c| Client::new(&c).map(|client| (c, client))) {
        Ok(x) => x,
        Err(e) => {
            let from = if g.config.is_some() { "the --config file" } else { "the REALER_* variables" };
            steps.push(step("configuration", Status::Fail, e.message.clone()).why(
                format!("{from} cannot configure a client"),
                "set REALER_DEVICE_ID, REALER_CLIENT_ID and REALER_CLIENT_SECRET (see realer --help)",
            ));
            skip_rest(steps, &NETWORK, "no configuration");
            return;
        }
    };
    let (config, client) = config;
    let ca = config
        .trusted_certificates()
        .map_or("bundled Mozilla roots".to_string(), |c| format!("{} CA certificate(s) from REALER_CA_FILE", c.len()));
    let proxy = config.proxy().cloned();
    let via = proxy.as_ref().map_or(String::new(), |p| {
        format!(", through the proxy {}{}", p.url(), if p.has_credentials() { " (with credentials)" } else { "" })
    });
    steps.push(
        step(
            "configuration",
            Status::Pass,
            format!(
                "{}, device {}, client {}, trusting {ca}{via}",
                config.base_url(),
                config.device_id().unwrap_or("-"),
                config.client_id().unwrap_or("-")
            ),
        )
        .data(json!({"base_url": config.base_url(), "device_id": config.device_id(), "client_id": config.client_id(),
            "scope": config.scope(), "proxy": proxy.as_ref().map(|p| p.url())})),
    );

    let Some((host, port, tls)) = host_port(config.base_url()) else {
        steps.push(step("resolve", Status::Fail, format!("cannot read {}", config.base_url())));
        return;
    };
    // Through a proxy, the device looks up and connects to the proxy; the proxy looks up Realer's name.
    let (reach_host, reach_port) = match &proxy {
        Some(p) => (p.host().trim_start_matches('[').trim_end_matches(']').to_string(), p.port()),
        None => (host.clone(), port),
    };
    let what = if proxy.is_some() { "the proxy's host " } else { "" };
    let started = Instant::now();
    let addrs: Vec<SocketAddr> = match (reach_host.as_str(), reach_port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            steps.push(step("resolve", Status::Fail, format!("{what}{reach_host}: {e}")).took(started).why(
                format!("{what}{reach_host} does not resolve"),
                if proxy.is_some() {
                    "check DNS (/etc/resolv.conf, the network's DNS server) and REALER_PROXY"
                } else {
                    "check DNS (/etc/resolv.conf, the network's DNS server) and REALER_BASE_URL"
                },
            ));
            skip_rest(steps, &NETWORK[1..], "the host does not resolve");
            return;
        }
    };
    let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    steps.push(
        step("resolve", Status::Pass, format!("{what}{reach_host}: {}", shown.join(", ")))
            .took(started)
            .data(json!(shown)),
    );

    let (connect_timeout, _) = config.timeouts();
    let started = Instant::now();
    let mut last = None;
    let tcp = addrs.iter().find_map(|a| match TcpStream::connect_timeout(a, connect_timeout) {
        Ok(s) => Some((s, *a)),
        Err(e) => {
            last = Some(e);
            None
        }
    });
    let Some((tcp, addr)) = tcp else {
        let e = last.map_or("no address".to_string(), |e| e.to_string());
        steps.push(step("connect", Status::Fail, format!("{what}{reach_host}:{reach_port}: {e}")).took(started).why(
            format!("nothing accepts connections on port {reach_port} there (or a firewall drops them)"),
            if proxy.is_some() {
                "check REALER_PROXY's port, the network route and the firewall"
            } else {
                "check REALER_BASE_URL's port, the network route and the firewall"
            },
        ));
        skip_rest(steps, &NETWORK[2..], "no connection");
        return;
    };
    let ms = started.elapsed().as_millis();
    steps.push(step("connect", Status::Pass, format!("{what}{addr} in {ms} ms")).took(started));
    let tcp = match &proxy {
        None => tcp,
        Some(p) => {
            drop(tcp);
            let Some(tunnel) = proxy_step(p, &host, port, connect_timeout, steps) else {
                skip_rest(steps, &NETWORK[2..], "the proxy opened no tunnel");
                return;
            };
            tunnel
        }
    };

    if tls {
        tls_and_clock(&config, &host, tcp, steps);
        if steps.last().is_some_and(|s| s.name == "tls" && s.status == Status::Fail) {
            skip_rest(steps, &NETWORK[3..], "no TLS connection");
            return;
        }
    } else {
        steps.push(step("tls", Status::Warn, "plain HTTP (allowed for loopback tests only)"));
        let mut tcp = tcp;
        clock(&mut tcp, &host, steps);
    }

    let started = Instant::now();
    match client.authenticate() {
        Ok(()) => {
            let info = client.token_info();
            let secs = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{} s", d.as_secs()));
            let scope = info.as_ref().and_then(|i| i.scope.clone());
            let detail = format!(
                "scope {:?}, expires_in {}, renew_after {}",
                scope.as_deref().unwrap_or("(not said)"),
                secs(info.as_ref().and_then(|i| i.expires_in)),
                secs(info.as_ref().and_then(|i| i.renew_after))
            );
            steps.push(step("token", Status::Pass, detail).took(started).data(json!({"scope": scope,
                "expires_in": info.as_ref().and_then(|i| i.expires_in).map(|d| d.as_secs()),
                "renew_after": info.as_ref().and_then(|i| i.renew_after).map(|d| d.as_secs())})));
        }
        Err(e) => {
            steps.push(api_failure(step("token", Status::Fail, e.to_string()).took(started), &e));
            skip_rest(steps, &NETWORK[5..7], "no token");
            outbox_step(g, steps);
            return;
        }
    }

    let started = Instant::now();
    match (client.fetch_commands(), client.fetch_sensors()) {
        (Ok(c), Ok(s)) => {
            let bad = c.iter().filter(|c| c.error.is_some()).count() + s.iter().filter(|s| s.error.is_some()).count();
            steps.push(
                step(
                    "catalog",
                    Status::Pass,
                    format!("{} command(s), {} sensor(s), {bad} that Realer cannot represent", c.len(), s.len()),
                )
                .took(started)
                .data(json!({"commands": c.len(), "sensors": s.len(), "unrepresentable": bad})),
            );
        }
        (Err(e), _) | (_, Err(e)) => {
            steps.push(api_failure(step("catalog", Status::Fail, e.to_string()).took(started), &e))
        }
    }

    let started = Instant::now();
    match client.fetch_desired_states() {
        Ok(d) => {
            let (kind, detail) = match d.source {
                DesiredSource::DesiredStates => {
                    ("desired_states", format!("a newer service: {} desired state(s) pending", d.states.len()))
                }
                DesiredSource::Catalog => {
                    ("catalog", "an older service (no /desired-states): the catalog's values say what it wants".into())
                }
            };
            let data = json!({"source": kind, "pending": d.states.len()});
            let s = match client.desired_states_fallback() {
                // A newer service refusing the token: its desired states are never delivered.
                Some(f) if f.scope_lacks_desired_state_read => step(
                    "desired states",
                    Status::Warn,
                    "/desired-states answered 403: the token's scope lacks iot:desired-state:read; the catalog's \
                     values stand in (on a newer service they are confirmed values, not what Realer wants)",
                )
                .why(
                    "REALER_SCOPE (or the config file's scope) lists scopes without iot:desired-state:read",
                    "unset REALER_SCOPE (Realer grants its default HTTPS scopes), or add iot:desired-state:read to it",
                ),
                _ => step("desired states", Status::Pass, detail),
            };
            steps.push(s.took(started).data(data));
        }
        Err(e) => steps.push(api_failure(step("desired states", Status::Fail, e.to_string()).took(started), &e)),
    }
    outbox_step(g, steps);
}

fn outbox_step(g: &Global, steps: &mut Vec<Step>) {
    let Some(path) = &g.outbox else {
        steps.push(step("outbox", Status::Skip, "no --outbox given"));
        return;
    };
    let started = Instant::now();
    if !std::path::Path::new(path).is_file() {
        steps.push(step("outbox", Status::Fail, format!("{path}: no such file")).why(
            "the firmware has not made its outbox there",
            "give the path the firmware uses (realer_config_set_outbox)",
        ));
        return;
    }
    let checked = load_config(g).and_then(|c| Client::new(&c)).and_then(|c| Ok((c.outbox_check()?, c.outbox_stats()?)));
    let (problems, stats) = match checked {
        Ok(x) => x,
        Err(e) => {
            steps.push(step("outbox", Status::Fail, e.to_string()).took(started).why(
                "the outbox file cannot be opened or read",
                "check its permissions and the disk; a damaged file can be moved away (its items are lost)",
            ));
            return;
        }
    };
    let file_bytes: u64 = ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{path}{suffix}")).ok())
        .map(|m| m.len())
        .sum();
    let dir =
        std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let free = rustix::fs::statvfs(dir).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize));
    let data = json!({"pending": stats.pending, "dead": stats.dead, "bytes": stats.bytes, "file_bytes": file_bytes,
        "free_bytes": free, "integrity": if problems.is_empty() { "ok".to_string() } else { problems.join("; ") }});
    let detail = format!(
        "{} pending ({} bytes), {} dead letter(s), files {} KiB, {} free",
        stats.pending,
        stats.bytes,
        stats.dead,
        file_bytes / 1024,
        free.map_or("?".into(), |f| format!("{} MiB", f / (1 << 20)))
    );
    let s = if !problems.is_empty() {
        step("outbox", Status::Fail, format!("damaged: {}", problems.join("; ")))
            .why("SQLite's check found damage", "move the file away and let the firmware make a new one")
    } else if free.is_some_and(|f| f < 1 << 20) {
        step("outbox", Status::Warn, detail).why(
            "less than 1 MiB free beside the outbox: new readings will be refused",
            "free disk space; `realer outbox flush` once Realer can be reached",
        )
    } else if stats.dead > 0 {
        step("outbox", Status::Warn, detail).why(
            "Realer refused some items for good",
            "see `realer outbox dead`; fix the cause, then `retry-dead`, or `purge-dead`",
        )
    } else {
        step("outbox", Status::Pass, detail)
    };
    steps.push(s.took(started).data(data));
}

fn print(out: &Out, steps: &[Step]) {
    if out.json {
        let ok = !steps.iter().any(|s| s.status == Status::Fail);
        out.json_doc(&json!({"ok": ok, "steps": steps.iter().map(|s| json!({
            "step": s.name, "status": s.status.word().to_ascii_lowercase(), "detail": s.detail,
            "cause": s.cause, "fix": s.fix, "ms": s.ms, "data": s.data})).collect::<Vec<_>>()}));
        return;
    }
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in steps {
        let tone = match s.status {
            Status::Pass => Tone::Good,
            Status::Warn => Tone::Warn,
            Status::Fail => Tone::Bad,
            Status::Skip => Tone::Dim,
        };
        println!("{}  {:<width$}  {}", out.paint(s.status.word(), tone), s.name, s.detail);
        if let Some(c) = &s.cause {
            println!("      {:<width$}  cause: {c}", "");
        }
        if let Some(f) = &s.fix {
            println!("      {:<width$}  fix:   {f}", "");
        }
    }
    let failed = steps.iter().filter(|s| s.status == Status::Fail).count();
    let warned = steps.iter().filter(|s| s.status == Status::Warn).count();
    println!(
        "\n{}",
        match (failed, warned) {
            (0, 0) => out.paint("Everything needed to reach Realer works.", Tone::Good),
            (0, w) => out.paint(&format!("Realer can be reached; {w} warning(s) above."), Tone::Warn),
            (f, _) => out.paint(&format!("{f} step(s) failed: the first FAIL above is the one to fix."), Tone::Bad),
        }
    );
}
