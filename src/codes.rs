//! Realer's response codes (contract section 6): what an answer means for the client, and the error it
//! becomes. The HTTP status decides transport handling, the body's `code` application behaviour.

use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::transport::Answer;

/// What to do with an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Success,
    /// 401/4001: get a new token, then retry the call once.
    RenewToken,
    /// 429/4029, any 5xx: retry with backoff.
    Retry,
    /// Everything else: report, never retry.
    Fail,
}

/// The code an answer without a `code` stands for: 422 -> 4022, 503 -> 5003.
pub(crate) fn code_from_http(status: u16) -> i32 {
    let s = i32::from(status);
    (s / 100) * 1000 + s % 100
}

pub(crate) fn classify(http_status: u16, code: Option<i32>) -> Class {
    // Transport first: any 5xx is retryable, even an HTML page from a proxy.
    if http_status >= 500 {
        return Class::Retry;
    }
    if http_status == 429 {
        return Class::Retry;
    }
    if http_status == 401 {
        return Class::RenewToken;
    }
    if !(200..300).contains(&http_status) && !(400..500).contains(&http_status) {
        return Class::Fail;
    }
    match code.unwrap_or_else(|| code_from_http(http_status)) {
        4001 => Class::RenewToken,
        4029 => Class::Retry,
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

/// The answer's JSON body, when it has one.
pub(crate) fn json_body(answer: &Answer) -> Option<Value> {
    serde_json::from_slice(json_bytes(answer)?).ok()
}

/// Reads `code` as an integer (tolerating a digit string).
pub(crate) fn code_of(v: &Value) -> Option<i32> {
    code_value(v.get("code")?)
}

/// A `code` field's value as an integer (tolerating a digit string).
pub(crate) fn code_value(code: &Value) -> Option<i32> {
    match code {
        Value::Number(n) => n.as_i64().and_then(|c| i32::try_from(c).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The error a failed answer stands for, with everything the server said. `kind` is `Api` unless the caller
/// knows better (the token endpoint refusing credentials is `Auth`).
pub(crate) fn error_from_answer(answer: &Answer, kind: ErrorKind) -> Error {
    let json = json_body(answer);
    let code = json.as_ref().and_then(code_of);
    let class = classify(answer.status, code);
    let mut err = Error::new(kind, String::new());
    err.http_status = answer.status;
    err.code = code.unwrap_or_else(|| code_from_http(answer.status));
    err.retryable = class == Class::Retry;
    err.retry_after = answer.retry_after;
    err.request_id = answer.request_id.clone().unwrap_or_default();
    let mut message = None;
    if let Some(v) = &json {
        match v.get("error") {
            // Realer: {"error":{"type","message","details"}}
            Some(Value::Object(e)) => {
                err.error_type = e.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
                message = e.get("message").and_then(Value::as_str).map(str::to_string);
                err.details = e.get("details").filter(|d| !d.is_null()).cloned();
            }
            // RFC 6749 {"error":"invalid_client","error_description":…}, or Realer's legacy plain string.
            Some(Value::String(s)) => {
                err.error_type = s.clone();
                message = str_field(v, "error_description").map(str::to_string);
            }
            _ => {}
        }
        message = message.or_else(|| str_field(v, "message").map(str::to_string));
        if let Some(id) = str_field(v, "request_id") {
            err.request_id = id.to_string();
        }
    }
    let what = if err.error_type.is_empty() { String::new() } else { format!("{}: ", err.error_type) };
    err.message = match (message, &json) {
        (Some(m), _) => format!("server refused the request: {what}{m}"),
        (None, Some(_)) => format!("server refused the request: {what}HTTP {}", answer.status),
        (None, None) => format!("server answered HTTP {} without a JSON body", answer.status),
    };
    if let Some(d) = &err.details {
        err.message.push_str(&format!(" {d}"));
    }
    err
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
}
