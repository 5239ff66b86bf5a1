//! The v2 flavour (contract section 3b): `/desired-states`, its scope, answers that clear it, a catalog
//! without desired ids; and the faults and label vocabulary of contract sections 5 and 6.

mod common;

use common::*;
use realer_sim::builtin::*;
use realer_sim::time::{format_rfc3339, now_unix, parse_rfc3339_utc};
use realer_sim::{Fault, Flavour, Labels, SimOptions, Target};
use serde_json::json;

const DESIRED: &str = "/iot/v1/devices/12345/desired-states";

fn v2() -> realer_sim::Sim {
    start_with(SimOptions { flavour: Flavour::V2, ..SimOptions::default() })
}

#[test]
fn v2_lists_pending_desired_states_and_a_catalog_only_catalog() {
    let sim = v2();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let a = token_request(&sim, &agent, Some(&basic(CLIENT_ID, CLIENT_SECRET)), "grant_type=client_credentials");
    assert_eq!(a.json()["scope"], "iot:catalog:read iot:feed-data:write iot:desired-state:read");

    let mut body = get(&sim, &agent, DESIRED, Some(&t)).json();
    let states = body["desired_states"].as_array_mut().unwrap();
    let now = now_unix();
    let pending = parse_rfc3339_utc(states[0]["expires_at"].as_str().unwrap()).unwrap();
    assert!((now + 3590..=now + 3600).contains(&pending), "{}", states[0]);
    let expired = parse_rfc3339_utc(states[1]["expires_at"].as_str().unwrap()).unwrap();
    assert!((now - 3610..=now - 3600).contains(&expired), "{}", states[1]);
    states[0]["expires_at"] = json!("-");
    states[1]["expires_at"] = json!("-");
    assert_eq!(
        body,
        json!({"code": 2000, "desired_states": [
            {"desired_id": PENDING_DESIRED_ID, "command_id": 1, "value": "1.0", "sequence_number": 3, "expires_at": "-"},
            {"desired_id": EXPIRED_DESIRED_ID, "command_id": 2, "value": "1.0", "sequence_number": 5, "expires_at": "-"},
        ]})
    );
    // The catalog shows confirmed values only.
    let c = get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&t)).json();
    assert_eq!(
        c["commands"][0],
        json!({"id": 1, "value": "0.0", "value_type": "NumericRange", "kind": "relay", "pin_port": "6"})
    );
    assert_eq!(c["commands"][1]["value"], "0.0");

    // A user sets two more values on command 4: both are listed.
    for (id, seq, value) in [("des_low", 1, "18.0"), ("des_high", 2, "21.0")] {
        let added = post(
            &sim,
            &agent,
            "/_sim/desired-states",
            Some(&sim.admin_token()),
            Some("application/json"),
            &json!({"device_id": "12345", "command_id": 4,
                    "desired": {"desired_id": id, "value": value, "sequence_number": seq, "expires_in_secs": 600}})
            .to_string(),
        );
        assert_eq!(added.status, 200, "{}", added.text);
    }
    assert_eq!(sim.desired_states(DEVICE_ID).len(), 4);

    // Answers (applied, stale) clear them; applied makes the value the confirmed one.
    let at = format_rfc3339(now);
    let answers = [
        json!({"command_id": 1, "value": "1.0", "value_received_at": at, "message_id": "a1", "desired_id": PENDING_DESIRED_ID, "report_status": "applied", "sequence_number": 3}),
        json!({"command_id": 2, "value": "0.0", "value_received_at": at, "message_id": "a2", "desired_id": EXPIRED_DESIRED_ID, "report_status": "stale", "sequence_number": 5}),
        json!({"command_id": 4, "value": "20.5", "value_received_at": at, "message_id": "a3", "desired_id": "des_low", "report_status": "stale", "sequence_number": 1}),
        json!({"command_id": 4, "value": "21.0", "value_received_at": at, "message_id": "a4", "desired_id": "des_high", "sequence_number": 2}),
    ];
    for item in &answers {
        let a = feed(&sim, &agent, &t, item);
        assert_eq!(a.status, 201, "{item}: {}", a.text);
    }
    assert_eq!(get(&sim, &agent, DESIRED, Some(&t)).json(), json!({"code": 2000, "desired_states": []}));
    let c = get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&t)).json();
    let values: Vec<&str> = c["commands"].as_array().unwrap().iter().filter_map(|c| c["value"].as_str()).collect();
    assert_eq!(values, ["1.0", "0.0", "21.0"]);
}

#[test]
fn v2_desired_states_need_their_scope_and_v1_has_none() {
    let sim = v2();
    let agent = common::agent(&sim);
    let catalog_only = token_for(&sim, &agent, CLIENT_ID, CLIENT_SECRET, Some("iot:catalog:read iot:feed-data:write"));
    assert_error(&get(&sim, &agent, DESIRED, Some(&catalog_only)), 403, 4003, "forbidden");
    let full = token_for(&sim, &agent, CLIENT_ID, CLIENT_SECRET, Some("iot:desired-state:read"));
    assert_eq!(get(&sim, &agent, DESIRED, Some(&full)).status, 200);
    assert_error(&get(&sim, &agent, DESIRED, None), 401, 4001, "unauthorized");

    let v1 = start();
    let agent1 = common::agent(&v1);
    let t = token(&v1, &agent1);
    assert_error(&get(&v1, &agent1, DESIRED, Some(&t)), 404, 4004, "not_found");
}

#[test]
fn refusal_faults_and_the_second_label_vocabulary() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    sim.inject(Fault::SubscriptionInactive, Target::FeedData, 1);
    assert_error(&feed(&sim, &agent, &t, &reading("r1")), 402, 4002, "payment_required");
    sim.inject(Fault::NotFound, Target::Batch, 1);
    let a = batch(&sim, &agent, &t, &json!({"items": [reading("r1")]}));
    assert_error(&a, 404, 4004, "not_found");
    assert!(sim.records().is_empty());

    sim.set_labels(Labels::ResponseHandling);
    sim.inject(Fault::SubscriptionInactive, Target::FeedData, 1);
    assert_error(&feed(&sim, &agent, &t, &reading("r1")), 402, 4002, "subscription_inactive");
    assert_error(&get(&sim, &agent, "/iot/v1/devices/12345/commands/99", Some(&t)), 404, 4004, "resource_not_found");
    assert_error(&get(&sim, &agent, "/iot/v1/devices/12345/commands", Some("nope")), 401, 4001, "invalid_token");
    assert_eq!(feed(&sim, &agent, &t, &reading("r1")).status, 201);
    let conflict = serde_json::json!({"sensor_id": 7, "value": "99", "value_received_at": "2026-04-24T10:15:00Z", "message_id": "r1"});
    assert_error(&feed(&sim, &agent, &t, &conflict), 409, 4009, "message_conflict");
    // Batch results carry the label too; labels go back through the admin interface.
    let b = batch(&sim, &agent, &t, &json!({"items": [conflict]})).json();
    assert_eq!(b["results"][0]["error"]["type"], "message_conflict");
    let set = post(
        &sim,
        &agent,
        "/_sim/labels",
        Some(&sim.admin_token()),
        Some("application/json"),
        r#"{"labels":"registry"}"#,
    );
    assert_eq!(set.status, 200, "{}", set.text);
    assert_error(&feed(&sim, &agent, &t, &conflict), 409, 4009, "conflict");
}
