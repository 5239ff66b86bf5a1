//! The device catalog (contract section 3): what the device's commands and sensors are. Realer's catalog
//! carries no desired-state ids: a command's `value` is what Realer wants in the older API, and the newer one
//! lists desired states elsewhere (`desired.rs`). The parser is typed and tolerant: ids may be numbers or
//! strings, unknown fields are skipped, missing optional fields are absent, an item Realer cannot represent
//! keeps its id and carries its error, and an item this client cannot read becomes such an error item.

use std::borrow::Cow;
use std::ffi::CStr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::json::{self, ErrorField, Text};
use crate::log::Level;
use crate::records::{Record, Records};

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

/// An item's error, borrowed from the answer or from the list that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemErrorRef<'a> {
    pub error_type: Cow<'a, str>,
    pub message: Cow<'a, str>,
}

impl ItemErrorRef<'_> {
    pub fn to_owned(&self) -> ItemError {
        ItemError { error_type: self.error_type.to_string(), message: self.message.to_string() }
    }
}

/// A command, its strings borrowed: from the answer while it is read (owned only where unescaped), from the
/// [`Commands`] list afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandRef<'a> {
    pub id: Cow<'a, str>,
    pub value: Option<Cow<'a, str>>,
    pub value_type: Option<Cow<'a, str>>,
    pub kind: Option<Cow<'a, str>>,
    pub pin_port: Option<Cow<'a, str>>,
    pub error: Option<ItemErrorRef<'a>>,
}

impl CommandRef<'_> {
    pub fn to_owned(&self) -> Command {
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

/// A sensor; see [`CommandRef`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SensorRef<'a> {
    pub id: Cow<'a, str>,
    pub kind: Option<Cow<'a, str>>,
    pub qc: Option<Cow<'a, str>>,
    pub mu: Option<Cow<'a, str>>,
    pub pin_port: Option<Cow<'a, str>>,
    pub error: Option<ItemErrorRef<'a>>,
}

impl SensorRef<'_> {
    pub fn to_owned(&self) -> Sensor {
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

/// Where a fetch puts the commands it reads: told the count and the answer's size first (to allocate once),
/// then each command, then `finish` once the answer is gone.
pub(crate) trait CommandSink {
    fn reserve(&mut self, _items: usize, _answer_bytes: usize) {}
    fn push(&mut self, command: CommandRef<'_>);
    fn finish(&mut self) {}
}

/// As [`CommandSink`], for sensors.
pub(crate) trait SensorSink {
    fn reserve(&mut self, _items: usize, _answer_bytes: usize) {}
    fn push(&mut self, sensor: SensorRef<'_>);
    fn finish(&mut self) {}
}

/// The type of an item this client could not read.
pub const UNREADABLE_ITEM: &str = "unreadable_item";
const UNREADABLE_ITEM_C: &CStr = c"unreadable_item";

// An item's tag in a list: no error, the server's error (type and message stored), or one of the fixed
// messages of an unreadable item (not stored: static text).
const TAG_OK: u8 = 0;
const TAG_SERVER_ERROR: u8 = 1;
const TAG_UNREADABLE: u8 = 2;
const UNREADABLE_MESSAGES: [&CStr; 3] = [
    c"librealer could not read this item: number out of range",
    c"librealer could not read this item: duplicate field",
    c"librealer could not read this item: it is not shaped as the contract says",
];

fn static_str(c: &'static CStr) -> &'static str {
    c.to_str().unwrap_or_default()
}

/// The tag an item's error is stored with.
fn error_tag(e: Option<&ItemErrorRef<'_>>) -> u8 {
    match e {
        None => TAG_OK,
        Some(e) if e.error_type == UNREADABLE_ITEM => UNREADABLE_MESSAGES
            .iter()
            .position(|m| static_str(m) == e.message)
            .map_or(TAG_SERVER_ERROR, |k| TAG_UNREADABLE + k as u8),
        Some(_) => TAG_SERVER_ERROR,
    }
}

/// An item's error as C strings: the stored ones, or the fixed text of its tag.
fn error_cstrs<'a>(r: &Record<'a>, type_at: usize) -> Option<(&'a CStr, &'a CStr)> {
    match r.tag {
        TAG_OK => None,
        TAG_SERVER_ERROR => Some((r.strings[type_at].unwrap_or(c""), r.strings[type_at + 1].unwrap_or(c""))),
        t => Some((UNREADABLE_ITEM_C, UNREADABLE_MESSAGES.get(usize::from(t - TAG_UNREADABLE)).copied()?)),
    }
}

fn item_error_of<'a>(r: &Record<'a>, type_at: usize) -> Option<ItemErrorRef<'a>> {
    error_cstrs(r, type_at).map(|(t, m)| ItemErrorRef {
        error_type: Cow::Borrowed(t.to_str().unwrap_or_default()),
        message: Cow::Borrowed(m.to_str().unwrap_or_default()),
    })
}

fn cow(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(Cow::Borrowed)
}

/// An item of a catalog list as C strings, for the C ABI: its five fields, then its error's type and message
/// (absent ones `None`), all valid as long as the list.
pub(crate) type CItem<'a> = [Option<&'a CStr>; 7];

fn c_item<'a>(r: &Record<'a>) -> CItem<'a> {
    let e = error_cstrs(r, 5);
    let s = &r.strings;
    [s[0], s[1], s[2], s[3], s[4], e.map(|e| e.0), e.map(|e| e.1)]
}

macro_rules! catalog_list {
    ($list:ident, $item:ident, $owned:ident, $sink:ident, [$($field:ident = $at:literal),*]) => {
        /// A list of the catalog, stored compactly (see the crate's README, "Bounded memory"): an item costs
        /// about its JSON text. Read it with `get`, `iter`, or `to_vec` for owned items. A clone shares the
        /// items (the client keeps the last command list it read that way, for its next desired-state fetch).
        #[derive(Clone, Default, PartialEq, Eq)]
        pub struct $list {
            records: Arc<Records>,
        }

        impl $list {
            pub fn len(&self) -> usize {
                self.records.len()
            }
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
            /// The item at `index`, borrowed from the list; `None` past the end.
            pub fn get(&self, index: usize) -> Option<$item<'_>> {
                let r = self.records.get(index)?;
                Some($item {
                    id: Cow::Borrowed(r.str(0).unwrap_or_default()),
                    $($field: cow(r.str($at)),)*
                    error: item_error_of(&r, 5),
                })
            }
            pub fn iter(&self) -> impl ExactSizeIterator<Item = $item<'_>> + '_ {
                (0..self.len()).map(|i| self.get(i).unwrap_or_default())
            }
            /// Every item, owned.
            pub fn to_vec(&self) -> Vec<$owned> {
                self.iter().map(|x| x.to_owned()).collect()
            }
            /// Item `index` as C strings (see [`CItem`]).
            pub(crate) fn c_item(&self, index: usize) -> Option<CItem<'_>> {
                self.records.get(index).as_ref().map(c_item)
            }
        }

        impl std::fmt::Debug for $list {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_list().entries(self.iter()).finish()
            }
        }

        impl $sink for $list {
            /// Reserves the index exactly and the arena from its bound, the answer's size.
            fn reserve(&mut self, items: usize, answer_bytes: usize) {
                self.records = Arc::new(Records::with_capacity(items, answer_bytes));
            }
            fn push(&mut self, x: $item<'_>) {
                let tag = error_tag(x.error.as_ref());
                let (error_type, message) = match (&x.error, tag) {
                    (Some(e), TAG_SERVER_ERROR) => (Some(&*e.error_type), Some(&*e.message)),
                    _ => (None, None),
                };
                // Not shared while it is filled: no copy is made.
                Arc::make_mut(&mut self.records)
                    .push(tag, [None, None], &[Some(&*x.id), $(x.$field.as_deref(),)* error_type, message]);
            }
            fn finish(&mut self) {
                Arc::make_mut(&mut self.records).shrink();
            }
        }
    };
}

catalog_list!(Commands, CommandRef, Command, CommandSink, [value = 1, value_type = 2, kind = 3, pin_port = 4]);
catalog_list!(Sensors, SensorRef, Sensor, SensorSink, [kind = 1, qc = 2, mu = 3, pin_port = 4]);

impl<'a> IntoIterator for &'a Commands {
    type Item = CommandRef<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = CommandRef<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<'a> IntoIterator for &'a Sensors {
    type Item = SensorRef<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = SensorRef<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
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
/// Realer cannot represent. `None` when not even its id can be read. The message is fixed text (what was
/// wrong, without where: the warning of the list tells the first one in full), so that a list of such items
/// costs no more than their text.
fn unreadable<'a>(raw: &'a RawValue, why: &serde_json::Error) -> Option<(Cow<'a, str>, ItemErrorRef<'static>)> {
    let id = json::object::<IdOnly<'_>>(raw).ok()?.id.0?;
    let text = why.to_string();
    let which = if text.starts_with("number out of range") {
        0
    } else if text.starts_with("duplicate field") {
        1
    } else {
        2
    };
    Some((
        id,
        ItemErrorRef {
            error_type: Cow::Borrowed(UNREADABLE_ITEM),
            message: Cow::Borrowed(static_str(UNREADABLE_MESSAGES[which])),
        },
    ))
}

/// Checks what a list answer turned out to be (contract section 3: `{"code":2000,"<key>":[…]}`): another
/// shape is a protocol error naming it, and so is a list none of whose items could be used (told by
/// `skipped`); an empty list is what the answer says.
pub(crate) fn check_list(what: &str, key: &str, found: &json::ListAnswer, skipped: &json::Skipped) -> Result<()> {
    if let Some(why) = found.shape_error(key) {
        return Err(Error::protocol(format!("the {what} answer {why}")));
    }
    if found.items > 0 && skipped.count() == found.items {
        return Err(Error::protocol(format!(
            "the {what} answer lists {} item(s), none of them usable; the first: {}",
            found.items,
            skipped.first().unwrap_or_default()
        )));
    }
    Ok(())
}

fn not_json(key: &str, e: &serde_json::Error) -> Error {
    Error::protocol(format!("the {key} answer is not JSON: {e}"))
}

fn excerpt(raw: &RawValue) -> String {
    json::excerpt(raw.get(), 200)
}

/// Reads a commands answer (`{"code":2000,"commands":[…]}`, or one object under `command`), handing each
/// command to `each`. Items without an id (or that are not objects) are skipped, told in one warning; an
/// answer of another shape, or whose items are all skipped, is a protocol error saying what it is.
pub(crate) fn parse_commands(
    body: &[u8],
    each: &mut dyn FnMut(CommandRef<'_>),
    warn: &mut dyn FnMut(Level, String),
) -> Result<()> {
    let (mut skipped, mut unreadable_items) = (json::Skipped::default(), json::Skipped::default());
    let found =
        json::for_each_item(
            body,
            "commands",
            Some("command"),
            json::BareArray::Refuse,
            &mut |raw| match json::object::<CommandItem<'_>>(raw) {
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
                Err(e) => match unreadable(raw, &e) {
                    Some((id, error)) => {
                        unreadable_items.add(|| format!("command {}: {e}", json::excerpt(&id, 64)));
                        each(CommandRef { id, error: Some(error), ..CommandRef::default() })
                    }
                    None => skipped.add(|| excerpt(raw)),
                },
            },
        )
        .map_err(|e| not_json("commands", &e))?;
    check_list("commands", "commands", &found, &skipped)?;
    skipped.report("commands skipped (not an object with an id)", warn);
    unreadable_items.report("commands unreadable (kept as error items)", warn);
    Ok(())
}

/// Reads a sensors answer; as [`parse_commands`].
pub(crate) fn parse_sensors(
    body: &[u8],
    each: &mut dyn FnMut(SensorRef<'_>),
    warn: &mut dyn FnMut(Level, String),
) -> Result<()> {
    let (mut skipped, mut unreadable_items) = (json::Skipped::default(), json::Skipped::default());
    let found =
        json::for_each_item(body, "sensors", Some("sensor"), json::BareArray::Refuse, &mut |raw| match json::object::<
            SensorItem<'_>,
        >(raw)
        {
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
            Err(e) => match unreadable(raw, &e) {
                Some((id, error)) => {
                    unreadable_items.add(|| format!("sensor {}: {e}", json::excerpt(&id, 64)));
                    each(SensorRef { id, error: Some(error), ..SensorRef::default() })
                }
                None => skipped.add(|| excerpt(raw)),
            },
        })
        .map_err(|e| not_json("sensors", &e))?;
    check_list("sensors", "sensors", &found, &skipped)?;
    skipped.report("sensors skipped (not an object with an id)", warn);
    unreadable_items.report("sensors unreadable (kept as error items)", warn);
    Ok(())
}

/// How many items a commands or sensors answer holds (for the C lists, which are allocated once).
pub(crate) fn count(body: &[u8], key: &str, singular: &str) -> usize {
    json::count_items(body, key, Some(singular), json::BareArray::Refuse)
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
    use crate::error::ErrorKind;

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
        let listed = sensors(r#"{"sensors":[{"id":7},{"kind":"x"},3]}"#, &mut |_, m| warned.push(m));
        assert_eq!(listed.unwrap().len(), 1);
        assert_eq!(warned.len(), 1, "one warning per list");
        assert!(warned[0].starts_with("2 sensors skipped"), "{}", warned[0]);
        // An array is no item, even one a struct could be read from by position; a list of nothing usable is
        // no catalog.
        let mut warned = 0;
        let e = commands(r#"{"commands":[{"id":1},[2,"0"]]}"#, &mut |_, _| warned += 1).unwrap();
        assert_eq!((e.len(), warned), (1, 1));
        let e = commands(r#"{"commands":[[1],[2,"0"]]}"#, &mut no_warn()).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Protocol, "the commands answer lists 2 item(s), none of them usable; the first: [1]")
        );
    }

    #[test]
    fn an_answer_that_is_not_the_documented_shape_is_a_protocol_error_not_an_empty_catalog() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for (body, says) in [
            (r#"[{"id":1,"value":"1"}]"#.to_string(), "is an array, not a JSON object with a \"commands\" array"),
            ("[]".into(), "is an array, not a JSON object with a \"commands\" array"),
            (r#""commands""#.into(), "is a string, not a JSON object with a \"commands\" array"),
            (deep.clone(), "is an array, not a JSON object with a \"commands\" array"),
            (format!(r#"{{"commands":{deep}}}"#), "lists 1 item(s), none of them usable; the first: [[[["),
            (r#"{"code":2000,"commands":null}"#.into(), "has \"commands\" as null, not an array"),
        ] {
            let e = commands(&body, &mut |_, _| ()).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol);
            assert!(e.message.starts_with(&format!("the commands answer {says}")), "{}", e.message);
        }
        assert!(commands(r#"{"code":2000,"commands":[]}"#, &mut no_warn()).unwrap().is_empty(), "said so");
        let e = sensors("[]", &mut no_warn()).unwrap_err();
        assert_eq!(e.message, "the sensors answer is an array, not a JSON object with a \"sensors\" array");
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
