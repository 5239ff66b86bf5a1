//! The admin interface under `/_sim/` (bearer: the admin token printed at start): queue and clear faults,
//! expire or revoke tokens, rotate a client secret, set desired states as a user, change settings (byte
//! budget, request budgets, local adoption), read records, token count, the request log and the request
//! counters, take the server down for a while. Admin requests are never faulted, never rate-limited and never
//! logged or counted.

use serde_json::{json, Value};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::api::{error, method_not_allowed, ok};
use crate::faults::{Fault, Target};
use crate::fixture::FixtureDesired;
use crate::http::{Request, Response};
use crate::server::{lock, Inner};
use crate::state::Labels;
use crate::stats::Stats;

pub(crate) fn handle(inner: &Arc<Inner>, req: &Request) -> Response {
    let rng = &inner.rng;
    if req.authorization("Bearer") != Some(inner.admin_token.as_str()) {
        return error(rng, 401, 4001, "the admin token is required", None)
            .with_header("WWW-Authenticate", r#"Bearer realm="realer-sim""#);
    }
    let allowed: &[&str] = match req.path.as_str() {
        "/_sim/faults" => &["POST", "DELETE"],
        "/_sim/stats" => &["GET", "DELETE"],
        "/_sim/settings" => &["GET", "POST"],
        "/_sim/expire-tokens"
        | "/_sim/revoke-tokens"
        | "/_sim/rotate-secret"
        | "/_sim/local-adoption"
        | "/_sim/down"
        | "/_sim/labels"
        | "/_sim/desired-states" => &["POST"],
        "/_sim/records" | "/_sim/tokens" | "/_sim/requests" => &["GET"],
        _ => return error(rng, 404, 4004, &format!("no such admin path: {}", req.path), None),
    };
    if !allowed.contains(&req.method.as_str()) {
        return method_not_allowed(rng, &req.method, &allowed.join(", "));
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/_sim/faults") => queue_fault(inner, req),
        ("DELETE", "/_sim/faults") => {
            lock(&inner.state).faults.clear();
            ok(rng, 200, &json!({"code": 2000, "cleared": true}))
        }
        ("POST", "/_sim/expire-tokens") => {
            let n = inner.expire_all_tokens();
            ok(rng, 200, &json!({"code": 2000, "expired": n}))
        }
        ("POST", "/_sim/revoke-tokens") => {
            let n = inner.revoke_all_tokens();
            ok(rng, 200, &json!({"code": 2000, "revoked": n}))
        }
        ("POST", "/_sim/rotate-secret") => rotate_secret(inner, req),
        ("POST", "/_sim/labels") => set_labels(inner, req),
        ("POST", "/_sim/desired-states") => add_desired(inner, req),
        ("GET", "/_sim/settings") => settings_answer(inner),
        ("POST", "/_sim/settings") => change_settings(inner, req),
        ("POST", "/_sim/local-adoption") => local_adoption(inner, req),
        ("GET", "/_sim/stats") => stats(inner, req),
        ("DELETE", "/_sim/stats") => {
            lock(&inner.state).stats = Stats::default();
            ok(rng, 200, &json!({"code": 2000, "reset": true}))
        }
        ("GET", "/_sim/records") => {
            let records = lock(&inner.state).records.clone();
            ok(rng, 200, &json!({"code": 2000, "records": records}))
        }
        ("GET", "/_sim/tokens") => {
            let issued = lock(&inner.state).tokens_issued;
            ok(rng, 200, &json!({"code": 2000, "issued": issued}))
        }
        ("GET", "/_sim/requests") => {
            let log = lock(&inner.state).log.clone();
            ok(rng, 200, &json!({"code": 2000, "requests": log}))
        }
        _ => down(inner, req),
    }
}

fn invalid(inner: &Inner, field: &str, message: &str) -> Response {
    error(&inner.rng, 422, 4022, "invalid fault", Some(json!({ field: [message] })))
}

fn queue_fault(inner: &Arc<Inner>, req: &Request) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
        return error(&inner.rng, 400, 4000, "the body must be a JSON object", None);
    };
    let u64_field = |name: &str, default: u64| match body.get(name) {
        None => Ok(default),
        Some(v) => v.as_u64().ok_or(name.to_string()),
    };
    let (count, retry_after_secs, ms) =
        match (u64_field("count", 1), u64_field("retry_after_secs", 1), u64_field("ms", 0)) {
            (Ok(c), Ok(r), Ok(m)) => (c, r, m),
            (Err(f), _, _) | (_, Err(f), _) | (_, _, Err(f)) => {
                return invalid(inner, &f, "must be an integer greater than or equal to 0")
            }
        };
    let fault = match body.get("fault").and_then(Value::as_str) {
        Some("service_unavailable") => Fault::ServiceUnavailable,
        Some("rate_limited") => Fault::RateLimited { retry_after_secs },
        Some("proxy_bad_gateway") => Fault::ProxyBadGateway,
        Some("subscription_inactive") => Fault::SubscriptionInactive,
        Some("not_found") => Fault::NotFound,
        Some("unreadable_success") => Fault::UnreadableSuccess,
        Some("warnings") => Fault::Warnings,
        Some("answer") => {
            match (body.get("status").and_then(Value::as_u64), body.get("body").and_then(Value::as_str)) {
                (Some(status @ 100..=599), Some(text)) => {
                    Fault::Answer { status: status as u16, body: text.to_string() }
                }
                _ => return invalid(inner, "body", "answer needs status (100-599) and body (a string)"),
            }
        }
        Some("delay") => Fault::Delay { ms },
        Some("close_before_answer") => Fault::CloseBeforeAnswer,
        Some("store_then_close") => Fault::StoreThenClose,
        Some("hang") => Fault::Hang,
        Some("store_then_hang") => Fault::StoreThenHang,
        Some("drip") => Fault::Drip { ms: ms.max(1) },
        _ => {
            return invalid(
                inner,
                "fault",
                "must be one of service_unavailable, rate_limited, subscription_inactive, not_found, \
                 unreadable_success, warnings, answer, proxy_bad_gateway, delay, close_before_answer, \
                 store_then_close, hang, store_then_hang, drip",
            )
        }
    };
    let target = match body.get("target") {
        None => Target::Any,
        Some(t) => match t.as_str().and_then(Target::parse) {
            Some(t) => t,
            None => {
                return invalid(
                    inner,
                    "target",
                    "must be any, token, catalog, desired_states, feed_data, batch or a path starting with /",
                )
            }
        },
    };
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    inner.inject(fault, target, count);
    ok(&inner.rng, 200, &json!({"code": 2000, "queued": true}))
}

/// `POST /_sim/labels {"labels":"registry"|"response_handling"}`: the vocabulary of `error.type` from now on.
fn set_labels(inner: &Arc<Inner>, req: &Request) -> Response {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let labels = match body.get("labels").and_then(Value::as_str) {
        Some("registry") => Labels::Registry,
        Some("response_handling") => Labels::ResponseHandling,
        _ => return invalid(inner, "labels", "must be registry or response_handling"),
    };
    lock(&inner.state).labels = labels;
    ok(&inner.rng, 200, &json!({"code": 2000, "labels": body["labels"]}))
}

/// An id field given as a string or a number.
fn id_field(body: &Value, key: &str) -> Option<String> {
    match body.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// `POST /_sim/desired-states`: a user sets a value in Realer. Either
/// `{"device_id":"12345","command_id":"1","desired":{…fixture desired…}}` or, with a fresh `desired_id` and the
/// command's next `sequence_number`, `{"device_id":"12345","command_id":1,"value":"1.0","expires_in_secs":3600}`
/// (`expires_in_secs` from now, default 3600). Answers the desired state added.
fn add_desired(inner: &Arc<Inner>, req: &Request) -> Response {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let (Some(device), Some(command)) = (id_field(&body, "device_id"), id_field(&body, "command_id")) else {
        return invalid(inner, "device_id", "device_id and command_id are required");
    };
    let added = match (body.get("desired"), body.get("value")) {
        (Some(d), None) => match serde_json::from_value::<FixtureDesired>(d.clone()) {
            Ok(d) => inner.add_desired(&device, &command, &d).map(|()| d),
            Err(_) => return invalid(inner, "desired", "must be a desired state as in a fixture"),
        },
        (None, Some(Value::String(value))) => {
            let expires_in_secs = match body.get("expires_in_secs") {
                None => 3600,
                Some(v) => match v.as_i64() {
                    Some(s) => s,
                    None => return invalid(inner, "expires_in_secs", "must be an integer"),
                },
            };
            inner.set_desired_value(&device, &command, value, expires_in_secs)
        }
        _ => return invalid(inner, "desired", "give desired (a desired state as in a fixture) or value (a string)"),
    };
    match added {
        Ok(d) => ok(&inner.rng, 200, &json!({"code": 2000, "added": true, "desired": d})),
        Err(e) => invalid(inner, "desired", &e),
    }
}

/// `POST /_sim/rotate-secret {"device_id":"12345","client_secret":"new"}` (`client_secret` optional: a
/// random one): the old secret gets 401 `invalid_client` from now on; tokens already issued stay valid.
fn rotate_secret(inner: &Arc<Inner>, req: &Request) -> Response {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let Some(device) = id_field(&body, "device_id") else {
        return invalid(inner, "device_id", "is required");
    };
    let secret = match body.get("client_secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return invalid(inner, "client_secret", "must be a string"),
    };
    match inner.rotate_secret(&device, secret) {
        Ok(secret) => {
            let client_id = {
                let state = lock(&inner.state);
                state.device_index(&device).map(|d| state.devices[d].client_id.clone()).unwrap_or_default()
            };
            ok(
                &inner.rng,
                200,
                &json!({"code": 2000, "device_id": device, "client_id": client_id, "client_secret": secret}),
            )
        }
        Err(e) => invalid(inner, "device_id", &e),
    }
}

fn settings_answer(inner: &Arc<Inner>) -> Response {
    let settings = lock(&inner.state).settings.clone();
    ok(&inner.rng, 200, &json!({"code": 2000, "settings": settings}))
}

/// `POST /_sim/settings` with any of `byte_budget` (an integer ≥ 1), `requests_per_minute` and
/// `token_requests_per_minute` (an integer ≥ 1, or null: unlimited), `adopt_local_reports` (a boolean).
/// Nothing changes unless every field given is valid. Answers the settings in force.
fn change_settings(inner: &Arc<Inner>, req: &Request) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
        return error(&inner.rng, 400, 4000, "the body must be a JSON object", None);
    };
    let per_minute = |v: &Value| match v {
        Value::Null => Some(None),
        v => v.as_u64().filter(|n| (1..=u64::from(u32::MAX)).contains(n)).map(|n| Some(n as u32)),
    };
    let mut next = lock(&inner.state).settings.clone();
    for (key, v) in &body {
        match key.as_str() {
            "byte_budget" => match v.as_u64().filter(|n| *n >= 1).and_then(|n| usize::try_from(n).ok()) {
                Some(n) => next.byte_budget = n,
                None => return invalid(inner, key, "must be an integer greater than or equal to 1"),
            },
            "requests_per_minute" => match per_minute(v) {
                Some(n) => next.requests_per_minute = n,
                None => return invalid(inner, key, "must be an integer greater than or equal to 1, or null"),
            },
            "token_requests_per_minute" => match per_minute(v) {
                Some(n) => next.token_requests_per_minute = n,
                None => return invalid(inner, key, "must be an integer greater than or equal to 1, or null"),
            },
            "adopt_local_reports" => match v.as_bool() {
                Some(b) => next.adopt_local_reports = b,
                None => return invalid(inner, key, "must be true or false"),
            },
            _ => return invalid(inner, key, "is not a setting"),
        }
    }
    {
        let mut state = lock(&inner.state);
        if state.settings.requests_per_minute != next.requests_per_minute {
            state.devices.iter_mut().for_each(|d| d.budget = None);
        }
        if state.settings.token_requests_per_minute != next.token_requests_per_minute {
            state.devices.iter_mut().for_each(|d| d.token_budget = None);
        }
        state.settings = next;
    }
    settings_answer(inner)
}

/// `POST /_sim/local-adoption {"device_id":"12345","command_id":1,"enabled":true}`: local reported-state
/// adoption for one command.
fn local_adoption(inner: &Arc<Inner>, req: &Request) -> Response {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let (Some(device), Some(command)) = (id_field(&body, "device_id"), id_field(&body, "command_id")) else {
        return invalid(inner, "device_id", "device_id and command_id are required");
    };
    let Some(enabled) = body.get("enabled").and_then(Value::as_bool) else {
        return invalid(inner, "enabled", "must be true or false");
    };
    match inner.set_local_adoption(&device, &command, enabled) {
        Ok(()) => ok(&inner.rng, 200, &json!({"code": 2000, "local_adoption": enabled})),
        Err(e) => invalid(inner, "command_id", &e),
    }
}

/// `GET /_sim/stats?since_s=N`: the request counters, with the per-second buckets from second N on
/// (default 0: all kept).
fn stats(inner: &Arc<Inner>, req: &Request) -> Response {
    let since = match req.query_param("since_s").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(s)) => s,
        Some(Err(_)) => return invalid(inner, "since_s", "must be an integer"),
    };
    let (stats, tokens_issued) = {
        let state = lock(&inner.state);
        (state.stats.since(since), state.tokens_issued)
    };
    let mut body = serde_json::to_value(&stats).unwrap_or(Value::Null);
    body["code"] = json!(2000);
    body["uptime_ms"] = json!(inner.uptime_ms());
    body["tokens_issued"] = json!(tokens_issued);
    ok(&inner.rng, 200, &body)
}

/// `POST /_sim/down?for_ms=N`: answers first, then goes down for N ms (default 1000) and comes back.
fn down(inner: &Arc<Inner>, req: &Request) -> Response {
    let for_ms = match req.query_param("for_ms").map(str::parse::<u64>) {
        None => 1000,
        Some(Ok(ms)) => ms,
        Some(Err(_)) => return invalid(inner, "for_ms", "must be an integer"),
    };
    let inner2 = Arc::clone(inner);
    let _ = thread::Builder::new().name("realer-sim-down".into()).spawn(move || {
        // Let this answer reach the client before its connection is dropped.
        thread::sleep(Duration::from_millis(50));
        let _ = Inner::set_down(&inner2, true);
        thread::sleep(Duration::from_millis(for_ms));
        if let Err(e) = Inner::set_down(&inner2, false) {
            eprintln!("realer-sim: cannot listen again: {e}");
        }
    });
    ok(&inner.rng, 200, &json!({"code": 2000, "down_for_ms": for_ms}))
}
