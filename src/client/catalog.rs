//! Reading the device catalog: its commands and sensors (one generic path for both lists), into the compact
//! lists or any other sink.

use std::time::Instant;

use super::desired::Service;
use super::{lock, Client};
use crate::catalog::{self, CatalogItem, CatalogList, Command, Commands, ItemErrorRef, ItemSink, Sensor, Sensors};
use crate::config::check_id;
use crate::error::{Error, Result};
use crate::transport::Method;

impl Client {
    /// Reads the device's list of `T` (or, with `id`, one item) into `sink`, borrowed from the answer.
    pub(crate) fn fetch_with<T: CatalogItem>(&self, id: Option<&str>, sink: &mut dyn ItemSink<T>) -> Result<()> {
        let path = match id {
            None => self.device_path(&format!("/{}", T::LIST)),
            Some(id) => {
                check_id(&format!("{} id", T::ONE), id).map_err(Error::invalid)?;
                self.device_path(&format!("/{}/{id}", T::LIST))
            }
        };
        let answer = self.call(Method::Get, &path, None)?;
        sink.reserve(catalog::count::<T>(&answer.body), answer.body.len());
        let mut seen = 0usize;
        catalog::parse::<T>(
            &answer.body,
            &mut |mut item| {
                seen += 1;
                self.clean_item_error(T::error_mut(&mut item));
                sink.push(item)
            },
            &mut self.warn_sink(),
        )
        // Its message may quote the answer (the first unusable item).
        .map_err(|e| self.tokens.secrets().clean_error(e))?;
        drop(answer);
        sink.finish();
        match id {
            Some(id) if seen == 0 => Err(Error::protocol(format!("the answer for {} {id} holds no item", T::ONE))),
            _ => Ok(()),
        }
    }

    /// The device's list of `T` (or, with `id`, one item), as a compact list. A whole command list read is
    /// kept (shared, not copied) for the next [`Client::fetch_desired_states`], unless the service is known to
    /// offer desired states.
    pub(crate) fn fetch_list<T: CatalogItem>(&self, id: Option<&str>) -> Result<CatalogList<T>> {
        let mut out = CatalogList::default();
        self.fetch_with(id, &mut out)?;
        if let Some(commands) = T::as_commands(&out).filter(|_| id.is_none()) {
            if *lock(&self.service) != Service::Newer {
                *lock(&self.last_commands) = Some((Instant::now(), commands.clone()));
            }
        }
        Ok(out)
    }

    /// One item of the device's list of `T`, by id.
    fn fetch_one<T: CatalogItem>(&self, id: &str) -> Result<T> {
        let out = self.fetch_list::<T>(Some(id))?;
        out.get(0)
            .map(|x| T::to_owned(&x))
            .ok_or_else(|| Error::protocol(format!("the answer for {} {id} holds no item", T::ONE)))
    }

    /// An item's error is what the server said about it: cleaned as any error is (secrets redacted, control
    /// characters dropped).
    fn clean_item_error(&self, error: &mut Option<ItemErrorRef<'_>>) {
        if let Some(e) = error {
            e.error_type = self.tokens.secrets().clean(&e.error_type).into();
            e.message = self.tokens.secrets().clean(&e.message).into();
        }
    }

    /// The device's commands, as a compact list (an item costs about its JSON text; `to_vec` for owned
    /// items).
    pub fn fetch_commands(&self) -> Result<Commands> {
        self.fetch_list(None)
    }

    /// The device's sensors; as [`Client::fetch_commands`].
    pub fn fetch_sensors(&self) -> Result<Sensors> {
        self.fetch_list(None)
    }

    /// One command, by id.
    pub fn fetch_command(&self, id: &str) -> Result<Command> {
        self.fetch_one(id)
    }

    /// One sensor, by id.
    pub fn fetch_sensor(&self, id: &str) -> Result<Sensor> {
        self.fetch_one(id)
    }
}
