//! librealer: a client for Realer's HTTPS device API (iot/v1): [`Config`], [`Client`] and the items they
//! carry. The C library (`librealer.so`, `librealer.a`, include/realer.h) is built from this crate with the
//! `capi` feature; without it this is a plain Rust library: no global allocator, no C exports, and the `log`
//! crate's output of ureq and rustls left as the program sets it.

// `Error` carries everything Realer said (type, message, request id, details); it travels only on the
// failure path, where moving ~150 bytes costs nothing next to the network round trip it describes.
#![allow(clippy::result_large_err)]
// Only the C boundary and the process-wide machinery may hold code the compiler cannot check (`unsafe_code`
// denied, allowed on `ffi` and `process`).
#![deny(unsafe_code)]
// Every public item of the core is documented (the C ABI's are, for the header: `deny` on `ffi`).
#![warn(missing_docs)]
// Some of the core's crate-private helpers serve only the C boundary (views of the compact lists, batches of
// items as C hands them over): a build without `capi` leaves them unused. Dead code is still found in the
// builds with `capi`, which `cargo clippy --workspace --all-targets` checks.
#![cfg_attr(not(feature = "capi"), allow(dead_code))]

mod auth;
mod cancel;
pub mod catalog;
pub mod client;
mod codes;
pub mod config;
pub mod desired;
pub mod error;
pub mod feed;
// The C ABI, with `capi` only, and not a Rust API: hidden from the Rust documentation; its documentation is
// the header's (cbindgen copies these docs into it, hence every item documented). Hidden only when rustdoc
// runs (`doc`): `doc(hidden)` would also silence `missing_docs`.
#[cfg(feature = "capi")]
#[cfg_attr(doc, doc(hidden))]
#[allow(unsafe_code)]
#[deny(missing_docs)]
pub mod ffi;
mod json;
mod limits;
pub mod log;
pub mod outbox;
mod pacing;
#[allow(unsafe_code)]
mod process;
mod random;
mod records;
mod retry;
pub mod time;
mod transport;

#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod proptests;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod test_hooks;

pub use auth::TokenInfo;
pub use catalog::{values_equal, Command, CommandRef, Commands, ItemError, ItemErrorRef, Sensor, SensorRef, Sensors};
pub use client::{BatchReport, Client, DesiredStatesFallback};
pub use config::{Config, Keepalive, Proxy, RetryPolicy};
pub use desired::{DesiredAction, DesiredSource, DesiredState, DesiredStateRef, DesiredStates, StateList};
pub use error::{Error, ErrorKind, Result};
pub use feed::{FeedItem, FeedOutcome, FeedResult, ReportStatus};
pub use log::{Level, Logger};
pub use outbox::{DeadLetter, FlushReport, FullPolicy, OutboxStats, PendingItem};
