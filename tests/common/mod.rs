//! Shared by the integration tests: a fresh realer-sim per test, and a client configured for it.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

use realer::{Client, Config};
pub use realer_sim::{builtin, Fault, Sim, SimOptions, Target};

pub fn sim() -> Sim {
    sim_with(SimOptions::default())
}

pub fn sim_with(opts: SimOptions) -> Sim {
    Sim::start(SimOptions { quiet: true, ..opts }).expect("realer-sim starts")
}

/// A configuration for the built-in demo device of `sim`, with short backoff so retries are quick.
pub fn config(sim: &Sim) -> Config {
    let mut c = Config::new();
    c.set_base_url(&sim.base_url()).unwrap();
    c.set_ca_pem(sim.ca_pem().as_bytes()).unwrap();
    c.set_device_id(builtin::DEVICE_ID).unwrap();
    c.set_credentials(builtin::CLIENT_ID, builtin::CLIENT_SECRET).unwrap();
    c.set_timeouts(Duration::from_secs(5), Duration::from_secs(10)).unwrap();
    c.set_retry(5, Duration::from_millis(20), Duration::from_millis(200)).unwrap();
    c
}

pub fn client(sim: &Sim) -> Client {
    Client::new(&config(sim)).unwrap()
}
