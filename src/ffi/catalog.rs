//! The catalog as C lists: `realer_commands` and `realer_sensors` own their items and every string in them.
//! A list is built straight from the answer (one allocation for the items, a few blocks for the strings), so
//! a large catalog costs about its own size.

use std::ffi::c_char;

use crate::catalog::{CommandRef, CommandSink, SensorRef, SensorSink};
use crate::error::Result;
use crate::ffi::client::realer_client;
use crate::ffi::error::realer_status;
use crate::ffi::{call, free_box, guard, into_raw, out_arg, ref_arg, str_arg, Arena};

/// A command of the catalog. Strings live as long as the list that holds it; absent ones are NULL. The
/// catalog carries no desired-state ids: ask `realer_desired_states_fetch` what Realer wants.
#[repr(C)]
pub struct realer_command {
    /// The command id, as text ("1", or a string id such as "cmd_...").
    pub id: *const c_char,
    /// The command's value, as text. On an older service (the seed page's API) it is the value Realer
    /// wants; on a newer one the value last confirmed.
    pub value: *const c_char,
    /// How the value reads, such as "NumericRange" (compare values with `realer_values_equal`).
    pub value_type: *const c_char,
    /// What the actuator is, such as "relay".
    pub kind: *const c_char,
    /// Where it is wired on the device, such as "6".
    pub pin_port: *const c_char,
    /// Non-NULL only for an item Realer cannot represent, or one librealer could not read
    /// ("unreadable_item"); then only `id` is set besides.
    pub error_type: *const c_char,
    /// Why, with `error_type`.
    pub error_message: *const c_char,
}

/// A sensor of the catalog: what the device may report. Strings as in `realer_command`.
#[repr(C)]
pub struct realer_sensor {
    /// The sensor id, as text ("7", or a string id).
    pub id: *const c_char,
    /// What the sensor is, such as "thermistor".
    pub kind: *const c_char,
    /// The quantity, such as "celsius_temperature".
    pub qc: *const c_char,
    /// The measurement unit, such as "degree_celsius:0".
    pub mu: *const c_char,
    /// Where it is wired on the device, such as "5".
    pub pin_port: *const c_char,
    /// Non-NULL only for an item Realer cannot represent (or librealer could not read).
    pub error_type: *const c_char,
    /// Why, with `error_type`.
    pub error_message: *const c_char,
}

/// A list of commands; free it with `realer_commands_free`.
pub struct realer_commands {
    items: Vec<realer_command>,
    _strings: Arena,
}

/// A list of sensors; free it with `realer_sensors_free`.
pub struct realer_sensors {
    items: Vec<realer_sensor>,
    _strings: Arena,
}

impl CommandSink for realer_commands {
    fn reserve(&mut self, items: usize) {
        self.items.reserve_exact(items);
    }
    fn push(&mut self, c: CommandRef<'_>) {
        let s = &mut self._strings;
        self.items.push(realer_command {
            id: s.add(&c.id),
            value: s.opt(c.value.as_deref()),
            value_type: s.opt(c.value_type.as_deref()),
            kind: s.opt(c.kind.as_deref()),
            pin_port: s.opt(c.pin_port.as_deref()),
            error_type: s.opt(c.error.as_ref().map(|e| &*e.error_type)),
            error_message: s.opt(c.error.as_ref().map(|e| &*e.message)),
        });
    }
}

impl SensorSink for realer_sensors {
    fn reserve(&mut self, items: usize) {
        self.items.reserve_exact(items);
    }
    fn push(&mut self, x: SensorRef<'_>) {
        let s = &mut self._strings;
        self.items.push(realer_sensor {
            id: s.add(&x.id),
            kind: s.opt(x.kind.as_deref()),
            qc: s.opt(x.qc.as_deref()),
            mu: s.opt(x.mu.as_deref()),
            pin_port: s.opt(x.pin_port.as_deref()),
            error_type: s.opt(x.error.as_ref().map(|e| &*e.error_type)),
            error_message: s.opt(x.error.as_ref().map(|e| &*e.message)),
        });
    }
}

fn commands_list(client: &realer_client, id: Option<&str>) -> Result<realer_commands> {
    let mut list = realer_commands { items: Vec::new(), _strings: Arena::default() };
    client.inner.fetch_commands_with(id, &mut list)?;
    Ok(list)
}

fn sensors_list(client: &realer_client, id: Option<&str>) -> Result<realer_sensors> {
    let mut list = realer_sensors { items: Vec::new(), _strings: Arena::default() };
    client.inner.fetch_sensors_with(id, &mut list)?;
    Ok(list)
}

/// Runs a fetch and stores its list in `*out` on success.
unsafe fn fetch_into<T>(
    client: *const realer_client,
    out: *mut *mut T,
    fetch: impl FnOnce(&realer_client) -> Result<T>,
) -> realer_status {
    call(|| {
        // SAFETY: the caller passes NULL or live pointers.
        let (client, mut out) = unsafe { (ref_arg(client, "client")?, out_arg(out, "out")?) };
        out.write(into_raw(fetch(client)?));
        Ok(())
    })
}

/// Reads the device's commands (GET /iot/v1/devices/{device_id}/commands). On success `*out` holds the list;
/// free it with `realer_commands_free`. `REALER_ERR_API`: the server refused (see `realer_last_error`).
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_commands_fetch(
    client: *const realer_client,
    out: *mut *mut realer_commands,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { fetch_into(client, out, |c| commands_list(c, None)) }
}

/// Reads one command by id; `*out` holds a list of exactly one command (free it with
/// `realer_commands_free`). An unknown id is `REALER_ERR_API` with code 4004.
///
/// # Safety
/// `client` is NULL or live; `id` is NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_command_fetch(
    client: *const realer_client,
    id: *const c_char,
    out: *mut *mut realer_commands,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        fetch_into(client, out, |c| {
            let id = str_arg(id, "id")?;
            commands_list(c, Some(id))
        })
    }
}

/// Reads the device's sensors (GET /iot/v1/devices/{device_id}/sensors); as `realer_commands_fetch`.
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_sensors_fetch(
    client: *const realer_client,
    out: *mut *mut realer_sensors,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { fetch_into(client, out, |c| sensors_list(c, None)) }
}

/// Reads one sensor by id; `*out` holds a list of exactly one sensor. As `realer_command_fetch`.
///
/// # Safety
/// `client` is NULL or live; `id` is NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_sensor_fetch(
    client: *const realer_client,
    id: *const c_char,
    out: *mut *mut realer_sensors,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        fetch_into(client, out, |c| {
            let id = str_arg(id, "id")?;
            sensors_list(c, Some(id))
        })
    }
}

/// The number of commands in the list; 0 for NULL.
///
/// # Safety
/// `list` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_commands_len(list: *const realer_commands) -> usize {
    // SAFETY: the caller passes NULL or a live list.
    guard(0, || unsafe { list.as_ref() }.map_or(0, |l| l.items.len()))
}

/// The command at `index`, or NULL past the end (or for a NULL list). Valid as long as the list.
///
/// # Safety
/// `list` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_commands_get(list: *const realer_commands, index: usize) -> *const realer_command {
    // SAFETY: the caller passes NULL or a live list.
    guard(std::ptr::null(), || {
        unsafe { list.as_ref() }.and_then(|l| l.items.get(index)).map_or(std::ptr::null(), |c| c as *const _)
    })
}

/// Frees a command list and its strings. NULL is accepted.
///
/// # Safety
/// `list` is NULL or from this library, and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn realer_commands_free(list: *mut realer_commands) {
    // SAFETY: the caller hands back a list from this library, once.
    guard((), || unsafe { free_box(list) })
}

/// The number of sensors in the list; 0 for NULL.
///
/// # Safety
/// `list` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_sensors_len(list: *const realer_sensors) -> usize {
    // SAFETY: the caller passes NULL or a live list.
    guard(0, || unsafe { list.as_ref() }.map_or(0, |l| l.items.len()))
}

/// The sensor at `index`, or NULL past the end (or for a NULL list). Valid as long as the list.
///
/// # Safety
/// `list` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_sensors_get(list: *const realer_sensors, index: usize) -> *const realer_sensor {
    // SAFETY: the caller passes NULL or a live list.
    guard(std::ptr::null(), || {
        unsafe { list.as_ref() }.and_then(|l| l.items.get(index)).map_or(std::ptr::null(), |s| s as *const _)
    })
}

/// Frees a sensor list and its strings. NULL is accepted.
///
/// # Safety
/// `list` is NULL or from this library, and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn realer_sensors_free(list: *mut realer_sensors) {
    // SAFETY: the caller hands back a list from this library, once.
    guard((), || unsafe { free_box(list) })
}
