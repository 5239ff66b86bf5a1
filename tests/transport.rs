//! The transport against a plain HTTP/1.1 server written here (over loopback, with the explicit
//! insecure-loopback opt-in): a request body larger than ureq's output buffer arrives intact behind its head,
//! a kept-alive connection the server closed moments ago costs no failed call, redirects are not followed,
//! the environment's proxy variables are ignored, answer bodies are bounded, and every request carries its
//! headers once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use realer::{Client, Config, FeedItem, FeedOutcome};
use serde_json::Value;

#[derive(Default)]
struct Seen {
    /// (method, path, body) of every request, in order.
    requests: Vec<(String, String, Vec<u8>)>,
    /// The header lines of every request, names lowercased, in order.
    headers: Vec<Vec<(String, String)>>,
    connections: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    /// Close every connection after one answer without saying so (no `Connection: close`), as a server that
    /// drops idle connections at once would.
    CloseAfterEach,
    /// Answer everything with a redirect.
    Redirect,
    /// Answer with a 9 MiB body.
    Huge,
}

/// Serves token and batch answers, as `mode` says.
fn serve(mode: Mode) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            log.lock().unwrap().connections += 1;
            let log = log.clone();
            std::thread::spawn(move || handle(stream, &log, mode));
        }
    });
    (url, seen)
}

fn handle(stream: TcpStream, seen: &Mutex<Seen>, mode: Mode) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut length = 0usize;
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header == "\r\n" || header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
                headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let answer = if path == "/oauth/token" {
            r#"{"access_token":"t0123456789","token_type":"Bearer","expires_in":3600,"renew_after":3000}"#.to_string()
        } else {
            // A batch answer by index, when the body is the JSON it must be.
            match serde_json::from_slice::<Value>(&body) {
                Ok(v) => {
                    let n = v["items"].as_array().map_or(0, Vec::len);
                    let results: Vec<Value> = (0..n)
                        .map(|i| serde_json::json!({"index": i, "status": "created", "feed_data_id": i + 1}))
                        .collect();
                    serde_json::json!({"code": 2000, "status": "completed", "results": results}).to_string()
                }
                Err(_) => r#"{"code":4000,"error":{"type":"bad_request","message":"not JSON"}}"#.to_string(),
            }
        };
        let status = if answer.contains("4000") { "400 Bad Request" } else { "200 OK" };
        let mut log = seen.lock().unwrap();
        log.requests.push((method, path.clone(), body));
        log.headers.push(headers);
        drop(log);
        if mode == Mode::Huge {
            let body = vec![b' '; 9 << 20];
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = out.write_all(&body);
            continue;
        }
        if mode == Mode::Redirect {
            let _ = write!(out, "HTTP/1.1 302 Found\r\nLocation: {path}/elsewhere\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        let _ = write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if mode == Mode::CloseAfterEach {
            return;
        }
    }
}

fn client(url: &str, max_attempts: u32) -> Client {
    let mut c = Config::new();
    c.allow_insecure_loopback(true);
    c.set_base_url(url).unwrap();
    c.set_device_id("12345").unwrap();
    c.set_credentials("cdv_test", "secret").unwrap();
    c.set_retry(max_attempts, Duration::from_millis(1), Duration::from_millis(5)).unwrap();
    Client::new(&c).unwrap()
}

#[test]
fn every_request_carries_its_headers_once() {
    let (url, seen) = serve(Mode::Normal);
    let mut c = Config::new();
    c.allow_insecure_loopback(true);
    c.set_base_url(&url).unwrap();
    c.set_device_id("12345").unwrap();
    c.set_credentials("cdv_test", "secret").unwrap();
    c.set_user_agent("firmware/2.1 (test)").unwrap();
    let c = Client::new(&c).unwrap();
    for _ in 0..2 {
        let r = c.post_feed_data(&FeedItem::sensor("7", "1"));
        assert!(r.error.is_none(), "{:?}", r.error);
        let r = c.post_feed_batch(&[FeedItem::sensor("7", "1")]);
        assert!(r.error.is_none(), "{:?}", r.error);
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.requests.len(), 5);
    for ((_, path, _), headers) in seen.requests.iter().zip(&seen.headers) {
        let one = |name: &str| {
            let values: Vec<&str> = headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
            assert_eq!(values.len(), 1, "{path}: {name} in {headers:?}");
            values[0].to_string()
        };
        assert_eq!(one("user-agent"), "firmware/2.1 (test)");
        assert_eq!(one("accept"), "application/json");
        if path == "/oauth/token" {
            assert!(one("authorization").starts_with("Basic "));
            assert_eq!(one("content-type"), "application/x-www-form-urlencoded");
        } else {
            assert_eq!(one("authorization"), "Bearer t0123456789");
            assert_eq!(one("content-type"), "application/json");
        }
    }
}

#[test]
fn a_body_larger_than_the_output_buffer_arrives_intact() {
    let (url, seen) = serve(Mode::Normal);
    let c = client(&url, 1);
    let value = "v".repeat(1400);
    let items: Vec<FeedItem> = (0..100).map(|_| FeedItem::sensor("7", &value)).collect();
    let report = c.post_feed_batch(&items);
    assert!(report.error.is_none(), "{:?}", report.error);
    assert!(report.results.iter().all(|r| r.outcome == FeedOutcome::Created));
    let seen = seen.lock().unwrap();
    let (_, path, body) = seen.requests.iter().find(|r| r.1.ends_with("/batches")).unwrap();
    assert!(body.len() > 128 * 1024, "the body ({} bytes) must exceed ureq's 128 KiB output buffer", body.len());
    assert!(
        body.starts_with(b"{\"items\":["),
        "{path}: the body starts with {:?}",
        String::from_utf8_lossy(&body[..40])
    );
    drop(seen);
    // A small request on the same connection after it: head and body in one piece again.
    let r = c.post_feed_batch(&[FeedItem::sensor("7", "1")]);
    assert!(r.error.is_none(), "{:?}", r.error);
}

#[test]
fn a_connection_closed_right_after_its_answer_costs_no_failed_call() {
    let (url, seen) = serve(Mode::CloseAfterEach);
    // One attempt: only the transport's reconnection can save the calls below.
    let c = client(&url, 1);
    c.authenticate().unwrap();
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(50));
        let r = c.post_feed_batch(&[FeedItem::sensor("7", &i.to_string())]);
        assert!(r.error.is_none(), "call {i}: {:?}", r.error);
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.requests.len(), 6, "each request sent once");
    assert!(seen.connections >= 6);
}

#[test]
fn redirects_are_not_followed() {
    let (url, seen) = serve(Mode::Redirect);
    let e = client(&url, 1).authenticate().unwrap_err();
    assert_eq!(e.http_status, 302, "{e:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.requests.len(), 1, "the Location was not requested");
}

#[test]
fn proxy_variables_of_the_environment_are_ignored() {
    // A proxy that does not exist: a client that used it could not reach the server.
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        std::env::set_var(var, "http://127.0.0.1:9");
    }
    let (url, seen) = serve(Mode::Normal);
    let c = client(&url, 1);
    assert!(c.post_feed_batch(&[FeedItem::sensor("7", "1")]).error.is_none());
    assert_eq!(seen.lock().unwrap().requests.len(), 2, "token and batch reached the server directly");
}

#[test]
fn an_answer_body_is_read_only_up_to_its_bound() {
    let (url, _) = serve(Mode::Huge);
    let e = client(&url, 1).authenticate().unwrap_err();
    assert_eq!(e.kind, realer::ErrorKind::Protocol, "{e:?}");
    assert!(e.message.contains("larger than"), "{}", e.message);
}
