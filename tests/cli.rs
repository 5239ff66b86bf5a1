//! The `realer` field tool (cli/) against realer-sim: `doctor` PASSes on a healthy sim, FAILs naming the
//! cause for a wrong CA, an expired server certificate, a wrong secret and a closed port, WARNs on a sim
//! whose clock is 10 minutes off; its output, text or JSON, never holds the secret or a token; `catalog`,
//! `post`, the configuration file's permission check, and `--help` naming the variables the library reads.
//! (`outbox` commands: tests/firmware_loop.rs.)

#[path = "c/support.rs"]
mod support;
#[path = "support/tinyproxy.rs"]
mod tinyproxy;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use realer_sim::{builtin, Fault, Flavour, Sim, SimOptions, Target};
use serde_json::Value;
use support::{lib_dir, scratch_dir, sim_env};

pub fn realer_bin() -> PathBuf {
    lib_dir().join("realer")
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn realer(args: &[&str], env: &[(String, String)], dir: &Path) -> Ran {
    let out = Command::new(realer_bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .output()
        .expect("the realer binary runs (cargo build --workspace builds it)");
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!("$ realer {}\n{}{}", args.join(" "), ran.stdout, ran.stderr);
    ran
}

/// No secret, and nothing shaped like one of the sim's tokens (30 hexadecimal characters).
#[track_caller]
fn assert_no_secrets(text: &str, secret: &str) {
    assert!(!text.contains(secret), "the secret leaked:\n{text}");
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() { run + 1 } else { 0 };
        assert!(run < 30, "something shaped like a token leaked:\n{text}");
    }
}

fn statuses(json: &Value) -> Vec<(String, String)> {
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
        .collect()
}

fn status_of(json: &Value, step: &str) -> String {
    statuses(json).into_iter().find(|(s, _)| s == step).map(|(_, st)| st).unwrap_or_default()
}

fn demo_env(sim: &Sim, dir: &Path) -> Vec<(String, String)> {
    sim_env(sim, dir, builtin::DEVICE_ID, builtin::CLIENT_ID, builtin::CLIENT_SECRET)
}

#[test]
fn doctor_passes_everything_on_a_healthy_sim() {
    let dir = scratch_dir("cli-doctor-healthy");
    let sim = Sim::start(SimOptions { quiet: true, flavour: Flavour::V2, ..Default::default() }).unwrap();
    let env = demo_env(&sim, &dir);
    // An outbox file as the firmware makes it.
    let outbox = dir.join("outbox.db");
    let _ = fs::remove_file(&outbox);
    let run = realer(&["--outbox", outbox.to_str().unwrap(), "outbox", "stats"], &env, &dir);
    assert_eq!(run.code, Some(0));
    let run = realer(&["--outbox", outbox.to_str().unwrap(), "doctor"], &env, &dir);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for line in run.stdout.lines().filter(|l| !l.trim().is_empty()).take(9) {
        assert!(line.starts_with("PASS"), "{line}");
    }
    assert!(run.stdout.contains("a newer service: 2 desired state(s) pending"), "{}", run.stdout);
    assert!(run.stdout.contains("Everything needed to reach Realer works."));
    assert_no_secrets(&run.stdout, builtin::CLIENT_SECRET);
    let run = realer(&["--outbox", outbox.to_str().unwrap(), "doctor", "--json"], &env, &dir);
    assert_eq!(run.code, Some(0));
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["ok"], true);
    let names: Vec<String> = statuses(&json).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["configuration", "resolve", "connect", "tls", "clock", "token", "catalog", "desired states", "outbox"]
    );
    assert!(statuses(&json).iter().all(|(_, s)| s == "pass"), "{json}");
    let token = &json["steps"][5]["data"];
    assert_eq!((token["expires_in"].as_u64(), token["renew_after"].as_u64()), (Some(3600), Some(3000)));
    assert_eq!(json["steps"][3]["data"]["protocol"], "TLS 1.3");
    assert_no_secrets(&run.stdout, builtin::CLIENT_SECRET);
    // Nothing was written to Realer.
    assert!(sim.records().is_empty());
}

#[test]
fn doctor_fails_naming_the_cause() {
    let dir = scratch_dir("cli-doctor-failures");
    let sim = Sim::start(SimOptions { quiet: true, ..Default::default() }).unwrap();
    let stranger = Sim::start(SimOptions { quiet: true, ..Default::default() }).unwrap();

    // A CA that did not sign the server's certificate.
    let mut env = demo_env(&sim, &dir);
    let wrong_ca = dir.join("wrong-ca.pem");
    fs::write(&wrong_ca, stranger.ca_pem()).unwrap();
    env.retain(|(k, _)| k != "REALER_CA_FILE");
    env.push(("REALER_CA_FILE".into(), wrong_ca.display().to_string()));
    let run = realer(&["doctor"], &env, &dir);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains("FAIL  tls"), "{}", run.stdout);
    assert!(
        run.stdout.contains("not signed by the configured CA") && run.stdout.contains("TLS-inspection proxy"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("SKIP  token"), "{}", run.stdout);

    // A wrong secret.
    let env = sim_env(&sim, &dir, builtin::DEVICE_ID, builtin::CLIENT_ID, "not-the-secret-at-all");
    let run = realer(&["doctor", "--json"], &env, &dir);
    assert_eq!(run.code, Some(1));
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((status_of(&json, "tls").as_str(), status_of(&json, "token").as_str()), ("pass", "fail"));
    assert!(json["steps"][5]["cause"].as_str().unwrap().contains("refused the credentials"), "{json}");
    assert_no_secrets(&run.stdout, "not-the-secret-at-all");

    // A closed port.
    let mut env = demo_env(&sim, &dir);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    env.retain(|(k, _)| k != "REALER_BASE_URL");
    env.push(("REALER_BASE_URL".into(), format!("https://127.0.0.1:{closed}")));
    let run = realer(&["doctor"], &env, &dir);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stdout.contains("FAIL  connect") && run.stdout.contains("nothing accepts connections"),
        "{}",
        run.stdout
    );

    // An expired server certificate: the device's clock is named.
    let expired = Sim::start(SimOptions { quiet: true, expired_certificate: true, ..Default::default() }).unwrap();
    let run = realer(&["doctor"], &demo_env(&expired, &dir), &dir);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains("FAIL  tls") && run.stdout.contains("the device clock says"), "{}", run.stdout);

    // No configuration at all.
    let run = realer(&["doctor", "--json"], &[], &dir);
    assert_eq!(run.code, Some(1));
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status_of(&json, "configuration"), "fail");
}

/// Through tinyproxy: the proxy's host is resolved and connected to, a `proxy` step shows the tunnel, and TLS
/// and the API work through it; a proxy that wants other credentials FAILs at that step, naming it, and the
/// password is shown nowhere.
#[test]
fn doctor_through_a_proxy() {
    let dir = scratch_dir("cli-doctor-proxy");
    let sim = Sim::start(SimOptions { quiet: true, ..Default::default() }).unwrap();
    let proxy = tinyproxy::Tinyproxy::start(&dir.join("tinyproxy"), "BasicAuth alice pr0xy-pa55word");
    let mut env = demo_env(&sim, &dir);
    env.push(("REALER_PROXY".into(), proxy.url(Some("alice:pr0xy-pa55word"))));
    let run = realer(&["doctor", "--json"], &env, &dir);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<String> = statuses(&json).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "configuration",
            "resolve",
            "connect",
            "proxy",
            "tls",
            "clock",
            "token",
            "catalog",
            "desired states",
            "outbox"
        ]
    );
    assert_eq!(status_of(&json, "proxy"), "pass", "{json}");
    assert_eq!(status_of(&json, "token"), "pass", "{json}");
    assert_eq!(json["steps"][3]["data"]["proxy"], proxy.url(None));
    assert!(!run.stdout.contains("pr0xy-pa55word"));
    assert!(proxy.requests().iter().all(|r| r.starts_with("CONNECT ")), "{:?}", proxy.requests());

    env.retain(|(k, _)| k != "REALER_PROXY");
    env.push(("REALER_PROXY".into(), proxy.url(None)));
    let run = realer(&["doctor"], &env, &dir);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains("FAIL  proxy") && run.stdout.contains("407"), "{}", run.stdout);
    assert!(run.stdout.contains(&proxy.url(None)) && run.stdout.contains("REALER_PROXY"), "{}", run.stdout);
    assert!(run.stdout.contains("SKIP  tls"), "{}", run.stdout);
}

#[test]
fn doctor_warns_about_a_clock_ten_minutes_off() {
    let dir = scratch_dir("cli-doctor-clock");
    let sim = Sim::start(SimOptions { quiet: true, clock_offset_secs: 600, ..Default::default() }).unwrap();
    let run = realer(&["doctor", "--json"], &demo_env(&sim, &dir), &dir);
    assert_eq!(run.code, Some(0), "a warning is not a failure");
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status_of(&json, "clock"), "warn");
    let offset = json["steps"][4]["data"]["offset_seconds"].as_f64().unwrap();
    assert!((599.0..=601.0).contains(&offset), "{offset}");
}

/// A scope list without iot:desired-state:read on a newer service: /desired-states answers 403, desired states
/// are never delivered; doctor says so as a WARN with the fix (contract sections 2 and 3b).
#[test]
fn doctor_warns_about_a_scope_without_desired_state_read() {
    let dir = scratch_dir("cli-doctor-scope");
    let sim = Sim::start(SimOptions { quiet: true, flavour: Flavour::V2, ..Default::default() }).unwrap();
    let mut env = demo_env(&sim, &dir);
    env.push(("REALER_SCOPE".into(), "iot:catalog:read iot:feed-data:write".into()));
    let run = realer(&["doctor", "--json"], &env, &dir);
    assert_eq!(run.code, Some(0), "a warning is not a failure\n{}", run.stdout);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status_of(&json, "desired states"), "warn", "{json}");
    let step = &json["steps"][7];
    assert_eq!(step["data"]["source"], "catalog");
    assert!(step["detail"].as_str().unwrap().contains("lacks iot:desired-state:read"), "{step}");
    assert!(step["fix"].as_str().unwrap().contains("unset REALER_SCOPE"), "{step}");
    let run = realer(&["doctor"], &env, &dir);
    assert!(run.stdout.lines().any(|l| l.starts_with("WARN  desired states")), "{}", run.stdout);
}

#[test]
fn catalog_and_post_by_hand() {
    let dir = scratch_dir("cli-catalog-post");
    let sim = Sim::start(SimOptions { quiet: true, flavour: Flavour::V2, ..Default::default() }).unwrap();
    let env = demo_env(&sim, &dir);
    let run = realer(&["catalog", "--json"], &env, &dir);
    assert_eq!(run.code, Some(0));
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["commands"].as_array().unwrap().len(), 4);
    assert_eq!(json["desired_states"]["source"], "desired_states");
    assert_eq!(json["desired_states"]["states"][0]["desired_id"], builtin::PENDING_DESIRED_ID);

    let run = realer(&["post", "--sensor", "7", "--value", "21.5", "--json"], &env, &dir);
    assert_eq!(run.code, Some(0));
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["outcome"], "created");
    // Not sent (a 503 that lasts): the message_id and time to send it again are printed, then accepted.
    sim.inject(Fault::ServiceUnavailable, Target::FeedData, 100);
    let run = realer(&["post", "--sensor", "8", "--value", "48"], &env, &dir);
    assert_eq!(run.code, Some(1));
    let again = run.stdout.lines().find_map(|l| l.trim().strip_prefix("send it again with: ")).unwrap().to_string();
    sim.clear_faults();
    let mut args = vec!["post", "--sensor", "8", "--value", "48"];
    args.extend(again.split(' '));
    let run = realer(&args, &env, &dir);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(run.stdout.contains("created"));
    assert_eq!(sim.records().len(), 2);
}

#[test]
fn a_config_file_others_can_read_is_refused() {
    let dir = scratch_dir("cli-config-file");
    let sim = Sim::start(SimOptions { quiet: true, ..Default::default() }).unwrap();
    let conf = dir.join("realer.conf");
    let text: String = demo_env(&sim, &dir).iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    fs::write(&conf, text).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    let run = realer(&["--config", conf.to_str().unwrap(), "doctor"], &[], &dir);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains("FAIL  configuration") && run.stdout.contains("chmod 600"), "{}", run.stdout);
    assert_no_secrets(&run.stdout, builtin::CLIENT_SECRET);
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    let run = realer(&["--config", conf.to_str().unwrap(), "doctor"], &[], &dir);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
}

/// `realer --help` names every variable the library reads, and no other `REALER_*` name: the list to hold it
/// to is the library's own, as its refusal of an unknown key in a configuration file spells it out.
#[test]
fn help_names_every_variable_the_library_reads() {
    let dir = scratch_dir("cli-help");
    let conf = dir.join("unknown.conf");
    fs::write(&conf, "REALER_NO_SUCH_SETTING=1\n").unwrap();
    let run = realer(&["--config", conf.to_str().unwrap(), "doctor"], &[], &dir);
    let known = run.stdout.split("(known: ").nth(1).and_then(|rest| rest.split(')').next());
    let known: Vec<&str> = known.expect("the refusal lists the known keys").split(", ").collect();
    assert!(known.contains(&"REALER_CLIENT_SECRET") && known.contains(&"REALER_PROXY"), "{known:?}");

    let help = realer(&["--help"], &[], &dir);
    assert_eq!(help.code, Some(0));
    let named = |name: &str| help.stdout.lines().any(|l| l.split_whitespace().next() == Some(name));
    for key in &known {
        assert!(named(key), "realer --help does not name {key}:\n{}", help.stdout);
    }
    // (`REALER_*`, the family's name, is the word "REALER_".)
    for word in help.stdout.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let variable = word.starts_with("REALER_") && word != "REALER_";
        assert!(!variable || known.contains(&word), "--help names {word}, which nothing reads");
    }
}
