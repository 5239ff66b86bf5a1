#![no_main]
//! A batch answer: two bytes of HTTP status, a byte for how many items were sent (0 to 7), then the body.
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: realer_fuzz::Counting = realer_fuzz::Counting;

fuzz_target!(|data: &[u8]| {
    let Some((status, _, body)) = realer_fuzz::status_flag_body(data) else { return };
    let sent = usize::from(data[2] >> 1 & 7);
    realer_fuzz::within_memory_rule(body.len(), || realer::fuzzing::batch(status, sent, body));
});
