//! One feed-data item (contract section 4): checked against the contract before any I/O, given its
//! `message_id` (the idempotency key that stays the same through every retry) and its JSON form.

use crate::config::check_id;
use crate::error::{Error, Result};
use crate::feed::wire::JsonObject;
use crate::limits::{MAX_DESIRED_ID_LEN, MAX_MESSAGE_ID_LEN, MAX_VALUE_BYTES};
use crate::random::random_u64;
use crate::time;

/// Where a field of a feed item is, in messages: `item.value` for one item, `items[3].value` for one of a
/// list. Formatted only when a message needs it.
#[derive(Clone, Copy)]
pub(crate) struct FieldName<'a> {
    pub(crate) index: Option<usize>,
    pub(crate) field: &'a str,
}

impl std::fmt::Display for FieldName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "items[{i}].{}", self.field),
            None => write!(f, "item.{}", self.field),
        }
    }
}

/// What is wrong with a field of an item, in the one format of every item message, from the contract's
/// checks here or from reading a C item: `items[3].value: is longer than 1024 bytes`.
pub(crate) fn field_error(index: Option<usize>, field: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{}: {why}", FieldName { index, field }))
}

/// `report_status` of a command report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReportStatus {
    /// Omitted: `applied` is implied with a `desired_id`; nothing without.
    #[default]
    None,
    /// The desired state was applied (the default with a `desired_id`).
    Applied,
    /// The device cannot apply the desired state.
    Rejected,
    /// The desired state was not applied: expired, or superseded by a newer sequence.
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
    /// The sensor a reading is from (or `command_id`: exactly one of the two).
    pub sensor_id: Option<String>,
    /// The command an acknowledgement is about (or `sensor_id`).
    pub command_id: Option<String>,
    /// The raw value, sent as a JSON string ("21.4").
    pub value: Option<String>,
    /// RFC 3339 UTC; `None` = now.
    pub value_received_at: Option<String>,
    /// `None` = generated.
    pub message_id: Option<String>,
    /// The desired state this command report answers; `None` for a reading or a local change.
    pub desired_id: Option<String>,
    /// How a command report answers its desired state.
    pub report_status: ReportStatus,
    /// The answered desired state's `sequence_number`, echoed.
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
    /// A reading of `sensor_id`; every other field as `Default` leaves it.
    pub fn sensor(sensor_id: &str, value: &str) -> FeedItem {
        FeedItem { sensor_id: Some(sensor_id.into()), value: Some(value.into()), ..FeedItem::default() }
    }

    /// A report of command `command_id`'s physical value; every other field as `Default` leaves it.
    pub fn command(command_id: &str, value: &str) -> FeedItem {
        FeedItem { command_id: Some(command_id.into()), value: Some(value.into()), ..FeedItem::default() }
    }

    /// Checks the item against the contract and builds its wire form. The error names the field.
    pub(crate) fn prepare(&self, now_unix_ms: i64) -> Result<Prepared> {
        self.borrowed().prepare_at(now_unix_ms, None)
    }

    /// [`FeedItem::prepare`] for the item at `index` of a list: the error names it (`items[3].value`).
    pub(crate) fn prepare_at(&self, now_unix_ms: i64, index: usize) -> Result<Prepared> {
        self.borrowed().prepare_at(now_unix_ms, Some(index))
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
        self.prepare_at(now_unix_ms, None)
    }

    /// See [`FeedItem::prepare`]; `index` is the item's place in a list, if it is in one.
    pub(crate) fn prepare_at(&self, now_unix_ms: i64, index: Option<usize>) -> Result<Prepared> {
        let bad = |field: &str, why: &str| field_error(index, field, why);
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
            // Realer takes one form (a strict server refuses `t`, `z` or an offset with 422): normalised.
            Some(at) => time::normalize_timestamp(at).map_err(|e| bad("value_received_at", e))?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
                FeedItem { value_received_at: Some("2026-04-24T10:15:00+0200".into()), ..FeedItem::sensor("7", "1") },
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
            assert!(e.message.starts_with(&format!("item.{field}:")), "{field}: {}", e.message);
            let e = item.prepare_at(0, 3).unwrap_err();
            assert!(e.message.starts_with(&format!("items[3].{field}:")), "{field}: {}", e.message);
        }
        assert!(FeedItem { message_id: Some("x".repeat(128)), ..FeedItem::sensor("7", "1") }.prepare(0).is_ok());
        assert!(FeedItem { report_status: ReportStatus::Reported, ..FeedItem::command("1", "1") }.prepare(0).is_ok());
        // sequence_number is metadata the docs tie to no other field.
        let p = FeedItem { sequence_number: Some(4), ..FeedItem::command("1", "1") }.prepare(0).unwrap();
        assert!(p.body.contains(r#""sequence_number":4"#), "{}", p.body);
    }
}
