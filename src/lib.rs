//! librealer: a client for Realer's HTTPS device API (iot/v1), with a safe Rust core and a C ABI in `ffi`.

// `Error` carries everything Realer said (type, message, request id, details); it travels only on the
// failure path, where moving ~150 bytes costs nothing next to the network round trip it describes.
#![allow(clippy::result_large_err)]
// Only the C boundary may hold code the compiler cannot check (`unsafe_code` denied, allowed on `ffi`).
#![deny(unsafe_code)]

mod auth;
mod cancel;
pub mod catalog;
pub mod client;
mod codes;
pub mod config;
mod config_file;
pub mod desired;
pub mod error;
pub mod feed;
// Every item of the C header is documented: cbindgen copies these docs into it.
#[allow(unsafe_code)]
#[deny(missing_docs)]
pub mod ffi;
mod json;
mod limits;
pub mod log;
pub mod outbox;
mod pacing;
mod random;
mod records;
mod retry;
pub mod time;
mod transport;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod proptests;

pub use auth::TokenInfo;
pub use catalog::{values_equal, Command, CommandRef, Commands, ItemError, ItemErrorRef, Sensor, SensorRef, Sensors};
pub use client::{BatchReport, Client, DesiredStatesFallback};
pub use config::{Config, Keepalive, Proxy, RetryPolicy};
pub use desired::{DesiredAction, DesiredSource, DesiredState, DesiredStateRef, DesiredStates, StateList};
pub use error::{Error, ErrorKind, Result};
pub use feed::{FeedItem, FeedOutcome, FeedResult, ReportStatus};
pub use log::{Level, Logger};
pub use outbox::{DeadLetter, FlushReport, FullPolicy, OutboxStats, PendingItem};
