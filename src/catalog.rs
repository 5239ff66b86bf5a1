//! The device catalog (contract section 3): what the device's commands and sensors are. Realer's catalog
//! carries no desired-state ids: a command's `value` is what Realer wants in the older API, and the newer one
//! lists desired states elsewhere (`desired.rs`). The parser is typed and tolerant: ids may be numbers or
//! strings, unknown fields are skipped, missing optional fields are absent, an item Realer cannot represent
//! keeps its id and carries its error, and an item this client cannot read becomes such an error item.

use std::borrow::Cow;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::json::{self, ErrorField, Text};
use crate::log::Level;
use crate::records::{Record, Records};

pub(crate) use kind::CatalogItem;

/// Why Realer could not represent an item (or this client could not read it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemError {
    /// Realer's `error.type` ("unreadable_item" for one this client could not read).
    pub error_type: String,
    /// Why, for people.
    pub message: String,
}

/// A command of the catalog. In the older API its `value` is the value Realer wants the actuator at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// The command id, as text ("1", or a string id).
    pub id: String,
    /// The value: on an older service the one Realer wants, on a newer one the value last confirmed.
    pub value: Option<String>,
    /// How the value reads, such as "NumericRange" (compare values with [`values_equal`]).
    pub value_type: Option<String>,
    /// What the actuator is, such as "relay".
    pub kind: Option<String>,
    /// Where it is wired on the device.
    pub pin_port: Option<String>,
    /// Set only for an item Realer cannot represent (or this client could not read): then only `id` is set besides.
    pub error: Option<ItemError>,
}

/// A sensor of the catalog: what the device may report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sensor {
    /// The sensor id, as text.
    pub id: String,
    /// What the sensor is, such as "thermistor".
    pub kind: Option<String>,
    /// The quantity, such as "celsius_temperature".
    pub qc: Option<String>,
    /// The measurement unit, such as "degree_celsius:0".
    pub mu: Option<String>,
    /// Where it is wired on the device.
    pub pin_port: Option<String>,
    /// As [`Command::error`].
    pub error: Option<ItemError>,
}

/// An item's error, borrowed from the answer or from the list that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemErrorRef<'a> {
    /// As [`ItemError::error_type`].
    pub error_type: Cow<'a, str>,
    /// As [`ItemError::message`].
    pub message: Cow<'a, str>,
}

impl ItemErrorRef<'_> {
    /// The error with its strings owned.
    pub fn to_owned(&self) -> ItemError {
        ItemError { error_type: self.error_type.to_string(), message: self.message.to_string() }
    }
}

/// A command, its strings borrowed: from the answer while it is read (owned only where unescaped), from the
/// [`Commands`] list afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandRef<'a> {
    /// As [`Command::id`].
    pub id: Cow<'a, str>,
    /// As [`Command::value`].
    pub value: Option<Cow<'a, str>>,
    /// As [`Command::value_type`].
    pub value_type: Option<Cow<'a, str>>,
    /// As [`Command::kind`].
    pub kind: Option<Cow<'a, str>>,
    /// As [`Command::pin_port`].
    pub pin_port: Option<Cow<'a, str>>,
    /// As [`Command::error`].
    pub error: Option<ItemErrorRef<'a>>,
}

impl CommandRef<'_> {
    /// The command with its strings owned.
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
    /// As [`Sensor::id`].
    pub id: Cow<'a, str>,
    /// As [`Sensor::kind`].
    pub kind: Option<Cow<'a, str>>,
    /// As [`Sensor::qc`].
    pub qc: Option<Cow<'a, str>>,
    /// As [`Sensor::mu`].
    pub mu: Option<Cow<'a, str>>,
    /// As [`Sensor::pin_port`].
    pub pin_port: Option<Cow<'a, str>>,
    /// As [`Sensor::error`].
    pub error: Option<ItemErrorRef<'a>>,
}

impl SensorRef<'_> {
    /// The sensor with its strings owned.
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

// The slots of an item's strings in its record, the same for both lists: the id, the four fields of its
// kind (named in `kind`: `command_slots`, `sensor_slots`), then its error's type and message. Written by
// `CatalogList::push`, read by `get` and the C view: the only place these numbers stand.
const ID: usize = 0;
const ERROR_TYPE: usize = 5;
const ERROR_MESSAGE: usize = 6;
const SLOTS: usize = 7;

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
fn error_cstrs<'a>(r: &Record<'a>) -> Option<(&'a CStr, &'a CStr)> {
    match r.tag {
        TAG_OK => None,
        TAG_SERVER_ERROR => Some((r.strings[ERROR_TYPE].unwrap_or(c""), r.strings[ERROR_MESSAGE].unwrap_or(c""))),
        t => Some((UNREADABLE_ITEM_C, UNREADABLE_MESSAGES.get(usize::from(t - TAG_UNREADABLE)).copied()?)),
    }
}

fn item_error_of<'a>(r: &Record<'a>) -> Option<ItemErrorRef<'a>> {
    error_cstrs(r).map(|(t, m)| ItemErrorRef {
        error_type: Cow::Borrowed(t.to_str().unwrap_or_default()),
        message: Cow::Borrowed(m.to_str().unwrap_or_default()),
    })
}

fn cow(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(Cow::Borrowed)
}

/// What the two lists of the catalog differ in, behind one trait (sealed: only [`Command`] and [`Sensor`]
/// implement it): the names of their answers, how an item is read from one, and the slots of its fields.
pub(crate) mod kind {
    use std::borrow::Cow;
    use std::ffi::CStr;

    use serde_json::value::RawValue;

    use super::{
        cow, error_cstrs, item_error, item_error_of, json, CatalogList, Command, CommandItem, CommandRef, Commands,
        ItemErrorRef, Record, Sensor, SensorItem, SensorRef, Sensors, ID, SLOTS,
    };

    /// An item of a catalog list: [`Command`] or [`Sensor`].
    pub trait CatalogItem: Sized + 'static {
        /// The item with its strings borrowed (from an answer while it is read, from its list afterwards).
        type Ref<'a>: Clone + Default + PartialEq + std::fmt::Debug;
        /// The item as C strings of its list, each field by name: what the C ABI hands over.
        type View<'a>;
        /// The answer's key for a list ("commands").
        const LIST: &'static str;
        /// The answer's key for one item ("command").
        const ONE: &'static str;
        /// Reads one item of an answer: `Ok(None)` when it has no id.
        fn read(raw: &RawValue) -> serde_json::Result<Option<Self::Ref<'_>>>;
        /// An item known only by its id, with `error` (one this client could not read).
        fn failed<'a>(id: Cow<'a, str>, error: ItemErrorRef<'a>) -> Self::Ref<'a>;
        /// The item's id and error.
        fn id_and_error<'s, 'a>(item: &'s Self::Ref<'a>) -> (&'s str, Option<&'s ItemErrorRef<'a>>)
        where
            'a: 's;
        /// The item's error, to change (what a server said is cleaned before anyone sees it).
        fn error_mut<'s, 'a>(item: &'s mut Self::Ref<'a>) -> &'s mut Option<ItemErrorRef<'a>>
        where
            'a: 's;
        /// The item's fields, each in its slot (the id and the error are the list's to place).
        fn slots<'s>(item: &'s Self::Ref<'_>) -> [Option<&'s str>; SLOTS];
        /// The item stored in `r`, its strings borrowed from the list.
        fn get<'a>(r: &Record<'a>) -> Self::Ref<'a>;
        /// The item stored in `r`, as C strings.
        fn view<'a>(r: &Record<'a>) -> Self::View<'a>;
        /// The item, owned.
        fn to_owned(item: &Self::Ref<'_>) -> Self;
        /// The list as the device's commands, when it is: a whole command list read stands in for the
        /// catalog read of the next desired-state fetch of an older service.
        fn as_commands(list: &CatalogList<Self>) -> Option<&Commands>;
    }

    /// A command's fields, by slot (`ID`, `ERROR_TYPE` and `ERROR_MESSAGE` are the others).
    mod command_slots {
        pub(super) const VALUE: usize = 1;
        pub(super) const VALUE_TYPE: usize = 2;
        pub(super) const KIND: usize = 3;
        pub(super) const PIN_PORT: usize = 4;
    }

    /// A sensor's fields, by slot.
    mod sensor_slots {
        pub(super) const KIND: usize = 1;
        pub(super) const QC: usize = 2;
        pub(super) const MU: usize = 3;
        pub(super) const PIN_PORT: usize = 4;
    }

    /// A command as C strings of its list (absent ones `None`), valid as long as the list.
    pub struct CommandView<'a> {
        pub id: &'a CStr,
        pub value: Option<&'a CStr>,
        pub value_type: Option<&'a CStr>,
        pub kind: Option<&'a CStr>,
        pub pin_port: Option<&'a CStr>,
        /// The item's error: its type and message.
        pub error: Option<(&'a CStr, &'a CStr)>,
    }

    /// A sensor as C strings of its list; see [`CommandView`].
    pub struct SensorView<'a> {
        pub id: &'a CStr,
        pub kind: Option<&'a CStr>,
        pub qc: Option<&'a CStr>,
        pub mu: Option<&'a CStr>,
        pub pin_port: Option<&'a CStr>,
        /// The item's error: its type and message.
        pub error: Option<(&'a CStr, &'a CStr)>,
    }

    fn id_of<'a>(r: &Record<'a>) -> &'a CStr {
        r.strings[ID].unwrap_or(c"")
    }

    fn id_str<'a>(r: &Record<'a>) -> Cow<'a, str> {
        Cow::Borrowed(r.str(ID).unwrap_or_default())
    }

    impl CatalogItem for Command {
        type Ref<'a> = CommandRef<'a>;
        type View<'a> = CommandView<'a>;
        const LIST: &'static str = "commands";
        const ONE: &'static str = "command";

        fn read(raw: &RawValue) -> serde_json::Result<Option<CommandRef<'_>>> {
            let c = json::object::<CommandItem<'_>>(raw)?;
            let Some(id) = c.id.0 else { return Ok(None) };
            let error = item_error(c.error);
            // An item with an error carries only its id and the error.
            let (value, value_type, kind, pin_port) = if error.is_some() {
                (None, None, None, None)
            } else {
                (c.value.0, c.value_type.0, c.kind.0, c.pin_port.0)
            };
            Ok(Some(CommandRef { id, value, value_type, kind, pin_port, error }))
        }
        fn failed<'a>(id: Cow<'a, str>, error: ItemErrorRef<'a>) -> CommandRef<'a> {
            CommandRef { id, error: Some(error), ..CommandRef::default() }
        }
        fn id_and_error<'s, 'a>(c: &'s CommandRef<'a>) -> (&'s str, Option<&'s ItemErrorRef<'a>>)
        where
            'a: 's,
        {
            (&c.id, c.error.as_ref())
        }
        fn error_mut<'s, 'a>(c: &'s mut CommandRef<'a>) -> &'s mut Option<ItemErrorRef<'a>>
        where
            'a: 's,
        {
            &mut c.error
        }
        fn slots<'s>(c: &'s CommandRef<'_>) -> [Option<&'s str>; SLOTS] {
            use command_slots::*;
            let mut s = [None; SLOTS];
            s[VALUE] = c.value.as_deref();
            s[VALUE_TYPE] = c.value_type.as_deref();
            s[KIND] = c.kind.as_deref();
            s[PIN_PORT] = c.pin_port.as_deref();
            s
        }
        fn get<'a>(r: &Record<'a>) -> CommandRef<'a> {
            use command_slots::*;
            CommandRef {
                id: id_str(r),
                value: cow(r.str(VALUE)),
                value_type: cow(r.str(VALUE_TYPE)),
                kind: cow(r.str(KIND)),
                pin_port: cow(r.str(PIN_PORT)),
                error: item_error_of(r),
            }
        }
        fn view<'a>(r: &Record<'a>) -> CommandView<'a> {
            use command_slots::*;
            CommandView {
                id: id_of(r),
                value: r.strings[VALUE],
                value_type: r.strings[VALUE_TYPE],
                kind: r.strings[KIND],
                pin_port: r.strings[PIN_PORT],
                error: error_cstrs(r),
            }
        }
        fn to_owned(c: &CommandRef<'_>) -> Command {
            c.to_owned()
        }
        fn as_commands(list: &Commands) -> Option<&Commands> {
            Some(list)
        }
    }

    impl CatalogItem for Sensor {
        type Ref<'a> = SensorRef<'a>;
        type View<'a> = SensorView<'a>;
        const LIST: &'static str = "sensors";
        const ONE: &'static str = "sensor";

        fn read(raw: &RawValue) -> serde_json::Result<Option<SensorRef<'_>>> {
            let s = json::object::<SensorItem<'_>>(raw)?;
            let Some(id) = s.id.0 else { return Ok(None) };
            let error = item_error(s.error);
            let (kind, qc, mu, pin_port) =
                if error.is_some() { (None, None, None, None) } else { (s.kind.0, s.qc.0, s.mu.0, s.pin_port.0) };
            Ok(Some(SensorRef { id, kind, qc, mu, pin_port, error }))
        }
        fn failed<'a>(id: Cow<'a, str>, error: ItemErrorRef<'a>) -> SensorRef<'a> {
            SensorRef { id, error: Some(error), ..SensorRef::default() }
        }
        fn id_and_error<'s, 'a>(s: &'s SensorRef<'a>) -> (&'s str, Option<&'s ItemErrorRef<'a>>)
        where
            'a: 's,
        {
            (&s.id, s.error.as_ref())
        }
        fn error_mut<'s, 'a>(s: &'s mut SensorRef<'a>) -> &'s mut Option<ItemErrorRef<'a>>
        where
            'a: 's,
        {
            &mut s.error
        }
        fn slots<'s>(x: &'s SensorRef<'_>) -> [Option<&'s str>; SLOTS] {
            use sensor_slots::*;
            let mut s = [None; SLOTS];
            s[KIND] = x.kind.as_deref();
            s[QC] = x.qc.as_deref();
            s[MU] = x.mu.as_deref();
            s[PIN_PORT] = x.pin_port.as_deref();
            s
        }
        fn get<'a>(r: &Record<'a>) -> SensorRef<'a> {
            use sensor_slots::*;
            SensorRef {
                id: id_str(r),
                kind: cow(r.str(KIND)),
                qc: cow(r.str(QC)),
                mu: cow(r.str(MU)),
                pin_port: cow(r.str(PIN_PORT)),
                error: item_error_of(r),
            }
        }
        fn view<'a>(r: &Record<'a>) -> SensorView<'a> {
            use sensor_slots::*;
            SensorView {
                id: id_of(r),
                kind: r.strings[KIND],
                qc: r.strings[QC],
                mu: r.strings[MU],
                pin_port: r.strings[PIN_PORT],
                error: error_cstrs(r),
            }
        }
        fn to_owned(s: &SensorRef<'_>) -> Sensor {
            s.to_owned()
        }
        fn as_commands(_: &Sensors) -> Option<&Commands> {
            None
        }
    }
}

/// Where a fetch puts the items it reads: told the count and the answer's size first (to allocate once),
/// then each item, then `finish` once the answer is gone.
pub(crate) trait ItemSink<T: CatalogItem> {
    fn reserve(&mut self, _items: usize, _answer_bytes: usize) {}
    fn push(&mut self, item: T::Ref<'_>);
    fn finish(&mut self) {}
}

/// A list of the catalog ([`Commands`] or [`Sensors`]), stored compactly (see the crate's README, "Bounded
/// memory"): an item costs about its JSON text. Read it with `get`, `iter`, or `to_vec` for owned items. A
/// clone shares the items (the client keeps the last command list it read that way, for its next
/// desired-state fetch).
pub struct CatalogList<T: CatalogItem> {
    records: Arc<Records>,
    item: PhantomData<fn() -> T>,
}

/// The device's commands.
pub type Commands = CatalogList<Command>;
/// The device's sensors.
pub type Sensors = CatalogList<Sensor>;

impl<T: CatalogItem> CatalogList<T> {
    /// The number of items.
    pub fn len(&self) -> usize {
        self.records.len()
    }
    /// Whether the list has no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The item at `index`, borrowed from the list; `None` past the end.
    pub fn get(&self, index: usize) -> Option<T::Ref<'_>> {
        self.records.get(index).as_ref().map(T::get)
    }
    /// Every item in order, borrowed from the list.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = T::Ref<'_>> + '_ {
        // Every index below len() is an item; the default is never used.
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }
    /// Every item, owned.
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().map(|x| T::to_owned(&x)).collect()
    }
    /// Item `index` as C strings, each field by name (for the C ABI).
    pub(crate) fn view(&self, index: usize) -> Option<T::View<'_>> {
        self.records.get(index).as_ref().map(T::view)
    }
}

impl<T: CatalogItem> Default for CatalogList<T> {
    fn default() -> Self {
        CatalogList { records: Arc::default(), item: PhantomData }
    }
}

impl<T: CatalogItem> Clone for CatalogList<T> {
    fn clone(&self) -> Self {
        CatalogList { records: self.records.clone(), item: PhantomData }
    }
}

impl<T: CatalogItem> PartialEq for CatalogList<T> {
    fn eq(&self, other: &Self) -> bool {
        self.records == other.records
    }
}

impl<T: CatalogItem> Eq for CatalogList<T> {}

impl<T: CatalogItem> std::fmt::Debug for CatalogList<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: CatalogItem> IntoIterator for &'a CatalogList<T> {
    type Item = T::Ref<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = T::Ref<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<T: CatalogItem> ItemSink<T> for CatalogList<T> {
    /// Reserves the index exactly and the arena from its bound, the answer's size.
    fn reserve(&mut self, items: usize, answer_bytes: usize) {
        self.records = Arc::new(Records::with_capacity(items, answer_bytes));
    }
    fn push(&mut self, x: T::Ref<'_>) {
        let (id, error) = T::id_and_error(&x);
        let tag = error_tag(error);
        let mut slots = T::slots(&x);
        slots[ID] = Some(id);
        if let (Some(e), TAG_SERVER_ERROR) = (error, tag) {
            slots[ERROR_TYPE] = Some(&e.error_type);
            slots[ERROR_MESSAGE] = Some(&e.message);
        }
        // Not shared while it is filled: no copy is made.
        Arc::make_mut(&mut self.records).push(tag, [None, None], &slots);
    }
    fn finish(&mut self) {
        Arc::make_mut(&mut self.records).shrink();
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

/// Reads a list answer (`{"code":2000,"commands":[…]}`, or one object under `command`), handing each item
/// to `each`. Items without an id (or that are not objects) are skipped, told in one warning; an item that
/// cannot be read whole but has an id is kept as an error item (see `unreadable`); an answer of another shape,
/// or whose items are all skipped, is a protocol error saying what it is.
pub(crate) fn parse<T: CatalogItem>(
    body: &[u8],
    each: &mut dyn FnMut(T::Ref<'_>),
    warn: &mut dyn FnMut(Level, String),
) -> Result<()> {
    let (mut skipped, mut unreadable_items) = (json::Skipped::default(), json::Skipped::default());
    let found =
        json::for_each_item(body, T::LIST, Some(T::ONE), json::BareArray::Refuse, &mut |raw| match T::read(raw) {
            Ok(Some(item)) => each(item),
            Ok(None) => skipped.add(|| excerpt(raw)),
            Err(e) => match unreadable(raw, &e) {
                Some((id, error)) => {
                    unreadable_items.add(|| format!("{} {}: {e}", T::ONE, json::excerpt(&id, 64)));
                    each(T::failed(id, error))
                }
                None => skipped.add(|| excerpt(raw)),
            },
        })
        .map_err(|e| not_json(T::LIST, &e))?;
    check_list(T::LIST, T::LIST, &found, &skipped)?;
    skipped.report(&format!("{} skipped (not an object with an id)", T::LIST), warn);
    unreadable_items.report(&format!("{} unreadable (kept as error items)", T::LIST), warn);
    Ok(())
}

/// How many items a list answer holds (for the lists, which are allocated once).
pub(crate) fn count<T: CatalogItem>(body: &[u8]) -> usize {
    json::count_items(body, T::LIST, Some(T::ONE), json::BareArray::Refuse)
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
        parse::<Command>(body.as_bytes(), &mut |c| out.push(c.to_owned()), warn)?;
        Ok(out)
    }

    fn sensors(body: &str, warn: &mut dyn FnMut(Level, String)) -> Result<Vec<Sensor>> {
        let mut out = Vec::new();
        parse::<Sensor>(body.as_bytes(), &mut |s| out.push(s.to_owned()), warn)?;
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
