//! Feed data from C: caller-owned `realer_feed_item`s in, a caller-owned `realer_feed_result` or a library-owned
//! `realer_batch_result` out.

use std::ffi::c_char;

use crate::error::Result;
use crate::feed::{field_error, FeedItem, FeedOutcome, FeedResult, ItemRef, ReportStatus};
use crate::ffi::client::realer_client;
use crate::ffi::error::realer_status;
use crate::ffi::{
    c_string, call, finish, free_box, guard, into_raw, items_arg, list_get, list_len, opt_str_arg, out_arg, ref_arg,
    write_str, CList, Strings,
};
use crate::time;

/// `report_status` of a command report.
pub type realer_report_status = i32;
/// Omit `report_status` (with a `desired_id`, Realer takes `applied`).
pub const REALER_REPORT_STATUS_NONE: realer_report_status = 0;
/// The desired state was applied (the value is the physical result).
pub const REALER_REPORT_STATUS_APPLIED: realer_report_status = 1;
/// The device could not apply the desired state (the value is what the actuator holds).
pub const REALER_REPORT_STATUS_REJECTED: realer_report_status = 2;
/// The desired state was not applied: expired, or older than one already answered.
pub const REALER_REPORT_STATUS_STALE: realer_report_status = 3;
/// Only for a local physical change (no `desired_id`).
pub const REALER_REPORT_STATUS_REPORTED: realer_report_status = 4;

/// What became of an item.
pub type realer_feed_outcome = i32;
/// Stored now (HTTP 201).
pub const REALER_FEED_OUTCOME_CREATED: realer_feed_outcome = 0;
/// Stored before under the same `message_id` and payload: a replay, a success.
pub const REALER_FEED_OUTCOME_IDEMPOTENT: realer_feed_outcome = 1;
/// Realer judged the item and refused it for good (validation, conflict, over the byte budget), in its own
/// JSON answer: do not resend it unchanged. Never from a page of a proxy, gateway or captive portal.
pub const REALER_FEED_OUTCOME_REJECTED: realer_feed_outcome = 2;
/// Not known to be stored (invalid item, network failure, timeout, a request refused as a whole, an answer
/// that was not Realer's, a 2xx without Realer's body): send it again with the same `message_id`.
pub const REALER_FEED_OUTCOME_NOT_SENT: realer_feed_outcome = 3;

/// The longest `message_id`, in bytes.
pub const REALER_MESSAGE_ID_MAX: usize = 128;
/// Bytes of `realer_feed_result.message_id`: the longest `message_id` and its NUL.
pub const REALER_MESSAGE_ID_SIZE: usize = 129;
/// Bytes of `realer_feed_result.value_received_at`: the longest RFC 3339 time sent, and its NUL.
pub const REALER_VALUE_RECEIVED_AT_SIZE: usize = 40;
/// Bytes `realer_timestamp_format` needs, its NUL included.
pub const REALER_TIMESTAMP_SIZE: usize = 25;
// The header's constants are literal values (cbindgen copies no expressions): they must agree with the core's.
const _: () = assert!(REALER_MESSAGE_ID_MAX == crate::limits::MAX_MESSAGE_ID_LEN);
const _: () = assert!(REALER_MESSAGE_ID_SIZE == crate::limits::MESSAGE_ID_BUFFER);
const _: () = assert!(REALER_VALUE_RECEIVED_AT_SIZE == crate::limits::TIMESTAMP_BUFFER);
const _: () = assert!(REALER_TIMESTAMP_SIZE == crate::limits::FORMATTED_TIMESTAMP);

/// One command acknowledgement or sensor reading. Caller-owned: fill it with `realer_feed_item_init`, then
/// set the fields; the library only reads it during the call.
#[repr(C)]
pub struct realer_feed_item {
    /// For a sensor reading; exactly one of `sensor_id` and `command_id` is set.
    pub sensor_id: *const c_char,
    /// For a command report.
    pub command_id: *const c_char,
    /// The raw value as text ("21.4"). Required.
    pub value: *const c_char,
    /// When the device observed the value, RFC 3339 ("2026-04-24T10:15:00Z"); NULL = now. Sent in Realer's
    /// form, `YYYY-MM-DDTHH:MM:SS[.fff]Z`: another RFC 3339 form is normalised first (lower-case `t` and `z`
    /// taken, an offset such as "+02:00" or "-00:00" converted to UTC, a fraction cut to milliseconds:
    /// ".5" becomes ".500"); anything else (no offset, "+0200", not a date) is refused with
    /// `REALER_ERR_INVALID_ARGUMENT`, before any I/O. The result's `value_received_at` is what was sent.
    pub value_received_at: *const c_char,
    /// The idempotency key: 1-128 printable ASCII characters, no spaces; NULL = generated. Keep the same one
    /// for every retry of the same physical event.
    pub message_id: *const c_char,
    /// The desired state this command report answers; NULL for a local physical change.
    pub desired_id: *const c_char,
    /// `REALER_REPORT_STATUS_*`.
    pub report_status: realer_report_status,
    /// The desired state's sequence number, echoed; -1 = absent.
    pub sequence_number: i64,
}

/// The result of `realer_feed_post`. Caller-owned; always written once the arguments could be read.
#[repr(C)]
pub struct realer_feed_result {
    /// `REALER_FEED_OUTCOME_*`.
    pub outcome: realer_feed_outcome,
    /// Realer's `feed_data_id` for a stored item, -1 otherwise.
    pub feed_data_id: i64,
    /// HTTP status of the answer, 0 when none arrived.
    pub http_status: i32,
    /// Realer's `code` (2000 on success), 0 when no answer arrived.
    pub code: i32,
    /// The `message_id` used (generated when the item had none), NUL-terminated: retry with it.
    pub message_id: [c_char; REALER_MESSAGE_ID_SIZE],
    /// The `value_received_at` sent (the time of the call when the item had none), NUL-terminated: a retry
    /// must send it too, or Realer sees another payload under the same `message_id` (409 conflict).
    pub value_received_at: [c_char; REALER_VALUE_RECEIVED_AT_SIZE],
}

/// One item's fate in a batch. Strings live as long as the batch result; absent ones are NULL.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct realer_item_result {
    /// `REALER_FEED_OUTCOME_*`.
    pub outcome: realer_feed_outcome,
    /// -1 unless the item is stored.
    pub feed_data_id: i64,
    /// Realer's code for this item (2000 when accepted, such as 4022 when rejected), 0 when no answer arrived.
    pub code: i32,
    /// The `message_id` used for this item. Never NULL.
    pub message_id: *const c_char,
    /// The `value_received_at` sent for this item (empty when the item was not read). Never NULL.
    pub value_received_at: *const c_char,
    /// Realer's `error.type` for this item (its label of `code`), NULL when accepted.
    pub error_type: *const c_char,
    /// Why it was rejected or not sent, NULL when accepted.
    pub error_message: *const c_char,
    /// Realer's `error.details` as JSON.
    pub details_json: *const c_char,
    /// The `warnings` Realer sent with this item's result, as JSON; NULL when none.
    pub warnings_json: *const c_char,
}

/// The results of `realer_feed_post_batch`, one per item in order; free with `realer_batch_result_free`.
pub struct realer_batch_result {
    items: Vec<realer_item_result>,
    _strings: Strings,
}

/// Fills `item` with the defaults: every string NULL, `REALER_REPORT_STATUS_NONE`, `sequence_number` -1.
///
/// # Safety
/// `item` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_feed_item_init(item: *mut realer_feed_item) -> realer_status {
    call(|| {
        // SAFETY: the caller passes NULL or a writable item.
        let mut item = unsafe { out_arg(item, "item") }?;
        item.write(realer_feed_item {
            sensor_id: std::ptr::null(),
            command_id: std::ptr::null(),
            value: std::ptr::null(),
            value_received_at: std::ptr::null(),
            message_id: std::ptr::null(),
            desired_id: std::ptr::null(),
            report_status: REALER_REPORT_STATUS_NONE,
            sequence_number: -1,
        });
        Ok(())
    })
}

/// Reads a C item into the core's form; the contract's rules are checked later, by the core.
///
/// # Safety
/// The item's strings are NULL or NUL-terminated.
pub(crate) unsafe fn read_item(item: &realer_feed_item, index: Option<usize>) -> Result<FeedItem> {
    // SAFETY: forwarded from the caller.
    unsafe { read_item_ref(item, index) }.map(ItemRef::to_owned)
}

/// [`read_item`] without copying the strings: they stay the caller's, borrowed for the call.
///
/// # Safety
/// The item's strings are NULL or NUL-terminated, and stay unchanged while the result is used.
pub(crate) unsafe fn read_item_ref(item: &realer_feed_item, index: Option<usize>) -> Result<ItemRef<'_>> {
    let s = |p: *const c_char, field: &str| -> Result<Option<&str>> {
        // SAFETY: forwarded from the caller. Only non-UTF-8 text fails.
        unsafe { opt_str_arg(p, field) }.map_err(|_| field_error(index, field, "is not valid UTF-8"))
    };
    let report_status =
        read_report_status(item.report_status).map_err(|why| field_error(index, "report_status", why))?;
    let sequence_number = match item.sequence_number {
        -1 => None,
        n if n < -1 => {
            return Err(field_error(index, "sequence_number", format_args!("{n} is negative (use -1 for absent)")))
        }
        n => Some(n),
    };
    Ok(ItemRef {
        sensor_id: s(item.sensor_id, "sensor_id")?,
        command_id: s(item.command_id, "command_id")?,
        value: s(item.value, "value")?,
        value_received_at: s(item.value_received_at, "value_received_at")?,
        message_id: s(item.message_id, "message_id")?,
        desired_id: s(item.desired_id, "desired_id")?,
        report_status,
        sequence_number,
    })
}

/// A `REALER_REPORT_STATUS_*` value from C; the error says why it is not one.
pub(crate) fn read_report_status(code: realer_report_status) -> std::result::Result<ReportStatus, String> {
    Ok(match code {
        REALER_REPORT_STATUS_NONE => ReportStatus::None,
        REALER_REPORT_STATUS_APPLIED => ReportStatus::Applied,
        REALER_REPORT_STATUS_REJECTED => ReportStatus::Rejected,
        REALER_REPORT_STATUS_STALE => ReportStatus::Stale,
        REALER_REPORT_STATUS_REPORTED => ReportStatus::Reported,
        other => return Err(format!("{other} is not a REALER_REPORT_STATUS_* value")),
    })
}

pub(crate) fn report_status_code(s: ReportStatus) -> realer_report_status {
    match s {
        ReportStatus::None => REALER_REPORT_STATUS_NONE,
        ReportStatus::Applied => REALER_REPORT_STATUS_APPLIED,
        ReportStatus::Rejected => REALER_REPORT_STATUS_REJECTED,
        ReportStatus::Stale => REALER_REPORT_STATUS_STALE,
        ReportStatus::Reported => REALER_REPORT_STATUS_REPORTED,
    }
}

thread_local! {
    /// The `warnings` of the last `realer_feed_post` on this thread, NUL-terminated ("" for none).
    static LAST_WARNINGS: std::cell::RefCell<std::ffi::CString> = std::cell::RefCell::new(std::ffi::CString::default());
}

fn outcome_code(o: FeedOutcome) -> realer_feed_outcome {
    match o {
        FeedOutcome::Created => REALER_FEED_OUTCOME_CREATED,
        FeedOutcome::Idempotent => REALER_FEED_OUTCOME_IDEMPOTENT,
        FeedOutcome::Rejected => REALER_FEED_OUTCOME_REJECTED,
        FeedOutcome::NotSent => REALER_FEED_OUTCOME_NOT_SENT,
    }
}

fn feed_result(r: &FeedResult) -> realer_feed_result {
    let mut out = realer_feed_result {
        outcome: outcome_code(r.outcome),
        feed_data_id: r.feed_data_id.unwrap_or(-1),
        http_status: i32::from(r.http_status),
        code: r.code,
        message_id: [0; REALER_MESSAGE_ID_SIZE],
        value_received_at: [0; REALER_VALUE_RECEIVED_AT_SIZE],
    };
    copy_truncated(&mut out.message_id, &r.message_id);
    copy_truncated(&mut out.value_received_at, &r.value_received_at);
    out
}

/// Copies into a fixed C buffer, always NUL-terminated. Values the library sent always fit (a message_id
/// is at most 128 bytes, a checked timestamp at most 24); only a refused caller string can be cut short.
fn copy_truncated(dst: &mut [c_char], src: &str) {
    let room = dst.len() - 1;
    for (d, s) in dst.iter_mut().zip(src.bytes().take(room)) {
        *d = s as c_char;
    }
}

/// Posts one item (POST /iot/v1/devices/{device_id}/feed-data), after checking it against the contract.
/// `*out` is always written (unless `client`, `item` or `out` is NULL) and holds the `message_id` used,
/// also after a failure, so the caller can retry with it.
/// `REALER_OK`: `outcome` is CREATED or IDEMPOTENT (a replay of an already stored item).
/// `REALER_ERR_INVALID_ARGUMENT`: the item breaks the contract (the message names the field); nothing sent.
/// `REALER_ERR_API`: outcome REJECTED when Realer judged the item in its own JSON answer (code 4009
/// conflict, 4022 validation with `details_json`, 4013 over the byte budget for an item of at least 1 KiB
/// larger than any body this client's path carried, another 4xxx); outcome NOT_SENT when the request was
/// refused as a whole (4001 after a token renewal, 4002 subscription inactive, 4003, 4004, 408, 425, 4029
/// or 5xxx after the retries, a 413 for a smaller item) or the answer was not Realer's (a 4xx HTML or empty
/// page of a proxy, gateway or captive portal): keep the item and send it again later with the same
/// `message_id` and `value_received_at`.
/// `REALER_ERR_PROTOCOL`, outcome NOT_SENT: a 2xx without Realer's JSON body (a gateway's 202/204, an empty
/// or HTML 200) confirms nothing; a resend with the same `message_id` is a harmless replay.
/// `REALER_ERR_NETWORK`/`_TIMEOUT`/`_TLS`: no answer (outcome NOT_SENT).
/// Realer's `warnings` (undocumented contents) are read with `realer_last_warnings`.
///
/// # Safety
/// `client` is NULL or live; `item` is NULL or readable with valid strings; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_feed_post(
    client: *const realer_client,
    item: *const realer_feed_item,
    out: *mut realer_feed_result,
) -> realer_status {
    call(|| {
        // The warnings are this post's, whatever it ends with: none until Realer sends some.
        LAST_WARNINGS.with(|w| *w.borrow_mut() = c_string(""));
        // SAFETY: the caller passes NULL or live pointers.
        let (client, item, mut out) =
            unsafe { (ref_arg(client, "client")?, ref_arg(item, "item")?, out_arg(out, "out")?) };
        // SAFETY: the caller promises valid strings in the item. They may lie in `*out` (a retry that passes
        // the last result's message_id), so they are borrowed only until the post returns, before `out` is
        // written.
        let result = client.inner.post_item_read(unsafe { read_item_ref(item, None) });
        out.write(feed_result(&result));
        LAST_WARNINGS.with(|w| *w.borrow_mut() = c_string(result.warnings_json.as_deref().unwrap_or_default()));
        finish(result.error)
    })
}

impl CList for realer_batch_result {
    type Item = realer_item_result;
    const WHAT: &'static str = "batch result";
    const ARG: &'static str = "result";
    fn len(&self) -> usize {
        self.items.len()
    }
    fn item(&self, index: usize) -> Option<realer_item_result> {
        self.items.get(index).copied()
    }
}

fn batch_list(results: &[FeedResult]) -> realer_batch_result {
    let mut s = Strings::default();
    let items = results
        .iter()
        .map(|r| {
            let err = r.error.as_ref();
            realer_item_result {
                outcome: outcome_code(r.outcome),
                feed_data_id: r.feed_data_id.unwrap_or(-1),
                code: r.code,
                message_id: s.add(&r.message_id),
                value_received_at: s.add(&r.value_received_at),
                error_type: s.opt(err.map(|e| e.error_type.as_str()).filter(|t| !t.is_empty())),
                error_message: s.opt(err.map(|e| e.message.as_str()).filter(|m| !m.is_empty())),
                details_json: s.opt(err.and_then(|e| e.details.as_ref()).map(|d| d.to_string()).as_deref()),
                warnings_json: s.opt(r.warnings_json.as_deref()),
            }
        })
        .collect();
    realer_batch_result { items, _strings: s }
}

/// The most items one `realer_feed_post_batch` call takes.
pub const REALER_BATCH_MAX_ITEMS: usize = 100_000;
const _: () = assert!(REALER_BATCH_MAX_ITEMS == crate::limits::MAX_ITEMS_PER_CALL);

/// Posts `count` items (1 to `REALER_BATCH_MAX_ITEMS`) through POST /iot/v1/devices/{device_id}/feed-data/batches,
/// 100 items per request: more items make several requests, sent one after the other, each with its own
/// request timeout. A request answered 413 is split in halves (by bytes) down to one item and resent, at most
/// 8 requests for 100 items; a 413 for one item under 1 KiB, or no larger than a body this client's path
/// carried, refused the request (its items NOT_SENT, the call stops); later batches are sized below the
/// smallest body refused as too large. Where the batch endpoint refuses a request as a whole (400, 404, 405,
/// 415, 422 without per-item results) or answers in a shape librealer cannot read (a 2xx without Realer's
/// JSON body included), the items go one by one through /feed-data, and this client keeps doing so for an
/// hour before it tries batches again: every item is delivered either way. Every item is checked before
/// anything is sent: one bad item fails the call with `REALER_ERR_INVALID_ARGUMENT` (the message names it).
/// `*out` is set to NULL first, then to the per-item results whenever the items could be read, also on
/// failure; free it with `realer_batch_result_free` (NULL is accepted).
/// `REALER_OK`: every request was answered; items may still be REJECTED one by one (see each result).
/// Any other status: a request was refused as a whole (402, 403, 408/425/429/5xx after retries, a 413 that
/// cannot be about size, another page of a proxy's own, no answer...): its items and the ones after it are
/// NOT_SENT (send them again later with the same `message_id`s); earlier
/// results stand.
///
/// # Safety
/// `client` is NULL or live; `items` is NULL or points to `count` readable items with valid strings;
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_feed_post_batch(
    client: *const realer_client,
    items: *const realer_feed_item,
    count: usize,
    out: *mut *mut realer_batch_result,
) -> realer_status {
    call(|| {
        // SAFETY: the caller passes NULL or a writable pointer.
        let mut out = unsafe { out_arg(out, "out") }?;
        out.write(std::ptr::null_mut());
        // SAFETY: the caller passes NULL or a live client, and NULL or `count` readable items.
        let (client, items) =
            unsafe { (ref_arg(client, "client")?, items_arg(items, count, REALER_BATCH_MAX_ITEMS, "items")?) };
        // SAFETY: the caller promises valid strings in each item.
        let read = items.iter().enumerate().map(|(i, it)| unsafe { read_item(it, Some(i)) }).collect();
        let report = client.inner.post_feed_batch_read(read);
        out.write(into_raw(batch_list(&report.results)));
        finish(report.error)
    })
}

/// The number of item results; 0 for NULL.
///
/// # Safety
/// `result` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_batch_result_len(result: *const realer_batch_result) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { list_len(result) }
}

/// Fills `*out` with the result of the item at `index` (the same index as in the items passed); its strings
/// point into the batch result (valid as long as it). `REALER_ERR_INVALID_ARGUMENT`: `result` or `out` NULL,
/// or `index` past the end (`*out` unchanged).
///
/// # Safety
/// `result` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_batch_result_get(
    result: *const realer_batch_result,
    index: usize,
    out: *mut realer_item_result,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { list_get(result, index, out) }
}

/// Frees a batch result and its strings. NULL is accepted.
///
/// # Safety
/// `result` is NULL or from `realer_feed_post_batch`, and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn realer_batch_result_free(result: *mut realer_batch_result) {
    // SAFETY: the caller hands back a result from this library, once.
    guard((), || unsafe { free_box(result) })
}

/// Writes `unix_ms` (milliseconds since 1970, 0 = now) as RFC 3339 UTC with milliseconds, such as
/// "2026-04-24T10:15:00.000Z", NUL-terminated, into `buf` of `len` bytes (`REALER_TIMESTAMP_SIZE` suffice).
/// `REALER_ERR_BUFFER_TOO_SMALL`: `len` is too small (nothing written). `REALER_ERR_INVALID_ARGUMENT`: NULL
/// `buf`, or a time before 1970 or after 9999.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn realer_timestamp_format(unix_ms: i64, buf: *mut c_char, len: usize) -> realer_status {
    call(|| {
        let text = time::format_timestamp(unix_ms)?;
        // SAFETY: the caller passes NULL or `len` writable bytes.
        unsafe { write_str(buf, len, &text, "buf") }
    })
}

/// The `warnings` of the last `realer_feed_post` on the calling thread, as JSON text ("" when Realer
/// sent none, or an empty list). Their contents are not documented by Realer: log them. Never NULL; valid
/// until the next `realer_feed_post` on this thread.
#[no_mangle]
pub extern "C" fn realer_last_warnings() -> *const c_char {
    guard(c"".as_ptr(), || LAST_WARNINGS.with(|w| w.borrow().as_ptr()))
}
