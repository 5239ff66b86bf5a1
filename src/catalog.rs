//! The device catalog (contract section 3): what the device's commands and sensors are. Realer's catalog
//! carries no desired-state ids: a command's `value` is what Realer wants in the older API, and the newer one
//! lists desired states elsewhere (`desired.rs`). The parser is typed and tolerant: ids may be numbers or
//! strings, unknown fields are skipped, missing optional fields are absent, an item Realer cannot represent
//! keeps its id and carries its error, and an item this client cannot read becomes such an error item.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::json::{self, ErrorField, Text};
use crate::log::Level;

/// Why Realer could not represent an item (or this client could not read it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemError {
    pub error_type: String,
    pub message: String,
}

/// A command of the catalog. In the older API its `value` is the value Realer wants the actuator at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    pub id: String,
    pub value: Option<String>,
    pub value_type: Option<String>,
    pub kind: Option<String>,
    pub pin_port: Option<String>,
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

/// An item's error as read, borrowed from the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ItemErrorRef<'a> {
    pub error_type: Cow<'a, str>,
    pub message: Cow<'a, str>,
}

impl ItemErrorRef<'_> {
    fn to_owned(&self) -> ItemError {
        ItemError { error_type: self.error_type.to_string(), message: self.message.to_string() }
    }
}

/// A command as read, its strings borrowed from the answer where they needed no unescaping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CommandRef<'a> {
    pub id: Cow<'a, str>,
    pub value: Option<Cow<'a, str>>,
    pub value_type: Option<Cow<'a, str>>,
    pub kind: Option<Cow<'a, str>>,
    pub pin_port: Option<Cow<'a, str>>,
    pub error: Option<ItemErrorRef<'a>>,
}

impl CommandRef<'_> {
    pub(crate) fn to_owned(&self) -> Command {
        Command {
            id: self.id.to_string(),
            value: self.value.as_deref().map(str::to_string),
            value_type: self.value_type.as_deref().map(str::to_string),
            kind: self.kind.as_deref().map(str::to_string),
            pin_port: self.pin_port.as_deref().map(str::to_string),
            error: self.error.as_ref().map(ItemErrorRef::to_owned),
        }
    }
}

/// Where a fetch puts the commands it reads: told the count first (to allocate once), then each command.
pub(crate) trait CommandSink {
    fn reserve(&mut self, _items: usize) {}
    fn push(&mut self, command: CommandRef<'_>);
}

/// As [`CommandSink`], for sensors.
pub(crate) trait SensorSink {
    fn reserve(&mut self, _items: usize) {}
    fn push(&mut self, sensor: SensorRef<'_>);
}

impl CommandSink for Vec<Command> {
    fn reserve(&mut self, items: usize) {
        self.reserve_exact(items);
    }
    fn push(&mut self, command: CommandRef<'_>) {
        Vec::push(self, command.to_owned());
    }
}

impl SensorSink for Vec<Sensor> {
    fn reserve(&mut self, items: usize) {
        self.reserve_exact(items);
    }
    fn push(&mut self, sensor: SensorRef<'_>) {
        Vec::push(self, sensor.to_owned());
    }
}

/// A sensor as read; see [`CommandRef`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SensorRef<'a> {
    pub id: Cow<'a, str>,
    pub kind: Option<Cow<'a, str>>,
    pub qc: Option<Cow<'a, str>>,
    pub mu: Option<Cow<'a, str>>,
    pub pin_port: Option<Cow<'a, str>>,
    pub error: Option<ItemErrorRef<'a>>,
}

impl SensorRef<'_> {
    pub(crate) fn to_owned(&self) -> Sensor {
        Sensor {
            id: self.id.to_string(),
            kind: self.kind.as_deref().map(str::to_string),
            qc: self.qc.as_deref().map(str::to_string),
            mu: self.mu.as_deref().map(str::to_string),
            pin_port: self.pin_port.as_deref().map(str::to_string),
            error: self.error.as_ref().map(ItemErrorRef::to_owned),
        }
    }
}

#[derive(Deserialize)]
struct CommandItem<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    value: Text<'a>,
    #[serde(borrow, default)]
    value_type: Text<'a>,
    #[serde(borrow, default)]
    kind: Text<'a>,
    #[serde(borrow, default)]
    pin_port: Text<'a>,
    #[serde(borrow, default)]
    error: ErrorField<'a>,
}

#[derive(Deserialize)]
struct SensorItem<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    kind: Text<'a>,
    #[serde(borrow, default)]
    qc: Text<'a>,
    #[serde(borrow, default)]
    mu: Text<'a>,
    #[serde(borrow, default)]
    pin_port: Text<'a>,
    #[serde(borrow, default)]
    error: ErrorField<'a>,
}

/// Only the id of an item that could not be read whole.
#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
}

fn item_error(e: ErrorField<'_>) -> Option<ItemErrorRef<'_>> {
    e.present.then(|| ItemErrorRef {
        error_type: e.error_type.unwrap_or_default(),
        message: e.message.or(e.plain).unwrap_or_default(),
    })
}

/// What an item this client cannot read becomes: an item with its id and an error saying why, as one
/// Realer cannot represent. `None` when not even its id can be read.
fn unreadable(raw: &RawValue, why: serde_json::Error) -> Option<(Cow<'_, str>, ItemErrorRef<'static>)> {
    let id = json::object::<IdOnly<'_>>(raw).ok()?.id.0?;
    Some((
        id,
        ItemErrorRef {
            error_type: Cow::Borrowed("unreadable_item"),
            message: Cow::Owned(format!("librealer could not read this item: {why}")),
        },
    ))
}

fn no_list(key: &str) -> Error {
    Error::protocol(format!("the catalog answer has no \"{key}\" array"))
}

fn not_json(key: &str, e: &serde_json::Error) -> Error {
    Error::protocol(format!("the {key} answer is not JSON: {e}"))
}

fn excerpt(raw: &RawValue) -> String {
    json::excerpt(raw.get(), 200)
}

/// Reads a commands answer (`{"code":2000,"commands":[…]}`; also a bare array, or one object under
/// `command`), handing each command to `each`. Items without an id (or that are not objects) are skipped,
/// told in one warning.
pub(crate) fn parse_commands(
    body: &[u8],
    each: &mut dyn FnMut(CommandRef<'_>),
    warn: &mut dyn FnMut(Level, String),
) -> Result<()> {
    let (mut skipped, mut unreadable_items) = (json::Skipped::default(), json::Skipped::default());
    let found =
        json::for_each_item(body, "commands", Some("command"), &mut |raw| match json::object::<CommandItem<'_>>(raw) {
            Ok(c) => match c.id.0 {
                Some(id) => {
                    let error = item_error(c.error);
                    let (value, value_type, kind, pin_port) = if error.is_some() {
                        (None, None, None, None)
                    } else {
                        (c.value.0, c.value_type.0, c.kind.0, c.pin_port.0)
                    };
                    each(CommandRef { id, value, value_type, kind, pin_port, error })
                }
                None => skipped.add(|| excerpt(raw)),
            },
            Err(e) => match unreadable(raw, e) {
                Some((id, error)) => {
                    unreadable_items.add(|| format!("command {}: {}", json::excerpt(&id, 64), error.message));
                    each(CommandRef { id, error: Some(error), ..CommandRef::default() })
                }
                None => skipped.add(|| excerpt(raw)),
            },
        })
        .map_err(|e| not_json("commands", &e))?;
    skipped.report("commands skipped (not an object with an id)", warn);
    unreadable_items.report("commands unreadable (kept as error items)", warn);
    if found.found {
        Ok(())
    } else {
        Err(no_list("commands"))
    }
}

/// Reads a sensors answer; as [`parse_commands`].
pub(crate) fn parse_sensors(
    body: &[u8],
    each: &mut dyn FnMut(SensorRef<'_>),
    warn: &mut dyn FnMut(Level, String),
) -> Result<()> {
    let (mut skipped, mut unreadable_items) = (json::Skipped::default(), json::Skipped::default());
    let found =
        json::for_each_item(body, "sensors", Some("sensor"), &mut |raw| match json::object::<SensorItem<'_>>(raw) {
            Ok(s) => match s.id.0 {
                Some(id) => {
                    let error = item_error(s.error);
                    let (kind, qc, mu, pin_port) = if error.is_some() {
                        (None, None, None, None)
                    } else {
                        (s.kind.0, s.qc.0, s.mu.0, s.pin_port.0)
                    };
                    each(SensorRef { id, kind, qc, mu, pin_port, error })
                }
                None => skipped.add(|| excerpt(raw)),
            },
            Err(e) => match unreadable(raw, e) {
                Some((id, error)) => {
                    unreadable_items.add(|| format!("sensor {}: {}", json::excerpt(&id, 64), error.message));
                    each(SensorRef { id, error: Some(error), ..SensorRef::default() })
                }
                None => skipped.add(|| excerpt(raw)),
            },
        })
        .map_err(|e| not_json("sensors", &e))?;
    skipped.report("sensors skipped (not an object with an id)", warn);
    unreadable_items.report("sensors unreadable (kept as error items)", warn);
    if found.found {
        Ok(())
    } else {
        Err(no_list("sensors"))
    }
}

/// How many items a commands or sensors answer holds (for the C lists, which are allocated once).
pub(crate) fn count(body: &[u8], key: &str, singular: &str) -> usize {
    json::count_items(body, key, Some(singular))
}

/// Whether two values of a command are the same setting, compared as the contract says (section 3): by
/// `value_type`, numerically for `NumericRange` and `Binary` ("0" equals "0.0"), else as text. Numbers that
/// do not parse are compared as text.
pub fn values_equal(value_type: Option<&str>, a: &str, b: &str) -> bool {
    let numeric =
        matches!(value_type, Some(t) if t.eq_ignore_ascii_case("NumericRange") || t.eq_ignore_ascii_case("Binary"));
    if numeric {
        if let (Ok(x), Ok(y)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            return x == y;
        }
    }
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_warn() -> impl FnMut(Level, String) {
        |_, m| panic!("unexpected warning {m}")
    }

    fn commands(body: &str, warn: &mut dyn FnMut(Level, String)) -> Result<Vec<Command>> {
        let mut out = Vec::new();
        parse_commands(body.as_bytes(), &mut |c| out.push(c.to_owned()), warn)?;
        Ok(out)
    }

    fn sensors(body: &str, warn: &mut dyn FnMut(Level, String)) -> Result<Vec<Sensor>> {
        let mut out = Vec::new();
        parse_sensors(body.as_bytes(), &mut |s| out.push(s.to_owned()), warn)?;
        Ok(out)
    }

    #[test]
    fn parses_the_contract_shapes() {
        let body = r#"{"code":2000,"commands":[
            {"id":1,"value":"0.0","value_type":"NumericRange","kind":"relay","pin_port":"6","future_field":{}},
            {"id":"cmd_0123456789abcdefghijklmnopq","error":{"type":"unsupported","message":"cannot"}},
            {"id":4,"value":1.5,"pin_port":6,"error":"legacy"},
            {"id":5,"value":"a\"b","desired_id":"des_x","sequence_number":3}
        ]}"#;
        let cmds = commands(body, &mut no_warn()).unwrap();
        assert_eq!(cmds[0].id, "1");
        assert_eq!(cmds[0].value.as_deref(), Some("0.0"));
        assert_eq!(cmds[1].error, Some(ItemError { error_type: "unsupported".into(), message: "cannot".into() }));
        assert_eq!(cmds[1].value, None);
        // An item with an error carries only its id and the error.
        assert_eq!((cmds[2].value.as_deref(), cmds[2].error.as_ref().unwrap().message.as_str()), (None, "legacy"));
        // Desired-state fields on a catalog item are not the catalog's: ignored.
        assert_eq!(cmds[3], Command { id: "5".into(), value: Some("a\"b".into()), ..Command::default() });

        let s = sensors(
            r#"{"code":2000,"sensors":[{"id":7,"kind":"thermistor","qc":"celsius_temperature","mu":"degree_celsius:0","pin_port":"5"}]}"#,
            &mut no_warn(),
        )
        .unwrap();
        assert_eq!(s[0].mu.as_deref(), Some("degree_celsius:0"));
        assert!(sensors(r#"{"code":2000}"#, &mut no_warn()).is_err());
        assert_eq!(sensors(r#"{"sensor":{"id":7}}"#, &mut no_warn()).unwrap().len(), 1);
        let mut warned = Vec::new();
        assert_eq!(sensors(r#"[{"id":7},{"kind":"x"},3]"#, &mut |_, m| warned.push(m)).unwrap().len(), 1);
        assert_eq!(warned.len(), 1, "one warning per list");
        assert!(warned[0].starts_with("2 sensors skipped"), "{}", warned[0]);
        // An array is no item, even one a struct could be read from by position.
        let mut warned = 0;
        assert!(commands(r#"{"commands":[[1],[2,"0"]]}"#, &mut |_, _| warned += 1).unwrap().is_empty());
        assert_eq!(warned, 1);
    }

    #[test]
    fn one_unreadable_item_spoils_only_itself() {
        let mut warnings = Vec::new();
        let cmds = commands(
            r#"{"commands":[{"id":1,"value":"1"},{"id":2,"value":1e999},{"id":3,"value":"3","kind":"a","kind":"b"}]}"#,
            &mut |_, m| warnings.push(m),
        )
        .unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0].value.as_deref(), Some("1"));
        let e = cmds[1].error.as_ref().unwrap();
        assert_eq!(e.error_type, "unreadable_item");
        assert!(e.message.contains("number out of range"), "{}", e.message);
        assert_eq!(cmds[2].error.as_ref().unwrap().error_type, "unreadable_item");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("2 commands unreadable"), "{}", warnings[0]);
        assert!(commands("<html>", &mut no_warn()).unwrap_err().message.contains("not JSON"));
    }

    #[test]
    fn values_compare_by_type() {
        assert!(values_equal(Some("NumericRange"), "0", "0.0"));
        assert!(values_equal(Some("Binary"), "1", "1.00"));
        assert!(!values_equal(Some("NumericRange"), "1", "0.0"));
        assert!(!values_equal(Some("Boolean"), "on", "On"));
        assert!(values_equal(None, "x", "x"));
        assert!(!values_equal(None, "0", "0.0"));
        assert!(!values_equal(Some("NumericRange"), "warm", "0"));
    }
}
