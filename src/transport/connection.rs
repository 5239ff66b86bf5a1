//! Every connection the agent makes goes through [`GuardingConnector`], which wraps it in a
//! [`GuardedConnection`]: secrets wiped from its buffers, never reused across a fork, and fewer system calls
//! per kept-alive request; [`SteadyTimeouts`], under TLS, keeps the socket timeouts steady.

use std::time::{Duration, Instant};

use ureq::unversioned::transport::time::Duration as UreqDuration;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport as UreqTransport};
use zeroize::Zeroize;

use crate::process::Owner;

/// A connection with I/O this recent is taken to be open without probing it.
const FRESH: Duration = Duration::from_secs(1);

/// Wraps ureq's TLS transport (or, for a loopback test server, its TCP transport). It sees every byte of
/// plaintext and every connection's end, so it also:
/// - wipes the connection's plaintext buffers (the request heads with their `Authorization` header, the
///   answers with their tokens) and its own copy of a head when the connection is dropped;
/// - refuses to hand a connection made by another process to this one: after `fork()` the child shares the
///   parent's sockets and TLS state, and a record the child sent would break the parent's session (and the
///   child's answer would go to whichever reads first). The child drops such a connection when it comes out
///   of the pool: its copy of the socket is closed, nothing is written (no TLS close_notify, no shutdown),
///   so the parent's connection is untouched.
///
/// It also saves system calls on kept-alive requests; half of the syscalls of a small request were these:
/// - ureq probes a pooled connection when it returns to the pool and again when it is taken (two ioctls and
///   a read that would block, each time). A connection used within the last second is taken to be open: a
///   connection idle longer is still probed, so a server's idle close is still seen; one that closes faster
///   fails the request, which the client then sends again at once on a new connection (with the same
///   `message_id`), once per call, outside the retry count.
/// - ureq transmits the request head and the body separately: two TLS records and two sendto calls for
///   one small request. The head is held back and goes out with the body, or before the first read.
#[derive(Debug)]
pub(super) struct GuardingConnector;

#[derive(Debug)]
pub(super) struct GuardedConnection<T: UreqTransport> {
    inner: T,
    last_io: Instant,
    /// The request head, transmitted to us but not yet to the peer. Wiped, not just cleared: it holds the
    /// `Authorization` header.
    held: Vec<u8>,
    /// The next output is a request head.
    head_next: bool,
    /// The process that made the connection.
    owner: Owner,
}

/// Socket timeouts are whole multiples of this (see [`SteadyTimeouts`]).
const TIMEOUT_STEP: Duration = Duration::from_millis(100);

/// Sits right above the TCP transport (below TLS) and rounds each read's and write's timeout down to a
/// multiple of [`TIMEOUT_STEP`], so that the socket timeouts stay the same from one request to the next: a
/// read may still wait until the call's deadline, less at most one step. It must sit there, not above TLS:
/// ureq's TLS adapter hands the TCP transport the time left of what it was given (less the microseconds
/// since), so a timeout rounded above it reaches the socket unrounded, different each time, and every
/// request costs two setsockopt calls (SO_SNDTIMEO, SO_RCVTIMEO) more.
#[derive(Debug)]
pub(super) struct SteadyTimeouts;

#[derive(Debug)]
pub(super) struct SteadyTransport<T: UreqTransport>(T);

impl<In: UreqTransport> Connector<In> for SteadyTimeouts {
    type Out = SteadyTransport<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(SteadyTransport))
    }
}

impl<T: UreqTransport> UreqTransport for SteadyTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.0.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> std::result::Result<(), ureq::Error> {
        self.0.transmit_output(amount, steady(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        self.0.await_input(steady(timeout))
    }

    fn is_open(&mut self) -> bool {
        self.0.is_open()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
}

/// `timeout`, rounded down to a whole number of [`TIMEOUT_STEP`]s when it is longer than one step.
fn steady(mut timeout: NextTimeout) -> NextTimeout {
    if let UreqDuration::Exact(after) = timeout.after {
        let steps = after.as_nanos() / TIMEOUT_STEP.as_nanos();
        if steps >= 2 {
            // At most u32::MAX steps: longer than any configured timeout.
            timeout.after = UreqDuration::Exact(TIMEOUT_STEP * u32::try_from(steps).unwrap_or(u32::MAX));
        }
    }
    timeout
}

impl<T: UreqTransport> GuardedConnection<T> {
    fn release_held(&mut self, timeout: NextTimeout) -> std::result::Result<(), ureq::Error> {
        if self.held.is_empty() {
            return Ok(());
        }
        let n = self.held.len();
        self.inner.buffers().output()[..n].copy_from_slice(&self.held);
        self.held.zeroize();
        self.inner.transmit_output(n, timeout)
    }
}

impl<T: UreqTransport> Drop for GuardedConnection<T> {
    fn drop(&mut self) {
        self.held.zeroize();
        let buffers = self.inner.buffers();
        buffers.output().zeroize();
        // Consumed input is still in the buffer; once everything is consumed, the free part is all of it.
        let unread = buffers.input().len();
        buffers.input_consume(unread);
        buffers.input_append_buf().zeroize();
    }
}

impl<T: UreqTransport> UreqTransport for GuardedConnection<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> std::result::Result<(), ureq::Error> {
        self.last_io = Instant::now();
        if self.head_next {
            // A request's first output is its head: hold it; its body, or the first read, follows.
            self.head_next = false;
            // Wiped first, so that growing it leaves no earlier head behind.
            self.held.zeroize();
            self.held.extend_from_slice(&self.inner.buffers().output()[..amount]);
            return Ok(());
        }
        if self.held.is_empty() {
            return self.inner.transmit_output(amount, timeout);
        }
        let held = self.held.len();
        let output = self.inner.buffers().output();
        if held + amount <= output.len() {
            // Both in one transmit: move this output up and put the head before it.
            output.copy_within(..amount, held);
            output[..held].copy_from_slice(&self.held);
            self.held.zeroize();
            return self.inner.transmit_output(held + amount, timeout);
        }
        // No room for both: the head goes first, through the same buffer, so keep this output aside.
        let body = output[..amount].to_vec();
        self.release_held(timeout)?;
        self.inner.buffers().output()[..amount].copy_from_slice(&body);
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        self.release_held(timeout)?;
        let r = self.inner.await_input(timeout);
        self.last_io = Instant::now();
        // Whatever is transmitted after a read starts the next request.
        self.head_next = true;
        r
    }

    fn is_open(&mut self) -> bool {
        self.owner.is_this_process() && self.held.is_empty() && (self.last_io.elapsed() < FRESH || self.inner.is_open())
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

impl<In: UreqTransport> Connector<In> for GuardingConnector {
    type Out = GuardedConnection<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| GuardedConnection {
            inner,
            last_io: Instant::now(),
            held: Vec::new(),
            head_next: true,
            owner: Owner::now(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_timeouts_are_whole_steps_below_what_is_left() {
        let t = |ms: u64| NextTimeout { after: UreqDuration::Exact(Duration::from_millis(ms)), ..Default::default() };
        let after = |t: NextTimeout| *t.after;
        assert_eq!(after(steady(t(29_987))), Duration::from_millis(29_900));
        assert_eq!(after(steady(t(29_912))), Duration::from_millis(29_900), "the same value request after request");
        assert_eq!(after(steady(t(200))), Duration::from_millis(200));
        assert_eq!(after(steady(t(199))), Duration::from_millis(199), "below two steps: as it is");
        assert_eq!(after(steady(t(5))), Duration::from_millis(5));
        assert_eq!(after(steady(t(0))), Duration::ZERO);
        let never = NextTimeout::default();
        assert_eq!(steady(never).after, UreqDuration::NotHappening);
    }
}
