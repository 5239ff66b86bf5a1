//! A minimal HTTP/1.1 server side over any `Read + Write` stream: request heads, `Content-Length` and chunked
//! bodies, `Expect: 100-continue`, keep-alive decisions, and response serialisation.

use std::io::{self, Read, Write};

/// Largest request head the sim reads.
const MAX_HEAD: usize = 32 * 1024;
/// Largest request body the sim reads at all (unless the byte budget is set higher); the byte budget is
/// enforced by the handlers, which answer 413/4013 in Realer's shape. Bigger bodies get a 413 and the
/// connection is closed.
pub const MAX_READ_BODY: usize = 4 * 1024 * 1024;

/// One parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: String,
    /// Header names lower-cased, values trimmed, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the client wants the connection kept open after the answer.
    pub keep_alive: bool,
}

impl Request {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The media type of `Content-Type`, lower-cased, without parameters.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
    }

    /// The credentials of `Authorization: <scheme> <credentials>` when the scheme matches (case-insensitive).
    pub fn authorization(&self, scheme: &str) -> Option<&str> {
        let value = self.header("authorization")?;
        let (s, rest) = value.split_once(' ')?;
        if s.eq_ignore_ascii_case(scheme) {
            Some(rest.trim())
        } else {
            None
        }
    }

    /// The value of one query parameter (not percent-decoded; admin use only).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').filter_map(|p| p.split_once('=')).find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Why reading a request stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed, the idle timeout passed, or the transport failed: close quietly.
    Closed,
    /// The bytes are not HTTP/1.1 the sim understands: answer this status, then close.
    Malformed(u16, &'static str),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Closed
    }
}

/// Reads from `stream` into `buf` until at least `want` bytes are buffered.
fn fill<S: Read>(stream: &mut S, buf: &mut Vec<u8>, want: usize) -> Result<(), ReadError> {
    let mut chunk = [0u8; 16 * 1024];
    while buf.len() < want {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

/// Reads one line ending in CRLF from the buffered stream, without the CRLF.
fn read_line<S: Read>(stream: &mut S, buf: &mut Vec<u8>) -> Result<Vec<u8>, ReadError> {
    loop {
        if let Some(pos) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = buf[..pos].to_vec();
            buf.drain(..pos + 2);
            return Ok(line);
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Malformed(400, "line too long"));
        }
        let have = buf.len();
        fill(stream, buf, have + 1)?;
    }
}

/// Reads the next request from `stream`. `buf` carries bytes read past the previous request (pipelining).
/// `Ok(None)` is a clean close between requests.
/// Bodies over `max_body()` bytes (asked once the head has arrived) are refused with 413.
pub fn read_request<S: Read + Write>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    max_body: &dyn Fn() -> usize,
) -> Result<Option<Request>, ReadError> {
    // The head.
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Malformed(431, "request head too large"));
        }
        let have = buf.len();
        match fill(stream, buf, have + 1) {
            Ok(()) => {}
            Err(ReadError::Closed) if buf.iter().all(|b| b.is_ascii_whitespace()) => return Ok(None),
            Err(e) => return Err(e),
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec())
        .map_err(|_| ReadError::Malformed(400, "request head is not UTF-8"))?;
    buf.drain(..head_end + 4);
    // Tolerate blank lines before a request (RFC 9112 section 2.2).
    let head = head.trim_start_matches("\r\n");
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && t.starts_with('/') => (m, t, v),
        _ => return Err(ReadError::Malformed(400, "malformed request line")),
    };
    if !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ReadError::Malformed(400, "malformed method"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(ReadError::Malformed(505, "only HTTP/1.1 and HTTP/1.0 are served")),
    };
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ReadError::Malformed(400, "malformed header line"))?;
        if name.is_empty() || name.contains(' ') || name.contains('\t') {
            return Err(ReadError::Malformed(400, "malformed header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let mut req = Request { method: method.to_string(), path, query, headers, body: Vec::new(), keep_alive: http11 };
    if let Some(conn) = req.header("connection") {
        let tokens: Vec<String> = conn.split(',').map(|t| t.trim().to_ascii_lowercase()).collect();
        if tokens.iter().any(|t| t == "close") {
            req.keep_alive = false;
        } else if tokens.iter().any(|t| t == "keep-alive") {
            req.keep_alive = true;
        }
    }

    let chunked = req.header("transfer-encoding").map(|te| te.to_ascii_lowercase().contains("chunked"));
    let content_length = match req.header("content-length") {
        None => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| ReadError::Malformed(400, "malformed Content-Length"))?),
    };
    if chunked.is_some() && content_length.is_some() {
        return Err(ReadError::Malformed(400, "both Content-Length and Transfer-Encoding"));
    }
    let max_body = max_body();
    if content_length.is_some_and(|n| n > max_body) {
        return Err(ReadError::Malformed(413, "body too large"));
    }
    let expects_body = chunked == Some(true) || content_length.is_some_and(|n| n > 0);
    if expects_body && req.header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) && buf.is_empty() {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        stream.flush()?;
    }
    match (chunked, content_length) {
        (Some(true), _) => req.body = read_chunked(stream, buf, max_body)?,
        (Some(false), _) => return Err(ReadError::Malformed(501, "unsupported Transfer-Encoding")),
        (None, Some(n)) => {
            fill(stream, buf, n)?;
            req.body = buf.drain(..n).collect();
        }
        (None, None) => {}
    }
    Ok(Some(req))
}

pub(crate) fn read_chunked<S: Read>(stream: &mut S, buf: &mut Vec<u8>, max_body: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(stream, buf)?;
        let line = String::from_utf8(line).map_err(|_| ReadError::Malformed(400, "bad chunk size"))?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| ReadError::Malformed(400, "bad chunk size"))?;
        if body.len().saturating_add(size) > max_body {
            return Err(ReadError::Malformed(413, "body too large"));
        }
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(stream, buf)?.is_empty() {}
            return Ok(body);
        }
        fill(stream, buf, size + 2)?;
        body.extend(buf.drain(..size));
        if buf.drain(..2).as_slice() != b"\r\n" {
            return Err(ReadError::Malformed(400, "chunk not followed by CRLF"));
        }
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response { status, headers: vec![("Content-Type".to_string(), content_type.to_string())], body }
    }

    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response::new(status, "application/json", body.to_string().into_bytes())
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The bytes on the wire; `close` adds `Connection: close`.
    pub fn serialize(&self, close: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// The reason phrase of the statuses the sim sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A stream that reads from fixed bytes (one segment per read call) and records what is written.
    struct Fake {
        input: Vec<Cursor<Vec<u8>>>,
        output: Vec<u8>,
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            while let Some(first) = self.input.first_mut() {
                let n = first.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.input.remove(0);
            }
            Ok(0)
        }
    }

    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn fake(bytes: &[u8]) -> Fake {
        segments(&[bytes])
    }

    fn segments(parts: &[&[u8]]) -> Fake {
        Fake { input: parts.iter().map(|p| Cursor::new(p.to_vec())).collect(), output: Vec::new() }
    }

    #[test]
    fn reads_pipelined_requests_and_chunked_bodies() {
        let mut s = fake(
            b"POST /a?x=1 HTTP/1.1\r\nContent-Length: 3\r\nContent-Type: application/json; charset=utf-8\r\n\r\nabcGET /b HTTP/1.1\r\nConnection: close\r\n\r\nPOST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n",
        );
        let mut buf = Vec::new();
        let a = read_request(&mut s, &mut buf, &|| MAX_READ_BODY).unwrap().unwrap();
        assert_eq!((a.method.as_str(), a.path.as_str(), a.query.as_str()), ("POST", "/a", "x=1"));
        assert_eq!(a.body, b"abc");
        assert_eq!(a.media_type().as_deref(), Some("application/json"));
        assert!(a.keep_alive);
        let b = read_request(&mut s, &mut buf, &|| MAX_READ_BODY).unwrap().unwrap();
        assert_eq!(b.path, "/b");
        assert!(!b.keep_alive);
        let c = read_request(&mut s, &mut buf, &|| MAX_READ_BODY).unwrap().unwrap();
        assert_eq!(c.body, b"abcde");
        assert!(read_request(&mut s, &mut buf, &|| MAX_READ_BODY).unwrap().is_none());
    }

    #[test]
    fn answers_expect_continue() {
        let mut s = segments(&[b"POST /a HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n", b"hi"]);
        let mut buf = Vec::new();
        let a = read_request(&mut s, &mut buf, &|| MAX_READ_BODY).unwrap().unwrap();
        assert_eq!(a.body, b"hi");
        assert_eq!(s.output, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn refuses_garbage() {
        let mut buf = Vec::new();
        assert!(matches!(
            read_request(&mut fake(b"hello\r\n\r\n"), &mut buf, &|| MAX_READ_BODY),
            Err(ReadError::Malformed(400, _))
        ));
        let mut buf = Vec::new();
        assert!(matches!(
            read_request(&mut fake(b"GET / HTTP/2.0\r\n\r\n"), &mut buf, &|| MAX_READ_BODY),
            Err(ReadError::Malformed(505, _))
        ));
    }
}
