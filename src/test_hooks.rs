//! What the integration tests reach inside the library, which is not an API: the observer of the allocator
//! that wipes freed blocks (tests/memory.rs counts the heap with it, tests/zeroize.rs scans freed blocks for
//! secrets), the switch that turns the wipe off (the control of that scan), and how long an outage lasts
//! before flushes are paced (tests/outbox.rs lowers it from 15 s on its own thread). Compiled only with the
//! `test-hooks` feature, hidden from the documentation.

pub use crate::pacing::set_long_offline_on_this_thread;
pub use crate::process::wipe_alloc::{observe, set_wiping, wiping, HeapObserver, WipeOnFree};
