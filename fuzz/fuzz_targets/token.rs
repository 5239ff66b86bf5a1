#![no_main]
//! The token answer (OAuth): the first byte says whether it is labelled JSON.
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: realer_fuzz::Counting = realer_fuzz::Counting;

fuzz_target!(|data: &[u8]| {
    let Some((&flag, body)) = data.split_first() else { return };
    realer_fuzz::within_memory_rule(body.len(), || realer::fuzzing::token(flag & 1 == 1, body, 1_780_000_000_000));
});
