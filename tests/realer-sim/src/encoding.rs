//! Small wire encodings the sim needs and would otherwise pull crates for: base64 (Basic auth),
//! `application/x-www-form-urlencoded` (OAuth bodies), hex and random ids.

use ring::rand::{SecureRandom, SystemRandom};

/// Decodes standard base64 (RFC 4648 alphabet; trailing `=` padding optional).
/// Returns `None` on any other character or an impossible length.
pub fn base64_decode(input: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let trimmed = input.trim_end_matches('=');
    if input.len() - trimmed.len() > 2 || trimmed.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for chunk in trimmed.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// Encodes standard base64 with padding (used by tests and the admin docs).
pub fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let mut acc = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            acc |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((acc >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes one `application/x-www-form-urlencoded` name or value: `+` is a space, `%XX` a byte.
/// `None` when a `%` escape is malformed or the result is not UTF-8.
pub fn form_decode(input: &str) -> Option<String> {
    let b = input.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Parses a form body into (name, value) pairs in order. `None` when any pair fails to decode.
pub fn parse_form(body: &str) -> Option<Vec<(String, String)>> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((form_decode(name)?, form_decode(value)?))
        })
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes from the system CSPRNG, as lower-case hex (2n characters).
pub fn random_hex(rng: &SystemRandom, n: usize) -> String {
    let mut buf = vec![0u8; n];
    // The system RNG only fails when the OS has no entropy source at all; a sim cannot run without one.
    rng.fill(&mut buf).expect("system random number generator");
    hex(&buf)
}

/// The loggable form of a secret: at most its first 4 characters and an ellipsis.
pub fn redact(secret: &str) -> String {
    let head: String = secret.chars().take(4).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "cdv_0123456789abcdefghijklmnop:demo-secret"] {
            let enc = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&enc).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm8"), Some(b"fo".to_vec()));
        assert_eq!(base64_decode("Z"), None);
        assert_eq!(base64_decode("Zm8*"), None);
        assert_eq!(base64_decode("Zm8==="), None);
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            parse_form("grant_type=client_credentials&scope=iot%3Acatalog%3Aread+iot:feed-data:write").unwrap(),
            vec![
                ("grant_type".to_string(), "client_credentials".to_string()),
                ("scope".to_string(), "iot:catalog:read iot:feed-data:write".to_string()),
            ]
        );
        assert_eq!(parse_form("a=%zz"), None);
        assert_eq!(parse_form("a=%4"), None);
        assert_eq!(parse_form("a&b=").unwrap(), vec![("a".into(), "".into()), ("b".into(), "".into())]);
    }

    #[test]
    fn redaction_keeps_four_characters() {
        assert_eq!(redact("b11db7f6c816568eb3b156df3aeaa5"), "b11d…");
        assert_eq!(redact("ab"), "ab…");
    }
}
