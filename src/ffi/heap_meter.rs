//! For the unit tests (`proptests`): a global allocator that counts, per thread, the heap a piece of code
//! holds at its peak. Here because it is unsafe code (a `GlobalAlloc`), and `ffi` is where unsafe code lives.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

// The memory rule, measured: heap bytes allocated and not yet freed by this thread since `measure` began.
// Per thread, so that tests running in parallel do not count each other's allocations.

struct PerThread;

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

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        track(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            // Both blocks may be alive during a move: count the new one before the old one goes.
            track(new_size as isize);
            track(-(layout.size() as isize));
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: PerThread = PerThread;

/// Runs `f` and returns what it gave with the peak heap it held (its result included, which is dropped
/// after the measure).
pub(crate) fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    HEAP.with(|h| h.set((true, 0, 0)));
    let out = f();
    let (_, _, peak) = HEAP.with(|h| h.replace((false, 0, 0)));
    (out, peak.max(0) as usize)
}
