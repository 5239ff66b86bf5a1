//! The CONNECT proxy, as squid or tinyproxy is for a factory network: `CONNECT host:port` opens a tunnel
//! (`200 Connection established`) through which the client's TLS passes untouched; squid's pages refuse otherwise
//! (407 with `Proxy-Authenticate` when credentials are required, 403/502/... by rule, 503 when the target
//! refuses). Only request lines and header names are logged, never a header's value.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::pages::{self, About};
use super::service::{Handler, Sockets};
use super::{By, Reply, Seen, Shared};
use crate::encoding::base64_encode;
use crate::server::lock;

/// squid's `request_timeout` is 5 minutes; a test wants less.
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_HEAD: usize = 32 * 1024;

pub(crate) struct ConnectProxy {
    shared: Arc<Shared>,
}

struct Head {
    request_line: String,
    method: String,
    target: String,
    /// Names lower-cased, values trimmed.
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads one request head; `Ok(None)` when the client closed (or went quiet) between requests, `Err` for bytes
/// that are not a request head. Bytes after the head stay in `buf` (the start of the tunnel).
fn read_head(tcp: &TcpStream, buf: &mut Vec<u8>) -> Result<Option<Head>, ()> {
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err(());
        }
        let mut chunk = [0u8; 4096];
        match (&*tcp).read(&mut chunk) {
            Ok(0) | Err(_) if buf.iter().all(|b| b.is_ascii_whitespace()) => return Ok(None),
            Ok(0) | Err(_) => return Err(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8(buf[..end].to_vec()).map_err(|_| ())?;
    buf.drain(..end + 4);
    let head = head.trim_start_matches("\r\n");
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_string();
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(());
    };
    if method.is_empty() || target.is_empty() || !version.starts_with("HTTP/1.") {
        return Err(());
    }
    let mut headers = Vec::new();
    for line in lines {
        let (n, v) = line.split_once(':').ok_or(())?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        request_line: request_line.clone(),
        headers,
    }))
}

impl ConnectProxy {
    pub(crate) fn new(shared: Arc<Shared>) -> ConnectProxy {
        ConnectProxy { shared }
    }

    fn authorized(&self, head: &Head) -> bool {
        let Some(c) = lock(&self.shared.http).credentials.clone() else {
            return true;
        };
        let expected = base64_encode(format!("{}:{}", c.user, c.password).as_bytes());
        head.header("proxy-authorization")
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(scheme, token)| scheme.eq_ignore_ascii_case("basic") && token.trim() == expected)
    }

    fn seen(&self, head: Option<&Head>, status: u16, by: By) -> Seen {
        Seen {
            at_ms: self.shared.since_start_ms(),
            method: head.map(|h| h.method.clone()).unwrap_or_default(),
            target: head.map(|h| h.target.clone()).unwrap_or_default(),
            header_names: head.map(|h| h.headers.iter().map(|(n, _)| n.clone()).collect()).unwrap_or_default(),
            body_len: 0,
            status,
            by,
        }
    }
}

/// Connects to `host:port` (names resolved here, as a proxy does).
fn connect_target(target: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the target resolves to nothing");
    for addr in target.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Copies both ways until both sides have closed; a failure either way ends both.
fn tunnel(client: TcpStream, target: TcpStream, early: &[u8]) {
    let _ = client.set_read_timeout(None);
    let _ = target.set_nodelay(true);
    if !early.is_empty() && (&target).write_all(early).is_err() {
        return;
    }
    let (Ok(c2), Ok(t2)) = (client.try_clone(), target.try_clone()) else {
        return;
    };
    let back =
        thread::Builder::new().name("realer-netkit-tunnel".into()).spawn(move || match io::copy(&mut &t2, &mut &c2) {
            Ok(_) => {
                let _ = c2.shutdown(Shutdown::Write);
            }
            Err(_) => {
                let _ = c2.shutdown(Shutdown::Both);
                let _ = t2.shutdown(Shutdown::Both);
            }
        });
    match io::copy(&mut &client, &mut &target) {
        Ok(_) => {
            let _ = target.shutdown(Shutdown::Write);
        }
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            let _ = target.shutdown(Shutdown::Both);
        }
    }
    if let Ok(h) = back {
        let _ = h.join();
    }
}

impl Handler for ConnectProxy {
    fn serve(&self, tcp: TcpStream, sockets: &Sockets) {
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(HEAD_TIMEOUT));
        let mut buf = Vec::new();
        loop {
            let head = match read_head(&tcp, &mut buf) {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(()) => {
                    let about = About { url: "", request_line: "" };
                    self.shared.record(self.seen(None, 400, By::Kit));
                    if let Some(page) = pages::render(&Reply::Squid(400), None, &about) {
                        let _ = (&tcp).write_all(&page.serialize(true));
                    }
                    return;
                }
            };
            let about = About { url: &head.target, request_line: &head.request_line };
            let refusal = if !head.method.eq_ignore_ascii_case("CONNECT") {
                // A forward proxy for plain HTTP is not what a device needs: anything but CONNECT is refused.
                Some((Reply::Squid(400), None))
            } else if !self.authorized(&head) {
                Some((Reply::Squid(407), None))
            } else {
                self.shared.take_rule(&head.target)
            };
            if let Some((reply, retry_after)) = refusal {
                let Some(page) = pages::render(&reply, retry_after, &about) else {
                    self.shared.record(self.seen(Some(&head), 0, By::Kit));
                    return;
                };
                // Only a 407 keeps the connection, for the retry with credentials.
                let close = page.status != 407
                    || head
                        .header("proxy-connection")
                        .or(head.header("connection"))
                        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                self.shared.record(self.seen(Some(&head), page.status, By::Kit));
                let written = (&tcp).write_all(&page.serialize(close));
                if close || written.is_err() {
                    return;
                }
                continue;
            }
            let target = match connect_target(&head.target) {
                Ok(t) => t,
                Err(_) => {
                    self.shared.record(self.seen(Some(&head), 503, By::Kit));
                    if let Some(page) = pages::render(&Reply::Squid(503), None, &about) {
                        let _ = (&tcp).write_all(&page.serialize(true));
                    }
                    return;
                }
            };
            let _held = sockets.hold(&target);
            self.shared.record(self.seen(Some(&head), 200, By::Upstream));
            let opened = (&tcp).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
            if opened.is_ok() {
                tunnel(tcp, target, &buf);
            }
            return;
        }
    }
}
