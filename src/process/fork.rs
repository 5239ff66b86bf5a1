//! Which process made a thing: after `fork()` the child inherits the parent's sockets, TLS sessions and SQLite
//! connections, and must not use them (a record the child sent would break the parent's session; SQLite's
//! locks belong to the parent). An [`Owner`] records the process when the thing is made and tells later whether
//! the caller is still that process.
//!
//! A `pthread_atfork` child handler, installed the first time an owner is recorded, counts the forks made with
//! `fork()`: an owner is then told by an atomic load, without a getpid system call (two per request: a pooled
//! connection is checked when it is taken and when it returns).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

/// Forks counted by the pthread_atfork child handler, once it is installed (see [`count_fork`]).
static FORKS: AtomicU64 = AtomicU64::new(0);
static FORKS_COUNTED: AtomicBool = AtomicBool::new(false);

/// The pthread_atfork child handler's work, which runs in the child before fork() returns there: one atomic
/// add, async-signal-safe as such a handler must be.
fn count_fork() {
    FORKS.fetch_add(1, Ordering::SeqCst);
}

/// Installs, once per process, the child handler that counts forks; from then on owners are counted.
fn count_forks() {
    static ONCE: Once = Once::new();
    extern "C" fn child() {
        count_fork();
    }
    ONCE.call_once(|| {
        // SAFETY: the handler only adds to an atomic counter, which is async-signal-safe as a handler run in
        // the child of a multi-threaded process must be; it is never unregistered (handlers cannot be).
        if unsafe { libc::pthread_atfork(None, None, Some(child)) } == 0 {
            forks_are_counted();
        }
    });
}

/// Says that [`count_fork`] runs in every child: owners recorded from now on are told by the count.
fn forks_are_counted() {
    FORKS_COUNTED.store(true, Ordering::SeqCst);
}

/// The process a thing belongs to (the one that made it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The fork count when it was made (the atfork handler was installed before).
    Counted(u64),
    /// The process id: where the handler could not be installed, or asked for ([`Owner::by_pid`]).
    Pid(u32),
}

impl Owner {
    /// This process.
    pub(crate) fn now() -> Owner {
        count_forks();
        Owner::recorded()
    }

    /// This process, told later by its process id (a system call each time), which no way of forking escapes:
    /// a child made by a raw `clone` or glibc's `_Fork` runs no atfork handler. For what a fork must never
    /// reach, however it was made, and is not checked per request: the outbox's SQLite connection.
    pub(crate) fn by_pid() -> Owner {
        Owner::Pid(std::process::id())
    }

    fn recorded() -> Owner {
        if FORKS_COUNTED.load(Ordering::SeqCst) {
            Owner::Counted(FORKS.load(Ordering::SeqCst))
        } else {
            Owner::Pid(std::process::id())
        }
    }

    /// Whether the caller runs in the process that made it (false in a child after `fork()`).
    pub(crate) fn is_this_process(self) -> bool {
        match self {
            Owner::Counted(forks) => forks == FORKS.load(Ordering::SeqCst),
            Owner::Pid(pid) => pid == std::process::id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thing_belongs_to_the_process_that_made_it() {
        let pid_owned = Owner::Pid(std::process::id());
        assert!(pid_owned.is_this_process());
        assert!(!Owner::Pid(std::process::id() + 1).is_this_process());
        let counted = Owner::now();
        assert!(matches!(counted, Owner::Counted(_)) && counted.is_this_process());
        // A simulated fork: nothing in these unit tests is made across it, so counting here disturbs nothing.
        count_fork();
        assert!(!counted.is_this_process(), "made before the (simulated) fork");
        assert!(Owner::now().is_this_process());
        assert!(pid_owned.is_this_process(), "a thing made before counting began still checks its pid");
        assert!(Owner::by_pid().is_this_process() && matches!(Owner::by_pid(), Owner::Pid(_)));
    }
}
