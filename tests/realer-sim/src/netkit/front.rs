//! The HTTP front: a reverse proxy as nginx or a load balancer is. It terminates TLS with the kit's certificate,
//! reads HTTP/1.1 requests (keep-alive), and either answers by itself (a rule, the body limit) or forwards the
//! request to the upstream on a new TLS connection (`Connection: close`, as nginx's `proxy_pass` does by default)
//! and relays the answer, with nginx's `Server` and `Date`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use super::pages::{self, About};
use super::service::{Handler, Sockets};
use super::{By, FrontTls, Reply, Seen, Shared, NGINX_SERVER};
use crate::http::{self, ReadError, Request};
use crate::server::lock;
use crate::{time, tls};

/// nginx's `proxy_connect_timeout` is 60 s; on loopback a refusal is immediate, so 5 s is plenty.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// nginx's `proxy_read_timeout` and `proxy_send_timeout`: 504 after this long without a byte.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer head read from the upstream.
const MAX_HEAD: usize = 64 * 1024;
/// Largest upstream answer without a length (read to its end) that is relayed.
const MAX_UNSIZED_BODY: usize = 64 * 1024 * 1024;
/// Hop-by-hop headers (and those the front sets itself), never passed on either way.
const HOP_BY_HOP: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "expect",
];

/// Where the front forwards to.
pub(crate) struct Upstream {
    host: String,
    port: u16,
    /// `HOST:PORT` for the `Host` header.
    authority: String,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

impl Upstream {
    /// `base_url` is `https://HOST:PORT` (no path); `ca_pem` the CA (PEM) that signed its certificate.
    pub(crate) fn new(base_url: &str, ca_pem: &str) -> io::Result<Upstream> {
        let authority = base_url
            .strip_prefix("https://")
            .map(|a| a.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| invalid(format!("the upstream must be https://HOST:PORT, not {base_url:?}")))?;
        let (host, port) = authority
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_start_matches('[').trim_end_matches(']'), p.parse::<u16>().ok()?)))
            .ok_or_else(|| invalid(format!("the upstream {base_url:?} needs a port")))?;
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|e| invalid(format!("the upstream host {host:?} is not a server name: {e}")))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| invalid(format!("the upstream CA is not PEM: {e}")))?;
            roots.add(cert).map_err(|e| invalid(format!("the upstream CA is not a certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(invalid("the upstream CA PEM holds no certificate".into()));
        }
        let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Upstream {
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            server_name,
            config: Arc::new(config),
        })
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the upstream host resolves to nothing");
        for addr in (self.host.as_str(), self.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, UPSTREAM_CONNECT_TIMEOUT) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

pub(crate) struct Front {
    shared: Arc<Shared>,
    tls: Arc<ServerConfig>,
    /// `None`: the captive portal, which forwards nothing.
    upstream: Option<Upstream>,
}

/// Why forwarding failed: before anything reached the client (answer 502 or 504), or after (close).
enum Failed {
    Before(u16),
    During,
}

fn failed_before(e: io::Error) -> Failed {
    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
        Failed::Before(504)
    } else {
        Failed::Before(502)
    }
}

impl Front {
    /// The front and the CA (PEM) to give clients (`None` for [`FrontTls::Intercepting`]).
    pub(crate) fn new(
        shared: Arc<Shared>,
        upstream: Option<Upstream>,
        tls: FrontTls,
    ) -> io::Result<(Front, Option<String>)> {
        let (config, ca_pem) = tls::make(tls == FrontTls::Expired).map_err(io::Error::other)?;
        let ca_pem = (tls != FrontTls::Intercepting).then_some(ca_pem);
        Ok((Front { shared, tls: config, upstream }, ca_pem))
    }

    /// The front's own answer to `req`, if any: the body limit first (nginx checks it before proxying), then the
    /// rules, then (portal) the portal page.
    fn decide(&self, req: &Request) -> Option<(Reply, Option<u64>)> {
        let max_body = lock(&self.shared.http).max_body;
        if max_body.is_some_and(|max| req.body.len() > max) {
            return Some((Reply::Nginx(413), None));
        }
        if let Some(answer) = self.shared.take_rule(&req.path) {
            return Some(answer);
        }
        if self.upstream.is_none() {
            return Some((Reply::Portal, None));
        }
        None
    }

    /// Forwards `req` and relays the answer to `client`. `Ok(status)` once the whole answer is relayed.
    fn forward<W: Write>(
        &self,
        up: &Upstream,
        req: &Request,
        target: &str,
        client: &mut W,
        sockets: &Sockets,
        on_head: impl FnOnce(u16),
    ) -> Result<u16, Failed> {
        let tcp = up.connect().map_err(|_| Failed::Before(502))?;
        let _held = sockets.hold(&tcp);
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(UPSTREAM_TIMEOUT));
        let _ = tcp.set_write_timeout(Some(UPSTREAM_TIMEOUT));
        let conn =
            ClientConnection::new(Arc::clone(&up.config), up.server_name.clone()).map_err(|_| Failed::Before(502))?;
        let mut s = StreamOwned::new(conn, tcp);

        let mut head = format!("{} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", req.method, up.authority);
        for (n, v) in req.headers.iter().filter(|(n, _)| !HOP_BY_HOP.contains(&n.as_str())) {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !req.body.is_empty() || matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&req.body);
        s.write_all(&out).and_then(|()| s.flush()).map_err(failed_before)?;

        let mut buf = Vec::new();
        let (status, reason, headers) = loop {
            let answer = read_head(&mut s, &mut buf).map_err(failed_before)?;
            // Interim answers (100 Continue) are not relayed: the front read the whole body already.
            if !(100..200).contains(&answer.0) {
                break answer;
            }
        };
        // Logged before the client can see the answer, so that a test reading the log after it is never early.
        on_head(status);
        let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim());
        let no_body = req.method == "HEAD" || status == 204 || status == 304;
        let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
        let chunked = header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));

        let mut out = format!(
            "HTTP/1.1 {status} {reason}\r\nServer: {NGINX_SERVER}\r\nDate: {}\r\n",
            time::format_http_date(time::now_unix())
        );
        for (n, v) in &headers {
            let lower = n.to_ascii_lowercase();
            if !HOP_BY_HOP.contains(&lower.as_str()) && lower != "server" && lower != "date" {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
        }
        let close = if req.keep_alive { "keep-alive" } else { "close" };
        let write_whole = |client: &mut W, out: String, body: &[u8]| {
            let mut bytes = format!("{out}Content-Length: {}\r\nConnection: {close}\r\n\r\n", body.len()).into_bytes();
            bytes.extend_from_slice(body);
            client.write_all(&bytes).and_then(|()| client.flush()).map_err(|_| Failed::During)
        };
        if no_body {
            if let Some(n) = length.filter(|_| req.method == "HEAD") {
                out.push_str(&format!("Content-Length: {n}\r\n"));
            }
            out.push_str(&format!("Connection: {close}\r\n\r\n"));
            client.write_all(out.as_bytes()).and_then(|()| client.flush()).map_err(|_| Failed::During)?;
        } else if chunked {
            let body =
                http::read_chunked(&mut s, &mut buf, 64 * http::MAX_READ_BODY).map_err(|_| Failed::Before(502))?;
            write_whole(client, out, &body)?;
        } else if let Some(n) = length {
            out.push_str(&format!("Content-Length: {n}\r\nConnection: {close}\r\n\r\n"));
            client.write_all(out.as_bytes()).map_err(|_| Failed::During)?;
            // Streamed: a large answer is not held whole.
            let mut left = n;
            let first = buf.len().min(left);
            client.write_all(&buf[..first]).map_err(|_| Failed::During)?;
            left -= first;
            let mut chunk = vec![0u8; 16 * 1024];
            while left > 0 {
                let got = match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return Err(Failed::During),
                    Ok(got) => got.min(left),
                };
                client.write_all(&chunk[..got]).map_err(|_| Failed::During)?;
                left -= got;
            }
            client.flush().map_err(|_| Failed::During)?;
        } else {
            let mut body = std::mem::take(&mut buf);
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                match s.read(&mut chunk) {
                    Ok(0) => break,
                    // A server that closes without TLS close_notify ends an unsized body all the same.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(failed_before(e)),
                    Ok(got) => body.extend_from_slice(&chunk[..got]),
                }
                if body.len() > MAX_UNSIZED_BODY {
                    return Err(Failed::Before(502));
                }
            }
            write_whole(client, out, &body)?;
        }
        Ok(status)
    }
}

/// Reads an answer's head: (status, reason, headers in arrival order with their case).
#[allow(clippy::type_complexity)]
fn read_head<S: Read>(s: &mut S, buf: &mut Vec<u8>) -> io::Result<(u16, String, Vec<(String, String)>)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err(bad("answer head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).map_err(|_| bad("answer head is not UTF-8"))?;
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let rest = status_line.strip_prefix("HTTP/1.").ok_or_else(|| bad("not an HTTP/1 answer"))?;
    let mut parts = rest.splitn(3, ' ');
    let _minor = parts.next();
    let status = parts.next().and_then(|c| c.parse::<u16>().ok()).ok_or_else(|| bad("no status"))?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for line in lines {
        let (n, v) = line.split_once(':').ok_or_else(|| bad("malformed header"))?;
        headers.push((n.to_string(), v.trim().to_string()));
    }
    Ok((status, reason, headers))
}

impl Handler for Front {
    fn serve(&self, tcp: TcpStream, sockets: &Sockets) {
        let _ = tcp.set_nodelay(true);
        let Ok(conn) = ServerConnection::new(Arc::clone(&self.tls)) else {
            return;
        };
        let mut tls = StreamOwned::new(conn, tcp);
        let mut buf = Vec::new();
        loop {
            let keepalive = lock(&self.shared.http).keepalive;
            let _ = tls.sock.set_read_timeout(Some(keepalive));
            let req = match http::read_request(&mut tls, &mut buf, &|| http::MAX_READ_BODY) {
                Ok(Some(req)) => req,
                Ok(None) | Err(ReadError::Closed) => break,
                Err(ReadError::Malformed(status, _)) => {
                    self.shared.record(Seen {
                        at_ms: self.shared.since_start_ms(),
                        method: String::new(),
                        target: String::new(),
                        header_names: Vec::new(),
                        body_len: 0,
                        status,
                        by: By::Kit,
                    });
                    if let Some(page) = pages::render(&Reply::Nginx(status), None, &About { url: "", request_line: "" })
                    {
                        let _ = tls.write_all(&page.serialize(true)).and_then(|()| tls.flush());
                    }
                    break;
                }
            };
            let target = if req.query.is_empty() { req.path.clone() } else { format!("{}?{}", req.path, req.query) };
            let mut seen = Seen {
                at_ms: self.shared.since_start_ms(),
                method: req.method.clone(),
                target: target.clone(),
                header_names: req.headers.iter().map(|(n, _)| n.clone()).collect(),
                body_len: req.body.len(),
                status: 0,
                by: By::Kit,
            };
            let own = self.decide(&req).map(|(reply, retry_after)| {
                let request_line = format!("{} {target} HTTP/1.1", req.method);
                pages::render(&reply, retry_after, &About { url: &target, request_line: &request_line })
            });
            let close = match (own, &self.upstream) {
                (Some(None), _) | (None, None) => {
                    // Closed without an answer and without close_notify.
                    self.shared.record(seen);
                    let _ = tls.sock.shutdown(Shutdown::Both);
                    return;
                }
                (Some(Some(page)), _) => {
                    let close = page.close || !req.keep_alive;
                    seen.status = page.status;
                    self.shared.record(seen);
                    if tls.write_all(&page.serialize(close)).and_then(|()| tls.flush()).is_err() {
                        break;
                    }
                    close
                }
                (None, Some(up)) => {
                    let record = |status| {
                        self.shared.record(Seen { status, by: By::Upstream, ..seen.clone() });
                    };
                    match self.forward(up, &req, &target, &mut tls, sockets, record) {
                        Ok(_) => !req.keep_alive,
                        Err(Failed::Before(status)) => {
                            let about = About { url: &target, request_line: "" };
                            let page = pages::render(&Reply::Nginx(status), None, &about);
                            let page = page.map(|p| p.serialize(!req.keep_alive)).unwrap_or_default();
                            self.shared.record(Seen { status, ..seen });
                            if tls.write_all(&page).and_then(|()| tls.flush()).is_err() {
                                break;
                            }
                            !req.keep_alive
                        }
                        Err(Failed::During) => {
                            let _ = tls.sock.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                }
            };
            if close {
                break;
            }
        }
        if !tls.conn.is_handshaking() {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        let _ = tls.sock.shutdown(Shutdown::Both);
    }
}
