//! The catalog as C lists: `realer_commands` and `realer_sensors` own their items and every string in them.

use std::ffi::c_char;

use crate::catalog::{Command, DesiredAction, Sensor};
use crate::error::{Error, Result};
use crate::ffi::client::realer_client;
use crate::ffi::error::{realer_status, set_last_error, REALER_ERR_INTERNAL};
use crate::ffi::{free_box, into_raw, opt_str_arg, ref_arg, status, str_arg, Strings};

/// A command of the catalog. Strings live as long as the list that holds it; absent ones are NULL.
#[repr(C)]
pub struct realer_command {
    /// The command id, as text ("1", or a string id such as "cmd_...").
    pub id: *const c_char,
    /// The desired state set in Realer, as text.
    pub value: *const c_char,
    pub value_type: *const c_char,
    pub kind: *const c_char,
    pub pin_port: *const c_char,
    /// The pending desired state to answer, NULL when none is pending.
    pub desired_id: *const c_char,
    /// The desired state's sequence number, -1 when absent.
    pub sequence_number: i64,
    /// When the desired state expires (RFC 3339), NULL when absent.
    pub expires_at: *const c_char,
    /// `expires_at` in Unix milliseconds, -1 when absent or unreadable.
    pub expires_at_unix_ms: i64,
    /// Non-NULL only for an item Realer cannot represent (then only `id` is set besides).
    pub error_type: *const c_char,
    pub error_message: *const c_char,
}

/// A sensor of the catalog: what the device may report. Strings as in `realer_command`.
#[repr(C)]
pub struct realer_sensor {
    pub id: *const c_char,
    pub kind: *const c_char,
    /// The quantity, such as "celsius_temperature".
    pub qc: *const c_char,
    /// The measurement unit, such as "degree_celsius:0".
    pub mu: *const c_char,
    pub pin_port: *const c_char,
    pub error_type: *const c_char,
    pub error_message: *const c_char,
}

/// A list of commands; free it with `realer_commands_free`.
pub struct realer_commands {
    items: Vec<realer_command>,
    _strings: Strings,
}

/// A list of sensors; free it with `realer_sensors_free`.
pub struct realer_sensors {
    items: Vec<realer_sensor>,
    _strings: Strings,
}

/// What to do about a command's desired state (`realer_command_desired_action`).
pub type realer_command_action = i32;
/// The arguments were invalid (see `realer_last_error`).
pub const REALER_COMMAND_ACTION_INVALID: realer_command_action = -1;
/// No desired state is pending.
pub const REALER_COMMAND_ACTION_NONE: realer_command_action = 0;
/// Apply the value, then report `applied` (or `rejected`) with its `desired_id` and `sequence_number`.
pub const REALER_COMMAND_ACTION_APPLY: realer_command_action = 1;
/// Expired, or not newer than one already reported: do not apply; report `stale` with its `desired_id`.
pub const REALER_COMMAND_ACTION_STALE: realer_command_action = 2;

fn commands_list(commands: Vec<Command>) -> realer_commands {
    let mut s = Strings::default();
    let items = commands
        .iter()
        .map(|c| realer_command {
            id: s.add(&c.id),
            value: s.opt(c.value.as_deref()),
            value_type: s.opt(c.value_type.as_deref()),
            kind: s.opt(c.kind.as_deref()),
            pin_port: s.opt(c.pin_port.as_deref()),
            desired_id: s.opt(c.desired_id.as_deref()),
            sequence_number: c.sequence_number.unwrap_or(-1),
            expires_at: s.opt(c.expires_at.as_deref()),
            expires_at_unix_ms: c.expires_at_unix_ms.unwrap_or(-1),
            error_type: s.opt(c.error.as_ref().map(|e| e.error_type.as_str())),
            error_message: s.opt(c.error.as_ref().map(|e| e.message.as_str())),
        })
        .collect();
    realer_commands { items, _strings: s }
}

fn sensors_list(sensors: Vec<Sensor>) -> realer_sensors {
    let mut s = Strings::default();
    let items = sensors
        .iter()
        .map(|x| realer_sensor {
            id: s.add(&x.id),
            kind: s.opt(x.kind.as_deref()),
            qc: s.opt(x.qc.as_deref()),
            mu: s.opt(x.mu.as_deref()),
            pin_port: s.opt(x.pin_port.as_deref()),
            error_type: s.opt(x.error.as_ref().map(|e| e.error_type.as_str())),
            error_message: s.opt(x.error.as_ref().map(|e| e.message.as_str())),
        })
        .collect();
    realer_sensors { items, _strings: s }
}

/// Runs a fetch and stores its list in `*out` on success.
unsafe fn fetch_into<T>(
    client: *const realer_client,
    out: *mut *mut T,
    fetch: impl FnOnce(&realer_client) -> Result<T>,
) -> realer_status {
    ffi_boundary!(REALER_ERR_INTERNAL, {
        status((|| {
            // SAFETY: the caller passes NULL or a live client.
            let client = unsafe { ref_arg(client, "client") }?;
            if out.is_null() {
                return Err(Error::invalid("out is NULL"));
            }
            let list = fetch(client)?;
            // SAFETY: checked non-NULL; the caller promises it is writable.
            unsafe { *out = into_raw(list) };
            Ok(())
        })())
    })
}

/// Reads the device's commands (GET /iot/v1/devices/{device_id}/commands). On success `*out` holds the list;
/// free it with `realer_commands_free`. `REALER_ERR_API`: the server refused (see `realer_last_error`).
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_fetch_commands(
    client: *const realer_client,
    out: *mut *mut realer_commands,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { fetch_into(client, out, |c| c.inner.fetch_commands().map(commands_list)) }
}

/// Reads one command by id; `*out` holds a list of exactly one command (free it with
/// `realer_commands_free`). An unknown id is `REALER_ERR_API` with code 4004.
///
/// # Safety
/// `client` is NULL or live; `id` is NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_fetch_command(
    client: *const realer_client,
    id: *const c_char,
    out: *mut *mut realer_commands,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        fetch_into(client, out, |c| {
            let id = str_arg(id, "id")?;
            c.inner.fetch_command(id).map(|cmd| commands_list(vec![cmd]))
        })
    }
}

/// Reads the device's sensors (GET /iot/v1/devices/{device_id}/sensors); as `realer_fetch_commands`.
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_fetch_sensors(
    client: *const realer_client,
    out: *mut *mut realer_sensors,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { fetch_into(client, out, |c| c.inner.fetch_sensors().map(sensors_list)) }
}

/// Reads one sensor by id; `*out` holds a list of exactly one sensor. As `realer_fetch_command`.
///
/// # Safety
/// `client` is NULL or live; `id` is NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_fetch_sensor(
    client: *const realer_client,
    id: *const c_char,
    out: *mut *mut realer_sensors,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        fetch_into(client, out, |c| {
            let id = str_arg(id, "id")?;
            c.inner.fetch_sensor(id).map(|s| sensors_list(vec![s]))
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
    ffi_boundary!(0, { unsafe { list.as_ref() }.map_or(0, |l| l.items.len()) })
}

/// The command at `index`, or NULL past the end (or for a NULL list). Valid as long as the list.
///
/// # Safety
/// `list` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_commands_get(list: *const realer_commands, index: usize) -> *const realer_command {
    // SAFETY: the caller passes NULL or a live list.
    ffi_boundary!(std::ptr::null(), {
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
    ffi_boundary!((), { unsafe { free_box(list) } })
}

/// The number of sensors in the list; 0 for NULL.
///
/// # Safety
/// `list` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_sensors_len(list: *const realer_sensors) -> usize {
    // SAFETY: the caller passes NULL or a live list.
    ffi_boundary!(0, { unsafe { list.as_ref() }.map_or(0, |l| l.items.len()) })
}

/// The sensor at `index`, or NULL past the end (or for a NULL list). Valid as long as the list.
///
/// # Safety
/// `list` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_sensors_get(list: *const realer_sensors, index: usize) -> *const realer_sensor {
    // SAFETY: the caller passes NULL or a live list.
    ffi_boundary!(std::ptr::null(), {
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
    ffi_boundary!((), { unsafe { free_box(list) } })
}

/// What to do about `command`'s desired state at `now_unix_ms` (0 = now): `REALER_COMMAND_ACTION_NONE`
/// (nothing pending), `_APPLY`, or `_STALE` (expired, or its sequence_number is not newer than one this
/// client already reported for that command). `REALER_COMMAND_ACTION_INVALID` for a NULL argument or a
/// command whose strings are not UTF-8 (see `realer_last_error`).
///
/// # Safety
/// `client` and `command` are NULL or live; `command`'s strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn realer_command_desired_action(
    client: *const realer_client,
    command: *const realer_command,
    now_unix_ms: i64,
) -> realer_command_action {
    ffi_boundary!(REALER_COMMAND_ACTION_INVALID, {
        let r = (|| -> Result<DesiredAction> {
            // SAFETY: the caller passes NULL or live pointers with valid strings.
            let (client, cmd) = unsafe { (ref_arg(client, "client")?, ref_arg(command, "command")?) };
            // SAFETY: as above.
            let (error_type, error_message) = unsafe {
                (
                    opt_str_arg(cmd.error_type, "command error_type")?,
                    opt_str_arg(cmd.error_message, "command error_message")?,
                )
            };
            let core = Command {
                // SAFETY: as above.
                id: unsafe { str_arg(cmd.id, "command id")? }.to_string(),
                // SAFETY: as above.
                desired_id: unsafe { opt_str_arg(cmd.desired_id, "command desired_id")? }.map(str::to_string),
                sequence_number: (cmd.sequence_number >= 0).then_some(cmd.sequence_number),
                // SAFETY: as above.
                expires_at: unsafe { opt_str_arg(cmd.expires_at, "command expires_at")? }.map(str::to_string),
                expires_at_unix_ms: (cmd.expires_at_unix_ms >= 0).then_some(cmd.expires_at_unix_ms),
                error: (error_type.is_some() || error_message.is_some()).then(|| crate::catalog::ItemError {
                    error_type: error_type.unwrap_or_default().to_string(),
                    message: error_message.unwrap_or_default().to_string(),
                }),
                ..Command::default()
            };
            if now_unix_ms < 0 {
                return Err(Error::invalid("now_unix_ms must not be negative"));
            }
            let now = if now_unix_ms == 0 { crate::time::now_unix_ms() } else { now_unix_ms };
            Ok(client.inner.desired_action(&core, now))
        })();
        match r {
            Ok(DesiredAction::None) => REALER_COMMAND_ACTION_NONE,
            Ok(DesiredAction::Apply) => REALER_COMMAND_ACTION_APPLY,
            Ok(DesiredAction::Stale) => REALER_COMMAND_ACTION_STALE,
            Err(e) => {
                set_last_error(&e);
                REALER_COMMAND_ACTION_INVALID
            }
        }
    })
}
