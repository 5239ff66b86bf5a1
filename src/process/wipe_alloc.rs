//! The process's Rust allocator with the `wipe-freed-memory` feature (part of `capi`): every heap block is
//! wiped before it is freed, so that no freed block keeps a secret for a core dump or a later heap read to find.
//! The library wipes its own buffers anyway (zeroize); this also covers the buffers of its dependencies that
//! it cannot reach, chiefly rustls's plaintext of received records (the token answer among them).
//!
//! In the C library (`librealer.so`, `librealer.a`) it is the allocator of the library's Rust code only; the
//! program's own `malloc` is untouched. A Rust program depending on `realer` has its own allocator unless it
//! turns the feature on (then it may have no `#[global_allocator]` of its own).
//!
//! `realloc` never lets the C allocator move a block: it allocates the new block, copies, and wipes and frees
//! the old one (glibc would otherwise free or `mremap` the old block unwiped).
//!
//! For the tests (`realer::test_hooks`, with the `test-hooks` feature): an observer that sees every allocation and
//! every block just before it is wiped and freed (the unit tests' heap measure, the integration tests' scans), and a
//! switch that turns the wipe off (the control of the test that searches memory for secrets).

use std::alloc::{GlobalAlloc, Layout, System};
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use zeroize::Zeroize;

/// An allocator that forwards to the system's and wipes every block before freeing it (while wiping is on).
pub struct WipeOnFree;

/// What the tests watch. Both functions run inside the allocator: they must not allocate.
pub struct HeapObserver {
    /// A block of this many bytes was allocated.
    pub allocated: fn(usize),
    /// This block (address, size) is about to be wiped and freed; it may be read until the call returns.
    pub freeing: fn(*const u8, usize),
}

/// Whether blocks are wiped: on with the feature. Off, [`WipeOnFree`] only calls the observer (the unit tests
/// without the feature; an integration test that installs it itself).
static WIPING: AtomicBool = AtomicBool::new(cfg!(feature = "wipe-freed-memory"));
static OBSERVER: AtomicPtr<HeapObserver> = AtomicPtr::new(ptr::null_mut());

#[cfg(any(test, feature = "test-hooks"))]
/// Installs `observer` (replacing any other). For the tests.
pub fn observe(observer: &'static HeapObserver) {
    OBSERVER.store(ptr::from_ref(observer).cast_mut(), Ordering::SeqCst);
}

#[cfg(any(test, feature = "test-hooks"))]
/// Turns wiping on or off for the whole process. For the tests (the control of a search for secrets).
pub fn set_wiping(on: bool) {
    WIPING.store(on, Ordering::SeqCst);
}

#[cfg(any(test, feature = "test-hooks"))]
/// Whether [`WipeOnFree`] wipes freed blocks now: with the feature, unless switched off.
pub fn wiping() -> bool {
    WIPING.load(Ordering::Relaxed)
}

fn observer() -> Option<&'static HeapObserver> {
    // SAFETY: only `observe` stores here, and only `&'static` references.
    unsafe { OBSERVER.load(Ordering::Acquire).as_ref() }
}

fn allocated(p: *mut u8, size: usize) -> *mut u8 {
    if !p.is_null() {
        if let Some(o) = observer() {
            (o.allocated)(size);
        }
    }
    p
}

// SAFETY: every block comes from the system allocator and goes back to it with the layout it was allocated
// with; the wipe writes only within the block, before it is freed; `realloc` keeps the contract of
// `GlobalAlloc::realloc` (the old block stays valid when the new one cannot be allocated).
unsafe impl GlobalAlloc for WipeOnFree {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocated(unsafe { System.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        allocated(unsafe { System.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if let Some(o) = observer() {
            (o.freeing)(p, layout.size());
        }
        if WIPING.load(Ordering::Relaxed) {
            // SAFETY: the block is allocated, `layout.size()` bytes long and ours until freed; its bytes may
            // be uninitialised, hence `MaybeUninit`. zeroize's writes are not removed by the compiler, even
            // though the block is freed right after.
            unsafe { std::slice::from_raw_parts_mut(p.cast::<MaybeUninit<u8>>(), layout.size()) }.zeroize();
        }
        unsafe { System.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !WIPING.load(Ordering::Relaxed) && observer().is_none() {
            return unsafe { System.realloc(p, layout, new_size) };
        }
        // SAFETY: the caller guarantees that `new_size`, rounded up to `layout.align()`, does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            // SAFETY: two distinct live blocks, each at least this long.
            unsafe { ptr::copy_nonoverlapping(p, q, layout.size().min(new_size)) };
            unsafe { self.dealloc(p, layout) };
        }
        q
    }
}

#[cfg(any(test, feature = "wipe-freed-memory"))]
#[global_allocator]
static ALLOCATOR: WipeOnFree = WipeOnFree;
