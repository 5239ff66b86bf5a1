//! Realer's plans rate-limit: a requests-per-minute budget per device on the iot/v1 endpoints, and a budget
//! of its own per client on the token endpoint, answered 429/4029 with `Retry-After`.

mod common;

use common::*;
use realer_sim::builtin::*;
use realer_sim::{Fixture, FixtureDevice, Id, SimOptions};
use serde_json::json;
use std::time::{Duration, Instant};

const SENSORS: &str = "/iot/v1/devices/12345/sensors";

fn retry_after(a: &Answer) -> u64 {
    a.header("retry-after").expect("Retry-After").parse().expect("whole seconds")
}

#[test]
fn off_by_default() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    assert_eq!(sim.settings().requests_per_minute, None);
    for _ in 0..150 {
        assert_eq!(get(&sim, &agent, SENSORS, Some(&t)).status, 200);
    }
}

#[test]
fn a_device_over_its_budget_gets_429_with_retry_after() {
    let sim = start_with(SimOptions { requests_per_minute: Some(3), ..SimOptions::default() });
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let other = token_for(&sim, &agent, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, None);
    // Token requests are not iot/v1 requests: the three above took nothing from the budget.
    assert_eq!(get(&sim, &agent, SENSORS, Some(&t)).status, 200);
    assert_eq!(feed(&sim, &agent, &t, &reading("r-1")).status, 201);
    // Every iot/v1 request counts, whatever its answer: the older API's 404 for /desired-states too.
    assert_error(&get(&sim, &agent, "/iot/v1/devices/12345/desired-states", Some(&t)), 404, 4004, "not_found");
    let a = feed(&sim, &agent, &t, &reading("r-2"));
    assert_error(&a, 429, 4029, "rate_limited");
    // Three a minute: the next one in 20 seconds.
    assert!((19..=20).contains(&retry_after(&a)), "{:?}", a.header("retry-after"));
    assert_error(&get(&sim, &agent, SENSORS, Some(&t)), 429, 4029, "rate_limited");
    assert_eq!(sim.records().len(), 1, "a refused request stores nothing");
    // Another device has its own budget; requests without a valid token are not a device's.
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12346/sensors", Some(&other)).status, 200);
    assert_error(&get(&sim, &agent, SENSORS, None), 401, 4001, "unauthorized");
    // Lifting the budget (the Sim setter) lets the device through at once.
    sim.set_requests_per_minute(None);
    assert_eq!(feed(&sim, &agent, &t, &reading("r-2")).status, 201);
}

#[test]
fn the_budget_refills_at_its_rate() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    // 120 a minute: a burst of 120, then one every half second.
    let a = admin(&sim, &agent, "POST", "/_sim/settings", Some(json!({"requests_per_minute": 120})));
    assert_eq!(a.json()["settings"]["requests_per_minute"], 120, "{}", a.text);
    let started = Instant::now();
    let mut ok = 0;
    let refused = loop {
        let a = get(&sim, &agent, SENSORS, Some(&t));
        if a.status != 200 {
            break a;
        }
        ok += 1;
    };
    assert_error(&refused, 429, 4029, "rate_limited");
    let burst_took = started.elapsed();
    // The burst, plus what refilled while it was sent.
    let refilled = (burst_took.as_secs_f64() * 2.0).ceil() as usize;
    assert!((120..=120 + refilled).contains(&ok), "{ok} requests in {burst_took:?}");
    assert_eq!(retry_after(&refused), 1);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(get(&sim, &agent, SENSORS, Some(&t)).status, 200);
    // Turned off through the admin interface.
    let a = admin(&sim, &agent, "POST", "/_sim/settings", Some(json!({"requests_per_minute": null})));
    assert_eq!(a.json()["settings"]["requests_per_minute"], json!(null));
    for _ in 0..5 {
        assert_eq!(get(&sim, &agent, SENSORS, Some(&t)).status, 200);
    }
    for bad in [json!(0), json!(-1), json!("10"), json!(1.5)] {
        let a = admin(&sim, &agent, "POST", "/_sim/settings", Some(json!({ "requests_per_minute": bad })));
        assert_error(&a, 422, 4022, "validation_failed");
    }
}

#[test]
fn the_token_endpoint_has_a_budget_of_its_own_per_client() {
    let sim = start_with(SimOptions { token_requests_per_minute: Some(2), ..SimOptions::default() });
    let agent = agent(&sim);
    let good = basic(CLIENT_ID, CLIENT_SECRET);
    let grant = "grant_type=client_credentials";
    // A wrong secret is not this client's request.
    assert_eq!(token_request(&sim, &agent, Some(&basic(CLIENT_ID, "wrong")), grant).status, 401);
    let t = token(&sim, &agent);
    assert_eq!(token_request(&sim, &agent, Some(&good), grant).status, 200);
    let a = token_request(&sim, &agent, Some(&good), grant);
    assert_error(&a, 429, 4029, "rate_limited");
    assert!((29..=30).contains(&retry_after(&a)), "{:?}", a.header("retry-after"));
    assert_eq!(sim.tokens_issued(), 2);
    // Another client is not limited by this one; the device's iot/v1 requests are not limited by it.
    token_for(&sim, &agent, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, None);
    assert_eq!(get(&sim, &agent, SENSORS, Some(&t)).status, 200);
    sim.set_token_requests_per_minute(None);
    assert_eq!(token_request(&sim, &agent, Some(&good), grant).status, 200);
    let a = admin(&sim, &agent, "POST", "/_sim/settings", Some(json!({"token_requests_per_minute": 1})));
    assert_eq!(a.json()["settings"]["token_requests_per_minute"], 1);
    assert_eq!(token_request(&sim, &agent, Some(&good), grant).status, 200);
    assert_eq!(token_request(&sim, &agent, Some(&good), grant).status, 429);
}

#[test]
fn a_thousand_devices_each_with_a_budget() {
    let devices: Vec<FixtureDevice> = (0..1000u64)
        .map(|i| FixtureDevice {
            id: Id::Int(100_000 + i),
            client_id: format!("cdv_fleet{i:021}"),
            client_secret: format!("secret-{i}"),
            commands: Vec::new(),
            sensors: Vec::new(),
        })
        .collect();
    let sim = start_with(SimOptions {
        fixture: Some(Fixture { devices }),
        requests_per_minute: Some(2),
        ..SimOptions::default()
    });
    let agent = agent(&sim);
    // The last device of the fleet: its budget is its own, whatever the 999 others did.
    let tokens: Vec<(u64, String)> = [0u64, 500, 999]
        .iter()
        .map(|&i| (100_000 + i, token_for(&sim, &agent, &format!("cdv_fleet{i:021}"), &format!("secret-{i}"), None)))
        .collect();
    for (device, t) in &tokens {
        let path = format!("/iot/v1/devices/{device}/sensors");
        assert_eq!(get(&sim, &agent, &path, Some(t)).json(), json!({"code": 2000, "sensors": []}));
        assert_eq!(get(&sim, &agent, &path, Some(t)).status, 200);
        assert_eq!(get(&sim, &agent, &path, Some(t)).status, 429);
    }
}
