//! Feed data, one item and batches: every outcome and every validation rule.

mod common;

use common::*;
use realer_sim::builtin::*;
use realer_sim::time::{format_rfc3339, now_unix};
use realer_sim::{Fixture, SimOptions};
use serde_json::{json, Value};

#[test]
fn created_then_idempotent_then_conflict() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let item = reading("sensor-7-20260424T101500Z");

    let a = feed(&sim, &agent, &t, &item);
    assert_eq!(a.status, 201, "{}", a.text);
    assert!(a.header("x-request-id").is_some());
    assert_eq!(
        a.json(),
        json!({"code": 2000, "status": "created", "feed_data_id": 1,
               "message_id": "sensor-7-20260424T101500Z", "warnings": []})
    );
    // Same payload (keys in another order): idempotent, original id.
    let reordered = r#"{"message_id":"sensor-7-20260424T101500Z","value_received_at":"2026-04-24T10:15:00Z","value":"21.4","sensor_id":7}"#;
    let b = post(&sim, &agent, &feed_path(), Some(&t), Some("application/json"), reordered);
    assert_eq!(b.status, 200, "{}", b.text);
    assert_eq!(
        b.json(),
        json!({"code": 2000, "status": "idempotent", "feed_data_id": 1,
               "message_id": "sensor-7-20260424T101500Z", "warnings": []})
    );
    // Same message_id, other payload: conflict.
    let mut changed = item.clone();
    changed["value"] = json!("21.5");
    let d = assert_error(&feed(&sim, &agent, &t, &changed), 409, 4009, "conflict");
    assert!(d["message_id"].is_array());

    let records = sim.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].device_id, "12345");
    assert_eq!(records[0].message_id, "sensor-7-20260424T101500Z");
    assert_eq!(records[0].item, item);
    assert_eq!(records[0].feed_data_id, 1);
    assert_eq!(records[0].times_received, 2);

    // The key is (device, source, message_id): the same message_id on another source is new.
    let mut humidity = item.clone();
    humidity["sensor_id"] = json!(8);
    let h = feed(&sim, &agent, &t, &humidity);
    assert_eq!((h.status, h.json()["feed_data_id"].clone()), (201, json!(2)));
    let command = json!({"command_id": 7, "value": "1", "value_received_at": "2026-04-24T10:15:00Z",
                         "message_id": "sensor-7-20260424T101500Z"});
    // (command 7 does not exist; command 4 does.)
    assert_eq!(feed(&sim, &agent, &t, &command).status, 422);
    let command = json!({"command_id": 4, "value": "21.0", "value_received_at": "2026-04-24T10:15:00Z",
                         "message_id": "sensor-7-20260424T101500Z"});
    assert_eq!(feed(&sim, &agent, &t, &command).json()["feed_data_id"], 3);
    // And on another device.
    let other = token_for(&sim, &agent, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, None);
    let mut theirs = item.clone();
    theirs["sensor_id"] = json!(9);
    let o = post(
        &sim,
        &agent,
        "/iot/v1/devices/12346/feed-data",
        Some(&other),
        Some("application/json"),
        &theirs.to_string(),
    );
    assert_eq!((o.status, o.json()["feed_data_id"].clone()), (201, json!(4)));
    assert_eq!(sim.records().len(), 4);
}

/// Posts `item` and returns the 422 details.
fn rejected(sim: &realer_sim::Sim, agent: &ureq::Agent, t: &str, item: &Value) -> Value {
    assert_error(&feed(sim, agent, t, item), 422, 4022, "validation_failed")
}

fn with(base: &Value, changes: &[(&str, Value)], removals: &[&str]) -> Value {
    let mut item = base.clone();
    for (k, v) in changes {
        item[*k] = v.clone();
    }
    for k in removals {
        item.as_object_mut().unwrap().remove(*k);
    }
    item
}

#[test]
fn every_validation_rule() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let base = reading("m-1");
    let command = json!({"command_id": 1, "value": "1.0", "value_received_at": format_rfc3339(now_unix()),
                         "message_id": "c-1", "desired_id": PENDING_DESIRED_ID});
    let future = format_rfc3339(now_unix() + 600);
    let long_id = "x".repeat(129);

    let cases: Vec<(Value, Value)> = vec![
        (json!([base.clone()]), json!({"item": ["must be a JSON object"]})),
        (json!("text"), json!({"item": ["must be a JSON object"]})),
        (
            with(&base, &[("command_id", json!(4))], &[]),
            json!({"command_id": ["must not be sent together with sensor_id"],
                   "sensor_id": ["must not be sent together with command_id"]}),
        ),
        (
            with(&base, &[], &["sensor_id"]),
            json!({"command_id": ["is required unless sensor_id is sent"],
                   "sensor_id": ["is required unless command_id is sent"]}),
        ),
        (with(&base, &[("sensor_id", json!(99))], &[]), json!({"sensor_id": ["is invalid for this device"]})),
        // The other device's sensor.
        (with(&base, &[("sensor_id", json!(9))], &[]), json!({"sensor_id": ["is invalid for this device"]})),
        (with(&base, &[("sensor_id", json!("7"))], &[]), json!({"sensor_id": ["must be an integer"]})),
        (with(&base, &[("sensor_id", json!("abc"))], &[]), json!({"sensor_id": ["must be an integer"]})),
        (with(&base, &[("sensor_id", json!(7.5))], &[]), json!({"sensor_id": ["must be an integer"]})),
        (with(&base, &[("sensor_id", json!(-7))], &[]), json!({"sensor_id": ["must be an integer"]})),
        (with(&base, &[("sensor_id", Value::Null)], &[]), json!({"sensor_id": ["must be an integer"]})),
        // Command 3 cannot be represented by Realer.
        (
            with(&base, &[("command_id", json!(3))], &["sensor_id"]),
            json!({"command_id": ["is invalid for this device"]}),
        ),
        (with(&base, &[("command_id", json!("1"))], &["sensor_id"]), json!({"command_id": ["must be an integer"]})),
        (with(&base, &[], &["value"]), json!({"value": ["is required"]})),
        (with(&base, &[("value", json!(21.4))], &[]), json!({"value": ["must be a string"]})),
        (with(&base, &[("value", Value::Null)], &[]), json!({"value": ["must be a string"]})),
        (with(&base, &[], &["value_received_at"]), json!({"value_received_at": ["is required"]})),
        (
            with(&base, &[("value_received_at", json!("2026-04-24 10:15:00"))], &[]),
            json!({"value_received_at": ["must be an RFC 3339 UTC timestamp such as 2026-04-24T10:15:00Z"]}),
        ),
        (
            with(&base, &[("value_received_at", json!("2026-04-24T10:15:00"))], &[]),
            json!({"value_received_at": ["must be an RFC 3339 UTC timestamp such as 2026-04-24T10:15:00Z"]}),
        ),
        (
            with(&base, &[("value_received_at", json!("2026-04-24T12:15:00+02:00"))], &[]),
            json!({"value_received_at": ["must be in UTC (Z or +00:00)"]}),
        ),
        (
            with(&base, &[("value_received_at", json!(future))], &[]),
            json!({"value_received_at": ["must not be more than 5 minutes in the future"]}),
        ),
        (
            with(&base, &[("value_received_at", json!(1777025700))], &[]),
            json!({"value_received_at": ["must be a string"]}),
        ),
        (with(&base, &[], &["message_id"]), json!({"message_id": ["is required"]})),
        (with(&base, &[("message_id", json!(17))], &[]), json!({"message_id": ["must be a string"]})),
        (
            with(&base, &[("message_id", json!(""))], &[]),
            json!({"message_id": ["must be 1 to 128 printable ASCII characters without spaces"]}),
        ),
        (
            with(&base, &[("message_id", json!("has space"))], &[]),
            json!({"message_id": ["must be 1 to 128 printable ASCII characters without spaces"]}),
        ),
        (
            with(&base, &[("message_id", json!(long_id))], &[]),
            json!({"message_id": ["must be 1 to 128 printable ASCII characters without spaces"]}),
        ),
        (
            with(&base, &[("message_id", json!("caf\u{e9}"))], &[]),
            json!({"message_id": ["must be 1 to 128 printable ASCII characters without spaces"]}),
        ),
        (
            with(&base, &[("message_id", json!("tab\there"))], &[]),
            json!({"message_id": ["must be 1 to 128 printable ASCII characters without spaces"]}),
        ),
        (
            with(&base, &[("desired_id", json!(PENDING_DESIRED_ID))], &[]),
            json!({"desired_id": ["is only permitted on command items"]}),
        ),
        (
            with(&command, &[("desired_id", json!("des_unknown"))], &[]),
            json!({"desired_id": ["is unknown for this command"]}),
        ),
        // Command 1's desired_id on command 4.
        (with(&command, &[("command_id", json!(4))], &[]), json!({"desired_id": ["is unknown for this command"]})),
        (with(&command, &[("desired_id", json!(12))], &[]), json!({"desired_id": ["must be a string"]})),
        (
            with(&base, &[("report_status", json!("reported"))], &[]),
            json!({"report_status": ["is not permitted on sensor items"]}),
        ),
        (
            with(&command, &[("report_status", json!("done"))], &[]),
            json!({"report_status": ["must be one of applied, rejected, stale"]}),
        ),
        (
            with(&command, &[("report_status", json!("reported"))], &[]),
            json!({"report_status": ["must be one of applied, rejected, stale"]}),
        ),
        (
            with(&command, &[("report_status", json!("applied"))], &["desired_id"]),
            json!({"report_status": ["must be reported (or omitted) when desired_id is absent"]}),
        ),
        (with(&command, &[("report_status", json!(1))], &[]), json!({"report_status": ["must be a string"]})),
        (
            with(&command, &[("sequence_number", json!(-1))], &[]),
            json!({"sequence_number": ["must be an integer greater than or equal to 0"]}),
        ),
        (
            with(&command, &[("sequence_number", json!("3"))], &[]),
            json!({"sequence_number": ["must be an integer greater than or equal to 0"]}),
        ),
        (
            with(&base, &[("unit", json!("C")), ("device_id", json!(12345))], &[]),
            json!({"unit": ["is not a permitted field"], "device_id": ["is not a permitted field"]}),
        ),
        // A desired state must not be applied after it expired: that report is stale.
        (
            with(&command, &[("command_id", json!(2)), ("desired_id", json!(EXPIRED_DESIRED_ID))], &[]),
            json!({"report_status": ["must be stale: the desired state expired before value_received_at"]}),
        ),
        // Every bad field at once.
        (
            json!({"sensor_id": "7", "value": 1, "message_id": "a b", "report_status": "x", "extra": true}),
            json!({
                "sensor_id": ["must be an integer"],
                "value": ["must be a string"],
                "value_received_at": ["is required"],
                "message_id": ["must be 1 to 128 printable ASCII characters without spaces"],
                "report_status": ["is not permitted on sensor items"],
                "extra": ["is not a permitted field"],
            }),
        ),
    ];
    for (item, expected) in &cases {
        assert_eq!(&rejected(&sim, &agent, &t, item), expected, "item: {item}");
    }
    assert!(sim.records().is_empty());

    // The boundaries that pass.
    let fine = [
        with(&base, &[("message_id", json!("y".repeat(128)))], &[]),
        with(&base, &[("message_id", json!("!~"))], &[]),
        with(&base, &[("value_received_at", json!("2026-04-24T10:15:00+00:00")), ("message_id", json!("m-2"))], &[]),
        with(&base, &[("value_received_at", json!("2026-04-24T10:15:00.250Z")), ("message_id", json!("m-3"))], &[]),
        with(
            &base,
            &[("value_received_at", json!(format_rfc3339(now_unix() + 240))), ("message_id", json!("m-4"))],
            &[],
        ),
        with(&base, &[("sequence_number", json!(0)), ("message_id", json!("m-6"))], &[]),
        json!({"command_id": 4, "value": "21.0", "value_received_at": "2026-04-24T10:15:00Z",
               "message_id": "local-1", "report_status": "reported"}),
        json!({"command_id": 4, "value": "21.0", "value_received_at": "2026-04-24T10:15:00Z", "message_id": "local-2"}),
    ];
    for item in &fine {
        let a = feed(&sim, &agent, &t, item);
        assert_eq!(a.status, 201, "{item}: {}", a.text);
    }
}

#[test]
fn desired_state_reports_update_the_catalog() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let commands = |sim: &realer_sim::Sim| get(sim, &agent, "/iot/v1/devices/12345/commands", Some(&t)).json();
    let now = format_rfc3339(now_unix());

    // Applied: the pending fields disappear and the desired value stays.
    let applied = json!({"command_id": 1, "value": "1.0", "value_received_at": now, "message_id": "ack-1",
                         "desired_id": PENDING_DESIRED_ID, "sequence_number": 3});
    assert_eq!(feed(&sim, &agent, &t, &applied).status, 201);
    let c = commands(&sim);
    assert_eq!(
        c["commands"][0],
        json!({"id": 1, "value": "1.0", "value_type": "NumericRange", "kind": "relay", "pin_port": "6"})
    );
    // A replay after the state was answered is still idempotent (the desired_id stays known).
    assert_eq!(feed(&sim, &agent, &t, &applied).json()["status"], "idempotent");
    // A second report on an answered desired_id is accepted too (e.g. a late stale), without changes.
    let late = with(&applied, &[("message_id", json!("ack-2")), ("report_status", json!("rejected"))], &[]);
    assert_eq!(feed(&sim, &agent, &t, &late).status, 201);
    assert_eq!(commands(&sim)["commands"][0]["value"], "1.0");

    // Stale on the expired state: cleared, the value goes back to the confirmed one.
    let stale = json!({"command_id": 2, "value": "0.0", "value_received_at": now, "message_id": "ack-3",
                       "desired_id": EXPIRED_DESIRED_ID, "report_status": "stale", "sequence_number": 5});
    assert_eq!(feed(&sim, &agent, &t, &stale).status, 201);
    assert_eq!(
        commands(&sim)["commands"][1],
        json!({"id": 2, "value": "0.0", "value_type": "NumericRange", "kind": "relay", "pin_port": "7"})
    );
}

#[test]
fn rejected_desired_state_keeps_the_confirmed_value() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let rejected = json!({"command_id": 1, "value": "0.0", "value_received_at": "2026-04-24T10:15:00Z",
                          "message_id": "nack-1", "desired_id": PENDING_DESIRED_ID, "report_status": "rejected"});
    assert_eq!(feed(&sim, &agent, &t, &rejected).status, 201);
    let c = get(&sim, &agent, "/iot/v1/devices/12345/commands/1", Some(&t)).json();
    assert_eq!(
        c["commands"][0],
        json!({"id": 1, "value": "0.0", "value_type": "NumericRange", "kind": "relay", "pin_port": "6"})
    );
}

#[test]
fn transport_level_errors() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let body = reading("m-1").to_string();
    let path = feed_path();

    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/jsonx"), None] {
        let a = post(&sim, &agent, &path, Some(&t), ct, &body);
        assert_error(&a, 415, 4015, "unsupported_media_type");
    }
    let a = post(&sim, &agent, &path, Some(&t), Some("Application/JSON; charset=utf-8"), &body);
    assert_eq!(a.status, 201, "{}", a.text);

    let big = json!({"sensor_id": 7, "value": "x".repeat(64 * 1024), "value_received_at": "2026-04-24T10:15:00Z",
                     "message_id": "big"});
    assert_error(&feed(&sim, &agent, &t, &big), 413, 4013, "payload_too_large");
    // A body that is not JSON is an unsupported media type whatever its Content-Type says (contract section 4).
    let a = post(&sim, &agent, &path, Some(&t), Some("application/json"), "{not json");
    assert_error(&a, 415, 4015, "unsupported_media_type");
    let a = post(&sim, &agent, &path, Some(&t), Some("application/json"), "");
    assert_error(&a, 415, 4015, "unsupported_media_type");

    // Authorisation comes before the body.
    let a = post(&sim, &agent, &path, None, Some("application/json"), &body);
    assert_error(&a, 401, 4001, "unauthorized");
    let other = token_for(&sim, &agent, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, None);
    let a = post(&sim, &agent, &path, Some(&other), Some("application/json"), &body);
    assert_error(&a, 403, 4003, "forbidden");
    let read_only = token_for(&sim, &agent, CLIENT_ID, CLIENT_SECRET, Some("iot:catalog:read"));
    let a = post(&sim, &agent, &path, Some(&read_only), Some("application/json"), &body);
    assert_error(&a, 403, 4003, "forbidden");
    sim.expire_all_tokens();
    let a = post(&sim, &agent, &path, Some(&t), Some("application/json"), &body);
    assert_error(&a, 401, 4001, "unauthorized");
    assert_eq!(sim.records().len(), 1);
}

#[test]
fn chunked_request_bodies_are_read() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let body = reading("chunked-1").to_string().into_bytes();
    // A reader of unknown length makes ureq send Transfer-Encoding: chunked.
    let reader = std::io::Cursor::new(body);
    let a = read(
        agent
            .post(format!("{}{}", sim.base_url(), feed_path()))
            .header("Authorization", format!("Bearer {t}"))
            .header("Content-Type", "application/json")
            .send(ureq::SendBody::from_reader(&mut reader.clone())),
    );
    assert_eq!(a.status, 201, "{}", a.text);
}

#[test]
fn batch_with_mixed_outcomes() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    assert_eq!(feed(&sim, &agent, &t, &reading("old")).status, 201);

    let mut conflicting = reading("old");
    conflicting["value"] = json!("99.9");
    let mut dup_changed = reading("dup");
    dup_changed["value"] = json!("0.1");
    let body = json!({"items": [
        reading("new-1"),
        with(&reading("bad-1"), &[("sensor_id", json!(99))], &[]),
        reading("old"),
        conflicting,
        reading("dup"),
        reading("dup"),
        dup_changed,
        json!(42),
    ]});
    let a = batch(&sim, &agent, &t, &body);
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.header("x-request-id").is_some());
    let r = a.json();
    assert_eq!(r["code"], 2000);
    assert_eq!(r["status"], "partial");
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    for (i, res) in results.iter().enumerate() {
        assert_eq!(res["index"], i);
    }
    assert_eq!(results[0], json!({"index": 0, "message_id": "new-1", "status": "created", "feed_data_id": 2}));
    assert_eq!(
        results[1],
        json!({"index": 1, "message_id": "bad-1", "status": "rejected", "code": 4022,
               "error": {"type": "validation_failed", "message": "feed data ingestion failed",
                         "details": {"sensor_id": ["is invalid for this device"]}}})
    );
    assert_eq!(results[2], json!({"index": 2, "message_id": "old", "status": "idempotent", "feed_data_id": 1}));
    assert_eq!(results[3]["status"], "rejected");
    assert_eq!(results[3]["code"], 4009);
    assert_eq!(results[3]["error"]["type"], "conflict");
    assert!(results[3].get("feed_data_id").is_none());
    assert_eq!(results[4], json!({"index": 4, "message_id": "dup", "status": "created", "feed_data_id": 3}));
    assert_eq!(results[5], json!({"index": 5, "message_id": "dup", "status": "idempotent", "feed_data_id": 3}));
    assert_eq!(results[6]["code"], 4009);
    assert_eq!(results[7]["status"], "rejected");
    assert_eq!(results[7]["message_id"], Value::Null);
    assert_eq!(results[7]["error"]["details"], json!({"item": ["must be a JSON object"]}));
    assert_eq!(sim.records().len(), 3);

    // The same batch again: nothing new is created.
    let again = batch(&sim, &agent, &t, &body).json();
    assert_eq!(again["results"][0]["status"], "idempotent");
    assert_eq!(again["results"][4]["status"], "idempotent");
    assert_eq!(sim.records().len(), 3);
}

#[test]
fn batch_completed_and_rejected() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let all_good = json!({"items": [reading("a"), with(&reading("b"), &[("sensor_id", json!(8))], &[])]});
    let a = batch(&sim, &agent, &t, &all_good);
    assert_eq!((a.status, a.json()["status"].clone()), (200, json!("completed")));
    // Replays count as accepted.
    let a = batch(&sim, &agent, &t, &all_good);
    assert_eq!(a.json()["status"], "completed");
    let all_bad = json!({"items": [json!({}), with(&reading("c"), &[("value", json!(1))], &[])]});
    let a = batch(&sim, &agent, &t, &all_bad);
    assert_eq!((a.status, a.json()["status"].clone()), (200, json!("rejected")));
    assert_eq!(a.json()["results"][1]["error"]["details"], json!({"value": ["must be a string"]}));

    // 100 items is the limit.
    let hundred: Vec<Value> = (0..100).map(|i| reading(&format!("h-{i}"))).collect();
    let a = batch(&sim, &agent, &t, &json!({ "items": hundred }));
    assert_eq!(a.json()["status"], "completed");
    let many: Vec<Value> = (0..101).map(|i| reading(&format!("n-{i}"))).collect();
    assert_error(&batch(&sim, &agent, &t, &json!({ "items": many })), 413, 4013, "payload_too_large");
    assert_eq!(sim.records().len(), 102);
}

#[test]
fn batch_request_errors() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let cases = [
        (json!({}), json!({"items": ["is required"]})),
        (json!({"items": []}), json!({"items": ["must not be empty"]})),
        (json!({"items": {"a": 1}}), json!({"items": ["must be an array"]})),
        (json!({"items": "x"}), json!({"items": ["must be an array"]})),
        (json!([reading("a")]), json!({"body": ["must be a JSON object with items"]})),
        (json!({"items": [reading("a")], "device_id": 1}), json!({"device_id": ["is not a permitted field"]})),
    ];
    for (body, details) in &cases {
        let d = assert_error(&batch(&sim, &agent, &t, body), 422, 4022, "validation_failed");
        assert_eq!(&d, details, "{body}");
    }
    let path = batch_path();
    let body = json!({"items": [reading("a")]}).to_string();
    assert_error(&post(&sim, &agent, &path, Some(&t), Some("text/plain"), &body), 415, 4015, "unsupported_media_type");
    assert_error(
        &post(&sim, &agent, &path, Some(&t), Some("application/json"), "items"),
        415,
        4015,
        "unsupported_media_type",
    );
    let huge: Vec<Value> =
        (0..50).map(|i| with(&reading(&format!("b-{i}")), &[("value", json!("v".repeat(2000)))], &[])).collect();
    assert_error(&batch(&sim, &agent, &t, &json!({ "items": huge })), 413, 4013, "payload_too_large");
    assert_error(&post(&sim, &agent, &path, None, Some("application/json"), &body), 401, 4001, "unauthorized");
    let other = token_for(&sim, &agent, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, None);
    assert_error(&post(&sim, &agent, &path, Some(&other), Some("application/json"), &body), 403, 4003, "forbidden");
    assert!(sim.records().is_empty());
}

const STRING_ID_FIXTURE: &str = r#"{
  "devices": [{
    "id": "cdv_stringdevice0000000000000",
    "client_id": "cdv_stringclient0000000000000",
    "client_secret": "s3cret",
    "commands": [
      {"id": "cmd_000000000000000000000001", "value": "off", "value_type": "Boolean", "kind": "relay",
       "pin_port": "1", "answered_desired_ids": ["des_old"],
       "desired": {"desired_id": "des_new", "value": "on", "sequence_number": 9,
                   "expires_at": "2099-01-01T00:00:00Z"}}
    ],
    "sensors": [
      {"id": "sen_000000000000000000000001", "kind": "thermistor", "qc": "celsius_temperature",
       "mu": "degree_celsius:0", "pin_port": "5"},
      {"id": "sen_000000000000000000000002", "error": {"type": "unsupported_quantity", "message": "no"}}
    ]
  }]
}"#;

#[test]
fn string_ids_from_a_fixture() {
    let fixture = Fixture::from_json(STRING_ID_FIXTURE).unwrap();
    let sim = start_with(SimOptions { fixture: Some(fixture), ..SimOptions::default() });
    let agent = agent(&sim);
    let t = token_for(&sim, &agent, "cdv_stringclient0000000000000", "s3cret", None);
    let base = "/iot/v1/devices/cdv_stringdevice0000000000000";
    let c = get(&sim, &agent, &format!("{base}/commands/cmd_000000000000000000000001"), Some(&t)).json();
    assert_eq!(
        c["commands"][0],
        json!({"id": "cmd_000000000000000000000001", "value": "on", "value_type": "Boolean", "kind": "relay",
               "pin_port": "1"})
    );
    let s = get(&sim, &agent, &format!("{base}/sensors"), Some(&t)).json();
    assert_eq!(
        s["sensors"][1],
        json!({"id": "sen_000000000000000000000002", "error": {"type": "unsupported_quantity", "message": "no"}})
    );

    let post_item = |item: Value| {
        post(&sim, &agent, &format!("{base}/feed-data"), Some(&t), Some("application/json"), &item.to_string())
    };
    let a = post_item(
        json!({"sensor_id": "sen_000000000000000000000001", "value": "1", "value_received_at": "2026-04-24T10:15:00Z", "message_id": "s1"}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let a = post_item(
        json!({"sensor_id": 1, "value": "1", "value_received_at": "2026-04-24T10:15:00Z", "message_id": "s2"}),
    );
    assert_eq!(a.json()["error"]["details"], json!({"sensor_id": ["must be a string"]}));
    let a = post_item(
        json!({"sensor_id": "sen_000000000000000000000002", "value": "1", "value_received_at": "2026-04-24T10:15:00Z", "message_id": "s3"}),
    );
    assert_eq!(a.json()["error"]["details"], json!({"sensor_id": ["is invalid for this device"]}));
    // An answered desired_id from the fixture is known; the pending one is cleared by its report.
    let a = post_item(
        json!({"command_id": "cmd_000000000000000000000001", "value": "off", "value_received_at": "2026-04-24T10:15:00Z", "message_id": "c1", "desired_id": "des_old", "report_status": "stale"}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let a = post_item(
        json!({"command_id": "cmd_000000000000000000000001", "value": "on", "value_received_at": "2026-04-24T10:15:00Z", "message_id": "c2", "desired_id": "des_new"}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let c = get(&sim, &agent, &format!("{base}/commands"), Some(&t)).json();
    assert!(c["commands"][0].get("desired_id").is_none());
    assert_eq!(c["commands"][0]["value"], "on");
    assert_eq!(sim.records()[0].device_id, "cdv_stringdevice0000000000000");
}
