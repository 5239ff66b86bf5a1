//! The field network kit (`realer_sim::netkit`): every impairment measured against a small TCP server or the
//! sim itself. Timing asserts are lower bounds (an impairment must add at least its time) with generous upper
//! bounds, so that a loaded 2-core machine cannot make them flake.

mod common;

use realer_sim::builtin::{CLIENT_ID, CLIENT_SECRET};
use realer_sim::netkit::{By, Credentials, Dir, FrontTls, Impairment, Netkit, Reply, Rule};
use realer_sim::Sim;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Agent;

use common::{basic, read, reading, Answer};

/// A TCP server on loopback: echoes what it reads, or (`burst`) answers its first byte with `burst` bytes.
struct Upstream {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Upstream {
    fn echo() -> Upstream {
        Upstream::start(None)
    }

    fn burst(bytes: usize) -> Upstream {
        Upstream::start(Some(bytes))
    }

    fn start(burst: Option<usize>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (Arc::clone(&connections), Arc::clone(&received));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let seen = Arc::clone(&seen);
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        seen.lock().unwrap().extend_from_slice(&buf[..n]);
                        let out = match burst {
                            Some(len) => vec![b'z'; len],
                            None => buf[..n].to_vec(),
                        };
                        if s.write_all(&out).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Upstream { addr, connections, received }
    }

    fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

fn connect(kit: &Netkit) -> TcpStream {
    let s = TcpStream::connect(kit.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Writes `msg` and reads as many bytes back; the time it took.
fn exchange(s: &mut TcpStream, msg: &[u8]) -> Duration {
    let started = Instant::now();
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
    started.elapsed()
}

/// Reads until the stream ends or fails: (bytes read, how it ended).
fn read_until_end(s: &mut TcpStream) -> (usize, io::Result<()>) {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (total, Ok(())),
            Ok(n) => total += n,
            Err(e) => return (total, Err(e)),
        }
    }
}

/// A read that must time out: the connection is silent (no data, no FIN, no RST).
fn assert_silent(s: &mut TcpStream, wait: Duration) {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
        other => panic!("expected silence, got {other:?}"),
    }
}

fn agent_trusting(ca_pem: &str) -> Agent {
    let ca = Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[ca])).build();
    Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn agent_via_proxy(proxy_url: &str, ca_pem: &str) -> Agent {
    let ca = Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[ca])).build();
    Agent::config_builder()
        .tls_config(tls)
        .proxy(Some(ureq::Proxy::new(proxy_url).unwrap()))
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn token_at(agent: &Agent, base: &str) -> Answer {
    read(
        agent
            .post(format!("{base}/oauth/token"))
            .header("Authorization", basic(CLIENT_ID, CLIENT_SECRET))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send("grant_type=client_credentials"),
    )
}

fn post_json(agent: &Agent, url: &str, token: &str, body: &str) -> Answer {
    read(
        agent
            .post(url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body),
    )
}

fn feed_url(base: &str) -> String {
    format!("{base}{}", common::feed_path())
}

#[test]
fn relay_passes_bytes_both_ways_and_counts_them() {
    let up = Upstream::echo();
    let kit = Netkit::relay(up.addr).unwrap();
    assert_eq!(kit.url(), format!("https://{}", kit.addr()));
    let mut s = connect(&kit);
    exchange(&mut s, &[7u8; 1000]);
    exchange(&mut s, b"hello");
    let stats = kit.stats();
    assert_eq!((stats.connections, stats.open, stats.bytes_up, stats.bytes_down), (1, 1, 1005, 1005), "{stats:?}");
    assert_eq!(up.received().len(), 1005);
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(3);
    while kit.stats().open > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(kit.stats().open, 0, "a closed connection is forgotten");
}

#[test]
fn latency_costs_a_round_trip_per_exchange_and_one_more_for_the_handshake() {
    let up = Upstream::echo();
    let kit = Netkit::relay(up.addr).unwrap();
    kit.set(Impairment::Latency(Dir::Both, Duration::from_millis(100))).unwrap();
    let mut s = connect(&kit);
    let first = exchange(&mut s, b"a");
    let second = exchange(&mut s, b"b");
    assert!(first >= Duration::from_millis(400), "handshake + exchange: {first:?}");
    assert!(second >= Duration::from_millis(200), "one round trip: {second:?}");
    assert!(second < Duration::from_secs(3), "{second:?}");
    // Changed while the connection is open: one way only.
    kit.set(Impairment::Latency(Dir::Up, Duration::ZERO)).unwrap();
    let third = exchange(&mut s, b"c");
    assert!(third >= Duration::from_millis(100) && third < Duration::from_secs(3), "{third:?}");
    kit.clear().unwrap();
    let fourth = exchange(&mut s, b"d");
    assert!(fourth < Duration::from_millis(1000), "{fourth:?}");
}

#[test]
fn rate_paces_every_byte_and_changes_while_running() {
    let up = Upstream::echo();
    let kit = Netkit::relay(up.addr).unwrap();
    // 80 kbit/s is 10,000 bytes a second: 5,000 bytes take half a second.
    kit.set(Impairment::Rate(Dir::Down, Some(80_000))).unwrap();
    let mut s = connect(&kit);
    let took = exchange(&mut s, &[1u8; 5000]);
    assert!(took >= Duration::from_millis(495), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // 8 kbit/s would take 5 s for 5,000 bytes; lifted after 300 ms, the rest flows at once.
    kit.set(Impairment::Rate(Dir::Both, Some(8_000))).unwrap();
    let started = Instant::now();
    s.write_all(&[2u8; 5000]).unwrap();
    thread::sleep(Duration::from_millis(300));
    kit.set(Impairment::Rate(Dir::Both, None)).unwrap();
    let mut back = vec![0u8; 5000];
    s.read_exact(&mut back).unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "{took:?}");
    assert_eq!(kit.stats().bytes_down, 10_000);
}

#[test]
fn an_idle_connection_is_black_holed_without_fin_or_rst() {
    let up = Upstream::echo();
    let kit = Netkit::relay(up.addr).unwrap();
    kit.set(Impairment::BlackholeIdle(Some(Duration::from_millis(300)))).unwrap();
    let mut s = connect(&kit);
    exchange(&mut s, b"a");
    thread::sleep(Duration::from_millis(500));
    s.write_all(b"b").unwrap();
    assert_silent(&mut s, Duration::from_millis(700));
    // Still no RST: writing works, reading stays silent.
    s.write_all(b"c").unwrap();
    assert_silent(&mut s, Duration::from_millis(200));
    assert_eq!(up.received(), b"a", "the swallowed bytes never reached the upstream");
    assert_eq!(kit.stats().blackholed, 1);
    // A new connection works at once.
    let mut fresh = connect(&kit);
    exchange(&mut fresh, b"d");
}

#[test]
fn blackhole_now_silences_open_connections_and_blackhole_new_the_next_ones() {
    let up = Upstream::echo();
    let kit = Netkit::relay(up.addr).unwrap();
    let mut a = connect(&kit);
    exchange(&mut a, b"a");
    kit.set(Impairment::BlackholeNow).unwrap();
    a.write_all(b"x").unwrap();
    assert_silent(&mut a, Duration::from_millis(300));

    kit.set(Impairment::BlackholeNew(true)).unwrap();
    let mut b = connect(&kit);
    b.write_all(b"hello?").unwrap();
    assert_silent(&mut b, Duration::from_millis(300));
    assert_eq!(up.connections.load(Ordering::SeqCst), 1, "a silent new connection never reaches the upstream");
    assert_eq!(kit.stats().blackholed, 2);

    kit.set(Impairment::BlackholeNew(false)).unwrap();
    let mut c = connect(&kit);
    exchange(&mut c, b"c");
    assert_eq!(up.received(), b"ac");
}

#[test]
fn reset_after_n_bytes_delivers_them_then_econnreset() {
    let up = Upstream::burst(10_000);
    let kit = Netkit::relay(up.addr).unwrap();
    kit.set(Impairment::ResetAfter(Dir::Down, Some(1000))).unwrap();
    let mut s = connect(&kit);
    s.write_all(b"go").unwrap();
    let (n, end) = read_until_end(&mut s);
    assert_eq!(n, 1000);
    assert_eq!(end.expect_err("a reset").kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(kit.stats().resets, 1);

    // Counted from the setting on: an open connection gets 300 more bytes.
    kit.set(Impairment::ResetAfter(Dir::Down, None)).unwrap();
    let mut t = connect(&kit);
    t.write_all(b"go").unwrap();
    let mut first = vec![0u8; 10_000];
    t.read_exact(&mut first).unwrap();
    kit.set(Impairment::ResetAfter(Dir::Both, Some(300))).unwrap();
    t.write_all(b"again").unwrap();
    let (n, end) = read_until_end(&mut t);
    assert_eq!(n, 295, "5 bytes up and 295 down");
    assert_eq!(end.expect_err("a reset").kind(), io::ErrorKind::ConnectionReset);
}

#[test]
fn down_refuses_new_connections_and_cut_resets_open_ones() {
    let up = Upstream::echo();
    let kit = Netkit::relay(up.addr).unwrap();
    let mut a = connect(&kit);
    exchange(&mut a, b"a");
    kit.set(Impairment::Down { cut_existing: false }).unwrap();
    let refused = TcpStream::connect(kit.addr()).expect_err("refused");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    exchange(&mut a, b"still open");
    kit.set(Impairment::Up).unwrap();
    let mut b = connect(&kit);
    exchange(&mut b, b"b");

    kit.set(Impairment::Down { cut_existing: true }).unwrap();
    let (_, end) = read_until_end(&mut a);
    assert_eq!(end.expect_err("a reset").kind(), io::ErrorKind::ConnectionReset);
    assert!(TcpStream::connect(kit.addr()).is_err());
    kit.clear().unwrap();
    let mut c = connect(&kit);
    exchange(&mut c, b"c");
    assert_eq!(kit.stats().resets, 2);
}

#[test]
fn held_answers_come_late_and_a_dead_upstream_is_a_reset() {
    let up = Upstream::echo();
    let kit = Netkit::relay(up.addr).unwrap();
    kit.set(Impairment::HoldAnswers(Duration::from_millis(300))).unwrap();
    let mut s = connect(&kit);
    let took = exchange(&mut s, b"a");
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "{took:?}");
    kit.set(Impairment::HoldAnswers(Duration::ZERO)).unwrap();
    let took = exchange(&mut s, b"b");
    assert!(took < Duration::from_millis(1000), "{took:?}");

    // Nothing listens at the upstream: the accepted connection is reset.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let kit = Netkit::relay(closed).unwrap();
    let mut s = connect(&kit);
    let (_, end) = read_until_end(&mut s);
    assert_eq!(end.expect_err("a reset").kind(), io::ErrorKind::ConnectionReset);
}

#[test]
fn dropping_the_kit_closes_its_port_and_connections_promptly() {
    let up = Upstream::echo();
    let kit = Netkit::relay(up.addr).unwrap();
    let addr = kit.addr();
    let mut a = connect(&kit);
    exchange(&mut a, b"a");
    kit.set(Impairment::BlackholeNow).unwrap();
    kit.set(Impairment::Latency(Dir::Both, Duration::from_secs(30))).unwrap();
    let mut b = connect(&kit);
    b.write_all(b"queued for 30 s").unwrap();
    let started = Instant::now();
    drop(kit);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(TcpStream::connect(addr).is_err(), "the port is closed");
    // Ended at once (FIN, or RST when the kit had not yet read what the client sent), never left hanging.
    b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let (_, end) = read_until_end(&mut b);
    assert!(end.as_ref().is_ok() || end.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset), "{end:?}");
}

#[test]
fn the_front_forwards_small_bodies_to_the_sim_and_answers_413_for_large_ones() {
    let sim = common::start();
    let kit = Netkit::http_front(&sim.base_url(), &sim.ca_pem(), FrontTls::Trusted).unwrap();
    let ca = kit.ca_pem().expect("the front's CA");
    assert_ne!(ca, sim.ca_pem());
    let agent = agent_trusting(&ca);
    let base = kit.url();

    let t = token_at(&agent, &base);
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.header("server"), Some("nginx/1.22.1"));
    let token = t.json()["access_token"].as_str().unwrap().to_string();

    kit.set(Impairment::MaxBody(Some(200))).unwrap();
    let small = reading("small-1").to_string();
    assert!(small.len() <= 200);
    let a = post_json(&agent, &feed_url(&base), &token, &small);
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json()["status"], "created", "{}", a.text);

    let mut big = reading("big-1");
    big["value"] = serde_json::Value::String("9".repeat(300));
    let a = post_json(&agent, &feed_url(&base), &token, &big.to_string());
    assert_eq!(a.status, 413);
    assert_eq!(a.header("content-type"), Some("text/html"));
    assert_eq!(
        a.text,
        "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"
    );
    let ids: Vec<String> = sim.records().into_iter().map(|r| r.message_id).collect();
    assert_eq!(ids, ["small-1"], "the big body never reached the sim");

    let log = kit.log();
    let summary: Vec<(&str, &str, u16, By)> =
        log.iter().map(|s| (s.method.as_str(), s.target.as_str(), s.status, s.by)).collect();
    let feed = common::feed_path();
    assert_eq!(
        summary,
        [
            ("POST", "/oauth/token", 200, By::Upstream),
            ("POST", feed.as_str(), 201, By::Upstream),
            ("POST", feed.as_str(), 413, By::Kit)
        ]
    );
    assert_eq!(log[2].body_len, big.to_string().len());
    assert!(log[1].header_names.contains(&"authorization".to_string()));
    assert_eq!(kit.stats().requests, 3);
}

#[test]
fn front_rules_answer_by_count_by_path_and_for_ever() {
    let sim = common::start();
    let kit = Netkit::http_front(&sim.base_url(), &sim.ca_pem(), FrontTls::Trusted).unwrap();
    let agent = agent_trusting(&kit.ca_pem().unwrap());
    let base = kit.url();
    kit.set(Impairment::Answer(Rule::next(2, Reply::Nginx(502)).under("/iot/"))).unwrap();
    kit.set(Impairment::Answer(Rule::next(1, Reply::Nginx(429)).retry_after(7))).unwrap();
    kit.set(Impairment::Answer(Rule::next(1, Reply::Empty(204)))).unwrap();

    // The 502 rule is for /iot/ only: the token request takes the 429, then the 204.
    let a = token_at(&agent, &base);
    assert_eq!((a.status, a.header("retry-after")), (429, Some("7")));
    assert!(a.text.contains("<title>429 Too Many Requests</title>"), "{}", a.text);
    let a = token_at(&agent, &base);
    assert_eq!((a.status, a.text.as_str(), a.header("content-length")), (204, "", None));
    let token = token_at(&agent, &base).json()["access_token"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let a = post_json(&agent, &feed_url(&base), &token, &reading("r").to_string());
        assert_eq!(a.status, 502);
        assert!(a.text.contains("<center><h1>502 Bad Gateway</h1></center>"), "{}", a.text);
    }
    let a = post_json(&agent, &feed_url(&base), &token, &reading("r").to_string());
    assert_eq!(a.status, 201, "{}", a.text);

    kit.set(Impairment::Answer(Rule::always(Reply::Nginx(503)))).unwrap();
    for _ in 0..3 {
        assert_eq!(token_at(&agent, &base).status, 503);
    }
    kit.clear().unwrap();
    kit.set(Impairment::Answer(Rule::next(1, Reply::Nginx(425)))).unwrap();
    kit.set(Impairment::Answer(Rule::next(1, Reply::Portal))).unwrap();
    let a = token_at(&agent, &base);
    assert_eq!((a.status, a.text.as_str()), (425, ""));
    let a = token_at(&agent, &base);
    assert_eq!(a.status, 200);
    assert!(a.text.contains("Guest Wi-Fi"), "{}", a.text);
    assert_eq!(token_at(&agent, &base).status, 200);
    let statuses: Vec<(u16, By)> = kit.log().iter().map(|s| (s.status, s.by)).collect();
    assert_eq!(statuses.iter().filter(|(_, by)| *by == By::Kit).count(), 9, "{statuses:?}");
    assert_eq!(sim.records().len(), 1);
}

#[test]
fn the_front_closes_idle_connections_answers_502_for_a_dead_upstream_and_can_close_without_answering() {
    let sim = common::start();
    let kit = Netkit::http_front(&sim.base_url(), &sim.ca_pem(), FrontTls::Trusted).unwrap();
    let agent = agent_trusting(&kit.ca_pem().unwrap());
    let base = kit.url();

    // nginx's keepalive_timeout (also the time it waits for a TLS handshake): the front closes, with FIN.
    kit.set(Impairment::KeepaliveTimeout(Duration::from_millis(300))).unwrap();
    let mut idle = connect(&kit);
    let started = Instant::now();
    let (n, end) = read_until_end(&mut idle);
    assert_eq!((n, end.is_ok()), (0, true), "{end:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(4), "{took:?}");

    sim.set_down(true);
    let a = token_at(&agent, &base);
    assert_eq!(a.status, 502);
    assert!(a.text.contains("<title>502 Bad Gateway</title>"), "{}", a.text);
    sim.set_down(false);
    assert_eq!(token_at(&agent, &base).status, 200);

    kit.set(Impairment::Answer(Rule::next(1, Reply::Close))).unwrap();
    assert!(agent.get(format!("{base}/oauth/token")).call().is_err(), "closed without an answer");
    let summary: Vec<(u16, By)> = kit.log().iter().map(|s| (s.status, s.by)).collect();
    assert_eq!(summary, [(502, By::Kit), (200, By::Upstream), (0, By::Kit)]);
}

/// TCP sockets of this machine connected to `port` on 127.0.0.1, not yet closed (TIME_WAIT excepted).
fn open_sockets_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(2) == Some(remote.as_str()))
        .filter(|l| l.split_whitespace().nth(3) != Some("06"))
        .count()
}

#[test]
fn the_front_lets_go_of_each_upstream_connection_on_a_long_keep_alive() {
    let sim = common::start();
    let kit = Netkit::http_front(&sim.base_url(), &sim.ca_pem(), FrontTls::Trusted).unwrap();
    let agent = agent_trusting(&kit.ca_pem().unwrap());
    for _ in 0..20 {
        assert_eq!(token_at(&agent, &kit.url()).status, 200);
    }
    assert_eq!(kit.stats().connections, 1, "one kept-alive client connection");
    let deadline = Instant::now() + Duration::from_secs(3);
    while open_sockets_to(sim.addr().port()) > 1 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        open_sockets_to(sim.addr().port()) <= 1,
        "{} upstream sockets left open",
        open_sockets_to(sim.addr().port())
    );
}

#[test]
fn an_intercepting_front_and_a_captive_portal_fail_a_client_that_trusts_the_sim() {
    let sim = common::start();
    let agent = agent_trusting(&sim.ca_pem());
    assert_eq!(token_at(&agent, &sim.base_url()).status, 200);

    let kit = Netkit::intercepting(&sim.base_url(), &sim.ca_pem()).unwrap();
    assert_eq!(kit.ca_pem(), None);
    let err = agent.get(format!("{}/oauth/token", kit.url())).call().expect_err("an untrusted certificate");
    assert!(matches!(err, ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Io(_)), "{err:?}");

    let portal = Netkit::captive_portal().unwrap();
    let err = agent.get(format!("{}/oauth/token", portal.url())).call().expect_err("an untrusted certificate");
    assert!(matches!(err, ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Io(_)), "{err:?}");
    assert!(sim.request_log().len() == 1, "nothing passed the middleboxes");

    // The relay passes the sim's own TLS: the same client works through it.
    let relay = Netkit::relay(sim.addr()).unwrap();
    assert_eq!(token_at(&agent, &relay.url()).status, 200);
}

#[test]
fn the_connect_proxy_tunnels_to_the_sim_and_sees_only_connect() {
    let sim = common::start();
    let kit = Netkit::connect_proxy().unwrap();
    assert_eq!(kit.url(), format!("http://{}", kit.addr()));
    let agent = agent_via_proxy(&kit.url(), &sim.ca_pem());
    let t = token_at(&agent, &sim.base_url());
    assert_eq!(t.status, 200, "{}", t.text);
    let token = t.json()["access_token"].as_str().unwrap().to_string();
    let a = post_json(&agent, &feed_url(&sim.base_url()), &token, &reading("via-proxy").to_string());
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(sim.records().len(), 1);

    let log = kit.log();
    assert!(!log.is_empty());
    for seen in &log {
        assert_eq!((seen.method.as_str(), seen.status, seen.by), ("CONNECT", 200, By::Upstream), "{seen:?}");
        assert_eq!(seen.target, sim.addr().to_string());
        assert!(!seen.header_names.iter().any(|h| h == "authorization" || h == "content-type"), "{seen:?}");
    }
    let dump = format!("{log:?}");
    assert!(!dump.contains("/oauth") && !dump.contains("feed-data") && !dump.contains(&token), "{dump}");
}

/// Sends a CONNECT on `s` and reads the answer's head and body (by Content-Length).
fn raw_connect(s: &mut TcpStream, target: &str, auth: Option<&str>) -> String {
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len =
        head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head + &String::from_utf8(body).unwrap()
}

#[test]
fn the_connect_proxy_asks_for_credentials_and_refuses_as_squid() {
    let sim = common::start();
    let kit = Netkit::connect_proxy().unwrap();
    kit.set(Impairment::ProxyCredentials(Some(Credentials::new("fw", "s3cret-pass")))).unwrap();
    let target = sim.addr().to_string();
    let good = basic("fw", "s3cret-pass");

    let mut s = connect(&kit);
    let a = raw_connect(&mut s, &target, None);
    assert!(a.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n"), "{a}");
    assert!(a.contains("\r\nProxy-Authenticate: Basic realm=\"Squid proxy-caching web server\"\r\n"), "{a}");
    assert!(a.contains("X-Squid-Error: ERR_CACHE_ACCESS_DENIED 0"), "{a}");
    let a = raw_connect(&mut s, &target, Some(&basic("fw", "wrong")));
    assert!(a.starts_with("HTTP/1.1 407 "), "{a}");
    // The same connection, now with the right credentials: the tunnel opens.
    let a = raw_connect(&mut s, &target, Some(&good));
    assert_eq!(a, "HTTP/1.1 200 Connection established\r\n\r\n");
    drop(s);

    kit.set(Impairment::Answer(Rule::next(1, Reply::Squid(403)))).unwrap();
    kit.set(Impairment::Answer(Rule::next(1, Reply::Squid(502)))).unwrap();
    let a = raw_connect(&mut connect(&kit), &target, Some(&good));
    assert!(a.starts_with("HTTP/1.1 403 Forbidden\r\nServer: squid/5.7\r\n"), "{a}");
    assert!(a.contains("<p><b>Access Denied.</b></p>"), "{a}");
    let a = raw_connect(&mut connect(&kit), &target, Some(&good));
    assert!(a.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{a}");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let a = raw_connect(&mut connect(&kit), &closed, Some(&good));
    assert!(a.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{a}");
    assert!(a.contains("X-Squid-Error: ERR_CONNECT_FAIL 111"), "{a}");

    // A client with the credentials in its proxy URL goes through; one without is refused.
    let with = agent_via_proxy(&format!("http://fw:s3cret-pass@{}", kit.addr()), &sim.ca_pem());
    assert_eq!(token_at(&with, &sim.base_url()).status, 200);
    let without = agent_via_proxy(&kit.url(), &sim.ca_pem());
    assert!(without.get(format!("{}/oauth/token", sim.base_url())).call().is_err());

    let statuses: Vec<u16> = kit.log().iter().map(|s| s.status).collect();
    assert_eq!(&statuses[..6], [407, 407, 200, 403, 502, 503]);
    assert!(statuses[6..].contains(&200) && statuses[6..].contains(&407), "{statuses:?}");
    let dump = format!("{:?}", kit.log());
    assert!(!dump.contains("s3cret") && !dump.contains(good.trim_start_matches("Basic ")), "{dump}");
    let names = |i: usize| kit.log()[i].header_names.clone();
    assert_eq!((names(0), names(2)), (vec!["host".to_string()], vec!["host".into(), "proxy-authorization".into()]));
}

#[test]
fn impairments_apply_through_the_connect_proxy() {
    let up = Upstream::echo();
    let kit = Netkit::connect_proxy().unwrap();
    kit.set(Impairment::Latency(Dir::Both, Duration::from_millis(50))).unwrap();
    let mut s = connect(&kit);
    let started = Instant::now();
    assert_eq!(raw_connect(&mut s, &up.addr.to_string(), None), "HTTP/1.1 200 Connection established\r\n\r\n");
    assert!(started.elapsed() >= Duration::from_millis(200), "handshake + CONNECT: {:?}", started.elapsed());
    let took = exchange(&mut s, b"through the tunnel");
    assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(3), "{took:?}");
    kit.set(Impairment::BlackholeNow).unwrap();
    s.write_all(b"x").unwrap();
    assert_silent(&mut s, Duration::from_millis(300));
    assert_eq!(up.received(), b"through the tunnel");
}

#[test]
fn settings_a_mode_has_not_are_refused() {
    let up = Upstream::echo();
    let relay = Netkit::relay(up.addr).unwrap();
    let e = relay.set(Impairment::Answer(Rule::always(Reply::Nginx(502)))).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(relay.set(Impairment::MaxBody(Some(1))).is_err());
    assert!(relay.set(Impairment::Rate(Dir::Both, Some(0))).is_err());
    let proxy = Netkit::connect_proxy().unwrap();
    assert!(proxy.set(Impairment::MaxBody(Some(1))).is_err());
    assert!(relay.set(Impairment::ProxyCredentials(None)).is_err());
    assert!(relay.command("answer 502 1").unwrap_err().contains("answer"));
    assert_eq!(relay.command("latency 5"), Ok(None));
    let stats: serde_json::Value = serde_json::from_str(&relay.command("stats").unwrap().unwrap()).unwrap();
    assert_eq!(stats["connections"], 0);
    assert_eq!(relay.command("log"), Ok(Some("[]".to_string())));
}

/// The `realer-netkit` binary, driven on stdin as a script would.
struct Program {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Program {
    fn start(args: &[&str]) -> (Program, SocketAddr) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_realer-netkit"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let addr = first.strip_prefix("listening on ").unwrap_or_else(|| panic!("{first:?}")).parse().unwrap();
        (Program { child, stdin, lines }, addr)
    }

    fn say(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.lines.next().unwrap().unwrap()
    }

    /// Closes stdin; the program must end by itself, successfully.
    fn finish(mut self) {
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("realer-netkit did not stop at the end of its input");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn the_binary_relays_and_obeys_its_commands() {
    let up = Upstream::echo();
    let (mut p, addr) = Program::start(&["--mode", "relay", "--upstream", &up.addr.to_string()]);
    assert_eq!(p.say("latency 50"), "ok");
    assert_eq!(p.say("# a comment is skipped\nhold 0"), "ok");
    assert!(p.say("frobnicate").starts_with("error: unknown command"));
    assert!(p.say("answer 413 3").starts_with("error: answer: only"));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let took = exchange(&mut s, b"ping");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    let stats: serde_json::Value = serde_json::from_str(&p.say("stats")).unwrap();
    assert_eq!((stats["connections"].as_u64(), stats["bytes_up"].as_u64()), (Some(1), Some(4)), "{stats}");
    assert_eq!(p.say("down"), "ok");
    assert!(TcpStream::connect(addr).is_err());
    assert_eq!(p.say("clear"), "ok");
    let mut t = TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    exchange(&mut t, b"pong");
    p.finish();
    assert!(TcpStream::connect(addr).is_err(), "the port closed with the program");
}

#[test]
fn the_binary_fronts_the_sim_with_its_own_ca() {
    let sim: Sim = common::start();
    let dir = std::env::temp_dir();
    let upstream_ca = dir.join(format!("realer-netkit-test-{}-upstream.pem", std::process::id()));
    let ca_out = dir.join(format!("realer-netkit-test-{}-front.pem", std::process::id()));
    std::fs::write(&upstream_ca, sim.ca_pem()).unwrap();
    let (mut p, addr) = Program::start(&[
        "--mode",
        "front",
        "--upstream",
        &sim.base_url(),
        "--upstream-ca",
        upstream_ca.to_str().unwrap(),
        "--ca-out",
        ca_out.to_str().unwrap(),
    ]);
    let agent = agent_trusting(&std::fs::read_to_string(&ca_out).unwrap());
    let base = format!("https://{addr}");
    assert_eq!(p.say("answer 413 1 path=/oauth"), "ok");
    assert_eq!(token_at(&agent, &base).status, 413);
    assert_eq!(token_at(&agent, &base).status, 200);
    let log: serde_json::Value = serde_json::from_str(&p.say("log")).unwrap();
    assert_eq!(log[0]["status"], 413);
    assert_eq!(log[0]["by"], "kit");
    assert_eq!(log[1]["by"], "upstream");
    p.finish();
    let _ = std::fs::remove_file(upstream_ca);
    let _ = std::fs::remove_file(ca_out);
}

#[test]
fn a_kit_can_be_shared_between_threads() {
    fn check<T: Send + Sync>() {}
    check::<Netkit>();
    let up = Upstream::echo();
    let kit = Arc::new(Netkit::relay(up.addr).unwrap());
    let other = Arc::clone(&kit);
    thread::spawn(move || other.set(Impairment::Latency(Dir::Both, Duration::from_millis(1))).unwrap()).join().unwrap();
    exchange(&mut connect(&kit), b"shared");
}
