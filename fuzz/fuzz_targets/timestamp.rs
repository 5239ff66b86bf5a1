#![no_main]
//! An RFC 3339 timestamp (`expires_at`, `renew_after`, a caller's `value_received_at`): parsed, formatted back
//! when it parses, and normalised to Realer's form.
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: realer_fuzz::Counting = realer_fuzz::Counting;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    realer_fuzz::within_memory_rule(data.len(), || realer::fuzzing::timestamp(text));
});
