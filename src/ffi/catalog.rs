//! The catalog as C lists: `realer_commands` and `realer_sensors` wrap the core's compact lists
//! ([`Commands`], [`Sensors`]: an index and one arena of NUL-terminated strings), so a catalog costs about its
//! own text; `_get` fills the caller's struct with pointers into the list.

use std::ffi::c_char;

use crate::catalog::{CatalogItem, CatalogList, Command, Commands, Sensor, Sensors};
use crate::ffi::client::realer_client;
use crate::ffi::error::realer_status;
use crate::ffi::{c_ptr, free_box, guard, list_get, list_len, make_into, str_arg, CList};

/// A command of the catalog, as `realer_commands_get` fills it. Strings live as long as the list it came
/// from; absent ones are NULL. The
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
    list: Commands,
}

/// A list of sensors; free it with `realer_sensors_free`.
pub struct realer_sensors {
    list: Sensors,
}

impl CList for realer_commands {
    type Item = realer_command;
    const WHAT: &'static str = "commands";
    fn len(&self) -> usize {
        self.list.len()
    }
    fn item(&self, index: usize) -> Option<realer_command> {
        let c = self.list.view(index)?;
        Some(realer_command {
            id: c.id.as_ptr(),
            value: c_ptr(c.value),
            value_type: c_ptr(c.value_type),
            kind: c_ptr(c.kind),
            pin_port: c_ptr(c.pin_port),
            error_type: c_ptr(c.error.map(|e| e.0)),
            error_message: c_ptr(c.error.map(|e| e.1)),
        })
    }
}

impl CList for realer_sensors {
    type Item = realer_sensor;
    const WHAT: &'static str = "sensors";
    fn len(&self) -> usize {
        self.list.len()
    }
    fn item(&self, index: usize) -> Option<realer_sensor> {
        let s = self.list.view(index)?;
        Some(realer_sensor {
            id: s.id.as_ptr(),
            kind: c_ptr(s.kind),
            qc: c_ptr(s.qc),
            mu: c_ptr(s.mu),
            pin_port: c_ptr(s.pin_port),
            error_type: c_ptr(s.error.map(|e| e.0)),
            error_message: c_ptr(s.error.map(|e| e.1)),
        })
    }
}

/// The C handle of a catalog list (the two are fetched by the same code).
trait CatalogHandle {
    type Kind: CatalogItem;
    fn wrap(list: CatalogList<Self::Kind>) -> Self;
}

impl CatalogHandle for realer_commands {
    type Kind = Command;
    fn wrap(list: Commands) -> Self {
        realer_commands { list }
    }
}

impl CatalogHandle for realer_sensors {
    type Kind = Sensor;
    fn wrap(list: Sensors) -> Self {
        realer_sensors { list }
    }
}

/// Reads the list (or, with `id`, one item) and stores it in `*out` on success.
///
/// # Safety
/// `client` is NULL or live; `id` is NULL (the whole list) or NUL-terminated; `out` is NULL or writable.
unsafe fn fetch<H: CatalogHandle>(
    client: *const realer_client,
    id: Option<*const c_char>,
    out: *mut *mut H,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        make_into(client, "client", out, |client| {
            let id = id.map(|id| str_arg(id, "id")).transpose()?;
            Ok(H::wrap(client.inner.fetch_list(id)?))
        })
    }
}

/// Reads the device's commands (GET /iot/v1/devices/{device_id}/commands). On success `*out` holds the list;
/// free it with `realer_commands_free`. Unless the service is known to offer desired states, the client also
/// keeps the list (shared, not copied) for the next `realer_desired_states_fetch`, which then does not read
/// the catalog again. `REALER_ERR_API`: the server refused (see `realer_last_error`); `REALER_ERR_PROTOCOL`:
/// the answer is not `{"commands":[…]}` (the message says what it is), or lists nothing usable.
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_commands_fetch(
    client: *const realer_client,
    out: *mut *mut realer_commands,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { fetch(client, None, out) }
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
    unsafe { fetch(client, Some(id), out) }
}

/// Reads the device's sensors (GET /iot/v1/devices/{device_id}/sensors). On success `*out` holds the list;
/// free it with `realer_sensors_free`. `REALER_ERR_API`: the server refused (see `realer_last_error`);
/// `REALER_ERR_PROTOCOL`: the answer is not `{"sensors":[…]}` (the message says what it is), or lists nothing
/// usable.
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_sensors_fetch(
    client: *const realer_client,
    out: *mut *mut realer_sensors,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { fetch(client, None, out) }
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
    unsafe { fetch(client, Some(id), out) }
}

/// The number of commands in the list; 0 for NULL.
///
/// # Safety
/// `list` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_commands_len(list: *const realer_commands) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { list_len(list) }
}

/// Fills `*out` with the command at `index`: its strings point into the list (valid as long as the list;
/// absent ones NULL). `REALER_ERR_INVALID_ARGUMENT`: `list` or `out` NULL, or `index` past the end (`*out`
/// unchanged).
///
/// # Safety
/// `list` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_commands_get(
    list: *const realer_commands,
    index: usize,
    out: *mut realer_command,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { list_get(list, index, out) }
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
    // SAFETY: forwarded from the caller.
    unsafe { list_len(list) }
}

/// Fills `*out` with the sensor at `index`; as `realer_commands_get`.
///
/// # Safety
/// `list` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_sensors_get(
    list: *const realer_sensors,
    index: usize,
    out: *mut realer_sensor,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { list_get(list, index, out) }
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
