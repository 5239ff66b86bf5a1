//! Everything the sim remembers: devices and their catalogs, issued tokens, stored feed data, queued faults
//! and the request log. One mutex guards it all; every request holds it only while it is handled.

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Instant;

use crate::faults::QueuedFault;
use crate::fixture::{Fixture, Id, ItemError};
use crate::stats::Stats;
use crate::time;
use crate::values;

/// The sim's settings that a test or benchmark may change while it runs (`/_sim/settings`, `Sim::set_…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Largest feed-data request body (either endpoint), in bytes: Realer's "device plan byte budget".
    pub byte_budget: usize,
    /// Requests per minute each device may make to the iot/v1 endpoints; `None`: unlimited.
    pub requests_per_minute: Option<u32>,
    /// Token requests per minute each client may make to `/oauth/token`; `None`: unlimited.
    pub token_requests_per_minute: Option<u32>,
    /// Adopt every accepted local command report (no `desired_id`) as the command's new value, as Realer's
    /// per-command "local reported-state adoption" does when enabled. Commands with `local_adoption` in the
    /// fixture adopt whatever this says.
    pub adopt_local_reports: bool,
}

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
pub(crate) const SCOPE_DESIRED_STATE_READ: &str = "iot:desired-state:read";
/// Every documented scope, in the order the sim lists them: the HTTPS ones, then MQTT's (accepted and
/// granted, though this sim serves no MQTT).
pub(crate) const SCOPES: [&str; 7] = [
    SCOPE_CATALOG_READ,
    SCOPE_FEED_DATA_WRITE,
    SCOPE_DESIRED_STATE_READ,
    "iot:mqtt:connect",
    "iot:mqtt:ack:read",
    "iot:mqtt:feed-data:write",
    "iot:mqtt:desired:read",
];

/// Which of Realer's APIs the sim plays (contract sections 3 and 3b).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flavour {
    /// The older API of the seed page: a command's catalog `value` is the value Realer wants; there is no
    /// `/desired-states` (404); the default scopes are catalog reads and feed-data writes.
    #[default]
    V1,
    /// Realer's newer pages: the catalog is catalog-only (a command's `value` is its confirmed value);
    /// pending desired states are listed under `/desired-states`; the default scopes add desired-state reads.
    V2,
}

impl Flavour {
    pub fn parse(name: &str) -> Option<Flavour> {
        match name {
            "v1" => Some(Flavour::V1),
            "v2" => Some(Flavour::V2),
            _ => None,
        }
    }

    /// The scopes a token request without `scope` gets.
    pub(crate) fn default_scopes(self) -> Vec<&'static str> {
        match self {
            Flavour::V1 => vec![SCOPE_CATALOG_READ, SCOPE_FEED_DATA_WRITE],
            Flavour::V2 => vec![SCOPE_CATALOG_READ, SCOPE_FEED_DATA_WRITE, SCOPE_DESIRED_STATE_READ],
        }
    }
}

/// Which of Realer's two label vocabularies error answers use for `error.type` (contract section 6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Labels {
    /// The code registry's: `unauthorized`, `payment_required`, `forbidden`, `not_found`, `conflict`.
    #[default]
    Registry,
    /// The response-handling page's: `invalid_token`, `subscription_inactive`, `insufficient_scope`,
    /// `resource_not_found`, `message_conflict`.
    ResponseHandling,
}

#[derive(Debug)]
pub(crate) struct Device {
    pub id: Id,
    /// `id` as it appears in paths.
    pub key: String,
    pub client_id: String,
    pub client_secret: String,
    pub commands: Vec<Command>,
    pub sensors: Vec<Sensor>,
    /// The device's request budget (GCRA theoretical arrival time; `None`: untouched).
    pub budget: Option<Instant>,
    /// The client's token-request budget, likewise.
    pub token_budget: Option<Instant>,
}

impl Device {
    /// Every pending desired state of this device, as `/desired-states` lists them (command order, then the
    /// order they were set).
    pub fn desired_states(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for c in &self.commands {
            for p in &c.pending {
                out.push(json!({
                    "desired_id": p.desired_id,
                    "command_id": c.id.to_json(),
                    "value": p.value,
                    "sequence_number": p.sequence_number,
                    "expires_at": time::format_rfc3339(p.expires_at),
                }));
            }
        }
        out
    }
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
    /// Desired states set in Realer and not answered yet, in the order they were set.
    pub pending: Vec<Desired>,
    /// Every desired_id issued for this command, pending or answered (`None` expiry: answered before start).
    pub known_desired: Vec<(String, Option<i64>)>,
    /// Local reports are adopted as the command's value even when the global setting is off.
    pub local_adoption: bool,
    /// The highest `sequence_number` any desired state of this command had.
    pub max_sequence: u64,
}

impl Command {
    /// The next `sequence_number` for a desired state of this command: above every one it had.
    pub fn next_sequence_number(&self) -> u64 {
        self.max_sequence + 1
    }
}

#[derive(Debug)]
pub(crate) struct Sensor {
    pub id: Id,
    /// The catalog item, ready to serve.
    pub json: Value,
    pub representable: bool,
    /// Its `mu` names a unit: values must be numbers.
    pub numeric: bool,
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
    pub stats: Stats,
    pub flavour: Flavour,
    pub labels: Labels,
    pub settings: Settings,
}

impl State {
    pub fn new(fixture: &Fixture, start_unix: i64, flavour: Flavour, settings: Settings) -> State {
        let devices = fixture
            .devices
            .iter()
            .map(|d| Device {
                id: d.id.clone(),
                key: d.id.to_string(),
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
                        let pending: Vec<Desired> = c
                            .desired
                            .iter()
                            .map(|d| Desired {
                                desired_id: d.desired_id.clone(),
                                value: d.value.clone(),
                                sequence_number: d.sequence_number,
                                expires_at: match (&d.expires_at, d.expires_in_secs) {
                                    (Some(at), _) => time::parse_rfc3339_utc(at).unwrap_or(start_unix),
                                    (None, Some(secs)) => start_unix + secs,
                                    (None, None) => start_unix,
                                },
                            })
                            .collect();
                        let mut known_desired: Vec<(String, Option<i64>)> =
                            c.answered_desired_ids.iter().map(|id| (id.clone(), None)).collect();
                        known_desired.extend(pending.iter().map(|p| (p.desired_id.clone(), Some(p.expires_at))));
                        Command {
                            id: c.id.clone(),
                            fields,
                            max_sequence: pending.iter().map(|p| p.sequence_number).max().unwrap_or(0),
                            pending,
                            known_desired,
                            local_adoption: c.local_adoption,
                        }
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
                        let numeric = s.mu.as_deref().is_some_and(values::unit_is_numeric);
                        Sensor { id: s.id.clone(), json, representable: s.error.is_none(), numeric }
                    })
                    .collect(),
                budget: None,
                token_budget: None,
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
            stats: Stats::default(),
            flavour,
            labels: Labels::default(),
            settings,
        }
    }

    /// Whether `token` is issued, unexpired and unrevoked.
    pub fn token_valid(&self, token: &str, now: Instant) -> bool {
        self.tokens.get(token).is_some_and(|t| !t.revoked && now < t.expires)
    }

    /// The index of the device with this id (as in a path).
    pub fn device_index(&self, id: &str) -> Option<usize> {
        self.devices.iter().position(|d| d.key == id)
    }
}

pub(crate) fn error_json(e: &ItemError) -> Value {
    json!({"type": e.kind, "message": e.message})
}

impl Command {
    /// The catalog item as served. Never a desired id: in v1 the `value` is the value Realer wants (the newest
    /// desired state's, else the confirmed one); in v2 it is the confirmed value.
    pub fn json(&self, flavour: Flavour) -> Value {
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
                if flavour == Flavour::V1 {
                    if let Some(p) = self.pending.iter().max_by_key(|p| p.sequence_number) {
                        item["value"] = json!(p.value);
                    }
                }
                item
            }
        }
    }
}
