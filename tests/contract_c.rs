//! Realer's rules as a second reading of its pages states them, each shown through the C ABI (as firmware calls
//! it) against realer-sim: a catalog value is acted on only when it is new, so a local change is never undone,
//! not by the next poll nor by a restart (contract section 3); one catalog read per pass, and the older service
//! remembered (3b); a 401 on a token already used for another answer renews again (6); an answer that is not
//! the documented list is a protocol error, not an empty list (3, 3b); a scope without
//! `iot:desired-state:read` is warned about with its fix (2, 3b); caller timestamps go out in Realer's form
//! (4); batch results for one `message_id` of two sources are told apart by their index (5); a token endpoint
//! that drips its answer gets about one request per timeout window (2).

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use realer::ffi::catalog::*;
use realer::ffi::client::*;
use realer::ffi::config::*;
use realer::ffi::desired::*;
use realer::ffi::error::*;
use realer::ffi::feed::*;
use realer::ffi::outbox::*;
use realer_sim::PageBody;
use realer_sim::{FixtureDesired, Flavour};

fn cstr(v: &str) -> CString {
    CString::new(v).unwrap()
}

fn text(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string())
}

fn buf(b: &[c_char]) -> String {
    unsafe { CStr::from_ptr(b.as_ptr()) }.to_str().unwrap().to_string()
}

/// The calling thread's last error: status and message.
fn last_error() -> (realer_status, String) {
    let e = unsafe { &*realer_last_error() };
    (e.status, text(e.message).unwrap())
}

type Lines = Mutex<Vec<(realer_log_level, String)>>;

unsafe extern "C" fn keep_line(user_data: *mut c_void, level: realer_log_level, message: *const c_char) {
    let lines = unsafe { &*(user_data as *const Lines) };
    lines.lock().unwrap().push((level, unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()));
}

#[derive(Default)]
struct Opts<'a> {
    outbox: Option<&'a Path>,
    scope: Option<&'a str>,
    /// Request timeout; 10 s when 0.
    request_ms: u32,
}

/// A client made through the C API, with the log lines it wrote; freed when dropped.
struct C {
    client: *mut realer_client,
    lines: Box<Lines>,
}

// The client is shareable between threads (the C API's promise); the lines are behind a mutex.
unsafe impl Send for C {}
unsafe impl Sync for C {}

impl Drop for C {
    fn drop(&mut self) {
        unsafe { realer_client_free(self.client) };
    }
}

fn c_client(sim: &Sim, opts: Opts<'_>) -> C {
    let lines: Box<Lines> = Box::default();
    unsafe {
        let cfg = realer_config_new();
        let pem = sim.ca_pem();
        assert_eq!(realer_config_set_base_url(cfg, cstr(&sim.base_url()).as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_ca_pem(cfg, pem.as_ptr(), pem.len()), REALER_OK);
        assert_eq!(realer_config_set_device_id(cfg, cstr(builtin::DEVICE_ID).as_ptr()), REALER_OK);
        let (id, secret) = (cstr(builtin::CLIENT_ID), cstr(builtin::CLIENT_SECRET));
        assert_eq!(realer_config_set_credentials(cfg, id.as_ptr(), secret.as_ptr()), REALER_OK);
        let request_ms = if opts.request_ms == 0 { 10_000 } else { opts.request_ms };
        assert_eq!(realer_config_set_timeouts(cfg, request_ms.min(5_000), request_ms), REALER_OK);
        assert_eq!(realer_config_set_retry(cfg, 5, 10, 100), REALER_OK);
        if let Some(scope) = opts.scope {
            assert_eq!(realer_config_set_scope(cfg, cstr(scope).as_ptr()), REALER_OK);
        }
        if let Some(path) = opts.outbox {
            assert_eq!(realer_config_set_outbox(cfg, cstr(path.to_str().unwrap()).as_ptr(), 0, 0), REALER_OK);
        }
        let user_data = &*lines as *const Lines as *mut c_void;
        assert_eq!(realer_config_set_logger(cfg, Some(keep_line), user_data, REALER_LOG_INFO), REALER_OK);
        let mut client = null_mut();
        assert_eq!(realer_client_new(cfg, &mut client), REALER_OK, "{:?}", last_error());
        realer_config_free(cfg);
        C { client, lines }
    }
}

/// One desired state as the C API gives it: command id, value, desired id, action.
type Wanted = (String, Option<String>, Option<String>, realer_desired_action);

impl C {
    /// `realer_desired_states_fetch`: the source and the states.
    fn desired(&self) -> (realer_desired_source, Vec<Wanted>) {
        self.try_desired().unwrap_or_else(|e| panic!("realer_desired_states_fetch: {e:?}"))
    }

    fn try_desired(&self) -> Result<(realer_desired_source, Vec<Wanted>), (realer_status, String)> {
        unsafe {
            let mut list = null_mut();
            let st = realer_desired_states_fetch(self.client, &mut list);
            if st != REALER_OK {
                return Err(last_error());
            }
            let mut out = Vec::new();
            for i in 0..realer_desired_states_len(list) {
                let mut d = std::mem::zeroed::<realer_desired_state>();
                assert_eq!(realer_desired_states_get(list, i, &mut d), REALER_OK);
                out.push((text(d.command_id).unwrap(), text(d.value), text(d.desired_id), d.action));
            }
            let source = realer_desired_states_source(list);
            realer_desired_states_free(list);
            Ok((source, out))
        }
    }

    /// `realer_commands_fetch`: the ids.
    fn commands(&self) -> Result<Vec<String>, (realer_status, String)> {
        unsafe {
            let mut list = null_mut();
            if realer_commands_fetch(self.client, &mut list) != REALER_OK {
                return Err(last_error());
            }
            let mut ids = Vec::new();
            for i in 0..realer_commands_len(list) {
                let mut c = std::mem::zeroed::<realer_command>();
                assert_eq!(realer_commands_get(list, i, &mut c), REALER_OK);
                ids.push(text(c.id).unwrap());
            }
            realer_commands_free(list);
            Ok(ids)
        }
    }

    fn sensors(&self) -> Result<usize, (realer_status, String)> {
        unsafe {
            let mut list = null_mut();
            if realer_sensors_fetch(self.client, &mut list) != REALER_OK {
                return Err(last_error());
            }
            let n = realer_sensors_len(list);
            realer_sensors_free(list);
            Ok(n)
        }
    }

    /// Posts one item built by `fill` from `realer_feed_item_init`.
    fn post(&self, fill: impl FnOnce(&mut realer_feed_item)) -> (realer_status, realer_feed_result) {
        unsafe {
            let mut item = std::mem::zeroed::<realer_feed_item>();
            realer_feed_item_init(&mut item);
            fill(&mut item);
            let mut result = std::mem::zeroed::<realer_feed_result>();
            let st = realer_feed_post(self.client, &item, &mut result);
            (st, result)
        }
    }

    /// Reports a command's physical value without desired_id (a catalog value applied, or a local change).
    fn report(&self, command_id: &str, value: &str) {
        let (id, v) = (cstr(command_id), cstr(value));
        let (st, r) = self.post(|i| {
            i.command_id = id.as_ptr();
            i.value = v.as_ptr();
        });
        assert_eq!((st, r.outcome), (REALER_OK, REALER_FEED_OUTCOME_CREATED), "{:?}", last_error());
    }

    fn lines(&self) -> Vec<(realer_log_level, String)> {
        self.lines.lock().unwrap().clone()
    }
}

fn v1() -> Sim {
    sim()
}

fn v2() -> Sim {
    sim_with(SimOptions { flavour: Flavour::V2, ..SimOptions::default() })
}

fn requests_to(sim: &Sim, suffix: &str) -> Vec<u16> {
    sim.request_log().iter().filter(|e| e.path.ends_with(suffix)).map(|e| e.status).collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("contract-c-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wanted(command: &str, value: &str) -> Wanted {
    (command.into(), Some(value.into()), None, REALER_DESIRED_ACTION_APPLY)
}

/// What the built-in device's catalog wants on the older service: commands 1, 2 and 4 (3 is unrepresentable).
fn builtin_catalog_values() -> Vec<Wanted> {
    vec![wanted("1", "1.0"), wanted("2", "1.0"), wanted("4", "20.5")]
}

/// A user sets command `command` to `value` in Realer (on the older service its catalog value becomes it).
fn user_sets(sim: &Sim, command: &str, desired_id: &str, seq: u64, value: &str) {
    let d = FixtureDesired {
        desired_id: desired_id.into(),
        value: value.into(),
        sequence_number: seq,
        expires_at: None,
        expires_in_secs: Some(600),
    };
    sim.add_desired_state(builtin::DEVICE_ID, &d, command).unwrap();
}

/// Contract section 3: the catalog value is the desired state, changed only by a user or an automation; a
/// device acts on it when it is new. A local change (a wall switch) reported without desired_id stays.
#[test]
fn a_local_change_is_never_undone_by_the_next_poll() {
    let sim = v1();
    let c = c_client(&sim, Opts::default());
    c.commands().unwrap();
    let (source, first) = c.desired();
    assert_eq!((source, &first), (REALER_DESIRED_SOURCE_CATALOG, &builtin_catalog_values()), "first seen: applied");
    // The firmware drives the actuators and reports them; then someone flips command 1 back by hand.
    for (command, value, _, _) in &first {
        c.report(command, value.as_deref().unwrap());
    }
    c.report("1", "0");
    for poll in 0..3 {
        c.commands().unwrap();
        assert_eq!(c.desired().1, vec![], "poll {poll}: the catalog's 1.0 for command 1 was acted on already");
    }
    // A user sets a new value in Realer: it is new, so it is handed over, once.
    user_sets(&sim, "1", "des_user_sets_half", 10, "0.5");
    assert_eq!(c.desired().1, vec![wanted("1", "0.5")]);
    assert_eq!(c.desired().1, vec![]);
    // Compared numerically for NumericRange: "0.50" is the same value.
    user_sets(&sim, "1", "des_user_sets_half_again", 11, "0.50");
    assert_eq!(c.desired().1, vec![]);
}

/// Contract section 3 with Realer's "local reported-state adoption" on: the local report becomes the catalog
/// value, which is new, and is handed over once; the actuator already holds it, so nothing flips.
#[test]
fn with_local_adoption_the_adopted_value_is_handed_over_once_and_matches_the_actuator() {
    let sim = sim_with(SimOptions { adopt_local_reports: true, ..SimOptions::default() });
    let c = c_client(&sim, Opts::default());
    assert_eq!(c.desired().1, builtin_catalog_values());
    c.report("1", "1.0");
    c.report("1", "0"); // by hand; Realer adopts it as command 1's value
    c.commands().unwrap();
    assert_eq!(c.desired().1, vec![wanted("1", "0")], "the adopted value is new: what the actuator holds");
    assert_eq!(c.desired().1, vec![]);
}

/// Contract section 3: the last catalog value seen is kept in the outbox file, so a restart does not undo a
/// local change either; and section 3b: the finding that the service has no /desired-states is kept there too.
#[test]
fn a_restart_with_the_outbox_file_does_not_undo_a_local_change() {
    let sim = v1();
    let dir = scratch("restart");
    let outbox = dir.join("outbox.db");
    let first = c_client(&sim, Opts { outbox: Some(&outbox), ..Opts::default() });
    assert_eq!(first.desired().1, builtin_catalog_values());
    first.report("1", "0"); // a local change after applying
    drop(first);
    let restarted = c_client(&sim, Opts { outbox: Some(&outbox), ..Opts::default() });
    assert_eq!(restarted.desired(), (REALER_DESIRED_SOURCE_CATALOG, vec![]), "nothing new since the restart");
    assert_eq!(requests_to(&sim, "/desired-states"), vec![404], "the restart did not ask again");
    drop(restarted);
    // Without the file, a new client has seen nothing: every value is new to it, and it asks.
    let fresh = c_client(&sim, Opts::default());
    assert_eq!(fresh.desired().1, builtin_catalog_values());
    assert_eq!(requests_to(&sim, "/desired-states"), vec![404, 404]);
}

/// Contract section 3, nothing lost: a catalog value counts as acted on when the device reports that command,
/// fetches again, or frees its client; a process killed between the fetch and the apply gets it again.
#[test]
fn a_catalog_value_handed_over_just_before_a_kill_is_handed_over_again() {
    let sim = v1();
    let dir = scratch("kill");
    let outbox = dir.join("outbox.db");
    let first = c_client(&sim, Opts { outbox: Some(&outbox), ..Opts::default() });
    assert_eq!(first.desired().1, builtin_catalog_values());
    // Killed before it applied anything: no report, no next fetch, no realer_client_free.
    std::mem::forget(first);
    let restarted = c_client(&sim, Opts { outbox: Some(&outbox), ..Opts::default() });
    assert_eq!(restarted.desired().1, builtin_catalog_values(), "not acted on: handed over again");
    // The next fetch shows that pass is over: acted on, never again, not even after a restart.
    assert_eq!(restarted.desired().1, vec![]);
    drop(restarted);
    let again = c_client(&sim, Opts { outbox: Some(&outbox), ..Opts::default() });
    assert_eq!(again.desired().1, vec![]);
    // One report of a command marks its value: a user's new value for command 1, handed over, then reported.
    user_sets(&sim, "1", "des_user_sets_quarter", 12, "0.25");
    assert_eq!(again.desired().1, vec![wanted("1", "0.25")]);
    again.report("1", "0.25");
    std::mem::forget(again);
    let after_report = c_client(&sim, Opts { outbox: Some(&outbox), ..Opts::default() });
    assert_eq!(after_report.desired().1, vec![], "reported: acted on");
}

/// Contract section 6: a 401 on a token's first use ends the call; a 401 on a token already used for another
/// answer (an expiry in the middle of retries) renews again, within the deadline, and the item is stored once.
#[test]
fn a_401_on_a_token_used_for_another_answer_renews_again() {
    let sim = v1();
    let c = c_client(&sim, Opts::default());
    assert_eq!(unsafe { realer_client_authenticate(c.client) }, REALER_OK);
    let unauthorized = || Fault::Answer {
        status: 401,
        body: r#"{"code":4001,"error":{"type":"invalid_token","message":"the token expired"}}"#.into(),
    };
    for fault in [unauthorized(), Fault::ServiceUnavailable, Fault::ServiceUnavailable, Fault::CloseBeforeAnswer] {
        sim.inject(fault, Target::FeedData, 1);
    }
    sim.inject(unauthorized(), Target::FeedData, 1);
    let (sensor, value, id) = (cstr("7"), cstr("21.5"), cstr("expired-twice-1"));
    let (st, r) = c.post(|i| {
        i.sensor_id = sensor.as_ptr();
        i.value = value.as_ptr();
        i.message_id = id.as_ptr();
    });
    assert_eq!((st, r.outcome), (REALER_OK, REALER_FEED_OUTCOME_CREATED), "{:?}", last_error());
    assert_eq!(requests_to(&sim, "/feed-data"), vec![401, 503, 503, 0, 401, 201]);
    assert_eq!(sim.tokens_issued(), 3, "the first token, and one after each expiry");
    let stored: Vec<_> = sim.records().into_iter().filter(|r| r.message_id == "expired-twice-1").collect();
    assert_eq!(stored.len(), 1);

    // A token refused on its first use: the credentials or the device's access are wrong; the call ends.
    sim.inject(unauthorized(), Target::FeedData, 2);
    let id = cstr("refused-fresh-1");
    let (st, r) = c.post(|i| {
        i.sensor_id = sensor.as_ptr();
        i.value = value.as_ptr();
        i.message_id = id.as_ptr();
    });
    assert_eq!((st, r.outcome), (REALER_ERR_AUTH, REALER_FEED_OUTCOME_NOT_SENT));
    assert_eq!(buf(&r.message_id), "refused-fresh-1");
    assert_eq!(
        requests_to(&sim, "/feed-data")[6..],
        [401, 401],
        "the used token's 401 renewed; the new token's 401 on its first use ended the call"
    );
    assert_eq!(sim.tokens_issued(), 4);
}

/// Contract sections 3 and 3b: only `{"<list>":[…]}` is a list; another JSON answer is a protocol error
/// naming what it is, and an empty list is only what an answer says.
#[test]
fn an_answer_that_is_not_the_list_is_a_protocol_error_not_an_empty_catalog() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let sim = v2();
    let c = c_client(&sim, Opts::default());
    let cases = [
        (r#"[{"id":1,"value":"1"}]"#.to_string(), "is an array, not a JSON object with a \"commands\" array"),
        (r#""commands""#.into(), "is a string, not a JSON object with a \"commands\" array"),
        (deep.clone(), "is an array, not a JSON object with a \"commands\" array"),
        (r#"{"code":2000,"commands":{"id":1}}"#.into(), "has \"commands\" as an object, not an array"),
        (r#"{"code":2000,"commands":[7,"x"]}"#.into(), "lists 2 item(s), none of them usable"),
    ];
    for (body, says) in &cases {
        sim.inject(Fault::Answer { status: 200, body: body.clone() }, Target::Catalog, 1);
        let (st, msg) = c.commands().unwrap_err();
        assert_eq!(st, REALER_ERR_PROTOCOL, "{msg}");
        assert!(msg.starts_with(&format!("the commands answer {says}")), "{msg}");
    }
    let sensors = Target::Path(format!("/iot/v1/devices/{}/sensors", builtin::DEVICE_ID));
    sim.inject(Fault::Answer { status: 200, body: "[]".into() }, sensors.clone(), 1);
    let (st, msg) = c.sensors().unwrap_err();
    assert_eq!(
        (st, msg.as_str()),
        (REALER_ERR_PROTOCOL, "the sensors answer is an array, not a JSON object with a \"sensors\" array")
    );
    for (body, says) in [
        (r#"[]"#.to_string(), "is an array, not a JSON object with a \"desired_states\" array"),
        (r#""none""#.into(), "is a string, not a JSON object with a \"desired_states\" array"),
        (deep, "is an array, not a JSON object with a \"desired_states\" array"),
        (r#"{"code":2000}"#.into(), "has no \"desired_states\" array"),
    ] {
        sim.inject(Fault::Answer { status: 200, body }, Target::DesiredStates, 1);
        let (st, msg) = c.try_desired().unwrap_err();
        assert_eq!(st, REALER_ERR_PROTOCOL, "{msg}");
        assert!(msg.starts_with(&format!("the desired-states answer {says}")), "{msg}");
    }
    // Said so: an empty list.
    sim.inject(Fault::Answer { status: 200, body: r#"{"code":2000,"commands":[]}"#.into() }, Target::Catalog, 1);
    assert_eq!(c.commands().unwrap(), Vec::<String>::new());
    sim.inject(Fault::Answer { status: 200, body: r#"{"desired_states":[]}"#.into() }, Target::DesiredStates, 1);
    assert_eq!(c.desired(), (REALER_DESIRED_SOURCE_DESIRED_STATES, vec![]));
}

/// Contract section 3b on the older service: one catalog read per pass (the commands the firmware read stand in
/// for the desired-state fetch's), /desired-states asked once for the client's life; 400 and 405 mean "not
/// offered" as 404 does; a changed catalog or granted scope asks again.
#[test]
fn one_catalog_read_per_pass_and_the_older_service_remembered() {
    let sim = v1();
    let c = c_client(&sim, Opts::default());
    for pass in 0..3 {
        c.commands().unwrap();
        c.sensors().unwrap();
        let (source, _) = c.desired();
        assert_eq!(source, REALER_DESIRED_SOURCE_CATALOG, "pass {pass}");
    }
    assert_eq!(requests_to(&sim, "/commands").len(), 3, "one catalog read per pass");
    assert_eq!(requests_to(&sim, "/desired-states"), vec![404], "asked once");
    // Without a command list read just before, the fetch reads the catalog itself.
    c.desired();
    assert_eq!(requests_to(&sim, "/commands").len(), 4);

    // The catalog's commands change (the device was provisioned again, or the service changed): asked again.
    let other = r#"{"code":2000,"commands":[{"id":1,"value":"1.0","value_type":"NumericRange","kind":"relay","pin_port":"6"}]}"#;
    sim.inject(Fault::Answer { status: 200, body: other.into() }, Target::Catalog, 1);
    c.commands().unwrap();
    c.desired();
    assert_eq!(requests_to(&sim, "/desired-states"), vec![404, 404]);
    c.commands().unwrap();
    c.desired();
    assert_eq!(requests_to(&sim, "/desired-states"), vec![404, 404, 404], "back to the old catalog: a change too");
    c.desired();
    assert_eq!(requests_to(&sim, "/desired-states").len(), 3);

    // Kept in the outbox file while the granted scope is the same; another scope asks again.
    let dir = scratch("reprobe");
    let outbox = dir.join("outbox.db");
    let with_file = c_client(&sim, Opts { outbox: Some(&outbox), ..Opts::default() });
    with_file.desired();
    drop(with_file);
    assert_eq!(requests_to(&sim, "/desired-states").len(), 4);
    c_client(&sim, Opts { outbox: Some(&outbox), ..Opts::default() }).desired();
    assert_eq!(requests_to(&sim, "/desired-states").len(), 4, "remembered in the outbox file");
    let scope = "iot:catalog:read iot:feed-data:write iot:desired-state:read";
    let rescoped = c_client(&sim, Opts { outbox: Some(&outbox), scope: Some(scope), ..Opts::default() });
    rescoped.desired();
    assert_eq!(requests_to(&sim, "/desired-states").len(), 5, "a token granted another scope: asked again");
    rescoped.desired();
    assert_eq!(requests_to(&sim, "/desired-states").len(), 5);

    // 400 and 405 from /desired-states: not offered here, as 404 says.
    let v2 = v2();
    for status in [400u16, 405] {
        let body = format!(r#"{{"code":{},"error":{{"type":"x","message":"no such route"}}}}"#, 4000 + status % 100);
        v2.inject(Fault::Answer { status, body }, Target::DesiredStates, 1);
        let c = c_client(&v2, Opts::default());
        let (source, states) = c.desired();
        assert_eq!(source, REALER_DESIRED_SOURCE_CATALOG, "HTTP {status}");
        assert_eq!(states.len(), 3, "HTTP {status}: the catalog's values, first seen");
    }

    // A proxy's or firewall's 403 or 400 page (not Realer's JSON) judged nothing: the fetch fails, nothing is
    // remembered, and the next pass gets the newer service's desired states.
    let newer = self::v2();
    let dir = scratch("proxy-page");
    let outbox = dir.join("outbox.db");
    let c = c_client(&newer, Opts { outbox: Some(&outbox), ..Opts::default() });
    for status in [403u16, 400] {
        newer.inject(Fault::ProxyPage { status, body: PageBody::Html }, Target::DesiredStates, 1);
        let (st, message) = c.try_desired().expect_err("a proxy's page is no finding");
        assert_eq!(st, REALER_ERR_API, "HTTP {status}: {message}");
        assert_eq!(c.desired().0, REALER_DESIRED_SOURCE_DESIRED_STATES, "HTTP {status}");
    }
    drop(c);
    let again = c_client(&newer, Opts { outbox: Some(&outbox), ..Opts::default() });
    assert_eq!(again.desired().0, REALER_DESIRED_SOURCE_DESIRED_STATES, "nothing kept in the file");
}

/// Contract sections 2 and 3b: a token whose granted scope lacks iot:desired-state:read gets 403 from a newer
/// service's /desired-states, and desired states are never delivered: said at Warn, with the fix.
#[test]
fn a_scope_without_desired_state_read_is_warned_about_with_the_fix() {
    let sim = v2();
    let c = c_client(&sim, Opts { scope: Some("iot:catalog:read iot:feed-data:write"), ..Opts::default() });
    let (source, _) = c.desired();
    assert_eq!(source, REALER_DESIRED_SOURCE_CATALOG);
    assert_eq!(requests_to(&sim, "/desired-states"), vec![403]);
    let lines = c.lines();
    let warned: Vec<&String> = lines.iter().filter(|(l, _)| *l == REALER_LOG_WARN).map(|(_, m)| m).collect();
    assert_eq!(warned.len(), 1, "{lines:#?}");
    assert!(
        warned[0].contains("lacks iot:desired-state:read") && warned[0].contains("Fix: leave the scope unset"),
        "{}",
        warned[0]
    );
    // The default scopes: desired states, and nothing to warn about.
    let c = c_client(&sim, Opts::default());
    assert_eq!(c.desired().0, REALER_DESIRED_SOURCE_DESIRED_STATES);
    assert!(c.lines().iter().all(|(l, _)| *l != REALER_LOG_WARN), "{:#?}", c.lines());
}

/// Contract section 4: `value_received_at` is ISO 8601 UTC in Realer's form; a caller's other RFC 3339 forms
/// (lower-case t and z, offsets, -00:00) are normalised before sending, and what was sent is returned.
#[test]
fn caller_timestamps_go_out_in_realers_form() {
    let sim = v1();
    let c = c_client(&sim, Opts::default());
    let now = realer::time::now_unix_ms() / 1000 * 1000 - 60_000;
    let utc = realer::time::format_rfc3339_ms(now).unwrap(); // YYYY-MM-DDTHH:MM:SS.000Z
    let plain = format!("{}Z", &utc[..19]);
    // The same instant at +02:00.
    let shifted = realer::time::format_rfc3339_ms(now + 2 * 3_600_000).unwrap();
    let cases = [
        (plain.to_lowercase(), plain.clone()),
        (format!("{}-00:00", &utc[..19]), plain.clone()),
        (format!("{}.5+02:00", &shifted[..19]), format!("{}.500Z", &utc[..19])),
        (format!("{}.123456z", &utc[..19]).replace('T', "t"), format!("{}.123Z", &utc[..19])),
    ];
    let sensor = cstr("7");
    for (i, (given, sent)) in cases.iter().enumerate() {
        let (at, value, id) = (cstr(given), cstr("1"), cstr(&format!("stamp-{i}")));
        let (st, r) = c.post(|item| {
            item.sensor_id = sensor.as_ptr();
            item.value = value.as_ptr();
            item.message_id = id.as_ptr();
            item.value_received_at = at.as_ptr();
        });
        assert_eq!(st, REALER_OK, "{given}: {:?}", last_error());
        assert_eq!(&buf(&r.value_received_at), sent, "{given}");
        let record = sim.records().into_iter().find(|r| r.message_id == format!("stamp-{i}")).unwrap();
        assert_eq!(record.item["value_received_at"].as_str(), Some(sent.as_str()), "{given}");
    }
    // Not RFC 3339: refused before any I/O, naming the field.
    let (bad, value) = (cstr(&format!("{}+0200", &utc[..19])), cstr("1"));
    let (st, _) = c.post(|item| {
        item.sensor_id = sensor.as_ptr();
        item.value = value.as_ptr();
        item.value_received_at = bad.as_ptr();
    });
    let (_, msg) = last_error();
    assert_eq!(st, REALER_ERR_INVALID_ARGUMENT);
    assert!(msg.contains("value_received_at"), "{msg}");
}

/// Contract section 5: results are matched by `message_id`, falling back to `index`. A `message_id` is scoped
/// to its source, so readings of two sensors may carry the same one in one batch (a per-sensor counter); then
/// a result's `index` tells which of them it is about, in whatever order the results come. Matched by the id
/// alone, the stored reading took the other one's rejection (a dead letter in an outbox) and the rejected one
/// was counted stored (deleted from an outbox: lost).
#[test]
fn results_for_one_message_id_of_two_sources_are_told_apart_by_their_index() {
    let sim = v1();
    let c = c_client(&sim, Opts::default());
    let (seven, eight, low, high) = (cstr("7"), cstr("8"), cstr("1.5"), cstr("250.5"));
    let (id, at) = (cstr("evt-1"), cstr("2026-04-24T10:15:00Z"));
    let items: Vec<realer_feed_item> = [(&seven, &low), (&eight, &high)]
        .into_iter()
        .map(|(sensor, value)| unsafe {
            let mut item = std::mem::zeroed::<realer_feed_item>();
            assert_eq!(realer_feed_item_init(&mut item), REALER_OK);
            item.sensor_id = sensor.as_ptr();
            item.value = value.as_ptr();
            item.message_id = id.as_ptr();
            item.value_received_at = at.as_ptr();
            item
        })
        .collect();
    // Realer's answer, its results in another order than the items.
    let answer = r#"{"code":2000,"status":"partial","results":[
        {"index":1,"message_id":"evt-1","status":"rejected","code":4022,
         "error":{"type":"validation_failed","message":"out of range","details":{"value":["out of range"]}}},
        {"index":0,"message_id":"evt-1","status":"created","feed_data_id":41}]}"#;
    sim.inject(Fault::Answer { status: 200, body: answer.into() }, Target::Batch, 1);
    unsafe {
        let mut out = null_mut();
        assert_eq!(realer_feed_post_batch(c.client, items.as_ptr(), 2, &mut out), REALER_OK, "{:?}", last_error());
        let results: Vec<realer_item_result> = (0..2)
            .map(|i| {
                let mut r = std::mem::zeroed::<realer_item_result>();
                assert_eq!(realer_batch_result_get(out, i, &mut r), REALER_OK);
                r
            })
            .collect();
        assert_eq!(
            (results[0].outcome, results[0].feed_data_id),
            (REALER_FEED_OUTCOME_CREATED, 41),
            "sensor 7's reading was stored"
        );
        assert_eq!(
            (results[1].outcome, results[1].code),
            (REALER_FEED_OUTCOME_REJECTED, 4022),
            "sensor 8's reading was rejected"
        );
        realer_batch_result_free(out);
    }
}

/// Contract section 2 with many threads: one token request in flight per client, its callers waiting within
/// their own deadlines. A token endpoint that drips its answer a byte at a time (never silent long enough for
/// a read timeout) gets about one request per timeout window, not one per waiting thread: 32 threads, started
/// over a second, each calling again as soon as a call ends, for 6 s.
#[test]
fn a_dripping_token_endpoint_gets_about_one_request_per_timeout_window() {
    let sim = v1();
    // The token answer (~170 bytes) at 40 ms a byte takes about 7 s: longer than the 3 s of every call.
    sim.inject(Fault::Drip { ms: 40 }, Target::Token, 1000);
    let c = c_client(&sim, Opts { request_ms: 3000, ..Opts::default() });
    let started = Instant::now();
    let calls: Vec<(realer_status, Duration)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..32u64)
            .map(|i| {
                let c = &c;
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(30 * i));
                    let mut calls = Vec::new();
                    let (sensor, value, id) = (cstr("7"), cstr("1"), cstr(&format!("drip-{i}")));
                    while started.elapsed() < Duration::from_secs(6) {
                        let began = Instant::now();
                        let (st, _) = c.post(|item| {
                            item.sensor_id = sensor.as_ptr();
                            item.value = value.as_ptr();
                            item.message_id = id.as_ptr();
                        });
                        calls.push((st, began.elapsed()));
                    }
                    calls
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    let token_requests = requests_to(&sim, "/oauth/token").len();
    println!(
        "32 threads calling for 6 s, 3 s request timeout, token answer dripping at 40 ms a byte: {} calls, \
         {token_requests} token request(s) in {} ms",
        calls.len(),
        elapsed.as_millis()
    );
    for (st, took) in &calls {
        assert_eq!(*st, REALER_ERR_TIMEOUT);
        assert!(*took < Duration::from_millis(4500), "a call took {took:?}");
    }
    let windows = elapsed.as_millis().div_ceil(3000) as usize;
    assert!(token_requests <= windows, "{token_requests} token requests in {windows} timeout windows");
    assert!(sim.records().is_empty());
}
