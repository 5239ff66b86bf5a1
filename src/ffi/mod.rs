//! The C ABI: the only place with `extern "C"`, raw pointers and `unsafe`. It validates and converts
//! arguments, calls the safe core, and maps results to `realer_status` and the thread's last error. No rule
//! of Realer's API lives here.
#![allow(non_camel_case_types)]

#[macro_use]
mod boundary;
pub mod catalog;
pub mod client;
pub mod config;
pub mod desired;
pub mod error;
pub mod feed;
#[cfg(test)]
pub(crate) mod heap_meter;
pub mod outbox;
pub mod version;
pub mod wipe_alloc;

pub(crate) use boundary::*;
