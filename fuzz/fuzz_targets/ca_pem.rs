#![no_main]
//! CA certificates in PEM (`realer_config_set_ca_pem`, `realer_config_set_ca_file`).
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: realer_fuzz::Counting = realer_fuzz::Counting;

fuzz_target!(|data: &[u8]| {
    realer_fuzz::within_memory_rule(data.len(), || realer::fuzzing::ca_pem(data));
});
