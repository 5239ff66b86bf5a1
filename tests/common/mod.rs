//! Shared by the integration tests: a fresh realer-sim per test, and a client configured for it.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

use std::ffi::CString;

use realer::ffi::config::*;
use realer::ffi::error::REALER_OK;
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

/// The demo device of the built-in fixture: its id, client id and client secret.
pub const DEMO_DEVICE: (&str, &str, &str) = (builtin::DEVICE_ID, builtin::CLIENT_ID, builtin::CLIENT_SECRET);

/// A C configuration for `device` (id, client id, secret) of `sim`: its URL and CA, nothing else. The caller
/// frees it, or hands it to `realer_client_new` and then frees it.
pub fn c_config(sim: &Sim, (device_id, client_id, secret): (&str, &str, &str)) -> *mut realer_config {
    let c = |v: &str| CString::new(v).unwrap();
    let pem = sim.ca_pem();
    // SAFETY: plain C API calls with live arguments.
    unsafe {
        let cfg = realer_config_new();
        assert_eq!(realer_config_set_base_url(cfg, c(&sim.base_url()).as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_ca_pem(cfg, pem.as_ptr(), pem.len()), REALER_OK);
        assert_eq!(realer_config_set_device_id(cfg, c(device_id).as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_credentials(cfg, c(client_id).as_ptr(), c(secret).as_ptr()), REALER_OK);
        cfg
    }
}
