//! OAuth 2.0 client credentials (`/oauth/token`) and revocation (`/oauth/revoke`), contract section 2:
//! form bodies, HTTP Basic client authentication only, RFC 6749 error bodies.

use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

use crate::api::{rate_limited, request_id, Ctx};
use crate::budget;
use crate::encoding::{base64_decode, form_decode, parse_form, random_hex};
use crate::http::{Request, Response};
use crate::state::{Token, SCOPES};

/// An RFC 6749 section 5.2 error answer.
fn oauth_error(ctx: &Ctx<'_>, status: u16, error: &str, description: &str) -> Response {
    let resp = Response::json(status, &json!({"error": error, "error_description": description}))
        .with_header("X-Request-Id", request_id(ctx.rng))
        .with_header("Cache-Control", "no-store")
        .with_header("Pragma", "no-cache");
    if status == 401 {
        resp.with_header("WWW-Authenticate", r#"Basic realm="realer""#)
    } else {
        resp
    }
}

fn invalid_request(ctx: &Ctx<'_>, description: &str) -> Response {
    oauth_error(ctx, 400, "invalid_request", description)
}

/// The form parameters, after the checks both endpoints share: content type, encoding, repeated parameters,
/// and client credentials in the body (only HTTP Basic is accepted).
/// Parameters with an empty value count as omitted (RFC 6749 section 3.1).
fn form(ctx: &Ctx<'_>, req: &Request) -> Result<Vec<(String, String)>, Response> {
    if req.media_type().as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(invalid_request(ctx, "Content-Type must be application/x-www-form-urlencoded"));
    }
    let body = std::str::from_utf8(&req.body).map_err(|_| invalid_request(ctx, "the body is not UTF-8"))?;
    let pairs = parse_form(body).ok_or_else(|| invalid_request(ctx, "the form body is malformed"))?;
    let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let mut seen = HashSet::new();
    for (name, _) in &pairs {
        if !seen.insert(name.as_str()) {
            return Err(invalid_request(ctx, &format!("parameter {name} is repeated")));
        }
    }
    if seen.contains("client_id") || seen.contains("client_secret") {
        return Err(invalid_request(
            ctx,
            "client credentials go in the Authorization header (HTTP Basic), not in the body",
        ));
    }
    Ok(pairs)
}

fn param<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The index of the device whose client credentials the `Authorization: Basic` header carries.
fn client(ctx: &Ctx<'_>, req: &Request) -> Result<usize, Response> {
    let invalid = |d: &str| oauth_error(ctx, 401, "invalid_client", d);
    let Some(credentials) = req.authorization("Basic") else {
        return Err(invalid("client authentication with HTTP Basic is required"));
    };
    let decoded = base64_decode(credentials)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid("the Basic credentials are not valid base64"))?;
    let (id, secret) =
        decoded.split_once(':').ok_or_else(|| invalid("the Basic credentials are not client_id:client_secret"))?;
    // RFC 6749 section 2.3.1 form-encodes both parts before base64; most clients (curl -u) do not.
    let (decoded_id, decoded_secret) = (form_decode(id), form_decode(secret));
    let matches = |d: &crate::state::Device| {
        (d.client_id == id && d.client_secret == secret)
            || (decoded_id.as_deref() == Some(d.client_id.as_str())
                && decoded_secret.as_deref() == Some(d.client_secret.as_str()))
    };
    ctx.state.devices.iter().position(matches).ok_or_else(|| invalid("unknown client or wrong secret"))
}

pub(crate) fn token(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let pairs = match form(ctx, req) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let device = match client(ctx, req) {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    // The token endpoint's own budget, per client (the device budget counts iot/v1 requests only). Realer's
    // error shape, which the contract asks clients to tolerate here.
    if let Some(per_minute) = ctx.state.settings.token_requests_per_minute {
        if let Err(retry_after) = budget::take(&mut ctx.state.devices[device].token_budget, per_minute, ctx.now) {
            return rate_limited(ctx.rng, &format!("at most {per_minute} token requests per minute"), retry_after)
                .with_header("Cache-Control", "no-store");
        }
    }
    match param(&pairs, "grant_type") {
        None => return invalid_request(ctx, "grant_type is required"),
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                ctx,
                400,
                "unsupported_grant_type",
                &format!("grant_type {other} is not supported; use client_credentials"),
            )
        }
    }
    let scopes: Vec<&'static str> = match param(&pairs, "scope") {
        None => ctx.state.flavour.default_scopes(),
        Some(scope) => {
            let asked: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
            if let Some(unknown) = asked.iter().find(|s| !SCOPES.contains(s)) {
                return oauth_error(ctx, 400, "invalid_scope", &format!("unknown scope {unknown}"));
            }
            if asked.is_empty() {
                ctx.state.flavour.default_scopes()
            } else {
                SCOPES.iter().copied().filter(|s| asked.contains(s)).collect()
            }
        }
    };
    let access_token = random_hex(ctx.rng, 15);
    ctx.state.tokens.insert(
        access_token.clone(),
        Token {
            device,
            scopes: scopes.clone(),
            expires: ctx.now + Duration::from_secs(ctx.token_ttl_secs),
            revoked: false,
        },
    );
    ctx.state.tokens_issued += 1;
    Response::json(
        200,
        &json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ctx.token_ttl_secs,
            "renew_after": ctx.renew_after_secs,
            "scope": scopes.join(" "),
        }),
    )
    .with_header("X-Request-Id", request_id(ctx.rng))
    .with_header("Cache-Control", "no-store")
    .with_header("Pragma", "no-cache")
}

/// RFC 7009: an unknown token is answered as revoked; a token of another client is refused.
pub(crate) fn revoke(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let pairs = match form(ctx, req) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let device = match client(ctx, req) {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    let Some(token) = param(&pairs, "token") else {
        return invalid_request(ctx, "token is required");
    };
    if let Some(t) = ctx.state.tokens.get_mut(token) {
        if t.device != device {
            return invalid_request(ctx, "the token was issued to another client");
        }
        t.revoked = true;
    }
    Response::json(200, &json!({"revoked": true}))
        .with_header("X-Request-Id", request_id(ctx.rng))
        .with_header("Cache-Control", "no-store")
}
