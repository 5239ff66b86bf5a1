//! For the unit tests (`proptests`): counts, per thread, the heap a piece of code holds at its peak, through
//! the observer of the library's allocator (`wipe_alloc`, installed for the unit tests with or without the
//! `wipe-freed-memory` feature).

use std::cell::Cell;

use super::wipe_alloc::{self, HeapObserver};

// The memory rule, measured: heap bytes allocated and not yet freed by this thread since `measure` began.
// Per thread, so that tests running in parallel do not count each other's allocations. A `realloc` is an
// allocation of the new block, then the old one's release: both are counted while both are alive.

thread_local! {
    /// (measuring, bytes now, peak bytes), relative to the start of the measure.
    static HEAP: Cell<(bool, isize, isize)> = const { Cell::new((false, 0, 0)) };
}

fn track(delta: isize) {
    let _ = HEAP.try_with(|h| {
        let (on, now, peak) = h.get();
        if on {
            let now = now + delta;
            h.set((on, now, peak.max(now)));
        }
    });
}

static METER: HeapObserver =
    HeapObserver { allocated: |size| track(size as isize), freeing: |_, size| track(-(size as isize)) };

/// Runs `f` and returns what it gave with the peak heap it held (its result included, which is dropped
/// after the measure).
pub(crate) fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    wipe_alloc::observe(&METER);
    HEAP.with(|h| h.set((true, 0, 0)));
    let out = f();
    let (_, _, peak) = HEAP.with(|h| h.replace((false, 0, 0)));
    (out, peak.max(0) as usize)
}
