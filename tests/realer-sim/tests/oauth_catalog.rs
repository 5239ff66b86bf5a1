//! OAuth (token, scopes, every error, revoke) and the device catalog (collections, single items, 404, 401, 403).

mod common;

use common::*;
use realer_sim::builtin::*;
use realer_sim::SimOptions;
use serde_json::json;

#[test]
fn token_without_scope_gets_both_scopes() {
    let sim = start();
    let agent = agent(&sim);
    let a = token_request(&sim, &agent, Some(&basic(CLIENT_ID, CLIENT_SECRET)), "grant_type=client_credentials");
    assert_eq!(a.status, 200, "{}", a.text);
    let body = a.json();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.len(), 30);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["renew_after"], 3000);
    assert_eq!(body["scope"], "iot:catalog:read iot:feed-data:write");
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert!(a.header("x-request-id").is_some());
    assert_eq!(sim.tokens_issued(), 1);
    // Both scopes work.
    let cat = get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(token));
    assert_eq!(cat.status, 200);
    assert_eq!(feed(&sim, &agent, token, &reading("m1")).status, 201);
}

#[test]
fn token_with_scope_limits_the_endpoints() {
    let sim = start();
    let agent = agent(&sim);
    let read_only = token_for(&sim, &agent, CLIENT_ID, CLIENT_SECRET, Some("iot:catalog:read"));
    let write_only = token_for(&sim, &agent, CLIENT_ID, CLIENT_SECRET, Some("iot:feed-data:write"));
    let both = token_for(&sim, &agent, CLIENT_ID, CLIENT_SECRET, Some("iot:feed-data:write iot:catalog:read"));
    assert_eq!(sim.tokens_issued(), 3);

    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&read_only)).status, 200);
    let d = assert_error(&feed(&sim, &agent, &read_only, &reading("m1")), 403, 4003, "forbidden");
    assert!(d.is_null());

    assert_eq!(feed(&sim, &agent, &write_only, &reading("m1")).status, 201);
    assert_error(&get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&write_only)), 403, 4003, "forbidden");
    assert_error(&get(&sim, &agent, "/iot/v1/devices/12345/sensors/7", Some(&write_only)), 403, 4003, "forbidden");
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&both)).status, 200);

    let a = token_request(
        &sim,
        &agent,
        Some(&basic(CLIENT_ID, CLIENT_SECRET)),
        "grant_type=client_credentials&scope=iot%3Acatalog%3Aread",
    );
    assert_eq!(a.json()["scope"], "iot:catalog:read");
}

#[test]
fn token_options_are_reported() {
    let sim = start_with(SimOptions { token_ttl_secs: 120, renew_after_secs: 90, ..SimOptions::default() });
    let agent = agent(&sim);
    let a = token_request(&sim, &agent, Some(&basic(CLIENT_ID, CLIENT_SECRET)), "grant_type=client_credentials");
    assert_eq!(a.json()["expires_in"], 120);
    assert_eq!(a.json()["renew_after"], 90);
}

fn assert_oauth_error(a: &Answer, status: u16, error: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    let body = a.json();
    assert_eq!(body["error"], error, "{}", a.text);
    assert!(body["error_description"].is_string(), "{}", a.text);
    if status == 401 {
        assert_eq!(a.header("www-authenticate"), Some(r#"Basic realm="realer""#));
    }
}

#[test]
fn oauth_errors() {
    let sim = start();
    let agent = agent(&sim);
    let good = basic(CLIENT_ID, CLIENT_SECRET);
    let grant = "grant_type=client_credentials";

    // Content type.
    let a = read(
        agent
            .post(format!("{}/oauth/token", sim.base_url()))
            .header("Authorization", &good)
            .header("Content-Type", "application/json")
            .send(r#"{"grant_type":"client_credentials"}"#),
    );
    assert_oauth_error(&a, 400, "invalid_request");
    let a = read(agent.post(format!("{}/oauth/token", sim.base_url())).header("Authorization", &good).send(grant));
    assert_oauth_error(&a, 400, "invalid_request");

    // Client authentication.
    assert_oauth_error(&token_request(&sim, &agent, None, grant), 401, "invalid_client");
    assert_oauth_error(&token_request(&sim, &agent, Some(&basic(CLIENT_ID, "wrong")), grant), 401, "invalid_client");
    assert_oauth_error(
        &token_request(&sim, &agent, Some(&basic("cdv_nobody", CLIENT_SECRET)), grant),
        401,
        "invalid_client",
    );
    assert_oauth_error(&token_request(&sim, &agent, Some("Basic !!!not-base64"), grant), 401, "invalid_client");
    assert_oauth_error(&token_request(&sim, &agent, Some("Bearer something"), grant), 401, "invalid_client");
    // Credentials in the body are refused, with or without Basic.
    let in_body = format!("{grant}&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}");
    assert_oauth_error(&token_request(&sim, &agent, None, &in_body), 400, "invalid_request");
    assert_oauth_error(&token_request(&sim, &agent, Some(&good), &in_body), 400, "invalid_request");

    // Grant type.
    assert_oauth_error(&token_request(&sim, &agent, Some(&good), ""), 400, "invalid_request");
    assert_oauth_error(&token_request(&sim, &agent, Some(&good), "scope=iot%3Acatalog%3Aread"), 400, "invalid_request");
    assert_oauth_error(&token_request(&sim, &agent, Some(&good), "grant_type=password"), 400, "unsupported_grant_type");
    assert_oauth_error(
        &token_request(&sim, &agent, Some(&good), "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"),
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(&token_request(&sim, &agent, Some(&good), &format!("{grant}&{grant}")), 400, "invalid_request");
    assert_oauth_error(&token_request(&sim, &agent, Some(&good), "grant_type=%ZZ"), 400, "invalid_request");

    // Scope.
    assert_oauth_error(
        &token_request(&sim, &agent, Some(&good), &format!("{grant}&scope=iot:admin")),
        400,
        "invalid_scope",
    );
    // Every documented scope is accepted (contract section 2), the MQTT ones included.
    let a = token_request(
        &sim,
        &agent,
        Some(&good),
        &format!("{grant}&scope=iot%3Acatalog%3Aread+iot:desired-state:read+iot:mqtt:connect+iot:mqtt:ack:read+iot:mqtt:feed-data:write+iot:mqtt:desired:read"),
    );
    assert_eq!(
        a.json()["scope"],
        "iot:catalog:read iot:desired-state:read iot:mqtt:connect iot:mqtt:ack:read iot:mqtt:feed-data:write iot:mqtt:desired:read",
        "{}",
        a.text
    );

    // Method.
    let a = get(&sim, &agent, "/oauth/token", None);
    assert_error(&a, 405, 4000, "bad_request");
    assert_eq!(a.header("allow"), Some("POST"));

    // Percent-encoding is decoded; an empty scope counts as omitted (RFC 6749 section 3.1).
    let a = token_request(&sim, &agent, Some(&good), "grant_type=client%5Fcredentials&scope=");
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["scope"], "iot:catalog:read iot:feed-data:write");
    assert_eq!(sim.tokens_issued(), 2, "the token with every documented scope, and this one");
}

#[test]
fn revoke() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let other = token_for(&sim, &agent, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, None);
    let good = basic(CLIENT_ID, CLIENT_SECRET);
    let revoke = |auth: Option<&str>, body: &str| {
        let mut req = agent
            .post(format!("{}/oauth/revoke", sim.base_url()))
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        read(req.send(body))
    };
    assert_oauth_error(&revoke(None, &format!("token={t}")), 401, "invalid_client");
    assert_oauth_error(&revoke(Some(&good), ""), 400, "invalid_request");
    // Another client's token is refused and keeps working.
    assert_oauth_error(&revoke(Some(&good), &format!("token={other}")), 400, "invalid_request");
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12346/sensors", Some(&other)).status, 200);
    // An unknown token is "revoked" (RFC 7009).
    let a = revoke(Some(&good), "token=nonsense");
    assert_eq!((a.status, a.json()), (200, json!({"revoked": true})));

    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&t)).status, 200);
    let a = revoke(Some(&good), &format!("token={t}&token_type_hint=access_token"));
    assert_eq!((a.status, a.json()), (200, json!({"revoked": true})));
    let a = get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&t));
    assert_error(&a, 401, 4001, "unauthorized");
    assert!(a.header("www-authenticate").unwrap().starts_with("Bearer"));
    let log = sim.request_log();
    assert!(log[log.len() - 3].bearer_valid);
    assert!(!log[log.len() - 1].bearer_valid);
}

#[test]
fn command_catalog_shapes() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let a = get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&t));
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.header("x-request-id").is_some());
    assert!(a.header("content-type").unwrap().starts_with("application/json"));
    let mut body = a.json();
    assert_eq!(body["code"], 2000);
    let commands = body["commands"].as_array_mut().unwrap();
    assert_eq!(commands.len(), 4);

    // v1 (the seed page's API): a command's value is what Realer wants; no desired ids on catalog items.
    assert_eq!(
        body["commands"],
        json!([
            {"id": 1, "value": "1.0", "value_type": "NumericRange", "kind": "relay", "pin_port": "6"},
            {"id": 2, "value": "1.0", "value_type": "NumericRange", "kind": "relay", "pin_port": "7"},
            {"id": 3, "error": {"type": "unsupported_value_type",
                                "message": "value_type ColorWheel cannot be represented in the v1 device API"}},
            {"id": 4, "value": "20.5", "value_type": "NumericRange", "kind": "thermostat_setpoint", "pin_port": "8"},
        ])
    );

    // Single items: the same shape with a one-element array.
    let one = get(&sim, &agent, "/iot/v1/devices/12345/commands/4", Some(&t));
    assert_eq!(
        one.json(),
        json!({"code": 2000, "commands": [
            {"id": 4, "value": "20.5", "value_type": "NumericRange", "kind": "thermostat_setpoint", "pin_port": "8"}
        ]})
    );
    let three = get(&sim, &agent, "/iot/v1/devices/12345/commands/3", Some(&t)).json();
    assert_eq!(three["commands"][0].as_object().unwrap().len(), 2);
    assert_eq!(three["commands"][0]["id"], 3);
    let first = get(&sim, &agent, "/iot/v1/devices/12345/commands/1", Some(&t)).json();
    assert!(first["commands"][0].get("desired_id").is_none(), "{first}");
    // v1 has no /desired-states.
    assert_error(&get(&sim, &agent, "/iot/v1/devices/12345/desired-states", Some(&t)), 404, 4004, "not_found");
    assert_error(&get(&sim, &agent, "/iot/v1/devices/12345/commands/99", Some(&t)), 404, 4004, "not_found");
    assert_error(&get(&sim, &agent, "/iot/v1/devices/12345/commands/7", Some(&t)), 404, 4004, "not_found");
}

#[test]
fn sensor_catalog_shapes() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let a = get(&sim, &agent, "/iot/v1/devices/12345/sensors", Some(&t));
    assert_eq!(
        a.json(),
        json!({"code": 2000, "sensors": [
            {"id": 7, "kind": "thermistor", "qc": "celsius_temperature", "mu": "degree_celsius:0", "pin_port": "5"},
            {"id": 8, "kind": "humidity", "qc": "relative_humidity", "mu": "percent:0", "pin_port": "4"},
        ]})
    );
    let one = get(&sim, &agent, "/iot/v1/devices/12345/sensors/8", Some(&t));
    assert_eq!(
        one.json(),
        json!({"code": 2000, "sensors": [
            {"id": 8, "kind": "humidity", "qc": "relative_humidity", "mu": "percent:0", "pin_port": "4"},
        ]})
    );
    for missing in ["/iot/v1/devices/12345/sensors/9", "/iot/v1/devices/12345/sensors/x"] {
        assert_error(&get(&sim, &agent, missing, Some(&t)), 404, 4004, "not_found");
    }
    let other = token_for(&sim, &agent, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, None);
    let theirs = get(&sim, &agent, "/iot/v1/devices/12346/sensors", Some(&other)).json();
    assert_eq!(theirs["sensors"][0]["id"], 9);
}

#[test]
fn catalog_auth_and_routing_errors() {
    let sim = start();
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    let other = token_for(&sim, &agent, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, None);

    let a = get(&sim, &agent, "/iot/v1/devices/12345/commands", None);
    assert_error(&a, 401, 4001, "unauthorized");
    assert!(a.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_error(
        &get(&sim, &agent, "/iot/v1/devices/12345/commands", Some("b11db7f6c816568eb3b156df3aeaa5")),
        401,
        4001,
        "unauthorized",
    );
    // Another device's token on this device's path: forbidden; a device that does not exist: not found.
    assert_error(&get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&other)), 403, 4003, "forbidden");
    assert_error(&get(&sim, &agent, "/iot/v1/devices/99999/commands", Some(&t)), 404, 4004, "not_found");
    // Unknown paths and methods.
    for path in
        ["/iot/v1/devices/12345/things", "/iot/v1/devices/12345/commands/", "/iot/v2/devices/12345/commands", "/"]
    {
        assert_error(&get(&sim, &agent, path, Some(&t)), 404, 4004, "not_found");
    }
    let a = read(
        agent
            .delete(format!("{}/iot/v1/devices/12345/commands", sim.base_url()))
            .header("Authorization", format!("Bearer {t}"))
            .call(),
    );
    assert_error(&a, 405, 4000, "bad_request");
    assert_eq!(a.header("allow"), Some("GET"));
    let a = get(&sim, &agent, "/iot/v1/devices/12345/feed-data", Some(&t));
    assert_error(&a, 405, 4000, "bad_request");
    assert_eq!(a.header("allow"), Some("POST"));

    // Each error carries its own request_id.
    let x = get(&sim, &agent, "/nowhere", None).json();
    let y = get(&sim, &agent, "/nowhere", None).json();
    assert_ne!(x["request_id"], y["request_id"]);

    // Expired tokens.
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&t)).status, 200);
    sim.expire_all_tokens();
    let a = get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&t));
    assert_error(&a, 401, 4001, "unauthorized");
    // A token issued after the expiry works.
    let fresh = token(&sim, &agent);
    assert_eq!(get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&fresh)).status, 200);
    let log = sim.request_log();
    assert!(!log[log.len() - 3].bearer_valid);
    assert!(log[log.len() - 1].bearer_valid);
}

#[test]
fn zero_ttl_tokens_expire_at_once() {
    let sim = start_with(SimOptions { token_ttl_secs: 0, renew_after_secs: 0, ..SimOptions::default() });
    let agent = agent(&sim);
    let t = token(&sim, &agent);
    assert_error(&get(&sim, &agent, "/iot/v1/devices/12345/commands", Some(&t)), 401, 4001, "unauthorized");
}
