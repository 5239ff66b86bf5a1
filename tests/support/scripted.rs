//! A plain HTTP/1.1 server on loopback whose answers a test scripts, for the behaviours realer-sim has no
//! fault for (a server that echoes credentials, control characters, HTTP-date Retry-After). Requests are read
//! into a buffer on the stack, and answers the script gives as static bytes are written from where they are:
//! the zeroize test scans every heap block freed in its process, and the server must not leave copies there.
#![allow(dead_code)]

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What the script sees of a request: method and path, the raw head (header lines) and the body.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub head: &'a [u8],
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.head).ok()?.split("\r\n").find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

pub type Script = fn(&Request<'_>) -> Cow<'static, [u8]>;

pub struct Server {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
}

/// Serves `script`'s answers (whole HTTP responses) on 127.0.0.1, keeping connections alive.
pub fn serve(script: Script) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let count = count.clone();
            std::thread::spawn(move || handle(stream, script, &count));
        }
    });
    Server { url, requests }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn handle(mut stream: TcpStream, script: Script, count: &AtomicUsize) {
    let mut buf = [0u8; 64 * 1024];
    let mut filled = 0;
    loop {
        // Read a whole request: head, then Content-Length bytes of body.
        let (head_end, length) = loop {
            if let Some(end) = find(&buf[..filled], b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
                let length = head
                    .split("\r\n")
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                break (end + 4, length);
            }
            match stream.read(&mut buf[filled..]) {
                Ok(0) | Err(_) => return,
                Ok(n) => filled += n,
            }
        };
        while filled < head_end + length {
            match stream.read(&mut buf[filled..]) {
                Ok(0) | Err(_) => return,
                Ok(n) => filled += n,
            }
        }
        let head = &buf[..head_end - 4];
        let first_line_end = find(head, b"\r\n").unwrap_or(head.len());
        let first = std::str::from_utf8(&head[..first_line_end]).unwrap_or("");
        let mut parts = first.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let request = Request {
            method,
            path,
            head: &head[(first_line_end + 2).min(head.len())..],
            body: &buf[head_end..head_end + length],
        };
        let answer = script(&request);
        count.fetch_add(1, Ordering::SeqCst);
        if stream.write_all(&answer).is_err() {
            return;
        }
        drop(answer);
        buf.copy_within(head_end + length..filled, 0);
        filled -= head_end + length;
    }
}

/// A whole HTTP response with a JSON body (and any extra header lines, each ending in CRLF).
pub fn json(status: &str, extra_headers: &str, body: &str) -> Cow<'static, [u8]> {
    Cow::Owned(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra_headers}\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}
