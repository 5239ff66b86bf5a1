//! The C ABI (the `capi` feature): the only place with `extern "C"` and raw pointers. It validates and
//! converts arguments, calls the safe core, and maps results to `realer_status` and the thread's last error.
//! No rule of Realer's API lives here, nor process-wide machinery (the allocator, the fork hook: `process`).
#![allow(non_camel_case_types)]

#[macro_use]
mod boundary;
pub mod catalog;
pub mod client;
pub mod config;
pub mod desired;
pub mod error;
pub mod feed;
pub mod outbox;
pub mod version;

pub(crate) use boundary::*;
