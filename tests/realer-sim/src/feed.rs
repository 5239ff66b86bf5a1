//! Feed-data ingestion, one item and batches (contract sections 4 and 5): media type and the byte budget, item
//! validation with every bad field reported at once (values by `value_type`), idempotent replay and conflicts,
//! and the effect of a command report on that command (its pending desired state, local adoption).

use serde_json::{json, Map, Value};

use crate::api::{error, ok, Ctx};
use crate::fixture::Id;
use crate::http::{Request, Response};
use crate::state::{Flavour, Record, Source, State};
use crate::time::{self, TimeError};
use crate::values;

/// The default device plan byte budget: the largest feed-data body (either endpoint).
pub(crate) const DEFAULT_BYTE_BUDGET: usize = 64 * 1024;
/// Realer's message for a body over the byte budget.
pub(crate) const OVER_BUDGET: &str = "the request body exceeds the device plan byte budget";
/// Most items in one batch.
pub(crate) const MAX_BATCH_ITEMS: usize = 100;
/// How far in the future `value_received_at` may be.
pub(crate) const MAX_FUTURE_SECS: i64 = 5 * 60;

const PERMITTED: [&str; 7] =
    ["command_id", "sensor_id", "value", "value_received_at", "message_id", "desired_id", "report_status"];
const SEQUENCE_NUMBER: &str = "sequence_number";

/// Why an item was not accepted.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub status: u16,
    pub code: u32,
    pub message: String,
    pub details: Value,
}

/// An accepted item.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub created: bool,
    pub feed_data_id: u64,
    pub message_id: String,
}

/// Field name -> messages, kept in the order the checks run.
#[derive(Default)]
struct Details(Map<String, Value>);

impl Details {
    fn add(&mut self, field: &str, message: &str) {
        let entry = self.0.entry(field.to_string()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::from(message));
        }
    }
}

/// The JSON type catalog ids of one kind have, for "must be …" messages.
fn expected_id_type(ids: &mut dyn Iterator<Item = &Id>) -> &'static str {
    let (mut ints, mut strs) = (false, false);
    for id in ids {
        match id {
            Id::Int(_) => ints = true,
            Id::Str(_) => strs = true,
        }
    }
    match (ints, strs) {
        (true, false) => "must be an integer",
        (false, true) => "must be a string",
        _ => "must be an integer or a string",
    }
}

/// Resolves a `command_id` / `sensor_id` value against catalog ids with the matching JSON type.
fn resolve(value: &Value, ids: &[&Id]) -> Result<usize, &'static str> {
    let found = match value {
        Value::Number(n) => match n.as_u64() {
            Some(n) => ids.iter().position(|id| **id == Id::Int(n)),
            None => None,
        },
        Value::String(s) => ids.iter().position(|id| **id == Id::Str(s.clone())),
        _ => None,
    };
    if let Some(i) = found {
        return Ok(i);
    }
    // The right id in the wrong JSON type ("7" for 7, or 7 for "7") is a type error, not an unknown id.
    let as_text = match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    let known_as_other_type = as_text.is_some_and(|t| ids.iter().any(|id| id.to_string() == t));
    let well_typed = match value {
        Value::Number(n) => n.is_u64() && ids.iter().any(|id| matches!(id, Id::Int(_))),
        Value::String(_) => ids.iter().any(|id| matches!(id, Id::Str(_))),
        _ => false,
    };
    if known_as_other_type || (!well_typed && !ids.is_empty()) {
        Err(expected_id_type(&mut ids.iter().copied()))
    } else {
        Err("is invalid for this device")
    }
}

fn valid_message_id(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Validates one item and, when it is valid, stores it (or recognises a replay).
pub(crate) fn process_item(
    state: &mut State,
    device: usize,
    now_unix: i64,
    item: &Value,
) -> Result<Accepted, Rejection> {
    let validation = |details: Value| Rejection {
        status: 422,
        code: 4022,
        message: "feed data ingestion failed".to_string(),
        details,
    };
    let Some(obj) = item.as_object() else {
        return Err(validation(json!({"item": ["must be a JSON object"]})));
    };
    let mut details = Details::default();
    let dev = &state.devices[device];

    // The source: exactly one of command_id and sensor_id.
    let mut command = None;
    let mut sensor = None;
    match (obj.get("command_id"), obj.get("sensor_id")) {
        (Some(_), Some(_)) => {
            details.add("command_id", "must not be sent together with sensor_id");
            details.add("sensor_id", "must not be sent together with command_id");
        }
        (None, None) => {
            details.add("command_id", "is required unless sensor_id is sent");
            details.add("sensor_id", "is required unless command_id is sent");
        }
        (Some(v), None) => {
            let ids: Vec<&Id> = dev.commands.iter().map(|c| &c.id).collect();
            match resolve(v, &ids) {
                Ok(i) if dev.commands[i].fields.is_ok() => command = Some(i),
                Ok(_) => details.add("command_id", "is invalid for this device"),
                Err(msg) => details.add("command_id", msg),
            }
        }
        (None, Some(v)) => {
            let ids: Vec<&Id> = dev.sensors.iter().map(|s| &s.id).collect();
            match resolve(v, &ids) {
                Ok(i) if dev.sensors[i].representable => sensor = Some(i),
                Ok(_) => details.add("sensor_id", "is invalid for this device"),
                Err(msg) => details.add("sensor_id", msg),
            }
        }
    }
    let is_sensor_item = obj.contains_key("sensor_id") && !obj.contains_key("command_id");

    let value = match obj.get("value") {
        None => {
            details.add("value", "is required");
            None
        }
        Some(Value::String(v)) => Some(v.as_str()),
        Some(_) => {
            details.add("value", "must be a string");
            None
        }
    };
    if let Some(v) = value {
        let why = match (command, sensor) {
            (Some(c), _) => match &dev.commands[c].fields {
                Ok(f) => values::command_value_error(&f.value_type, v),
                Err(_) => None,
            },
            (None, Some(s)) => values::sensor_value_error(dev.sensors[s].numeric, v),
            // The source is wrong already: still refuse an empty value.
            (None, None) => values::sensor_value_error(false, v),
        };
        if let Some(why) = why {
            details.add("value", &why);
        }
    }

    let mut received_at = None;
    match obj.get("value_received_at") {
        None => details.add("value_received_at", "is required"),
        Some(Value::String(s)) => match time::parse_rfc3339_utc(s) {
            Ok(t) if t > now_unix + MAX_FUTURE_SECS => {
                details.add("value_received_at", "must not be more than 5 minutes in the future")
            }
            Ok(t) => received_at = Some(t),
            Err(TimeError::NotUtc) => details.add("value_received_at", "must be in UTC (Z or +00:00)"),
            Err(TimeError::Syntax) => {
                details.add("value_received_at", "must be an RFC 3339 UTC timestamp such as 2026-04-24T10:15:00Z")
            }
        },
        Some(_) => details.add("value_received_at", "must be a string"),
    }

    let message_id = match obj.get("message_id") {
        None => {
            details.add("message_id", "is required");
            None
        }
        Some(Value::String(s)) if valid_message_id(s) => Some(s.clone()),
        Some(Value::String(_)) => {
            details.add("message_id", "must be 1 to 128 printable ASCII characters without spaces");
            None
        }
        Some(_) => {
            details.add("message_id", "must be a string");
            None
        }
    };

    // desired_id: only on command items, and only one this sim issued for that command.
    let mut desired = None;
    match obj.get("desired_id") {
        None => {}
        Some(_) if is_sensor_item => details.add("desired_id", "is only permitted on command items"),
        Some(Value::String(d)) => {
            if let Some(c) = command {
                match dev.commands[c].known_desired.iter().find(|(id, _)| id == d) {
                    Some((_, expires_at)) => desired = Some((d.clone(), *expires_at)),
                    None => details.add("desired_id", "is unknown for this command"),
                }
            }
        }
        Some(_) => details.add("desired_id", "must be a string"),
    }

    let has_desired_id = obj.contains_key("desired_id");
    let mut report_status = if has_desired_id { Some("applied") } else { None };
    match obj.get("report_status") {
        None => {}
        Some(_) if is_sensor_item => details.add("report_status", "is not permitted on sensor items"),
        Some(Value::String(s)) if has_desired_id => match s.as_str() {
            "applied" | "rejected" | "stale" => report_status = Some(s.as_str()),
            _ => details.add("report_status", "must be one of applied, rejected, stale"),
        },
        Some(Value::String(s)) if s != "reported" => {
            details.add("report_status", "must be reported (or omitted) when desired_id is absent")
        }
        Some(Value::String(_)) => {}
        Some(_) => details.add("report_status", "must be a string"),
    }
    // A desired state must not be applied after it expired (contract section 3): such a report is stale.
    if let (Some((_, Some(expires_at))), Some("applied"), Some(at)) = (&desired, report_status, received_at) {
        if at > *expires_at {
            details.add("report_status", "must be stale: the desired state expired before value_received_at");
        }
    }

    match obj.get(SEQUENCE_NUMBER) {
        None => {}
        Some(v) if v.is_u64() => {}
        Some(_) => details.add(SEQUENCE_NUMBER, "must be an integer greater than or equal to 0"),
    }

    for key in obj.keys() {
        if !PERMITTED.contains(&key.as_str()) && key != SEQUENCE_NUMBER {
            details.add(key, "is not a permitted field");
        }
    }

    if !details.0.is_empty() {
        return Err(validation(Value::Object(details.0)));
    }
    let message_id = message_id.unwrap_or_default();
    let source = match (command, sensor) {
        (Some(c), _) => Source::Command(dev.commands[c].id.clone()),
        (None, Some(s)) => Source::Sensor(dev.sensors[s].id.clone()),
        (None, None) => unreachable!("a valid item has a source"),
    };

    let key = (device, source, message_id.clone());
    if let Some(&at) = state.by_key.get(&key) {
        let record = &mut state.records[at];
        if record.item == *item {
            record.times_received += 1;
            return Ok(Accepted { created: false, feed_data_id: record.feed_data_id, message_id });
        }
        return Err(Rejection {
            status: 409,
            code: 4009,
            message: "message_id was already used for different data from this source".to_string(),
            details: json!({"message_id": ["was already used for different data from this source"]}),
        });
    }

    let feed_data_id = state.records.len() as u64 + 1;
    state.records.push(Record {
        device_id: state.devices[device].id.to_string(),
        message_id: message_id.clone(),
        item: item.clone(),
        feed_data_id,
        times_received: 1,
    });
    state.by_key.insert(key, state.records.len() - 1);

    // Answering the pending desired state clears it; `applied` makes its value the confirmed one.
    if let (Some(c), Some((desired_id, _))) = (command, &desired) {
        let cmd = &mut state.devices[device].commands[c];
        if let Some(at) = cmd.pending.iter().position(|p| p.desired_id == *desired_id) {
            let p = cmd.pending.remove(at);
            if let (Ok(fields), Some("applied")) = (cmd.fields.as_mut(), report_status) {
                fields.value = p.value;
            }
        }
    }
    // Local reported-state adoption: a local change becomes the command's value. In v1 that is the catalog
    // value, what Realer wants: the change replaces the desired value the catalog served (v1 lists no desired
    // state, so nothing is left unanswered). In v2 it is the confirmed value, which the catalog serves; a
    // desired state still pending stays listed until it is answered (contract section 3b).
    if let (Some(c), false) = (command, has_desired_id) {
        let adopt_all = state.settings.adopt_local_reports;
        let v1 = state.flavour == Flavour::V1;
        let cmd = &mut state.devices[device].commands[c];
        if adopt_all || cmd.local_adoption {
            if let (Ok(fields), Some(Value::String(v))) = (cmd.fields.as_mut(), item.get("value")) {
                fields.value = v.clone();
                if v1 {
                    cmd.pending.clear();
                }
            }
        }
    }

    Ok(Accepted { created: true, feed_data_id, message_id })
}

/// The checks both endpoints share before looking at items: media type, the byte budget, JSON (a body that is
/// not JSON is an unsupported media type, contract section 4).
fn parse_body(ctx: &Ctx<'_>, req: &Request) -> Result<Value, Response> {
    if req.media_type().as_deref() != Some("application/json") {
        return Err(error(ctx.rng, 415, 4015, "Content-Type must be application/json", None));
    }
    if req.body.len() > ctx.state.settings.byte_budget {
        return Err(error(ctx.rng, 413, 4013, OVER_BUDGET, None));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| error(ctx.rng, 415, 4015, &format!("the body is not JSON: {e}"), None))
}

pub(crate) fn single(ctx: &mut Ctx<'_>, device: usize, req: &Request) -> Response {
    let item = match parse_body(ctx, req) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match process_item(ctx.state, device, ctx.now_unix, &item) {
        Ok(a) => {
            let (status, label) = if a.created { (201, "created") } else { (200, "idempotent") };
            ok(
                ctx.rng,
                status,
                &json!({
                    "code": 2000,
                    "status": label,
                    "feed_data_id": a.feed_data_id,
                    "message_id": a.message_id,
                    "warnings": [],
                }),
            )
        }
        Err(r) => error(ctx.rng, r.status, r.code, &r.message, Some(r.details)),
    }
}

pub(crate) fn batch(ctx: &mut Ctx<'_>, device: usize, req: &Request) -> Response {
    let body = match parse_body(ctx, req) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let invalid =
        |ctx: &Ctx<'_>, details: Value| error(ctx.rng, 422, 4022, "feed data ingestion failed", Some(details));
    let Some(obj) = body.as_object() else {
        return invalid(ctx, json!({"body": ["must be a JSON object with items"]}));
    };
    let items = match obj.get("items") {
        None => return invalid(ctx, json!({"items": ["is required"]})),
        Some(Value::Array(items)) if items.is_empty() => return invalid(ctx, json!({"items": ["must not be empty"]})),
        Some(Value::Array(items)) => items,
        Some(_) => return invalid(ctx, json!({"items": ["must be an array"]})),
    };
    if items.len() > MAX_BATCH_ITEMS {
        return error(ctx.rng, 413, 4013, &format!("a batch holds at most {MAX_BATCH_ITEMS} items"), None);
    }
    let extra: Map<String, Value> =
        obj.keys().filter(|k| *k != "items").map(|k| (k.clone(), json!(["is not a permitted field"]))).collect();
    if !extra.is_empty() {
        return invalid(ctx, Value::Object(extra));
    }

    let mut results = Vec::with_capacity(items.len());
    let (mut accepted, mut rejected) = (0, 0);
    for (index, item) in items.iter().enumerate() {
        let message_id = item.get("message_id").cloned().unwrap_or(Value::Null);
        let result = match process_item(ctx.state, device, ctx.now_unix, item) {
            Ok(a) => {
                accepted += 1;
                json!({
                    "index": index,
                    "message_id": message_id,
                    "status": if a.created { "created" } else { "idempotent" },
                    "feed_data_id": a.feed_data_id,
                })
            }
            Err(r) => {
                rejected += 1;
                json!({
                    "index": index,
                    "message_id": message_id,
                    "status": "rejected",
                    "code": r.code,
                    "error": {
                        "type": crate::api::error_type(r.code),
                        "message": r.message,
                        "details": r.details,
                    },
                })
            }
        };
        results.push(result);
    }
    let status = match (accepted, rejected) {
        (_, 0) => "completed",
        (0, _) => "rejected",
        _ => "partial",
    };
    ok(ctx.rng, 200, &json!({"code": 2000, "status": status, "results": results}))
}
