//! Typed, tolerant reading of Realer's JSON answers, without a tree: a field takes any JSON type (a scalar
//! becomes text, anything else is absent), unknown fields are skipped unchecked, and a list is handed over one
//! item at a time as raw JSON text borrowed from the answer, so that reading an answer costs little more than
//! the answer itself, and one unreadable item spoils only itself.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A scalar as text: a string as it is, a number or a boolean written out; null, arrays and objects absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'a> Text<'a> {
    /// A value's raw JSON text as text: a string unescaped (borrowed when it holds no escape), a number as
    /// written (never longer than its JSON text, unlike a float printed again: `1e15` stays `1e15`), a boolean
    /// written out; null, arrays and objects absent. A number beyond f64's range is an error ("number out of
    /// range"), as serde_json would say.
    pub(crate) fn from_raw<E: serde::de::Error>(raw: &'a RawValue) -> Result<Text<'a>, E> {
        let s = raw.get();
        Ok(Text(match s.as_bytes().first() {
            Some(b'"') if !s.contains('\\') => Some(Cow::Borrowed(&s[1..s.len() - 1])),
            Some(b'"') => Some(Cow::Owned(serde_json::from_str::<String>(s).map_err(E::custom)?)),
            Some(b't') => Some(Cow::Borrowed("true")),
            Some(b'f') => Some(Cow::Borrowed("false")),
            Some(b'-' | b'0'..=b'9') => {
                if !s.parse::<f64>().is_ok_and(f64::is_finite) {
                    return Err(E::custom("number out of range"));
                }
                Some(Cow::Borrowed(s))
            }
            _ => None,
        }))
    }
}

/// Skips a sequence, for a value that is absent when it is an array.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<'a>, D::Error> {
        Text::from_raw(<&'de RawValue>::deserialize(d)?)
    }
}

/// An integer field: a JSON integer, or a string of one ("3"); anything else (fractions included) is absent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int(pub Option<i64>);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Int, D::Error> {
        let text = Text::deserialize(d)?;
        Ok(Int(text.as_str().and_then(|s| s.parse().ok())))
    }
}

/// `error` of an answer, a catalog item or a batch result: Realer's object (`type`, `message`, raw
/// `details`), or a plain string (`plain`: OAuth's error label, or Realer's legacy message). Another scalar
/// is taken as a plain string too.
#[derive(Debug, Default)]
pub(crate) struct ErrorField<'a> {
    pub present: bool,
    pub error_type: Option<Cow<'a, str>>,
    pub message: Option<Cow<'a, str>>,
    pub details: Option<&'a RawValue>,
    pub plain: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ErrorField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ErrorField<'a>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ErrorField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ErrorField<'de>, A::Error> {
                let mut e = ErrorField { present: true, ..ErrorField::default() };
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        "type" => e.error_type = map.next_value::<Text<'de>>()?.0,
                        "message" => e.message = map.next_value::<Text<'de>>()?.0,
                        "details" => {
                            let raw: &'de RawValue = map.next_value()?;
                            e.details = (raw.get() != "null").then_some(raw);
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(e)
            }
        }
        // Read raw first, so that a scalar keeps its JSON text (see `Text::from_raw`).
        let raw = <&'de RawValue>::deserialize(d)?;
        match raw.get().as_bytes().first() {
            Some(b'{') => {
                let mut de = serde_json::Deserializer::from_str(raw.get());
                de.deserialize_map(V).map_err(serde::de::Error::custom)
            }
            Some(b'[') => Ok(ErrorField { present: true, ..ErrorField::default() }),
            Some(b'n') => Ok(ErrorField::default()),
            _ => Ok(ErrorField { present: true, plain: Text::from_raw(raw)?.0, ..ErrorField::default() }),
        }
    }
}

/// What [`for_each_item`] found besides the items.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListAnswer {
    /// The top-level `code`, when there is one.
    pub code: Option<i64>,
    /// Whether a list (or a single object under the singular key) was found.
    pub found: bool,
    /// What the answer is when it is not a JSON object ("an array", "a string", ...).
    pub top: Option<&'static str>,
    /// What was under the list's key when it was not an array ("an object", "null", ...).
    pub under_key: Option<&'static str>,
    /// How many items the list held (objects or not).
    pub items: usize,
}

impl ListAnswer {
    /// Why an answer that should be `{"<key>":[…]}` is not, naming what it is instead; `None` when it is
    /// (also for an empty list: then the answer says there is nothing).
    pub(crate) fn shape_error(&self, key: &str) -> Option<String> {
        if let Some(top) = self.top {
            return Some(format!("is {top}, not a JSON object with a \"{key}\" array"));
        }
        if self.found {
            return None;
        }
        Some(match self.under_key {
            Some(what) => format!("has \"{key}\" as {what}, not an array"),
            None => format!("has no \"{key}\" array"),
        })
    }
}

/// Whether a bare array (`[…]` instead of `{"<key>":[…]}`) is read as the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BareArray {
    /// Read as the list (an answer whose documented shape is a guess: the batch answer).
    Accept,
    /// Not read: the answer is reported as an array ([`ListAnswer::top`]). Realer documents an object.
    Refuse,
}

/// Hands every item of the list under `key` to `each`, as raw JSON borrowed from `body`. Also accepted: a single
/// object under `singular`, and (with [`BareArray::Accept`]) a bare array. Items are not checked beyond their
/// syntax. Only the first array under `key` is read. An answer of another shape is not an error here:
/// [`ListAnswer`] says what it is.
pub(crate) fn for_each_item<'a>(
    body: &'a [u8],
    key: &str,
    singular: Option<&str>,
    bare_array: BareArray,
    each: &mut dyn FnMut(&'a RawValue),
) -> Result<ListAnswer, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if !matches!((first, bare_array), (Some(b'{'), _) | (Some(b'['), BareArray::Accept)) {
        // Checked as JSON (skipped, not walked item by item into anything), then named.
        IgnoredAny::deserialize(&mut de)?;
        de.end()?;
        let top = match first {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        };
        return Ok(ListAnswer { top: Some(top), ..ListAnswer::default() });
    }
    let found = Top { key, singular, each }.deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

/// How many items of the list [`for_each_item`] would hand over are JSON objects (what a list may hold:
/// see [`object`]); 0 when the body is not a readable list answer.
pub(crate) fn count_items(body: &[u8], key: &str, singular: Option<&str>, bare_array: BareArray) -> usize {
    let mut n = 0usize;
    let _ = for_each_item(body, key, singular, bare_array, &mut |raw| n += usize::from(raw.get().starts_with('{')));
    n
}

/// Items of a list that could not be used, told once (with the first one) rather than once each: a list
/// of 500,000 bad items is one log line, and costs no more memory than one.
#[derive(Default)]
pub(crate) struct Skipped {
    count: usize,
    first: Option<String>,
}

impl Skipped {
    pub(crate) fn add(&mut self, why: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(why());
        }
    }

    /// How many were skipped.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// What was said of the first one skipped.
    pub(crate) fn first(&self) -> Option<&str> {
        self.first.as_deref()
    }

    /// One warning, when anything was skipped: `what` names the items ("commands without an id").
    pub(crate) fn report(self, what: &str, warn: &mut dyn FnMut(crate::log::Level, String)) {
        if let Some(first) = self.first {
            warn(crate::log::Level::Warn, format!("{} {what}; the first: {first}", self.count));
        }
    }
}

struct Top<'k, 'f, 'a> {
    key: &'k str,
    singular: Option<&'k str>,
    each: &'f mut dyn FnMut(&'a RawValue),
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Top<'_, '_, 'a> {
    type Value = ListAnswer;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ListAnswer, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Top<'_, '_, 'a> {
    type Value = ListAnswer;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON object with \"{}\"", self.key)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ListAnswer, A::Error> {
        let mut items = 0;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            items += 1;
            (self.each)(raw);
        }
        Ok(ListAnswer { found: true, items, ..ListAnswer::default() })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ListAnswer, A::Error> {
        let mut out = ListAnswer::default();
        let mut one: Option<&'de RawValue> = None;
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            if *k == *self.key && !out.found {
                match map.next_value_seed(Items { each: &mut *self.each })? {
                    Ok(items) => {
                        (out.items, out.found, out.under_key) = (items, true, None);
                    }
                    Err(what) => out.under_key = Some(what),
                }
            } else if &*k == "code" {
                out.code = map.next_value::<Int>()?.0;
            } else if Some(&*k) == self.singular {
                let raw: &'de RawValue = map.next_value()?;
                one = raw.get().starts_with('{').then_some(raw);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if let (false, Some(raw)) = (out.found, one) {
            (self.each)(raw);
            (out.found, out.items, out.under_key) = (true, 1, None);
        }
        Ok(out)
    }
}

/// The value under the list's key: the items of an array (how many), or what else it is (skipped unchecked).
struct Items<'f, 'a> {
    each: &'f mut dyn FnMut(&'a RawValue),
}

type ItemsFound = Result<usize, &'static str>;

impl<'de: 'a, 'a> DeserializeSeed<'de> for Items<'_, 'a> {
    type Value = ItemsFound;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ItemsFound, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Items<'_, 'a> {
    type Value = ItemsFound;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ItemsFound, A::Error> {
        let mut n = 0;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            n += 1;
            (self.each)(raw);
        }
        Ok(Ok(n))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ItemsFound, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Err("an object"))
    }
    fn visit_unit<E>(self) -> Result<ItemsFound, E> {
        Ok(Err("null"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<ItemsFound, E> {
        Ok(Err("a boolean"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<ItemsFound, E> {
        Ok(Err("a number"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<ItemsFound, E> {
        Ok(Err("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<ItemsFound, E> {
        Ok(Err("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<ItemsFound, E> {
        Ok(Err("a string"))
    }
}

/// The top-level `code` of a JSON answer: `Some(None)` for JSON without one (or not an object), `None` for a
/// body that is not JSON. Everything else is skipped unchecked.
pub(crate) fn top_code(body: &[u8]) -> Option<Option<i64>> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<i64>, A::Error> {
            let mut code = None;
            while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                if &*k == "code" {
                    code = map.next_value::<Int>()?.0;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(code)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<i64>, A::Error> {
            skip_seq(seq).map(|_| None)
        }
        fn visit_unit<E>(self) -> Result<Option<i64>, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Option<i64>, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Option<i64>, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Option<i64>, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Option<i64>, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Option<i64>, E> {
            Ok(None)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let code = de.deserialize_any(V).ok()?;
    de.end().ok()?;
    Some(code)
}

/// One item of a list as `T`, only when it is a JSON object: a derived struct would also take an array
/// positionally (`[1]` as `{"id":1}`), which no Realer answer sends and which would make a 4-byte item cost a
/// whole item.
pub(crate) fn object<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, serde_json::Error> {
    if !raw.get().starts_with('{') {
        return Err(serde::de::Error::custom("not a JSON object"));
    }
    serde_json::from_str(raw.get())
}

/// A short excerpt of untrusted text for a message: at most `max` characters, control characters dropped.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
    if s.chars().filter(|c| !c.is_control()).nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(body: &str, key: &str, singular: Option<&str>) -> (Result<ListAnswer, String>, Vec<String>) {
        let mut got = Vec::new();
        let r = for_each_item(body.as_bytes(), key, singular, BareArray::Accept, &mut |raw| {
            got.push(raw.get().to_string())
        });
        (r.map_err(|e| e.to_string()), got)
    }

    fn shape(body: &str) -> (Option<String>, usize) {
        let mut n = 0;
        let r = for_each_item(body.as_bytes(), "commands", Some("command"), BareArray::Refuse, &mut |_| n += 1);
        (r.unwrap().shape_error("commands"), n)
    }

    #[test]
    fn lists_are_read_item_by_item() {
        let (r, got) = items(r#"{"code":2000,"x":{"a":[1]},"commands":[{"id":1},{"id":"b"} ,7]}"#, "commands", None);
        assert_eq!(r.unwrap(), ListAnswer { code: Some(2000), found: true, items: 3, ..ListAnswer::default() });
        assert_eq!(got, [r#"{"id":1}"#, r#"{"id":"b"}"#, "7"]);
        let (r, got) = items(r#"[{"id":1}]"#, "commands", None);
        assert_eq!((r.unwrap().found, got.len()), (true, 1));
        let (r, got) = items(r#"{"command":{"id":1},"code":"2000"}"#, "commands", Some("command"));
        assert_eq!(
            (r.unwrap(), got.len()),
            (ListAnswer { code: Some(2000), found: true, items: 1, ..Default::default() }, 1)
        );
        let (r, got) = items(r#"{"code":2000,"commands":{"id":1}}"#, "commands", None);
        assert_eq!((r.unwrap().found, got.len()), (false, 0));
        // A number out of range for f64 inside an item is the item's problem, not the list's.
        let (r, got) = items(r#"{"commands":[{"id":1,"value":1e999},{"id":2}]}"#, "commands", None);
        assert!(r.unwrap().found);
        assert_eq!(got[0], r#"{"id":1,"value":1e999}"#);
        assert!(items("{", "commands", None).0.is_err());
        assert!(items(r#"{"commands":[]} x"#, "commands", None).0.is_err());
        assert_eq!(
            count_items(br#"{"commands":[1,{"id":2},[3]]}"#, "commands", None, BareArray::Accept),
            1,
            "objects only"
        );
    }

    #[test]
    fn an_answer_of_another_shape_is_named_not_read() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let bare = r#"[{"id":1}]"#;
        for (body, why) in [
            (bare, "is an array, not a JSON object with a \"commands\" array"),
            ("[]", "is an array, not a JSON object with a \"commands\" array"),
            (&deep, "is an array, not a JSON object with a \"commands\" array"),
            (r#" "x""#, "is a string, not a JSON object with a \"commands\" array"),
            ("null", "is null, not a JSON object with a \"commands\" array"),
            ("12", "is a number, not a JSON object with a \"commands\" array"),
            (r#"{"commands":{"id":1}}"#, "has \"commands\" as an object, not an array"),
            (r#"{"commands":"none"}"#, "has \"commands\" as a string, not an array"),
            (r#"{"code":2000}"#, "has no \"commands\" array"),
        ] {
            assert_eq!(shape(body), (Some(why.to_string()), 0), "{}", &body[..body.len().min(30)]);
        }
        assert_eq!(shape(r#"{"commands":[]}"#), (None, 0), "an empty list, said so");
        assert_eq!(shape(r#"{"command":{"id":1}}"#), (None, 1));
        assert_eq!(shape(r#"{"commands":"x","commands":[{"id":1}]}"#), (None, 1), "the list wins");
        assert!(for_each_item(b"[1,", "commands", None, BareArray::Refuse, &mut |_| ()).is_err(), "not JSON");
        assert_eq!(count_items(bare.as_bytes(), "commands", None, BareArray::Refuse), 0);
    }

    #[test]
    fn scalars_become_text() {
        #[derive(Deserialize)]
        struct T<'a> {
            #[serde(borrow)]
            a: Text<'a>,
            b: Int,
        }
        let t: T<'_> = serde_json::from_str(r#"{"a":"x\"y","b":"7"}"#).unwrap();
        assert_eq!((t.a.as_str(), t.b.0), (Some("x\"y"), Some(7)));
        let t: T<'_> = serde_json::from_str(r#"{"a":1.5,"b":3.5}"#).unwrap();
        assert_eq!((t.a.as_str(), t.b.0), (Some("1.5"), None));
        let t: T<'_> = serde_json::from_str(r#"{"a":[1,{"b":2}],"b":-4}"#).unwrap();
        assert_eq!((t.a.as_str(), t.b.0), (None, Some(-4)));
        let t: T<'_> = serde_json::from_str(r#"{"a":true,"b":null}"#).unwrap();
        assert_eq!((t.a.as_str(), t.b.0), (Some("true"), None));
        assert_eq!(excerpt("a\nb\u{1b}[31mc", 3), "ab[…");
        assert_eq!(
            top_code(br#"{"a":[1e999],"code":"4022"}"#),
            Some(Some(4022)),
            "skipped values are not range-checked"
        );
        assert_eq!(top_code(br#"{"a":{"code":1},"code":"4022"}"#), Some(Some(4022)));
        assert_eq!(top_code(b"[1]"), Some(None));
        assert_eq!(top_code(b"<html>"), None);
    }
}
