//! What every fuzz target shares: the memory rule (peak heap while reading an answer at most 4x
//! its size plus 1 MiB, the answer included), checked on every input by a counting allocator, and the way an
//! input's first bytes choose an HTTP status and flags.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

pub struct Counting;

static NOW: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(by: isize) {
    let now = NOW.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call goes to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        NOW.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            grew(new_size as isize);
            NOW.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        q
    }
}

/// Runs `f` on an answer of `len` bytes and panics (a crash for libFuzzer) when it breaks the memory rule.
pub fn within_memory_rule<T>(len: usize, f: impl FnOnce() -> T) -> T {
    let base = NOW.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let peak = (PEAK.load(Ordering::Relaxed) - base).max(0) as usize;
    let limit = 4 * len + 1024 * 1024;
    assert!(len + peak <= limit, "an answer of {len} bytes peaked at {} bytes (limit {limit})", len + peak);
    out
}

/// An input's leading bytes as an HTTP status and a flag, and the rest as the body.
pub fn status_flag_body(data: &[u8]) -> Option<(u16, bool, &[u8])> {
    let (head, body) = data.split_first_chunk::<3>()?;
    Some((u16::from_le_bytes([head[0], head[1]]) % 1000, head[2] & 1 == 1, body))
}
