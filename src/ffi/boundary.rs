//! What every export shares, so that each body reads straight down (as rustls-ffi's do): the panic boundary
//! ([`call`], [`guard`]), arguments from C ([`ref_arg`], [`mut_arg`], [`out_arg`], [`str_arg`],
//! [`items_arg`]), results to C ([`Out`], [`write_str`], [`finish`]), owning boxes handed to C, and the
//! bodies the exports of one shape share ([`with_config`], [`with_client`], [`make_into`], and a list's
//! [`list_len`] and [`list_get`] through [`CList`]).

use std::ffi::{c_char, CStr, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::client::Client;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::ffi::client::realer_client;
use crate::ffi::config::realer_config;
use crate::ffi::error::{realer_status, set_last_error, status_of, REALER_ERR_INTERNAL, REALER_OK};

/// Runs an export's body, catching any panic: the panic becomes `REALER_ERR_INTERNAL` in the last error and
/// the export returns `fallback` (NULL, 0, nothing). Unwinding into C would be undefined behaviour. For the
/// exports that return something other than a status; those that return one use [`call`].
pub(crate) fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(_) => {
            set_last_error(&Error::internal(
                "a panic inside librealer was caught at the C boundary (a bug: please report it)",
            ));
            fallback
        }
    }
}

/// Runs the body of an export that returns a status, behind the panic boundary: `Ok` is `REALER_OK`, an
/// error becomes the thread's last error and its status. Bodies use `?` on every argument and core call.
pub(crate) fn call(body: impl FnOnce() -> Result<()>) -> realer_status {
    guard(REALER_ERR_INTERNAL, || status(body()))
}

/// Ends a body whose outputs are written whatever happened (a feed result, a batch, a flush report): the
/// error the core reported, if any, becomes the call's status.
pub(crate) fn finish(error: Option<Error>) -> Result<()> {
    error.map_or(Ok(()), Err)
}

/// The body of a `realer_config_*` setter: `config` must not be NULL; `f` changes its settings.
///
/// # Safety
/// `config` is NULL or a live, unaliased handle from `realer_config_new`.
pub(crate) unsafe fn with_config(
    config: *mut realer_config,
    f: impl FnOnce(&mut Config) -> Result<()>,
) -> realer_status {
    call(|| {
        // SAFETY: forwarded from the caller.
        let config = unsafe { mut_arg(config, "config") }?;
        f(&mut config.inner)
    })
}

/// The body of an export that acts on a client: `client` must not be NULL; `f` is the call.
///
/// # Safety
/// `client` is NULL or a live handle from `realer_client_new`.
pub(crate) unsafe fn with_client(client: *const realer_client, f: impl FnOnce(&Client) -> Result<()>) -> realer_status {
    call(|| {
        // SAFETY: forwarded from the caller.
        let client = unsafe { ref_arg(client, "client") }?;
        f(&client.inner)
    })
}

/// The body of an export that makes an object from `from` (named `what` in errors: a client, a
/// configuration) and hands it to C in `*out`, written only on success.
///
/// # Safety
/// `from` is NULL or live; `out` is NULL or writable.
pub(crate) unsafe fn make_into<F, T>(
    from: *const F,
    what: &str,
    out: *mut *mut T,
    make: impl FnOnce(&F) -> Result<T>,
) -> realer_status {
    call(|| {
        // SAFETY: forwarded from the caller.
        let (from, mut out) = unsafe { (ref_arg(from, what)?, out_arg(out, "out")?) };
        out.write(into_raw(make(from)?));
        Ok(())
    })
}

/// A list handed to C, read with `_len` and `_get`: its length, and item `index` as the C struct `_get`
/// fills (its strings pointing into the list).
pub(crate) trait CList {
    /// The C struct of one item.
    type Item;
    /// The list's name in a message ("commands"), and the argument's name in `_get` ("list").
    const WHAT: &'static str;
    const ARG: &'static str = "list";
    fn len(&self) -> usize;
    fn item(&self, index: usize) -> Option<Self::Item>;
}

/// The body of a list's `_len`: 0 for NULL.
///
/// # Safety
/// `list` is NULL or live.
pub(crate) unsafe fn list_len<L: CList>(list: *const L) -> usize {
    // SAFETY: forwarded from the caller.
    guard(0, || unsafe { list.as_ref() }.map_or(0, L::len))
}

/// The body of a list's `_get`: fills `*out` with item `index`. `REALER_ERR_INVALID_ARGUMENT`: `list` or
/// `out` NULL, or `index` past the end (`*out` unchanged).
///
/// # Safety
/// `list` is NULL or live; `out` is NULL or writable.
pub(crate) unsafe fn list_get<L: CList>(list: *const L, index: usize, out: *mut L::Item) -> realer_status {
    call(|| {
        // SAFETY: forwarded from the caller.
        let (list, mut out) = unsafe { (ref_arg(list, L::ARG)?, out_arg(out, "out")?) };
        let item = list.item(index).ok_or_else(|| past_the_end(index, list.len(), L::WHAT))?;
        out.write(item);
        Ok(())
    })
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

/// Where an export writes a result for the caller: a pointer to caller memory, checked non-NULL.
pub(crate) struct Out<'a, T> {
    ptr: NonNull<T>,
    _caller: PhantomData<&'a mut T>,
}

impl<T> Out<'_, T> {
    /// Writes `value` without reading or dropping what was there (the caller's memory may be uninitialised).
    pub(crate) fn write(&mut self, value: T) {
        // SAFETY: `out_arg` checked the pointer non-NULL, and its caller promised it writable for `'a`.
        unsafe { self.ptr.as_ptr().write(value) }
    }
}

/// An out argument: NULL is an invalid argument naming `what`.
///
/// # Safety
/// `p` is NULL or writable for a `T` during `'a`.
pub(crate) unsafe fn out_arg<'a, T>(p: *mut T, what: &str) -> Result<Out<'a, T>> {
    let ptr = NonNull::new(p).ok_or_else(|| Error::invalid(format!("{what} is NULL")))?;
    Ok(Out { ptr, _caller: PhantomData })
}

/// An optional out argument: NULL when the caller does not want that result.
///
/// # Safety
/// `p` is NULL or writable for a `T` during `'a`.
pub(crate) unsafe fn opt_out_arg<'a, T>(p: *mut T) -> Option<Out<'a, T>> {
    NonNull::new(p).map(|ptr| Out { ptr, _caller: PhantomData })
}

/// An array argument of `count` items, 1 to `max`: NULL or a count out of range is an invalid argument.
///
/// # Safety
/// `p` is NULL or points to `count` readable items that outlive `'a`.
pub(crate) unsafe fn items_arg<'a, T>(p: *const T, count: usize, max: usize, what: &str) -> Result<&'a [T]> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    if count == 0 || count > max {
        return Err(Error::invalid(format!("count {count} is not between 1 and {max}")));
    }
    // SAFETY: non-NULL, and the caller promises `count` readable items.
    Ok(unsafe { std::slice::from_raw_parts(p, count) })
}

/// A byte buffer argument of `len` bytes: NULL, or a length no object can have, is an invalid argument.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn bytes_arg<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    if len > isize::MAX as usize {
        return Err(Error::invalid(format!("the length of {what} is out of range")));
    }
    // SAFETY: non-NULL, and the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The error of a list's `_get` for an index past its end.
pub(crate) fn past_the_end(index: usize, len: usize, what: &str) -> Error {
    Error::invalid(format!("index {index} is past the end of the {what} list ({len} items)"))
}

/// A C string of a list for a field of a C struct: NULL when absent.
pub(crate) fn c_ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

/// Writes `text` and its NUL into the caller's buffer `buf` of `len` bytes, whole or not at all:
/// `REALER_ERR_BUFFER_TOO_SMALL` names the size needed. NULL is an invalid argument naming `what`.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
pub(crate) unsafe fn write_str(buf: *mut c_char, len: usize, text: &str, what: &str) -> Result<()> {
    if buf.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    let need = text.len() + 1;
    if len < need {
        return Err(Error::new(ErrorKind::BufferTooSmall, format!("{what} needs {need} bytes, its length is {len}")));
    }
    // SAFETY: non-NULL, and the caller promises `len` >= `need` writable bytes.
    let dst = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), need) };
    dst[..text.len()].copy_from_slice(text.as_bytes());
    dst[text.len()] = 0;
    Ok(())
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

/// A C copy of a Rust string. A C string cannot hold a NUL byte, and a JSON string from the server may
/// (`\u0000`): each one becomes U+FFFD, so the text is never cut short at it.
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
