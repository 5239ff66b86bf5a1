//! What every export shares: the panic boundary, C string conversion, and owning boxes handed to C.

use std::ffi::{c_char, CStr, CString};

use crate::error::{Error, Result};
use crate::ffi::error::{realer_status, set_last_error, status_of, REALER_OK};

/// Runs an export's body, catching any panic: the panic becomes `REALER_ERR_INTERNAL` in the last error and
/// the export returns `$fallback` (a status, NULL, 0). Unwinding into C would be undefined behaviour.
macro_rules! ffi_boundary {
    ($fallback:expr, $body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => {
                $crate::ffi::error::set_last_error(&$crate::error::Error::internal(
                    "a panic inside librealer was caught at the C boundary (a bug: please report it)",
                ));
                $fallback
            }
        }
    }};
}

/// Turns a core result into a status, recording a failure as the thread's last error.
pub(crate) fn status(r: Result<()>) -> realer_status {
    match r {
        Ok(()) => REALER_OK,
        Err(e) => {
            set_last_error(&e);
            status_of(e.kind)
        }
    }
}

/// A required C string argument as `&str`: NULL or non-UTF-8 is an invalid argument naming `what`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: impl std::fmt::Display) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises NUL termination.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

/// An optional C string argument: NULL is `None`.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, what: impl std::fmt::Display) -> Result<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { str_arg(p, what) }.map(Some)
    }
}

/// A shared reference from a C handle: NULL is an invalid argument naming `what`.
///
/// # Safety
/// `p` is NULL or a live pointer obtained from this library for type `T`.
pub(crate) unsafe fn ref_arg<'a, T>(p: *const T, what: &str) -> Result<&'a T> {
    // SAFETY: forwarded from the caller.
    unsafe { p.as_ref() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// A mutable reference from a C handle: NULL is an invalid argument naming `what`.
///
/// # Safety
/// `p` is NULL or a live, unaliased pointer obtained from this library for type `T`.
pub(crate) unsafe fn mut_arg<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T> {
    // SAFETY: forwarded from the caller.
    unsafe { p.as_mut() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// Hands an object to C; it comes back through [`free_box`].
pub(crate) fn into_raw<T>(v: T) -> *mut T {
    Box::into_raw(Box::new(v))
}

/// Frees what [`into_raw`] handed out; NULL is accepted.
///
/// # Safety
/// `p` is NULL or came from [`into_raw`] for `T` and was not freed before.
pub(crate) unsafe fn free_box<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: the caller promises `p` came from Box::into_raw and is freed once.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// A C copy of a Rust string; an interior NUL (impossible in the server's JSON strings after decoding only
/// in theory) becomes U+FFFD rather than truncating the text.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default())
}

/// Owns the C strings an object points into; their heap buffers do not move when the store grows.
#[derive(Default)]
pub(crate) struct Strings(Vec<CString>);

impl Strings {
    pub(crate) fn add(&mut self, s: &str) -> *const c_char {
        let c = c_string(s);
        let p = c.as_ptr();
        self.0.push(c);
        p
    }

    pub(crate) fn opt(&mut self, s: Option<&str>) -> *const c_char {
        s.map_or(std::ptr::null(), |s| self.add(s))
    }
}
