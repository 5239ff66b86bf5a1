//! Through the C ABI: what stands between a device and Realer (a proxy, a gateway, a captive portal) never
//! decides a reading's fate. A 4xx page without Realer's JSON judges no item; a 413 that cannot be about the
//! item is a refusal, bounded in requests; a 2xx without Realer's body confirms nothing. realer-sim plays the
//! path with its `ProxyPage`, `StoreThenPage` and `BodyLimit` faults; its request log counts the requests. A
//! page on the token endpoint refuses no credentials.

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::ptr::null_mut;
use std::sync::Mutex;

use common::*;
use realer::ffi::client::*;
use realer::ffi::config::*;
use realer::ffi::error::*;
use realer::ffi::feed::*;
use realer::ffi::outbox::*;
use realer_sim::netkit::{FrontTls, Impairment, Netkit, Reply, Rule};
use realer_sim::PageBody;

type Lines = Mutex<Vec<String>>;

unsafe extern "C" fn keep_line(user_data: *mut c_void, _level: realer_log_level, message: *const c_char) {
    let lines = unsafe { &*(user_data as *const Lines) };
    lines.lock().unwrap().push(unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned());
}

fn cstr(v: &str) -> CString {
    CString::new(v).unwrap()
}

/// An outbox file in a directory of its own, which goes with everything in it when this is dropped: when the
/// test ends, passed or failed.
struct TempDb {
    dir: PathBuf,
    path: PathBuf,
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_db(tag: &str) -> TempDb {
    let dir =
        std::env::temp_dir().join(format!("realer-path-{tag}-{}-{}", std::process::id(), realer::time::now_unix_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("outbox.db");
    TempDb { dir, path }
}

/// A client for the sim's demo device through the C API, with an outbox at `db` when given, logging into
/// `lines`, authenticated (so that faults on `Any` meet only feed-data requests).
fn c_client(sim: &Sim, db: Option<&TempDb>, lines: &Lines) -> *mut realer_client {
    c_client_at(&sim.base_url(), &sim.ca_pem(), db, lines)
}

/// As [`c_client`], for a server at `url` (the sim, or something in front of it) whose CA is `pem`.
fn c_client_at(url: &str, pem: &str, db: Option<&TempDb>, lines: &Lines) -> *mut realer_client {
    let client = c_client_without_token(url, pem, db, lines);
    assert_eq!(unsafe { realer_client_authenticate(client) }, REALER_OK);
    client
}

/// As [`c_client_at`], before any token request.
fn c_client_without_token(url: &str, pem: &str, db: Option<&TempDb>, lines: &Lines) -> *mut realer_client {
    unsafe {
        let cfg = realer_config_new();
        assert_eq!(realer_config_set_base_url(cfg, cstr(url).as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_ca_pem(cfg, pem.as_ptr(), pem.len()), REALER_OK);
        assert_eq!(realer_config_set_device_id(cfg, cstr(builtin::DEVICE_ID).as_ptr()), REALER_OK);
        let (id, secret) = (cstr(builtin::CLIENT_ID), cstr(builtin::CLIENT_SECRET));
        assert_eq!(realer_config_set_credentials(cfg, id.as_ptr(), secret.as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_retry(cfg, 3, 10, 50), REALER_OK);
        let ud = lines as *const Lines as *mut c_void;
        assert_eq!(realer_config_set_logger(cfg, Some(keep_line), ud, REALER_LOG_DEBUG), REALER_OK);
        if let Some(db) = db {
            assert_eq!(realer_config_set_outbox(cfg, cstr(db.path.to_str().unwrap()).as_ptr(), 0, 0), REALER_OK);
        }
        let mut client = null_mut();
        assert_eq!(realer_client_new(cfg, &mut client), REALER_OK);
        realer_config_free(cfg);
        client
    }
}

/// C items and the strings they point to.
struct Items {
    _strings: Vec<CString>,
    items: Vec<realer_feed_item>,
}

/// `n` sensor readings `tag-0`.., each `value_bytes` long (about 110 bytes of JSON each for short values),
/// with fixed times: a resend is the same item.
fn readings(tag: &str, n: usize, value_bytes: usize) -> Items {
    let mut strings = vec![cstr("7"), cstr("2026-04-24T10:15:00Z")];
    let mut items = Vec::new();
    for i in 0..n {
        let value = format!("{i}.5");
        let value = format!("{value}{}", "0".repeat(value_bytes.saturating_sub(value.len())));
        strings.push(cstr(&value));
        strings.push(cstr(&format!("{tag}-{i}")));
        let mut it = unsafe { std::mem::zeroed::<realer_feed_item>() };
        assert_eq!(unsafe { realer_feed_item_init(&mut it) }, REALER_OK);
        it.sensor_id = strings[0].as_ptr();
        it.value_received_at = strings[1].as_ptr();
        it.value = strings[strings.len() - 2].as_ptr();
        it.message_id = strings[strings.len() - 1].as_ptr();
        items.push(it);
    }
    Items { _strings: strings, items }
}

fn last_message() -> String {
    unsafe { CStr::from_ptr((*realer_last_error()).message) }.to_string_lossy().into_owned()
}

/// Posts item `i` of `items` alone: its status, outcome and the last error's message.
fn post(client: *mut realer_client, items: &Items, i: usize) -> (realer_status, realer_feed_outcome, String) {
    let mut out = unsafe { std::mem::zeroed::<realer_feed_result>() };
    let st = unsafe { realer_feed_post(client, &items.items[i], &mut out) };
    let message = if st == REALER_OK { String::new() } else { last_message() };
    let id = unsafe { CStr::from_ptr(out.message_id.as_ptr()) }.to_str().unwrap().to_string();
    assert_eq!(id, unsafe { CStr::from_ptr(items.items[i].message_id) }.to_str().unwrap());
    (st, out.outcome, message)
}

/// Posts every item in one batch call: its status and each item's outcome and error message.
fn post_batch(client: *mut realer_client, items: &Items) -> (realer_status, Vec<(realer_feed_outcome, String)>) {
    unsafe {
        let mut out = null_mut();
        let st = realer_feed_post_batch(client, items.items.as_ptr(), items.items.len(), &mut out);
        assert_eq!(realer_batch_result_len(out), items.items.len());
        let results = (0..items.items.len())
            .map(|i| {
                let mut r = std::mem::zeroed::<realer_item_result>();
                assert_eq!(realer_batch_result_get(out, i, &mut r), REALER_OK);
                let m = if r.error_message.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(r.error_message).to_string_lossy().into_owned()
                };
                (r.outcome, m)
            })
            .collect();
        realer_batch_result_free(out);
        (st, results)
    }
}

fn flush(client: *mut realer_client) -> (realer_status, realer_flush_report) {
    let mut report = unsafe { std::mem::zeroed::<realer_flush_report>() };
    let st = unsafe { realer_outbox_flush(client, 0, &mut report) };
    (st, report)
}

fn stats(client: *mut realer_client) -> realer_outbox_stats {
    let mut s = unsafe { std::mem::zeroed::<realer_outbox_stats>() };
    assert_eq!(unsafe { realer_outbox_stats_read(client, &mut s) }, REALER_OK);
    s
}

/// Feed-data requests (single and batch) the sim has read so far.
fn feed_requests(sim: &Sim) -> usize {
    sim.request_log().iter().filter(|e| e.path.contains("/feed-data")).count()
}

/// The sim holds each of `tag-0..n` exactly once (one record each: none stored twice, under another source
/// say), and received each once: no replay reached it.
#[track_caller]
fn stored_once(sim: &Sim, tag: &str, n: usize) {
    let records = records_of(sim, tag, n);
    let replayed: Vec<_> = records.iter().filter(|r| r.times_received != 1).collect();
    assert!(replayed.is_empty(), "{tag}: received more than once: {replayed:?}");
}

/// The sim holds each of `tag-0..n` exactly once, some of them received again (a replay after a gateway
/// swallowed Realer's answer).
#[track_caller]
fn stored_once_replays_allowed(sim: &Sim, tag: &str, n: usize) {
    records_of(sim, tag, n);
}

/// The sim's records of `tag-0..n`, checked to be one for each id.
#[track_caller]
fn records_of(sim: &Sim, tag: &str, n: usize) -> Vec<realer_sim::Record> {
    let prefix = format!("{tag}-");
    let mut records: Vec<_> = sim.records().into_iter().filter(|r| r.message_id.starts_with(&prefix)).collect();
    records.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    let ids: Vec<&str> = records.iter().map(|r| r.message_id.as_str()).collect();
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
        v.sort();
        v
    };
    assert_eq!(ids, expected, "{tag}: the sim's records, one for each id");
    records
}

const REALER_413: &str = r#"{"code":4013,"error":{"type":"payload_too_large","message":"the request body exceeds the device plan byte budget"}}"#;

#[test]
fn a_page_from_the_path_judges_no_item() {
    let sim = sim();
    let lines = Lines::default();
    let db = temp_db("pages");
    let client = c_client(&sim, Some(&db), &lines);
    let items = readings("page", 20, 0);

    // A proxy's, gateway's or captive portal's own 4xx page (HTML or empty) refused the request: NOT_SENT.
    let pages = [(400, PageBody::Html), (413, PageBody::Empty), (415, PageBody::Html), (499, PageBody::Html)];
    for (i, (status, body)) in pages.into_iter().enumerate() {
        sim.inject(Fault::ProxyPage { status, body }, Target::FeedData, 1);
        let (st, outcome, message) = post(client, &items, i);
        assert_eq!((st, outcome), (REALER_ERR_API, REALER_FEED_OUTCOME_NOT_SENT), "HTTP {status}: {message}");
        assert!(message.contains("not Realer's"), "HTTP {status}: {message}");
    }
    // 408 and 425 pages say "try again": retried with backoff within the call.
    for (i, status) in [(4, 408), (5, 425)] {
        let before = feed_requests(&sim);
        sim.inject(Fault::ProxyPage { status, body: PageBody::Html }, Target::FeedData, 1);
        let (st, outcome, message) = post(client, &items, i);
        assert_eq!((st, outcome), (REALER_OK, REALER_FEED_OUTCOME_CREATED), "HTTP {status}: {message}");
        assert_eq!(feed_requests(&sim) - before, 2, "HTTP {status}: one retry");
    }
    // A 401 without Realer's body (an API gateway checking tokens) still renews the token.
    sim.inject(Fault::ProxyPage { status: 401, body: PageBody::Empty }, Target::FeedData, 1);
    assert_eq!(post(client, &items, 6).1, REALER_FEED_OUTCOME_CREATED);
    assert_eq!(sim.tokens_issued(), 2);
    // Realer's own JSON still judges the item.
    let realer_400 = r#"{"code":4000,"error":{"type":"bad_request","message":"malformed item"}}"#;
    sim.inject(Fault::Answer { status: 400, body: realer_400.into() }, Target::FeedData, 1);
    assert_eq!(post(client, &items, 7).1, REALER_FEED_OUTCOME_REJECTED);

    // The outbox behind a path answering its own 499 page to every feed-data request: nothing dead.
    let pending = readings("page-outbox", 5, 0);
    assert_eq!(unsafe { realer_outbox_push_many(client, pending.items.as_ptr(), 5) }, REALER_OK);
    sim.inject(Fault::ProxyPage { status: 499, body: PageBody::Html }, Target::Any, 10_000);
    let (st, report) = flush(client);
    assert_eq!(st, REALER_ERR_API);
    assert_eq!((report.sent, report.rejected, report.pending), (0, 0, 5));
    assert_eq!((stats(client).pending, stats(client).dead), (5, 0));
    sim.clear_faults();
    let (st, report) = flush(client);
    assert_eq!((st, report.sent, report.rejected, report.pending), (REALER_OK, 5, 0, 0));
    stored_once(&sim, "page-outbox", 5);
    unsafe { realer_client_free(client) };
}

/// Contract sections 2 and 6 on the token endpoint: Realer refuses credentials in RFC 6749's JSON (`error`) or
/// its own (a numeric `code`). A page of the path's own there (a firewall's HTML 403, a gateway's empty 400 or
/// 401) judged no credentials: `REALER_ERR_NETWORK` naming its status, not `REALER_ERR_AUTH` ("the credentials
/// or the device's access are wrong"), and a reading meanwhile stays unsent.
#[test]
fn a_page_from_the_path_on_the_token_endpoint_refuses_no_credentials() {
    let sim = sim();
    let lines = Lines::default();
    let client = c_client_without_token(&sim.base_url(), &sim.ca_pem(), None, &lines);
    for (status, body) in [(403, PageBody::Html), (400, PageBody::Empty), (401, PageBody::Empty)] {
        sim.inject(Fault::ProxyPage { status, body }, Target::Token, 1);
        let st = unsafe { realer_client_authenticate(client) };
        let e = unsafe { &*realer_last_error() };
        let message = last_message();
        assert_eq!(
            (st, e.http_status, e.retryable),
            (REALER_ERR_NETWORK, i32::from(status), false),
            "HTTP {status}: {message}"
        );
        assert!(message.contains("not Realer's"), "HTTP {status}: {message}");
    }
    let items = readings("token-page", 1, 0);
    sim.inject(Fault::ProxyPage { status: 403, body: PageBody::Html }, Target::Token, 1);
    let (st, outcome, message) = post(client, &items, 0);
    assert_eq!((st, outcome), (REALER_ERR_NETWORK, REALER_FEED_OUTCOME_NOT_SENT), "{message}");
    // Realer's own refusal is one of the credentials.
    let refused = r#"{"error":"invalid_client","error_description":"unknown client"}"#;
    sim.inject(Fault::Answer { status: 401, body: refused.into() }, Target::Token, 1);
    assert_eq!(unsafe { realer_client_authenticate(client) }, REALER_ERR_AUTH, "{}", last_message());
    assert_eq!(post(client, &items, 0).1, REALER_FEED_OUTCOME_CREATED);
    stored_once(&sim, "token-page", 1);
    unsafe { realer_client_free(client) };
}

#[test]
fn a_413_to_everything_costs_at_most_8_requests_and_rejects_nothing() {
    let sim = sim();
    let lines = Lines::default();

    // A proxy's HTML 413 page, or Realer's own 413 JSON, to every feed-data request: a batch of 100 readings
    // is refused as a request within 8 requests (a fresh client: nothing learned yet), every item NOT_SENT.
    // Readings of 1.2 KB are not "under 1 KiB": there the halving alone bounds the requests.
    let variants = [
        ("proxy", Fault::ProxyPage { status: 413, body: PageBody::Html }, 0),
        ("realer", Fault::Answer { status: 413, body: REALER_413.into() }, 0),
        ("proxy-1.2KB", Fault::ProxyPage { status: 413, body: PageBody::Empty }, 1200),
    ];
    for (what, fault, value_bytes) in variants {
        sim.clear_faults();
        let client = c_client(&sim, None, &lines);
        sim.inject(fault, Target::Any, 10_000);
        let items = readings(&format!("all413-{what}"), 100, value_bytes);
        let before = feed_requests(&sim);
        let (st, results) = post_batch(client, &items);
        let requests = feed_requests(&sim) - before;
        println!("413 to everything ({what}): a batch of 100 cost {requests} requests");
        assert_eq!(st, REALER_ERR_API);
        assert!(requests <= 8, "{what}: {requests} requests");
        for (i, (outcome, message)) in results.iter().enumerate() {
            assert_eq!(*outcome, REALER_FEED_OUTCOME_NOT_SENT, "{what}: item {i}: {message}");
        }
        unsafe { realer_client_free(client) };
    }

    // The outbox keeps them pending, none dead, flush after flush; once the path lets them through, each is
    // stored once.
    let db = temp_db("413");
    sim.clear_faults();
    let client = c_client(&sim, Some(&db), &lines);
    sim.inject(Fault::ProxyPage { status: 413, body: PageBody::Html }, Target::Any, 10_000);
    let items = readings("all413-outbox", 100, 0);
    assert_eq!(unsafe { realer_outbox_push_many(client, items.items.as_ptr(), 100) }, REALER_OK);
    for round in 1..=2 {
        let before = feed_requests(&sim);
        let (st, report) = flush(client);
        let requests = feed_requests(&sim) - before;
        println!("413 to everything: outbox flush {round} of 100 items cost {requests} requests");
        assert_eq!(st, REALER_ERR_API);
        assert!(requests <= 8, "{requests} requests");
        assert_eq!((report.sent, report.rejected, report.pending), (0, 0, 100));
        assert_eq!(stats(client).dead, 0);
    }
    assert!(lines.lock().unwrap().iter().any(|l| l.contains("413") && l.contains("refus")), "{lines:?}");
    sim.clear_faults();
    let (st, report) = flush(client);
    assert_eq!((st, report.sent, report.rejected, report.pending), (REALER_OK, 100, 0, 0));
    stored_once(&sim, "all413-outbox", 100);
    unsafe { realer_client_free(client) };
}

#[test]
fn a_413_judges_an_item_only_when_it_is_larger_than_what_the_path_carried() {
    let sim = sim();
    let lines = Lines::default();
    let client = c_client(&sim, None, &lines);
    let realer_413 = || Fault::Answer { status: 413, body: REALER_413.into() };

    // A small item (under 1 KiB) refused with Realer's 413: a refusal, not a judgement of the item.
    let small = readings("small", 1, 0);
    sim.inject(realer_413(), Target::FeedData, 1);
    let (st, outcome, message) = post(client, &small, 0);
    assert_eq!((st, outcome), (REALER_ERR_API, REALER_FEED_OUTCOME_NOT_SENT), "{message}");
    // A 3 KiB item goes through; a 2 KiB one refused with 413 afterwards is no larger than what the path
    // carried: not judged either.
    let carried = readings("carried", 1, 3000);
    assert_eq!(post(client, &carried, 0).1, REALER_FEED_OUTCOME_CREATED);
    let smaller = readings("smaller", 1, 2000);
    sim.inject(realer_413(), Target::FeedData, 1);
    let (st, outcome, message) = post(client, &smaller, 0);
    assert_eq!((st, outcome), (REALER_ERR_API, REALER_FEED_OUTCOME_NOT_SENT), "{message}");
    // An item larger than anything the path carried, refused by Realer's 413: over the byte budget.
    let large = readings("large", 1, 5000);
    sim.inject(realer_413(), Target::FeedData, 1);
    let (st, outcome, message) = post(client, &large, 0);
    assert_eq!((st, outcome), (REALER_ERR_API, REALER_FEED_OUTCOME_REJECTED), "{message}");
    // The same refused by a proxy's page: Realer judged nothing.
    sim.inject(Fault::ProxyPage { status: 413, body: PageBody::Html }, Target::FeedData, 1);
    let (st, outcome, message) = post(client, &large, 0);
    assert_eq!((st, outcome), (REALER_ERR_API, REALER_FEED_OUTCOME_NOT_SENT), "{message}");

    // Realer's own byte budget, lowered to 4 KiB: a batch of 100 readings (about 11 KB) goes in parts that
    // fit, every item stored; an 8 KiB reading in it is over the budget and rejected alone.
    sim.set_byte_budget(4096);
    let mut batch = readings("budget", 100, 0);
    let huge = readings("budget-huge", 1, 8000);
    batch.items[50].value = huge.items[0].value;
    batch.items[50].message_id = huge.items[0].message_id;
    let (st, results) = post_batch(client, &batch);
    assert_eq!(st, REALER_OK, "{results:?}");
    for (i, (outcome, message)) in results.iter().enumerate() {
        let want = if i == 50 { REALER_FEED_OUTCOME_REJECTED } else { REALER_FEED_OUTCOME_CREATED };
        assert_eq!(*outcome, want, "item {i}: {message}");
    }
    assert!(results[50].1.contains("byte budget"), "{}", results[50].1);
    unsafe { realer_client_free(client) };
}

#[test]
fn a_body_limit_on_the_path_sizes_later_batches() {
    let sim = sim();
    let lines = Lines::default();
    let client = c_client(&sim, None, &lines);
    // A proxy that lets bodies of at most 4000 bytes through: a batch of 100 readings (about 11 KB) does not
    // pass, a quarter of one does.
    sim.inject(Fault::BodyLimit { max_bytes: 4000 }, Target::Any, 10_000);
    let mut counts = Vec::new();
    for round in 0..3 {
        let items = readings(&format!("limit{round}"), 100, 0);
        let before = feed_requests(&sim);
        let (st, results) = post_batch(client, &items);
        counts.push(feed_requests(&sim) - before);
        assert_eq!(st, REALER_OK);
        assert!(results.iter().all(|(o, _)| *o == REALER_FEED_OUTCOME_CREATED), "{results:?}");
        stored_once(&sim, &format!("limit{round}"), 100);
    }
    println!("a 4000-byte body limit: batches of 100 cost {counts:?} requests");
    // The first batch finds the limit; the next ones are sized by it from the start: four quarters.
    assert!(counts[0] <= 7, "{counts:?}");
    assert_eq!(&counts[1..], [4, 4], "{counts:?}");
    unsafe { realer_client_free(client) };
}

#[test]
fn a_body_limit_under_1_kib_still_lets_batches_through_halved() {
    let sim = sim();
    let lines = Lines::default();
    let db = temp_db("small-limit");
    let client = c_client(&sim, Some(&db), &lines);
    // A path that lets bodies of at most 400 bytes through (a reading's body is about 120): a batch of 2 or 3
    // readings passes, a batch of 10 (under 1 KiB as a whole, too) does not. Halved down to what passes, not
    // stopped as a refusal (contract section 5); the outbox drains, nothing is dead.
    sim.inject(Fault::BodyLimit { max_bytes: 400 }, Target::Any, 10_000);
    let items = readings("small-limit", 10, 0);
    assert_eq!(unsafe { realer_outbox_push_many(client, items.items.as_ptr(), 10) }, REALER_OK);
    let before = feed_requests(&sim);
    let (st, report) = flush(client);
    let cost = feed_requests(&sim) - before;
    println!("a 400-byte body limit: an outbox flush of 10 items cost {cost} requests");
    assert_eq!(st, REALER_OK, "{:?}", lines.lock().unwrap());
    assert_eq!((report.sent, report.rejected, report.pending), (10, 0, 0));
    stored_once(&sim, "small-limit", 10);
    unsafe { realer_client_free(client) };
}

#[test]
fn a_2xx_without_realers_body_confirms_nothing() {
    let sim = sim();
    let lines = Lines::default();

    // A batch answered 204 by a gateway (that did forward it): the items go one by one, each confirmed by
    // Realer's own answer (idempotent: the swallowed batch had stored them).
    let client = c_client(&sim, None, &lines);
    sim.inject(Fault::StoreThenPage { status: 204, body: PageBody::Empty }, Target::Batch, 1);
    let items = readings("gw204", 10, 0);
    let (st, results) = post_batch(client, &items);
    assert_eq!(st, REALER_OK, "{results:?}");
    assert!(results.iter().all(|(o, _)| *o == REALER_FEED_OUTCOME_IDEMPOTENT), "{results:?}");
    stored_once_replays_allowed(&sim, "gw204", 10);
    unsafe { realer_client_free(client) };

    // The outbox behind a gateway answering every batch with an HTML 200: delivered one by one, not resent
    // as the same batch forever.
    let db = temp_db("2xx");
    let client = c_client(&sim, Some(&db), &lines);
    sim.inject(Fault::StoreThenPage { status: 200, body: PageBody::Html }, Target::Batch, 10_000);
    let items = readings("gw200", 20, 0);
    assert_eq!(unsafe { realer_outbox_push_many(client, items.items.as_ptr(), 20) }, REALER_OK);
    let (st, report) = flush(client);
    assert_eq!(st, REALER_OK);
    assert_eq!((report.sent + report.replayed, report.rejected, report.pending), (20, 0, 0));
    stored_once_replays_allowed(&sim, "gw200", 20);
    sim.clear_faults();

    // A single post answered 202 by a gateway with its own JSON (nothing forwarded): not confirmed, so
    // NOT_SENT with its message_id, never counted as stored; the resend stores it.
    let single = readings("gw202", 3, 0);
    sim.inject(Fault::Answer { status: 202, body: r#"{"message":"Accepted"}"#.into() }, Target::FeedData, 1);
    let (st, outcome, message) = post(client, &single, 0);
    assert_eq!(outcome, REALER_FEED_OUTCOME_NOT_SENT, "{message}");
    assert_ne!(st, REALER_OK);
    assert!(message.contains("not confirmed"), "{message}");
    assert!(lines.lock().unwrap().iter().any(|l| l.contains("gw202-0") && l.contains("not confirmed")), "{lines:?}");
    assert_eq!(post(client, &single, 0).1, REALER_FEED_OUTCOME_CREATED);
    // A gateway's own JSON with a `status` or a `message_id` of its own (no code, no created or idempotent,
    // no feed_data_id): it says nothing of the item being stored.
    for body in [r#"{"status":"queued"}"#, r#"{"status":"error","message_id":"gw202-0"}"#] {
        sim.inject(Fault::Answer { status: 200, body: body.into() }, Target::FeedData, 1);
        let (st, outcome, message) = post(client, &single, 0);
        assert_eq!(outcome, REALER_FEED_OUTCOME_NOT_SENT, "{body}: {message}");
        assert_ne!(st, REALER_OK);
    }
    // Stored, then answered with an empty 200 or an HTML 200: not confirmed; the resend is a replay.
    for (i, body) in [(1, PageBody::Empty), (2, PageBody::Html)] {
        sim.inject(Fault::StoreThenPage { status: 200, body }, Target::FeedData, 1);
        let (st, outcome, message) = post(client, &single, i);
        assert_eq!(outcome, REALER_FEED_OUTCOME_NOT_SENT, "{message}");
        assert_ne!(st, REALER_OK);
        assert!(message.contains("not confirmed"), "{message}");
        assert_eq!(post(client, &single, i).1, REALER_FEED_OUTCOME_IDEMPOTENT);
    }
    stored_once_replays_allowed(&sim, "gw202", 3);
    // Nothing was buried on a gateway's word.
    assert_eq!((stats(client).pending, stats(client).dead), (0, 0));
    unsafe { realer_client_free(client) };
}

/// The real path's pages: realer-netkit's reverse-proxy front (nginx's and squid's own pages, a body limit, a
/// gateway's empty 2xx) between the C client and the sim.
#[test]
fn through_a_reverse_proxy_its_pages_judge_nothing() {
    let sim = sim();
    let front = Netkit::http_front(&sim.base_url(), &sim.ca_pem(), FrontTls::Trusted).unwrap();
    let lines = Lines::default();
    let db = temp_db("front");
    let client = c_client_at(&front.url(), &front.ca_pem().unwrap(), Some(&db), &lines);
    let answer =
        |reply: Reply, prefix: &str| front.set(Impairment::Answer(Rule::next(1, reply).under(prefix))).unwrap();
    let feed_data = format!("/iot/v1/devices/{}/feed-data", builtin::DEVICE_ID);
    let batches = format!("{feed_data}/batches");

    // nginx's 499 (no body), squid's 413 page (HTML): refusals of the request; nginx's 408 page: retried.
    let single = readings("front", 3, 0);
    answer(Reply::Nginx(499), &feed_data);
    let (st, outcome, message) = post(client, &single, 0);
    assert_eq!((st, outcome), (REALER_ERR_API, REALER_FEED_OUTCOME_NOT_SENT), "{message}");
    answer(Reply::Squid(413), &feed_data);
    let (st, outcome, message) = post(client, &single, 1);
    assert_eq!((st, outcome), (REALER_ERR_API, REALER_FEED_OUTCOME_NOT_SENT), "{message}");
    answer(Reply::Nginx(408), &feed_data);
    assert_eq!(post(client, &single, 2).1, REALER_FEED_OUTCOME_CREATED);

    // nginx's client_max_body_size below any reading: the outbox buries nothing, a flush costs at most 8
    // requests; at 4 KiB, smaller batches deliver every reading once.
    front.set(Impairment::MaxBody(Some(64))).unwrap();
    let items = readings("front-outbox", 100, 0);
    assert_eq!(unsafe { realer_outbox_push_many(client, items.items.as_ptr(), 100) }, REALER_OK);
    let refused = || front.log().iter().filter(|seen| seen.status == 413).count();
    let before = refused();
    let (st, report) = flush(client);
    let requests = refused() - before;
    println!("netkit front, nginx 413 page to every body: an outbox flush of 100 items cost {requests} requests");
    assert_eq!(st, REALER_ERR_API);
    assert!((1..=8).contains(&requests), "{requests}");
    assert_eq!((report.sent, report.rejected, report.pending), (0, 0, 100));
    assert_eq!(stats(client).dead, 0);
    front.set(Impairment::MaxBody(Some(4096))).unwrap();
    let before = front.log().len();
    let (st, report) = flush(client);
    println!("netkit front, 4 KiB body limit: the 100 items went in {} requests", front.log().len() - before);
    assert_eq!((st, report.sent, report.rejected, report.pending), (REALER_OK, 100, 0, 0));
    stored_once(&sim, "front-outbox", 100);
    assert_eq!(stats(client).dead, 0);
    front.set(Impairment::MaxBody(None)).unwrap();

    // A gateway's 204 for a batch: the items go one by one, each confirmed by Realer (and batches wait an
    // hour).
    answer(Reply::Empty(204), &batches);
    let (st, results) = post_batch(client, &readings("front-204", 10, 0));
    assert_eq!(st, REALER_OK, "{results:?}");
    assert!(results.iter().all(|(o, _)| *o == REALER_FEED_OUTCOME_CREATED), "{results:?}");
    stored_once(&sim, "front-204", 10);

    unsafe { realer_client_free(client) };
}
