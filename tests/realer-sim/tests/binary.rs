//! The `realer-sim` binary: its first stdout lines, the seed page's curl examples run unchanged (apart from the
//! host, `--cacert` and the demo credentials) with the system curl, and its flags.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CURL: &str = "/usr/bin/curl";

/// A running binary, killed on drop.
struct Running {
    child: Child,
    base_url: String,
    admin_token: String,
    ca: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.ca);
    }
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("realer-sim-test-{}-{name}", std::process::id()))
}

fn run(name: &str, extra: &[&str]) -> Running {
    let ca = temp_path(&format!("{name}-ca.pem"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_realer-sim"))
        .arg("--ca-out")
        .arg(&ca)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    let base_url =
        first.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {first:?}")).to_string();
    assert!(base_url.starts_with("https://127.0.0.1:"), "{base_url}");
    assert!(!base_url.ends_with(":0"));
    let second = lines.next().expect("a second line").unwrap();
    let admin_token = second.strip_prefix("admin token: ").expect("admin token line").to_string();
    Running { child, base_url, admin_token, ca }
}

fn curl(args: &[&str]) -> String {
    let out = Command::new(CURL).args(args).output().expect("curl runs");
    assert!(out.status.success(), "curl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn admin_get(sim: &Running, path: &str) -> Value {
    let out = curl(&[
        "-sS",
        "--cacert",
        sim.ca.to_str().unwrap(),
        "-H",
        &format!("Authorization: Bearer {}", sim.admin_token),
        &format!("{}{path}", sim.base_url),
    ]);
    serde_json::from_str(&out).unwrap()
}

#[test]
fn seed_page_curl_examples() {
    let sim = run("seed", &[]);
    let ca = sim.ca.to_str().unwrap();
    assert!(Path::new(ca).exists());

    // The token request (seed: POST /oauth/token with grant_type=client_credentials; scope omitted).
    let token_json = curl(&[
        &format!("{}/oauth/token", sim.base_url),
        "--cacert",
        ca,
        "-u",
        "cdv_0123456789abcdefghijklmnop:demo-secret",
        "-d",
        "grant_type=client_credentials",
    ]);
    let token: Value = serde_json::from_str(&token_json).unwrap();
    let access_token = token["access_token"].as_str().unwrap();
    assert_eq!(token["scope"], "iot:catalog:read iot:feed-data:write");

    // The seed's feed-data example, byte for byte apart from host, --cacert and the token.
    let feed_data = || {
        let out = curl(&[
            &format!("{}/iot/v1/devices/12345/feed-data", sim.base_url),
            "--cacert",
            ca,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-H",
            &format!("Authorization: Bearer {access_token}"),
            "-d",
            r#"{"sensor_id":7,"value":"21.4","value_received_at":"2026-04-24T10:15:00Z","message_id":"sensor-7-20260424T101500Z"}"#,
        ]);
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let first = feed_data();
    assert_eq!(
        first,
        json!({"code": 2000, "status": "created", "feed_data_id": 1,
               "message_id": "sensor-7-20260424T101500Z", "warnings": []})
    );
    let second = feed_data();
    assert_eq!(second["code"], 2000);
    assert_eq!(second["status"], "idempotent");
    assert_eq!(second["feed_data_id"], first["feed_data_id"]);

    // The HTTP statuses, read back through the admin interface: 200, 201, then 200.
    let log = admin_get(&sim, "/_sim/requests");
    let statuses: Vec<u64> =
        log["requests"].as_array().unwrap().iter().map(|e| e["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, vec![200, 201, 200]);
    let records = admin_get(&sim, "/_sim/records");
    assert_eq!(records["records"][0]["times_received"], 2);
    assert_eq!(admin_get(&sim, "/_sim/tokens")["issued"], 1);
}

#[test]
fn flags_fixture_and_token_lifetimes() {
    let fixture = temp_path("fixture.json");
    std::fs::write(
        &fixture,
        r#"{"devices":[{"id":77,"client_id":"cdv_fixture00000000000000000000","client_secret":"pw",
            "sensors":[{"id":1,"kind":"thermistor","qc":"celsius_temperature","mu":"degree_celsius:0","pin_port":"1"}]}]}"#,
    )
    .unwrap();
    let sim = run(
        "flags",
        &[
            "--fixture",
            fixture.to_str().unwrap(),
            "--token-ttl",
            "60",
            "--renew-after",
            "45",
            "--quiet",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let ca = sim.ca.to_str().unwrap();
    let token: Value = serde_json::from_str(&curl(&[
        "-sS",
        "--cacert",
        ca,
        "-u",
        "cdv_fixture00000000000000000000:pw",
        "-d",
        "grant_type=client_credentials",
        &format!("{}/oauth/token", sim.base_url),
    ]))
    .unwrap();
    assert_eq!((token["expires_in"].clone(), token["renew_after"].clone()), (json!(60), json!(45)));
    let sensors: Value = serde_json::from_str(&curl(&[
        "-sS",
        "--cacert",
        ca,
        "-H",
        &format!("Authorization: Bearer {}", token["access_token"].as_str().unwrap()),
        &format!("{}/iot/v1/devices/77/sensors", sim.base_url),
    ]))
    .unwrap();
    assert_eq!(sensors["sensors"][0]["id"], 1);
    let _ = std::fs::remove_file(&fixture);
}

#[test]
fn bad_arguments_exit_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_realer-sim")).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    let out = Command::new(env!("CARGO_BIN_EXE_realer-sim"))
        .args(["--fixture", "/nonexistent/fixture.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
