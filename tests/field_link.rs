//! The transport over the links a device meets in the field, through the C ABI against realer-sim behind the
//! field network kit's relay (realer_sim::netkit): a kept-alive connection that went silent (a NAT forgot it: its packets are swallowed, no FIN, no
//! RST) costs the stall time and a new connection, not the whole request timeout; the pooled connections'
//! idle age is the configured one; and a slow cellular link (600 ms round trip, 20 kbit/s), with the time
//! each call takes printed (figures, not assertions).

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::null_mut;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use realer::ffi::client::*;
use realer::ffi::config::*;
use realer::ffi::error::*;
use realer::ffi::feed::*;
use realer_sim::netkit::{Dir, Impairment, Netkit};

/// The sim behind the kit's relay; the relay's base URL.
fn relay(sim: &Sim, impairments: &[Impairment]) -> (Netkit, String) {
    let kit = Netkit::relay(sim.addr()).expect("the relay starts");
    for i in impairments {
        kit.set(i.clone()).unwrap();
    }
    let url = kit.url();
    (kit, url)
}

fn connections(kit: &Netkit) -> u64 {
    kit.stats().connections
}

fn cstr(v: &str) -> CString {
    CString::new(v).unwrap()
}

fn last_message() -> String {
    let e = unsafe { &*realer_last_error() };
    unsafe { CStr::from_ptr(e.message) }.to_string_lossy().into_owned()
}

unsafe extern "C" fn collect(user_data: *mut c_void, _level: realer_log_level, message: *const c_char) {
    let lines = unsafe { &*(user_data as *const Mutex<Vec<String>>) };
    lines.lock().unwrap().push(unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned());
}

/// A client for the built-in device of `sim`, reached at `base_url`, through the C API; `tune` adjusts the
/// configuration before the client is made. Log lines (debug) go to `lines`.
fn client(
    sim: &Sim,
    base_url: &str,
    lines: &'static Mutex<Vec<String>>,
    tune: impl FnOnce(*mut realer_config),
) -> *mut realer_client {
    unsafe {
        let cfg = realer_config_new();
        assert_eq!(realer_config_set_base_url(cfg, cstr(base_url).as_ptr()), REALER_OK);
        let ca = sim.ca_pem();
        assert_eq!(realer_config_set_ca_pem(cfg, ca.as_ptr(), ca.len()), REALER_OK);
        assert_eq!(realer_config_set_device_id(cfg, cstr(builtin::DEVICE_ID).as_ptr()), REALER_OK);
        let (id, secret) = (cstr(builtin::CLIENT_ID), cstr(builtin::CLIENT_SECRET));
        assert_eq!(realer_config_set_credentials(cfg, id.as_ptr(), secret.as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_retry(cfg, 3, 20, 200), REALER_OK);
        let user_data = lines as *const Mutex<Vec<String>> as *mut c_void;
        assert_eq!(realer_config_set_logger(cfg, Some(collect), user_data, REALER_LOG_DEBUG), REALER_OK);
        tune(cfg);
        let mut client = null_mut();
        assert_eq!(realer_client_new(cfg, &mut client), REALER_OK, "{}", last_message());
        realer_config_free(cfg);
        client
    }
}

/// Posts one reading of sensor 7 with `message_id`; the status, the result and the time the call took.
fn post(client: *mut realer_client, message_id: &str) -> (realer_status, realer_feed_result, Duration) {
    let (sensor, value, id) = (cstr("7"), cstr("21.5"), cstr(message_id));
    unsafe {
        let mut item = std::mem::zeroed::<realer_feed_item>();
        assert_eq!(realer_feed_item_init(&mut item), REALER_OK);
        item.sensor_id = sensor.as_ptr();
        item.value = value.as_ptr();
        item.message_id = id.as_ptr();
        let mut result = std::mem::zeroed::<realer_feed_result>();
        let started = Instant::now();
        let status = realer_feed_post(client, &item, &mut result);
        (status, result, started.elapsed())
    }
}

/// Posts `count` readings of sensor 7 in one batch call; the status and the time it took.
fn batch(client: *mut realer_client, count: usize, prefix: &str) -> (realer_status, Duration) {
    let ids: Vec<CString> = (0..count).map(|i| cstr(&format!("{prefix}-{i}"))).collect();
    let (sensor, value) = (cstr("7"), cstr("21.5"));
    unsafe {
        let items: Vec<realer_feed_item> = ids
            .iter()
            .map(|id| {
                let mut item = std::mem::zeroed::<realer_feed_item>();
                assert_eq!(realer_feed_item_init(&mut item), REALER_OK);
                item.sensor_id = sensor.as_ptr();
                item.value = value.as_ptr();
                item.message_id = id.as_ptr();
                item
            })
            .collect();
        let mut out = null_mut();
        let started = Instant::now();
        let status = realer_feed_post_batch(client, items.as_ptr(), items.len(), &mut out);
        let took = started.elapsed();
        realer_batch_result_free(out);
        (status, took)
    }
}

fn stored(sim: &Sim, message_id: &str) -> usize {
    sim.records().iter().filter(|r| r.message_id == message_id).count()
}

fn leak_lines() -> &'static Mutex<Vec<String>> {
    Box::leak(Box::new(Mutex::new(Vec::new())))
}

/// A NAT forgets the kept-alive connection while the device is idle: the next reading goes out on it into a
/// black hole. It is sent again on a new connection after the stall time (1 s here), with the same
/// message_id, and stored once; before, it waited out the request timeout and failed with TIMEOUT.
#[test]
fn a_stalled_reused_connection_is_retried_on_a_new_one() {
    let sim = sim();
    let (relay, url) = relay(&sim, &[Impairment::BlackholeIdle(Some(Duration::from_millis(300)))]);
    let lines = leak_lines();
    let c = client(&sim, &url, lines, |cfg| unsafe {
        assert_eq!(realer_config_set_timeouts(cfg, 5_000, 10_000), REALER_OK);
        assert_eq!(realer_config_set_keepalive(cfg, 1_000, 15_000), REALER_OK);
        // One attempt: only the new connection after the stall can save the reading.
        assert_eq!(realer_config_set_retry(cfg, 1, 20, 200), REALER_OK);
    });
    let (status, result, _) = post(c, "stall-first");
    assert_eq!((status, result.outcome), (REALER_OK, REALER_FEED_OUTCOME_CREATED), "{}", last_message());
    assert_eq!(connections(&relay), 1);

    // Idle past the black hole's threshold, and past a second (the pool probes the connection: it is open).
    std::thread::sleep(Duration::from_millis(1_200));
    let (status, result, took) = post(c, "stall-second");
    println!("the reading on the forgotten connection took {} ms", took.as_millis());
    assert_eq!((status, result.outcome), (REALER_OK, REALER_FEED_OUTCOME_CREATED), "{}", last_message());
    // The 1 s stall and a new connection's handshake on loopback, with room for a loaded machine; far below
    // the 10 s the call may take.
    assert!(took < Duration::from_secs(4), "bounded by the stall time, not the request timeout: {took:?}");
    assert_eq!(connections(&relay), 2, "one new connection");
    assert_eq!(stored(&sim, "stall-second"), 1);
    let lines = lines.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("no byte of answer within") && l.contains("trying a new connection")),
        "{lines:#?}"
    );
    unsafe { realer_client_free(c) };
}

/// With stall detection off (stall 0), the same black hole costs the whole request timeout: what every
/// reading met before stall detection existed.
#[test]
fn without_stall_detection_a_forgotten_connection_costs_the_request_timeout() {
    let sim = sim();
    let (relay, url) = relay(&sim, &[Impairment::BlackholeIdle(Some(Duration::from_millis(300)))]);
    let lines = leak_lines();
    let c = client(&sim, &url, lines, |cfg| unsafe {
        assert_eq!(realer_config_set_timeouts(cfg, 1_000, 2_000), REALER_OK);
        assert_eq!(realer_config_set_keepalive(cfg, 0, 15_000), REALER_OK);
        // One attempt (a retry in the last 100 ms of the call, on a new connection, could still win here).
        assert_eq!(realer_config_set_retry(cfg, 1, 20, 200), REALER_OK);
    });
    assert_eq!(post(c, "nostall-first").0, REALER_OK);
    std::thread::sleep(Duration::from_millis(500));
    let (status, result, took) = post(c, "nostall-second");
    println!("without stall detection: status {status} after {} ms", took.as_millis());
    assert_eq!((status, result.outcome), (REALER_ERR_TIMEOUT, REALER_FEED_OUTCOME_NOT_SENT));
    assert_eq!(connections(&relay), 1);
    unsafe { realer_client_free(c) };
}

/// A connection unused longer than the idle age is not reused; within it, it is.
#[test]
fn pooled_connections_live_as_long_as_the_idle_age() {
    let sim = sim();
    let (relay, url) = relay(&sim, &[]);
    let c = client(&sim, &url, leak_lines(), |cfg| unsafe {
        assert_eq!(realer_config_set_keepalive(cfg, 5_000, 300), REALER_OK);
    });
    assert_eq!(post(c, "idle-1").0, REALER_OK);
    assert_eq!(post(c, "idle-2").0, REALER_OK);
    assert_eq!(connections(&relay), 1, "reused within the idle age");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(post(c, "idle-3").0, REALER_OK);
    assert_eq!(connections(&relay), 2, "not reused after 500 ms idle with an idle age of 300 ms");
    unsafe { realer_client_free(c) };

    // The default (15 s) keeps it over the same pause; 0 keeps none.
    let c = client(&sim, &url, leak_lines(), |_| {});
    assert_eq!(post(c, "idle-4").0, REALER_OK);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(post(c, "idle-5").0, REALER_OK);
    assert_eq!(connections(&relay), 3, "the default idle age keeps the connection");
    unsafe { realer_client_free(c) };
    let c = client(&sim, &url, leak_lines(), |cfg| unsafe {
        assert_eq!(realer_config_set_keepalive(cfg, 5_000, 0), REALER_OK);
    });
    assert_eq!(post(c, "idle-6").0, REALER_OK);
    assert_eq!(post(c, "idle-7").0, REALER_OK);
    assert_eq!(connections(&relay), 6, "idle age 0: a connection per request (token, two readings)");
    unsafe {
        realer_client_free(c);
        let cfg = realer_config_new();
        assert_eq!(realer_config_set_keepalive(cfg, 3_600_001, 0), REALER_ERR_CONFIG);
        assert_eq!(realer_config_set_keepalive(null_mut(), 0, 0), REALER_ERR_INVALID_ARGUMENT);
        realer_config_free(cfg);
    }
}

/// A slow cellular link: 300 ms each way (600 ms round trip) and 20 kbit/s each way. Every call succeeds
/// (with the default stall time: it is not tripped) and the time each took is printed: a reading on a
/// kept-alive connection costs about one round trip plus its transfer, on a new connection about three
/// (TCP, TLS 1.3 with the session resumed, the request).
#[test]
fn slow_link_figures() {
    let sim = sim();
    let (relay, url) = relay(
        &sim,
        &[Impairment::Latency(Dir::Both, Duration::from_millis(300)), Impairment::Rate(Dir::Both, Some(20_000))],
    );
    let lines = leak_lines();
    // An idle age of 1.5 s, so that the reading after a 2 s pause needs a new connection.
    let c = client(&sim, &url, lines, |cfg| unsafe {
        assert_eq!(realer_config_set_keepalive(cfg, 5_000, 1_500), REALER_OK);
    });
    let mut rows = Vec::new();
    let mut before = relay.stats();
    let mut step = |name: &str, took: Duration, status: realer_status| {
        assert_eq!(status, REALER_OK, "{name}: {}", last_message());
        let after = relay.stats();
        let new = after.connections - before.connections;
        let (up, down) = (after.bytes_up - before.bytes_up, after.bytes_down - before.bytes_down);
        rows.push(format!(
            "{name:<44} {:>6} ms {:>5.1} RTT  {new} new conn.  {up:>5} B up {down:>5} B down",
            took.as_millis(),
            took.as_secs_f64() / 0.6
        ));
        before = after;
    };
    let started = Instant::now();
    let status = unsafe { realer_client_authenticate(c) };
    step("token (new connection, full TLS handshake)", started.elapsed(), status);
    for i in 0..2 {
        let (status, _, took) = post(c, &format!("slow-kept-{i}"));
        step("reading, kept-alive connection", took, status);
    }
    std::thread::sleep(Duration::from_millis(2_000));
    let (status, _, took) = post(c, "slow-new");
    step("reading, new connection (TLS resumed)", took, status);
    let (status, _, took) = post(c, "slow-kept-2");
    step("reading, kept-alive connection", took, status);
    let (status, took) = batch(c, 20, "slow-batch");
    step("batch of 20 readings, kept-alive connection", took, status);
    println!("\nslow link: 600 ms round trip, 20 kbit/s each way");
    for r in &rows {
        println!("{r}");
    }
    assert!(
        !lines.lock().unwrap().iter().any(|l| l.contains("no byte of answer")),
        "the default stall time was tripped by a slow link"
    );
    unsafe { realer_client_free(c) };
}
