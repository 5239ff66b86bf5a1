//! Everything the sim remembers: devices and their catalogs, issued tokens, stored feed data, queued faults
//! and the request log. One mutex guards it all; every request holds it only while it is handled.

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Instant;

use crate::faults::QueuedFault;
use crate::fixture::{Fixture, Id, ItemError};
use crate::time;

/// One stored feed-data item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub device_id: String,
    pub message_id: String,
    /// The item exactly as received the first time.
    pub item: Value,
    pub feed_data_id: u64,
    /// How many times it was received (1 + idempotent replays).
    pub times_received: u32,
}

/// One request the sim read (admin requests excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    pub method: String,
    pub path: String,
    /// 0 when no answer was sent (a fault closed or hung the connection).
    pub status: u16,
    /// Whether the request carried a bearer token that was issued, unexpired and unrevoked when it arrived.
    pub bearer_valid: bool,
    /// Milliseconds since the sim started.
    pub at_ms: u64,
}

pub(crate) const SCOPE_CATALOG_READ: &str = "iot:catalog:read";
pub(crate) const SCOPE_FEED_DATA_WRITE: &str = "iot:feed-data:write";
/// Every scope, in the order the sim lists them.
pub(crate) const SCOPES: [&str; 2] = [SCOPE_CATALOG_READ, SCOPE_FEED_DATA_WRITE];

#[derive(Debug)]
pub(crate) struct Device {
    pub id: Id,
    pub client_id: String,
    pub client_secret: String,
    pub commands: Vec<Command>,
    pub sensors: Vec<Sensor>,
}

/// A desired state this sim issued for a command.
#[derive(Debug, Clone)]
pub(crate) struct Desired {
    pub desired_id: String,
    pub value: String,
    pub sequence_number: u64,
    /// Seconds since the epoch.
    pub expires_at: i64,
}

#[derive(Debug)]
pub(crate) struct CommandFields {
    /// The last confirmed value (what the catalog shows when nothing is pending).
    pub value: String,
    pub value_type: String,
    pub kind: String,
    pub pin_port: String,
}

#[derive(Debug)]
pub(crate) struct Command {
    pub id: Id,
    /// `Err` when Realer cannot represent the command.
    pub fields: Result<CommandFields, ItemError>,
    pub pending: Option<Desired>,
    /// Every desired_id issued for this command, pending or answered (`None` expiry: answered before start).
    pub known_desired: Vec<(String, Option<i64>)>,
}

#[derive(Debug)]
pub(crate) struct Sensor {
    pub id: Id,
    /// The catalog item, ready to serve.
    pub json: Value,
    pub representable: bool,
}

#[derive(Debug)]
pub(crate) struct Token {
    pub device: usize,
    pub scopes: Vec<&'static str>,
    pub expires: Instant,
    pub revoked: bool,
}

/// Which catalog item a feed-data item reports on; part of the idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    Command(Id),
    Sensor(Id),
}

pub(crate) struct State {
    pub devices: Vec<Device>,
    pub tokens: HashMap<String, Token>,
    pub tokens_issued: u64,
    pub records: Vec<Record>,
    /// (device index, source, message_id) -> index into `records`.
    pub by_key: HashMap<(usize, Source, String), usize>,
    pub faults: Vec<QueuedFault>,
    pub log: Vec<LogEntry>,
}

impl State {
    pub fn new(fixture: &Fixture, start_unix: i64) -> State {
        let devices = fixture
            .devices
            .iter()
            .map(|d| Device {
                id: d.id.clone(),
                client_id: d.client_id.clone(),
                client_secret: d.client_secret.clone(),
                commands: d
                    .commands
                    .iter()
                    .map(|c| {
                        let fields = match &c.error {
                            Some(e) => Err(e.clone()),
                            None => Ok(CommandFields {
                                value: c.value.clone().unwrap_or_default(),
                                value_type: c.value_type.clone().unwrap_or_default(),
                                kind: c.kind.clone().unwrap_or_default(),
                                pin_port: c.pin_port.clone().unwrap_or_default(),
                            }),
                        };
                        let pending = c.desired.as_ref().map(|d| Desired {
                            desired_id: d.desired_id.clone(),
                            value: d.value.clone(),
                            sequence_number: d.sequence_number,
                            expires_at: match (&d.expires_at, d.expires_in_secs) {
                                (Some(at), _) => time::parse_rfc3339_utc(at).unwrap_or(start_unix),
                                (None, Some(secs)) => start_unix + secs,
                                (None, None) => start_unix,
                            },
                        });
                        let mut known_desired: Vec<(String, Option<i64>)> =
                            c.answered_desired_ids.iter().map(|id| (id.clone(), None)).collect();
                        if let Some(p) = &pending {
                            known_desired.push((p.desired_id.clone(), Some(p.expires_at)));
                        }
                        Command { id: c.id.clone(), fields, pending, known_desired }
                    })
                    .collect(),
                sensors: d
                    .sensors
                    .iter()
                    .map(|s| {
                        let json = match &s.error {
                            Some(e) => json!({"id": s.id.to_json(), "error": error_json(e)}),
                            None => json!({
                                "id": s.id.to_json(),
                                "kind": s.kind,
                                "qc": s.qc,
                                "mu": s.mu,
                                "pin_port": s.pin_port,
                            }),
                        };
                        Sensor { id: s.id.clone(), json, representable: s.error.is_none() }
                    })
                    .collect(),
            })
            .collect();
        State {
            devices,
            tokens: HashMap::new(),
            tokens_issued: 0,
            records: Vec::new(),
            by_key: HashMap::new(),
            faults: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Whether `token` is issued, unexpired and unrevoked.
    pub fn token_valid(&self, token: &str, now: Instant) -> bool {
        self.tokens.get(token).is_some_and(|t| !t.revoked && now < t.expires)
    }
}

pub(crate) fn error_json(e: &ItemError) -> Value {
    json!({"type": e.kind, "message": e.message})
}

impl Command {
    /// The catalog item as served.
    pub fn json(&self) -> Value {
        match &self.fields {
            Err(e) => json!({"id": self.id.to_json(), "error": error_json(e)}),
            Ok(f) => {
                let mut item = json!({
                    "id": self.id.to_json(),
                    "value": f.value,
                    "value_type": f.value_type,
                    "kind": f.kind,
                    "pin_port": f.pin_port,
                });
                if let Some(p) = &self.pending {
                    // The command's `value` is the desired state set in Realer (contract section 3).
                    item["value"] = json!(p.value);
                    item["desired_id"] = json!(p.desired_id);
                    item["sequence_number"] = json!(p.sequence_number);
                    item["expires_at"] = json!(time::format_rfc3339(p.expires_at));
                }
                item
            }
        }
    }
}
