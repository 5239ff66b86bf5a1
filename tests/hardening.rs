//! Transport and configuration edges a device meets, each shown from outside: a read that may wait until the
//! call's deadline, files that are not regular files, secrets and control characters a server sends back,
//! and Retry-After as an HTTP date. (Fork is tests/fork.rs; wiping freed buffers is tests/zeroize.rs.)

mod common;
#[path = "support/scripted.rs"]
mod scripted;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use realer::{Client, Config, Error, ErrorKind, FeedItem, FeedOutcome, Level, Logger};
use scripted::{json, Request};

const CLIENT_ID: &str = "cdv_hardening";
const CLIENT_SECRET: &str = "Sx9-very-secret-client-value";
/// base64("cdv_hardening:Sx9-very-secret-client-value")
const BASIC: &str = "Y2R2X2hhcmRlbmluZzpTeDktdmVyeS1zZWNyZXQtY2xpZW50LXZhbHVl";
const TOKEN: &str = "tok-Qw7-the-access-token-itself";

fn scripted_client(url: &str, logger: Option<Logger>) -> Client {
    let mut c = Config::new();
    c.allow_insecure_loopback(true);
    c.set_base_url(url).unwrap();
    c.set_device_id("12345").unwrap();
    c.set_credentials(CLIENT_ID, CLIENT_SECRET).unwrap();
    c.set_timeouts(Duration::from_secs(2), Duration::from_secs(5)).unwrap();
    c.set_retry(1, Duration::from_millis(1), Duration::from_millis(5)).unwrap();
    c.set_logger(logger);
    Client::new(&c).unwrap()
}

/// Every line logged at any level.
fn collecting_logger() -> (Logger, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    (Logger::new(Level::Debug, move |_, m| sink.lock().unwrap().push(m.to_string())), lines)
}

/// Every text of an error a caller can read.
fn texts(e: &Error) -> String {
    format!("{} | {} | {} | {} | {}", e.message, e.error_type, e.request_id, e.details_json(), e)
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [CLIENT_SECRET, BASIC, TOKEN] {
        assert!(!text.contains(secret), "{what} holds a secret: {text}");
    }
}

#[test]
fn a_read_may_use_what_is_left_of_the_call_deadline() {
    // Request timeout 3 s, a server that answers after 2 s every time: one read must wait that long (it
    // waited 1.5 s at most, then the call re-sent the item and ran out of time).
    let sim = sim();
    let mut cfg = config(&sim);
    cfg.set_timeouts(Duration::from_secs(1), Duration::from_secs(3)).unwrap();
    let c = Client::new(&cfg).unwrap();
    c.authenticate().unwrap();
    sim.inject(Fault::Delay { ms: 2000 }, Target::FeedData, 3);
    let started = Instant::now();
    let r = c.post_feed_data(&FeedItem::sensor("7", "21.4"));
    assert_eq!(r.outcome, FeedOutcome::Created, "{:?} after {:?}", r.error, started.elapsed());
    let sent = sim.request_log().iter().filter(|e| e.path.ends_with("/feed-data")).count();
    assert_eq!(sent, 1, "sent once, answered once");
}

/// Runs `f` on another thread; fails the test when it has not returned within `limit` (a blocked call).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("the call blocked")
}

#[test]
fn a_ca_file_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = std::env::temp_dir().join(format!("realer-hardening-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("ca.fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let fifo = fifo.to_str().unwrap().to_string();
    for path in [fifo.clone(), "/dev/zero".to_string(), dir.to_str().unwrap().to_string()] {
        let p = path.clone();
        let (kind, message) =
            within(Duration::from_secs(5), move || Config::new().set_ca_file(&p).map_err(|e| (e.kind, e.message)))
                .unwrap_err();
        assert_eq!(kind, ErrorKind::Config, "{path}: {message}");
        assert!(message.contains("not a regular file"), "{path}: {message}");
    }
    // The outbox file is read by SQLite: the same rule.
    for path in [fifo.clone(), "/dev/zero".to_string()] {
        let e = Config::new().set_outbox(&path, 10, 0).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{path}: {}", e.message);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn echoing_token_endpoint(r: &Request<'_>) -> Cow<'static, [u8]> {
    // A proxy that echoes what it was sent, and even decodes the Basic credentials.
    let auth = r.header("authorization").unwrap_or("").to_string();
    let body = serde_json::json!({
        "error": "invalid_client",
        "error_description": format!("refused {auth} (client {CLIENT_ID}, secret {CLIENT_SECRET})"),
        "details": {"authorization": auth, CLIENT_SECRET: [CLIENT_SECRET]},
    });
    let basic = auth.trim_start_matches("Basic ").to_string();
    json("401 Unauthorized", &format!("X-Request-Id: {basic}\r\n"), &body.to_string())
}

#[test]
fn credentials_a_server_echoes_never_reach_an_error_or_a_log_line() {
    let server = scripted::serve(echoing_token_endpoint);
    let (logger, lines) = collecting_logger();
    let c = scripted_client(&server.url, Some(logger));
    let e = c.authenticate().unwrap_err();
    assert_eq!((e.kind, e.http_status), (ErrorKind::Auth, 401), "{e:?}");
    assert!(e.message.contains("<redacted>"), "{}", e.message);
    assert_no_secret("the error", &texts(&e));
    assert_no_secret("the error's Debug", &format!("{e:?}"));
    for line in lines.lock().unwrap().iter() {
        assert_no_secret("a log line", line);
    }
}

fn echoing_api(r: &Request<'_>) -> Cow<'static, [u8]> {
    if r.path == "/oauth/token" {
        return json("200 OK", "", &format!(r#"{{"access_token":"{TOKEN}","expires_in":3600}}"#));
    }
    let auth = r.header("authorization").unwrap_or("").to_string();
    if r.path.ends_with("/commands") {
        let body = serde_json::json!({"code": 2000, "commands": [
            {"id": 3, "error": {"type": format!("t {TOKEN}"), "message": format!("cannot show {auth}\r\n")}},
        ]});
        return json("200 OK", "", &body.to_string());
    }
    if r.path.ends_with("/batches") {
        let body = serde_json::json!({"code": 2000, "status": "completed", "results": [{
            "index": 0, "status": "rejected", "code": 4022,
            "error": {"type": format!("bad {TOKEN}"), "message": format!("you sent {auth}"), "details": {"t": [TOKEN]}},
        }]});
        return json("200 OK", "", &body.to_string());
    }
    let body = serde_json::json!({"code": 4003, "error": {
        "type": format!("forbidden {TOKEN}"), "message": format!("token {auth} may not do this"),
        "details": {"authorization": [auth]},
    }, "request_id": TOKEN});
    json("403 Forbidden", "", &body.to_string())
}

#[test]
fn a_token_a_server_echoes_never_reaches_an_error_or_a_log_line() {
    let server = scripted::serve(echoing_api);
    let (logger, lines) = collecting_logger();
    let c = scripted_client(&server.url, Some(logger));
    let r = c.post_feed_data(&FeedItem::sensor("7", "1"));
    let e = r.error.expect("refused");
    assert_eq!((e.kind, e.http_status), (ErrorKind::Api, 403), "{e:?}");
    assert!(e.message.contains("<redacted>"), "{}", e.message);
    assert_no_secret("the error", &texts(&e));
    let e = c.fetch_sensors().unwrap_err();
    assert_no_secret("the catalog error", &texts(&e));
    let commands = c.fetch_commands().unwrap().to_vec();
    let e = commands[0].error.as_ref().expect("an item Realer cannot represent");
    assert_no_secret("a catalog item's error", &format!("{} {}", e.error_type, e.message));
    assert!(!e.message.contains('\n'), "{:?}", e.message);
    let report = c.post_feed_batch(&[FeedItem::sensor("7", "1")]);
    let e = report.results[0].error.as_ref().expect("rejected");
    assert_eq!(report.results[0].outcome, FeedOutcome::Rejected);
    assert_no_secret("a batch item's error", &texts(e));
    for line in lines.lock().unwrap().iter() {
        assert_no_secret("a log line", line);
    }
}

fn control_characters(r: &Request<'_>) -> Cow<'static, [u8]> {
    if r.path == "/oauth/token" {
        return json("200 OK", "", r#"{"access_token":"t","expires_in":3600}"#);
    }
    json(
        "422 Unprocessable Entity",
        "",
        r#"{"code":4022,"error":{"type":"bad\r\ntype","message":"line\r\nX-Forged: 1\u001b[2J\u0007\u009b31m\u202e","details":{"v\n":["a\rb\u001b"]}},"request_id":"r\u0000q"}"#,
    )
}

#[test]
fn control_characters_from_a_server_never_reach_a_message() {
    let server = scripted::serve(control_characters);
    let (logger, lines) = collecting_logger();
    let c = scripted_client(&server.url, Some(logger));
    let e = c.post_feed_data(&FeedItem::sensor("7", "1")).error.expect("refused");
    assert_eq!(e.http_status, 422, "{e:?}");
    let all = texts(&e);
    assert!(all.contains("X-Forged: 1"), "the text stays readable: {all}");
    let bad =
        |c: char| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c);
    assert!(!all.chars().any(bad), "control characters in {all:?}");
    for line in lines.lock().unwrap().iter() {
        assert!(!line.chars().any(bad), "control characters in the log line {line:?}");
    }
}

fn retry_after_date(r: &Request<'_>) -> Cow<'static, [u8]> {
    if r.path == "/oauth/token" {
        // An IMF-fixdate 3 seconds ahead of now.
        let at = std::time::SystemTime::now() + Duration::from_secs(3);
        let secs = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let date = imf_fixdate(secs);
        return json(
            "429 Too Many Requests",
            &format!("Retry-After: {date}\r\n"),
            r#"{"error":"rate_limited","error_description":"slow down"}"#,
        );
    }
    json("404 Not Found", "", r#"{"code":4004}"#)
}

/// IMF-fixdate, written here independently of the library's parser.
fn imf_fixdate(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let sod = unix_secs.rem_euclid(86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    // civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][(m - 1) as usize];
    format!("{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT", sod / 3600, sod / 60 % 60, sod % 60)
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    let server = scripted::serve(retry_after_date);
    let c = scripted_client(&server.url, None);
    let e = c.authenticate().unwrap_err();
    assert_eq!(e.http_status, 429, "{e:?}");
    let after = e.retry_after.expect("the date was read");
    assert!(after > Duration::from_millis(1500) && after <= Duration::from_secs(3), "{after:?}");
}
