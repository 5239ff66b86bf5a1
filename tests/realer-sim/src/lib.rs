//! realer-sim: Realer's iot/v1 device API (OAuth, catalog, feed data) served over HTTPS on loopback, with
//! fault injection, for the `realer` crate's tests, benchmarks and demo. See README.md.

mod admin;
mod api;
mod budget;
pub mod builtin;
mod catalog;
pub mod encoding;
mod faults;
mod feed;
mod fixture;
mod http;
pub mod netkit;
mod oauth;
mod routes;
mod server;
mod state;
mod stats;
pub mod time;
mod tls;
mod values;

pub use faults::{Fault, PageBody, Target};
pub use fixture::{Fixture, FixtureCommand, FixtureDesired, FixtureDevice, FixtureSensor, Id, ItemError, BUILTIN_JSON};
pub use server::{Sim, SimOptions};
pub use state::{Flavour, Labels, LogEntry, Record, Settings};
pub use stats::{SecondStats, Stats};
