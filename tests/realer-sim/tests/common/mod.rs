//! Shared helpers: a sim per test on 127.0.0.1:0, and a ureq agent that trusts exactly that sim's CA.
#![allow(dead_code)]

use realer_sim::builtin::{CLIENT_ID, CLIENT_SECRET, DEVICE_ID};
use realer_sim::encoding::base64_encode;
use realer_sim::{Sim, SimOptions};
use serde_json::Value;
use std::time::Duration;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Agent;

pub fn start() -> Sim {
    start_with(SimOptions::default())
}

pub fn start_with(opts: SimOptions) -> Sim {
    Sim::start(SimOptions { quiet: true, ..opts }).expect("sim starts")
}

/// An agent trusting only the sim's CA, not treating 4xx/5xx as errors.
pub fn agent(sim: &Sim) -> Agent {
    agent_with_timeout(sim, Duration::from_secs(10))
}

pub fn agent_with_timeout(sim: &Sim, timeout: Duration) -> Agent {
    let pem = sim.ca_pem();
    let ca = Certificate::from_pem(pem.as_bytes()).expect("CA PEM parses");
    let tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[ca])).build();
    Agent::config_builder().tls_config(tls).http_status_as_error(false).timeout_global(Some(timeout)).build().into()
}

/// One answer, read fully.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn read(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut resp = resp.expect("request succeeds at the transport level");
    let status = resp.status().as_u16();
    let headers = resp.headers().iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let text = resp.body_mut().read_to_string().expect("body reads");
    Answer { status, headers, text }
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", base64_encode(format!("{id}:{secret}").as_bytes()))
}

/// POST /oauth/token with Basic auth and a raw form body.
pub fn token_request(sim: &Sim, agent: &Agent, auth: Option<&str>, body: &str) -> Answer {
    let mut req = agent
        .post(format!("{}/oauth/token", sim.base_url()))
        .header("Content-Type", "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    read(req.send(body))
}

/// A token for the given client, with the given scope (None: omitted).
pub fn token_for(sim: &Sim, agent: &Agent, id: &str, secret: &str, scope: Option<&str>) -> String {
    let body = match scope {
        None => "grant_type=client_credentials".to_string(),
        Some(s) => format!("grant_type=client_credentials&scope={}", s.replace(' ', "+")),
    };
    let a = token_request(sim, agent, Some(&basic(id, secret)), &body);
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()["access_token"].as_str().unwrap().to_string()
}

/// A token for the demo device with both scopes.
pub fn token(sim: &Sim, agent: &Agent) -> String {
    token_for(sim, agent, CLIENT_ID, CLIENT_SECRET, None)
}

pub fn get(sim: &Sim, agent: &Agent, path: &str, token: Option<&str>) -> Answer {
    let mut req = agent.get(format!("{}{path}", sim.base_url()));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    read(req.call())
}

pub fn post(
    sim: &Sim,
    agent: &Agent,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> Answer {
    read(post_raw(sim, agent, path, token, content_type, body))
}

pub fn post_raw(
    sim: &Sim,
    agent: &Agent,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let mut req = agent.post(format!("{}{path}", sim.base_url()));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    req.send(body)
}

pub fn feed_path() -> String {
    format!("/iot/v1/devices/{DEVICE_ID}/feed-data")
}

pub fn batch_path() -> String {
    format!("/iot/v1/devices/{DEVICE_ID}/feed-data/batches")
}

/// POST one feed-data item (as JSON) for the demo device.
pub fn feed(sim: &Sim, agent: &Agent, token: &str, item: &Value) -> Answer {
    post(sim, agent, &feed_path(), Some(token), Some("application/json"), &item.to_string())
}

pub fn batch(sim: &Sim, agent: &Agent, token: &str, body: &Value) -> Answer {
    post(sim, agent, &batch_path(), Some(token), Some("application/json"), &body.to_string())
}

/// A valid reading of sensor 7.
pub fn reading(message_id: &str) -> Value {
    serde_json::json!({
        "sensor_id": 7,
        "value": "21.4",
        "value_received_at": "2026-04-24T10:15:00Z",
        "message_id": message_id,
    })
}

/// Asserts Realer's error shape with this status and code; returns `error.details` (or null).
pub fn assert_error(a: &Answer, status: u16, code: u64, kind: &str) -> Value {
    assert_eq!(a.status, status, "{}", a.text);
    let body = a.json();
    assert_eq!(body["code"], code, "{}", a.text);
    assert_eq!(body["error"]["type"], kind, "{}", a.text);
    assert!(body["error"]["message"].is_string(), "{}", a.text);
    let rid = body["request_id"].as_str().expect("request_id");
    assert!(rid.starts_with("req_"), "{rid}");
    assert_eq!(a.header("x-request-id"), Some(rid));
    body["error"]["details"].clone()
}

/// A request to the `/_sim/` admin interface with the admin token.
pub fn admin(sim: &Sim, agent: &ureq::Agent, method: &str, path: &str, body: Option<Value>) -> Answer {
    let url = format!("{}{path}", sim.base_url());
    let auth = format!("Bearer {}", sim.admin_token());
    read(match (method, body) {
        ("GET", _) => agent.get(url).header("Authorization", auth).call(),
        ("DELETE", _) => agent.delete(url).header("Authorization", auth).call(),
        (_, Some(b)) => {
            agent.post(url).header("Authorization", auth).header("Content-Type", "application/json").send(b.to_string())
        }
        (_, None) => agent.post(url).header("Authorization", auth).send_empty(),
    })
}
