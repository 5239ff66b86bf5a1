//! Dispatch of non-admin requests to the OAuth, catalog and feed-data handlers, bearer authorisation, and
//! Realer's error shape (section 6 of the contract).

use ring::rand::SystemRandom;
use serde_json::{json, Value};
use std::time::Instant;

use crate::encoding::random_hex;
use crate::http::{Request, Response};
use crate::routes::Route;
use crate::state::{Flavour, Labels, State, SCOPE_CATALOG_READ, SCOPE_DESIRED_STATE_READ, SCOPE_FEED_DATA_WRITE};
use crate::{budget, catalog, feed, oauth};

/// What a handler may read and change.
pub(crate) struct Ctx<'a> {
    pub state: &'a mut State,
    pub rng: &'a SystemRandom,
    pub now: Instant,
    /// Wall-clock seconds since the epoch (for `value_received_at` and `expires_at`).
    pub now_unix: i64,
    pub token_ttl_secs: u64,
    pub renew_after_secs: u64,
}

/// A fresh `req_…` id; every error carries its own.
pub(crate) fn request_id(rng: &SystemRandom) -> String {
    format!("req_{}", random_hex(rng, 12))
}

/// The label the response-handling page gives a code, where it differs from the registry's.
fn response_handling_label(code: u32) -> Option<&'static str> {
    Some(match code {
        4001 => "invalid_token",
        4002 => "subscription_inactive",
        4003 => "insufficient_scope",
        4004 => "resource_not_found",
        4009 => "message_conflict",
        _ => return None,
    })
}

/// Rewrites `error.type` of an iot/v1 error answer (and of each batch result) into `labels`' vocabulary.
pub(crate) fn relabel(resp: Response, labels: Labels) -> Response {
    let is_json = resp.headers.iter().any(|(k, v)| k == "Content-Type" && v == "application/json");
    if labels == Labels::Registry || !is_json {
        return resp;
    }
    let Ok(mut body) = serde_json::from_slice::<Value>(&resp.body) else {
        return resp;
    };
    let mut fix = |v: &mut Value| {
        let code = v.get("code").and_then(Value::as_u64).unwrap_or(0) as u32;
        if let (Some(label), Some(Value::Object(e))) = (response_handling_label(code), v.get_mut("error")) {
            e.insert("type".into(), json!(label));
        }
    };
    fix(&mut body);
    if let Some(Value::Array(results)) = body.get_mut("results") {
        results.iter_mut().for_each(&mut fix);
    }
    Response { body: serde_json::to_vec(&body).unwrap_or_default(), ..resp }
}

/// The readable label of a Realer code.
pub(crate) fn error_type(code: u32) -> &'static str {
    match code {
        4000 => "bad_request",
        4001 => "unauthorized",
        4002 => "payment_required",
        4003 => "forbidden",
        4004 => "not_found",
        4009 => "conflict",
        4013 => "payload_too_large",
        4015 => "unsupported_media_type",
        4022 => "validation_failed",
        4029 => "rate_limited",
        5003 => "service_unavailable",
        _ => "error",
    }
}

/// `{"code":…,"error":{"type":…,"message":…,"details":…},"request_id":"req_…"}` with the same id in `X-Request-Id`.
pub(crate) fn error(rng: &SystemRandom, status: u16, code: u32, message: &str, details: Option<Value>) -> Response {
    let rid = request_id(rng);
    let mut err = json!({"type": error_type(code), "message": message});
    if let Some(d) = details {
        err["details"] = d;
    }
    Response::json(status, &json!({"code": code, "error": err, "request_id": rid})).with_header("X-Request-Id", rid)
}

/// A success answer with its own `X-Request-Id`.
pub(crate) fn ok(rng: &SystemRandom, status: u16, body: &Value) -> Response {
    Response::json(status, body).with_header("X-Request-Id", request_id(rng))
}

/// 405 for a method the path does not take. Realer's code table has no code of its own for it: the code is
/// 4000 `bad_request`, the HTTP status says which refusal it is.
pub(crate) fn method_not_allowed(rng: &SystemRandom, method: &str, allowed: &str) -> Response {
    error(rng, 405, 4000, &format!("{method} is not allowed here; use {allowed}"), None).with_header("Allow", allowed)
}

/// 429 `rate_limited` with `Retry-After`.
pub(crate) fn rate_limited(rng: &SystemRandom, message: &str, retry_after_secs: u64) -> Response {
    error(rng, 429, 4029, message, None).with_header("Retry-After", retry_after_secs.to_string())
}

/// The device plan's request budget: every iot/v1 request carrying a valid token counts against the budget of
/// the token's device, whatever it asks for (an API gateway in front of the routes, keyed by the client).
fn over_budget(ctx: &mut Ctx<'_>, req: &Request) -> Option<Response> {
    let per_minute = ctx.state.settings.requests_per_minute?;
    if !req.path.starts_with("/iot/v1/") {
        return None;
    }
    let t = ctx.state.tokens.get(req.authorization("Bearer")?)?;
    if t.revoked || ctx.now >= t.expires {
        return None;
    }
    let device = &mut ctx.state.devices[t.device];
    match budget::take(&mut device.budget, per_minute, ctx.now) {
        Ok(()) => None,
        Err(retry_after) => Some(rate_limited(
            ctx.rng,
            &format!("the device plan allows {per_minute} requests per minute"),
            retry_after,
        )),
    }
}

/// Handles one non-admin request.
pub(crate) fn handle(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    if let Some(resp) = over_budget(ctx, req) {
        return resp;
    }
    let Some(route) = Route::parse(&req.path) else {
        return error(ctx.rng, 404, 4004, &format!("no such path: {}", req.path), None);
    };
    if req.method != route.method() {
        return method_not_allowed(ctx.rng, &req.method, route.method());
    }
    match route {
        Route::Token => oauth::token(ctx, req),
        Route::Revoke => oauth::revoke(ctx, req),
        Route::Commands { device, item } => match authorize(ctx, req, device, SCOPE_CATALOG_READ) {
            Ok(d) => catalog::commands(ctx, d, item),
            Err(resp) => resp,
        },
        Route::Sensors { device, item } => match authorize(ctx, req, device, SCOPE_CATALOG_READ) {
            Ok(d) => catalog::sensors(ctx, d, item),
            Err(resp) => resp,
        },
        Route::DesiredStates { .. } if ctx.state.flavour == Flavour::V1 => {
            error(ctx.rng, 404, 4004, &format!("no such path: {}", req.path), None)
        }
        Route::DesiredStates { device } => match authorize(ctx, req, device, SCOPE_DESIRED_STATE_READ) {
            Ok(d) => catalog::desired_states(ctx, d),
            Err(resp) => resp,
        },
        Route::FeedData { device } => match authorize(ctx, req, device, SCOPE_FEED_DATA_WRITE) {
            Ok(d) => feed::single(ctx, d, req),
            Err(resp) => resp,
        },
        Route::Batches { device } => match authorize(ctx, req, device, SCOPE_FEED_DATA_WRITE) {
            Ok(d) => feed::batch(ctx, d, req),
            Err(resp) => resp,
        },
    }
}

fn unauthorized(ctx: &Ctx<'_>, message: &str, invalid_token: bool) -> Response {
    let challenge =
        if invalid_token { r#"Bearer realm="realer", error="invalid_token""# } else { r#"Bearer realm="realer""# };
    error(ctx.rng, 401, 4001, message, None).with_header("WWW-Authenticate", challenge)
}

/// Checks the bearer token, then the path's device (404 when there is no such device, 403 when it is not the
/// token's), then the scope the endpoint needs; the device's index.
fn authorize(ctx: &Ctx<'_>, req: &Request, device: &str, scope: &str) -> Result<usize, Response> {
    let Some(token) = req.authorization("Bearer") else {
        return Err(unauthorized(ctx, "a Bearer access token is required", false));
    };
    let Some(t) = ctx.state.tokens.get(token) else {
        return Err(unauthorized(ctx, "the access token is unknown", true));
    };
    if t.revoked {
        return Err(unauthorized(ctx, "the access token was revoked", true));
    }
    if ctx.now >= t.expires {
        return Err(unauthorized(ctx, "the access token has expired", true));
    }
    if ctx.state.devices[t.device].key != device {
        if ctx.state.device_index(device).is_none() {
            return Err(error(ctx.rng, 404, 4004, &format!("no device {device}"), None));
        }
        return Err(error(ctx.rng, 403, 4003, "the access token belongs to another device", None));
    }
    if !t.scopes.contains(&scope) {
        return Err(error(ctx.rng, 403, 4003, &format!("the access token lacks the scope {scope}"), None));
    }
    Ok(t.device)
}
