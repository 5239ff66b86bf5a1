//! The C ABI called as C would call it: NULL and non-UTF-8 arguments to every export give a clear status and
//! no crash, `_free(NULL)` is accepted, and the last error carries what the server said.

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::{null, null_mut};

use common::*;
use realer::ffi::catalog::*;
use realer::ffi::client::*;
use realer::ffi::config::*;
use realer::ffi::desired::*;
use realer::ffi::error::*;
use realer::ffi::feed::*;
use realer::ffi::outbox::*;
use realer::ffi::version::*;

const BAD_UTF8: &[u8] = b"\xff\xfe\0";

fn bad() -> *const c_char {
    BAD_UTF8.as_ptr().cast()
}

fn s(p: *const c_char) -> String {
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

fn last() -> (i32, String) {
    let e = realer_last_error();
    assert!(!e.is_null());
    let e = unsafe { &*e };
    (e.status, s(e.message))
}

/// Asserts the status and that the last error's message mentions `needle`.
#[track_caller]
fn expect(status: realer_status, want: realer_status, needle: &str) {
    assert_eq!(status, want, "status {:?}", s(realer_status_str(status)));
    if want != REALER_OK {
        let (st, msg) = last();
        assert_eq!(st, want);
        assert!(msg.contains(needle), "message {msg:?} should mention {needle:?}");
    }
}

/// Item `index` of a list through its `_get`, which must succeed.
unsafe fn got<L, T>(
    get: unsafe extern "C" fn(*const L, usize, *mut T) -> realer_status,
    list: *const L,
    index: usize,
) -> T {
    let mut out = unsafe { std::mem::zeroed::<T>() };
    expect(unsafe { get(list, index, &mut out) }, REALER_OK, "");
    out
}

fn cstr(v: &str) -> CString {
    CString::new(v).unwrap()
}

#[test]
fn version_and_status_names() {
    assert_eq!(s(realer_version()), env!("CARGO_PKG_VERSION"));
    let names: Vec<String> = (0..=11).map(|st| s(realer_status_str(st))).collect();
    assert_eq!(names[0], "REALER_OK");
    assert_eq!(names[6], "REALER_ERR_TIMEOUT");
    assert_eq!(names[11], "REALER_ERR_INTERNAL");
    assert_eq!(s(realer_status_str(-7)), "REALER_ERR_UNKNOWN");
    assert_eq!(s(realer_status_str(12)), "REALER_ERR_OUTBOX_FULL");
    assert_eq!(s(realer_status_str(13)), "REALER_ERR_STORAGE");
    assert_eq!(s(realer_status_str(14)), "REALER_ERR_CANCELLED");
    assert_eq!(s(realer_status_str(15)), "REALER_ERR_UNKNOWN");
}

#[test]
fn last_error_is_never_null_and_starts_empty() {
    std::thread::spawn(|| {
        let e = unsafe { &*realer_last_error() };
        assert_eq!((e.status, e.http_status, e.code, e.retry_after_ms), (REALER_OK, 0, 0, -1));
        assert!(!e.retryable);
        for p in [e.r#type, e.message, e.request_id, e.details_json] {
            assert_eq!(s(p), "");
        }
    })
    .join()
    .unwrap();
}

#[test]
fn config_setters_check_every_argument() {
    unsafe {
        let url = cstr("https://example.com");
        // NULL config.
        expect(realer_config_set_base_url(null_mut(), url.as_ptr()), REALER_ERR_INVALID_ARGUMENT, "config is NULL");
        expect(realer_config_allow_insecure_loopback(null_mut(), 1), REALER_ERR_INVALID_ARGUMENT, "config");
        expect(realer_config_set_device_id(null_mut(), url.as_ptr()), REALER_ERR_INVALID_ARGUMENT, "config");
        expect(
            realer_config_set_credentials(null_mut(), url.as_ptr(), url.as_ptr()),
            REALER_ERR_INVALID_ARGUMENT,
            "config",
        );
        expect(realer_config_set_scope(null_mut(), url.as_ptr()), REALER_ERR_INVALID_ARGUMENT, "config");
        expect(realer_config_set_ca_file(null_mut(), url.as_ptr()), REALER_ERR_INVALID_ARGUMENT, "config");
        expect(realer_config_set_ca_pem(null_mut(), b"x".as_ptr(), 1), REALER_ERR_INVALID_ARGUMENT, "config");
        expect(realer_config_set_timeouts(null_mut(), 1, 1), REALER_ERR_INVALID_ARGUMENT, "config");
        expect(realer_config_set_retry(null_mut(), 1, 1, 1), REALER_ERR_INVALID_ARGUMENT, "config");
        expect(realer_config_set_user_agent(null_mut(), url.as_ptr()), REALER_ERR_INVALID_ARGUMENT, "config");
        expect(realer_config_set_logger(null_mut(), None, null_mut(), 1), REALER_ERR_INVALID_ARGUMENT, "config");
        expect(realer_config_from_env(null_mut()), REALER_ERR_INVALID_ARGUMENT, "config");
        realer_config_free(null_mut());

        let cfg = realer_config_new();
        assert!(!cfg.is_null());
        // NULL strings name the argument; non-UTF-8 strings are refused, never truncated.
        expect(realer_config_set_base_url(cfg, null()), REALER_ERR_INVALID_ARGUMENT, "base_url is NULL");
        expect(realer_config_set_base_url(cfg, bad()), REALER_ERR_INVALID_ARGUMENT, "base_url is not valid UTF-8");
        expect(realer_config_set_device_id(cfg, null()), REALER_ERR_INVALID_ARGUMENT, "device_id is NULL");
        expect(realer_config_set_device_id(cfg, bad()), REALER_ERR_INVALID_ARGUMENT, "UTF-8");
        expect(realer_config_set_credentials(cfg, null(), url.as_ptr()), REALER_ERR_INVALID_ARGUMENT, "client_id");
        expect(realer_config_set_credentials(cfg, url.as_ptr(), null()), REALER_ERR_INVALID_ARGUMENT, "client_secret");
        expect(realer_config_set_credentials(cfg, bad(), url.as_ptr()), REALER_ERR_INVALID_ARGUMENT, "UTF-8");
        expect(realer_config_set_credentials(cfg, url.as_ptr(), bad()), REALER_ERR_INVALID_ARGUMENT, "UTF-8");
        expect(realer_config_set_scope(cfg, bad()), REALER_ERR_INVALID_ARGUMENT, "UTF-8");
        expect(realer_config_set_ca_file(cfg, null()), REALER_ERR_INVALID_ARGUMENT, "path");
        expect(realer_config_set_ca_file(cfg, bad()), REALER_ERR_INVALID_ARGUMENT, "UTF-8");
        expect(realer_config_set_ca_pem(cfg, null(), 5), REALER_ERR_INVALID_ARGUMENT, "pem");
        expect(realer_config_set_user_agent(cfg, bad()), REALER_ERR_INVALID_ARGUMENT, "UTF-8");
        // Values are checked where they are set.
        expect(
            realer_config_set_base_url(cfg, cstr("http://127.0.0.1:1").as_ptr()),
            REALER_ERR_CONFIG,
            "allow_insecure_loopback",
        );
        expect(realer_config_allow_insecure_loopback(cfg, 1), REALER_OK, "");
        expect(realer_config_set_base_url(cfg, cstr("http://127.0.0.1:1").as_ptr()), REALER_OK, "");
        expect(realer_config_set_base_url(cfg, cstr("http://example.com").as_ptr()), REALER_ERR_CONFIG, "plain http");
        expect(
            realer_config_set_ca_file(cfg, cstr("/nonexistent.pem").as_ptr()),
            REALER_ERR_CONFIG,
            "/nonexistent.pem",
        );
        expect(realer_config_set_ca_pem(cfg, b"no pem".as_ptr(), 6), REALER_ERR_CONFIG, "no CERTIFICATE");
        expect(realer_config_set_timeouts(cfg, 0, 1000), REALER_ERR_CONFIG, "connect timeout");
        expect(realer_config_set_timeouts(cfg, 1000, 3_600_001), REALER_ERR_CONFIG, "request timeout");
        expect(realer_config_set_retry(cfg, 0, 1, 1), REALER_ERR_CONFIG, "max_attempts");
        expect(realer_config_set_retry(cfg, 3, 10, 5), REALER_ERR_CONFIG, "base_delay_ms");
        expect(realer_config_set_user_agent(cfg, cstr("").as_ptr()), REALER_ERR_CONFIG, "user agent");
        expect(
            realer_config_set_logger(cfg, Some(count_lines), null_mut(), 9),
            REALER_ERR_INVALID_ARGUMENT,
            "max_level",
        );
        expect(realer_config_set_logger(cfg, None, null_mut(), 0), REALER_OK, "");
        // An incomplete configuration cannot make a client.
        let mut client: *mut realer_client = null_mut();
        expect(realer_client_new(cfg, &mut client), REALER_ERR_CONFIG, "device id");
        assert!(client.is_null(), "out is written only on success");
        expect(realer_client_new(null(), &mut client), REALER_ERR_INVALID_ARGUMENT, "config is NULL");
        expect(realer_client_new(cfg, null_mut()), REALER_ERR_INVALID_ARGUMENT, "out is NULL");
        realer_config_free(cfg);
    }
}

unsafe extern "C" fn count_lines(user_data: *mut c_void, level: realer_log_level, message: *const c_char) {
    let lines = unsafe { &*(user_data as *const std::sync::Mutex<Vec<(i32, String)>>) };
    lines.lock().unwrap().push((level, unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()));
}

/// A client for the sim's demo device, through the C API, logging into `lines`.
unsafe fn c_client(sim: &Sim, lines: Option<&std::sync::Mutex<Vec<(i32, String)>>>) -> *mut realer_client {
    unsafe {
        let cfg = c_config(sim, DEMO_DEVICE);
        assert_eq!(realer_config_set_retry(cfg, 3, 10, 100), REALER_OK);
        if let Some(lines) = lines {
            let ud = lines as *const _ as *mut c_void;
            assert_eq!(realer_config_set_logger(cfg, Some(count_lines), ud, REALER_LOG_DEBUG), REALER_OK);
        }
        let mut client = null_mut();
        assert_eq!(realer_client_new(cfg, &mut client), REALER_OK);
        realer_config_free(cfg); // the client keeps its own copy
        client
    }
}

#[test]
fn catalog_exports_check_their_arguments_and_lists_are_bounded() {
    let sim = sim();
    unsafe {
        let client = c_client(&sim, None);
        let mut cmds: *mut realer_commands = null_mut();
        let mut sensors: *mut realer_sensors = null_mut();
        let one = cstr("7");
        expect(realer_client_authenticate(null()), REALER_ERR_INVALID_ARGUMENT, "client is NULL");
        expect(realer_commands_fetch(null(), &mut cmds), REALER_ERR_INVALID_ARGUMENT, "client");
        expect(realer_commands_fetch(client, null_mut()), REALER_ERR_INVALID_ARGUMENT, "out");
        expect(realer_sensors_fetch(null(), &mut sensors), REALER_ERR_INVALID_ARGUMENT, "client");
        expect(realer_sensors_fetch(client, null_mut()), REALER_ERR_INVALID_ARGUMENT, "out");
        expect(realer_command_fetch(client, null(), &mut cmds), REALER_ERR_INVALID_ARGUMENT, "id is NULL");
        expect(realer_command_fetch(client, bad(), &mut cmds), REALER_ERR_INVALID_ARGUMENT, "UTF-8");
        expect(realer_command_fetch(null(), one.as_ptr(), &mut cmds), REALER_ERR_INVALID_ARGUMENT, "client");
        expect(realer_sensor_fetch(client, null(), &mut sensors), REALER_ERR_INVALID_ARGUMENT, "id is NULL");
        expect(realer_sensor_fetch(client, bad(), &mut sensors), REALER_ERR_INVALID_ARGUMENT, "UTF-8");
        expect(realer_sensor_fetch(client, one.as_ptr(), null_mut()), REALER_ERR_INVALID_ARGUMENT, "out");
        expect(
            realer_sensor_fetch(client, cstr("7/../8").as_ptr(), &mut sensors),
            REALER_ERR_INVALID_ARGUMENT,
            "sensor id",
        );
        assert!(cmds.is_null() && sensors.is_null());
        assert_eq!(sim.request_log().len(), 0, "nothing was sent");

        assert_eq!(realer_commands_len(null()), 0);
        let mut c = std::mem::zeroed::<realer_command>();
        expect(realer_commands_get(null(), 0, &mut c), REALER_ERR_INVALID_ARGUMENT, "list is NULL");
        assert_eq!(realer_sensors_len(null()), 0);
        let mut x = std::mem::zeroed::<realer_sensor>();
        expect(realer_sensors_get(null(), 0, &mut x), REALER_ERR_INVALID_ARGUMENT, "list is NULL");
        realer_commands_free(null_mut());
        realer_sensors_free(null_mut());

        expect(realer_commands_fetch(client, &mut cmds), REALER_OK, "");
        assert_eq!(realer_commands_len(cmds), 4);
        expect(realer_commands_get(cmds, 4, &mut c), REALER_ERR_INVALID_ARGUMENT, "index 4 is past the end");
        expect(realer_commands_get(cmds, usize::MAX, &mut c), REALER_ERR_INVALID_ARGUMENT, "past the end");
        expect(realer_commands_get(cmds, 0, null_mut()), REALER_ERR_INVALID_ARGUMENT, "out is NULL");
        assert!(c.id.is_null(), "a refused get leaves *out as it was");
        let first = &got(realer_commands_get, cmds, 0);
        assert_eq!((s(first.id), s(first.value)), ("1".to_string(), builtin::PENDING_DESIRED_VALUE.to_string()));
        let unrepresentable = &got(realer_commands_get, cmds, 2);
        assert!(unrepresentable.value.is_null() && !unrepresentable.error_type.is_null());

        // What Realer wants (v1: the catalog's values), and the item answering it.
        let mut wanted = null_mut();
        expect(realer_desired_states_fetch(null(), &mut wanted), REALER_ERR_INVALID_ARGUMENT, "client is NULL");
        expect(realer_desired_states_fetch(client, null_mut()), REALER_ERR_INVALID_ARGUMENT, "out is NULL");
        expect(realer_desired_states_fetch(client, &mut wanted), REALER_OK, "");
        assert_eq!(realer_desired_states_source(wanted), REALER_DESIRED_SOURCE_CATALOG);
        assert_eq!(realer_desired_states_len(wanted), 3);
        let mut d = std::mem::zeroed::<realer_desired_state>();
        expect(realer_desired_states_get(wanted, 3, &mut d), REALER_ERR_INVALID_ARGUMENT, "past the end");
        expect(realer_desired_states_get(wanted, 0, null_mut()), REALER_ERR_INVALID_ARGUMENT, "out is NULL");
        let state = &got(realer_desired_states_get, wanted, 0);
        assert!(state.desired_id.is_null() && state.sequence_number == -1);
        assert_eq!(
            (s(state.command_id), s(state.value), state.action),
            ("1".into(), "1.0".into(), REALER_DESIRED_ACTION_APPLY)
        );
        let (seven, one_value) = (cstr("7"), cstr("1"));
        let mut answer = item(&seven, &one_value);
        let physical = cstr("1.0");
        expect(
            realer_feed_item_init_answer(null_mut(), state, physical.as_ptr(), REALER_REPORT_STATUS_APPLIED),
            REALER_ERR_INVALID_ARGUMENT,
            "item is NULL",
        );
        expect(
            realer_feed_item_init_answer(&mut answer, null(), physical.as_ptr(), REALER_REPORT_STATUS_APPLIED),
            REALER_ERR_INVALID_ARGUMENT,
            "state is NULL",
        );
        expect(
            realer_feed_item_init_answer(&mut answer, state, null(), REALER_REPORT_STATUS_APPLIED),
            REALER_ERR_INVALID_ARGUMENT,
            "value is NULL",
        );
        expect(
            realer_feed_item_init_answer(&mut answer, state, bad(), REALER_REPORT_STATUS_APPLIED),
            REALER_ERR_INVALID_ARGUMENT,
            "UTF-8",
        );
        expect(
            realer_feed_item_init_answer(&mut answer, state, physical.as_ptr(), 77),
            REALER_ERR_INVALID_ARGUMENT,
            "REALER_REPORT_STATUS_",
        );
        expect(
            realer_feed_item_init_answer(&mut answer, state, physical.as_ptr(), REALER_REPORT_STATUS_STALE),
            REALER_ERR_INVALID_ARGUMENT,
            "never stale",
        );
        assert_eq!(s(answer.sensor_id), "7", "a refused call leaves the item as it was");
        expect(
            realer_feed_item_init_answer(&mut answer, state, physical.as_ptr(), REALER_REPORT_STATUS_APPLIED),
            REALER_OK,
            "",
        );
        assert!(answer.sensor_id.is_null() && answer.desired_id.is_null() && answer.message_id.is_null());
        assert_eq!(
            (answer.command_id, answer.value),
            (state.command_id, physical.as_ptr()),
            "it points at the strings given"
        );
        assert_eq!((answer.report_status, answer.sequence_number), (REALER_REPORT_STATUS_NONE, -1));
        let broken = realer_desired_state { command_id: bad(), ..std::ptr::read(state) };
        expect(
            realer_feed_item_init_answer(&mut answer, &broken, physical.as_ptr(), REALER_REPORT_STATUS_APPLIED),
            REALER_ERR_INVALID_ARGUMENT,
            "UTF-8",
        );
        // With a desired_id: the status and the echoed sequence.
        let des = cstr("des_x");
        let with_id = realer_desired_state { desired_id: des.as_ptr(), sequence_number: 9, ..std::ptr::read(state) };
        expect(
            realer_feed_item_init_answer(&mut answer, &with_id, physical.as_ptr(), REALER_REPORT_STATUS_NONE),
            REALER_OK,
            "",
        );
        assert_eq!(
            (s(answer.desired_id), answer.report_status, answer.sequence_number),
            ("des_x".into(), REALER_REPORT_STATUS_APPLIED, 9)
        );
        expect(
            realer_feed_item_init_answer(&mut answer, &with_id, physical.as_ptr(), REALER_REPORT_STATUS_REPORTED),
            REALER_ERR_INVALID_ARGUMENT,
            "applied, rejected or stale",
        );
        assert_eq!(realer_desired_states_len(null()), 0);
        assert_eq!(realer_desired_states_source(null()), 0);
        expect(realer_desired_states_get(null(), 0, &mut d), REALER_ERR_INVALID_ARGUMENT, "list is NULL");
        realer_desired_states_free(wanted);
        realer_desired_states_free(null_mut());
        assert!(realer_values_equal(cstr("NumericRange").as_ptr(), cstr("0").as_ptr(), cstr("0.0").as_ptr()));
        assert!(!realer_values_equal(null(), cstr("0").as_ptr(), cstr("0.0").as_ptr()));
        assert!(!realer_values_equal(null(), null(), cstr("0").as_ptr()));
        assert!(!realer_values_equal(bad(), cstr("0").as_ptr(), cstr("0").as_ptr()));
        assert_eq!(CStr::from_ptr(realer_last_warnings()).to_bytes(), b"");
        realer_commands_free(cmds);

        expect(realer_sensor_fetch(client, cstr("404").as_ptr(), &mut sensors), REALER_ERR_API, "not");
        let e = &*realer_last_error();
        assert_eq!((e.http_status, e.code, s(e.r#type).as_str()), (404, 4004, "not_found"));
        assert!(!s(e.request_id).is_empty());
        realer_client_free(client);
        realer_client_free(null_mut());
    }
}

fn item(sensor: &CString, value: &CString) -> realer_feed_item {
    let mut it = unsafe { std::mem::zeroed::<realer_feed_item>() };
    assert_eq!(unsafe { realer_feed_item_init(&mut it) }, REALER_OK);
    assert_eq!((it.report_status, it.sequence_number), (REALER_REPORT_STATUS_NONE, -1));
    it.sensor_id = sensor.as_ptr();
    it.value = value.as_ptr();
    it
}

#[test]
fn feed_exports_check_their_arguments_and_report_what_the_server_said() {
    let sim = sim();
    let lines = std::sync::Mutex::new(Vec::new());
    unsafe {
        let client = c_client(&sim, Some(&lines));
        let (seven, v) = (cstr("7"), cstr("21.4"));
        let mut out = std::mem::zeroed::<realer_feed_result>();
        expect(realer_feed_item_init(null_mut()), REALER_ERR_INVALID_ARGUMENT, "item is NULL");
        let good = item(&seven, &v);
        expect(realer_feed_post(null(), &good, &mut out), REALER_ERR_INVALID_ARGUMENT, "client");
        expect(realer_feed_post(client, null(), &mut out), REALER_ERR_INVALID_ARGUMENT, "item");
        expect(realer_feed_post(client, &good, null_mut()), REALER_ERR_INVALID_ARGUMENT, "out");
        for (field, patch) in [
            (
                "item.sensor_id",
                Box::new(|it: &mut realer_feed_item| it.sensor_id = bad()) as Box<dyn Fn(&mut realer_feed_item)>,
            ),
            ("item.value", Box::new(|it: &mut realer_feed_item| it.value = bad())),
            ("item.message_id", Box::new(|it: &mut realer_feed_item| it.message_id = bad())),
            ("item.value_received_at", Box::new(|it: &mut realer_feed_item| it.value_received_at = bad())),
            ("item.desired_id", Box::new(|it: &mut realer_feed_item| it.desired_id = bad())),
            ("item.command_id", Box::new(|it: &mut realer_feed_item| it.command_id = bad())),
            ("item.report_status", Box::new(|it: &mut realer_feed_item| it.report_status = 42)),
            ("item.sequence_number", Box::new(|it: &mut realer_feed_item| it.sequence_number = -5)),
            ("item.value: is required", Box::new(|it: &mut realer_feed_item| it.value = null())),
            ("sensor_id/command_id", Box::new(|it: &mut realer_feed_item| it.sensor_id = null())),
            ("report_status", Box::new(|it: &mut realer_feed_item| it.report_status = REALER_REPORT_STATUS_APPLIED)),
        ] {
            let mut it = item(&seven, &v);
            patch(&mut it);
            expect(realer_feed_post(client, &it, &mut out), REALER_ERR_INVALID_ARGUMENT, field);
            assert_eq!(out.outcome, REALER_FEED_OUTCOME_NOT_SENT);
        }
        assert_eq!(sim.records().len(), 0, "nothing invalid was sent");

        // Created, then a replay of the same event, then a conflict.
        expect(realer_feed_post(client, &good, &mut out), REALER_OK, "");
        assert_eq!((out.outcome, out.http_status, out.code), (REALER_FEED_OUTCOME_CREATED, 201, 2000));
        let first_id = out.feed_data_id;
        let (mid, at) = (
            CStr::from_ptr(out.message_id.as_ptr()).to_owned(),
            CStr::from_ptr(out.value_received_at.as_ptr()).to_owned(),
        );
        let mut again = item(&seven, &v);
        again.message_id = mid.as_ptr();
        again.value_received_at = at.as_ptr();
        expect(realer_feed_post(client, &again, &mut out), REALER_OK, "");
        assert_eq!((out.outcome, out.feed_data_id), (REALER_FEED_OUTCOME_IDEMPOTENT, first_id));
        let other = cstr("22.0");
        again.value = other.as_ptr();
        expect(realer_feed_post(client, &again, &mut out), REALER_ERR_API, "conflict");
        assert_eq!((out.outcome, out.code, out.http_status), (REALER_FEED_OUTCOME_REJECTED, 4009, 409));
        assert_eq!(CStr::from_ptr(out.message_id.as_ptr()), mid.as_c_str());

        // Validation details reach the last error.
        let unknown = cstr("99");
        let it = item(&unknown, &v);
        expect(realer_feed_post(client, &it, &mut out), REALER_ERR_API, "validation_failed");
        let e = &*realer_last_error();
        assert_eq!((e.http_status, e.code, s(e.r#type).as_str(), e.retryable), (422, 4022, "validation_failed", false));
        assert_eq!(s(e.details_json), r#"{"sensor_id":["is invalid for this device"]}"#);
        assert!(!s(e.request_id).is_empty());

        // Batches.
        let mut res: *mut realer_batch_result = null_mut();
        let items = [item(&seven, &v), it, again];
        expect(realer_feed_post_batch(null(), items.as_ptr(), 3, &mut res), REALER_ERR_INVALID_ARGUMENT, "client");
        expect(realer_feed_post_batch(client, null(), 3, &mut res), REALER_ERR_INVALID_ARGUMENT, "items");
        expect(realer_feed_post_batch(client, items.as_ptr(), 0, &mut res), REALER_ERR_INVALID_ARGUMENT, "count");
        expect(realer_feed_post_batch(client, items.as_ptr(), 3, null_mut()), REALER_ERR_INVALID_ARGUMENT, "out");
        assert!(res.is_null());
        let mut broken = [item(&seven, &v), item(&seven, &v)];
        broken[1].value = bad();
        expect(
            realer_feed_post_batch(client, broken.as_ptr(), 2, &mut res),
            REALER_ERR_INVALID_ARGUMENT,
            "items[1].value",
        );
        assert_eq!(realer_batch_result_len(res), 2);
        assert_eq!(got(realer_batch_result_get, res, 0).outcome, REALER_FEED_OUTCOME_NOT_SENT);
        realer_batch_result_free(res);

        expect(realer_feed_post_batch(client, items.as_ptr(), 3, &mut res), REALER_OK, "");
        assert_eq!(realer_batch_result_len(res), 3);
        let mut one = std::mem::zeroed::<realer_item_result>();
        expect(realer_batch_result_get(res, 3, &mut one), REALER_ERR_INVALID_ARGUMENT, "past the end");
        expect(realer_batch_result_get(null(), 0, &mut one), REALER_ERR_INVALID_ARGUMENT, "result is NULL");
        expect(realer_batch_result_get(res, 0, null_mut()), REALER_ERR_INVALID_ARGUMENT, "out is NULL");
        let r: Vec<realer_item_result> = (0..3).map(|i| got(realer_batch_result_get, res, i)).collect();
        assert_eq!(
            [r[0].outcome, r[1].outcome, r[2].outcome],
            [REALER_FEED_OUTCOME_CREATED, REALER_FEED_OUTCOME_REJECTED, REALER_FEED_OUTCOME_REJECTED]
        );
        assert!(r[0].error_type.is_null() && r[0].feed_data_id > 0 && !s(r[0].value_received_at).is_empty());
        assert_eq!((r[1].code, s(r[1].error_type).as_str()), (4022, "validation_failed"));
        assert!(s(r[1].details_json).contains("sensor_id"));
        assert_eq!((r[2].code, s(r[2].message_id)), (4009, mid.to_str().unwrap().to_string()));
        assert_eq!(realer_batch_result_len(null()), 0);
        realer_batch_result_free(res);
        realer_batch_result_free(null_mut());
        realer_client_free(client);
    }
    let lines = lines.into_inner().unwrap();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|(lvl, l)| (1..=4).contains(lvl) && !l.contains(builtin::CLIENT_SECRET)));
}

#[test]
fn timestamps_format_into_caller_buffers() {
    let mut buf = [0 as c_char; REALER_TIMESTAMP_SIZE];
    unsafe {
        expect(realer_timestamp_format(1_777_025_700_000, buf.as_mut_ptr(), buf.len()), REALER_OK, "");
        assert_eq!(CStr::from_ptr(buf.as_ptr()).to_str().unwrap(), "2026-04-24T10:15:00.000Z");
        expect(realer_timestamp_format(0, buf.as_mut_ptr(), buf.len()), REALER_OK, "");
        assert!(CStr::from_ptr(buf.as_ptr()).to_str().unwrap().ends_with('Z'));
        let mut small = [7 as c_char; 10];
        expect(realer_timestamp_format(1, small.as_mut_ptr(), small.len()), REALER_ERR_BUFFER_TOO_SMALL, "25 bytes");
        assert!(small.iter().all(|&b| b == 7), "nothing written");
        expect(realer_timestamp_format(1, null_mut(), 64), REALER_ERR_INVALID_ARGUMENT, "buf is NULL");
        expect(realer_timestamp_format(-1, buf.as_mut_ptr(), buf.len()), REALER_ERR_INVALID_ARGUMENT, "negative");
        expect(realer_timestamp_format(i64::MAX, buf.as_mut_ptr(), buf.len()), REALER_ERR_INVALID_ARGUMENT, "9999");
    }
}

/// Through the C ABI: with the batch endpoint missing (404), `realer_feed_post_batch` still stores every
/// item exactly once, one by one (a path that does not route the batch endpoint holds no data back).
#[test]
fn a_batch_post_without_the_batch_endpoint_stores_each_item_once() {
    let sim = sim();
    sim.inject(Fault::NotFound, Target::Batch, 1000);
    unsafe {
        let cfg = realer_config_new();
        let (url, ca) = (cstr(&sim.base_url()), sim.ca_pem());
        expect(realer_config_set_base_url(cfg, url.as_ptr()), REALER_OK, "");
        expect(realer_config_set_ca_pem(cfg, ca.as_ptr(), ca.len()), REALER_OK, "");
        expect(realer_config_set_device_id(cfg, cstr(builtin::DEVICE_ID).as_ptr()), REALER_OK, "");
        let (id, secret) = (cstr(builtin::CLIENT_ID), cstr(builtin::CLIENT_SECRET));
        expect(realer_config_set_credentials(cfg, id.as_ptr(), secret.as_ptr()), REALER_OK, "");
        let mut client = null_mut();
        expect(realer_client_new(cfg, &mut client), REALER_OK, "");
        realer_config_free(cfg);
        let (sensor, value) = (cstr("7"), cstr("21.4"));
        let ids: Vec<CString> = (0..130).map(|i| cstr(&format!("ffi-nobatch-{i}"))).collect();
        let items: Vec<realer_feed_item> =
            ids.iter().map(|id| realer_feed_item { message_id: id.as_ptr(), ..item(&sensor, &value) }).collect();
        let mut out = null_mut();
        expect(realer_feed_post_batch(client, items.as_ptr(), items.len(), &mut out), REALER_OK, "");
        assert_eq!(realer_batch_result_len(out), 130);
        for i in 0..130 {
            assert_eq!(got(realer_batch_result_get, out, i).outcome, REALER_FEED_OUTCOME_CREATED);
        }
        realer_batch_result_free(out);
        realer_client_free(client);
    }
    let records = sim.records();
    assert_eq!(records.len(), 130);
    assert!(records.iter().all(|r| r.times_received == 1));
    assert_eq!(sim.request_log().iter().filter(|e| e.path.ends_with("/batches")).count(), 1);
}

/// What a server quotes back is cleaned before the last error holds it, also when it is quoted to say why an
/// answer is not the documented list (its first unusable item): a catalog or desired-states answer that echoes
/// the client secret shows `<redacted>` in its place.
#[test]
fn an_unusable_answer_quoted_in_the_last_error_holds_no_secret() {
    let sim = sim_with(SimOptions { flavour: realer_sim::Flavour::V2, ..SimOptions::default() });
    let echoed = format!(r#"{{"note":"you sent {}"}}"#, builtin::CLIENT_SECRET);
    let sensors = Target::Path(format!("/iot/v1/devices/{}/sensors", builtin::DEVICE_ID));
    unsafe {
        let client = c_client(&sim, None);
        let body = format!(r#"{{"code":2000,"sensors":[{echoed}]}}"#);
        sim.inject(Fault::Answer { status: 200, body }, sensors, 1);
        let mut list = null_mut();
        expect(realer_sensors_fetch(client, &mut list), REALER_ERR_PROTOCOL, "none of them usable");
        let (_, message) = last();
        assert!(!message.contains(builtin::CLIENT_SECRET) && message.contains("<redacted>"), "{message}");
        let body = format!(r#"{{"code":2000,"desired_states":[{echoed}]}}"#);
        sim.inject(Fault::Answer { status: 200, body }, Target::DesiredStates, 1);
        let mut states = null_mut();
        expect(realer_desired_states_fetch(client, &mut states), REALER_ERR_PROTOCOL, "none of them usable");
        let (_, message) = last();
        assert!(!message.contains(builtin::CLIENT_SECRET) && message.contains("<redacted>"), "{message}");
        assert!(list.is_null() && states.is_null());
        realer_client_free(client);
    }
}

/// A configuration file's line that is not a known setting is named by its line and, when it is a setting's
/// name, by that name, never by anything that may be a value: a ':' typed for the '=' before a secret that ends
/// in '=' (base64), or a secret on a line of its own.
#[test]
fn a_config_file_line_that_is_not_a_setting_never_shows_a_value() {
    use std::os::unix::fs::PermissionsExt;
    const SECRET: &str = "c2VjcmV0LXZhbHVl";
    let dir = std::env::temp_dir().join(format!("realer-ffi-config-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("realer.conf");
    let c_path = cstr(path.to_str().unwrap());
    for (line, named) in [
        (format!("REALER_CLIENT_SECRET: {SECRET}="), Some("REALER_CLIENT_SECRET")),
        (format!("REALER_CLIENT_SECRET {SECRET}=="), Some("REALER_CLIENT_SECRET")),
        (format!("{SECRET}="), None),
        ("REALER_DEVICEID=12345".to_string(), Some("\"REALER_DEVICEID\"")),
    ] {
        std::fs::write(&path, format!("REALER_DEVICE_ID=12345\n{line}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        unsafe {
            let cfg = realer_config_new();
            expect(realer_config_from_file(cfg, c_path.as_ptr()), REALER_ERR_CONFIG, "line 2: unknown key");
            realer_config_free(cfg);
        }
        let (_, message) = last();
        assert!(!message.contains(SECRET), "{line}: {message}");
        if let Some(name) = named {
            assert!(message.contains(name), "{line}: {message}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `realer_last_warnings` speaks of the last `realer_feed_post` on the thread, whatever it ended with: a post
/// refused for its arguments sent nothing, so it has no warnings, not those of the post before it.
#[test]
fn a_post_refused_for_its_arguments_leaves_no_warnings_of_the_one_before() {
    let sim = sim();
    unsafe {
        let client = c_client(&sim, None);
        let (seven, value) = (cstr("7"), cstr("21.5"));
        let mut result = std::mem::zeroed::<realer_feed_result>();
        sim.inject(Fault::Warnings, Target::FeedData, 1);
        expect(realer_feed_post(client, &item(&seven, &value), &mut result), REALER_OK, "");
        assert!(CStr::from_ptr(realer_last_warnings()).to_bytes().starts_with(b"["), "the sim's warnings");
        expect(realer_feed_post(client, null(), &mut result), REALER_ERR_INVALID_ARGUMENT, "item is NULL");
        assert_eq!(CStr::from_ptr(realer_last_warnings()).to_bytes(), b"");
        expect(realer_feed_post(client, &item(&seven, &value), &mut result), REALER_OK, "");
        sim.inject(Fault::Warnings, Target::FeedData, 1);
        expect(realer_feed_post(client, &item(&seven, &value), &mut result), REALER_OK, "");
        expect(realer_feed_post(null(), &item(&seven, &value), &mut result), REALER_ERR_INVALID_ARGUMENT, "client");
        assert_eq!(CStr::from_ptr(realer_last_warnings()).to_bytes(), b"");
        realer_client_free(client);
    }
}

/// A C client for `device`, with the outbox file `path`; `realer_client_new`'s status and the client.
unsafe fn outbox_client(sim: &Sim, device: (&str, &str, &str), path: &str) -> (realer_status, *mut realer_client) {
    unsafe {
        let cfg = c_config(sim, device);
        assert_eq!(realer_config_set_outbox(cfg, cstr(path).as_ptr(), 0, 0), REALER_OK);
        let mut client = null_mut();
        let status = realer_client_new(cfg, &mut client);
        realer_config_free(cfg);
        (status, client)
    }
}

/// An outbox file is one device's: its items carry no device (a flush sends them under its own device's path),
/// so a client of another device is refused it, with a message that says why, and the file is left as it was.
#[test]
fn an_outbox_file_is_one_devices() {
    let sim = sim();
    let dir = std::env::temp_dir().join(format!("realer-ffi-owner-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("outbox.db").to_str().unwrap().to_string();
    let first = DEMO_DEVICE;
    let other = (builtin::OTHER_DEVICE_ID, builtin::OTHER_CLIENT_ID, builtin::OTHER_CLIENT_SECRET);
    unsafe {
        let (status, client) = outbox_client(&sim, first, &path);
        expect(status, REALER_OK, "");
        let (seven, value) = (cstr("7"), cstr("21.5"));
        let mut id = [0 as c_char; 129];
        expect(realer_outbox_push(client, &item(&seven, &value), id.as_mut_ptr(), id.len()), REALER_OK, "");
        realer_client_free(client);

        let (status, client) = outbox_client(&sim, other, &path);
        assert!(client.is_null());
        expect(status, REALER_ERR_CONFIG, "holds the items of device \"12345\", not of device \"12346\"");
        let (_, message) = last();
        assert!(message.contains("a file of its own"), "{message}");

        // The file is still the first device's, its reading pending; the other device has a file of its own.
        let (status, client) = outbox_client(&sim, first, &path);
        expect(status, REALER_OK, "");
        let mut stats = std::mem::zeroed::<realer_outbox_stats>();
        expect(realer_outbox_stats_read(client, &mut stats), REALER_OK, "");
        assert_eq!(stats.pending, 1);
        realer_client_free(client);
        let own = dir.join("other.db").to_str().unwrap().to_string();
        let (status, client) = outbox_client(&sim, other, &own);
        expect(status, REALER_OK, "");
        realer_client_free(client);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
