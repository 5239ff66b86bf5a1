//! The devices the sim serves: their credentials, command and sensor catalogs and pending desired states.
//! Loaded from JSON (`--fixture FILE`, [`Fixture::from_json`]) or the built-in demo fixture.
//!
//! # Format
//!
//! ```json
//! {
//!   "devices": [
//!     {
//!       "id": 12345,                                   // integer or string ("cdv_…")
//!       "client_id": "cdv_0123456789abcdefghijklmnop",
//!       "client_secret": "demo-secret",
//!       "commands": [
//!         { "id": 1, "value": "0.0", "value_type": "NumericRange", "kind": "relay", "pin_port": "6",
//!           "desired": { "desired_id": "des_…", "value": "1.0", "sequence_number": 3,
//!                        "expires_in_secs": 3600 } },           // or "expires_at": "2026-04-24T11:00:00Z";
//!                                                               // or a list of such objects
//!         { "id": 3, "error": { "type": "unsupported_value_type", "message": "…" } },
//!         { "id": "cmd_…", "value": "0", "value_type": "Binary", "kind": "relay", "pin_port": "2",
//!           "answered_desired_ids": ["des_…"], "local_adoption": true }
//!       ],
//!       "sensors": [
//!         { "id": 7, "kind": "thermistor", "qc": "celsius_temperature", "mu": "degree_celsius:0", "pin_port": "5" },
//!         { "id": 9, "error": { "type": "unsupported_quantity", "message": "…" } }
//!       ]
//!     }
//!   ]
//! }
//! ```
//!
//! (Comments are for this page only: the file is strict JSON, and unknown fields are refused.)
//! An item has either `error` (Realer cannot represent it; the catalog shows only `id` and `error`) or all of
//! its fields: commands `value`, `value_type`, `kind`, `pin_port`; sensors `kind`, `qc`, `mu`, `pin_port`.
//! A command's `value` is its last confirmed value; `desired` holds the desired states a user set in Realer and
//! the device has not answered (one object or a list). How they are served depends on the flavour (see
//! `Flavour`): v1 shows the value of the highest-sequence one as the catalog's `value`, v2 lists them all under
//! `/desired-states`; neither puts desired ids on catalog items. `expires_in_secs` is relative to the
//! sim's start (negative: already expired). `answered_desired_ids` lists desired states the device may still
//! report on (they are known to the sim but no longer pending). `local_adoption` (default false) turns on
//! Realer's per-command local reported-state adoption. Ids are unique per device and kind; client ids are
//! unique across devices.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

use crate::time;

/// A catalog or device id: an integer (v1 API) or a string (the newer 30-character public ids).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Int(u64),
    Str(String),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Int(n) => write!(f, "{n}"),
            Id::Str(s) => f.write_str(s),
        }
    }
}

impl Id {
    /// The id as it appears in JSON answers.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Id::Int(n) => serde_json::Value::from(*n),
            Id::Str(s) => serde_json::Value::from(s.as_str()),
        }
    }
}

/// Why Realer cannot represent a catalog item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemError {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// A set of devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    pub devices: Vec<FixtureDevice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureDevice {
    pub id: Id,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub commands: Vec<FixtureCommand>,
    #[serde(default)]
    pub sensors: Vec<FixtureSensor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureCommand {
    pub id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
    /// Pending desired states (one object or a list in the JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub desired: Vec<FixtureDesired>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answered_desired_ids: Vec<String>,
    /// Realer's per-command "local reported-state adoption": an accepted report without `desired_id` becomes
    /// the command's value. Off by default (the global option turns it on for every command).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_adoption: bool,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<FixtureDesired>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(FixtureDesired),
        Many(Vec<FixtureDesired>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// A desired state set in Realer and not yet answered by the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureDesired {
    pub desired_id: String,
    pub value: String,
    pub sequence_number: u64,
    /// Absolute expiry, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Expiry relative to the sim's start, in seconds (negative: already expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureSensor {
    pub id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

/// The built-in fixture as JSON (also a worked example of the format).
pub const BUILTIN_JSON: &str = include_str!("builtin_fixture.json");

impl Fixture {
    /// The demo fixture: device 12345 (sensors 7 and 8; command 1 with a pending desired state, 2 with an
    /// expired one, 3 that Realer cannot represent, 4 without desired state) and device 12346. See [`crate::builtin`].
    pub fn builtin() -> Fixture {
        Fixture::from_json(BUILTIN_JSON).expect("the built-in fixture is valid")
    }

    /// Parses and checks a fixture.
    pub fn from_json(json: &str) -> Result<Fixture, String> {
        let fixture: Fixture = serde_json::from_str(json).map_err(|e| format!("fixture: {e}"))?;
        fixture.check()?;
        Ok(fixture)
    }

    fn check(&self) -> Result<(), String> {
        if self.devices.is_empty() {
            return Err("fixture: no devices".into());
        }
        let mut device_ids = HashSet::new();
        let mut client_ids = HashSet::new();
        for d in &self.devices {
            let at = format!("fixture: device {}", d.id);
            if !device_ids.insert(d.id.to_string()) {
                return Err(format!("{at}: duplicate device id"));
            }
            if d.client_id.is_empty() || d.client_id.contains(':') {
                return Err(format!("{at}: client_id must be non-empty and without ':'"));
            }
            if !client_ids.insert(d.client_id.clone()) {
                return Err(format!("{at}: duplicate client_id"));
            }
            let mut ids = HashSet::new();
            let mut desired_ids = HashSet::new();
            for c in &d.commands {
                let at = format!("{at}, command {}", c.id);
                if !ids.insert(c.id.to_string()) {
                    return Err(format!("{at}: duplicate id"));
                }
                let fields = [&c.value, &c.value_type, &c.kind, &c.pin_port];
                check_item(&at, c.error.is_some(), &fields)?;
                if c.error.is_some() && (!c.desired.is_empty() || !c.answered_desired_ids.is_empty()) {
                    return Err(format!("{at}: an item with error has no desired state"));
                }
                if c.error.is_some() && c.local_adoption {
                    return Err(format!("{at}: an item with error has no local_adoption"));
                }
                for desired in &c.desired {
                    if !desired_ids.insert(desired.desired_id.clone()) {
                        return Err(format!("{at}: duplicate desired_id {}", desired.desired_id));
                    }
                    match (&desired.expires_at, desired.expires_in_secs) {
                        (Some(at_str), None) => {
                            time::parse_rfc3339_utc(at_str)
                                .map_err(|_| format!("{at}: expires_at must be RFC 3339 UTC"))?;
                        }
                        (None, Some(_)) => {}
                        _ => return Err(format!("{at}: desired needs exactly one of expires_at and expires_in_secs")),
                    }
                }
            }
            let mut ids = HashSet::new();
            for s in &d.sensors {
                let at = format!("{at}, sensor {}", s.id);
                if !ids.insert(s.id.to_string()) {
                    return Err(format!("{at}: duplicate id"));
                }
                check_item(&at, s.error.is_some(), &[&s.kind, &s.qc, &s.mu, &s.pin_port])?;
            }
        }
        Ok(())
    }
}

fn check_item(at: &str, has_error: bool, fields: &[&Option<String>]) -> Result<(), String> {
    let present = fields.iter().filter(|f| f.is_some()).count();
    if has_error && present != 0 {
        return Err(format!("{at}: an item with error carries no other fields"));
    }
    if !has_error && present != fields.len() {
        return Err(format!("{at}: missing fields (or give error)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin;

    #[test]
    fn builtin_matches_constants() {
        let f = Fixture::builtin();
        let d = &f.devices[0];
        assert_eq!(d.id.to_string(), builtin::DEVICE_ID);
        assert_eq!(d.client_id, builtin::CLIENT_ID);
        assert_eq!(d.client_secret, builtin::CLIENT_SECRET);
        assert_eq!(d.commands[0].desired[0].desired_id, builtin::PENDING_DESIRED_ID);
        assert_eq!(d.commands[1].desired[0].desired_id, builtin::EXPIRED_DESIRED_ID);
        let o = &f.devices[1];
        assert_eq!(o.id.to_string(), builtin::OTHER_DEVICE_ID);
        assert_eq!(o.client_id, builtin::OTHER_CLIENT_ID);
        assert_eq!(o.client_secret, builtin::OTHER_CLIENT_SECRET);
        assert_eq!(builtin::CLIENT_ID.len(), 30);
        assert_eq!(builtin::OTHER_CLIENT_ID.len(), 30);
    }

    #[test]
    fn refuses_inconsistent_fixtures() {
        let base =
            |cmd: &str| format!(r#"{{"devices":[{{"id":1,"client_id":"c","client_secret":"s","commands":[{cmd}]}}]}}"#);
        assert!(Fixture::from_json(&base(r#"{"id":1,"value":"0"}"#)).is_err());
        assert!(Fixture::from_json(&base(
            r#"{"id":1,"value":"0","value_type":"T","kind":"k","pin_port":"1","extra":1}"#
        ))
        .is_err());
        assert!(Fixture::from_json(&base(
            r#"{"id":1,"value":"0","value_type":"T","kind":"k","pin_port":"1","desired":{"desired_id":"d","value":"1","sequence_number":1}}"#
        ))
        .is_err());
        assert!(Fixture::from_json(&base(
            r#"{"id":"cmd_1","value":"0","value_type":"T","kind":"k","pin_port":"1","desired":{"desired_id":"d","value":"1","sequence_number":1,"expires_at":"2030-01-01T00:00:00Z"}}"#
        ))
        .is_ok());
        assert!(Fixture::from_json(&base(r#"{"id":3,"error":{"type":"t","message":"m"}}"#)).is_ok());
        assert!(Fixture::from_json(r#"{"devices":[]}"#).is_err());
    }
}
