//! The admin interface under `/_sim/` (bearer: the admin token printed at start): queue and clear faults,
//! expire tokens, read records, token count and the request log, take the server down for a while.
//! Admin requests are never faulted and never logged in the request log.

use serde_json::{json, Value};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::api::{error, ok};
use crate::faults::{Fault, Target};
use crate::fixture::FixtureDesired;
use crate::http::{Request, Response};
use crate::server::{lock, Inner};
use crate::state::Labels;

pub(crate) fn handle(inner: &Arc<Inner>, req: &Request) -> Response {
    let rng = &inner.rng;
    if req.authorization("Bearer") != Some(inner.admin_token.as_str()) {
        return error(rng, 401, 4001, "the admin token is required", None)
            .with_header("WWW-Authenticate", r#"Bearer realm="realer-sim""#);
    }
    let allowed: &[&str] = match req.path.as_str() {
        "/_sim/faults" => &["POST", "DELETE"],
        "/_sim/expire-tokens" | "/_sim/down" | "/_sim/labels" | "/_sim/desired-states" => &["POST"],
        "/_sim/records" | "/_sim/tokens" | "/_sim/requests" => &["GET"],
        _ => return error(rng, 404, 4004, &format!("no such admin path: {}", req.path), None),
    };
    if !allowed.contains(&req.method.as_str()) {
        return error(rng, 405, 4005, "method not allowed", None).with_header("Allow", allowed.join(", "));
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
        ("POST", "/_sim/labels") => set_labels(inner, req),
        ("POST", "/_sim/desired-states") => add_desired(inner, req),
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

/// `POST /_sim/desired-states {"device_id":"12345","command_id":"1","desired":{…fixture desired…}}`: a user
/// sets a value in Realer.
fn add_desired(inner: &Arc<Inner>, req: &Request) -> Response {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let text = |k: &str| match body.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let (Some(device), Some(command)) = (text("device_id"), text("command_id")) else {
        return invalid(inner, "device_id", "device_id and command_id are required");
    };
    let desired: FixtureDesired = match body.get("desired").cloned().map(serde_json::from_value) {
        Some(Ok(d)) => d,
        _ => return invalid(inner, "desired", "must be a desired state as in a fixture"),
    };
    match inner.add_desired(&device, &command, &desired) {
        Ok(()) => ok(&inner.rng, 200, &json!({"code": 2000, "added": true})),
        Err(e) => invalid(inner, "desired", &e),
    }
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
