//! The outbox from C: configure it, push items durably, flush them, read its state and its dead letters.

use std::ffi::c_char;

use crate::error::{Error, ErrorKind, Result};
use crate::ffi::client::realer_client;
use crate::ffi::config::realer_config;
use crate::ffi::error::realer_status;
use crate::ffi::feed::{read_item, realer_feed_item, REALER_BATCH_MAX_ITEMS, REALER_MESSAGE_ID_MAX};
use crate::ffi::{
    call, finish, free_box, guard, items_arg, list_get, list_len, make_into, opt_out_arg, out_arg, ref_arg, str_arg,
    with_config, write_str, CList, Strings,
};
use crate::outbox::{DeadLetter, FullPolicy};

/// What a push does when the outbox is full.
pub type realer_outbox_full_policy = i32;
/// Refuse the new items with `REALER_ERR_OUTBOX_FULL` (the default): nothing stored is lost.
pub const REALER_OUTBOX_FULL_REFUSE: realer_outbox_full_policy = 0;
/// Delete the oldest pending items to make room; counted in `realer_outbox_stats.dropped` and logged.
pub const REALER_OUTBOX_FULL_DROP_OLDEST: realer_outbox_full_policy = 1;

/// What `realer_outbox_flush` did.
#[repr(C)]
pub struct realer_flush_report {
    /// Items Realer stored now (`created`).
    pub sent: u64,
    /// Items Realer already had (`idempotent`): resends after a lost answer.
    pub replayed: u64,
    /// Items Realer judged and refused for good in its own JSON answer (409, 422, 413 for one item of at least
    /// 1 KiB larger than any body the path carried, another 4xxx; never a refusal of the request as a whole
    /// such as 401, 402, 403, 404, 408, 425, 429, nor a page of a proxy's or gateway's own), moved to the
    /// dead letters.
    pub rejected: u64,
    /// Items still pending after the flush.
    pub pending: u64,
}

/// The outbox's state.
#[repr(C)]
pub struct realer_outbox_stats {
    /// Items waiting to be sent.
    pub pending: u64,
    /// Dead letters kept.
    pub dead: u64,
    /// Bytes of pending item JSON.
    pub bytes: u64,
    /// Age of the oldest pending item in milliseconds, -1 when none is pending.
    pub oldest_age_ms: i64,
    /// Items the drop-oldest policy deleted unsent, ever.
    pub dropped: u64,
    /// Dead letters deleted to make room, the oldest first, ever: dead letters count within the outbox's
    /// `max_items` and `max_bytes` and give way before any pending item.
    pub dead_dropped: u64,
}

/// An item Realer refused for good. Strings live as long as the list; never NULL (empty when absent).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct realer_dead_letter {
    /// The `message_id` the item was sent under.
    pub message_id: *const c_char,
    /// The item as it was sent (JSON).
    pub item_json: *const c_char,
    /// Realer's code, such as 4022.
    pub code: i32,
    /// Realer's `error.type` (its label of `code`).
    pub error_type: *const c_char,
    /// Realer's `error.message`.
    pub error_message: *const c_char,
    /// Realer's `error.details` as JSON (which fields were wrong, and why).
    pub details_json: *const c_char,
    /// When Realer refused it, in Unix milliseconds.
    pub failed_at_unix_ms: i64,
}

/// A list of dead letters; free it with `realer_dead_letters_free`.
pub struct realer_dead_letters {
    items: Vec<realer_dead_letter>,
    _strings: Strings,
}

/// Keeps unsent items in the SQLite file at `path` (created when missing; WAL mode, each push synced), with
/// at most `max_items` items and `max_bytes` bytes of item JSON (0 = no limit); dead letters count within
/// both limits (their bytes include Realer's error) and the oldest give way first. The file is opened by
/// `realer_client_new`, which fails with `REALER_ERR_CONFIG` or `REALER_ERR_STORAGE` when it cannot be.
/// Beside it the library keeps `<path>-wal` and `<path>-shm` (SQLite's), `<path>-reserve` (576 KiB given back
/// when the disk is full, so that a flush can always delete what it sent) and `<path>-flush` (an empty lock
/// file). Several clients and processes of one device may share one file; their flushes send different items.
/// A file is the device's that first opened it: `realer_client_new` for another device id refuses it with
/// `REALER_ERR_CONFIG` (its items would be sent as that device's). Give each device a file of its own.
///
/// # Safety
/// `config` is NULL or live; `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_outbox(
    config: *mut realer_config,
    path: *const c_char,
    max_items: u64,
    max_bytes: u64,
) -> realer_status {
    // SAFETY: the caller passes NULL or live pointers.
    unsafe { with_config(config, |c| c.set_outbox(str_arg(path, "path")?, max_items, max_bytes)) }
}

/// Chooses what a push does when the outbox is full: `REALER_OUTBOX_FULL_REFUSE` (default) or
/// `REALER_OUTBOX_FULL_DROP_OLDEST`. Call after `realer_config_set_outbox`.
///
/// # Safety
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_outbox_when_full(
    config: *mut realer_config,
    policy: realer_outbox_full_policy,
) -> realer_status {
    // SAFETY: the caller passes NULL or a live config.
    unsafe {
        with_config(config, |c| {
            let policy = match policy {
                REALER_OUTBOX_FULL_REFUSE => FullPolicy::Refuse,
                REALER_OUTBOX_FULL_DROP_OLDEST => FullPolicy::DropOldest,
                other => return Err(Error::invalid(format!("policy {other} is not a REALER_OUTBOX_FULL_* value"))),
            };
            c.set_outbox_when_full(policy)
        })
    }
}

/// Stores one item in the outbox and returns once it is on disk and synced. Its `message_id` (generated when
/// the item has none) and `value_received_at` (now, when absent) are fixed at this moment and used for
/// every send. When `message_id_out` is not NULL, the `message_id` is copied there, NUL-terminated; it
/// needs `message_id_len` >= `REALER_MESSAGE_ID_MAX` + 1 bytes (checked before anything is stored).
/// Pushing an item whose `message_id` is already pending for the same source with the same payload is
/// accepted once more without a second copy.
/// `REALER_ERR_INVALID_ARGUMENT`: a bad item (the message names the field). `REALER_ERR_OUTBOX_FULL`: full,
/// with the refuse policy. `REALER_ERR_CONFIG`: the client has no outbox. `REALER_ERR_STORAGE`: disk errors,
/// among them a disk too full to keep the outbox's reserve; nothing was stored, nothing stored was lost.
///
/// # Safety
/// `client` is NULL or live; `item` is NULL or readable with valid strings; `message_id_out` is NULL or
/// points to `message_id_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn realer_outbox_push(
    client: *const realer_client,
    item: *const realer_feed_item,
    message_id_out: *mut c_char,
    message_id_len: usize,
) -> realer_status {
    call(|| {
        // SAFETY: the caller passes NULL or live pointers with valid strings.
        let (client, item) = unsafe { (ref_arg(client, "client")?, ref_arg(item, "item")?) };
        if !message_id_out.is_null() && message_id_len < REALER_MESSAGE_ID_MAX + 1 {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!("message_id_out needs {} bytes, message_id_len is {message_id_len}", REALER_MESSAGE_ID_MAX + 1),
            ));
        }
        // SAFETY: as above.
        let item = unsafe { read_item(item, None) }?;
        let id = client.inner.outbox_push(&item)?;
        if message_id_out.is_null() {
            return Ok(());
        }
        // SAFETY: the caller promises message_id_len writable bytes (enough for any id: checked above).
        unsafe { write_str(message_id_out, message_id_len, &id, "message_id_out") }
    })
}

/// Stores `count` items (1 to `REALER_BATCH_MAX_ITEMS`) in one transaction: all of them, synced, or none.
/// Errors as `realer_outbox_push`; a bad item is named by its index.
///
/// # Safety
/// `client` is NULL or live; `items` is NULL or points to `count` readable items with valid strings.
#[no_mangle]
pub unsafe extern "C" fn realer_outbox_push_many(
    client: *const realer_client,
    items: *const realer_feed_item,
    count: usize,
) -> realer_status {
    call(|| {
        // SAFETY: the caller passes NULL or a live client, and NULL or `count` readable items.
        let (client, items) =
            unsafe { (ref_arg(client, "client")?, items_arg(items, count, REALER_BATCH_MAX_ITEMS, "items")?) };
        // SAFETY: the caller promises valid strings in each item.
        let items = items.iter().enumerate().map(|(i, it)| unsafe { read_item(it, Some(i)) });
        client.inner.outbox_push_many(&items.collect::<Result<Vec<_>>>()?).map(drop)
    })
}

/// Sends pending items, oldest first, in batch requests of up to 100, until none is left or `max_items` (0 = all) were
/// tried; each request has its own request timeout. Accepted items (created or idempotent) leave the outbox; items
/// Realer refused one by one in its own JSON (a 4xxx code in the batch answer other than those that refuse a request as
/// a whole: 4001, 4002, 4003, 4004, 4029) move to the dead letters; a batch answered 413 is split and resent (at most 8
/// requests for 100 items; one item of at least 1 KiB, larger than any body the path carried, refused by Realer's 413
/// becomes a dead letter; a 413 for a smaller body stops the flush, its items pending); a batch answered 2xx without
/// Realer's body goes one by one; every other item stays for the next flush, whatever a proxy, gateway or captive
/// portal answered.
/// A flush claims the items it sends, so that flushes of the same file from other clients or processes send
/// other items; a claim ends with the flush or, if its process dies, at the next flush that runs alone (else
/// when it expires, after twice the longest a batch request can take). A full disk does not stop a flush:
/// the outbox's reserve is given back to record what was sent.
/// When `out` is not NULL it is written, also on failure.
/// `REALER_OK`: every request was answered. Otherwise the status of the request that failed as a whole
/// (network, timeout, 5xx after retries, or a refusal of the request itself such as 403 for a token without
/// feed-data scope); the flush stopped there and its items, and the ones after it, are still pending.
/// After flushes have failed for want of Realer for more than 15 s (an outage), the next flush sends only
/// after a random wait, in a window as long as the outage has lasted (at most the retry policy's
/// `max_delay_ms`, or six of the intervals between the caller's flushes when that is longer), and makes one
/// attempt per request: a flush called during the wait sends nothing and returns `REALER_ERR_NETWORK`
/// (retryable; `realer_last_error()->retry_after_ms` is the wait). A fleet then comes back from an outage
/// spread out instead of all at once. The first flush Realer answers ends it.
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_outbox_flush(
    client: *const realer_client,
    max_items: usize,
    out: *mut realer_flush_report,
) -> realer_status {
    call(|| {
        // SAFETY: the caller passes NULL or live pointers.
        let (client, out) = unsafe { (ref_arg(client, "client")?, opt_out_arg(out)) };
        let (report, error) = client.inner.outbox_flush(max_items);
        if let Some(mut out) = out {
            out.write(realer_flush_report {
                sent: report.sent,
                replayed: report.replayed,
                rejected: report.rejected,
                pending: report.pending,
            });
        }
        finish(error)
    })
}

/// Writes the outbox's state to `*out`.
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_outbox_stats_read(
    client: *const realer_client,
    out: *mut realer_outbox_stats,
) -> realer_status {
    call(|| {
        // SAFETY: the caller passes NULL or live pointers.
        let (client, mut out) = unsafe { (ref_arg(client, "client")?, out_arg(out, "out")?) };
        let s = client.inner.outbox_stats()?;
        out.write(realer_outbox_stats {
            pending: s.pending,
            dead: s.dead,
            bytes: s.bytes,
            oldest_age_ms: s.oldest_age_ms.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX)),
            dropped: s.dropped,
            dead_dropped: s.dead_dropped,
        });
        Ok(())
    })
}

impl CList for realer_dead_letters {
    type Item = realer_dead_letter;
    const WHAT: &'static str = "dead letters";
    fn len(&self) -> usize {
        self.items.len()
    }
    fn item(&self, index: usize) -> Option<realer_dead_letter> {
        self.items.get(index).copied()
    }
}

fn dead_list(letters: Vec<DeadLetter>) -> realer_dead_letters {
    let mut s = Strings::default();
    let items = letters
        .iter()
        .map(|d| realer_dead_letter {
            message_id: s.add(&d.message_id),
            item_json: s.add(&d.item_json),
            code: d.code,
            error_type: s.add(&d.error_type),
            error_message: s.add(&d.message),
            details_json: s.add(&d.details_json),
            failed_at_unix_ms: d.failed_at_unix_ms,
        })
        .collect();
    realer_dead_letters { items, _strings: s }
}

/// Reads every dead letter of the client's outbox (the items Realer refused for good), oldest first, into
/// `*out`; free it with `realer_dead_letters_free`. `REALER_ERR_CONFIG`: the client has no outbox (or it is
/// the parent's, after fork()); `REALER_ERR_STORAGE`: the outbox file could not be read.
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_dead_letters_fetch(
    client: *const realer_client,
    out: *mut *mut realer_dead_letters,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { make_into(client, "client", out, |c| Ok(dead_list(c.inner.outbox_dead_letters()?))) }
}

/// Deletes every dead letter of the client's outbox, also on a full disk. When `cleared` is not NULL, it
/// receives how many there were. Errors as `realer_dead_letters_fetch`.
///
/// # Safety
/// `client` is NULL or live; `cleared` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_dead_letters_clear(client: *const realer_client, cleared: *mut u64) -> realer_status {
    call(|| {
        // SAFETY: the caller passes NULL or live pointers.
        let (client, cleared) = unsafe { (ref_arg(client, "client")?, opt_out_arg(cleared)) };
        let n = client.inner.outbox_clear_dead()?;
        if let Some(mut cleared) = cleared {
            cleared.write(n);
        }
        Ok(())
    })
}

/// The number of dead letters in the list; 0 for NULL.
///
/// # Safety
/// `list` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_dead_letters_len(list: *const realer_dead_letters) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { list_len(list) }
}

/// Fills `*out` with the dead letter at `index`; its strings point into the list (valid as long as it).
/// `REALER_ERR_INVALID_ARGUMENT`: `list` or `out` NULL, or `index` past the end (`*out` unchanged).
///
/// # Safety
/// `list` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_dead_letters_get(
    list: *const realer_dead_letters,
    index: usize,
    out: *mut realer_dead_letter,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { list_get(list, index, out) }
}

/// Frees a dead-letter list. NULL is accepted.
///
/// # Safety
/// `list` is NULL or from `realer_dead_letters_fetch`, and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn realer_dead_letters_free(list: *mut realer_dead_letters) {
    // SAFETY: the caller hands back a list from this library, once.
    guard((), || unsafe { free_box(list) })
}
