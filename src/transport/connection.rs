//! Every connection the agent makes goes through [`GuardingConnector`], which wraps it in a
//! [`GuardedConnection`]: secrets wiped from its buffers, never reused across a fork, and fewer system calls
//! per kept-alive request; [`SteadyTimeouts`], under TLS, keeps the socket timeouts steady.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
///
/// And it watches reused connections for a stall: a request on a kept-alive connection that gets no byte of
/// answer (nor can give the socket a byte of itself) within the stall time fails at once as a network error,
/// which the client sends again on a new connection, instead of waiting out the whole request timeout on a
/// connection that a NAT or firewall on the path forgot (its packets are swallowed: no FIN, no RST). The
/// socket's own read and write timeouts carry the limit, so any byte on the socket counts (a piece of a TLS
/// record too), and a slow link that delivers a large answer a segment at a time never looks stalled.
#[derive(Debug)]
pub(super) struct GuardingConnector {
    /// Zero: reused connections are not watched.
    stall: Duration,
    /// Bumped by a stall: every connection made before it is then dropped rather than reused (they went
    /// through the same NAT, idle as long).
    stalls: Arc<AtomicU64>,
}

impl GuardingConnector {
    pub(super) fn new(stall: Duration) -> GuardingConnector {
        GuardingConnector { stall, stalls: Arc::default() }
    }
}

/// The slowest link the stall time allows for: a request's own bytes may take this long to leave before its
/// answer can start (20 kbit/s, a slow cellular link).
const SLOW_LINK_BYTES_PER_SEC: u64 = 2_500;

/// A reused connection that stalled, as an error ureq carries up to the transport.
fn stalled(waited: Duration, idle: Duration) -> ureq::Error {
    super::PathError::carry(crate::error::Error::new(
        crate::error::ErrorKind::Network,
        format!(
            "no byte of answer within {} ms on a connection reused after {} ms idle: it went silent (a NAT or \
             firewall on the path forgot it?)",
            waited.as_millis(),
            idle.as_millis()
        ),
    ))
}

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
    /// Request heads transmitted on this connection: from the second on, the connection is reused.
    requests: u32,
    /// The bytes of the request in progress (head and body).
    request_bytes: u64,
    /// A byte of the answer to the request in progress has come.
    answer_started: bool,
    /// How long the connection was idle before the request in progress.
    idle_before: Duration,
    stall: Duration,
    /// The stall count when the connection was made, and the shared count.
    stalls_seen: u64,
    stalls: Arc<AtomicU64>,
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

    /// How long the socket may go without a byte either way, for the request in progress on a reused
    /// connection: the stall time plus its own bytes at 20 kbit/s, rounded up to a whole socket-timeout step
    /// (so the socket timeouts stay the same from one request to the next of a similar size). `None` when
    /// not watched.
    fn stall_limit(&self) -> Option<Duration> {
        stall_limit(self.stall, self.requests, self.request_bytes)
    }

    /// `timeout` with the stall limit on each read (`per_read`) and write (`per_write`) of the socket.
    fn watched(&self, mut timeout: NextTimeout) -> (NextTimeout, Option<Duration>) {
        let limit = self.stall_limit();
        if let Some(limit) = limit {
            let limit = UreqDuration::Exact(limit);
            timeout.per_read = Some(timeout.per_read.map_or(limit, |t| t.min(limit)));
            timeout.per_write = Some(timeout.per_write.map_or(limit, |t| t.min(limit)));
        }
        (timeout, limit)
    }

    /// A socket timeout that the stall limit set becomes a stall (and every connection made before it goes).
    fn judge<R>(
        &self,
        r: std::result::Result<R, ureq::Error>,
        limit: Option<Duration>,
    ) -> std::result::Result<R, ureq::Error> {
        match (r, limit) {
            (Err(ureq::Error::Timeout(ureq::Timeout::PerRead | ureq::Timeout::PerWrite)), Some(limit)) => {
                self.stalls.fetch_add(1, Ordering::SeqCst);
                Err(stalled(limit, self.idle_before))
            }
            (r, _) => r,
        }
    }
}

/// See [`GuardedConnection::stall_limit`]: `requests` counts the request in progress.
fn stall_limit(stall: Duration, requests: u32, request_bytes: u64) -> Option<Duration> {
    if stall.is_zero() || requests < 2 {
        return None;
    }
    let transfer = Duration::from_millis(request_bytes.saturating_mul(1000) / SLOW_LINK_BYTES_PER_SEC);
    let limit = stall.saturating_add(transfer);
    let steps = limit.as_nanos().div_ceil(TIMEOUT_STEP.as_nanos());
    Some(TIMEOUT_STEP * u32::try_from(steps).unwrap_or(u32::MAX))
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
        if self.head_next {
            // A request's first output is its head: hold it; its body, or the first read, follows.
            self.head_next = false;
            self.requests = self.requests.saturating_add(1);
            self.request_bytes = amount as u64;
            self.answer_started = false;
            self.idle_before = self.last_io.elapsed();
            self.last_io = Instant::now();
            // Wiped first, so that growing it leaves no earlier head behind.
            self.held.zeroize();
            self.held.extend_from_slice(&self.inner.buffers().output()[..amount]);
            return Ok(());
        }
        self.last_io = Instant::now();
        self.request_bytes = self.request_bytes.saturating_add(amount as u64);
        let (timeout, limit) = self.watched(timeout);
        let r = self.transmit_after_head(amount, timeout);
        self.judge(r, limit)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        // Only the wait for an answer's first byte is watched: once it has begun, the request was received.
        let (watched, limit) = if self.answer_started { (timeout, None) } else { self.watched(timeout) };
        let r = self.release_held(watched).and_then(|()| self.inner.await_input(watched));
        if matches!(r, Ok(true)) {
            self.answer_started = true;
        }
        self.last_io = Instant::now();
        // Whatever is transmitted after a read starts the next request.
        self.head_next = true;
        self.judge(r, limit)
    }

    fn is_open(&mut self) -> bool {
        self.owner.is_this_process()
            && self.held.is_empty()
            && self.stalls_seen == self.stalls.load(Ordering::SeqCst)
            && (self.last_io.elapsed() < FRESH || self.inner.is_open())
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

impl<T: UreqTransport> GuardedConnection<T> {
    /// Transmits `amount` bytes of output, after the held head when there is one.
    fn transmit_after_head(&mut self, amount: usize, timeout: NextTimeout) -> std::result::Result<(), ureq::Error> {
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
            requests: 0,
            request_bytes: 0,
            answer_started: false,
            idle_before: Duration::ZERO,
            stall: self.stall,
            stalls_seen: self.stalls.load(Ordering::SeqCst),
            stalls: self.stalls.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_limit_allows_for_the_request_s_own_bytes_on_a_slow_link() {
        let five = Duration::from_secs(5);
        assert_eq!(stall_limit(five, 1, 600), None, "a new connection's first request is not watched");
        assert_eq!(stall_limit(Duration::ZERO, 9, 600), None, "zero: never");
        assert_eq!(stall_limit(five, 2, 0), Some(five));
        // 600 bytes take 240 ms at 20 kbit/s; rounded up to a whole 100 ms step, the same for similar sizes.
        assert_eq!(stall_limit(five, 2, 600), Some(Duration::from_millis(5_300)));
        assert_eq!(stall_limit(five, 7, 560), Some(Duration::from_millis(5_300)));
        // A batch of 100 KB: 40 s more.
        assert_eq!(stall_limit(five, 2, 100_000), Some(Duration::from_secs(45)));
    }

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
