//! Builds c_examples/firmware_loop with its Makefile (shared and STATIC=1) and runs it against realer-sim,
//! both flavours (v1: the catalog's values; v2: /desired-states): the built-in fixture, and a fixture with
//! other ids, another device id and other credentials, given only through the REALER_* variables. What the
//! sim stored proves the whole loop ran: in v1 a report of the new physical value for every command whose
//! catalog value differs from its actuator (which start at "0"), no desired_id anywhere; in v2 an answer to
//! every pending desired state (`applied`, or `stale` for an expired one or a lower sequence), its sequence
//! echoed, and nothing left pending; a local change without desired_id; and each usable sensor's reading
//! twice (one by one, then in the batch). With `--outbox PATH` the readings go through
//! the outbox: each arrives exactly once, also when the first run could not send them and a later run did.
//! With `--passes N` (C and Python) against v1, no pass undoes the local change of the one before, each pass
//! reads the catalog once, and a restart with the outbox file applies nothing again; also with the sim's local
//! reported-state adoption. readings.cpp names catalog values on v1 (no NULL desired_id to printf).

#[path = "c/support.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use realer_sim::{builtin, time, Fault, Fixture, FixtureDevice, Flavour, Id, Record, Sim, SimOptions, Target};
use serde_json::Value;
use support::{build, compile_c, lib_dir, repo, run_program, run_program_with_args, scratch_dir, sim_env, soname_link};

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
        { "id": 880001, "value": "0", "value_type": "Boolean", "kind": "pump", "pin_port": "B2",
          "desired": [ { "desired_id": "des_pump_on_old", "value": "1", "sequence_number": 2, "expires_in_secs": 900 },
                       { "desired_id": "des_pump_on_new", "value": "1", "sequence_number": 3, "expires_in_secs": 900 } ] },
        { "id": 880002, "value": "0", "value_type": "Boolean", "kind": "fan", "pin_port": "B3" }
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
/// make is missing). The static build links librealer.a as scripts/localize-static leaves it.
fn build_firmware_loop(dir: &Path, static_link: bool) -> PathBuf {
    let profile_dir = lib_dir();
    let has_make = Command::new("make").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_make {
        println!("make is not installed: building with gcc directly");
        return compile_c(&["c_examples/firmware_loop.c"], dir, "firmware_loop", static_link);
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
    dir.join("firmware_loop")
}

/// A record's item field as text (ids may be JSON numbers or strings).
fn text(item: &Value, key: &str) -> Option<String> {
    match item.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Checks what the sim stored for `device` against the fixture's catalog and the flavour's rules.
fn check_records(records: &[Record], device: &FixtureDevice, start_unix: i64, flavour: Flavour) {
    let device_id = device.id.to_string();
    let mine: Vec<&Value> = records.iter().filter(|r| r.device_id == device_id).map(|r| &r.item).collect();
    let shown = || format!("{:#?}", mine);
    assert_eq!(mine.len(), records.len(), "records for another device: {records:#?}");
    let usable = device.commands.iter().filter(|c| c.error.is_none());
    let plain: Vec<&&Value> =
        mine.iter().filter(|i| i.get("command_id").is_some() && i.get("desired_id").is_none()).collect();
    let answers = match flavour {
        Flavour::V1 => {
            // The catalog's value is what Realer wants: every actuator ("0") that differs is driven and
            // reported, without desired_id; one more plain report is the local change.
            let mut driven = 0;
            for cmd in usable {
                let wanted = cmd
                    .desired
                    .iter()
                    .max_by_key(|d| d.sequence_number)
                    .map_or(cmd.value.clone().unwrap_or_default(), |d| d.value.clone());
                if realer::values_equal(cmd.value_type.as_deref(), "0", &wanted) {
                    continue;
                }
                driven += 1;
                let reports = plain
                    .iter()
                    .filter(|i| {
                        text(i, "command_id") == Some(cmd.id.to_string()) && text(i, "value") == Some(wanted.clone())
                    })
                    .count();
                assert!(reports >= 1, "command {} driven to {wanted} and reported: {}", cmd.id, shown());
            }
            assert!(driven >= 1, "the fixture needs a command whose value differs from \"0\"");
            assert!(mine.iter().all(|i| i.get("desired_id").is_none()), "no desired_id in v1: {}", shown());
            assert_eq!(plain.len(), driven + 1, "one report per driven actuator and the local change: {}", shown());
            driven
        }
        Flavour::V2 => {
            let (mut applied, mut stale) = (0, 0);
            for cmd in usable {
                let top = cmd.desired.iter().map(|d| d.sequence_number).max();
                for desired in &cmd.desired {
                    let expires = match (desired.expires_in_secs, &desired.expires_at) {
                        (Some(secs), _) => start_unix + secs,
                        (None, Some(at)) => time::parse_rfc3339_utc(at).expect("fixture expires_at"),
                        (None, None) => i64::MAX,
                    };
                    let apply = expires > start_unix + 60 && Some(desired.sequence_number) == top;
                    let (status, value) = if apply {
                        applied += 1;
                        ("applied", desired.value.as_str())
                    } else {
                        stale += 1;
                        ("stale", "0")
                    };
                    let reports: Vec<&&Value> = mine
                        .iter()
                        .filter(|i| text(i, "desired_id").as_deref() == Some(desired.desired_id.as_str()))
                        .collect();
                    assert_eq!(reports.len(), 1, "one answer to desired state {}: {}", desired.desired_id, shown());
                    let r = reports[0];
                    assert_eq!(text(r, "command_id"), Some(cmd.id.to_string()), "{r}");
                    assert_eq!(text(r, "report_status").as_deref(), Some(status), "{r}");
                    assert_eq!(r.get("sequence_number").and_then(Value::as_u64), Some(desired.sequence_number), "{r}");
                    assert_eq!(text(r, "value").as_deref(), Some(value), "{r}");
                    // Command ids made of digits go out as JSON numbers, others as strings.
                    assert_eq!(r["command_id"].is_number(), matches!(cmd.id, Id::Int(_)), "{r}");
                }
            }
            assert!(applied >= 1 && stale >= 1, "the fixture needs a pending and an expired desired state");
            assert_eq!(plain.len(), 1, "one local change without desired_id: {}", shown());
            applied + stale
        }
    };
    let local = plain.last().expect("the local change");
    assert!(matches!(text(local, "report_status").as_deref(), None | Some("reported")), "{local}");

    let usable: Vec<&Id> = device.sensors.iter().filter(|s| s.error.is_none()).map(|s| &s.id).collect();
    for id in &usable {
        let readings = mine.iter().filter(|i| text(i, "sensor_id") == Some(id.to_string())).count();
        assert_eq!(readings, 2, "sensor {id}: one reading alone and one in the batch: {}", shown());
    }
    let sensor_items = mine.iter().filter(|i| i.get("sensor_id").is_some()).count();
    assert_eq!(sensor_items, 2 * usable.len(), "readings only for usable sensors: {}", shown());
    let expected = answers + 1 + 2 * usable.len();
    assert_eq!(mine.len(), expected, "nothing else stored: {}", shown());
}

fn start_sim(fixture: Fixture, flavour: Flavour) -> Sim {
    Sim::start(SimOptions { quiet: true, fixture: Some(fixture), flavour, ..Default::default() })
        .expect("realer-sim starts")
}

fn run_loop(name: &str, fixture: Option<Fixture>, static_link: bool, flavour: Flavour) {
    let dir = scratch_dir(name);
    let exe = build_firmware_loop(&dir, static_link);
    let fixture = fixture.unwrap_or_else(Fixture::builtin);
    let device = fixture.devices[0].clone();
    let start_unix = time::now_unix();
    let sim = start_sim(fixture, flavour);
    let env = sim_env(&sim, &dir, &device.id.to_string(), &device.client_id, &device.client_secret);

    let run = run_program(&exe, &env, &dir);
    println!("{}", run.output());
    assert_eq!(run.code, Some(0), "firmware_loop failed\n{}", run.output());
    assert!(run.stdout.contains("Done: every step succeeded."), "{}", run.output());
    check_records(&sim.records(), &device, start_unix, flavour);
    assert!(sim.desired_states(&device.id.to_string()).is_empty() || flavour == Flavour::V1, "all answered");
}

#[test]
fn firmware_loop_builtin_fixture_v1() {
    run_loop("firmware-loop-builtin-v1", None, false, Flavour::V1);
}

#[test]
fn firmware_loop_builtin_fixture_v2() {
    run_loop("firmware-loop-builtin-v2", None, false, Flavour::V2);
}

#[test]
fn firmware_loop_custom_fixture_v1() {
    let fixture = Fixture::from_json(CUSTOM_FIXTURE).expect("the custom fixture is valid");
    assert_ne!(fixture.devices[0].id.to_string(), builtin::DEVICE_ID);
    run_loop("firmware-loop-custom-v1", Some(fixture), false, Flavour::V1);
}

#[test]
fn firmware_loop_custom_fixture_v2() {
    let fixture = Fixture::from_json(CUSTOM_FIXTURE).expect("the custom fixture is valid");
    run_loop("firmware-loop-custom-v2", Some(fixture), false, Flavour::V2);
}

/// The Python binding's example (python/examples/firmware_loop.py) does the same loop, unchanged, against
/// the same servers.
fn run_python_loop(name: &str, fixture: Fixture, flavour: Flavour) {
    let dir = scratch_dir(name);
    let device = fixture.devices[0].clone();
    let start_unix = time::now_unix();
    let sim = start_sim(fixture, flavour);
    let out = std::process::Command::new("python3")
        .arg(repo().join("python/examples/firmware_loop.py"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(sim_env(&sim, &dir, &device.id.to_string(), &device.client_id, &device.client_secret))
        .env("REALER_LIB", lib_dir().join("librealer.so"))
        .env("PYTHONPATH", repo().join("python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs");
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{output}");
    assert!(out.status.success(), "firmware_loop.py failed\n{output}");
    assert!(output.contains("Done: every step succeeded."), "{output}");
    check_records(&sim.records(), &device, start_unix, flavour);
}

#[test]
fn python_firmware_loop_builtin_fixture() {
    run_python_loop("python-loop-builtin-v1", Fixture::builtin(), Flavour::V1);
    run_python_loop("python-loop-builtin-v2", Fixture::builtin(), Flavour::V2);
}

#[test]
fn python_firmware_loop_custom_fixture() {
    let fixture = || Fixture::from_json(CUSTOM_FIXTURE).expect("the custom fixture is valid");
    run_python_loop("python-loop-custom-v1", fixture(), Flavour::V1);
    run_python_loop("python-loop-custom-v2", fixture(), Flavour::V2);
}

#[test]
fn firmware_loop_static() {
    run_loop("firmware-loop-static", None, true, Flavour::V2);
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

/// The message_ids firmware_loop printed for the readings it stored in the outbox one by one.
fn stored_message_ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(": stored in the outbox, message_id ").map(|(_, id)| id.trim().to_string()))
        .collect()
}

/// The sensor readings among the sim's records.
fn readings(records: &[Record]) -> Vec<&Record> {
    records.iter().filter(|r| r.item.get("sensor_id").is_some()).collect()
}

/// Each reading arrived exactly once: no message_id twice, none received again as a replay.
#[track_caller]
fn assert_each_once(readings: &[&Record]) {
    let mut ids: Vec<&str> = readings.iter().map(|r| r.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), readings.len(), "a message_id stored twice: {readings:#?}");
    for r in readings {
        assert_eq!(r.times_received, 1, "received more than once: {r:?}");
    }
}

/// The one-by-one readings a run stored are all among `readings`.
#[track_caller]
fn assert_arrived(stdout: &str, readings: &[&Record], usable: usize) {
    let stored = stored_message_ids(stdout);
    assert_eq!(stored.len(), usable, "one reading stored per usable sensor:\n{stdout}");
    for id in &stored {
        assert!(readings.iter().any(|r| &r.message_id == id), "reading {id} never arrived: {readings:#?}");
    }
}

/// `--outbox PATH`: the readings are stored in the outbox file, then flushed; the sim holds what a direct run
/// leaves (the same check_records), each reading once.
#[test]
fn firmware_loop_outbox() {
    let dir = scratch_dir("firmware-loop-outbox");
    let exe = build_firmware_loop(&dir, false);
    let fixture = Fixture::builtin();
    let device = fixture.devices[0].clone();
    let usable = device.sensors.iter().filter(|s| s.error.is_none()).count();
    let start_unix = time::now_unix();
    let sim = Sim::start(SimOptions { quiet: true, fixture: Some(fixture), ..Default::default() })
        .expect("realer-sim starts");
    let env = sim_env(&sim, &dir, &device.id.to_string(), &device.client_id, &device.client_secret);
    let outbox = dir.join("outbox.db");

    let run = run_program_with_args(&exe, &["--outbox", outbox.to_str().unwrap()], &env, &dir);
    println!("{}", run.output());
    assert_eq!(run.code, Some(0), "firmware_loop --outbox failed\n{}", run.output());
    assert!(run.stdout.contains("Done: every step succeeded."), "{}", run.output());
    assert!(outbox.is_file(), "{} was not created", outbox.display());
    let sent = format!("sent {}, already stored before 0 (replays), refused for good 0, still pending 0", 2 * usable);
    assert!(run.stdout.contains(&sent), "expected {sent:?}\n{}", run.output());
    assert!(run.stdout.contains("outbox: 0 pending (0 bytes), 0 dead letter(s), 0 dropped"), "{}", run.output());

    let records = sim.records();
    check_records(&records, &device, start_unix, Flavour::V1);
    let readings = readings(&records);
    assert_each_once(&readings);
    assert_arrived(&run.stdout, &readings, usable);
}

/// Realer unreachable: while the outbox is sent (every batch request is cut off before its answer), the run
/// keeps the readings and exits 0; with the sim down from the start, the run fails at authentication (no
/// catalog, so no readings) and leaves the outbox as it was; once the sim is back, a run sends the leftovers
/// with its own readings, and the sim holds each reading once.
#[test]
fn firmware_loop_outbox_keeps_readings_until_realer_is_back() {
    let dir = scratch_dir("firmware-loop-outbox-offline");
    let exe = build_firmware_loop(&dir, false);
    let fixture = Fixture::builtin();
    let device = fixture.devices[0].clone();
    let usable = device.sensors.iter().filter(|s| s.error.is_none()).count();
    let sim = Sim::start(SimOptions { quiet: true, fixture: Some(fixture), ..Default::default() })
        .expect("realer-sim starts");
    let env = sim_env(&sim, &dir, &device.id.to_string(), &device.client_id, &device.client_secret);
    let outbox = dir.join("outbox.db");
    let args = ["--outbox", outbox.to_str().unwrap()];

    // 1. The catalog and the acknowledgements get through; the flush does not.
    sim.inject(Fault::CloseBeforeAnswer, Target::Batch, 1000);
    let first = run_program_with_args(&exe, &args, &env, &dir);
    println!("{}", first.output());
    sim.clear_faults();
    assert_eq!(first.code, Some(0), "a transient flush failure is not a failed run\n{}", first.output());
    assert!(first.stdout.contains("REALER_ERR_NETWORK"), "{}", first.output());
    assert!(first.stdout.contains("the readings stay in the outbox for the next run"), "{}", first.output());
    assert!(first.stdout.contains(&format!("outbox: {} pending", 2 * usable)), "{}", first.output());
    assert!(first.stdout.contains("wait in the outbox"), "{}", first.output());
    assert!(readings(&sim.records()).is_empty(), "no reading may arrive yet: {:#?}", sim.records());

    // 2. Down from the start: nothing to do without a catalog; a failed run, the outbox untouched.
    sim.set_down(true);
    let offline = run_program_with_args(&exe, &args, &env, &dir);
    println!("{}", offline.output());
    assert_eq!(offline.code, Some(1), "{}", offline.output());
    assert!(offline.stderr.contains("REALER_ERR_NETWORK"), "{}", offline.output());

    // 3. Back: this run's readings and the first run's leftovers, each once.
    sim.set_down(false);
    let last = run_program_with_args(&exe, &args, &env, &dir);
    println!("{}", last.output());
    assert_eq!(last.code, Some(0), "{}", last.output());
    assert!(last.stdout.contains("Done: every step succeeded."), "{}", last.output());
    let sent = format!("sent {}, already stored before 0 (replays), refused for good 0, still pending 0", 4 * usable);
    assert!(last.stdout.contains(&sent), "expected {sent:?}\n{}", last.output());

    let records = sim.records();
    let readings = readings(&records);
    assert_eq!(readings.len(), 4 * usable, "two runs' readings: {readings:#?}");
    assert_each_once(&readings);
    assert_arrived(&first.stdout, &readings, usable);
    assert_arrived(&last.stdout, &readings, usable);
}

/// SIGTERM while the outbox is being sent to a server that never answers (systemd stopping the service):
/// the run ends within moments, says so, exits 0, and the readings wait in the outbox; the next run sends
/// each of them once.
#[test]
fn firmware_loop_stops_promptly_on_sigterm() {
    let dir = scratch_dir("firmware-loop-sigterm");
    let exe = build_firmware_loop(&dir, false);
    let fixture = Fixture::builtin();
    let device = fixture.devices[0].clone();
    let usable = device.sensors.iter().filter(|s| s.error.is_none()).count();
    let sim = start_sim(fixture, Flavour::V1);
    let env = sim_env(&sim, &dir, &device.id.to_string(), &device.client_id, &device.client_secret);
    let outbox = dir.join("outbox.db");
    let args = ["--outbox", outbox.to_str().unwrap()];
    sim.inject(Fault::Hang, Target::Batch, 1000);

    let out_path = dir.join("sigterm-stdout.txt");
    let mut child = Command::new(&exe)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(dir.join("sigterm-stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let waited = std::time::Instant::now();
    while !fs::read_to_string(&out_path).unwrap_or_default().contains("7. Sending the outbox.") {
        assert!(waited.elapsed() < std::time::Duration::from_secs(60), "never reached the flush");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300)); // blocked on the silent server by now
    let signalled = std::time::Instant::now();
    assert!(Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap().success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < std::time::Duration::from_secs(10), "still running after SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let took = signalled.elapsed();
    let stdout = fs::read_to_string(&out_path).unwrap();
    println!("{stdout}\nexited {} ms after SIGTERM", took.as_millis());
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    assert!(stdout.contains("Stopped by SIGTERM: what was not sent waits in the outbox"), "{stdout}");
    assert!(readings(&sim.records()).is_empty());

    sim.clear_faults();
    let next = run_program_with_args(&exe, &args, &env, &dir);
    assert_eq!(next.code, Some(0), "{}", next.output());
    let records = sim.records();
    let readings = readings(&records);
    assert_eq!(readings.len(), 4 * usable, "both runs' readings: {readings:#?}");
    assert_each_once(&readings);
}

/// The field tool on the outbox firmware_loop left while Realer's batch endpoint was cut off: `outbox stats`,
/// `list` and `dead` show what waits, `flush` sends it once Realer is back (0 pending), `retry-dead` and
/// `purge-dead` handle what Realer refused.
#[test]
fn realer_outbox_commands_on_a_firmware_outbox() {
    let dir = scratch_dir("realer-outbox-commands");
    let exe = build_firmware_loop(&dir, false);
    let fixture = Fixture::builtin();
    let device = fixture.devices[0].clone();
    let usable = device.sensors.iter().filter(|s| s.error.is_none()).count();
    let sim = start_sim(fixture, Flavour::V1);
    let env = sim_env(&sim, &dir, &device.id.to_string(), &device.client_id, &device.client_secret);
    let outbox = dir.join("outbox.db");
    let _ = fs::remove_file(&outbox);
    sim.inject(Fault::CloseBeforeAnswer, Target::Batch, 1000);
    let run = run_program_with_args(&exe, &["--outbox", outbox.to_str().unwrap()], &env, &dir);
    assert_eq!(run.code, Some(0), "{}", run.output());
    sim.clear_faults();

    let realer = |args: &[&str]| {
        let out = Command::new(lib_dir().join("realer"))
            .arg("--outbox")
            .arg(&outbox)
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("the realer binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("$ realer {}\n{stdout}{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), stdout)
    };
    let json = |args: &[&str]| -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, stdout) = realer(&all);
        assert_eq!(code, Some(0), "{stdout}");
        serde_json::from_str(&stdout).unwrap()
    };
    assert_eq!(json(&["outbox", "stats"])["pending"], 2 * usable as u64);
    let (code, text) = realer(&["outbox", "stats"]);
    assert_eq!(code, Some(0));
    assert!(text.lines().next().unwrap().starts_with("pending"), "{text}");
    let listed = json(&["outbox", "list"]);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2 * usable);
    assert!(items.iter().all(|i| i["item"]["sensor_id"].is_number() && i["message_id"].is_string()));
    assert_eq!(json(&["outbox", "dead"])["dead_letters"], serde_json::json!([]));

    // Back: flush sends everything, each once; plain lines when stdout is not a terminal.
    let (code, text) = realer(&["outbox", "flush"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("sent {} of {}", 2 * usable, 2 * usable)), "{text}");
    assert!(text.contains(&format!("sent {}, already stored 0, refused for good 0", 2 * usable)), "{text}");
    assert_eq!(json(&["outbox", "stats"])["pending"], 0);
    assert_each_once(&readings(&sim.records()));

    // A reading Realer refuses for good becomes a dead letter; retry-dead puts it back, purge-dead drops it.
    let mut cfg = realer::Config::new();
    cfg.apply_env(|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
    cfg.set_outbox(outbox.to_str().unwrap(), 0, 0).unwrap();
    let client = realer::Client::new(&cfg).unwrap();
    client.outbox_push(&realer::FeedItem::sensor("987654", "1")).unwrap();
    let (report, _) = client.outbox_flush(0);
    assert_eq!(report.rejected, 1);
    let dead = json(&["outbox", "dead"]);
    assert_eq!(dead["dead_letters"][0]["code"], 4022);
    assert_eq!(json(&["outbox", "retry-dead"])["requeued"], 1);
    assert_eq!(json(&["outbox", "stats"])["pending"], 1);
    let (code, _) = realer(&["outbox", "flush"]);
    assert_eq!(code, Some(0), "a flush that dead-letters an item still ran");
    assert_eq!(json(&["outbox", "purge-dead"])["purged"], 1);
    assert_eq!(json(&["outbox", "stats"])["dead"], 0);
}

/// The plain command reports (no desired_id) the sim stored, in order: (command id, value). On the older
/// service these are the catalog values applied in step 3 and the local changes of step 4.
fn command_reports(records: &[Record]) -> Vec<(String, String)> {
    records
        .iter()
        .filter(|r| r.item.get("command_id").is_some() && r.item.get("desired_id").is_none())
        .map(|r| (text(&r.item, "command_id").unwrap(), text(&r.item, "value").unwrap()))
        .collect()
}

fn reports(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(c, v)| (c.to_string(), v.to_string())).collect()
}

/// What three passes on the built-in device of the older service report: pass 1 applies the catalog's values
/// (commands 1, 2 and 4; 3 is unrepresentable) and someone flips command 1 by hand; passes 2 and 3 apply
/// nothing (the catalog values were acted on already: the local change stays) and flip it by hand again.
fn three_v1_passes() -> Vec<(String, String)> {
    reports(&[("1", "1.0"), ("2", "1.0"), ("4", "20.5"), ("1", "0"), ("1", "1"), ("1", "0")])
}

fn requests_to(sim: &Sim, suffix: &str) -> usize {
    sim.request_log().iter().filter(|e| e.path.ends_with(suffix)).count()
}

/// The examples, unchanged, loop against the older service (`--flavour v1`) with a local change in the middle
/// of each pass: no later pass undoes it, each pass reads the catalog once, and /desired-states is asked once.
#[test]
fn firmware_loop_passes_never_undo_a_local_change_v1() {
    let dir = scratch_dir("firmware-loop-passes-v1");
    let exe = build_firmware_loop(&dir, false);
    let sim = start_sim(Fixture::builtin(), Flavour::V1);
    let env = sim_env(&sim, &dir, builtin::DEVICE_ID, builtin::CLIENT_ID, builtin::CLIENT_SECRET);
    let run = run_program_with_args(&exe, &["--passes", "3", "--interval-ms", "20"], &env, &dir);
    println!("{}", run.output());
    assert_eq!(run.code, Some(0), "{}", run.output());
    assert!(run.stdout.contains("Pass 3 of 3."), "{}", run.output());
    assert_eq!(run.stdout.matches("3. Realer wants 0 setting(s)").count(), 2, "{}", run.output());
    assert_eq!(command_reports(&sim.records()), three_v1_passes());
    assert_eq!(requests_to(&sim, "/commands"), 3, "one catalog read per pass");
    assert_eq!(requests_to(&sim, "/desired-states"), 1);
}

/// With Realer's "local reported-state adoption" (the sim adopts each local report as the command's new
/// catalog value), the next pass hands the adopted value over as new, the actuator already holds it, and
/// nothing flips either: the same reports, C and Python.
#[test]
fn firmware_loop_passes_with_local_adoption_flip_nothing_v1() {
    let dir = scratch_dir("firmware-loop-adoption-v1");
    let exe = build_firmware_loop(&dir, false);
    let adopting = || {
        Sim::start(SimOptions { quiet: true, flavour: Flavour::V1, adopt_local_reports: true, ..Default::default() })
            .expect("realer-sim starts")
    };
    let sim = adopting();
    let env = sim_env(&sim, &dir, builtin::DEVICE_ID, builtin::CLIENT_ID, builtin::CLIENT_SECRET);
    let run = run_program_with_args(&exe, &["--passes", "3", "--interval-ms", "20"], &env, &dir);
    println!("{}", run.output());
    assert_eq!(run.code, Some(0), "{}", run.output());
    // Passes 2 and 3 are handed the adopted value of command 1, which its actuator already holds.
    assert_eq!(run.stdout.matches("3. Realer wants 1 setting(s)").count(), 2, "{}", run.output());
    assert_eq!(command_reports(&sim.records()), three_v1_passes());

    let sim = adopting();
    let out = python_loop(&sim, &dir, &["--passes", "3", "--interval-ms", "20"]);
    assert_eq!(out.matches("3. Realer wants 1 setting(s)").count(), 2, "{out}");
    assert_eq!(command_reports(&sim.records()), three_v1_passes());
}

/// Runs python/examples/firmware_loop.py with `args` against `sim`'s demo device; its output.
fn python_loop(sim: &Sim, dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("python3")
        .arg(repo().join("python/examples/firmware_loop.py"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(sim_env(sim, dir, builtin::DEVICE_ID, builtin::CLIENT_ID, builtin::CLIENT_SECRET))
        .env("REALER_LIB", lib_dir().join("librealer.so"))
        .env("PYTHONPATH", repo().join("python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs");
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{output}");
    assert!(out.status.success(), "firmware_loop.py failed\n{output}");
    output
}

/// The same with a restart between passes: the outbox file keeps the catalog values acted on (and the
/// finding that the service has no /desired-states), so the restarted device applies nothing again.
#[test]
fn firmware_loop_restart_with_outbox_never_undoes_a_local_change_v1() {
    let dir = scratch_dir("firmware-loop-restart-v1");
    let exe = build_firmware_loop(&dir, false);
    let sim = start_sim(Fixture::builtin(), Flavour::V1);
    let env = sim_env(&sim, &dir, builtin::DEVICE_ID, builtin::CLIENT_ID, builtin::CLIENT_SECRET);
    let outbox = dir.join("outbox.db");
    let args = ["--outbox", outbox.to_str().unwrap()];
    for run in 0..2 {
        let run_ = run_program_with_args(&exe, &args, &env, &dir);
        println!("{}", run_.output());
        assert_eq!(run_.code, Some(0), "run {run}\n{}", run_.output());
    }
    // The restarted run's simulated actuators start at "0" again; its local change makes command 1 "1".
    let want = reports(&[("1", "1.0"), ("2", "1.0"), ("4", "20.5"), ("1", "0"), ("1", "1")]);
    assert_eq!(command_reports(&sim.records()), want);
    assert_eq!(requests_to(&sim, "/desired-states"), 1, "the restart did not ask again");
    assert_eq!(requests_to(&sim, "/commands"), 2);
}

/// The Python example does the same passes, unchanged.
#[test]
fn python_firmware_loop_passes_never_undo_a_local_change_v1() {
    let dir = scratch_dir("python-loop-passes-v1");
    let sim = start_sim(Fixture::builtin(), Flavour::V1);
    let output = python_loop(&sim, &dir, &["--passes", "3", "--interval-ms", "20"]);
    assert_eq!(output.matches("3. Realer wants 0 setting(s)").count(), 2, "{output}");
    assert_eq!(command_reports(&sim.records()), three_v1_passes());
    assert_eq!(requests_to(&sim, "/commands"), 3, "one catalog read per pass");
    assert_eq!(requests_to(&sim, "/desired-states"), 1);
}

/// A C++ compiler: the one installed, else g++ installed with apt-get (the test suite needs only gcc).
fn cxx() -> String {
    for c in ["c++", "g++"] {
        if Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return c.to_string();
        }
    }
    let installed = Command::new("apt-get").args(["install", "-y", "g++"]).status().is_ok_and(|s| s.success())
        || (Command::new("apt-get").arg("update").status().is_ok_and(|s| s.success())
            && Command::new("apt-get").args(["install", "-y", "g++"]).status().is_ok_and(|s| s.success()));
    assert!(installed, "no C++ compiler, and `apt-get install -y g++` failed");
    "g++".into()
}

/// c_examples/readings.cpp on the older service: catalog values have no desired_id, and the program says
/// so rather than handing printf a NULL string.
#[test]
fn readings_cpp_v1_names_catalog_values() {
    let dir = scratch_dir("readings-cpp-v1");
    let exe = dir.join("readings");
    build(
        Command::new(cxx())
            .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-Wformat=2", "-g"])
            .arg(format!("-I{}", repo().join("include").display()))
            .arg(repo().join("c_examples/readings.cpp"))
            .arg("-o")
            .arg(&exe)
            .arg(format!("-L{}", lib_dir().display()))
            .arg("-lrealer")
            .arg(format!("-Wl,-rpath,{}", dir.display())),
    );
    soname_link(&dir);
    let sim = start_sim(Fixture::builtin(), Flavour::V1);
    let env = sim_env(&sim, &dir, builtin::DEVICE_ID, builtin::CLIENT_ID, builtin::CLIENT_SECRET);
    let run = run_program(&exe, &env, &dir);
    println!("{}", run.output());
    assert_eq!(run.code, Some(0), "{}", run.output());
    assert!(!run.stdout.contains("(null)"), "{}", run.output());
    for line in ["command 1: catalog value 1.0 applied", "command 4: catalog value 20.5 applied"] {
        assert!(run.stdout.contains(line), "{line:?}\n{}", run.output());
    }
}

/// Bad arguments: the usage line and exit status 2, before anything else happens.
#[test]
fn firmware_loop_usage() {
    let dir = scratch_dir("firmware-loop-usage");
    let exe = build_firmware_loop(&dir, false);
    for args in [
        &["--outbox"][..],
        &["--bogus"],
        &["--outbox", "a.db", "--outbox", "b.db"],
        &["extra"],
        &["--passes", "0"],
        &["--passes", "x"],
        &["--interval-ms"],
    ] {
        let run = run_program_with_args(&exe, args, &[], &dir);
        assert_eq!(run.code, Some(2), "{args:?}\n{}", run.output());
        assert!(run.stderr.contains("usage: firmware_loop [--outbox PATH]"), "{args:?}\n{}", run.output());
        assert!(!run.stdout.contains("librealer"), "{args:?}: nothing may run\n{}", run.output());
    }
    let run = run_program_with_args(&exe, &["--help"], &[], &dir);
    assert_eq!(run.code, Some(0), "{}", run.output());
    assert!(run.stdout.contains("usage: firmware_loop [--outbox PATH]"), "{}", run.output());
    assert!(!dir.join("a.db").exists());
}
