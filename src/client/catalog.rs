//! Reading the device catalog: its commands and sensors, into the compact lists or any other sink.

use std::time::Instant;

use super::desired::Service;
use super::{lock, Client};
use crate::catalog::{self, Command, CommandSink, Commands, ItemErrorRef, Sensor, SensorSink, Sensors};
use crate::config::check_id;
use crate::error::{Error, Result};
use crate::transport::{Answer, Method};

impl Client {
    /// Reads the device's commands (or, with `id`, one command) into `sink`, borrowed from the answer.
    pub(crate) fn fetch_commands_with(&self, id: Option<&str>, sink: &mut dyn CommandSink) -> Result<()> {
        let answer = self.fetch_catalog("command", "/commands", id)?;
        sink.reserve(catalog::count(&answer.body, "commands", "command"), answer.body.len());
        let mut seen = 0usize;
        catalog::parse_commands(
            &answer.body,
            &mut |mut c| {
                seen += 1;
                self.clean_item_error(&mut c.error);
                sink.push(c)
            },
            &mut self.warn_sink(),
        )?;
        drop(answer);
        sink.finish();
        Self::one_expected(id, seen, "command")
    }

    /// As [`Client::fetch_commands_with`], for sensors.
    pub(crate) fn fetch_sensors_with(&self, id: Option<&str>, sink: &mut dyn SensorSink) -> Result<()> {
        let answer = self.fetch_catalog("sensor", "/sensors", id)?;
        sink.reserve(catalog::count(&answer.body, "sensors", "sensor"), answer.body.len());
        let mut seen = 0usize;
        catalog::parse_sensors(
            &answer.body,
            &mut |mut s| {
                seen += 1;
                self.clean_item_error(&mut s.error);
                sink.push(s)
            },
            &mut self.warn_sink(),
        )?;
        drop(answer);
        sink.finish();
        Self::one_expected(id, seen, "sensor")
    }

    fn fetch_catalog(&self, what: &str, tail: &str, id: Option<&str>) -> Result<Answer> {
        let path = match id {
            None => self.device_path(tail),
            Some(id) => {
                check_id(&format!("{what} id"), id).map_err(Error::invalid)?;
                self.device_path(&format!("{tail}/{id}"))
            }
        };
        self.call(Method::Get, &path, None)
    }

    /// An item's error is what the server said about it: cleaned as any error is (secrets redacted, control
    /// characters dropped).
    fn clean_item_error(&self, error: &mut Option<ItemErrorRef<'_>>) {
        if let Some(e) = error {
            e.error_type = self.tokens.secrets().clean(&e.error_type).into();
            e.message = self.tokens.secrets().clean(&e.message).into();
        }
    }

    fn one_expected(id: Option<&str>, seen: usize, what: &str) -> Result<()> {
        match id {
            Some(id) if seen == 0 => Err(Error::protocol(format!("the answer for {what} {id} holds no item"))),
            _ => Ok(()),
        }
    }

    /// The device's commands, as a compact list (an item costs about its JSON text; `to_vec` for owned
    /// items).
    pub fn fetch_commands(&self) -> Result<Commands> {
        self.fetch_command_list(None)
    }

    /// The device's commands (or, with `id`, one), as a compact list. A whole list read is kept (shared, not
    /// copied) for the next [`Client::fetch_desired_states`], unless the service is known to offer desired
    /// states.
    pub(crate) fn fetch_command_list(&self, id: Option<&str>) -> Result<Commands> {
        let mut out = Commands::default();
        self.fetch_commands_with(id, &mut out)?;
        if id.is_none() && *lock(&self.service) != Service::Newer {
            *lock(&self.last_commands) = Some((Instant::now(), out.clone()));
        }
        Ok(out)
    }

    /// The device's sensors; as [`Client::fetch_commands`].
    pub fn fetch_sensors(&self) -> Result<Sensors> {
        let mut out = Sensors::default();
        self.fetch_sensors_with(None, &mut out)?;
        Ok(out)
    }

    pub fn fetch_command(&self, id: &str) -> Result<Command> {
        let out = self.fetch_command_list(Some(id))?;
        out.get(0)
            .map(|c| c.to_owned())
            .ok_or_else(|| Error::protocol(format!("the answer for command {id} holds no item")))
    }

    pub fn fetch_sensor(&self, id: &str) -> Result<Sensor> {
        let mut out = Sensors::default();
        self.fetch_sensors_with(Some(id), &mut out)?;
        out.get(0)
            .map(|s| s.to_owned())
            .ok_or_else(|| Error::protocol(format!("the answer for sensor {id} holds no item")))
    }
}
