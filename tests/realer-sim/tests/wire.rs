//! HTTP/1.1 and TLS behaviour on the wire, with a bare rustls client: keep-alive and pipelining,
//! `Connection: close` (with close_notify), `Expect: 100-continue`, malformed requests, and the
//! close-without-close_notify of the CloseBeforeAnswer fault.

use realer_sim::builtin::{CLIENT_ID, CLIENT_SECRET};
use realer_sim::encoding::base64_encode;
use realer_sim::{Fault, Sim, SimOptions, Target};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn start() -> Sim {
    Sim::start(SimOptions { quiet: true, ..SimOptions::default() }).unwrap()
}

fn connect(sim: &Sim, server_name: &str) -> Tls {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(sim.ca_pem().as_bytes()).unwrap()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from(server_name.to_string()).unwrap()).unwrap();
    let tcp = TcpStream::connect(sim.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    StreamOwned::new(conn, tcp)
}

/// Reads until the stream ends; the error is `Ok` for a clean TLS close (close_notify).
fn read_to_end(tls: &mut Tls) -> (String, io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        match tls.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), end)
}

fn token(sim: &Sim) -> String {
    let mut tls = connect(sim, "localhost");
    let body = "grant_type=client_credentials";
    write!(
        tls,
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        base64_encode(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes()),
        body.len()
    )
    .unwrap();
    let (text, end) = read_to_end(&mut tls);
    end.unwrap();
    let json = text.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

#[test]
fn pipelined_keep_alive_then_connection_close() {
    let sim = start();
    let mut tls = connect(&sim, "127.0.0.1");
    tls.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (text, end) = read_to_end(&mut tls);
    end.expect("the sim closes with close_notify");
    assert_eq!(text.matches("HTTP/1.1 404 Not Found\r\n").count(), 3, "{text}");
    assert_eq!(text.matches("Connection: close\r\n").count(), 1, "{text}");
    assert_eq!(text.matches("X-Request-Id: req_").count(), 3, "{text}");
    let paths: Vec<String> = sim.request_log().into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["/a", "/b", "/c"]);
}

#[test]
fn certificate_covers_ipv6_and_localhost_names() {
    let sim = start();
    for name in ["localhost", "127.0.0.1", "::1"] {
        let mut tls = connect(&sim, name);
        tls.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        let (text, end) = read_to_end(&mut tls);
        end.unwrap();
        assert!(text.starts_with("HTTP/1.1 404"), "{name}: {text}");
    }
}

#[test]
fn expect_continue() {
    let sim = start();
    let t = token(&sim);
    let body = r#"{"sensor_id":7,"value":"21.4","value_received_at":"2026-04-24T10:15:00Z","message_id":"e-1"}"#;
    let mut tls = connect(&sim, "127.0.0.1");
    write!(
        tls,
        "POST /iot/v1/devices/12345/feed-data HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 25];
    tls.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    tls.write_all(body.as_bytes()).unwrap();
    let (text, _) = read_to_end(&mut tls);
    assert!(text.starts_with("HTTP/1.1 201 Created\r\n"), "{text}");
}

#[test]
fn malformed_requests_get_400_and_close() {
    let sim = start();
    let mut tls = connect(&sim, "127.0.0.1");
    tls.write_all(b"this is not http\r\n\r\n").unwrap();
    let (text, _) = read_to_end(&mut tls);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains(r#""code":4000"#), "{text}");
    assert!(text.contains("Connection: close"), "{text}");
}

#[test]
fn close_before_answer_sends_no_close_notify() {
    let sim = start();
    sim.inject(Fault::CloseBeforeAnswer, Target::Any, 1);
    let mut tls = connect(&sim, "127.0.0.1");
    tls.write_all(b"GET /iot/v1/devices/12345/sensors HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (text, end) = read_to_end(&mut tls);
    assert_eq!(text, "");
    let err = end.expect_err("no close_notify: an unexpected EOF");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
}

#[test]
fn refusals_of_the_reader_carry_realers_codes() {
    let sim = start();
    let t = token(&sim);
    let cases: [(String, &str, &str); 4] = [
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n".into(), "HTTP/1.1 400 Bad Request\r\n", r#""code":4000"#),
        (
            "POST /iot/v1/devices/12345/feed-data HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
            "HTTP/1.1 400 Bad Request\r\n",
            r#""code":4000"#,
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024)),
            "HTTP/1.1 431 ",
            r#""code":4000"#,
        ),
        (
            format!(
                "POST /iot/v1/devices/12345/feed-data HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                5 * 1024 * 1024
            ),
            "HTTP/1.1 413 ",
            "the request body exceeds the device plan byte budget",
        ),
    ];
    for (request, status_line, needle) in cases {
        let mut tls = connect(&sim, "127.0.0.1");
        tls.write_all(request.as_bytes()).unwrap();
        let (text, _) = read_to_end(&mut tls);
        assert!(text.starts_with(status_line), "{text}");
        assert!(text.contains(needle), "{text}");
        assert!(text.contains("Connection: close"), "{text}");
    }
}
