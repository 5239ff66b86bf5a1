//! What Realer's operators and users do while devices run, and what benchmarks read: local reported-state
//! adoption, revoking every token, rotating a client secret, setting a value as a user, and the request
//! counters.

mod common;

use common::*;
use realer_sim::builtin::*;
use realer_sim::time::{format_rfc3339, now_unix, parse_rfc3339_utc};
use realer_sim::{Fixture, Flavour, SimOptions};
use serde_json::{json, Value};

const COMMANDS: &str = "/iot/v1/devices/12345/commands";
const DESIRED: &str = "/iot/v1/devices/12345/desired-states";

fn local_report(command: u64, value: &str, message_id: &str) -> Value {
    json!({"command_id": command, "value": value, "value_received_at": format_rfc3339(now_unix()),
           "message_id": message_id})
}

fn catalog_value(sim: &realer_sim::Sim, agent: &ureq::Agent, t: &str, command: u64) -> Value {
    get(sim, agent, &format!("{COMMANDS}/{command}"), Some(t)).json()["commands"][0]["value"].clone()
}

#[test]
fn local_reports_change_nothing_without_adoption() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    assert!(!sim.settings().adopt_local_reports);
    assert_eq!(feed(&sim, &agent, &t, &local_report(4, "23.0", "l-1")).status, 201);
    assert_eq!(catalog_value(&sim, &agent, &t, 4), "20.5");
    assert_eq!(feed(&sim, &agent, &t, &local_report(1, "0.0", "l-2")).status, 201);
    assert_eq!(catalog_value(&sim, &agent, &t, 1), "1.0", "the pending desired value stays what Realer wants");
}

#[test]
fn adoption_makes_a_local_report_the_new_value_in_both_flavours() {
    for flavour in [Flavour::V1, Flavour::V2] {
        let sim = start_with(SimOptions { flavour, adopt_local_reports: true, ..SimOptions::default() });
        let agent = agent(&sim);
        let t = token(&sim, &agent);
        assert_eq!(feed(&sim, &agent, &t, &local_report(4, "23.0", "l-1")).status, 201);
        assert_eq!(catalog_value(&sim, &agent, &t, 4), "23.0", "{flavour:?}");
        // A local change on a command with a desired state pending: v1's catalog value is the local one; v2's
        // confirmed value is, and the pending state stays listed until it is answered (contract section 3b).
        assert_eq!(feed(&sim, &agent, &t, &local_report(1, "0.0", "l-2")).status, 201);
        assert_eq!(catalog_value(&sim, &agent, &t, 1), "0.0", "{flavour:?}");
        let listed = || get(&sim, &agent, DESIRED, Some(&t)).json()["desired_states"].as_array().unwrap().clone();
        if flavour == Flavour::V2 {
            assert!(sim.desired_states(DEVICE_ID).iter().any(|d| d["desired_id"] == PENDING_DESIRED_ID));
            assert_eq!(listed().len(), 2, "{:?}", listed());
        }
        // The answer naming it is accepted, takes it off the list, and (stale) leaves the value alone.
        let late = json!({"command_id": 1, "value": "0.0", "value_received_at": format_rfc3339(now_unix()),
                          "message_id": "late", "desired_id": PENDING_DESIRED_ID, "report_status": "stale"});
        assert_eq!(feed(&sim, &agent, &t, &late).status, 201);
        assert_eq!(catalog_value(&sim, &agent, &t, 1), "0.0");
        assert!(sim.desired_states(DEVICE_ID).iter().all(|d| d["command_id"] != 1), "{flavour:?}");
        if flavour == Flavour::V2 {
            assert_eq!(listed().len(), 1, "{:?}", listed());
        }
        // Refused reports and replays adopt nothing.
        assert_eq!(feed(&sim, &agent, &t, &local_report(4, "warm", "l-3")).status, 422);
        assert_eq!(feed(&sim, &agent, &t, &local_report(4, "24.0", "l-4")).status, 201);
        sim.set_adopt_local_reports(false);
        assert_eq!(feed(&sim, &agent, &t, &local_report(4, "24.0", "l-4")).json()["status"], "idempotent");
        assert_eq!(feed(&sim, &agent, &t, &local_report(4, "25.0", "l-5")).status, 201);
        assert_eq!(catalog_value(&sim, &agent, &t, 4), "24.0");
    }
}

#[test]
fn adoption_per_command_from_the_fixture_and_the_admin_interface() {
    let mut fixture: Value = serde_json::from_str(realer_sim::BUILTIN_JSON).unwrap();
    fixture["devices"][0]["commands"][3]["local_adoption"] = json!(true);
    let fixture = Fixture::from_json(&fixture.to_string()).unwrap();
    assert!(fixture.devices[0].commands[3].local_adoption);
    let sim = start_with(SimOptions { fixture: Some(fixture), ..SimOptions::default() });
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    assert_eq!(feed(&sim, &agent, &t, &local_report(4, "23.0", "p-1")).status, 201);
    assert_eq!(catalog_value(&sim, &agent, &t, 4), "23.0", "command 4 adopts");
    assert_eq!(feed(&sim, &agent, &t, &local_report(2, "1.0", "p-2")).status, 201);
    assert_eq!(catalog_value(&sim, &agent, &t, 2), "1.0", "command 2 (pending 1.0) does not adopt");
    assert_eq!(feed(&sim, &agent, &t, &local_report(2, "0.0", "p-3")).status, 201);
    assert_eq!(catalog_value(&sim, &agent, &t, 2), "1.0");

    // One command, through the admin interface, and the Sim method.
    let a = admin(
        &sim,
        &agent,
        "POST",
        "/_sim/local-adoption",
        Some(json!({"device_id": "12345", "command_id": 2, "enabled": true})),
    );
    assert_eq!(a.json(), json!({"code": 2000, "local_adoption": true}));
    assert_eq!(feed(&sim, &agent, &t, &local_report(2, "0.0", "p-4")).status, 201);
    assert_eq!(catalog_value(&sim, &agent, &t, 2), "0.0");
    sim.set_local_adoption(DEVICE_ID, "4", false).unwrap();
    assert_eq!(feed(&sim, &agent, &t, &local_report(4, "19.0", "p-5")).status, 201);
    assert_eq!(catalog_value(&sim, &agent, &t, 4), "23.0");
    assert!(sim.set_local_adoption(DEVICE_ID, "3", true).is_err(), "command 3 cannot be represented");
    let a = admin(&sim, &agent, "POST", "/_sim/local-adoption", Some(json!({"device_id": "12345", "command_id": 9})));
    assert_error(&a, 422, 4022, "validation_failed");

    // Every command, through the settings.
    let a = admin(&sim, &agent, "POST", "/_sim/settings", Some(json!({"adopt_local_reports": true})));
    assert_eq!(a.json()["settings"]["adopt_local_reports"], true);
    assert_eq!(feed(&sim, &agent, &t, &local_report(4, "18.0", "p-6")).status, 201);
    assert_eq!(catalog_value(&sim, &agent, &t, 4), "18.0");
    // A fixture cannot put it on an item Realer cannot represent.
    let mut bad: Value = serde_json::from_str(realer_sim::BUILTIN_JSON).unwrap();
    bad["devices"][0]["commands"][2]["local_adoption"] = json!(true);
    assert!(Fixture::from_json(&bad.to_string()).is_err());
}

#[test]
fn revoking_every_token() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let other = token_for(&sim, &agent, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, None);
    assert_eq!(get(&sim, &agent, COMMANDS, Some(&t)).status, 200);
    let a = admin(&sim, &agent, "POST", "/_sim/revoke-tokens", None);
    assert_eq!(a.json(), json!({"code": 2000, "revoked": 2}));
    let a = get(&sim, &agent, COMMANDS, Some(&t));
    assert_error(&a, 401, 4001, "unauthorized");
    assert!(a.json()["error"]["message"].as_str().unwrap().contains("revoked"));
    assert_error(&get(&sim, &agent, "/iot/v1/devices/12346/commands", Some(&other)), 401, 4001, "unauthorized");
    // A new token works; the Sim method revokes it.
    let fresh = token(&sim, &agent);
    assert_eq!(get(&sim, &agent, COMMANDS, Some(&fresh)).status, 200);
    assert_eq!(sim.revoke_all_tokens(), 1);
    assert_error(&get(&sim, &agent, COMMANDS, Some(&fresh)), 401, 4001, "unauthorized");
}

#[test]
fn rotating_a_client_secret() {
    let sim = start();
    let agent = agent(&sim);
    let grant = "grant_type=client_credentials";
    let t = token(&sim, &agent);
    let a = admin(
        &sim,
        &agent,
        "POST",
        "/_sim/rotate-secret",
        Some(json!({"device_id": "12345", "client_secret": "rotated-1"})),
    );
    assert_eq!(
        a.json(),
        json!({"code": 2000, "device_id": "12345", "client_id": CLIENT_ID, "client_secret": "rotated-1"})
    );
    let old = token_request(&sim, &agent, Some(&basic(CLIENT_ID, CLIENT_SECRET)), grant);
    assert_eq!((old.status, old.json()["error"].clone()), (401, json!("invalid_client")));
    token_for(&sim, &agent, CLIENT_ID, "rotated-1", None);
    // Tokens issued before stay valid until they expire or are revoked.
    assert_eq!(get(&sim, &agent, COMMANDS, Some(&t)).status, 200);
    // Without a secret, a random one is made and returned; the Sim method likewise.
    let a = admin(&sim, &agent, "POST", "/_sim/rotate-secret", Some(json!({"device_id": 12345})));
    let secret = a.json()["client_secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 16 && secret != "rotated-1", "{secret}");
    assert_eq!(token_request(&sim, &agent, Some(&basic(CLIENT_ID, "rotated-1")), grant).status, 401);
    token_for(&sim, &agent, CLIENT_ID, &secret, None);
    assert_eq!(sim.rotate_client_secret(DEVICE_ID, Some("rotated-2")).unwrap(), "rotated-2");
    token_for(&sim, &agent, CLIENT_ID, "rotated-2", None);
    assert!(sim.rotate_client_secret("99999", None).is_err());
    let a =
        admin(&sim, &agent, "POST", "/_sim/rotate-secret", Some(json!({"device_id": "12345", "client_secret": ""})));
    assert_error(&a, 422, 4022, "validation_failed");
    // The other device is untouched.
    token_for(&sim, &agent, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, None);
}

#[test]
fn a_user_sets_a_value() {
    let sim = start_with(SimOptions { flavour: Flavour::V2, ..SimOptions::default() });
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    // The short form: a fresh desired_id, the command's next sequence number, an hour to live.
    let a = admin(
        &sim,
        &agent,
        "POST",
        "/_sim/desired-states",
        Some(json!({"device_id": "12345", "command_id": 1, "value": "0.0"})),
    );
    let d = a.json()["desired"].clone();
    assert_eq!(a.json()["added"], true, "{}", a.text);
    let id = d["desired_id"].as_str().unwrap();
    assert!(id.starts_with("des_") && id.len() == 30, "{id}");
    assert_eq!(d["sequence_number"], PENDING_SEQUENCE_NUMBER + 1);
    let expires = parse_rfc3339_utc(d["expires_at"].as_str().unwrap()).unwrap();
    assert!((now_unix() + 3590..=now_unix() + 3600).contains(&expires));
    let listed = get(&sim, &agent, DESIRED, Some(&t)).json();
    assert!(listed["desired_states"].as_array().unwrap().iter().any(|s| s["desired_id"] == id && s["value"] == "0.0"));
    // Again: the sequence goes on; expires_in_secs is honoured.
    let a = admin(
        &sim,
        &agent,
        "POST",
        "/_sim/desired-states",
        Some(json!({"device_id": "12345", "command_id": "1", "value": "1.0", "expires_in_secs": 60})),
    );
    assert_eq!(a.json()["desired"]["sequence_number"], PENDING_SEQUENCE_NUMBER + 2);
    // The Sim method; a command without any desired state starts at 1.
    let d = sim.set_desired_value(DEVICE_ID, "4", "19.5").unwrap();
    assert_eq!((d.sequence_number, d.value.as_str()), (1, "19.5"));
    assert!(sim.set_desired_value(DEVICE_ID, "99", "1").is_err());
    // The full form, as before.
    let a = admin(
        &sim,
        &agent,
        "POST",
        "/_sim/desired-states",
        Some(json!({"device_id": "12345", "command_id": 4, "desired": {"desired_id": "des_full", "value": "18.0",
                    "sequence_number": 9, "expires_in_secs": 100}})),
    );
    assert_eq!(a.json()["desired"]["desired_id"], "des_full", "{}", a.text);
    assert_eq!(sim.set_desired_value(DEVICE_ID, "4", "18.5").unwrap().sequence_number, 10);
    for bad in [
        json!({"device_id": "12345", "command_id": 4}),
        json!({"device_id": "12345", "command_id": 4, "value": 18}),
        json!({"device_id": "12345", "command_id": 4, "value": "18", "expires_in_secs": "soon"}),
        json!({"device_id": "12345", "command_id": 4, "value": ""}),
    ] {
        assert_error(&admin(&sim, &agent, "POST", "/_sim/desired-states", Some(bad)), 422, 4022, "validation_failed");
    }
}

#[test]
fn request_counters_by_status_endpoint_and_second() {
    let sim = start_with(SimOptions { requests_per_minute: Some(3), ..SimOptions::default() });
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    assert_eq!(feed(&sim, &agent, &t, &reading("s-1")).status, 201);
    assert_eq!(feed(&sim, &agent, &t, &reading("s-1")).status, 200);
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&t)).status, 200);
    assert_eq!(feed(&sim, &agent, &t, &reading("s-2")).status, 429);
    assert_eq!(get(&sim, &agent, "/nowhere", None).status, 404);
    // Admin requests are not counted.
    let a = admin(&sim, &agent, "GET", "/_sim/stats", None);
    let s = a.json();
    assert_eq!(s["code"], 2000);
    assert_eq!(s["total"], 6, "{s}");
    assert_eq!(s["tokens_issued"], 1);
    assert_eq!(s["by_status"], json!({"200": 3, "201": 1, "404": 1, "429": 1}));
    assert_eq!(
        s["by_endpoint"],
        json!({"token": {"200": 1}, "feed_data": {"200": 1, "201": 1, "429": 1}, "sensors": {"200": 1}, "other": {"404": 1}})
    );
    let seconds = s["per_second"].as_array().unwrap();
    assert_eq!(seconds.iter().map(|b| b["total"].as_u64().unwrap()).sum::<u64>(), 6);
    assert!(s["uptime_ms"].as_u64().unwrap() / 1000 >= seconds.last().unwrap()["second"].as_u64().unwrap());
    // The Sim method says the same.
    let stats = sim.stats();
    assert_eq!((stats.total, stats.by_status[&429], stats.by_endpoint["feed_data"][&201]), (6, 1, 1));
    // Only the buckets from a second on.
    let later = admin(&sim, &agent, "GET", "/_sim/stats?since_s=100000", None).json();
    assert_eq!((later["total"].clone(), later["per_second"].clone()), (json!(6), json!([])));
    assert_error(&admin(&sim, &agent, "GET", "/_sim/stats?since_s=x", None), 422, 4022, "validation_failed");
    // Reset.
    assert_eq!(admin(&sim, &agent, "DELETE", "/_sim/stats", None).json(), json!({"code": 2000, "reset": true}));
    assert_eq!(sim.stats().total, 0);
    get(&sim, &agent, "/nowhere", None);
    assert_eq!(sim.stats().by_endpoint["other"][&404], 1);
    sim.reset_stats();
    assert_eq!(sim.stats(), realer_sim::Stats::default());
}

#[test]
fn the_settings_in_force() {
    let sim = start_with(SimOptions {
        byte_budget: 2048,
        requests_per_minute: Some(600),
        token_requests_per_minute: Some(10),
        adopt_local_reports: true,
        ..SimOptions::default()
    });
    let agent = agent(&sim);
    let expected = json!({"byte_budget": 2048, "requests_per_minute": 600, "token_requests_per_minute": 10,
                          "adopt_local_reports": true});
    assert_eq!(admin(&sim, &agent, "GET", "/_sim/settings", None).json(), json!({"code": 2000, "settings": expected}));
    // Nothing changes unless every field is valid.
    let a =
        admin(&sim, &agent, "POST", "/_sim/settings", Some(json!({"byte_budget": 10, "adopt_local_reports": "yes"})));
    assert_error(&a, 422, 4022, "validation_failed");
    assert_eq!(sim.settings().byte_budget, 2048);
    let a =
        admin(&sim, &agent, "POST", "/_sim/settings", Some(json!({"byte_budget": 10, "requests_per_minute": null})));
    assert_eq!(a.json()["settings"]["byte_budget"], 10);
    assert_eq!(sim.settings().requests_per_minute, None);
    assert_eq!(sim.settings().token_requests_per_minute, Some(10));
    assert_error(&admin(&sim, &agent, "POST", "/_sim/settings", Some(json!([1]))), 400, 4000, "bad_request");
}
