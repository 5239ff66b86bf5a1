//! Realer's response codes (contract section 6): what an answer means for the client, and the error it
//! becomes. The HTTP status decides transport handling, the body's `code` application behaviour. Every table
//! of codes the client acts on is here: the classes of an answer, which refusals judged an item, and how a
//! batch request refused as a whole goes on.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::json::{ErrorField, Int, Text};
use crate::transport::Answer;

/// Success, when an answer has no `code` of its own (and the code of a stored item of a batch answer).
pub(crate) const OK: i32 = 2000;
/// A refusal without a code of its own (a rejected item of a batch answer that says only "rejected").
pub(crate) const BAD_REQUEST: i32 = 4000;
/// The token is not (or no longer) valid: renew it.
pub(crate) const UNAUTHORIZED: i32 = 4001;
/// The device's subscription is inactive.
pub(crate) const SUBSCRIPTION_INACTIVE: i32 = 4002;
/// Not allowed for this device or token.
pub(crate) const FORBIDDEN: i32 = 4003;
/// No such device, command or sensor.
pub(crate) const NOT_FOUND: i32 = 4004;
/// The body is too large (contract section 7.5): for an item, or for something on the path.
pub(crate) const TOO_LARGE: i32 = 4013;
/// Too many requests: retry after a while.
pub(crate) const RATE_LIMITED: i32 = 4029;

/// What to do with an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Success,
    /// 401/4001: get a new token, then retry the call (a 401 on a token's first use in this call ends it).
    RenewToken,
    /// 408, 425, 429/4029, any 5xx: retry with backoff.
    Retry,
    /// Everything else: report, never retry.
    Fail,
}

/// The code an answer without a `code` stands for: 422 -> 4022, 503 -> 5003.
pub(crate) fn code_from_http(status: u16) -> i32 {
    let s = i32::from(status);
    (s / 100) * 1000 + s % 100
}

/// The HTTP status a code stands for (4022 -> 422): how one item of a batch answer is judged, as a single
/// answer with that code would be. 400 for a code that maps to no status.
pub(crate) fn http_from_code(code: i32) -> u16 {
    u16::try_from(code / 1000 * 100 + code % 100).unwrap_or(400)
}

/// Whether a code says the request succeeded (2xxx).
pub(crate) fn is_success(code: i32) -> bool {
    (2000..3000).contains(&code)
}

pub(crate) fn classify(http_status: u16, code: Option<i32>) -> Class {
    // Transport first: any 5xx is retryable, even an HTML page from a proxy.
    if http_status >= 500 {
        return Class::Retry;
    }
    // 408 Request Timeout, 425 Too Early, 429 Too Many Requests: "try again", whoever says it.
    if matches!(http_status, 408 | 425 | 429) {
        return Class::Retry;
    }
    if http_status == 401 {
        return Class::RenewToken;
    }
    if !(200..300).contains(&http_status) && !(400..500).contains(&http_status) {
        return Class::Fail;
    }
    match code.unwrap_or_else(|| code_from_http(http_status)) {
        UNAUTHORIZED => Class::RenewToken,
        RATE_LIMITED => Class::Retry,
        2000..=2999 if (200..300).contains(&http_status) => Class::Success,
        5000..=5999 => Class::Retry,
        _ => Class::Fail,
    }
}

/// The answer's body when it looks like JSON: labelled as JSON, or starting with `{`.
pub(crate) fn json_bytes(answer: &Answer) -> Option<&[u8]> {
    let first = answer.body.iter().find(|b| !b.is_ascii_whitespace())?;
    (answer.is_json || *first == b'{').then_some(answer.body.as_slice())
}

/// The answer's JSON body as a tree, when it has one (only for the small token answer).
pub(crate) fn json_body(answer: &Answer) -> Option<Value> {
    serde_json::from_slice(json_bytes(answer)?).ok()
}

/// A `code` field's value as an integer (tolerating a digit string).
pub(crate) fn code_value(code: &Value) -> Option<i32> {
    match code {
        Value::Number(n) => n.as_i64().and_then(|c| i32::try_from(c).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// What an error answer (or one rejected item of a batch) says, read without a tree.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Refusal<'a> {
    #[serde(default)]
    pub code: Int,
    #[serde(borrow, default)]
    pub error: ErrorField<'a>,
    #[serde(borrow, default)]
    pub error_description: Text<'a>,
    #[serde(borrow, default)]
    pub message: Text<'a>,
    #[serde(borrow, default)]
    pub request_id: Text<'a>,
}

impl Refusal<'_> {
    pub(crate) fn code(&self) -> Option<i32> {
        self.code.0.and_then(|c| i32::try_from(c).ok())
    }
}

/// The error a failed answer stands for, with everything the server said. `kind` is `Api` unless the caller
/// knows better (the token endpoint refusing credentials is `Auth`).
pub(crate) fn error_from_answer(answer: &Answer, kind: ErrorKind) -> Error {
    let body = json_bytes(answer).and_then(|b| serde_json::from_slice::<Refusal<'_>>(b).ok());
    let mut err = error_from_refusal(answer.status, body.as_ref(), kind);
    if kind == ErrorKind::Api && !err.from_realer && (400..500).contains(&answer.status) {
        err.message.push_str(NOT_REALERS);
    }
    err.retry_after = answer.retry_after;
    if err.request_id.is_empty() {
        err.request_id = answer.request_id.clone().unwrap_or_default();
    }
    err
}

/// The error a refusal stands for: an answer's body (`None`: not JSON), or one item's result in a batch.
/// `from_realer` says whether the body carried a numeric `code`.
pub(crate) fn error_from_refusal(http_status: u16, body: Option<&Refusal<'_>>, kind: ErrorKind) -> Error {
    let code = body.and_then(Refusal::code);
    let class = classify(http_status, code);
    let mut err = Error::new(kind, String::new());
    err.http_status = http_status;
    err.code = code.unwrap_or_else(|| code_from_http(http_status));
    err.retryable = class == Class::Retry;
    err.from_realer = code.is_some();
    let mut message = None;
    if let Some(v) = body {
        let e = &v.error;
        if e.error_type.is_some() || e.message.is_some() || e.details.is_some() {
            // Realer: {"error":{"type","message","details"}}
            err.error_type = e.error_type.as_deref().unwrap_or_default().to_string();
            message = e.message.as_deref().filter(|m| !m.is_empty()).map(str::to_string);
            err.details = e.details.and_then(|d| serde_json::from_str(d.get()).ok());
        } else if let Some(plain) = &e.plain {
            // RFC 6749 {"error":"invalid_client","error_description":…}, or Realer's legacy plain string.
            err.error_type = plain.to_string();
            message = v.error_description.as_str().filter(|m| !m.is_empty()).map(str::to_string);
        }
        message = message.or_else(|| v.message.as_str().filter(|m| !m.is_empty()).map(str::to_string));
        if let Some(id) = v.request_id.as_str().filter(|id| !id.is_empty()) {
            err.request_id = id.to_string();
        }
    }
    let what = if err.error_type.is_empty() { String::new() } else { format!("{}: ", err.error_type) };
    err.message = match (message, body) {
        (Some(m), _) => format!("server refused the request: {what}{m}"),
        (None, Some(_)) => format!("server refused the request: {what}HTTP {http_status}"),
        (None, None) => format!("server answered HTTP {http_status} without a JSON body"),
    };
    if let Some(d) = &err.details {
        err.message.push_str(&format!(" {d}"));
    }
    err
}

/// Whether a refusal from the token endpoint is the authorization server's (contract section 2): RFC 6749's
/// JSON (`{"error":"invalid_client",…}`) or Realer's (a numeric `code`). Another answer there (a firewall's HTML
/// page, a gateway's empty 400 or 401) came from the path and judged no credentials.
pub(crate) fn is_authorization_refusal(answer: &Answer) -> bool {
    json_bytes(answer)
        .and_then(|b| serde_json::from_slice::<Refusal<'_>>(b).ok())
        .is_some_and(|r| r.code().is_some() || r.error.present)
}

/// Said of a 4xx without Realer's JSON code (contract section 6).
const NOT_REALERS: &str =
    " (not Realer's answer: no JSON with a numeric code; a proxy, gateway or captive portal?): it judged nothing";

/// The error a 2xx answer stands for when its body is not Realer's JSON (empty, an HTML page, a gateway's own
/// JSON): it confirms nothing (contract sections 5 and 7.5).
pub(crate) fn not_realers_success(answer: &Answer) -> Error {
    let what =
        if answer.body.iter().all(u8::is_ascii_whitespace) { "no body" } else { "a body that is not Realer's JSON" };
    let mut err = Error::protocol(format!(
        "HTTP {} with {what} (a gateway's or proxy's answer?): it confirms nothing",
        answer.status
    ));
    err.http_status = answer.status;
    err.request_id = answer.request_id.clone().unwrap_or_default();
    err
}

/// Whether an error is a 2xx answer without Realer's body (see [`not_realers_success`]).
pub(crate) fn is_unconfirmed_success(e: &Error) -> bool {
    e.kind == ErrorKind::Protocol && (200..300).contains(&e.http_status)
}

/// Whether a failure judged the item itself, so that sending it again unchanged is pointless (contract
/// section 7.5): a conflict, a validation failure, an item over the byte budget, or another 4xxx code, in
/// Realer's own answer. A request refused as a whole (a token refused after renewal, 402, 403, 404, 429,
/// 5xx), any answer without Realer's JSON code (a proxy's or gateway's page) and every failure without an
/// answer (network, timeout) leave the item unsent: it is sent again later with its `message_id`.
pub(crate) fn judges_the_item(e: &Error) -> bool {
    e.kind == ErrorKind::Api
        && e.from_realer
        && e.http_status != 0
        && !e.retryable
        && (4000..5000).contains(&e.code)
        && !matches!(e.code, UNAUTHORIZED | SUBSCRIPTION_INACTIVE | FORBIDDEN | NOT_FOUND | RATE_LIMITED)
}

/// Whether a failure is a 413, Realer's or the path's: too large, or a refusal, by the body's size.
pub(crate) fn is_too_large(e: &Error) -> bool {
    e.kind == ErrorKind::Api && e.code == TOO_LARGE
}

/// How a batch request that failed as a whole goes on (contract section 5).
pub(crate) enum BatchRefusal {
    /// 413, from Realer or the path: too large, or a refusal, by the body's size (`Client::batch_too_large`).
    TooLarge,
    /// The endpoint refused the request itself (400, 404, 405, 415, 422 without per-item results, another
    /// 4xxx of Realer's) or answered in a shape this client cannot read (a 2xx without Realer's body): send
    /// the items one by one.
    OneByOne,
    /// A refusal of the request that says nothing of the endpoint or the items (a token refused after
    /// renewal, 402, 403, 408, 425, 429/5xx after retries, another page of the path's own, network,
    /// timeout): the items stay unsent.
    Stop,
}

/// How a batch request that failed with `e` goes on.
pub(crate) fn batch_refusal(e: &Error) -> BatchRefusal {
    if is_unconfirmed_success(e) {
        return BatchRefusal::OneByOne;
    }
    if e.kind != ErrorKind::Api || e.retryable {
        return BatchRefusal::Stop;
    }
    if e.code == TOO_LARGE {
        return BatchRefusal::TooLarge;
    }
    if !e.from_realer {
        // A page of the path's own: only the statuses by which an endpoint refuses a request itself (a
        // gateway that does not route the batch path) send the items one by one, judged by their own answers.
        return match e.http_status {
            400 | 404 | 405 | 415 | 422 => BatchRefusal::OneByOne,
            _ => BatchRefusal::Stop,
        };
    }
    match e.code {
        UNAUTHORIZED | SUBSCRIPTION_INACTIVE | FORBIDDEN | RATE_LIMITED => BatchRefusal::Stop,
        4000..=4999 => BatchRefusal::OneByOne,
        _ => BatchRefusal::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            retry_after: None,
            request_id: None,
            is_json: body.starts_with('{'),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn classification_follows_the_contract() {
        assert_eq!(classify(200, Some(2000)), Class::Success);
        assert_eq!(classify(201, None), Class::Success);
        assert_eq!(classify(200, Some(2999)), Class::Success);
        assert_eq!(classify(401, Some(4001)), Class::RenewToken);
        assert_eq!(classify(429, Some(4029)), Class::Retry);
        assert_eq!(classify(429, None), Class::Retry);
        assert_eq!(classify(503, Some(5003)), Class::Retry);
        assert_eq!(classify(502, None), Class::Retry);
        assert_eq!(classify(500, Some(4000)), Class::Retry);
        for (status, code) in
            [(400, 4000), (402, 4002), (403, 4003), (404, 4004), (409, 4009), (413, 4013), (415, 4015), (422, 4022)]
        {
            assert_eq!(classify(status, Some(code)), Class::Fail, "{status}");
            assert_eq!(classify(status, None), Class::Fail, "{status} without code");
        }
        assert_eq!(classify(418, Some(4999)), Class::Fail);
        assert_eq!(classify(400, Some(5001)), Class::Retry, "unknown 5xxx codes are retryable");
        assert_eq!(classify(302, None), Class::Fail);
        // "Try again", whoever says it (a proxy's page, or Realer).
        for status in [408, 425] {
            assert_eq!(classify(status, None), Class::Retry, "{status}");
            assert_eq!(classify(status, Some(code_from_http(status))), Class::Retry, "{status}");
        }
        assert_eq!(code_from_http(422), 4022);
        assert_eq!(code_from_http(503), 5003);
    }

    #[test]
    fn realer_error_shape() {
        let a = answer(
            422,
            r#"{"code":4022,"error":{"type":"validation_failed","message":"feed data ingestion failed","details":{"sensor_id":["is invalid for this device"]}},"request_id":"req_1"}"#,
        );
        let e = error_from_answer(&a, ErrorKind::Api);
        assert_eq!(
            (e.code, e.http_status, e.error_type.as_str(), e.request_id.as_str()),
            (4022, 422, "validation_failed", "req_1")
        );
        assert_eq!(e.details_json(), r#"{"sensor_id":["is invalid for this device"]}"#);
        assert!(!e.retryable);
        assert!(e.message.contains("is invalid for this device"));
    }

    #[test]
    fn oauth_and_legacy_and_html_shapes() {
        let e = error_from_answer(
            &answer(401, r#"{"error":"invalid_client","error_description":"bad secret"}"#),
            ErrorKind::Auth,
        );
        assert_eq!((e.code, e.error_type.as_str()), (4001, "invalid_client"));
        assert!(e.message.contains("bad secret"));
        let e = error_from_answer(&answer(403, r#"{"code":4003,"error":"forbidden"}"#), ErrorKind::Api);
        assert_eq!(e.error_type, "forbidden");
        let e = error_from_answer(&answer(502, "<html><body>502 Bad Gateway</body></html>"), ErrorKind::Api);
        assert_eq!((e.code, e.retryable), (5002, true));
        assert!(e.message.contains("without a JSON body"));
    }

    #[test]
    fn a_2xx_without_realers_body_is_unconfirmed() {
        let e = not_realers_success(&answer(204, ""));
        assert!(is_unconfirmed_success(&e));
        assert_eq!((e.kind, e.http_status), (ErrorKind::Protocol, 204));
        assert!(e.message.contains("HTTP 204 with no body"), "{}", e.message);
        let e = not_realers_success(&answer(200, "<html>ok</html>"));
        assert!(e.message.contains("not Realer's JSON"), "{}", e.message);
        assert!(!is_unconfirmed_success(&Error::protocol("other")));
        assert!(!judges_the_item(&e));
    }

    #[test]
    fn refusals_of_the_request_are_not_rejections_of_the_item() {
        let judged =
            |status: u16, body: &str| judges_the_item(&error_from_answer(&answer(status, body), ErrorKind::Api));
        for (status, code) in [(409, 4009), (422, 4022), (413, 4013), (400, 4000), (415, 4015), (418, 4999)] {
            assert!(judged(status, &format!(r#"{{"code":{code}}}"#)), "{status}");
        }
        for (status, code) in [(401, 4001), (402, 4002), (403, 4003), (404, 4004), (429, 4029), (503, 5003)] {
            assert!(!judged(status, &format!(r#"{{"code":{code}}}"#)), "{status}");
            assert!(!judged(status, "<html>"), "{status} without JSON");
        }
        // Without Realer's JSON code, a 4xx came from the path (a proxy's page, an empty answer, a gateway's
        // own JSON) and judged nothing; a code as a digit string is tolerated as Realer's.
        for status in [400, 409, 413, 415, 422, 418, 499] {
            for body in ["<html><head><title>x</title></head></html>", "", r#"{"message":"Request Entity Too Large"}"#]
            {
                let e = error_from_answer(&answer(status, body), ErrorKind::Api);
                assert!(!e.from_realer && !judges_the_item(&e), "{status} {body:?}");
                assert!(e.message.contains("not Realer's answer"), "{}", e.message);
            }
        }
        assert!(judged(422, r#"{"code":"4022"}"#));
        assert!(error_from_answer(&answer(422, r#"{"code":4022}"#), ErrorKind::Api).from_realer);
        // The second label vocabulary changes nothing: decisions go by code.
        assert!(!judged(402, r#"{"code":4002,"error":{"type":"subscription_inactive","message":"x"}}"#));
        assert!(!judges_the_item(&Error::new(ErrorKind::Network, "reset")));
        assert!(!judges_the_item(&Error::new(ErrorKind::Timeout, "slow")));
    }
}
