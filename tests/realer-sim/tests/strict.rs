//! Where the sim is as strict as Realer: 415 for a body that is not JSON, the byte budget (settable), only
//! codes of Realer's table, 404 for an unknown device on every device endpoint, values checked by
//! `value_type`, and catalog-read faults that reach both catalog requests.

mod common;

use common::*;
use realer_sim::builtin::*;
use realer_sim::{Fault, Fixture, Flavour, SimOptions, Target};
use serde_json::{json, Value};

/// Every code in the contract's table (section 6), and success.
const REALER_CODES: [u64; 12] = [2000, 4000, 4001, 4002, 4003, 4004, 4009, 4013, 4015, 4022, 4029, 5003];

/// A reading of sensor 7 whose JSON body is exactly `len` bytes (the value padded with leading zeros).
fn reading_of_len(message_id: &str, len: usize) -> String {
    let base = reading(message_id).to_string();
    let pad = len.checked_sub(base.len()).expect("len leaves room for the reading");
    let body = reading(message_id);
    let mut item = body.as_object().unwrap().clone();
    item.insert("value".into(), json!(format!("{}{}", "0".repeat(pad), "21.4")));
    let text = Value::Object(item).to_string();
    assert_eq!(text.len(), len);
    text
}

#[test]
fn bodies_that_are_not_json_get_415_on_both_endpoints() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    for path in [feed_path(), batch_path()] {
        for (ct, body) in [
            (Some("application/json"), "<item><value>1</value></item>"),
            (Some("application/json"), "{\"sensor_id\":7,"),
            (Some("application/json"), ""),
            (Some("application/json; charset=utf-8"), "sensor_id=7&value=21.4"),
            (Some("text/plain"), &reading("m").to_string()),
            (Some("application/xml"), &reading("m").to_string()),
            (None, &reading("m").to_string()),
        ] {
            let a = post(&sim, &agent, &path, Some(&t), ct, body);
            assert_error(&a, 415, 4015, "unsupported_media_type");
        }
    }
    assert!(sim.records().is_empty());
}

#[test]
fn the_byte_budget_defaults_to_64_kib_and_is_settable() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let path = feed_path();
    let json_ct = Some("application/json");
    assert_eq!(sim.settings().byte_budget, 64 * 1024);
    let a = post(&sim, &agent, &path, Some(&t), json_ct, &reading_of_len("b-1", 64 * 1024));
    assert_eq!(a.status, 201, "{}", a.text);
    let a = post(&sim, &agent, &path, Some(&t), json_ct, &reading_of_len("b-2", 64 * 1024 + 1));
    assert_error(&a, 413, 4013, "payload_too_large");
    assert_eq!(a.json()["error"]["message"], "the request body exceeds the device plan byte budget");

    // The Sim setter.
    sim.set_byte_budget(1000);
    let a = post(&sim, &agent, &path, Some(&t), json_ct, &reading_of_len("b-3", 1001));
    assert_error(&a, 413, 4013, "payload_too_large");
    assert_eq!(post(&sim, &agent, &path, Some(&t), json_ct, &reading_of_len("b-3", 1000)).status, 201);
    // Batches too: the budget is on the request body, not on an item count.
    let items: Vec<Value> = (0..20).map(|i| reading(&format!("bb-{i}"))).collect();
    let a = batch(&sim, &agent, &t, &json!({ "items": items }));
    assert_error(&a, 413, 4013, "payload_too_large");

    // The admin interface, while running.
    let a = admin(&sim, &agent, "POST", "/_sim/settings", Some(json!({"byte_budget": 4096})));
    assert_eq!(a.json()["settings"]["byte_budget"], 4096, "{}", a.text);
    assert_eq!(batch(&sim, &agent, &t, &json!({ "items": items })).json()["status"], "completed");
    let a = admin(&sim, &agent, "POST", "/_sim/settings", Some(json!({"byte_budget": 0})));
    assert_error(&a, 422, 4022, "validation_failed");
    assert_eq!(sim.settings().byte_budget, 4096);

    // A budget above the reader's 4 MiB limit is Realer's budget too.
    sim.set_byte_budget(5 * 1024 * 1024);
    let big = reading_of_len("b-big", 4 * 1024 * 1024 + 100);
    assert_eq!(post(&sim, &agent, &path, Some(&t), json_ct, &big).status, 201);
    let a = post(&sim, &agent, &path, Some(&t), json_ct, &reading_of_len("b-big2", 5 * 1024 * 1024 + 1));
    assert_error(&a, 413, 4013, "payload_too_large");
}

#[test]
fn a_budget_from_the_options() {
    let sim = start_with(SimOptions { byte_budget: 300, ..SimOptions::default() });
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let a = post(&sim, &agent, &feed_path(), Some(&t), Some("application/json"), &reading_of_len("o-1", 301));
    assert_error(&a, 413, 4013, "payload_too_large");
    let a = post(&sim, &agent, &feed_path(), Some(&t), Some("application/json"), &reading_of_len("o-1", 300));
    assert_eq!(a.status, 201, "{}", a.text);
}

/// Every `code` in an answer (top level and batch results).
fn codes_of(a: &Answer) -> Vec<u64> {
    let Ok(body) = serde_json::from_str::<Value>(&a.text) else {
        return Vec::new();
    };
    let mut codes: Vec<u64> = body.get("code").and_then(Value::as_u64).into_iter().collect();
    if let Some(results) = body.get("results").and_then(Value::as_array) {
        codes.extend(results.iter().filter_map(|r| r.get("code").and_then(Value::as_u64)));
    }
    codes
}

#[test]
fn every_answer_carries_a_code_of_realers_table() {
    let sim = start_with(SimOptions { requests_per_minute: Some(1000), ..SimOptions::default() });
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let other = token_for(&sim, &agent, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, None);
    let read_only = token_for(&sim, &agent, CLIENT_ID, CLIENT_SECRET, Some("iot:catalog:read"));
    let json_ct = Some("application/json");
    let mut answers: Vec<(String, Answer)> = Vec::new();
    let mut note = |what: &str, a: Answer| answers.push((what.to_string(), a));

    for path in ["/", "/nowhere", "/iot/v1/devices/12345/things", "/iot/v1/devices/12345/desired-states"] {
        note(path, get(&sim, &agent, path, Some(&t)));
    }
    note("wrong method", get(&sim, &agent, &feed_path(), Some(&t)));
    note("wrong method on token", get(&sim, &agent, "/oauth/token", None));
    note("no token", get(&sim, &agent, "/iot/v1/devices/12345/commands", None));
    note("unknown token", get(&sim, &agent, "/iot/v1/devices/12345/commands", Some("nope")));
    note("other device", get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&other)));
    note("unknown device", get(&sim, &agent, "/iot/v1/devices/99999/commands", Some(&t)));
    note("unknown command", get(&sim, &agent, "/iot/v1/devices/12345/commands/77", Some(&t)));
    note("unknown sensor", get(&sim, &agent, "/iot/v1/devices/12345/sensors/77", Some(&t)));
    note("scope", post(&sim, &agent, &feed_path(), Some(&read_only), json_ct, &reading("s").to_string()));
    note("media type", post(&sim, &agent, &feed_path(), Some(&t), Some("text/plain"), "x"));
    note("not json", post(&sim, &agent, &feed_path(), Some(&t), json_ct, "x"));
    note("budget", post(&sim, &agent, &feed_path(), Some(&t), json_ct, &reading_of_len("big", 70_000)));
    note("invalid", feed(&sim, &agent, &t, &json!({"sensor_id": 7})));
    note("created", feed(&sim, &agent, &t, &reading("c-1")));
    note("replay", feed(&sim, &agent, &t, &reading("c-1")));
    note(
        "conflict",
        feed(
            &sim,
            &agent,
            &t,
            &json!({"sensor_id": 7, "value": "1", "value_received_at": "2026-04-24T10:15:00Z", "message_id": "c-1"}),
        ),
    );
    let items = json!({"items": [reading("c-1"), reading("c-2"), {"sensor_id": 7}, {"sensor_id": 7, "value": "x",
        "value_received_at": "2026-04-24T10:15:00Z", "message_id": "c-1"}]});
    note("batch", batch(&sim, &agent, &t, &items));
    note("batch shape", batch(&sim, &agent, &t, &json!({"items": []})));
    let many: Vec<Value> = (0..101).map(|i| reading(&format!("n-{i}"))).collect();
    note("batch size", batch(&sim, &agent, &t, &json!({ "items": many })));
    for fault in [
        Fault::ServiceUnavailable,
        Fault::RateLimited { retry_after_secs: 1 },
        Fault::SubscriptionInactive,
        Fault::NotFound,
        Fault::UnreadableSuccess,
        Fault::Warnings,
    ] {
        sim.inject(fault.clone(), Target::Any, 1);
        note(fault.name(), get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&t)));
    }
    sim.set_requests_per_minute(Some(1));
    note("budget 1", get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&t)));
    note("rate limited", get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&t)));
    sim.set_requests_per_minute(None);
    sim.set_token_requests_per_minute(Some(1));
    note("token", token_request(&sim, &agent, Some(&basic(CLIENT_ID, CLIENT_SECRET)), "grant_type=client_credentials"));
    note(
        "token limited",
        token_request(&sim, &agent, Some(&basic(CLIENT_ID, CLIENT_SECRET)), "grant_type=client_credentials"),
    );
    for (method, path, body) in [
        ("GET", "/_sim/nothing", None),
        ("GET", "/_sim/faults", None),
        ("POST", "/_sim/faults", Some(json!({"fault": "nope"}))),
        ("POST", "/_sim/settings", Some(json!({"nope": 1}))),
        ("POST", "/_sim/rotate-secret", Some(json!({"device_id": "99999"}))),
        ("GET", "/_sim/stats", None),
    ] {
        note(path, admin(&sim, &agent, method, path, body));
    }
    note("admin token", get(&sim, &agent, "/_sim/records", None));

    let mut seen = std::collections::BTreeSet::new();
    for (what, a) in &answers {
        for code in codes_of(a) {
            assert!(REALER_CODES.contains(&code), "{what}: code {code} is not Realer's: {}", a.text);
            seen.insert(code);
        }
        if a.status >= 400 && a.header("content-type") == Some("application/json") && !a.text.contains("\"error\":\"") {
            assert!(!codes_of(a).is_empty(), "{what}: an error without a code: {}", a.text);
        }
    }
    // The sweep reached every code of the table.
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), REALER_CODES.to_vec());
}

#[test]
fn an_unknown_device_is_not_found_on_every_device_endpoint() {
    for flavour in [Flavour::V1, Flavour::V2] {
        let sim = start_with(SimOptions { flavour, ..SimOptions::default() });
        let agent = agent(&sim);
        let t = token(&sim, &agent);
        let body = reading("d-1").to_string();
        let batch_body = json!({"items": [reading("d-1")]}).to_string();
        for (device, status, code, kind) in [
            ("99999", 404, 4004, "not_found"),
            ("cdv_nosuchdevice", 404, 4004, "not_found"),
            (OTHER_DEVICE_ID, 403, 4003, "forbidden"),
        ] {
            let base = format!("/iot/v1/devices/{device}");
            for path in ["commands", "commands/1", "sensors", "sensors/7"] {
                assert_error(&get(&sim, &agent, &format!("{base}/{path}"), Some(&t)), status, code, kind);
            }
            let a = get(&sim, &agent, &format!("{base}/desired-states"), Some(&t));
            match flavour {
                // The older API has no such endpoint, for any device.
                Flavour::V1 => assert_error(&a, 404, 4004, "not_found"),
                Flavour::V2 => assert_error(&a, status, code, kind),
            };
            let a = post(&sim, &agent, &format!("{base}/feed-data"), Some(&t), Some("application/json"), &body);
            assert_error(&a, status, code, kind);
            let a = post(
                &sim,
                &agent,
                &format!("{base}/feed-data/batches"),
                Some(&t),
                Some("application/json"),
                &batch_body,
            );
            assert_error(&a, status, code, kind);
        }
        // Authentication comes first: without a valid token an unknown device is not revealed.
        assert_error(&get(&sim, &agent, "/iot/v1/devices/99999/commands", None), 401, 4001, "unauthorized");
        assert!(sim.records().is_empty());
    }
}

const TYPED_FIXTURE: &str = r#"{
  "devices": [{
    "id": 1,
    "client_id": "c1",
    "client_secret": "s1",
    "commands": [
      {"id": 1, "value": "20.5", "value_type": "NumericRange", "kind": "thermostat_setpoint", "pin_port": "1"},
      {"id": 2, "value": "0", "value_type": "Binary", "kind": "relay", "pin_port": "2"},
      {"id": 3, "value": "closed", "value_type": "Enum", "kind": "valve", "pin_port": "3"}
    ],
    "sensors": [
      {"id": 7, "kind": "thermistor", "qc": "celsius_temperature", "mu": "degree_celsius:1", "pin_port": "5"},
      {"id": 8, "kind": "door", "qc": "door_state", "mu": "state", "pin_port": "6"}
    ]
  }]
}"#;

#[test]
fn values_are_checked_by_value_type() {
    let sim =
        start_with(SimOptions { fixture: Some(Fixture::from_json(TYPED_FIXTURE).unwrap()), ..SimOptions::default() });
    let agent = agent(&sim);
    let t = token_for(&sim, &agent, "c1", "s1", None);
    let path = "/iot/v1/devices/1/feed-data";
    let item = |source: &str, id: u64, value: &str, n: usize| json!({source: id, "value": value, "value_received_at": "2026-04-24T10:15:00Z", "message_id": format!("v-{n}")});
    let send = |item: &Value| post(&sim, &agent, path, Some(&t), Some("application/json"), &item.to_string());
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    let refused = [
        ("command_id", 1, "on", "must be a number for a NumericRange command"),
        ("command_id", 1, "21,5", "must be a number for a NumericRange command"),
        ("command_id", 1, "NaN", "must be a number for a NumericRange command"),
        ("command_id", 1, "", "must not be empty"),
        ("command_id", 2, "7", "must be 0 or 1 for a Binary command"),
        ("command_id", 2, "0.5", "must be 0 or 1 for a Binary command"),
        ("command_id", 2, "true", "must be 0 or 1 for a Binary command"),
        ("command_id", 2, "", "must not be empty"),
        ("command_id", 3, "", "must not be empty"),
        ("command_id", 3, "  ", "must not be empty"),
        ("sensor_id", 7, "warm", "must be a number for this sensor"),
        ("sensor_id", 7, "", "must not be empty"),
        ("sensor_id", 8, "", "must not be empty"),
    ];
    for (source, id, value, why) in refused {
        let it = item(source, id, value, next());
        let d = assert_error(&send(&it), 422, 4022, "validation_failed");
        assert_eq!(d, json!({"value": [why]}), "{it}");
    }
    let accepted = [
        ("command_id", 1, "21.5"),
        ("command_id", 1, "-3"),
        ("command_id", 1, "1e2"),
        ("command_id", 2, "1.0"),
        ("command_id", 2, "1"),
        ("command_id", 2, "0.00"),
        ("command_id", 3, "open"),
        ("sensor_id", 7, "21.4"),
        ("sensor_id", 8, "open"),
    ];
    for (source, id, value) in accepted {
        let it = item(source, id, value, next());
        let a = send(&it);
        assert_eq!(a.status, 201, "{it}: {}", a.text);
    }
    // In a batch each item is judged on its own, with the same details.
    let a = post(
        &sim,
        &agent,
        "/iot/v1/devices/1/feed-data/batches",
        Some(&t),
        Some("application/json"),
        &json!({"items": [item("command_id", 2, "7", 100), item("command_id", 2, "1", 101)]}).to_string(),
    );
    let body = a.json();
    assert_eq!(body["status"], "partial", "{}", a.text);
    assert_eq!(body["results"][0]["code"], 4022);
    assert_eq!(body["results"][0]["error"]["details"], json!({"value": ["must be 0 or 1 for a Binary command"]}));
    assert_eq!(body["results"][1]["status"], "created");
    assert_eq!(sim.records().len(), accepted.len() + 1);

    // A user cannot set an invalid value either.
    let a = admin(
        &sim,
        &agent,
        "POST",
        "/_sim/desired-states",
        Some(json!({"device_id": 1, "command_id": 2, "value": "2"})),
    );
    assert_error(&a, 422, 4022, "validation_failed");
    assert!(sim.set_desired_value("1", "1", "warm").is_err());
    assert!(sim.set_desired_value("1", "2", "1.0").is_ok());
}

#[test]
fn catalog_faults_reach_both_catalog_requests() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let get_path = |p: &str| get(&sim, &agent, &format!("/iot/v1/devices/12345/{p}"), Some(&t)).status;
    sim.inject(Fault::ServiceUnavailable, Target::Catalog, 4);
    assert_eq!(
        [get_path("sensors"), get_path("commands"), get_path("sensors/7"), get_path("commands/1"), get_path("sensors")],
        [503, 503, 503, 503, 200]
    );
    sim.inject(Fault::ServiceUnavailable, Target::Sensors, 1);
    sim.inject(Fault::SubscriptionInactive, Target::Commands, 1);
    assert_eq!(
        [get_path("commands"), get_path("sensors"), get_path("commands"), get_path("sensors")],
        [402, 503, 200, 200]
    );
    // The admin names.
    let q =
        admin(&sim, &agent, "POST", "/_sim/faults", Some(json!({"fault": "service_unavailable", "target": "sensors"})));
    assert_eq!(q.status, 200, "{}", q.text);
    assert_eq!([get_path("commands"), get_path("sensors")], [200, 503]);
}
