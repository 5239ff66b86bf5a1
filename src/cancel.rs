//! Cancelling a client's calls from another thread: a firmware shutdown must not wait on the network. A flag
//! every call checks before each step, a wait for backoff that the flag cuts short, and (in the transport)
//! the shutdown of every connection in use, which makes a blocked read or write return at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Default)]
pub(crate) struct Cancel {
    set: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

/// The error of a cancelled call. Retryable: the same call succeeds after `resume`, with the same
/// `message_id`.
pub(crate) fn cancelled() -> Error {
    let mut e = Error::new(
        ErrorKind::Cancelled,
        "the call was cancelled (realer_client_cancel); nothing was lost: call again after realer_client_resume",
    );
    e.retryable = true;
    e
}

impl Cancel {
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Sets the flag and wakes every wait. Takes a lock briefly: not for a signal handler.
    pub(crate) fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.wake.notify_all();
    }

    pub(crate) fn clear(&self) {
        self.set.store(false, Ordering::SeqCst);
    }

    /// `Err(cancelled)` once the flag is set.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_set() {
            Err(cancelled())
        } else {
            Ok(())
        }
    }

    /// Waits `delay`, or until the flag is set (then `Err(cancelled)`).
    pub(crate) fn sleep(&self, delay: Duration) -> Result<()> {
        let until = Instant::now() + delay;
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            self.check()?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            guard = self.wake.wait_timeout(guard, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_wait_ends_when_the_flag_is_set() {
        let c = Arc::new(Cancel::default());
        assert!(c.sleep(Duration::from_millis(5)).is_ok());
        let c2 = Arc::clone(&c);
        let started = Instant::now();
        let t = std::thread::spawn(move || c2.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        c.set();
        let e = t.join().unwrap().unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::Cancelled, true));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(c.check().is_err() && c.sleep(Duration::ZERO).is_err());
        c.clear();
        assert!(c.check().is_ok());
    }
}
