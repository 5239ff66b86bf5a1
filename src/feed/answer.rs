//! What Realer answered about feed data (contract sections 4 and 5): the fate of each item, read from a
//! single answer or a batch answer without a tree.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::codes::{self, Refusal};
use crate::error::{Error, ErrorKind, Result};
use crate::json::{self, ErrorField, Int, Text};
use crate::transport::Answer;

/// What became of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedOutcome {
    /// Stored now.
    Created,
    /// Stored before under the same `message_id` and payload: a replay, counted as success.
    Idempotent,
    /// Realer judged the item and refused it for good (validation, conflict, over the byte budget), in its
    /// own JSON answer: do not resend unchanged.
    Rejected,
    /// Not known to be stored (never sent, no answer, a request refused as a whole, an answer that was not
    /// Realer's, a 2xx without Realer's body): send again with the same `message_id`.
    NotSent,
}

/// The fate of one item.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedResult {
    /// Stored, already stored, refused for good, or not known to be stored.
    pub outcome: FeedOutcome,
    /// Realer's id of the stored item, when its answer gave one.
    pub feed_data_id: Option<i64>,
    /// The HTTP status of the answer about this item, 0 when none arrived.
    pub http_status: u16,
    /// Realer's code (2000 on success), 0 when no answer arrived.
    pub code: i32,
    /// The `message_id` used (generated when the item had none): retry with it.
    pub message_id: String,
    /// The `value_received_at` sent (filled in when the item had none): a retry must send the same one, or
    /// Realer sees a different payload under the same `message_id` (409).
    pub value_received_at: String,
    /// Why it was rejected or not sent.
    pub error: Option<Error>,
    /// The answer's `warnings` as raw JSON, when Realer sent any (their contents are not documented).
    pub warnings_json: Option<String>,
}

impl FeedResult {
    pub(crate) fn not_sent(message_id: String, error: Error) -> FeedResult {
        FeedResult {
            outcome: FeedOutcome::NotSent,
            feed_data_id: None,
            http_status: error.http_status,
            code: error.code,
            message_id,
            value_received_at: String::new(),
            error: Some(error),
            warnings_json: None,
        }
    }

    /// The result an error gives this item: rejected only when Realer judged the item (contract section
    /// 7.5), else not sent (the request was refused as a whole, or no answer came).
    pub(crate) fn from_error(message_id: String, error: Error) -> FeedResult {
        let outcome = if codes::judges_the_item(&error) { FeedOutcome::Rejected } else { FeedOutcome::NotSent };
        FeedResult { outcome, ..FeedResult::not_sent(message_id, error) }
    }

    /// Whether Realer has the item (created now, or idempotent: stored before).
    pub fn is_accepted(&self) -> bool {
        matches!(self.outcome, FeedOutcome::Created | FeedOutcome::Idempotent)
    }
}

fn id_value(id: &Value) -> Option<i64> {
    match id {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// What the client reads of a single-item answer; other fields are skipped without being stored (this runs
/// for every reading). Each field takes any JSON type, and a repeated key keeps its last value, as reading
/// the answer into a `Value` would.
#[derive(Debug, Default)]
pub(crate) struct SingleAnswer {
    code: Option<Value>,
    status: Option<Value>,
    feed_data_id: Option<Value>,
    warnings: Option<Box<RawValue>>,
    /// Whether a `message_id` was there (its value is not needed: the client knows the one it sent).
    message_id: bool,
}

enum SingleField {
    Code,
    Status,
    FeedDataId,
    Warnings,
    MessageId,
    Other,
}

impl<'de> Deserialize<'de> for SingleField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<SingleField, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = SingleField;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<SingleField, E> {
                Ok(match s {
                    "code" => SingleField::Code,
                    "status" => SingleField::Status,
                    "feed_data_id" => SingleField::FeedDataId,
                    "warnings" => SingleField::Warnings,
                    "message_id" => SingleField::MessageId,
                    _ => SingleField::Other,
                })
            }
        }
        d.deserialize_identifier(Name)
    }
}

impl<'de> Deserialize<'de> for SingleAnswer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<SingleAnswer, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = SingleAnswer;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<SingleAnswer, A::Error> {
                let mut a = SingleAnswer::default();
                while let Some(field) = map.next_key()? {
                    match field {
                        SingleField::Code => a.code = Some(map.next_value()?),
                        SingleField::Status => a.status = Some(map.next_value()?),
                        SingleField::FeedDataId => a.feed_data_id = Some(map.next_value()?),
                        SingleField::Warnings => a.warnings = Some(map.next_value()?),
                        SingleField::MessageId => {
                            map.next_value::<IgnoredAny>()?;
                            a.message_id = true;
                        }
                        SingleField::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(a)
            }
        }
        d.deserialize_map(Fields)
    }
}

impl SingleAnswer {
    /// The answer and its `code`, when the body is Realer's: a JSON object with at least one of Realer's
    /// fields (`code`, `status`, `feed_data_id`, `message_id`; some pages show answers without `code`).
    /// Other JSON (an array, `{}`, a gateway's `{"message":"Accepted"}`) says nothing about the item: `None`,
    /// as for a body that is not JSON, so a 2xx with it confirms nothing. A 2xx confirms the item only with a
    /// readable `code`, a `status` of `created` or `idempotent`, or a `feed_data_id`: a gateway's
    /// `{"status":"queued"}` or `{"message_id":"…"}` is not Realer saying it stored the item.
    pub(crate) fn read(answer: &Answer) -> Option<(Option<i32>, SingleAnswer)> {
        let bytes = codes::json_bytes(answer)?;
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        let a: SingleAnswer = serde_json::from_slice(bytes).ok()?;
        if a.code.is_none() && a.status.is_none() && a.feed_data_id.is_none() && !a.message_id {
            return None;
        }
        let code = a.code.as_ref().and_then(codes::code_value);
        let stored = matches!(a.status.as_ref().and_then(Value::as_str), Some("created" | "idempotent"))
            || a.feed_data_id.as_ref().and_then(id_value).is_some();
        if (200..300).contains(&answer.status) && code.is_none() && !stored {
            return None;
        }
        Some((code, a))
    }
}

/// Reads a single-item answer (HTTP 2xx).
pub(crate) fn parse_single(http_status: u16, body: &SingleAnswer, message_id: String) -> FeedResult {
    let outcome = match body.status.as_ref().and_then(Value::as_str) {
        Some("idempotent") => FeedOutcome::Idempotent,
        _ => FeedOutcome::Created,
    };
    FeedResult {
        outcome,
        feed_data_id: body.feed_data_id.as_ref().and_then(id_value),
        http_status,
        code: body.code.as_ref().and_then(codes::code_value).unwrap_or(codes::OK),
        message_id,
        value_received_at: String::new(),
        error: None,
        warnings_json: warnings(body.warnings.as_deref()),
    }
}

/// `warnings` worth handing over: absent for null and for an empty list.
fn warnings(raw: Option<&RawValue>) -> Option<String> {
    let text = raw?.get();
    let empty = matches!(text.trim(), "null" | "[]")
        || text.trim().strip_prefix('[').and_then(|t| t.strip_suffix(']')).is_some_and(|t| t.trim().is_empty());
    (!empty).then(|| text.to_string())
}

/// One result of a batch answer, read without a tree.
#[derive(serde::Deserialize)]
struct BatchResult<'a> {
    #[serde(default)]
    index: Int,
    #[serde(borrow, default)]
    message_id: Text<'a>,
    #[serde(borrow, default)]
    status: Text<'a>,
    #[serde(default)]
    code: Int,
    #[serde(borrow, default)]
    feed_data_id: Text<'a>,
    #[serde(borrow, default)]
    error: ErrorField<'a>,
    #[serde(borrow, default)]
    warnings: Option<&'a RawValue>,
}

/// Reads a batch answer (contract section 5): one result per item, matched by `message_id`, falling back to
/// `index`. `None` for an item the answer says nothing readable about (no result, or a status this client
/// does not know): the caller sends it one by one. `Err` when the answer has no readable `results` list.
/// Results beyond the items sent are read and dropped, one at a time.
pub(crate) fn parse_batch(http_status: u16, body: &[u8], message_ids: &[String]) -> Result<Vec<Option<FeedResult>>> {
    let mut out: Vec<Option<FeedResult>> = vec![None; message_ids.len()];
    // Items a result was about, readable or not: a second result never takes an item over.
    let mut taken = vec![false; message_ids.len()];
    let mut pos = 0usize;
    let found = json::for_each_item(body, "results", None, json::BareArray::Accept, &mut |raw| {
        let at = pos;
        pos += 1;
        let Ok(r) = json::object::<BatchResult<'_>>(raw) else { return };
        let index = r.index.0.and_then(|i| usize::try_from(i).ok());
        let free = |i: usize| i < message_ids.len() && !taken[i];
        // A result that names its message_id is about an item sent under it, never another: the one at its
        // index when that is one (a message_id is scoped to its source, so two items of a batch may share it,
        // and results may come in any order), else the first such item not taken yet. A result without a
        // message_id falls back to its index, or its place in the list.
        let slot = match r.message_id.as_str() {
            Some(id) => index
                .filter(|&i| free(i) && message_ids[i] == id)
                .or_else(|| (0..message_ids.len()).find(|&i| free(i) && message_ids[i] == id)),
            None => Some(index.unwrap_or(at)).filter(|&i| free(i)),
        };
        let Some(slot) = slot else { return };
        taken[slot] = true;
        out[slot] = batch_result(http_status, &r, raw, message_ids[slot].clone());
    })
    .map_err(|e| Error::protocol(format!("the batch answer is not JSON: {e}")))?;
    if !found.found {
        return Err(Error::protocol("the batch answer has no \"results\" array"));
    }
    Ok(out)
}

fn batch_result(http_status: u16, r: &BatchResult<'_>, raw: &RawValue, message_id: String) -> Option<FeedResult> {
    let status = r.status.as_str();
    let code = r.code.0.and_then(|c| i32::try_from(c).ok());
    let feed_data_id = r.feed_data_id.as_str().and_then(|s| s.parse().ok());
    // Tolerated: a result without a status that carries a 2xxx code or a feed_data_id was stored.
    let stored = matches!(status, Some("created" | "idempotent"))
        || (status.is_none() && (code.is_some_and(codes::is_success) || feed_data_id.is_some()));
    if stored {
        return Some(FeedResult {
            outcome: if status == Some("idempotent") { FeedOutcome::Idempotent } else { FeedOutcome::Created },
            feed_data_id,
            http_status,
            code: codes::OK,
            message_id,
            value_received_at: String::new(),
            error: None,
            warnings_json: warnings(r.warnings),
        });
    }
    if status != Some("rejected") && code.is_none() && !r.error.present {
        // Neither accepted nor refused in a way this client knows.
        return None;
    }
    // Judged by its own code, as a single answer with that code would be.
    let refusal = json::object::<Refusal<'_>>(raw).unwrap_or_default();
    let code = code.unwrap_or(codes::BAD_REQUEST);
    let item_status = codes::http_from_code(code);
    let mut err = codes::error_from_refusal(item_status, Some(&refusal), ErrorKind::Api);
    err.http_status = http_status;
    // A result in a batch answer's `results` is Realer's word on that item, with or without its own code.
    err.from_realer = true;
    Some(FeedResult::from_error(message_id, err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(body: &str, is_json: bool) -> crate::transport::Answer {
        crate::transport::Answer {
            status: 201,
            retry_after: None,
            request_id: None,
            is_json,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn single_answers_are_read_as_tolerantly_as_values_would_be() {
        let read = |body: &str, is_json: bool| {
            SingleAnswer::read(&answer(body, is_json)).map(|(code, a)| (code, parse_single(201, &a, "m".into())))
        };
        let (code, r) = read(
            r#"{"code":2000,"status":"idempotent","feed_data_id":123,"message_id":"m","warnings":[{"x":1}],"n":null}"#,
            true,
        )
        .unwrap();
        assert_eq!((code, r.outcome, r.feed_data_id, r.code), (Some(2000), FeedOutcome::Idempotent, Some(123), 2000));
        // Digit strings for numbers; an unknown status is a creation; any JSON type in any field.
        let (code, r) = read(r#" {"code":"2001","status":"created","feed_data_id":"9"}"#, false).unwrap();
        assert_eq!((code, r.outcome, r.feed_data_id, r.code), (Some(2001), FeedOutcome::Created, Some(9), 2001));
        let (code, r) = read(r#"{"status":"created","feed_data_id":null}"#, true).unwrap();
        assert_eq!((code, r.outcome, r.feed_data_id, r.code), (None, FeedOutcome::Created, None, 2000));
        // A 2xx that says nothing of the item being stored confirms nothing: no readable code, no status
        // created or idempotent, no feed_data_id (a gateway's own JSON).
        assert!(read(r#"{"code":[1],"status":{"a":1},"feed_data_id":null}"#, true).is_none());
        assert!(read(r#"{"status":"queued"}"#, true).is_none());
        assert!(read(r#"{"status":"error","message":"maintenance"}"#, true).is_none());
        // Not JSON.
        assert!(read("<html>502</html>", false).is_none());
        assert!(read("", true).is_none());
        // A repeated key keeps its last value.
        let (code, r) = read(r#"{"code":4022,"status":"x","code":2000,"status":"idempotent"}"#, true).unwrap();
        assert_eq!((code, r.outcome, r.code), (Some(2000), FeedOutcome::Idempotent, 2000));
        // Other JSON, or an object without any of Realer's fields: not Realer's answer, it confirms nothing.
        assert!(read("[1,2]", true).is_none());
        assert!(read("{}", true).is_none());
        assert!(read(r#"{"message":"Accepted"}"#, true).is_none());
        assert!(read(r#"{"message_id":"m"}"#, true).is_none());
        let (code, r) = read(r#"{"feed_data_id":7}"#, true).unwrap();
        assert_eq!((code, r.outcome, r.feed_data_id), (None, FeedOutcome::Created, Some(7)));
    }

    #[test]
    fn batch_answers_match_by_message_id_then_index() {
        let ids: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let parse = |body: Value| parse_batch(200, body.to_string().as_bytes(), &ids);
        let body = json!({"code":2000,"status":"partial","results":[
            {"index":1,"message_id":"b","status":"idempotent","feed_data_id":5,"warnings":[{"w":1}]},
            {"index":0,"message_id":"a","status":"created","feed_data_id":"6"},
            {"index":2,"status":"rejected","code":4022,"error":{"type":"validation_failed","message":"bad","details":{"value":["x"]}}},
            {"index":7,"message_id":"zz","status":"created"}
        ]});
        let r = parse(body).unwrap();
        let r: Vec<&FeedResult> = r.iter().take(3).map(|r| r.as_ref().unwrap()).collect();
        assert_eq!((r[0].outcome, r[0].feed_data_id), (FeedOutcome::Created, Some(6)));
        assert_eq!((r[1].outcome, r[1].feed_data_id), (FeedOutcome::Idempotent, Some(5)));
        assert_eq!(r[1].warnings_json.as_deref(), Some(r#"[{"w":1}]"#));
        assert_eq!((r[2].outcome, r[2].code), (FeedOutcome::Rejected, 4022));
        assert_eq!(r[2].error.as_ref().unwrap().details_json(), r#"{"value":["x"]}"#);
        assert!(parse(json!({"code":2000,"status":"completed"})).is_err());
        assert!(parse_batch(200, b"<html>", &ids).is_err());
        // Tolerated shapes: no status but a 2xxx code or a feed_data_id. An unknown status, or no result:
        // nothing known (the caller sends those items one by one). A refusal of the request inside a result
        // (402) leaves the item unsent.
        let body = json!({"results":[{"message_id":"a","code":2000},{"message_id":"b","feed_data_id":9},
                                     {"message_id":"c","status":"queued"},{"message_id":"d","status":"rejected","code":4002}]});
        let r = parse(body).unwrap();
        let outcomes: Vec<Option<FeedOutcome>> = r.iter().map(|r| r.as_ref().map(|r| r.outcome)).collect();
        assert_eq!(
            outcomes,
            [Some(FeedOutcome::Created), Some(FeedOutcome::Created), None, Some(FeedOutcome::NotSent)]
        );
        let r = parse(json!({"results":[{"message_id":"a","status":"rejected"}]})).unwrap();
        assert_eq!((r[0].as_ref().unwrap().outcome, r[1].is_none()), (FeedOutcome::Rejected, true));
        // A result naming a message_id settles only that item: an id never sent, or one already settled, says
        // nothing of the item at its index.
        let body = json!({"results":[{"index":1,"message_id":"zz","status":"created"},
                                     {"index":0,"message_id":"a","status":"created"},
                                     {"index":2,"message_id":"a","status":"created"}]});
        let r = parse(body).unwrap();
        assert!(
            r[0].is_some() && r[1].is_none() && r[2].is_none(),
            "{:?}",
            r.iter().map(Option::is_some).collect::<Vec<_>>()
        );
        // One message_id for two items (two sources): the index tells them apart, in any order; a result this
        // client cannot read still takes its item, so a later one for the same id does not land on it.
        let ids: Vec<String> = ["m", "m", "x"].iter().map(|s| s.to_string()).collect();
        let body = json!({"results":[{"index":1,"message_id":"m","status":"rejected","code":4022},
                                     {"index":0,"message_id":"m","status":"created","feed_data_id":8}]});
        let r = parse_batch(200, body.to_string().as_bytes(), &ids).unwrap();
        let outcomes: Vec<Option<FeedOutcome>> = r.iter().map(|r| r.as_ref().map(|r| r.outcome)).collect();
        assert_eq!(outcomes, [Some(FeedOutcome::Created), Some(FeedOutcome::Rejected), None]);
        let body = json!({"results":[{"message_id":"m","status":"queued"},{"message_id":"m","status":"created"}]});
        let r = parse_batch(200, body.to_string().as_bytes(), &ids).unwrap();
        let outcomes: Vec<Option<FeedOutcome>> = r.iter().map(|r| r.as_ref().map(|r| r.outcome)).collect();
        assert_eq!(outcomes, [None, Some(FeedOutcome::Created), None]);
    }
}
