//! Items as JSON text, written field by field (this runs for every reading): no tree, one copy.

use crate::feed::Prepared;

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
pub(crate) struct JsonObject(String);

impl JsonObject {
    pub(crate) fn with_capacity(n: usize) -> JsonObject {
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

    pub(crate) fn string(&mut self, key: &'static str, value: &str) {
        self.key(key);
        push_json_string(&mut self.0, value);
    }

    pub(crate) fn number(&mut self, key: &'static str, value: u64) {
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

    pub(crate) fn finish(mut self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::FeedItem;
    use serde_json::Value;

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
}
