//! Builds the C test harness (tests/c/harness*.c, one program split by concept) against the librealer that the
//! C library's build (`--features capi`, scripts/test) made, shared and static, and runs it against a
//! fresh realer-sim with the built-in fixture, as a newer service (v2: desired states with ids to answer). With
//! `REALER_VALGRIND=1` the harness runs under valgrind (tests/c/valgrind.supp lists the known false positives).

#[path = "c/support.rs"]
mod support;

use std::fs;

use realer_sim::{builtin, Fault, Flavour, Sim, SimOptions, Target};
use support::{compile_c, harness_sources, repo, run_program, scratch_dir, sim_env};

/// Exported functions the harness does not call yet (none: keep it that way).
const NOT_YET_COVERED: &[&str] = &[];

fn run_harness(name: &str, static_link: bool) {
    let dir = scratch_dir(name);
    let exe = compile_c(&harness_sources(), &dir, "harness", static_link);
    let sim =
        Sim::start(SimOptions { quiet: true, flavour: Flavour::V2, ..Default::default() }).expect("realer-sim starts");
    // Only its CA matters: one that did not sign the first sim's certificate.
    let stranger = Sim::start(SimOptions { quiet: true, ..Default::default() }).expect("realer-sim starts");
    let wrong_ca = dir.join("wrong-ca.pem");
    fs::write(&wrong_ca, stranger.ca_pem()).expect("write the wrong CA");

    let mut env = sim_env(&sim, &dir, builtin::DEVICE_ID, builtin::CLIENT_ID, builtin::CLIENT_SECRET);
    env.extend([
        ("REALER_OTHER_DEVICE_ID".to_string(), builtin::OTHER_DEVICE_ID.to_string()),
        ("REALER_OTHER_CLIENT_ID".to_string(), builtin::OTHER_CLIENT_ID.to_string()),
        ("REALER_OTHER_CLIENT_SECRET".to_string(), builtin::OTHER_CLIENT_SECRET.to_string()),
        ("REALER_WRONG_CA_FILE".to_string(), wrong_ca.display().to_string()),
        // The outbox files go here, beside the program's output.
        ("REALER_TEST_DIR".to_string(), dir.display().to_string()),
    ]);
    let run = run_program(&exe, &env, &dir);
    println!("{}", run.output());

    assert_summary(&run);
}

/// The program printed "N passed, 0 failed" (N > 0) last, and exited 0.
fn assert_summary(run: &support::Run) {
    let summary = run.stdout.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or("");
    let counts: Vec<u32> = summary.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    assert!(
        counts.len() == 2 && counts[0] > 0 && counts[1] == 0 && summary == format!("{} passed, 0 failed", counts[0]),
        "the harness's summary is {summary:?}, expected \"N passed, 0 failed\"\n{}",
        run.output()
    );
    assert_eq!(run.code, Some(0), "the harness exited with {:?}\n{}", run.code, run.output());
}

/// tests/c/cancel.c: calls blocked on a silent server, cancelled from 8 threads (under valgrind in CI).
#[test]
fn c_cancel_from_other_threads() {
    let dir = scratch_dir("c-cancel");
    let exe = compile_c(&["tests/c/cancel.c"], &dir, "cancel", false);
    let sim = Sim::start(SimOptions { quiet: true, ..Default::default() }).expect("realer-sim starts");
    for target in [Target::FeedData, Target::Catalog, Target::Batch] {
        sim.inject(Fault::Hang, target, 100);
    }
    let mut env = sim_env(&sim, &dir, builtin::DEVICE_ID, builtin::CLIENT_ID, builtin::CLIENT_SECRET);
    env.push(("REALER_TEST_DIR".to_string(), dir.display().to_string()));
    if support::valgrind_requested() {
        env.push(("REALER_CANCEL_LIMIT_MS".to_string(), "10000".to_string()));
    }
    let run = run_program(&exe, &env, &dir);
    println!("{}", run.output());
    assert_summary(&run);
    assert!(sim.records().is_empty());
}

#[test]
fn c_harness_with_shared_library() {
    run_harness("c-harness-shared", false);
}

#[test]
fn c_harness_with_static_library() {
    run_harness("c-harness-static", true);
}

/// Every function the header exports is called by the harness, in one of its files (or listed in NOT_YET_COVERED).
#[test]
fn c_harness_calls_every_exported_function() {
    let header = fs::read_to_string(repo().join("include/realer.h")).expect("include/realer.h");
    let harness: String = harness_sources()
        .iter()
        .map(|source| fs::read_to_string(repo().join(source)).unwrap_or_else(|e| panic!("{source}: {e}")))
        .collect();
    // Declarations are the lines that start a prototype: `type realer_name(` at the start of a line.
    let exported: Vec<&str> = header
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#') && !l.starts_with("typedef"))
        .filter_map(|l| {
            // The identifier right before the first '(' (the type before it may be a realer_ type too).
            let before = &l[..l.find('(')?];
            let name = &before[before.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1)..];
            name.starts_with("realer_").then_some(name)
        })
        .collect();
    assert!(exported.len() > 30, "found only {} exported functions in realer.h", exported.len());
    let missing: Vec<&str> = exported
        .iter()
        .copied()
        .filter(|f| !NOT_YET_COVERED.contains(f) && !harness.contains(&format!("{f}(")))
        .collect();
    assert!(missing.is_empty(), "the harness (tests/c/harness*.c) never calls {missing:?}");
}
