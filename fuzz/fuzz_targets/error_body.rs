#![no_main]
//! An error answer: two bytes of HTTP status, a JSON-label flag, then the body.
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: realer_fuzz::Counting = realer_fuzz::Counting;

fuzz_target!(|data: &[u8]| {
    let Some((status, is_json, body)) = realer_fuzz::status_flag_body(data) else { return };
    realer_fuzz::within_memory_rule(body.len(), || realer::fuzzing::error_body(status, is_json, body));
});
