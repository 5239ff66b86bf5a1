//! The way to Realer through an HTTP proxy: TCP to the proxy, then `CONNECT host:port`, then TLS to Realer
//! inside the tunnel (the proxy sees the host and port, never what is said). Every failure on this way names
//! the proxy and is a network error: what a proxy answers is never taken for Realer's answer.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use ureq::unversioned::transport::time::Duration as UreqDuration;
use ureq::unversioned::transport::Transport as UreqTransport;
use ureq::unversioned::transport::{ConnectionDetails, Connector, NextTimeout, TcpConnector};
use zeroize::Zeroize;

use super::PathError;
use crate::config::{Proxy, Secret};
use crate::error::{Error, ErrorKind};

/// Longer proxy answer heads are refused: a CONNECT answer is a status line and a few headers.
const MAX_ANSWER_HEAD: usize = 16 * 1024;

/// Makes the TCP connection: to Realer, or, with a proxy, to the proxy and through it with `CONNECT` (the
/// resolver gave the proxy's addresses). Errors on the way to the proxy name it.
#[derive(Debug)]
pub(super) struct ProxyConnector {
    tcp: TcpConnector,
    proxy: Option<Tunnel>,
}

/// What every `CONNECT` through one proxy carries.
#[derive(Debug)]
struct Tunnel {
    proxy: Proxy,
    /// The `Proxy-Authorization` header line, CRLF included, when the proxy URL had credentials.
    authorization: Option<Secret>,
    user_agent: String,
}

impl ProxyConnector {
    pub(super) fn new(proxy: Option<&Proxy>, user_agent: &str) -> ProxyConnector {
        ProxyConnector {
            tcp: TcpConnector::default(),
            proxy: proxy.map(|p| Tunnel {
                proxy: p.clone(),
                authorization: authorization_line(p),
                user_agent: user_agent.to_string(),
            }),
        }
    }
}

fn authorization_line(proxy: &Proxy) -> Option<Secret> {
    let (user, password) = proxy.credentials()?;
    let basic = super::basic_credentials(user.expose(), password);
    let mut line = String::with_capacity(basic.expose().len() + 30);
    line.push_str("Proxy-Authorization: Basic ");
    line.push_str(basic.expose());
    line.push_str("\r\n");
    Some(Secret::new(line))
}

/// The secrets of a proxy URL that a message could carry: the Basic credentials, and the password when it is
/// long enough that redacting it cannot garble ordinary words of a message.
pub(crate) fn proxy_secrets(proxy: &Proxy) -> Vec<Secret> {
    let Some((user, password)) = proxy.credentials() else { return Vec::new() };
    let mut out = vec![super::basic_credentials(user.expose(), password)];
    if password.expose().len() >= 8 {
        out.push(password.clone());
    }
    out
}

/// ureq's TCP transport (its type is not exported).
type Tcp = <TcpConnector as Connector<()>>::Out;

impl Connector<()> for ProxyConnector {
    type Out = Tcp;

    fn connect(&self, details: &ConnectionDetails, _: Option<()>) -> Result<Option<Tcp>, ureq::Error> {
        let started = Instant::now();
        let connected = self.tcp.connect(details, None);
        let Some(tunnel) = &self.proxy else {
            return connected;
        };
        let proxy = tunnel.proxy.url();
        let mut tcp = match connected {
            Ok(Some(tcp)) => tcp,
            Ok(None) => return Ok(None),
            Err(ureq::Error::Timeout(_)) => {
                return Err(PathError::carry(Error::new(
                    ErrorKind::Timeout,
                    format!("connecting to the proxy {proxy}: no answer within the connect timeout"),
                )))
            }
            Err(e) => {
                let why = match &e {
                    ureq::Error::Io(io) => io.to_string(),
                    other => other.to_string(),
                };
                return Err(PathError::carry(Error::new(
                    ErrorKind::Network,
                    format!("connecting to the proxy {proxy}: {why}"),
                )));
            }
        };
        let limit = match details.timeout.after {
            UreqDuration::Exact(d) => Some(d.saturating_sub(started.elapsed())),
            UreqDuration::NotHappening => None,
        };
        let target = target(details.uri);
        let mut request = tunnel.request(&target);
        let sent = send_all(&mut tcp, &request, limit.map(|l| l.saturating_sub(started.elapsed())));
        request.zeroize();
        // The credentials were in the TCP transport's output buffer: TLS records overwrite only part of it.
        tcp.buffers().output().zeroize();
        sent.map_err(|e| PathError::carry(tunnel.io_failed(&target, e)))?;
        loop {
            let input = tcp.buffers().input();
            match read_answer(input) {
                Answer::Incomplete if input.len() >= MAX_ANSWER_HEAD => {
                    return Err(PathError::carry(tunnel.garbled(&target)));
                }
                Answer::Incomplete => {}
                Answer::Garbled => return Err(PathError::carry(tunnel.garbled(&target))),
                Answer::Head { status, reason, length } => {
                    if !(200..300).contains(&status) {
                        return Err(PathError::carry(refusal(&tunnel.proxy, &target, status, &reason)));
                    }
                    tcp.buffers().input_consume(length);
                    return Ok(Some(tcp));
                }
            }
            let left = limit.map(|l| l.saturating_sub(started.elapsed()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(PathError::carry(tunnel.timed_out(&target)));
            }
            let timeout = NextTimeout {
                after: left.map_or(UreqDuration::NotHappening, UreqDuration::Exact),
                reason: ureq::Timeout::Connect,
                ..Default::default()
            };
            match tcp.await_input(timeout) {
                Ok(true) => {}
                Ok(false) => return Err(PathError::carry(tunnel.closed(&target))),
                Err(ureq::Error::Timeout(_)) => return Err(PathError::carry(tunnel.timed_out(&target))),
                Err(e) => return Err(PathError::carry(tunnel.io_failed(&target, e))),
            }
        }
    }
}

fn send_all(tcp: &mut Tcp, bytes: &[u8], limit: Option<Duration>) -> Result<(), ureq::Error> {
    let timeout = NextTimeout {
        after: limit.map_or(UreqDuration::NotHappening, UreqDuration::Exact),
        reason: ureq::Timeout::Connect,
        ..Default::default()
    };
    for chunk in bytes.chunks(tcp.buffers().output().len().max(1)) {
        tcp.buffers().output()[..chunk.len()].copy_from_slice(chunk);
        tcp.transmit_output(chunk.len(), timeout)?;
    }
    Ok(())
}

/// `host:port` of a request's URI, as `CONNECT` names it (an IPv6 address in brackets).
fn target(uri: &ureq::http::Uri) -> String {
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
    format!("{host}:{port}")
}

impl Tunnel {
    fn request(&self, target: &str) -> Vec<u8> {
        let auth = self.authorization.as_ref().map_or("", |a| a.expose());
        let mut r = Vec::with_capacity(target.len() * 2 + auth.len() + self.user_agent.len() + 64);
        r.extend_from_slice(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").as_bytes());
        r.extend_from_slice(format!("User-Agent: {}\r\n", self.user_agent).as_bytes());
        r.extend_from_slice(auth.as_bytes());
        r.extend_from_slice(b"\r\n");
        r
    }

    fn io_failed(&self, target: &str, e: ureq::Error) -> Error {
        let why = match &e {
            ureq::Error::Io(io) => io.to_string(),
            other => other.to_string(),
        };
        Error::new(
            ErrorKind::Network,
            format!("the proxy {} failed while opening a tunnel to {target}: {why}", self.proxy.url()),
        )
    }

    fn closed(&self, target: &str) -> Error {
        Error::new(
            ErrorKind::Network,
            format!("the proxy {} closed the connection without answering CONNECT {target}", self.proxy.url()),
        )
    }

    fn garbled(&self, target: &str) -> Error {
        Error::new(
            ErrorKind::Network,
            format!(
                "the proxy {} answered CONNECT {target} with something that is not HTTP (is it an HTTP proxy?)",
                self.proxy.url()
            ),
        )
    }

    fn timed_out(&self, target: &str) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!("the proxy {} did not answer CONNECT {target} within the connect timeout", self.proxy.url()),
        )
    }
}

/// What a proxy's answer to `CONNECT` is, so far.
#[derive(Debug, PartialEq)]
enum Answer {
    Incomplete,
    Garbled,
    /// The status, the reason phrase (cleaned for display) and the length of the head.
    Head {
        status: u16,
        reason: String,
        length: usize,
    },
}

fn read_answer(input: &[u8]) -> Answer {
    let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
        // Enough of a status line to tell that it is not HTTP.
        if input.len() >= 5 && !input.starts_with(b"HTTP/") {
            return Answer::Garbled;
        }
        return Answer::Incomplete;
    };
    let head = &input[..end];
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok()).filter(|s| (100..600).contains(s));
    let (true, Some(status)) = (version.starts_with("HTTP/1."), status) else {
        return Answer::Garbled;
    };
    let reason: String = crate::error::strip_control(parts.next().unwrap_or_default()).chars().take(80).collect();
    Answer::Head { status, reason, length: end + 4 }
}

/// A proxy's refusal to open the tunnel, named as what it is.
fn refusal(proxy: &Proxy, target: &str, status: u16, reason: &str) -> Error {
    let url = proxy.url();
    let said = if reason.is_empty() { status.to_string() } else { format!("{status} {reason}") };
    let (why, retryable) = match status {
        // tinyproxy answers a wrong password with 401.
        401 | 407 if proxy.has_credentials() => {
            ("it refused the user name and password of the proxy URL: check them".to_string(), false)
        }
        407 => ("it wants credentials: give them in the proxy URL (http://user:password@host:port)".to_string(), false),
        403 => (format!("it does not allow tunnels to {target}: ask its administrator to allow it"), false),
        502..=504 => (format!("it could not reach {target}"), true),
        429 | 500..=599 => (format!("it failed, or could not reach {target}"), true),
        _ => ("the proxy refused the tunnel".to_string(), false),
    };
    let mut e = Error::new(
        ErrorKind::Network,
        format!("the proxy {url} refused CONNECT {target} with HTTP {said}: {why} (Realer was not reached)"),
    );
    e.retryable = retryable;
    e
}

impl Proxy {
    /// Opens a tunnel through this proxy to `host:port` (an IPv6 host in brackets) on a plain socket, for
    /// tools that talk TLS themselves (`realer doctor`), with the `CONNECT` and the errors of the client's
    /// connections. Bounded by `timeout` in all.
    pub fn open_tunnel(&self, host: &str, port: u16, timeout: Duration) -> crate::Result<TcpStream> {
        open_tunnel(self, host, port, timeout)
    }
}

/// The proxy's addresses, looked up on a thread of its own so that the lookup counts within `timeout` (the
/// system's resolver has its own, longer timeouts and retries); a lookup that outlasts it is left to end alone.
fn lookup_within(name: &str, port: u16, timeout: Duration) -> crate::Result<Vec<std::net::SocketAddr>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = name.to_string();
    std::thread::Builder::new()
        .name("realer-proxy-lookup".into())
        .spawn(move || {
            let _ = tx.send((owned.as_str(), port).to_socket_addrs().map(Iterator::collect::<Vec<_>>));
        })
        .map_err(|e| Error::new(ErrorKind::Network, format!("looking up the proxy's host {name}: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(e)) => Err(Error::new(ErrorKind::Network, format!("the proxy's host {name} does not resolve: {e}"))),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("looking up the proxy's host {name} took longer than {} ms", timeout.as_millis()),
        )),
    }
}

fn open_tunnel(proxy: &Proxy, host: &str, port: u16, timeout: Duration) -> crate::Result<TcpStream> {
    let started = Instant::now();
    let url = proxy.url();
    let target = format!("{host}:{port}");
    let tunnel = Tunnel {
        proxy: proxy.clone(),
        authorization: authorization_line(proxy),
        user_agent: concat!("librealer/", env!("CARGO_PKG_VERSION")).to_string(),
    };
    let name = proxy.host().trim_start_matches('[').trim_end_matches(']');
    let addrs = lookup_within(name, proxy.port(), timeout)?;
    let mut last = None;
    let mut sock = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1))) {
            Ok(s) => {
                sock = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(mut sock) = sock else {
        let why = last.map_or("no address".to_string(), |e| e.to_string());
        return Err(Error::new(ErrorKind::Network, format!("connecting to the proxy {url}: {why}")));
    };
    let left = || timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
    let mut request = tunnel.request(&target);
    let _ = sock.set_write_timeout(Some(left()));
    let sent = sock.write_all(&request);
    request.zeroize();
    sent.map_err(|e| Error::new(ErrorKind::Network, format!("the proxy {url}: {e}")))?;
    let mut input = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match read_answer(&input) {
            Answer::Head { status, reason, .. } => {
                if !(200..300).contains(&status) {
                    return Err(refusal(proxy, &target, status, &reason));
                }
                return Ok(sock);
            }
            Answer::Garbled => return Err(tunnel.garbled(&target)),
            Answer::Incomplete if input.len() >= MAX_ANSWER_HEAD => return Err(tunnel.garbled(&target)),
            Answer::Incomplete => {}
        }
        if started.elapsed() >= timeout {
            return Err(tunnel.timed_out(&target));
        }
        let _ = sock.set_read_timeout(Some(left()));
        // One byte at a time once the head is near its end would be exact; a proxy sends nothing after its
        // 200 until the client speaks, so whole reads cannot swallow the server's first bytes.
        match sock.read(&mut buf) {
            Ok(0) => return Err(tunnel.closed(&target)),
            Ok(n) => input.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(tunnel.timed_out(&target))
            }
            Err(e) => return Err(Error::new(ErrorKind::Network, format!("the proxy {url}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxys_name_is_looked_up_within_the_timeout() {
        let addrs = lookup_within("127.0.0.1", 3128, Duration::from_secs(5)).unwrap();
        assert_eq!(addrs, vec![std::net::SocketAddr::from(([127, 0, 0, 1], 3128))]);
        // A name that never resolves (RFC 6761's .invalid): an error, within the timeout, whether the resolver
        // answers at once or not at all. (A resolver that hangs is the case the thread is for; not made here.)
        let started = Instant::now();
        let e = lookup_within("proxy.example.invalid", 3128, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Network | ErrorKind::Timeout), "{e:?}");
        assert!(e.message.contains("proxy.example.invalid"), "{}", e.message);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn connect_answers_are_read_as_proxies_send_them() {
        assert_eq!(read_answer(b"HTTP/1.1 200 Conn"), Answer::Incomplete);
        assert_eq!(
            read_answer(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03"),
            Answer::Head { status: 200, reason: "Connection established".into(), length: 39 }
        );
        assert_eq!(
            read_answer(b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\n"),
            Answer::Head { status: 407, reason: "Proxy Authentication Required".into(), length: 83 }
        );
        assert_eq!(
            read_answer(b"HTTP/1.1 502\r\n\r\n"),
            Answer::Head { status: 502, reason: String::new(), length: 16 }
        );
        assert_eq!(read_answer(b"\x15\x03\x03\x00\x02"), Answer::Garbled, "a TLS alert: not an HTTP proxy");
        assert_eq!(read_answer(b"HTTP/1.1 abc x\r\n\r\n"), Answer::Garbled);
        let Answer::Head { reason, .. } = read_answer(b"HTTP/1.1 403 No\x1b[2J way\r\n\r\n") else { panic!() };
        assert_eq!(reason, "No [2J way");
    }

    #[test]
    fn refusals_name_the_proxy_and_never_its_credentials() {
        let with = Proxy::parse("http://alice:s3cret-pass@proxy.example:3128").unwrap();
        let without = Proxy::parse("http://proxy.example:3128").unwrap();
        for (p, status) in [(&with, 407), (&without, 407), (&without, 403), (&without, 502), (&with, 418)] {
            let e = refusal(p, "api.example:443", status, "Reason");
            assert_eq!(e.kind, ErrorKind::Network);
            assert_eq!(e.http_status, 0, "the proxy's status is not Realer's");
            assert!(e.message.contains("http://proxy.example:3128") && e.message.contains(&status.to_string()));
            assert!(!e.message.contains("s3cret") && !e.message.contains("alice"), "{}", e.message);
            assert_eq!(e.retryable, status == 502, "{status}");
        }
        assert!(refusal(&without, "h:443", 407, "").message.contains("http://user:password@host:port"));
        assert!(refusal(&with, "h:443", 407, "").message.contains("refused the user name and password"));
    }

    #[test]
    fn the_connect_request_carries_credentials_only_when_given() {
        let p = Proxy::parse("http://alice:p%40ss@proxy.example:3128").unwrap();
        let t = Tunnel { proxy: p.clone(), authorization: authorization_line(&p), user_agent: "ua/1".into() };
        let r = String::from_utf8(t.request("[::1]:8443")).unwrap();
        // base64("alice:p@ss")
        assert_eq!(
            r,
            "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\nUser-Agent: ua/1\r\n\
             Proxy-Authorization: Basic YWxpY2U6cEBzcw==\r\n\r\n"
        );
        let p = Proxy::parse("http://proxy.example:3128").unwrap();
        let t = Tunnel { proxy: p.clone(), authorization: authorization_line(&p), user_agent: "ua/1".into() };
        assert!(!String::from_utf8(t.request("h:443")).unwrap().contains("Authorization"));
        assert!(format!("{:?}", Proxy::parse("http://alice:p%40ss@proxy.example:3128").unwrap()).contains("<redacted>"));
    }
}
