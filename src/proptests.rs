//! Property tests over every parser of what a server sends (untrusted input): the token answer, the catalog, desired
//! states, single and batch answers, error bodies, `Retry-After`, timestamps and CA PEM. For arbitrary bytes,
//! arbitrary JSON and JSON shaped like each answer, a parser never panics, gives an answer or an error with a
//! status, and stays within the memory rule (peak heap at most 4x the answer's size plus 1 MiB, counting the
//! answer itself), measured per parse by a counting allocator on the parsing thread.
//!
//! Each parser is called through one small helper below, so that a change of its signature is one edit here.
//! CI runs few cases (each block's `ci_cases`); `PROPTEST_CASES=20000 cargo test -p realer --lib proptests`
//! runs more.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;

use crate::catalog::{self, Command, Commands, ItemSink, Sensor, Sensors};
use crate::config::{Config, Secret};
use crate::error::{Error, ErrorKind, Result};
use crate::feed::{FeedOutcome, FeedResult, SingleAnswer};
use crate::transport::{Answer, AuthHeader, Body, Method, Transport};
use crate::{auth, codes, desired, json, time};

// The memory rule, measured by the counting allocator of the unit tests (in `process`, with the allocator
// it observes).
use crate::process::heap_meter::measure;

const MIB: usize = 1024 * 1024;

/// The memory rule for an answer of `answer_len` bytes that the parse held `peak` bytes beyond.
fn check_memory(what: &str, answer_len: usize, peak: usize) -> std::result::Result<(), TestCaseError> {
    let limit = 4 * answer_len + MIB;
    prop_assert!(
        answer_len + peak <= limit,
        "{what}: an answer of {answer_len} bytes peaked at {} bytes, above 4x + 1 MiB = {limit}",
        answer_len + peak
    );
    Ok(())
}

/// An error is a status a C caller can branch on, with a message saying what was wrong.
fn check_error(what: &str, e: &Error, kinds: &[ErrorKind]) -> std::result::Result<(), TestCaseError> {
    prop_assert!(kinds.contains(&e.kind), "{what}: unexpected kind {:?}: {}", e.kind, e.message);
    #[cfg(feature = "capi")]
    prop_assert_ne!(crate::ffi::error::status_of(e.kind), crate::ffi::error::REALER_OK);
    prop_assert!(!e.message.is_empty(), "{what}: an error without a message");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// One helper per parser, called the way the client calls it.

/// The token answer: the client reads the body as JSON, then the grant.
fn token(answer: &Answer, now_unix_ms: i64) -> Result<auth::Grant> {
    let json = codes::json_body(answer).ok_or_else(|| Error::protocol("token answer is not JSON"))?;
    auth::Grant::parse(&json, now_unix_ms)
}

/// Commands into the Rust API's list, sized first and finished as the client does (the answer still alive:
/// stricter than the client, which drops it first); how many warnings came.
fn commands(body: &[u8]) -> (Result<Commands>, usize) {
    let mut list = Commands::default();
    let mut warnings = 0;
    list.reserve(catalog::count::<Command>(body), body.len());
    let r = catalog::parse::<Command>(body, &mut |c| list.push(c), &mut |_, _| warnings += 1);
    list.finish();
    (r.map(|()| list), warnings)
}

fn sensors(body: &[u8]) -> (Result<Sensors>, usize) {
    let mut list = Sensors::default();
    let mut warnings = 0;
    list.reserve(catalog::count::<Sensor>(body), body.len());
    let r = catalog::parse::<Sensor>(body, &mut |s| list.push(s), &mut |_, _| warnings += 1);
    list.finish();
    (r.map(|()| list), warnings)
}

/// A commands answer read as an older service's desired states (the catalog's values).
fn catalog_desired_states(body: &[u8]) -> Result<desired::StateList> {
    let mut sink = desired::FromCatalog::default();
    sink.reserve(catalog::count::<Command>(body), body.len());
    catalog::parse::<Command>(body, &mut |c| sink.push(c), &mut |_, _| {})?;
    sink.finish();
    Ok(sink.0)
}

fn desired_states(body: &[u8], now_unix_ms: i64) -> Result<desired::StateList> {
    let mut states = desired::parse_desired_states(body, now_unix_ms, &mut |_, _| {})?;
    desired::decide(&mut states, &desired::DesiredMemory::in_memory(), now_unix_ms)?;
    states.shrink();
    Ok(states)
}

/// A single-item answer (2xx), as the client reads it: `None` when the body is not Realer's.
fn single(answer: &Answer, message_id: &str) -> Option<FeedResult> {
    let (_, body) = SingleAnswer::read(answer)?;
    Some(crate::feed::parse_single(answer.status, &body, message_id.to_string()))
}

fn batch(http_status: u16, body: &[u8], message_ids: &[String]) -> Result<Vec<Option<FeedResult>>> {
    crate::feed::parse_batch(http_status, body, message_ids)
}

fn error_body(answer: &Answer) -> Error {
    codes::error_from_answer(answer, ErrorKind::Api)
}

fn ca_pem(pem: &[u8]) -> Result<()> {
    Config::new().set_ca_pem(pem)
}

/// `Retry-After` as the transport reads it from a real answer (the parser itself is private to
/// `transport.rs`; once it is `pub(crate)` this can call it directly): a loopback server answers 503 with
/// the given header value.
struct RetryAfterServer {
    transport: Transport,
    values: mpsc::Sender<Vec<u8>>,
    auth: AuthHeader,
}

impl RetryAfterServer {
    fn start() -> RetryAfterServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (values, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            for (conn, value) in listener.incoming().zip(rx) {
                let Ok(mut conn) = conn else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let mut answer = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: ".to_vec();
                answer.extend_from_slice(&value);
                answer.extend_from_slice(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = conn.write_all(&answer);
            }
        });
        let mut config = Config::new();
        config.allow_insecure_loopback(true);
        config.set_base_url(&format!("http://127.0.0.1:{port}")).unwrap();
        let auth = AuthHeader::with_scheme("Bearer ", &Secret::new("token")).unwrap();
        RetryAfterServer { transport: Transport::new(&config, &[]), values, auth }
    }

    fn retry_after(&self, value: &[u8]) -> Result<Option<Duration>> {
        self.values.send(value.to_vec()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let answer = self.transport.send(Method::Get, "/retry-after", &self.auth, Body::Empty, deadline)?;
        assert_eq!(answer.status, 503);
        Ok(answer.retry_after)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Inputs: arbitrary bytes, arbitrary JSON text (duplicate keys, odd numbers, escapes included), answers of
// each shape with arbitrary values in their fields, and any of those damaged.

const FIELDS: &[&str] = &[
    "code",
    "commands",
    "command",
    "sensors",
    "sensor",
    "desired_states",
    "results",
    "status",
    "id",
    "value",
    "value_type",
    "kind",
    "pin_port",
    "qc",
    "mu",
    "error",
    "type",
    "message",
    "details",
    "error_description",
    "request_id",
    "feed_data_id",
    "warnings",
    "index",
    "message_id",
    "desired_id",
    "command_id",
    "sequence_number",
    "expires_at",
    "expires_in",
    "access_token",
    "renew_after",
    "token_type",
];

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Scalars as JSON text, with the values the parsers branch on and the edges of number handling.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-5000i64..5000).prop_map(|n| n.to_string()),
        any::<f64>().prop_filter_map("finite", |f| f.is_finite().then(|| format!("{f:?}"))),
        prop::sample::select(vec![
            "1e999",
            "-1e999",
            "-0",
            "0.0",
            "1.5",
            "2000",
            "4001",
            "4022",
            "5003",
            "4.4e-400",
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890",
        ])
        .prop_map(str::to_string),
        prop::sample::select(vec![
            "created",
            "idempotent",
            "rejected",
            "",
            "2000",
            "-1",
            "86400",
            "9999999999999999999999",
            "2026-04-24T10:15:00Z",
            "2026-04-24T10:15:00.123456789+05:30",
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:60.999-23:59",
            "2026-02-29T10:15:00Z",
            "0000-01-01T00:00:00z",
            "NumericRange",
            "Binary",
            "tok_abc",
            "a\"b\\c\u{1b}[31m\r\nd",
        ])
        .prop_map(json_string),
        ".{0,24}".prop_map(|s| json_string(&s)),
        "\\\\u[0-9a-fA-F]{4}".prop_map(|s| format!("\"{s}\"")),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(FIELDS).prop_map(json_string), 1 => ".{0,12}".prop_map(|s| json_string(&s))]
}

/// Any JSON value as text; objects keep their keys' order and may repeat a key.
fn json_text() -> impl Strategy<Value = String> {
    scalar().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(|items| format!("[{}]", items.join(","))),
            vec((key(), inner), 0..8).prop_map(|pairs| {
                let fields: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// An object whose fields are mostly the contract's, with arbitrary values.
fn item() -> impl Strategy<Value = String> {
    vec((key(), prop_oneof![3 => scalar(), 1 => json_text()]), 0..8).prop_map(|pairs| {
        let fields: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("{{{}}}", fields.join(","))
    })
}

/// An answer with a list of items under `list` (or, at times, a bare array or one item under `singular`).
fn answer_shaped(list: &'static str, singular: Option<&'static str>) -> impl Strategy<Value = String> {
    let items = vec(prop_oneof![4 => item(), 1 => json_text()], 0..12);
    (items, scalar(), json_text(), 0u8..8).prop_map(move |(items, code, other, form)| {
        let list_text = format!("[{}]", items.join(","));
        match (form, singular) {
            (0, _) => list_text,
            (1, Some(one)) if !items.is_empty() => format!("{{\"code\":{code},\"{one}\":{}}}", items[0]),
            (2, _) => format!("{{\"{list}\":{list_text},\"code\":{code},\"{list}\":{other}}}"),
            (3, _) => format!("{{\"other\":{other},\"{list}\":{list_text}}}"),
            _ => format!("{{\"code\":{code},\"{list}\":{list_text}}}"),
        }
    })
}

/// A text damaged: truncated, a byte replaced, or bytes inserted.
fn damaged(text: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<u8>> {
    (text, any::<prop::sample::Index>(), any::<u8>(), 0u8..4).prop_map(|(t, at, byte, how)| {
        let mut b = t.into_bytes();
        if b.is_empty() {
            return b;
        }
        let i = at.index(b.len());
        match how {
            0 => b.truncate(i),
            1 => b[i] = byte,
            2 => b.insert(i, byte),
            _ => {}
        }
        b
    })
}

/// Bodies for a parser of answers with a list under `list`.
fn bodies(list: &'static str, singular: Option<&'static str>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..512),
        2 => json_text().prop_map(String::into_bytes),
        4 => answer_shaped(list, singular).prop_map(String::into_bytes),
        2 => damaged(answer_shaped(list, singular)),
    ]
}

fn http_status() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => prop::sample::select(vec![200u16, 201, 400, 401, 402, 403, 404, 409, 413, 422, 429, 500, 503]),
        1 => 100u16..1000,
        1 => any::<u16>(),
    ]
}

fn answer_of(status: u16, is_json: bool, body: Vec<u8>) -> Answer {
    Answer { status, retry_after: None, request_id: Some("req_1".into()), is_json, body }
}

fn ci(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

// ---------------------------------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(ci(256))]

    #[test]
    fn token_answers(body in bodies("access_token", None), is_json: bool, now in any::<i64>()) {
        let answer = answer_of(200, is_json, body);
        let (grant, peak) = measure(|| token(&answer, now));
        check_memory("token", answer.body.len(), peak)?;
        match grant {
            Ok(g) => {
                let t = g.access_token.expose();
                prop_assert!(!t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{t:?}");
                // The token goes into a header as it is: it must be a valid header value.
                prop_assert!(AuthHeader::with_scheme("Bearer ", &g.access_token).is_ok());
            }
            Err(e) => check_error("token", &e, &[ErrorKind::Protocol])?,
        }
    }

    #[test]
    fn catalog_answers(body in bodies("commands", Some("command")), sensor_body in bodies("sensors", Some("sensor"))) {
        let ((list, _), peak) = measure(|| commands(&body));
        check_memory("commands", body.len(), peak)?;
        match list {
            // Every command has an id; one with an error carries nothing else.
            Ok(list) => {
                prop_assert!(list.len() <= catalog::count::<Command>(&body));
                // Only the documented shape is a catalog, and an empty one only when its list is empty.
                let found = json::for_each_item(&body, "commands", Some("command"), json::BareArray::Refuse, &mut |_| ())
                    .unwrap();
                prop_assert!(found.shape_error("commands").is_none());
                prop_assert!(!list.is_empty() || found.items == 0);
                for c in list.iter() {
                    if c.error.is_some() {
                        prop_assert!(c.value.is_none() && c.kind.is_none() && c.pin_port.is_none());
                    }
                }
            }
            Err(e) => check_error("commands", &e, &[ErrorKind::Protocol])?,
        }
        let ((list, _), peak) = measure(|| sensors(&sensor_body));
        check_memory("sensors", sensor_body.len(), peak)?;
        if let Err(e) = list {
            check_error("sensors", &e, &[ErrorKind::Protocol])?;
        }
    }

    #[test]
    fn desired_state_answers(body in bodies("desired_states", None), now in any::<i64>()) {
        let (states, peak) = measure(|| desired_states(&body, now));
        check_memory("desired states", body.len(), peak)?;
        match states {
            Ok(states) => {
                let found = json::for_each_item(&body, "desired_states", None, json::BareArray::Refuse, &mut |_| ())
                    .unwrap();
                prop_assert!(found.shape_error("desired_states").is_none());
                for s in states.iter() {
                    prop_assert!(s.desired_id.is_some());
                    prop_assert!(s.sequence_number.is_none_or(|n| n >= 0));
                }
                // At most one state per command is applied among those with a sequence number.
                let mut applied = std::collections::HashSet::new();
                for s in states.iter().filter(|s| s.sequence_number.is_some()) {
                    if s.action == desired::DesiredAction::Apply {
                        prop_assert!(applied.insert(s.command_id.to_string()), "two states of {} applied", s.command_id);
                    }
                }
            }
            Err(e) => check_error("desired states", &e, &[ErrorKind::Protocol])?,
        }
    }

    #[test]
    fn single_answers(body in bodies("results", None), status in http_status(), is_json: bool) {
        let answer = answer_of(status, is_json, body);
        let (result, peak) = measure(|| single(&answer, "msg-1"));
        check_memory("single answer", answer.body.len(), peak)?;
        if let Some(r) = result {
            prop_assert!(matches!(r.outcome, FeedOutcome::Created | FeedOutcome::Idempotent));
            prop_assert_eq!(r.message_id, "msg-1");
            prop_assert_eq!(r.http_status, status);
            if let Some(w) = r.warnings_json {
                prop_assert!(serde_json::from_str::<serde::de::IgnoredAny>(&w).is_ok(), "{w}");
            }
        }
    }

    #[test]
    fn batch_answers(body in bodies("results", None), status in http_status(), sent in 0usize..6) {
        let ids: Vec<String> = (0..sent).map(|i| format!("msg-{}", i % 3)).collect();
        let (results, peak) = measure(|| batch(status, &body, &ids));
        check_memory("batch answer", body.len(), peak)?;
        match results {
            Ok(results) => {
                prop_assert_eq!(results.len(), ids.len());
                for (r, id) in results.iter().zip(&ids) {
                    if let Some(r) = r {
                        prop_assert_eq!(&r.message_id, id);
                        if let Some(e) = &r.error {
                            prop_assert!(!r.is_accepted());
                            check_error("batch result", e, &[ErrorKind::Api])?;
                        }
                    }
                }
            }
            Err(e) => check_error("batch answer", &e, &[ErrorKind::Protocol])?,
        }
    }

    #[test]
    fn error_bodies(body in prop_oneof![bodies("error", None), item().prop_map(String::into_bytes)],
                    status in http_status(), is_json: bool) {
        let answer = answer_of(status, is_json, body);
        let (e, peak) = measure(|| error_body(&answer));
        check_memory("error body", answer.body.len(), peak)?;
        check_error("error body", &e, &[ErrorKind::Api])?;
        prop_assert_eq!(e.http_status, status);
        prop_assert!(!e.request_id.is_empty());
        prop_assert_eq!(e.retryable, codes::classify(status, Some(e.code)) == codes::Class::Retry);
    }

    #[test]
    fn list_readers(body in bodies("commands", Some("command"))) {
        // The generic reader under every list parser: items are valid JSON borrowed from the body, and the
        // count is how many of those it hands over are objects (the only items a list may hold).
        for bare in [json::BareArray::Accept, json::BareArray::Refuse] {
            let (mut n, mut all) = (0usize, 0usize);
            let r = json::for_each_item(&body, "commands", Some("command"), bare, &mut |raw| {
                assert!(serde_json::from_str::<serde::de::IgnoredAny>(raw.get()).is_ok());
                n += usize::from(raw.get().starts_with('{'));
                all += 1;
            });
            if let Ok(found) = r {
                prop_assert_eq!(n, json::count_items(&body, "commands", Some("command"), bare));
                prop_assert_eq!(all, found.items);
                // An answer that is not the documented shape hands over nothing, and says why.
                prop_assert!(found.shape_error("commands").is_some() || found.found);
                if found.top.is_some() {
                    prop_assert_eq!((all, found.found), (0, false));
                }
                if bare == json::BareArray::Refuse && body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
                    prop_assert_eq!(found.top, Some("an array"));
                }
            }
        }
        // Not the converse: a top-level `code` that is a string with a lone surrogate escape ("\uDaaa") is
        // JSON to a skipping reader, but not text, and `top_code` then says "not JSON" (as the list readers do).
        if json::top_code(&body).is_some() {
            prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok());
        }
    }
}

proptest! {
    #![proptest_config(ci(1024))]

    #[test]
    fn timestamps_from_any_text(s in prop_oneof![
        ".{0,40}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?.{0,2}",
    ]) {
        let (any, peak) = measure(|| time::parse_rfc3339_any_ms(&s));
        check_memory("timestamp", s.len(), peak)?;
        if let Ok(ms) = time::parse_rfc3339_utc_ms(&s) {
            prop_assert_eq!(any, Ok(ms), "UTC is one offset among any");
        }
        // What parses formats back to the same instant (to the millisecond), when its year can be written.
        if let Ok(ms) = any {
            if let Some(text) = time::format_rfc3339_ms(ms) {
                prop_assert_eq!(time::parse_rfc3339_utc_ms(&text), Ok(ms), "{} -> {}", s, text);
            }
        }
    }

    #[test]
    fn timestamps_round_trip(ms in prop_oneof![any::<i64>(), -62_167_219_200_000i64..253_402_300_800_000]) {
        match time::format_rfc3339_ms(ms) {
            Some(text) => prop_assert_eq!(time::parse_rfc3339_utc_ms(&text), Ok(ms), "{}", text),
            // Only years outside 0..=9999 cannot be written.
            None => prop_assert!(!(-62_167_219_200_000..253_402_300_800_000).contains(&ms)),
        }
    }
}

proptest! {
    #![proptest_config(ci(128))]

    #[test]
    fn ca_pem_text(body in prop_oneof![
        vec(any::<u8>(), 0..2048),
        (vec(any::<u8>(), 0..1024), "[A-Za-z0-9+/=\r\n ]{0,200}", 0u8..3).prop_map(|(der, b64, how)| {
            let inner = match how {
                0 => b64,
                _ => base64_lines(&der),
            };
            let label = if how == 2 { "PRIVATE KEY" } else { "CERTIFICATE" };
            format!("-----BEGIN {label}-----\n{inner}\n-----END {label}-----\n").into_bytes()
        }),
    ]) {
        let (r, peak) = measure(|| ca_pem(&body));
        check_memory("CA PEM", body.len(), peak)?;
        if let Err(e) = r {
            check_error("CA PEM", &e, &[ErrorKind::Config])?;
        }
    }
}

proptest! {
    #![proptest_config(ci(64))]

    #[test]
    fn retry_after(value in prop_oneof![
        "[0-9]{1,25}",
        "[ -~]{0,40}",
        "(Mon|Tue|Sun), [0-9]{2} (Jan|Nov|Feb) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
        vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]) {
        thread_local! {
            static SERVER: RetryAfterServer = RetryAfterServer::start();
        }
        let got = SERVER.with(|s| s.retry_after(value.as_bytes()));
        match &got {
            Ok(Some(d)) => prop_assert!(*d <= Duration::from_secs(86_400), "{value:?} -> {d:?}"),
            Ok(None) => prop_assert!(value.trim().parse::<u64>().is_err(), "{value:?} ignored"),
            // A header value HTTP does not allow: the answer is refused, with a status.
            Err(e) => check_error("retry-after", e, &[ErrorKind::Protocol, ErrorKind::Network])?,
        }
        if let Ok(n) = value.trim().parse::<u64>() {
            prop_assert_eq!(got.ok().flatten(), Some(Duration::from_secs(n.min(86_400))));
        }
    }
}

fn base64_lines(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(3).enumerate() {
        if i > 0 && i % 16 == 0 {
            out.push('\n');
        }
        let n = chunk.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for j in 0..4 {
            out.push(if j <= chunk.len() { A[(n >> (18 - 6 * j) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// Answers of up to 8 MiB made of minimal or unusual items, which the generated answers rarely reach: the
/// memory rule as written (peak heap, the answer included, at most 4x its size plus 1 MiB), whatever the
/// items. The lists are compact (src/records.rs: an item costs at most its JSON text, plus 4 bytes of
/// index), so no item is too small for the rule. Items that are not items (`{}` without an id, an array)
/// cost nothing (and a list of only those is refused). Prints the table of ratios.
#[test]
fn memory_rule_holds_for_answers_of_any_items() {
    let long = format!(r#"{{"id":"{}","value":"{}"}}"#, "a".repeat(4000), "b".repeat(4000));
    let cases: &[(&str, &str, bool)] = &[
        ("commands", "{}", false),
        ("commands", "[1]", false),
        ("commands", r#"{"id":1}"#, true),
        ("commands", r#"{"id":"a"}"#, true),
        ("commands", r#"{"id":1e15}"#, true),
        ("commands", r#"{"id":"\u0000"}"#, true),
        ("commands", r#"{"id":1,"value":"1"}"#, true),
        ("commands", r#"{"id":1,"value":"a","value_type":"b","kind":"c","pin_port":"d"}"#, true),
        ("commands", r#"{"id":1,"error":"x"}"#, true),
        ("commands", r#"{"id":1,"error":{}}"#, true),
        ("commands", r#"{"id":1,"error":1e300}"#, true),
        ("commands", r#"{"id":1,"error":{"type":"t","message":"m"}}"#, true),
        ("commands", r#"{"id":1,"kind":1,"kind":1}"#, true),
        ("commands", r#"{"id":1,"kind":1e999}"#, true),
        ("commands", r#"{"id":1,"kind":{}}"#, true),
        ("commands", &long, true),
        ("catalog desired", r#"{"id":1,"value":1}"#, true),
        ("catalog desired", r#"{"id":"a","value":"b","value_type":"c"}"#, true),
        ("sensors", r#"{"id":1}"#, true),
        ("sensors", r#"{"id":"a","kind":"b","qc":"c","mu":"d","pin_port":"e"}"#, true),
        ("sensors", r#"{"id":1,"mu":1e999}"#, true),
        ("sensors", r#"{"id":1,"error":"x"}"#, true),
        ("desired_states", "{}", false),
        ("desired_states", "[1,1]", false),
        ("desired_states", r#"{"desired_id":1,"command_id":1}"#, true),
        ("desired_states", r#"{"desired_id":1,"command_id":1,"expires_in":1}"#, true),
        ("desired_states", r#"{"desired_id":1,"command_id":1,"sequence_number":1}"#, true),
        (
            "desired_states",
            r#"{"desired_id":"a","command_id":"b","value":"c","sequence_number":1,"expires_at":"x"}"#,
            true,
        ),
    ];
    let mut failures = Vec::new();
    println!("| list | item | items | answer bytes | peak (answer included) | ratio | limit |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for &(what, item, is_item) in cases {
        // Every case at 2 MiB; the costliest shapes also at the 8 MiB bound (the ratio does not change with the
        // size, and a debug build reads 8 MiB slowly).
        let costliest = ["{}", r#"{"id":1}"#, r#"{"desired_id":1,"command_id":1,"expires_in":1}"#].contains(&item);
        let sizes: &[usize] = if costliest { &[2 * MIB, 8 * MIB - 64] } else { &[2 * MIB] };
        for &size in sizes {
            let key = if what == "catalog desired" { "commands" } else { what };
            let n = (size - 40) / (item.len() + 1);
            let mut body = format!("{{\"code\":2000,\"{key}\":[");
            for i in 0..n {
                body.push_str(if i == 0 { "" } else { "," });
                body.push_str(item);
            }
            body.push_str("]}");
            let body = body.into_bytes();
            assert!(body.len() <= 8 * MIB);
            let (read, peak) = match what {
                "commands" => measure(|| commands(&body).0.map(|l| l.len())),
                "sensors" => measure(|| sensors(&body).0.map(|l| l.len())),
                "catalog desired" => measure(|| catalog_desired_states(&body).map(|l| l.len())),
                _ => measure(|| desired_states(&body, 0).map(|l| l.len())),
            };
            match read {
                Ok(read) => assert!(is_item && read == n, "{what} of {item}: {read} items"),
                // A list of nothing usable is no answer (not an empty one): refused, at the same cost.
                Err(e) => assert!(!is_item && e.kind == ErrorKind::Protocol, "{what} of {item}: {e:?}"),
            }
            let total = body.len() + peak;
            let limit = 4 * body.len() + MIB;
            let shown = json::excerpt(item, 40);
            println!(
                "| {what} | `{shown}` | {n} | {} | {total} | {:.2}x | {limit} |",
                body.len(),
                total as f64 / body.len() as f64
            );
            if total > limit {
                failures.push(format!("{what} of {n} x {item}: {total} bytes, limit {limit}"));
            }
        }
    }
    assert!(failures.is_empty(), "above 4x + 1 MiB:\n{}", failures.join("\n"));
}
