//! Builds c_examples/firmware_loop with its Makefile (shared and STATIC=1) and runs it against realer-sim:
//! the built-in fixture, and a fixture with other ids, another device id and other credentials, given only
//! through the REALER_* variables. What the sim stored proves the whole loop ran: an `applied` report for the
//! pending desired state, a `stale` one for the expired state, a local change without desired_id, and each
//! usable sensor's reading twice (one by one, then in the batch).

#[path = "c/support.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use realer_sim::{builtin, time, Fixture, FixtureDevice, Id, Record, Sim, SimOptions};
use serde_json::Value;
use support::{build, compile_c, lib_dir, repo, run_program, scratch_dir, sim_env};

/// A fixture that shares no id, credential or value with the built-in one: string and integer ids, a string
/// device id, the usable commands and sensors after an unusable one, and another device beside it.
const CUSTOM_FIXTURE: &str = r#"{
  "devices": [
    {
      "id": "dev-garden-0042",
      "client_id": "cdv_garden00000000000000000042",
      "client_secret": "garden secret, with spaces & symbols!",
      "commands": [
        { "id": "cmd_broken", "error": { "type": "unsupported_value_type", "message": "not in v1" } },
        { "id": "cmd_valve_a", "value": "closed", "value_type": "Enum", "kind": "valve", "pin_port": "A1",
          "desired": { "desired_id": "des_valve_a_open", "value": "open", "sequence_number": 41,
                       "expires_in_secs": 900 } },
        { "id": "cmd_valve_b", "value": "closed", "value_type": "Enum", "kind": "valve", "pin_port": "A2",
          "desired": { "desired_id": "des_valve_b_late", "value": "open", "sequence_number": 9,
                       "expires_in_secs": -60 } },
        { "id": 880001, "value": "0", "value_type": "Boolean", "kind": "pump", "pin_port": "B2" }
      ],
      "sensors": [
        { "id": "sns_broken", "error": { "type": "unsupported_quantity", "message": "not in v1" } },
        { "id": "sns_soil_moisture", "kind": "capacitive", "qc": "relative_humidity", "mu": "percent:0",
          "pin_port": "C3" },
        { "id": 990002, "kind": "thermistor", "qc": "celsius_temperature", "mu": "degree_celsius:1",
          "pin_port": "C4" },
        { "id": "sns_light", "kind": "photodiode", "qc": "illuminance", "mu": "lux:0", "pin_port": "C5" }
      ]
    },
    {
      "id": 4242,
      "client_id": "cdv_neighbour0000000000000000x",
      "client_secret": "neighbour-secret",
      "commands": [ { "id": 1, "value": "0", "value_type": "Boolean", "kind": "relay", "pin_port": "1" } ],
      "sensors": [ { "id": 7, "kind": "thermistor", "qc": "celsius_temperature", "mu": "degree_celsius:0",
                     "pin_port": "5" } ]
    }
  ]
}"#;

/// Builds firmware_loop with `make -C c_examples` into `dir` (gcc directly, with the Makefile's flags, when
/// make is missing), and checks the realer.pc it wrote.
fn build_firmware_loop(dir: &Path, static_link: bool) -> PathBuf {
    let profile_dir = lib_dir();
    let has_make = Command::new("make").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_make {
        println!("make is not installed: building with gcc directly");
        return compile_c("c_examples/firmware_loop.c", dir, "firmware_loop", static_link);
    }
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(repo().join("c_examples"))
        .arg(format!("LIBDIR={}", profile_dir.display()))
        .arg(format!("BUILDDIR={}", dir.display()));
    if static_link {
        make.arg("STATIC=1");
    }
    build(&mut make);
    check_pkg_config(dir);
    dir.join("firmware_loop")
}

/// realer.pc carries the header's version and the static link's system libraries.
fn check_pkg_config(dir: &Path) {
    let header = fs::read_to_string(repo().join("include/realer.h")).expect("include/realer.h");
    let version = header
        .lines()
        .find_map(|l| l.strip_prefix("#define REALER_VERSION_STRING \"")?.strip_suffix('"'))
        .expect("REALER_VERSION_STRING in realer.h");
    let pc = fs::read_to_string(dir.join("realer.pc")).expect("the Makefile writes realer.pc");
    assert!(pc.lines().any(|l| l == format!("Version: {version}")), "realer.pc:\n{pc}");
    assert!(pc.lines().any(|l| l == "Libs: -L${libdir} -lrealer"), "realer.pc:\n{pc}");
    assert!(pc.lines().any(|l| l.starts_with("Libs.private: ") && l.contains("-lpthread")), "realer.pc:\n{pc}");
    assert!(pc.lines().any(|l| l == "Cflags: -I${includedir}"), "realer.pc:\n{pc}");
    // pkg-config itself, when installed, reads it.
    if let Ok(out) = Command::new("pkg-config")
        .arg("--static")
        .arg("--libs")
        .arg("--cflags")
        .arg("realer")
        .env("PKG_CONFIG_PATH", dir)
        .env("PKG_CONFIG_LIBDIR", dir)
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("-lrealer") && text.contains("-ldl"), "pkg-config: {text}");
    }
}

/// A record's item field as text (ids may be JSON numbers or strings).
fn text(item: &Value, key: &str) -> Option<String> {
    match item.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Checks what the sim stored for `device` against the fixture's catalog.
fn check_records(records: &[Record], device: &FixtureDevice, start_unix: i64) {
    let device_id = device.id.to_string();
    let mine: Vec<&Value> = records.iter().filter(|r| r.device_id == device_id).map(|r| &r.item).collect();
    let shown = || format!("{:#?}", mine);
    assert_eq!(mine.len(), records.len(), "records for another device: {records:#?}");
    let mut pending = 0;
    let mut expired = 0;
    for cmd in device.commands.iter().filter(|c| c.error.is_none()) {
        let Some(desired) = &cmd.desired else { continue };
        let expires = match (desired.expires_in_secs, &desired.expires_at) {
            (Some(secs), _) => start_unix + secs,
            (None, Some(at)) => time::parse_rfc3339_utc(at).expect("fixture expires_at"),
            (None, None) => i64::MAX,
        };
        let (status, value) = if expires > start_unix + 60 {
            pending += 1;
            ("applied", Some(desired.value.as_str()))
        } else {
            expired += 1;
            ("stale", None)
        };
        let reports: Vec<&&Value> =
            mine.iter().filter(|i| text(i, "desired_id").as_deref() == Some(desired.desired_id.as_str())).collect();
        assert_eq!(reports.len(), 1, "one report for desired state {}: {}", desired.desired_id, shown());
        let r = reports[0];
        assert_eq!(text(r, "command_id"), Some(cmd.id.to_string()), "{r}");
        assert_eq!(text(r, "report_status").as_deref(), Some(status), "{r}");
        assert_eq!(r.get("sequence_number").and_then(Value::as_u64), Some(desired.sequence_number), "{r}");
        if let Some(v) = value {
            assert_eq!(text(r, "value").as_deref(), Some(v), "{r}");
        }
        // Command ids made of digits go out as JSON numbers, others as strings.
        assert_eq!(r["command_id"].is_number(), matches!(cmd.id, Id::Int(_)), "{r}");
    }
    assert!(pending >= 1 && expired >= 1, "the fixture needs a pending and an expired desired state");

    let local: Vec<&&Value> =
        mine.iter().filter(|i| i.get("command_id").is_some() && i.get("desired_id").is_none()).collect();
    assert_eq!(local.len(), 1, "one local change without desired_id: {}", shown());
    assert!(matches!(text(local[0], "report_status").as_deref(), None | Some("reported")), "{}", local[0]);

    let usable: Vec<&Id> = device.sensors.iter().filter(|s| s.error.is_none()).map(|s| &s.id).collect();
    for id in &usable {
        let readings = mine.iter().filter(|i| text(i, "sensor_id") == Some(id.to_string())).count();
        assert_eq!(readings, 2, "sensor {id}: one reading alone and one in the batch: {}", shown());
    }
    let sensor_items = mine.iter().filter(|i| i.get("sensor_id").is_some()).count();
    assert_eq!(sensor_items, 2 * usable.len(), "readings only for usable sensors: {}", shown());
    assert_eq!(mine.len(), pending + expired + 1 + 2 * usable.len(), "nothing else stored: {}", shown());
}

fn run_loop(name: &str, fixture: Option<Fixture>, static_link: bool) {
    let dir = scratch_dir(name);
    let exe = build_firmware_loop(&dir, static_link);
    let fixture = fixture.unwrap_or_else(Fixture::builtin);
    let device = fixture.devices[0].clone();
    let start_unix = time::now_unix();
    let sim = Sim::start(SimOptions { quiet: true, fixture: Some(fixture), ..Default::default() })
        .expect("realer-sim starts");
    let env = sim_env(&sim, &dir, &device.id.to_string(), &device.client_id, &device.client_secret);

    let run = run_program(&exe, &env, &dir);
    println!("{}", run.output());
    assert_eq!(run.code, Some(0), "firmware_loop failed\n{}", run.output());
    assert!(run.stdout.contains("Done: every step succeeded."), "{}", run.output());
    check_records(&sim.records(), &device, start_unix);
}

#[test]
fn firmware_loop_builtin_fixture() {
    run_loop("firmware-loop-builtin", None, false);
}

#[test]
fn firmware_loop_custom_fixture() {
    let fixture = Fixture::from_json(CUSTOM_FIXTURE).expect("the custom fixture is valid");
    assert_ne!(fixture.devices[0].id.to_string(), builtin::DEVICE_ID);
    run_loop("firmware-loop-custom", Some(fixture), false);
}

#[test]
fn firmware_loop_static() {
    run_loop("firmware-loop-static", None, true);
}

/// A refused secret: the loop stops at authentication with a non-zero exit and says why, never the secret.
#[test]
fn firmware_loop_reports_failure() {
    let dir = scratch_dir("firmware-loop-failure");
    let exe = build_firmware_loop(&dir, false);
    let sim = Sim::start(SimOptions { quiet: true, ..Default::default() }).expect("realer-sim starts");
    let env = sim_env(&sim, &dir, builtin::DEVICE_ID, builtin::CLIENT_ID, "not-the-demo-secret");
    let run = run_program(&exe, &env, &dir);
    println!("{}", run.output());
    assert_eq!(run.code, Some(1), "{}", run.output());
    assert!(run.stderr.contains("REALER_ERR_AUTH"), "{}", run.output());
    assert!(!run.stdout.contains("not-the-demo-secret") && !run.stderr.contains("not-the-demo-secret"));
    assert!(sim.records().is_empty());
}
