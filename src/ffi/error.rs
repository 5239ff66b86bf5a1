//! Status codes and the per-thread last error (as in libgit2 and OpenSSL): a cheap status from every call,
//! and the details of the last failure on the calling thread.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::error::{Error, ErrorKind};
use crate::ffi::{c_string, guard};

/// The result of a fallible call: `REALER_OK` or one `REALER_ERR_*` value. The values never change meaning.
pub type realer_status = i32;
/// Success.
pub const REALER_OK: realer_status = 0;
/// An argument was NULL, not UTF-8, out of range, or broke the contract (the message names it). Nothing was sent.
pub const REALER_ERR_INVALID_ARGUMENT: realer_status = 1;
/// A configuration value was refused, or the configuration is incomplete.
pub const REALER_ERR_CONFIG: realer_status = 2;
/// TLS failed: handshake, untrusted server certificate, bad CA material.
pub const REALER_ERR_TLS: realer_status = 3;
/// The server certificate is expired or not yet valid. On a device this usually means its clock is wrong.
pub const REALER_ERR_TLS_CERT_TIME: realer_status = 4;
/// Connecting, sending or receiving failed (DNS, refused, reset, closed). Retryable.
pub const REALER_ERR_NETWORK: realer_status = 5;
/// The configured time ran out. Retryable.
pub const REALER_ERR_TIMEOUT: realer_status = 6;
/// The token endpoint refused the credentials, or refused a freshly issued token.
pub const REALER_ERR_AUTH: realer_status = 7;
/// The server answered an application error: see `http_status`, `code`, `type` and `details_json`.
pub const REALER_ERR_API: realer_status = 8;
/// The server's answer could not be understood.
pub const REALER_ERR_PROTOCOL: realer_status = 9;
/// A caller-provided buffer is too small.
pub const REALER_ERR_BUFFER_TOO_SMALL: realer_status = 10;
/// A bug in librealer: a panic was caught at the C boundary.
pub const REALER_ERR_INTERNAL: realer_status = 11;
/// The outbox is full and configured to refuse new items; nothing of this push was stored.
pub const REALER_ERR_OUTBOX_FULL: realer_status = 12;
/// The outbox file could not be read or written (disk full, permissions, corruption).
pub const REALER_ERR_STORAGE: realer_status = 13;
/// `realer_client_cancel` interrupted the call, or refused it until `realer_client_resume`. Nothing was
/// lost: a feed item is NOT_SENT (send it again with its `message_id`), an outbox item stays pending.
pub const REALER_ERR_CANCELLED: realer_status = 14;

pub(crate) fn status_of(kind: ErrorKind) -> realer_status {
    match kind {
        ErrorKind::InvalidArgument => REALER_ERR_INVALID_ARGUMENT,
        ErrorKind::Config => REALER_ERR_CONFIG,
        ErrorKind::Tls => REALER_ERR_TLS,
        ErrorKind::TlsCertTime => REALER_ERR_TLS_CERT_TIME,
        ErrorKind::Network => REALER_ERR_NETWORK,
        ErrorKind::Timeout => REALER_ERR_TIMEOUT,
        ErrorKind::Auth => REALER_ERR_AUTH,
        ErrorKind::Api => REALER_ERR_API,
        ErrorKind::Protocol => REALER_ERR_PROTOCOL,
        ErrorKind::BufferTooSmall => REALER_ERR_BUFFER_TOO_SMALL,
        ErrorKind::Internal => REALER_ERR_INTERNAL,
        ErrorKind::OutboxFull => REALER_ERR_OUTBOX_FULL,
        ErrorKind::Storage => REALER_ERR_STORAGE,
        ErrorKind::Cancelled => REALER_ERR_CANCELLED,
    }
}

/// The static name of a status, such as "REALER_ERR_TIMEOUT"; "REALER_ERR_UNKNOWN" for a value that is not
/// a status. Never NULL; never free it.
#[no_mangle]
pub extern "C" fn realer_status_str(status: realer_status) -> *const c_char {
    let s: &'static str = match status {
        REALER_OK => "REALER_OK\0",
        REALER_ERR_INVALID_ARGUMENT => "REALER_ERR_INVALID_ARGUMENT\0",
        REALER_ERR_CONFIG => "REALER_ERR_CONFIG\0",
        REALER_ERR_TLS => "REALER_ERR_TLS\0",
        REALER_ERR_TLS_CERT_TIME => "REALER_ERR_TLS_CERT_TIME\0",
        REALER_ERR_NETWORK => "REALER_ERR_NETWORK\0",
        REALER_ERR_TIMEOUT => "REALER_ERR_TIMEOUT\0",
        REALER_ERR_AUTH => "REALER_ERR_AUTH\0",
        REALER_ERR_API => "REALER_ERR_API\0",
        REALER_ERR_PROTOCOL => "REALER_ERR_PROTOCOL\0",
        REALER_ERR_BUFFER_TOO_SMALL => "REALER_ERR_BUFFER_TOO_SMALL\0",
        REALER_ERR_INTERNAL => "REALER_ERR_INTERNAL\0",
        REALER_ERR_OUTBOX_FULL => "REALER_ERR_OUTBOX_FULL\0",
        REALER_ERR_STORAGE => "REALER_ERR_STORAGE\0",
        REALER_ERR_CANCELLED => "REALER_ERR_CANCELLED\0",
        _ => "REALER_ERR_UNKNOWN\0",
    };
    s.as_ptr().cast()
}

/// The last failure on the calling thread. Strings are never NULL (empty when absent).
#[repr(C)]
pub struct realer_error {
    /// The status the failing call returned.
    pub status: realer_status,
    /// HTTP status of the server's answer, 0 when none arrived.
    pub http_status: i32,
    /// Realer's numeric `code` (derived from the HTTP status when the answer had none: 422 gives 4022), 0 when none.
    pub code: i32,
    /// Realer's `error.type` (or the OAuth `error`), such as "validation_failed".
    pub r#type: *const c_char,
    /// What went wrong, in words. Never contains the client secret, the Basic credentials or a token (also
    /// when a server echoed them: they are redacted) nor control characters.
    pub message: *const c_char,
    /// The server's `request_id`, for Realer support.
    pub request_id: *const c_char,
    /// Realer's `error.details` as JSON, such as {"sensor_id":["is invalid for this device"]}.
    pub details_json: *const c_char,
    /// Whether the same call may succeed later unchanged (same `message_id`).
    pub retryable: bool,
    /// The server's Retry-After in milliseconds, -1 when it sent none.
    pub retry_after_ms: i64,
}

struct LastError {
    c: realer_error,
    _strings: [CString; 4],
}

impl LastError {
    fn new(status: realer_status, e: Option<&Error>) -> LastError {
        let strings = match e {
            Some(e) => {
                [c_string(&e.error_type), c_string(&e.message), c_string(&e.request_id), c_string(&e.details_json())]
            }
            None => Default::default(),
        };
        let c = realer_error {
            status,
            http_status: e.map_or(0, |e| i32::from(e.http_status)),
            code: e.map_or(0, |e| e.code),
            r#type: strings[0].as_ptr(),
            message: strings[1].as_ptr(),
            request_id: strings[2].as_ptr(),
            details_json: strings[3].as_ptr(),
            retryable: e.is_some_and(|e| e.retryable),
            retry_after_ms: e
                .and_then(|e| e.retry_after)
                .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        };
        LastError { c, _strings: strings }
    }
}

/// Returned only if reading the thread's record itself panicked: a valid, never-NULL answer.
struct StaticError(realer_error);
// SAFETY: every pointer in it is to immutable static data.
unsafe impl Sync for StaticError {}
static PANIC_FALLBACK: StaticError = StaticError(realer_error {
    status: REALER_ERR_INTERNAL,
    http_status: 0,
    code: 0,
    r#type: c"".as_ptr(),
    message: c"librealer could not read the last error".as_ptr(),
    request_id: c"".as_ptr(),
    details_json: c"".as_ptr(),
    retryable: false,
    retry_after_ms: -1,
});

thread_local! {
    static LAST_ERROR: RefCell<Box<LastError>> = RefCell::new(Box::new(LastError::new(REALER_OK, None)));
}

/// Records `e` as the calling thread's last error.
pub(crate) fn set_last_error(e: &Error) {
    let new = LastError::new(status_of(e.kind), Some(e));
    // During thread teardown the slot may be gone; then there is nobody left to read it.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut b) = slot.try_borrow_mut() {
            **b = new;
        }
    });
}

/// The last failure on the calling thread: status, HTTP status, Realer's code and error type, message,
/// request id, details as JSON, whether it is retryable and the server's Retry-After. Read it right after
/// the call that failed: the next failing call on this thread overwrites it (successful calls leave it).
/// Before any failure, `status` is `REALER_OK` and the strings are empty. Never NULL; the pointer and its
/// strings stay valid until the next failing call on this thread. Never free it.
#[no_mangle]
pub extern "C" fn realer_last_error() -> *const realer_error {
    guard(&PANIC_FALLBACK.0, || {
        LAST_ERROR.with(|slot| {
            let b = slot.borrow();
            &b.c as *const realer_error
        })
    })
}
