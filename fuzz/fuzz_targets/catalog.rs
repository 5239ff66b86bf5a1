#![no_main]
//! A catalog answer: the first byte chooses commands or sensors.
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: realer_fuzz::Counting = realer_fuzz::Counting;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    realer_fuzz::within_memory_rule(body.len(), || {
        if which & 1 == 0 {
            realer::fuzzing::commands(body)
        } else {
            realer::fuzzing::sensors(body)
        }
    });
});
