//! Fault injection (every kind, targets, FIFO), going down and up on the same port, stopping, and the
//! `/_sim/` admin interface.

mod common;

use common::*;
use realer_sim::{Fault, Target};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn statuses(sim: &realer_sim::Sim) -> Vec<u16> {
    sim.request_log().iter().map(|e| e.status).collect()
}

#[test]
fn service_unavailable_and_rate_limited() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    sim.inject(Fault::ServiceUnavailable, Target::FeedData, 2);
    for _ in 0..2 {
        assert_error(&feed(&sim, &agent, &t, &reading("m1")), 503, 5003, "service_unavailable");
    }
    assert_eq!(feed(&sim, &agent, &t, &reading("m1")).status, 201);
    assert_eq!(sim.records().len(), 1);

    // Faults apply whatever the authorisation (a proxy answers before the API looks at it).
    sim.inject(Fault::RateLimited { retry_after_secs: 7 }, Target::Token, 1);
    let a = token_request(&sim, &agent, None, "grant_type=client_credentials");
    assert_error(&a, 429, 4029, "rate_limited");
    assert_eq!(a.header("retry-after"), Some("7"));
    let a = token_request(&sim, &agent, None, "grant_type=client_credentials");
    assert_eq!(a.status, 401);
    assert_eq!(statuses(&sim), vec![200, 503, 503, 201, 429, 401]);
}

#[test]
fn proxy_bad_gateway_is_html() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    sim.inject(Fault::ProxyBadGateway, Target::Catalog, 1);
    // A feed POST does not match the catalog target.
    assert_eq!(feed(&sim, &agent, &t, &reading("m1")).status, 201);
    let a = get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&t));
    assert_eq!(a.status, 502);
    assert!(a.header("content-type").unwrap().starts_with("text/html"));
    assert!(a.text.contains("502 Bad Gateway"));
    assert!(a.text.contains("nginx"));
    assert!(serde_json::from_str::<Value>(&a.text).is_err());
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&t)).status, 200);
}

#[test]
fn delay_then_normal_answer() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    sim.inject(Fault::Delay { ms: 300 }, Target::Batch, 1);
    let started = Instant::now();
    let a = batch(&sim, &agent, &t, &json!({"items": [reading("m1")]}));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(a.json()["status"], "completed");
    let started = Instant::now();
    batch(&sim, &agent, &t, &json!({"items": [reading("m2")]}));
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[test]
fn close_before_answer_stores_nothing() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    sim.inject(Fault::CloseBeforeAnswer, Target::FeedData, 1);
    let body = reading("m1").to_string();
    let r = post_raw(&sim, &agent, &feed_path(), Some(&t), Some("application/json"), &body);
    assert!(r.is_err(), "expected a transport error, got {r:?}");
    assert!(sim.records().is_empty());
    let log = sim.request_log();
    assert_eq!(log.last().unwrap().status, 0);
    assert!(log.last().unwrap().bearer_valid);
    // The retry on a new connection is stored.
    assert_eq!(feed(&sim, &agent, &t, &reading("m1")).status, 201);
}

#[test]
fn store_then_close_stores_and_the_retry_is_idempotent() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    sim.inject(Fault::StoreThenClose, Target::FeedData, 1);
    let body = reading("m1").to_string();
    let r = post_raw(&sim, &agent, &feed_path(), Some(&t), Some("application/json"), &body);
    assert!(r.is_err(), "expected a transport error, got {r:?}");
    assert_eq!(sim.records().len(), 1);
    assert_eq!(sim.request_log().last().unwrap().status, 0);
    let a = feed(&sim, &agent, &t, &reading("m1"));
    assert_eq!((a.status, a.json()["status"].clone()), (200, json!("idempotent")));
    assert_eq!(a.json()["feed_data_id"], 1);
    assert_eq!(sim.records()[0].times_received, 2);
}

#[test]
fn hang_until_the_client_gives_up() {
    let sim = start();
    let t = token(&sim, &agent(&sim));
    sim.inject(Fault::Hang, Target::Path(feed_path()), 1);
    let impatient = agent_with_timeout(&sim, Duration::from_millis(400));
    let started = Instant::now();
    let body = reading("m1").to_string();
    let r = post_raw(&sim, &impatient, &feed_path(), Some(&t), Some("application/json"), &body);
    assert!(r.is_err());
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert!(sim.records().is_empty());
    assert_eq!(sim.request_log().last().unwrap().status, 0);
    assert_eq!(feed(&sim, &agent(&sim), &t, &reading("m1")).status, 201);
}

#[test]
fn targets_fifo_and_clear() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    sim.inject(Fault::ServiceUnavailable, Target::Any, 1);
    sim.inject(Fault::RateLimited { retry_after_secs: 1 }, Target::Any, 1);
    sim.inject(Fault::ProxyBadGateway, Target::Path("/iot/v1/devices/12345/commands".into()), 2);
    assert_eq!(get(&sim, &agent, "/nowhere", None).status, 503);
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&t)).status, 429);
    // Exact path only.
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/commands/1", Some(&t)).status, 200);
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&t)).status, 502);
    sim.clear_faults();
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&t)).status, 200);
    sim.inject(Fault::ServiceUnavailable, Target::Token, 0);
    assert_eq!(token_request(&sim, &agent, None, "").status, 401);
}

#[test]
fn down_and_up_on_the_same_port_keeps_state() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    assert_eq!(feed(&sim, &agent, &t, &reading("m1")).status, 201);
    let addr = sim.addr();
    // A keep-alive connection the client holds open.
    let idle = TcpStream::connect(addr).unwrap();

    sim.inject(Fault::ServiceUnavailable, Target::Batch, 1);
    sim.set_down(true);
    assert!(TcpStream::connect(addr).is_err(), "connection refused while down");
    let r = post_raw(&sim, &agent, &feed_path(), Some(&t), Some("application/json"), &reading("m2").to_string());
    assert!(r.is_err());
    // The open connection was dropped.
    idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 1];
    assert!(matches!(std::io::Read::read(&mut &idle, &mut buf), Ok(0) | Err(_)));
    sim.set_down(true); // idempotent

    sim.set_down(false);
    assert_eq!(sim.addr(), addr);
    // Tokens, records and faults survived.
    let a = feed(&sim, &agent, &t, &reading("m1"));
    assert_eq!((a.status, a.json()["feed_data_id"].clone()), (200, json!(1)));
    assert_eq!(batch(&sim, &agent, &t, &json!({"items": [reading("m3")]})).status, 503);
    assert_eq!(sim.records().len(), 1);
    sim.set_down(false); // idempotent
    assert_eq!(feed(&sim, &agent, &t, &reading("m2")).status, 201);
}

#[test]
fn down_drops_a_request_in_flight() {
    let sim = start();
    let t = token(&sim, &agent(&sim));
    sim.inject(Fault::Hang, Target::FeedData, 1);
    let agent = agent(&sim);
    let started = Instant::now();
    let result = std::thread::scope(|s| {
        let client = s.spawn(|| {
            post_raw(&sim, &agent, &feed_path(), Some(&t), Some("application/json"), &reading("m1").to_string())
                .map(|r| r.status())
        });
        std::thread::sleep(Duration::from_millis(200));
        sim.set_down(true);
        client.join().unwrap()
    });
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    sim.set_down(false);
    assert_eq!(feed(&sim, &agent, &t, &reading("m1")).status, 201);
}

#[test]
fn drop_stops_quickly_with_open_connections() {
    let sim = start();
    let t = token(&sim, &agent(&sim));
    let addr = sim.addr();
    sim.inject(Fault::Hang, Target::Any, 1);
    let agent = agent(&sim);
    let path = format!("{}{}", sim.base_url(), feed_path());
    let client = std::thread::spawn(move || {
        agent
            .post(path)
            .header("Authorization", format!("Bearer {t}"))
            .header("Content-Type", "application/json")
            .send(reading("m1").to_string())
            .map(|r| r.status())
    });
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    drop(sim);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert!(client.join().unwrap().is_err());
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn admin_interface() {
    let sim = start();
    let agent = agent(&sim);
    // The admin token is required.
    let a = get(&sim, &agent, "/_sim/records", None);
    assert_error(&a, 401, 4001, "unauthorized");
    let user = token(&sim, &agent);
    assert_error(&get(&sim, &agent, "/_sim/records", Some(&user)), 401, 4001, "unauthorized");
    assert_error(&admin(&sim, &agent, "GET", "/_sim/nothing", None), 404, 4004, "not_found");
    assert_error(&admin(&sim, &agent, "GET", "/_sim/faults", None), 405, 4000, "bad_request");

    // Faults through the admin interface; admin requests themselves are never faulted.
    let q = admin(
        &sim,
        &agent,
        "POST",
        "/_sim/faults",
        Some(json!({"fault": "rate_limited", "target": "feed_data", "count": 2, "retry_after_secs": 3})),
    );
    assert_eq!((q.status, q.json()["queued"].clone()), (200, json!(true)));
    let q = admin(&sim, &agent, "POST", "/_sim/faults", Some(json!({"fault": "service_unavailable", "target": "any"})));
    assert_eq!(q.status, 200);
    assert_eq!(admin(&sim, &agent, "GET", "/_sim/tokens", None).json(), json!({"code": 2000, "issued": 1}));
    let a = feed(&sim, &agent, &user, &reading("m1"));
    assert_eq!((a.status, a.header("retry-after")), (429, Some("3")));
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&user)).status, 503);
    assert_eq!(admin(&sim, &agent, "DELETE", "/_sim/faults", None).status, 200);
    assert_eq!(feed(&sim, &agent, &user, &reading("m1")).status, 201);

    for (body, field) in [
        (json!({"fault": "explode"}), "fault"),
        (json!({"fault": "hang", "target": "somewhere"}), "target"),
        (json!({"fault": "delay", "ms": -5}), "ms"),
    ] {
        let d = assert_error(&admin(&sim, &agent, "POST", "/_sim/faults", Some(body)), 422, 4022, "validation_failed");
        assert!(d[field].is_array(), "{d}");
    }
    let q = admin(
        &sim,
        &agent,
        "POST",
        "/_sim/faults",
        Some(json!({"fault": "delay", "ms": 10, "target": "/iot/v1/devices/12345/sensors"})),
    );
    assert_eq!(q.status, 200);
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&user)).status, 200);

    // State.
    let records = admin(&sim, &agent, "GET", "/_sim/records", None).json();
    assert_eq!(
        records["records"],
        json!([{"device_id": "12345", "message_id": "m1", "item": reading("m1"), "feed_data_id": 1, "times_received": 1}])
    );
    let requests = admin(&sim, &agent, "GET", "/_sim/requests", None).json();
    let log = requests["requests"].as_array().unwrap();
    // Admin requests are not logged: token, 429, 503, 201, 200.
    let statuses: Vec<u64> = log.iter().map(|e| e["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, vec![200, 429, 503, 201, 200]);
    assert_eq!(log[3]["path"], "/iot/v1/devices/12345/feed-data");
    assert_eq!(log[3]["method"], "POST");
    assert_eq!(log[3]["bearer_valid"], true);
    assert!(log[3]["at_ms"].is_u64());

    let e = admin(&sim, &agent, "POST", "/_sim/expire-tokens", None);
    assert_eq!(e.json()["expired"], 1);
    assert_error(&feed(&sim, &agent, &user, &reading("m2")), 401, 4001, "unauthorized");
}

#[test]
fn admin_down_for_a_while() {
    let sim = start();
    let agent = agent(&sim);
    let a = admin(&sim, &agent, "POST", "/_sim/down?for_ms=400", None);
    assert_eq!(a.json()["down_for_ms"], 400);
    std::thread::sleep(Duration::from_millis(200));
    assert!(TcpStream::connect(sim.addr()).is_err());
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(sim.addr()).is_err() {
        assert!(Instant::now() < deadline, "the sim did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(&sim, &agent, "/_sim/tokens", Some(&sim.admin_token())).status, 200);
}
