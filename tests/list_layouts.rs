//! The compact lists' layouts, end to end: a catalog in which every field of every item holds a string found
//! nowhere else, read through the C ABI, each field compared with what the fixture put there. A field stored at
//! one slot and read back from another (the slot names of `catalog.rs` and `desired.rs`, the views `ffi` reads,
//! the C structs it fills) hands C another field's string: this catches it, where a check for non-NULL would not.

mod common;

use std::ffi::{c_char, CStr};
use std::ptr::null_mut;

use common::*;
use realer::ffi::catalog::*;
use realer::ffi::client::*;
use realer::ffi::config::*;
use realer::ffi::desired::*;
use realer::ffi::error::*;
use realer_sim::{Fixture, Flavour};

const FIXTURE: &str = r#"{
  "devices": [{
    "id": 4242,
    "client_id": "cdv_layout000000000000000000001",
    "client_secret": "layout-secret",
    "commands": [
      {"id": 31, "value": "31.5", "value_type": "NumericRange", "kind": "kind-c31", "pin_port": "pin-c31",
       "desired": {"desired_id": "des_layout0000000000000000031", "value": "62.25", "sequence_number": 77,
                   "expires_in_secs": 3600}},
      {"id": 32, "value": "1", "value_type": "Binary", "kind": "kind-c32", "pin_port": "pin-c32",
       "desired": {"desired_id": "des_layout0000000000000000032", "value": "0", "sequence_number": 78,
                   "expires_at": "2099-12-31T23:59:58Z"}},
      {"id": 33, "error": {"type": "unsupported_value_type", "message": "message-c33"}}
    ],
    "sensors": [
      {"id": 41, "kind": "kind-s41", "qc": "qc-s41", "mu": "mu-s41", "pin_port": "pin-s41"},
      {"id": 42, "kind": "kind-s42", "qc": "qc-s42", "mu": "mu-s42", "pin_port": "pin-s42"}
    ]
  }]
}"#;

fn text(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn ok(status: realer_status) {
    if status != REALER_OK {
        let e = unsafe { &*realer_last_error() };
        panic!("status {status}: {:?}", text(e.message));
    }
}

fn start(flavour: Flavour) -> (Sim, *mut realer_client) {
    let fixture = Fixture::from_json(FIXTURE).expect("the layout fixture is valid");
    let sim = sim_with(SimOptions { fixture: Some(fixture), flavour, ..Default::default() });
    let cfg = c_config(&sim, ("4242", "cdv_layout000000000000000000001", "layout-secret"));
    unsafe {
        let mut client = null_mut();
        ok(realer_client_new(cfg, &mut client));
        realer_config_free(cfg);
        (sim, client)
    }
}

type Text = Option<String>;
/// id, value, value_type, kind, pin_port; then error_type, error_message.
type CommandFields = ((Text, Text, Text, Text, Text), (Text, Text));

fn commands(client: *mut realer_client) -> Vec<CommandFields> {
    unsafe {
        let mut list = null_mut();
        ok(realer_commands_fetch(client, &mut list));
        let out = (0..realer_commands_len(list))
            .map(|i| {
                let mut c = std::mem::zeroed::<realer_command>();
                ok(realer_commands_get(list, i, &mut c));
                (
                    (text(c.id), text(c.value), text(c.value_type), text(c.kind), text(c.pin_port)),
                    (text(c.error_type), text(c.error_message)),
                )
            })
            .collect();
        realer_commands_free(list);
        out
    }
}

#[test]
fn every_field_of_every_list_reaches_c_from_its_own_place() {
    // v2: the catalog's value is the confirmed one, and the desired states come from /desired-states.
    let (_sim, client) = start(Flavour::V2);
    let none = (None, None);
    assert_eq!(
        commands(client),
        vec![
            ((s("31"), s("31.5"), s("NumericRange"), s("kind-c31"), s("pin-c31")), none.clone()),
            ((s("32"), s("1"), s("Binary"), s("kind-c32"), s("pin-c32")), none.clone()),
            ((s("33"), None, None, None, None), (s("unsupported_value_type"), s("message-c33"))),
        ]
    );

    unsafe {
        let mut list = null_mut();
        ok(realer_sensors_fetch(client, &mut list));
        let sensors: Vec<_> = (0..realer_sensors_len(list))
            .map(|i| {
                let mut x = std::mem::zeroed::<realer_sensor>();
                ok(realer_sensors_get(list, i, &mut x));
                (text(x.id), text(x.kind), text(x.qc), text(x.mu), text(x.pin_port), text(x.error_type))
            })
            .collect();
        realer_sensors_free(list);
        assert_eq!(
            sensors,
            vec![
                (s("41"), s("kind-s41"), s("qc-s41"), s("mu-s41"), s("pin-s41"), None),
                (s("42"), s("kind-s42"), s("qc-s42"), s("mu-s42"), s("pin-s42"), None),
            ]
        );

        let mut wanted = null_mut();
        ok(realer_desired_states_fetch(client, &mut wanted));
        assert_eq!(realer_desired_states_source(wanted), REALER_DESIRED_SOURCE_DESIRED_STATES);
        let mut states: Vec<_> = (0..realer_desired_states_len(wanted))
            .map(|i| {
                let mut d = std::mem::zeroed::<realer_desired_state>();
                ok(realer_desired_states_get(wanted, i, &mut d));
                d
            })
            .collect();
        states.sort_by_key(|d| text(d.command_id));
        // No value type: /desired-states does not carry one (contract section 3b), and this fetch reads no catalog.
        let fields: Vec<_> = states
            .iter()
            .map(|d| {
                (text(d.command_id), text(d.value), text(d.value_type), text(d.desired_id), d.sequence_number, d.action)
            })
            .collect();
        assert_eq!(
            fields,
            vec![
                (s("31"), s("62.25"), None, s("des_layout0000000000000000031"), 77, REALER_DESIRED_ACTION_APPLY),
                (s("32"), s("0"), None, s("des_layout0000000000000000032"), 78, REALER_DESIRED_ACTION_APPLY),
            ]
        );
        // The expiry: as Realer wrote it, and the same instant in Unix milliseconds.
        let expires = text(states[0].expires_at).expect("an expiry");
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let in_ms = states[0].expires_at_unix_ms - now_ms;
        assert!((3_500_000..=3_700_000).contains(&in_ms), "{expires}: {} ms from now", in_ms);
        assert!(expires.ends_with('Z') && expires.len() >= 20, "{expires}");
        assert_eq!(
            (text(states[1].expires_at), states[1].expires_at_unix_ms),
            (s("2099-12-31T23:59:58Z"), 4_102_444_798_000)
        );
        realer_desired_states_free(wanted);
        realer_client_free(client);
    }
}

#[test]
fn on_the_older_service_the_catalog_values_are_the_states_with_their_types() {
    // v1: the catalog's value is what Realer wants (the pending desired value), with no desired id.
    let (_sim, client) = start(Flavour::V1);
    let cmds = commands(client);
    assert_eq!(cmds[0].0, (s("31"), s("62.25"), s("NumericRange"), s("kind-c31"), s("pin-c31")));
    assert_eq!(cmds[1].0, (s("32"), s("0"), s("Binary"), s("kind-c32"), s("pin-c32")));
    unsafe {
        let mut wanted = null_mut();
        ok(realer_desired_states_fetch(client, &mut wanted));
        assert_eq!(realer_desired_states_source(wanted), REALER_DESIRED_SOURCE_CATALOG);
        let states: Vec<_> = (0..realer_desired_states_len(wanted))
            .map(|i| {
                let mut d = std::mem::zeroed::<realer_desired_state>();
                ok(realer_desired_states_get(wanted, i, &mut d));
                (text(d.command_id), text(d.value), text(d.value_type), text(d.desired_id), d.sequence_number)
            })
            .collect();
        assert_eq!(
            states,
            vec![(s("31"), s("62.25"), s("NumericRange"), None, -1), (s("32"), s("0"), s("Binary"), None, -1)]
        );
        realer_desired_states_free(wanted);
        realer_client_free(client);
    }
}
