//! What Realer wants, as a C list (`realer_desired_states`), and the feed item that answers one of its states.

use std::ffi::c_char;

use crate::desired::{self, DesiredAction, DesiredSource, DesiredStates, StateList};
use crate::error::Error;
use crate::ffi::client::realer_client;
use crate::ffi::error::realer_status;
use crate::ffi::feed::{read_report_status, realer_feed_item, realer_report_status};
use crate::ffi::{
    c_ptr, call, free_box, guard, list_get, list_len, make_into, opt_str_arg, out_arg, ref_arg, str_arg, CList,
};

/// What to do about one desired state (`realer_desired_state.action`).
pub type realer_desired_action = i32;
/// Drive the actuator to `value` when it is not there already, then answer with the physical result:
/// `realer_feed_item_init_answer` with `REALER_REPORT_STATUS_APPLIED` (or `_REJECTED` when the device cannot).
/// For a catalog value (`desired_id` NULL: a value new since the last fetch) report only when the actuator
/// changed.
pub const REALER_DESIRED_ACTION_APPLY: realer_desired_action = 1;
/// Do not apply it (expired, or an older `sequence_number` than one already answered or listed beside it):
/// answer it with `REALER_REPORT_STATUS_STALE` and the actuator's current value.
pub const REALER_DESIRED_ACTION_STALE: realer_desired_action = 2;

/// Which kind of service said what it wants (`realer_desired_states_source`).
pub type realer_desired_source = i32;
/// A newer service: pending desired states from GET …/desired-states, each with a `desired_id` to answer.
pub const REALER_DESIRED_SOURCE_DESIRED_STATES: realer_desired_source = 1;
/// An older service (no /desired-states, or no scope for it): the catalog's command values.
pub const REALER_DESIRED_SOURCE_CATALOG: realer_desired_source = 2;

/// One thing Realer wants, as `realer_desired_states_get` fills it. Strings live as long as the list it came
/// from; absent ones are NULL.
#[repr(C)]
pub struct realer_desired_state {
    /// The command whose actuator it is about.
    pub command_id: *const c_char,
    /// The value Realer wants; NULL only when a desired state came without one (answer it rejected).
    pub value: *const c_char,
    /// The command's value type when the catalog gave it (compare with `realer_values_equal`), else NULL.
    pub value_type: *const c_char,
    /// The desired state to answer; NULL for a catalog value (an older service).
    pub desired_id: *const c_char,
    /// Its sequence number, -1 when absent.
    pub sequence_number: i64,
    /// When it expires, as Realer gave it (RFC 3339); NULL when it does not.
    pub expires_at: *const c_char,
    /// `expires_at` in Unix milliseconds, -1 when absent or unreadable.
    pub expires_at_unix_ms: i64,
    /// `REALER_DESIRED_ACTION_APPLY` or `REALER_DESIRED_ACTION_STALE`.
    pub action: realer_desired_action,
}

/// A list of desired states; free it with `realer_desired_states_free`.
pub struct realer_desired_states {
    source: realer_desired_source,
    list: StateList,
}

fn states_list(d: DesiredStates) -> realer_desired_states {
    let source = match d.source {
        DesiredSource::DesiredStates => REALER_DESIRED_SOURCE_DESIRED_STATES,
        DesiredSource::Catalog => REALER_DESIRED_SOURCE_CATALOG,
    };
    realer_desired_states { source, list: d.states }
}

impl CList for realer_desired_states {
    type Item = realer_desired_state;
    const WHAT: &'static str = "desired states";
    fn len(&self) -> usize {
        self.list.len()
    }
    fn item(&self, index: usize) -> Option<realer_desired_state> {
        let s = self.list.view(index)?;
        Some(realer_desired_state {
            command_id: s.command_id.as_ptr(),
            value: c_ptr(s.value),
            value_type: c_ptr(s.value_type),
            desired_id: c_ptr(s.desired_id),
            sequence_number: s.sequence_number.unwrap_or(-1),
            expires_at: c_ptr(s.expires_at),
            expires_at_unix_ms: s.expires_at_unix_ms.unwrap_or(-1),
            action: match s.action {
                DesiredAction::Apply => REALER_DESIRED_ACTION_APPLY,
                DesiredAction::Stale => REALER_DESIRED_ACTION_STALE,
            },
        })
    }
}

/// Asks Realer what it wants the device's actuators at, whichever kind of service answers: a newer one's
/// pending desired states (GET …/desired-states), each decided APPLY or STALE against what this device
/// already answered (kept in the outbox file when one is configured, so a restart never applies an old
/// sequence again); or, where that endpoint answers 404 or 405 (or 400 or 403 in Realer's own JSON), the
/// catalog values (GET …/commands) that are new: seen for the first time, or changed in Realer since the last
/// value this device acted on (compared by value type: numerically for NumericRange and Binary). A catalog
/// value counts as acted on once this client reports that command (a post accepted or an outbox push, without
/// desired_id), fetches again, or is freed; after that it is not listed again, whatever the actuator is at, so
/// a local physical change (reported without desired_id) is never undone by the next fetch, nor, with an outbox
/// file (which keeps the values acted on), by a restart. A process killed between this call and acting on a
/// value gets it again. Apply each before the next fetch.
/// Which kind of service it is, is found once and kept for the client's life (and in the outbox file); it
/// is asked again when a token is granted another scope or the catalog's commands change. A 403 under a
/// granted scope without `iot:desired-state:read` is logged at REALER_LOG_WARN: leave the scope unset (or
/// add it), or a newer service's desired states are never delivered.
/// On an older service the command list this client read with `realer_commands_fetch` (the whole list, within
/// the request timeout before this call) stands in for the catalog read, once: a pass that reads the
/// commands, then calls this, reads the catalog once.
/// States already answered, or queued in the outbox to be, are left out. On success `*out` holds the list
/// (possibly empty: nothing pending, or nothing new); free it with `realer_desired_states_free`. Answer each
/// state with `realer_feed_item_init_answer` and `realer_feed_post` (or `realer_outbox_push`).
/// `REALER_ERR_API`: the server refused (see `realer_last_error`); `REALER_ERR_PROTOCOL`: an answer that is
/// not the documented list (the message says what it is: an array, a string, an object without the list);
/// `REALER_ERR_STORAGE`: the outbox file could not be read or written. `REALER_ERR_CONFIG`: a client inherited
/// across fork() whose outbox file is the parent's (make a new client in the child).
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_desired_states_fetch(
    client: *const realer_client,
    out: *mut *mut realer_desired_states,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { make_into(client, "client", out, |c| Ok(states_list(c.inner.fetch_desired_states()?))) }
}

/// Which kind of service the list came from: `REALER_DESIRED_SOURCE_DESIRED_STATES` or
/// `REALER_DESIRED_SOURCE_CATALOG`; 0 for NULL.
///
/// # Safety
/// `list` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_desired_states_source(list: *const realer_desired_states) -> realer_desired_source {
    // SAFETY: the caller passes NULL or a live list.
    guard(0, || unsafe { list.as_ref() }.map_or(0, |l| l.source))
}

/// The number of desired states in the list; 0 for NULL.
///
/// # Safety
/// `list` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_desired_states_len(list: *const realer_desired_states) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { list_len(list) }
}

/// Fills `*out` with the desired state at `index`: its strings point into the list (valid as long as the
/// list; absent ones NULL). `REALER_ERR_INVALID_ARGUMENT`: `list` or `out` NULL, or `index` past the end
/// (`*out` unchanged).
///
/// # Safety
/// `list` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_desired_states_get(
    list: *const realer_desired_states,
    index: usize,
    out: *mut realer_desired_state,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { list_get(list, index, out) }
}

/// Frees a desired-state list and its strings. NULL is accepted.
///
/// # Safety
/// `list` is NULL or from this library, and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn realer_desired_states_free(list: *mut realer_desired_states) {
    // SAFETY: the caller hands back a list from this library, once.
    guard((), || unsafe { free_box(list) })
}

/// Fills `item` as the answer to `state`, with `value` the physical value now at the actuator. With a
/// `desired_id`: a command report carrying it, `report_status` (`REALER_REPORT_STATUS_APPLIED`, `_REJECTED` or
/// `_STALE`; `_NONE` means applied) and its `sequence_number` echoed. Without (a catalog value): a plain
/// report of the physical value (`_APPLIED`, `_REJECTED` or `_NONE`; the value tells Realer the outcome).
/// Every other field is as `realer_feed_item_init` leaves it (`message_id` and `value_received_at` NULL:
/// generated and now); set them before posting when this answer is a retry. The item points at `state`'s
/// and `value`'s strings: keep the list and `value` alive until the item is posted or pushed.
/// `REALER_ERR_INVALID_ARGUMENT`: NULL or non-UTF-8 argument, or a status that cannot answer this state
/// (`*item` unchanged).
///
/// # Safety
/// `item` is NULL or writable; `state` is NULL or from a live list; `value` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn realer_feed_item_init_answer(
    item: *mut realer_feed_item,
    state: *const realer_desired_state,
    value: *const c_char,
    report_status: realer_report_status,
) -> realer_status {
    call(|| {
        // SAFETY: the caller passes NULL or live pointers with valid strings.
        let (mut item, state) = unsafe { (out_arg(item, "item")?, ref_arg(state, "state")?) };
        // SAFETY: as above.
        let (command_id, desired_id, value) = unsafe {
            (
                str_arg(state.command_id, "state command_id")?,
                opt_str_arg(state.desired_id, "state desired_id")?,
                str_arg(value, "value")?,
            )
        };
        let status = read_report_status(report_status).map_err(|why| Error::invalid(format!("report_status {why}")))?;
        let sequence_number = (state.sequence_number >= 0).then_some(state.sequence_number);
        let answer = desired::answer_item(command_id, desired_id, sequence_number, value, status)?;
        // The answer borrows the strings it was given, which came from these C strings: point at them.
        let ptr = |s: Option<&str>| s.map_or(std::ptr::null(), |s| s.as_ptr().cast::<c_char>());
        item.write(realer_feed_item {
            sensor_id: std::ptr::null(),
            command_id: ptr(answer.command_id),
            value: ptr(answer.value),
            value_received_at: std::ptr::null(),
            message_id: std::ptr::null(),
            desired_id: ptr(answer.desired_id),
            report_status: crate::ffi::feed::report_status_code(answer.report_status),
            sequence_number: answer.sequence_number.unwrap_or(-1),
        });
        Ok(())
    })
}

/// Whether two values of a command are the same setting, compared as Realer's contract says: by
/// `value_type` (NULL: unknown), numerically for "NumericRange" and "Binary" ("0" equals "0.0"), else as
/// text. Use it to tell whether an actuator is already at a catalog value. False when an argument is NULL or
/// not UTF-8.
///
/// # Safety
/// Each argument is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn realer_values_equal(value_type: *const c_char, a: *const c_char, b: *const c_char) -> bool {
    guard(false, || {
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let args = unsafe { (opt_str_arg(value_type, "value_type"), str_arg(a, "a"), str_arg(b, "b")) };
        match args {
            (Ok(t), Ok(a), Ok(b)) => crate::catalog::values_equal(t, a, b),
            _ => false,
        }
    })
}
