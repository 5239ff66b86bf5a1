//! The library's version, for a binary to check which one it runs against.

use std::ffi::c_char;

/// The library version as a static NUL-terminated string, such as "0.2.0". Compare with the
/// `REALER_VERSION_*` macros of the header the program was built with. Never NULL; never free it.
#[no_mangle]
pub extern "C" fn realer_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
