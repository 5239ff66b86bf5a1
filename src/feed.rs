//! Feed data (contract sections 4 and 5): an item is checked against the contract before any I/O, gets its
//! `message_id` (the idempotency key that stays the same through every retry) and its JSON form.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::codes::{self, Refusal};
use crate::config::check_id;
use crate::error::{Error, ErrorKind, Result};
use crate::json::{self, ErrorField, Int, Text};
use crate::limits::{MAX_DESIRED_ID_LEN, MAX_MESSAGE_ID_LEN, MAX_VALUE_BYTES};
use crate::random::random_u64;
use crate::time;
use crate::transport::Answer;

/// `report_status` of a command report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReportStatus {
    /// Omitted: `applied` is implied with a `desired_id`; nothing without.
    #[default]
    None,
    Applied,
    Rejected,
    Stale,
    /// Only for a local physical change (no `desired_id`).
    Reported,
}

impl ReportStatus {
    fn as_str(self) -> Option<&'static str> {
        match self {
            ReportStatus::None => None,
            ReportStatus::Applied => Some("applied"),
            ReportStatus::Rejected => Some("rejected"),
            ReportStatus::Stale => Some("stale"),
            ReportStatus::Reported => Some("reported"),
        }
    }
}

/// One command acknowledgement or sensor reading.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedItem {
    pub sensor_id: Option<String>,
    pub command_id: Option<String>,
    /// The raw value, sent as a JSON string ("21.4").
    pub value: Option<String>,
    /// RFC 3339 UTC; `None` = now.
    pub value_received_at: Option<String>,
    /// `None` = generated.
    pub message_id: Option<String>,
    pub desired_id: Option<String>,
    pub report_status: ReportStatus,
    pub sequence_number: Option<i64>,
}

/// An item that passed the contract's checks, ready for the wire.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Prepared {
    /// `sensor:ID` or `command:ID`: Realer scopes a `message_id` to the device and this source.
    pub source: String,
    pub message_id: String,
    pub value_received_at: String,
    /// The item as JSON text, exactly as sent (and as stored in the outbox).
    pub body: String,
    pub command_id: Option<String>,
    /// The desired state this item answers (with `sequence_number`, remembered once the answer is through).
    pub desired_id: Option<String>,
    pub sequence_number: Option<i64>,
}

/// A fresh `message_id`: time-ordered and random, 33 printable characters.
pub fn generate_message_id() -> String {
    format!("rl-{:012x}-{:016x}", time::now_unix_ms().max(0), random_u64())
}

/// Checks a caller's `message_id`: 1 to 128 printable ASCII characters, no spaces.
pub fn check_message_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() || id.len() > MAX_MESSAGE_ID_LEN {
        return Err(format!("message_id must be 1 to {MAX_MESSAGE_ID_LEN} characters (got {})", id.len()));
    }
    if id.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    if let Some(c) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("message_id contains {c:?}: only printable ASCII without spaces is allowed"));
    }
    Ok(())
}

/// Ids go out as JSON numbers when they are made only of digits (the v1 API's integers), else as strings.
fn id_number(id: &str) -> Option<u64> {
    id.bytes().all(|b| b.is_ascii_digit()).then(|| id.parse().ok()).flatten()
}

impl FeedItem {
    pub fn sensor(sensor_id: &str, value: &str) -> FeedItem {
        FeedItem { sensor_id: Some(sensor_id.into()), value: Some(value.into()), ..FeedItem::default() }
    }

    pub fn command(command_id: &str, value: &str) -> FeedItem {
        FeedItem { command_id: Some(command_id.into()), value: Some(value.into()), ..FeedItem::default() }
    }

    /// Checks the item against the contract and builds its wire form. The error names the field.
    pub(crate) fn prepare(&self, now_unix_ms: i64) -> Result<Prepared> {
        self.borrowed().prepare(now_unix_ms)
    }

    pub(crate) fn borrowed(&self) -> ItemRef<'_> {
        ItemRef {
            sensor_id: self.sensor_id.as_deref(),
            command_id: self.command_id.as_deref(),
            value: self.value.as_deref(),
            value_received_at: self.value_received_at.as_deref(),
            message_id: self.message_id.as_deref(),
            desired_id: self.desired_id.as_deref(),
            report_status: self.report_status,
            sequence_number: self.sequence_number,
        }
    }
}

/// A [`FeedItem`] whose strings are borrowed: the C ABI's one-item calls check and send an item without
/// copying its strings first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ItemRef<'a> {
    pub sensor_id: Option<&'a str>,
    pub command_id: Option<&'a str>,
    pub value: Option<&'a str>,
    pub value_received_at: Option<&'a str>,
    pub message_id: Option<&'a str>,
    pub desired_id: Option<&'a str>,
    pub report_status: ReportStatus,
    pub sequence_number: Option<i64>,
}

impl ItemRef<'_> {
    pub(crate) fn to_owned(self) -> FeedItem {
        FeedItem {
            sensor_id: self.sensor_id.map(str::to_string),
            command_id: self.command_id.map(str::to_string),
            value: self.value.map(str::to_string),
            value_received_at: self.value_received_at.map(str::to_string),
            message_id: self.message_id.map(str::to_string),
            desired_id: self.desired_id.map(str::to_string),
            report_status: self.report_status,
            sequence_number: self.sequence_number,
        }
    }

    /// See [`FeedItem::prepare`].
    pub(crate) fn prepare(&self, now_unix_ms: i64) -> Result<Prepared> {
        let bad = |field: &str, why: &str| Error::invalid(format!("feed item {field}: {why}"));
        let (key, id) = match (self.sensor_id, self.command_id) {
            (Some(s), None) => ("sensor_id", s),
            (None, Some(c)) => ("command_id", c),
            (Some(_), Some(_)) => {
                return Err(bad("sensor_id/command_id", "exactly one of the two must be set, not both"))
            }
            (None, None) => return Err(bad("sensor_id/command_id", "exactly one of the two must be set")),
        };
        check_id(key, id).map_err(|e| bad(key, &e))?;
        let value = self.value.ok_or_else(|| bad("value", "is required"))?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(bad("value", &format!("is longer than {MAX_VALUE_BYTES} bytes")));
        }
        let at = match self.value_received_at {
            Some(at) => {
                time::parse_rfc3339_utc_ms(at).map_err(|e| bad("value_received_at", e))?;
                at.to_string()
            }
            None => time::format_rfc3339_ms(now_unix_ms)
                .ok_or_else(|| bad("value_received_at", "the clock is outside years 0-9999"))?,
        };
        let message_id = match self.message_id {
            Some(id) => {
                check_message_id(id).map_err(|e| bad("message_id", &e))?;
                id.to_string()
            }
            None => generate_message_id(),
        };
        let is_command = key == "command_id";
        if let Some(d) = self.desired_id {
            if !is_command {
                return Err(bad("desired_id", "is only for command reports"));
            }
            if d.is_empty() || d.len() > MAX_DESIRED_ID_LEN || !d.chars().all(|c| c.is_ascii_graphic()) {
                return Err(bad(
                    "desired_id",
                    &format!("must be 1 to {MAX_DESIRED_ID_LEN} printable ASCII characters"),
                ));
            }
        }
        let report_status = match (self.report_status, is_command, self.desired_id.is_some()) {
            (ReportStatus::None, _, _) => None,
            (_, false, _) => return Err(bad("report_status", "is never sent with a sensor reading")),
            (ReportStatus::Reported, true, true) => {
                return Err(bad("report_status", "with a desired_id must be applied, rejected or stale"))
            }
            (ReportStatus::Applied | ReportStatus::Rejected | ReportStatus::Stale, true, false) => {
                return Err(bad("report_status", "without a desired_id (a local physical change) may only be reported"))
            }
            (s, true, _) => s.as_str(),
        };
        // Metadata the docs tie to no other field (contract section 4): accepted without a desired_id.
        if self.sequence_number.is_some_and(|seq| seq < 0) {
            return Err(bad("sequence_number", "must not be negative"));
        }

        // Written by hand rather than through serde_json's Value: this runs for every reading.
        let mut body = JsonObject::with_capacity(96 + value.len() + message_id.len());
        match id_number(id) {
            Some(n) => body.number(key, n),
            None => body.string(key, id),
        }
        body.string("value", value);
        body.string("value_received_at", &at);
        body.string("message_id", &message_id);
        if let Some(d) = &self.desired_id {
            body.string("desired_id", d);
        }
        if let Some(s) = report_status {
            body.string("report_status", s);
        }
        if let Some(seq) = self.sequence_number {
            body.number("sequence_number", seq as u64);
        }
        Ok(Prepared {
            source: [if is_command { "command:" } else { "sensor:" }, id].concat(),
            message_id,
            value_received_at: at,
            body: body.finish(),
            command_id: self.command_id.map(str::to_string),
            desired_id: self.desired_id.map(str::to_string),
            sequence_number: self.sequence_number,
        })
    }
}

/// Writes the batch request body `{"items":[…]}` around items already in their wire form.
pub(crate) fn write_items_envelope(out: &mut String, items: &[Prepared]) {
    out.push_str("{\"items\":[");
    for (i, p) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&p.body);
    }
    out.push_str("]}");
}

/// A JSON object written field by field.
struct JsonObject(String);

impl JsonObject {
    fn with_capacity(n: usize) -> JsonObject {
        let mut s = String::with_capacity(n);
        s.push('{');
        JsonObject(s)
    }

    /// `key` is one of this file's field names, which need no escaping.
    fn key(&mut self, key: &'static str) {
        debug_assert!(key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(key);
        self.0.push_str("\":");
    }

    fn string(&mut self, key: &'static str, value: &str) {
        self.key(key);
        push_json_string(&mut self.0, value);
    }

    fn number(&mut self, key: &'static str, value: u64) {
        self.key(key);
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut v = value;
        loop {
            at -= 1;
            digits[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.0.extend(digits[at..].iter().map(|&d| char::from(d)));
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// Appends `s` as a JSON string literal (RFC 8259 escaping).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    // Most values need no escaping: one scan, one copy.
    let Some(first) = s.bytes().position(|b| b < 0x20 || b == b'"' || b == b'\\') else {
        out.push_str(s);
        out.push('"');
        return;
    };
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate().skip(first) {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        if escaped.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escaped);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// What became of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedOutcome {
    /// Stored now.
    Created,
    /// Stored before under the same `message_id` and payload: a replay, counted as success.
    Idempotent,
    /// Refused for good (validation, conflict, permission): do not resend unchanged.
    Rejected,
    /// Not known to be stored (never sent, or no answer): send again with the same `message_id`.
    NotSent,
}

/// The fate of one item.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedResult {
    pub outcome: FeedOutcome,
    pub feed_data_id: Option<i64>,
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
}

enum SingleField {
    Code,
    Status,
    FeedDataId,
    Warnings,
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
    /// The answer and its `code`, when the body is a JSON object.
    pub(crate) fn read(answer: &Answer) -> Option<(Option<i32>, SingleAnswer)> {
        let bytes = codes::json_bytes(answer)?;
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            // Other JSON (an array, a number) has none of these fields.
            serde_json::from_slice::<IgnoredAny>(bytes).ok()?;
            return Some((None, SingleAnswer::default()));
        }
        let a: SingleAnswer = serde_json::from_slice(bytes).ok()?;
        Some((a.code.as_ref().and_then(codes::code_value), a))
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
        code: body.code.as_ref().and_then(codes::code_value).unwrap_or(2000),
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
    let mut pos = 0usize;
    let found = json::for_each_item(body, "results", None, &mut |raw| {
        let at = pos;
        pos += 1;
        let Ok(r) = json::object::<BatchResult<'_>>(raw) else { return };
        let by_id = r.message_id.as_str().and_then(|id| {
            // Duplicate ids in one batch: take the first slot not yet filled.
            (0..message_ids.len()).find(|&i| message_ids[i] == id && out[i].is_none())
        });
        let index = r.index.0.and_then(|i| usize::try_from(i).ok()).unwrap_or(at);
        let Some(slot) = by_id.or((index < message_ids.len() && out[index].is_none()).then_some(index)) else {
            return;
        };
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
        || (status.is_none() && (code.is_some_and(|c| (2000..3000).contains(&c)) || feed_data_id.is_some()));
    if stored {
        return Some(FeedResult {
            outcome: if status == Some("idempotent") { FeedOutcome::Idempotent } else { FeedOutcome::Created },
            feed_data_id,
            http_status,
            code: 2000,
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
    let code = code.unwrap_or(4000);
    let item_status = u16::try_from(code / 1000 * 100 + code % 100).unwrap_or(400);
    let mut err = codes::error_from_refusal(item_status, Some(&refusal), ErrorKind::Api);
    err.http_status = http_status;
    Some(FeedResult::from_error(message_id, err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_form_follows_the_contract() {
        let item = FeedItem {
            value_received_at: Some("2026-04-24T10:15:00Z".into()),
            message_id: Some("sensor-7-20260424T101500Z".into()),
            ..FeedItem::sensor("7", "21.4")
        };
        let p = item.prepare(0).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&p.body).unwrap(),
            json!({"sensor_id":7,"value":"21.4","value_received_at":"2026-04-24T10:15:00Z","message_id":"sensor-7-20260424T101500Z"})
        );
        let p = FeedItem {
            desired_id: Some("des_1".into()),
            report_status: ReportStatus::Applied,
            sequence_number: Some(3),
            ..FeedItem::command("cmd_x", "1.0")
        }
        .prepare(1_777_025_700_000)
        .unwrap();
        let json: Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(json["command_id"], json!("cmd_x"));
        assert_eq!(p.source, "command:cmd_x");
        assert_eq!(json["value_received_at"], json!("2026-04-24T10:15:00.000Z"));
        assert_eq!(json["report_status"], json!("applied"));
        assert_eq!(json["sequence_number"], json!(3));
        assert!(p.message_id.starts_with("rl-"));
        check_message_id(&p.message_id).unwrap();
    }

    #[test]
    fn json_strings_are_escaped() {
        for v in [
            "plain",
            "",
            "quo\"te",
            "back\\slash",
            "nl\n tab\t cr\r",
            "\u{1}\u{1f}",
            "é ✓ 𝄞",
            "\u{7f}",
            "a long plain prefix, then \"two\" escapes\\ and a tail",
            "\"",
        ] {
            let mut out = String::new();
            push_json_string(&mut out, v);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), v, "{out}");
        }
        let p = FeedItem { message_id: Some("m".into()), ..FeedItem::sensor("007", "a\"b") }.prepare(0).unwrap();
        let json: Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!((json["sensor_id"].as_u64(), json["value"].as_str()), (Some(7), Some("a\"b")));
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0u64, 7, 10, 999, 1_000_000, u64::MAX] {
            let mut o = JsonObject::with_capacity(8);
            o.number("sequence_number", n);
            let json: Value = serde_json::from_str(&o.finish()).unwrap();
            assert_eq!(json["sequence_number"].as_u64(), Some(n));
        }
    }

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
        let (code, r) = read(r#"{"code":[1],"status":{"a":1},"feed_data_id":null}"#, true).unwrap();
        assert_eq!((code, r.outcome, r.feed_data_id, r.code), (None, FeedOutcome::Created, None, 2000));
        // Not JSON.
        assert!(read("<html>502</html>", false).is_none());
        assert!(read("", true).is_none());
        // A repeated key keeps its last value.
        let (code, r) = read(r#"{"code":4022,"status":"x","code":2000,"status":"idempotent"}"#, true).unwrap();
        assert_eq!((code, r.outcome, r.code), (Some(2000), FeedOutcome::Idempotent, 2000));
        // Other JSON: none of the fields, as a `Value` would have it.
        let (code, r) = read("[1,2]", true).unwrap();
        assert_eq!((code, r.outcome, r.feed_data_id, r.code), (None, FeedOutcome::Created, None, 2000));
    }

    #[test]
    fn refuses_what_the_contract_refuses() {
        let cases: Vec<(FeedItem, &str)> = vec![
            (FeedItem { command_id: Some("1".into()), ..FeedItem::sensor("7", "1") }, "sensor_id/command_id"),
            (FeedItem { value: Some("1".into()), ..FeedItem::default() }, "sensor_id/command_id"),
            (FeedItem { value: None, ..FeedItem::sensor("7", "1") }, "value"),
            (
                FeedItem { value_received_at: Some("yesterday".into()), ..FeedItem::sensor("7", "1") },
                "value_received_at",
            ),
            (
                FeedItem { value_received_at: Some("2026-04-24T10:15:00+02:00".into()), ..FeedItem::sensor("7", "1") },
                "value_received_at",
            ),
            (FeedItem { message_id: Some("".into()), ..FeedItem::sensor("7", "1") }, "message_id"),
            (FeedItem { message_id: Some("a b".into()), ..FeedItem::sensor("7", "1") }, "message_id"),
            (FeedItem { message_id: Some("x".repeat(129)), ..FeedItem::sensor("7", "1") }, "message_id"),
            (FeedItem { desired_id: Some("d".into()), ..FeedItem::sensor("7", "1") }, "desired_id"),
            (FeedItem { report_status: ReportStatus::Reported, ..FeedItem::sensor("7", "1") }, "report_status"),
            (FeedItem { report_status: ReportStatus::Applied, ..FeedItem::command("1", "1") }, "report_status"),
            (
                FeedItem {
                    desired_id: Some("d".into()),
                    report_status: ReportStatus::Reported,
                    ..FeedItem::command("1", "1")
                },
                "report_status",
            ),
            (
                FeedItem { desired_id: Some("d".into()), sequence_number: Some(-2), ..FeedItem::command("1", "1") },
                "sequence_number",
            ),
            (FeedItem::sensor("7 8", "1"), "sensor_id"),
        ];
        for (item, field) in cases {
            let e = item.prepare(0).unwrap_err();
            assert!(e.message.starts_with(&format!("feed item {field}:")), "{field}: {}", e.message);
        }
        assert!(FeedItem { message_id: Some("x".repeat(128)), ..FeedItem::sensor("7", "1") }.prepare(0).is_ok());
        assert!(FeedItem { report_status: ReportStatus::Reported, ..FeedItem::command("1", "1") }.prepare(0).is_ok());
        // sequence_number is metadata the docs tie to no other field.
        let p = FeedItem { sequence_number: Some(4), ..FeedItem::command("1", "1") }.prepare(0).unwrap();
        assert!(p.body.contains(r#""sequence_number":4"#), "{}", p.body);
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
    }
}
