//! The device catalog (contract section 3): commands with their desired state, and sensors. The parser is
//! tolerant: ids may be numbers or strings, unknown fields are ignored, missing optional fields are absent,
//! and an item Realer cannot represent keeps its id and carries its error.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::log::Level;
use crate::time;

/// Why Realer could not represent an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemError {
    pub error_type: String,
    pub message: String,
}

/// A command: `value` is the desired state set in Realer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    pub id: String,
    pub value: Option<String>,
    pub value_type: Option<String>,
    pub kind: Option<String>,
    pub pin_port: Option<String>,
    /// A pending desired state not yet answered by the device.
    pub desired_id: Option<String>,
    pub sequence_number: Option<i64>,
    pub expires_at: Option<String>,
    /// `expires_at` in Unix milliseconds; absent when `expires_at` is absent or unreadable.
    pub expires_at_unix_ms: Option<i64>,
    pub error: Option<ItemError>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sensor {
    pub id: String,
    pub kind: Option<String>,
    pub qc: Option<String>,
    pub mu: Option<String>,
    pub pin_port: Option<String>,
    pub error: Option<ItemError>,
}

/// What to do about a command's desired state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DesiredAction {
    /// No desired state is pending.
    None,
    /// Apply the value, then report `applied` (or `rejected`) with its `desired_id`.
    Apply,
    /// Expired, or not newer than one already reported: do not apply; report `stale`.
    Stale,
}

/// A scalar as text: catalog strings sometimes arrive as numbers.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn item_error(v: &Value) -> Option<ItemError> {
    match v.get("error")? {
        Value::Object(o) => Some(ItemError {
            error_type: text(o.get("type")).unwrap_or_default(),
            message: text(o.get("message")).unwrap_or_default(),
        }),
        Value::String(s) => Some(ItemError { error_type: String::new(), message: s.clone() }),
        Value::Null => None,
        other => Some(ItemError { error_type: String::new(), message: other.to_string() }),
    }
}

fn parse_command(v: &Value) -> Option<Command> {
    let id = text(v.get("id"))?;
    let sequence_number = match v.get("sequence_number") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .filter(|n| *n >= 0);
    let expires_at = text(v.get("expires_at"));
    Some(Command {
        id,
        value: text(v.get("value")),
        value_type: text(v.get("value_type")),
        kind: text(v.get("kind")),
        pin_port: text(v.get("pin_port")),
        desired_id: text(v.get("desired_id")).filter(|d| !d.is_empty()),
        sequence_number,
        expires_at_unix_ms: expires_at.as_deref().and_then(|s| time::parse_rfc3339_any_ms(s).ok()),
        expires_at,
        error: item_error(v),
    })
}

fn parse_sensor(v: &Value) -> Option<Sensor> {
    Some(Sensor {
        id: text(v.get("id"))?,
        kind: text(v.get("kind")),
        qc: text(v.get("qc")),
        mu: text(v.get("mu")),
        pin_port: text(v.get("pin_port")),
        error: item_error(v),
    })
}

/// Items under `key` (`{"code":2000,"commands":[…]}`), also tolerating a bare array or a single object
/// under the singular key. Items without an id are skipped and reported through `skipped`.
fn parse_list<T>(
    body: &Value,
    key: &str,
    singular: &str,
    parse: fn(&Value) -> Option<T>,
    skipped: &mut dyn FnMut(String),
) -> Result<Vec<T>> {
    let items: Vec<&Value> = match (body, body.get(key), body.get(singular)) {
        (Value::Array(a), _, _) => a.iter().collect(),
        (_, Some(Value::Array(a)), _) => a.iter().collect(),
        (_, None, Some(one @ Value::Object(_))) => vec![one],
        _ => return Err(Error::protocol(format!("catalog answer has no \"{key}\" array"))),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match parse(item) {
            Some(x) => out.push(x),
            None => skipped(format!("skipped a {singular} without an id: {}", truncate(&item.to_string(), 200))),
        }
    }
    Ok(out)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub(crate) fn parse_commands(body: &Value, warn: &mut dyn FnMut(Level, String)) -> Result<Vec<Command>> {
    parse_list(body, "commands", "command", parse_command, &mut |m| warn(Level::Warn, m))
}

pub(crate) fn parse_sensors(body: &Value, warn: &mut dyn FnMut(Level, String)) -> Result<Vec<Sensor>> {
    parse_list(body, "sensors", "sensor", parse_sensor, &mut |m| warn(Level::Warn, m))
}

/// The contract's rule for a pending desired state: stale once expired, or when its `sequence_number` is not
/// newer than `last_reported` (the highest this client reported for the command).
pub fn desired_action(command: &Command, last_reported: Option<i64>, now_unix_ms: i64) -> DesiredAction {
    if command.desired_id.is_none() || command.error.is_some() {
        return DesiredAction::None;
    }
    // An expiry that cannot be read cannot be shown to lie ahead: fail closed, never apply it.
    if command.expires_at_unix_ms.is_some_and(|at| now_unix_ms >= at)
        || (command.expires_at.is_some() && command.expires_at_unix_ms.is_none())
    {
        return DesiredAction::Stale;
    }
    if let (Some(seq), Some(last)) = (command.sequence_number, last_reported) {
        if seq <= last {
            return DesiredAction::Stale;
        }
    }
    DesiredAction::Apply
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_warn() -> impl FnMut(Level, String) {
        |_, m| panic!("unexpected warning {m}")
    }

    #[test]
    fn parses_the_contract_shapes() {
        let body = json!({"code":2000,"commands":[
            {"id":1,"value":"0.0","value_type":"NumericRange","kind":"relay","pin_port":"6",
             "desired_id":"des_1","sequence_number":3,"expires_at":"2026-04-24T10:15:00Z","future_field":{}},
            {"id":"cmd_0123456789abcdefghijklmnopq","error":{"type":"unsupported","message":"cannot"}},
            {"id":4,"value":1.5,"pin_port":6,"error":"legacy"}
        ]});
        let cmds = parse_commands(&body, &mut no_warn()).unwrap();
        assert_eq!(cmds[0].id, "1");
        assert_eq!(cmds[0].desired_id.as_deref(), Some("des_1"));
        assert_eq!(cmds[0].sequence_number, Some(3));
        assert_eq!(cmds[0].expires_at_unix_ms, Some(1_777_025_700_000));
        assert_eq!(cmds[1].error, Some(ItemError { error_type: "unsupported".into(), message: "cannot".into() }));
        assert_eq!(cmds[1].value, None);
        assert_eq!((cmds[2].value.as_deref(), cmds[2].pin_port.as_deref()), (Some("1.5"), Some("6")));
        assert_eq!(cmds[2].error.as_ref().unwrap().message, "legacy");

        let sensors = parse_sensors(
            &json!({"code":2000,"sensors":[{"id":7,"kind":"thermistor","qc":"celsius_temperature","mu":"degree_celsius:0","pin_port":"5"}]}),
            &mut no_warn(),
        )
        .unwrap();
        assert_eq!(sensors[0].mu.as_deref(), Some("degree_celsius:0"));
        assert!(parse_sensors(&json!({"code":2000}), &mut no_warn()).is_err());
        assert_eq!(parse_sensors(&json!({"sensor":{"id":7}}), &mut no_warn()).unwrap().len(), 1);
        let mut warned = 0;
        assert_eq!(parse_sensors(&json!([{"id":7},{"kind":"x"}]), &mut |_, _| warned += 1).unwrap().len(), 1);
        assert_eq!(warned, 1);
    }

    #[test]
    fn desired_action_rules() {
        let mut c = Command {
            id: "1".into(),
            desired_id: Some("d".into()),
            sequence_number: Some(5),
            expires_at_unix_ms: Some(1000),
            ..Command::default()
        };
        assert_eq!(desired_action(&c, None, 999), DesiredAction::Apply);
        assert_eq!(desired_action(&c, None, 1000), DesiredAction::Stale);
        assert_eq!(desired_action(&c, Some(4), 0), DesiredAction::Apply);
        assert_eq!(desired_action(&c, Some(5), 0), DesiredAction::Stale);
        c.expires_at_unix_ms = None;
        assert_eq!(desired_action(&c, None, i64::MAX), DesiredAction::Apply, "no expiry");
        c.expires_at = Some("next tuesday".into());
        assert_eq!(desired_action(&c, None, 0), DesiredAction::Stale, "an unreadable expiry is not applied");
        c.expires_at = None;
        c.desired_id = None;
        assert_eq!(desired_action(&c, None, 0), DesiredAction::None);
    }
}
