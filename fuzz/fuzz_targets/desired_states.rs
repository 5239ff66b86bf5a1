#![no_main]
//! A `/desired-states` answer, read and decided.
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: realer_fuzz::Counting = realer_fuzz::Counting;

fuzz_target!(|data: &[u8]| {
    realer_fuzz::within_memory_rule(data.len(), || realer::fuzzing::desired_states(data, 1_780_000_000_000));
});
