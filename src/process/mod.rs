//! Process-wide machinery, apart from the C conversion in `ffi`: the allocator that wipes freed blocks (with
//! the `wipe-freed-memory` feature, which `capi` turns on) and its observer for the tests, and the fork hook
//! that tells whether a connection or an outbox belongs to this process. The one other place besides `ffi`
//! where `unsafe` is allowed: a global allocator and `pthread_atfork` cannot be written without it.

mod fork;
#[cfg(test)]
pub(crate) mod heap_meter;
#[cfg(any(test, feature = "wipe-freed-memory", feature = "test-hooks"))]
pub(crate) mod wipe_alloc;

pub(crate) use fork::Owner;
