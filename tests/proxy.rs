//! The way to Realer through an HTTP CONNECT proxy, through the C ABI: the whole firmware loop
//! (c_examples/firmware_loop, configured only by REALER_* variables, REALER_PROXY included) through Debian's
//! tinyproxy with proxy authentication, whose log shows nothing but CONNECT (TLS stays end to end); the
//! proxy's refusals (tinyproxy's 407 without credentials, 401 with wrong ones, 403 and 500; the field network
//! kit's squid-like 502; a proxy that is not listening)
//! are REALER_ERR_NETWORK naming the proxy, never Realer's judgement, and the outbox keeps its items; the
//! proxy's password is in no message, log line or Debug output. And a TLS-intercepting middlebox or a captive
//! portal (another certificate for the server's name; the field network kit's) is named as one.

mod common;
#[path = "c/support.rs"]
mod support;
#[path = "support/tinyproxy.rs"]
mod tinyproxy;

use std::ffi::{c_char, c_void, CStr, CString};
use std::net::TcpListener;
use std::ptr::null_mut;
use std::sync::Mutex;

use common::*;
use realer::ffi::client::*;
use realer::ffi::config::*;
use realer::ffi::error::*;
use realer::ffi::feed::*;
use realer::ffi::outbox::*;
use realer_sim::netkit::{Impairment, Netkit, Reply, Rule};
use support::{build, compile_c, lib_dir, repo, run_program_with_args, scratch_dir, sim_env};
use tinyproxy::Tinyproxy;

const PASSWORD: &str = "pr0xy-pa55word";

fn cstr(v: &str) -> CString {
    CString::new(v).unwrap()
}

fn text(p: *const c_char) -> String {
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

unsafe extern "C" fn collect(user_data: *mut c_void, _level: realer_log_level, message: *const c_char) {
    let lines = unsafe { &*(user_data as *const Mutex<Vec<String>>) };
    lines.lock().unwrap().push(text(message));
}

/// A configuration of the built-in device of `sim` through `proxy` (a URL, or none), made through the C API,
/// logging at debug level into `lines`.
fn config(sim: &Sim, base_url: &str, proxy: Option<&str>, lines: &'static Mutex<Vec<String>>) -> *mut realer_config {
    unsafe {
        let cfg = realer_config_new();
        assert_eq!(realer_config_set_base_url(cfg, cstr(base_url).as_ptr()), REALER_OK);
        let ca = sim.ca_pem();
        assert_eq!(realer_config_set_ca_pem(cfg, ca.as_ptr(), ca.len()), REALER_OK);
        assert_eq!(realer_config_set_device_id(cfg, cstr(builtin::DEVICE_ID).as_ptr()), REALER_OK);
        let (id, secret) = (cstr(builtin::CLIENT_ID), cstr(builtin::CLIENT_SECRET));
        assert_eq!(realer_config_set_credentials(cfg, id.as_ptr(), secret.as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_timeouts(cfg, 3_000, 8_000), REALER_OK);
        assert_eq!(realer_config_set_retry(cfg, 3, 20, 100), REALER_OK);
        if let Some(p) = proxy {
            assert_eq!(realer_config_set_proxy(cfg, cstr(p).as_ptr()), REALER_OK, "{}", last().3);
        }
        let user_data = lines as *const Mutex<Vec<String>> as *mut c_void;
        assert_eq!(realer_config_set_logger(cfg, Some(collect), user_data, REALER_LOG_DEBUG), REALER_OK);
        cfg
    }
}

fn client_of(cfg: *mut realer_config) -> *mut realer_client {
    let mut client = null_mut();
    assert_eq!(unsafe { realer_client_new(cfg, &mut client) }, REALER_OK, "{}", last().3);
    client
}

/// The last error: status, HTTP status, retryable, message.
fn last() -> (realer_status, i32, bool, String) {
    let e = unsafe { &*realer_last_error() };
    (e.status, e.http_status, e.retryable, text(e.message))
}

fn reading(sensor: &CString, value: &CString, message_id: &CString) -> realer_feed_item {
    let mut item = unsafe { std::mem::zeroed::<realer_feed_item>() };
    assert_eq!(unsafe { realer_feed_item_init(&mut item) }, REALER_OK);
    item.sensor_id = sensor.as_ptr();
    item.value = value.as_ptr();
    item.message_id = message_id.as_ptr();
    item
}

fn leak_lines() -> &'static Mutex<Vec<String>> {
    Box::leak(Box::new(Mutex::new(Vec::new())))
}

/// The whole firmware loop (token, catalog and desired states, readings one by one, a batch, the outbox
/// flushed) of the C example, configured by the REALER_* variables with REALER_PROXY, through tinyproxy
/// with Basic proxy authentication. tinyproxy relays only CONNECTs to the sim's port: no request path of
/// Realer's ever reaches its log; the readings arrive once each; the password is nowhere in the output.
#[test]
fn firmware_loop_through_tinyproxy() {
    let dir = scratch_dir("proxy-firmware-loop");
    let sim = sim();
    let tinyproxy = Tinyproxy::start(
        &dir.join("tinyproxy"),
        &format!("BasicAuth alice {PASSWORD}\nConnectPort {}", sim.addr().port()),
    );
    let exe = build_firmware_loop(&dir);
    let mut env = sim_env(&sim, &dir, builtin::DEVICE_ID, builtin::CLIENT_ID, builtin::CLIENT_SECRET);
    env.push(("REALER_PROXY".into(), tinyproxy.url(Some(&format!("alice:{PASSWORD}")))));
    let outbox = dir.join("outbox.db");
    let _ = std::fs::remove_file(&outbox);
    let run = run_program_with_args(&exe, &["--outbox", outbox.to_str().unwrap()], &env, &dir);
    println!("{}", run.output());
    assert_eq!(run.code, Some(0), "firmware_loop through the proxy failed\n{}", run.output());
    assert!(run.stdout.contains("Done: every step succeeded."), "{}", run.output());
    assert!(run.stdout.contains("still pending 0"), "{}", run.output());
    assert!(!run.output().contains(PASSWORD), "the proxy password leaked into the output");

    let records = sim.records();
    assert!(!records.is_empty());
    let mut ids: Vec<&str> = records.iter().map(|r| r.message_id.as_str()).collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "every reading stored once");

    let requests = tinyproxy.requests();
    println!("tinyproxy's log of requests:\n{}", requests.join("\n"));
    let target = format!("CONNECT {}:{} HTTP/1.1", "127.0.0.1", sim.addr().port());
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|r| *r == target), "tinyproxy saw more than CONNECT: {requests:#?}");
    let log = tinyproxy.log_text();
    assert!(!log.contains("/iot/v1") && !log.contains("/oauth"), "a request path reached the proxy:\n{log}");
    assert!(!log.contains(PASSWORD));
}

/// Builds c_examples/firmware_loop with its Makefile (gcc directly when make is missing), as
/// tests/firmware_loop.rs does.
fn build_firmware_loop(dir: &std::path::Path) -> std::path::PathBuf {
    if !std::process::Command::new("make").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return compile_c(&["c_examples/firmware_loop.c"], dir, "firmware_loop", false);
    }
    let mut make = std::process::Command::new("make");
    make.arg("-C")
        .arg(repo().join("c_examples"))
        .arg(format!("LIBDIR={}", lib_dir().display()))
        .arg(format!("BUILDDIR={}", dir.display()));
    build(&mut make);
    dir.join("firmware_loop")
}

/// Each refusal on the way: the status, its retryable flag, and what the message must say.
#[test]
fn proxy_refusals_are_network_errors_naming_the_proxy() {
    let dir = scratch_dir("proxy-refusals");
    let sim = sim();
    // Tunnels only to port 1: the sim's port is refused (403) once the credentials are right.
    let tinyproxy = Tinyproxy::start(&dir.join("tinyproxy"), &format!("BasicAuth alice {PASSWORD}\nConnectPort 1"));
    // The kit's squid-like CONNECT proxy, answering with squid's 502 page.
    let squid = Netkit::connect_proxy().unwrap();
    squid.set(Impairment::Answer(Rule::always(Reply::Squid(502)))).unwrap();
    let bad_gateway = squid.url();
    let closed = format!("http://{}", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let lines = leak_lines();
    let shown = |url: &str| url.split_once('@').map_or(url.to_string(), |(_, h)| format!("http://{h}"));
    let cases: Vec<(String, realer_status, bool, &str)> = vec![
        (tinyproxy.url(None), REALER_ERR_NETWORK, false, "407"),
        (tinyproxy.url(Some("alice:wrong-pa55word")), REALER_ERR_NETWORK, false, "refused the user name and password"),
        (tinyproxy.url(Some(&format!("alice:{PASSWORD}"))), REALER_ERR_NETWORK, false, "403"),
        (bad_gateway.clone(), REALER_ERR_NETWORK, true, "502 Bad Gateway: it could not reach"),
        (closed.clone(), REALER_ERR_NETWORK, true, "connecting to the proxy"),
    ];
    for (proxy, want, retryable, needle) in &cases {
        let before = tinyproxy.requests().len();
        let cfg = config(&sim, &sim.base_url(), Some(proxy), lines);
        let outbox = dir.join(format!("outbox-{}.db", proxy.len()));
        let _ = std::fs::remove_file(&outbox);
        unsafe { assert_eq!(realer_config_set_outbox(cfg, cstr(outbox.to_str().unwrap()).as_ptr(), 0, 0), REALER_OK) };
        let client = client_of(cfg);
        unsafe { realer_config_free(cfg) };
        let (sensor, value, id) = (cstr("7"), cstr("1"), cstr(&format!("refused-{}", proxy.len())));
        let item = reading(&sensor, &value, &id);
        let mut result = unsafe { std::mem::zeroed::<realer_feed_result>() };
        let status = unsafe { realer_feed_post(client, &item, &mut result) };
        let (st, http, retry, message) = last();
        println!("{}: {message}", shown(proxy));
        assert_eq!((status, st, result.outcome), (*want, *want, REALER_FEED_OUTCOME_NOT_SENT), "{message}");
        assert_eq!(http, 0, "the proxy's status is not Realer's: {message}");
        assert_eq!(retry, *retryable, "{message}");
        assert!(message.contains(&shown(proxy)), "the message names the proxy: {message}");
        assert!(message.contains(needle), "{message} should say {needle:?}");
        if !retryable {
            let asked = tinyproxy.requests().len() - before;
            assert_eq!(asked, 1, "a refusal that cannot change is asked once, not retried");
        }
        // The outbox keeps what it could not send: pending, never dead.
        unsafe {
            let mut id_out = [0 as c_char; 129];
            assert_eq!(realer_outbox_push(client, &item, id_out.as_mut_ptr(), id_out.len()), REALER_OK);
            let mut report = std::mem::zeroed::<realer_flush_report>();
            assert_eq!(realer_outbox_flush(client, 0, &mut report), *want);
            assert_eq!((report.sent, report.rejected, report.pending), (0, 0, 1));
            realer_client_free(client);
        }
    }
    assert!(squid.stats().requests >= 2, "the 502 is retried: {:?}", squid.stats());
    assert!(squid.log().iter().all(|seen| seen.method == "CONNECT"), "{:?}", squid.log());
    assert!(sim.records().is_empty(), "nothing reached Realer");
    let lines = lines.lock().unwrap();
    assert!(lines.iter().any(|l| l.contains("refused CONNECT")), "{lines:#?}");
    for l in lines.iter() {
        assert!(!l.contains(PASSWORD) && !l.contains("wrong-pa55word") && !l.contains("alice"), "{l}");
    }
}

/// tinyproxy answers "500 Unable to connect" when Realer's port does not answer: a network error naming
/// the proxy, retried, never Realer's 500.
#[test]
fn a_proxy_that_cannot_reach_realer_is_not_realer() {
    let dir = scratch_dir("proxy-unreachable");
    let sim = sim();
    let tinyproxy = Tinyproxy::start(&dir.join("tinyproxy"), "");
    let gone = format!("https://{}", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let cfg = config(&sim, &gone, Some(&tinyproxy.url(None)), leak_lines());
    let client = client_of(cfg);
    unsafe { realer_config_free(cfg) };
    let status = unsafe { realer_client_authenticate(client) };
    let (_, http, retryable, message) = last();
    println!("{message}");
    assert_eq!((status, http, retryable), (REALER_ERR_NETWORK, 0, true), "{message}");
    assert!(message.contains(&tinyproxy.url(None)) && message.contains("500"), "{message}");
    assert!(tinyproxy.requests().len() >= 2, "retried");
    unsafe { realer_client_free(client) };
}

/// A middlebox that answers for Realer's name with a certificate of its own CA: the kit's TLS-intercepting
/// front (a TLS-inspecting proxy) and its captive portal.
#[test]
fn tls_interception_is_named() {
    let realer = sim();
    let inspecting = Netkit::intercepting(&realer.base_url(), &realer.ca_pem()).unwrap();
    let portal = Netkit::captive_portal().unwrap();
    for middlebox in [&inspecting, &portal] {
        intercepted(&realer, &middlebox.url());
        assert_eq!(middlebox.stats().requests, 0, "no request went through {}", middlebox.mode_name());
    }
    assert!(realer.records().is_empty() && realer.tokens_issued() == 0);
}

fn intercepted(realer: &Sim, base_url: &str) {
    let cfg = config(realer, base_url, None, leak_lines());
    let client = client_of(cfg);
    unsafe { realer_config_free(cfg) };
    let status = unsafe { realer_client_authenticate(client) };
    let (_, _, _, message) = last();
    println!("{message}");
    assert_eq!(status, REALER_ERR_TLS, "{message}");
    assert!(
        message.contains("not signed by the configured CA: a TLS-inspection proxy or captive portal?"),
        "{message}"
    );
    unsafe { realer_client_free(client) };
}

/// The setter's checks, through the C API; Debug never shows the credentials.
#[test]
fn the_proxy_setting_is_checked_and_never_shows_its_password() {
    unsafe {
        let cfg = realer_config_new();
        for bad in ["https://p:3128", "p:3128", "http://p", "http://p:3128/x", "http://alice:x@p", "socks5://p:1080"] {
            assert_eq!(realer_config_set_proxy(cfg, cstr(bad).as_ptr()), REALER_ERR_CONFIG, "{bad}");
            let (_, _, _, message) = last();
            assert!(message.starts_with("proxy URL") && !message.contains("alice"), "{bad}: {message}");
        }
        assert_eq!(realer_config_set_proxy(cfg, std::ptr::null()), REALER_ERR_INVALID_ARGUMENT);
        assert_eq!(realer_config_set_proxy(null_mut(), cstr("").as_ptr()), REALER_ERR_INVALID_ARGUMENT);
        let url = format!("http://alice:{PASSWORD}@proxy.example:3128");
        assert_eq!(realer_config_set_proxy(cfg, cstr(&url).as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_proxy(cfg, cstr("").as_ptr()), REALER_OK, "empty: no proxy");
        realer_config_free(cfg);
    }
    let mut c = realer::Config::new();
    c.set_proxy(&format!("http://alice:{PASSWORD}@proxy.example:3128")).unwrap();
    let debug = format!("{c:?}");
    assert!(debug.contains("http://proxy.example:3128") && !debug.contains(PASSWORD), "{debug}");
    assert_eq!(c.proxy().map(|p| (p.url(), p.has_credentials())), Some(("http://proxy.example:3128".into(), true)));
    c.set_proxy("").unwrap();
    assert!(c.proxy().is_none());
    {}
}
