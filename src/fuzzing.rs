//! Entry points for the fuzz targets in `fuzz/`: each runs one parser of what a server sends the way the
//! client runs it, and returns the kind of error a caller would get. Not part of the API: compiled only with
//! the `test-hooks` feature, hidden from the documentation.

use crate::catalog::{self, Command, Commands, ItemSink, Sensor, Sensors};
use crate::error::{Error, ErrorKind, Result};
use crate::feed::SingleAnswer;
use crate::transport::Answer;
use crate::{auth, codes, desired, time};

/// The kind of error the parser gave, if it gave one.
pub type Outcome = Option<ErrorKind>;

fn status<T>(r: &Result<T>) -> Outcome {
    match r {
        Ok(_) => None,
        Err(e) => {
            assert!(!e.message.is_empty(), "an error without a message: {e:?}");
            Some(e.kind)
        }
    }
}

fn answer(http_status: u16, is_json: bool, body: &[u8]) -> Answer {
    Answer { status: http_status, retry_after: None, request_id: None, is_json, body: body.to_vec() }
}

/// The token answer, read as the client reads it (JSON, then the grant).
pub fn token(is_json: bool, body: &[u8], now_unix_ms: i64) -> Outcome {
    let answer = answer(200, is_json, body);
    let r = codes::json_body(&answer).ok_or_else(|| Error::protocol("token answer is not JSON")).and_then(|v| {
        let grant = auth::Grant::parse(&v, now_unix_ms)?;
        assert!(grant.access_token.expose().bytes().all(|b| (0x21..=0x7e).contains(&b)));
        Ok(grant)
    });
    status(&r)
}

/// A commands answer into the Rust API's list (sized first, as the client does).
pub fn commands(body: &[u8]) -> Outcome {
    let mut list = Commands::default();
    list.reserve(catalog::count::<Command>(body), body.len());
    let r = catalog::parse::<Command>(body, &mut |c| list.push(c), &mut |_, _| {});
    list.finish();
    for (i, c) in list.iter().enumerate() {
        assert!(list.get(i).is_some_and(|x| x == c) && list.view(i).is_some());
    }
    status(&r)
}

pub fn sensors(body: &[u8]) -> Outcome {
    let mut list = Sensors::default();
    list.reserve(catalog::count::<Sensor>(body), body.len());
    let r = catalog::parse::<Sensor>(body, &mut |s| list.push(s), &mut |_, _| {});
    list.finish();
    status(&r)
}

/// A `/desired-states` answer, read and decided.
pub fn desired_states(body: &[u8], now_unix_ms: i64) -> Outcome {
    let r = desired::parse_desired_states(body, now_unix_ms, &mut |_, _| {}).and_then(|mut states| {
        desired::decide(&mut states, &desired::DesiredMemory::in_memory(), now_unix_ms)?;
        Ok(states)
    });
    status(&r)
}

/// A single-item answer; a protocol error when it is not Realer's (a JSON object with one of its fields).
pub fn single(http_status: u16, is_json: bool, body: &[u8]) -> Outcome {
    let answer = answer(http_status, is_json, body);
    match SingleAnswer::read(&answer) {
        Some((_, body)) => {
            let r = crate::feed::parse_single(http_status, &body, "msg-0".into());
            assert_eq!(r.message_id, "msg-0");
            None
        }
        None => Some(ErrorKind::Protocol),
    }
}

/// A batch answer for `sent` items (message ids `msg-0`, `msg-1`, …, repeating after 4).
pub fn batch(http_status: u16, sent: usize, body: &[u8]) -> Outcome {
    let ids: Vec<String> = (0..sent).map(|i| format!("msg-{}", i % 4)).collect();
    let r = crate::feed::parse_batch(http_status, body, &ids);
    if let Ok(results) = &r {
        assert_eq!(results.len(), sent);
    }
    status(&r)
}

/// An error answer: always an error, with the answer's HTTP status.
pub fn error_body(http_status: u16, is_json: bool, body: &[u8]) -> Outcome {
    let e = codes::error_from_answer(&answer(http_status, is_json, body), ErrorKind::Api);
    assert_eq!(e.http_status, http_status);
    status::<()>(&Err(e))
}

/// A timestamp: what parses formats back to the same millisecond.
pub fn timestamp(text: &str) -> Outcome {
    let r = time::parse_rfc3339_any_ms(text);
    if let Ok(ms) = time::parse_rfc3339_utc_ms(text) {
        assert_eq!(r, Ok(ms));
    }
    if let Ok(ms) = r {
        if let Some(again) = time::format_rfc3339_ms(ms) {
            assert_eq!(time::parse_rfc3339_utc_ms(&again), Ok(ms), "{text:?} -> {again}");
        }
    }
    // A caller's timestamp: normalised to Realer's form, the same instant to the millisecond, or refused;
    // never accepted in another form.
    match time::normalize_timestamp(text) {
        Ok(sent) => {
            let b = sent.as_bytes();
            assert!(matches!(b.len(), 20 | 24) && b[10] == b'T' && b.last() == Some(&b'Z'), "{text:?} -> {sent}");
            assert_eq!(time::parse_rfc3339_utc_ms(&sent), r, "{text:?} -> {sent}");
        }
        Err(_) => assert!(r.is_err() || r.is_ok_and(|ms| time::format_rfc3339_ms(ms).is_none())),
    }
    status(&r.map_err(Error::protocol))
}

/// CA certificates in PEM.
pub fn ca_pem(pem: &[u8]) -> Outcome {
    status(&crate::config::Config::new().set_ca_pem(pem))
}
