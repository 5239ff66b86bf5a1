//! The impairable TCP relay on the kit's public port. Each connection has, each way, a reader that stamps every
//! chunk with its release time (arrival + latency, + the handshake's round trip for the first chunk, + the hold
//! for an answer's first chunk) and a writer that releases chunks in order and paces them by the rate. A
//! connection that goes silent keeps both sockets open and swallows every byte; a reset closes both sockets with
//! SO_LINGER 0 once no thread holds them.

use socket2::SockRef;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::service::{join_within, Acceptor, JOIN_GRACE};
use super::{Dir, Shared, DOWN, UP};
use crate::server::lock;

/// Bytes read at once from either side.
const CHUNK: usize = 16 * 1024;
/// Bytes a direction holds before its reader stops reading (the sender then meets TCP's own backpressure).
const LANE_CAP: usize = 256 * 1024;
/// How long the kit tries to reach the upstream for a new connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often blocked threads look whether their connection is closing.
const POLL: Duration = Duration::from_millis(100);
const PIPE_STACK: usize = 256 * 1024;
/// No direction index yet (`Link::last_dir`).
const NONE: usize = 2;

static GENERATION: AtomicU64 = AtomicU64::new(1);

#[derive(Debug, Clone, Copy)]
pub(crate) struct ResetAfter {
    dir: Dir,
    bytes: u64,
    /// Which setting this is: a connection counts from zero when it first sees a new one.
    generation: u64,
}

/// The impairments in force, read for every chunk.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shaping {
    pub(crate) latency: [Duration; 2],
    pub(crate) rate: [Option<u64>; 2],
    pub(crate) blackhole_idle: Option<Duration>,
    pub(crate) blackhole_new: bool,
    pub(crate) reset_after: Option<ResetAfter>,
    pub(crate) hold_answers: Duration,
}

impl Shaping {
    pub(crate) fn set_each(&mut self, dir: Dir, f: impl Fn(usize, &mut Shaping)) {
        for i in [UP, DOWN] {
            if dir.covers(i) {
                f(i, self);
            }
        }
    }

    pub(crate) fn set_reset_after(&mut self, dir: Dir, bytes: Option<u64>) {
        self.reset_after =
            bytes.map(|bytes| ResetAfter { dir, bytes, generation: GENERATION.fetch_add(1, Ordering::SeqCst) });
    }
}

enum Item {
    Data(Vec<u8>),
    /// The source closed its side: shut down the writing side of the destination.
    Eof,
    /// Reset the connection (after the data before it).
    Reset,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<(Instant, Item)>,
    bytes: usize,
    last_release: Option<Instant>,
}

#[derive(Default)]
struct Lane {
    q: Mutex<Queue>,
    cv: Condvar,
}

impl Lane {
    /// Queues `item` for `release` (or after the item before it). `false`: the connection is closing.
    fn push(&self, link: &Link, release: Instant, item: Item) -> bool {
        let mut q = lock(&self.q);
        while q.bytes > LANE_CAP && !link.closing() {
            q = self.cv.wait_timeout(q, POLL).unwrap_or_else(|e| e.into_inner()).0;
        }
        if link.closing() {
            return false;
        }
        let at = q.last_release.map_or(release, |last| last.max(release));
        q.last_release = Some(at);
        if let Item::Data(d) = &item {
            q.bytes += d.len();
        }
        q.items.push_back((at, item));
        self.cv.notify_all();
        true
    }

    /// The next item once its release time has come; `None` when the connection is closing.
    fn pop_due(&self, link: &Link) -> Option<Item> {
        let mut q = lock(&self.q);
        loop {
            if link.closing() {
                return None;
            }
            let now = Instant::now();
            let wait = match q.items.front() {
                Some((at, _)) if *at <= now => {
                    let (_, item) = q.items.pop_front()?;
                    if let Item::Data(d) = &item {
                        q.bytes -= d.len();
                    }
                    self.cv.notify_all();
                    return Some(item);
                }
                Some((at, _)) => (*at - now).min(POLL),
                None => POLL,
            };
            q = self.cv.wait_timeout(q, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    fn wake(&self) {
        let _q = lock(&self.q);
        self.cv.notify_all();
    }
}

/// One relayed connection.
struct Link {
    client: TcpStream,
    upstream: OnceLock<TcpStream>,
    closing: AtomicBool,
    silent: AtomicBool,
    last_activity: Mutex<Instant>,
    /// The direction of the last chunk that arrived (`NONE` before any).
    last_dir: AtomicUsize,
    first_up_seen: AtomicBool,
    /// (generation, bytes counted) for `ResetAfter`.
    reset_count: Mutex<(u64, u64)>,
    lanes: [Lane; 2],
}

impl Link {
    fn new(client: TcpStream) -> Link {
        Link {
            client,
            upstream: OnceLock::new(),
            closing: AtomicBool::new(false),
            silent: AtomicBool::new(false),
            last_activity: Mutex::new(Instant::now()),
            last_dir: AtomicUsize::new(NONE),
            first_up_seen: AtomicBool::new(false),
            reset_count: Mutex::new((0, 0)),
            lanes: [Lane::default(), Lane::default()],
        }
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    fn silent(&self) -> bool {
        self.silent.load(Ordering::SeqCst)
    }

    fn sockets(&self) -> impl Iterator<Item = &TcpStream> {
        std::iter::once(&self.client).chain(self.upstream.get())
    }

    /// The socket `d`'s bytes come from.
    fn source(&self, d: usize) -> Option<&TcpStream> {
        if d == UP {
            Some(&self.client)
        } else {
            self.upstream.get()
        }
    }

    /// The socket `d`'s bytes go to.
    fn dest(&self, d: usize) -> Option<&TcpStream> {
        self.source(1 - d)
    }

    fn wake(&self) {
        for lane in &self.lanes {
            lane.wake();
        }
    }

    /// Ends the connection with FIN both ways (the kit stops, or one side is gone).
    fn close(&self) {
        if self.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        for s in self.sockets() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.wake();
    }

    /// Ends the connection with RST both ways: SO_LINGER 0, and a read shutdown (which sends nothing) to wake the
    /// threads; the RST leaves when the last of them drops the connection. `false` if it was already ending.
    fn reset(&self) -> bool {
        if self.closing.swap(true, Ordering::SeqCst) {
            return false;
        }
        for s in self.sockets() {
            let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
            let _ = s.shutdown(Shutdown::Read);
        }
        self.wake();
        true
    }

    fn go_silent(&self, shared: &Shared) {
        if !self.silent.swap(true, Ordering::SeqCst) {
            shared.counters.blackholed.fetch_add(1, Ordering::SeqCst);
        }
        self.wake();
    }

    fn sleep_until(&self, t: Instant) -> bool {
        loop {
            if self.closing() {
                return false;
            }
            let now = Instant::now();
            if now >= t {
                return true;
            }
            thread::sleep((t - now).min(Duration::from_millis(50)));
        }
    }

    fn write_all(&self, dst: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match (&*dst).write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if self.closing() {
                        return Err(e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Net {
    /// The kit was dropped: never listen again.
    stopped: bool,
    acceptor: Option<Acceptor>,
    links: HashMap<u64, (Arc<Link>, Option<JoinHandle<()>>)>,
    next: u64,
}

struct Inner {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    net: Mutex<Net>,
}

/// The public port and its connections. Dropping it closes everything.
pub(crate) struct Relay {
    inner: Arc<Inner>,
}

impl Relay {
    pub(crate) fn start(listen: SocketAddr, target: SocketAddr, shared: Arc<Shared>) -> io::Result<Relay> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner { addr, target, shared, net: Mutex::new(Net::default()) });
        {
            let mut net = lock(&inner.net);
            Inner::listen(&inner, &mut net, listener)?;
        }
        Ok(Relay { inner })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    pub(crate) fn open(&self) -> u64 {
        lock(&self.inner.net).links.len() as u64
    }

    pub(crate) fn blackhole_now(&self) {
        for (link, _) in lock(&self.inner.net).links.values() {
            link.go_silent(&self.inner.shared);
        }
    }

    pub(crate) fn set_down(&self, cut_existing: bool) {
        let acceptor = lock(&self.inner.net).acceptor.take();
        if let Some(a) = acceptor {
            a.stop(Instant::now() + JOIN_GRACE);
        }
        if cut_existing {
            for (link, _) in lock(&self.inner.net).links.values() {
                if link.reset() {
                    self.inner.shared.counters.resets.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    pub(crate) fn set_up(&self) -> io::Result<()> {
        let mut net = lock(&self.inner.net);
        if net.stopped || net.acceptor.is_some() {
            return Ok(());
        }
        // Connections the kit closed linger in TIME_WAIT; std sets SO_REUSEADDR, and a retry covers the rest.
        let deadline = Instant::now() + Duration::from_secs(3);
        let listener = loop {
            match TcpListener::bind(self.inner.addr) {
                Ok(l) => break l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(e),
            }
        };
        Inner::listen(&self.inner, &mut net, listener)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let deadline = Instant::now() + JOIN_GRACE;
        let (acceptor, links) = {
            let mut net = lock(&self.inner.net);
            net.stopped = true;
            let links: Vec<_> = net.links.drain().map(|(_, v)| v).collect();
            (net.acceptor.take(), links)
        };
        if let Some(a) = acceptor {
            a.stop(deadline);
        }
        for (link, _) in &links {
            link.close();
        }
        for (_, handle) in links {
            if let Some(h) = handle {
                join_within(h, deadline);
            }
        }
    }
}

impl Inner {
    fn listen(this: &Arc<Inner>, net: &mut Net, listener: TcpListener) -> io::Result<()> {
        let inner = Arc::clone(this);
        let acceptor = Acceptor::spawn(listener, "realer-netkit-accept", move |stream, stop| {
            Inner::register(&inner, stream, stop);
        })?;
        net.acceptor = Some(acceptor);
        Ok(())
    }

    fn register(this: &Arc<Inner>, stream: TcpStream, stop: &AtomicBool) {
        let mut net = lock(&this.net);
        if net.stopped || stop.load(Ordering::SeqCst) {
            return;
        }
        this.shared.counters.connections.fetch_add(1, Ordering::SeqCst);
        let link = Arc::new(Link::new(stream));
        let id = net.next;
        net.next += 1;
        let (inner, l) = (Arc::clone(this), Arc::clone(&link));
        let spawned =
            thread::Builder::new().name("realer-netkit-link".into()).stack_size(PIPE_STACK).spawn(move || {
                inner.run(l);
                lock(&inner.net).links.remove(&id);
            });
        match spawned {
            Ok(handle) => {
                net.links.insert(id, (link, Some(handle)));
            }
            Err(_) => {
                link.reset();
            }
        }
    }

    fn run(self: &Arc<Inner>, link: Arc<Link>) {
        let blackhole_new = lock(&self.shared.shaping).blackhole_new;
        if blackhole_new {
            link.go_silent(&self.shared);
            self.swallow(&link);
            return;
        }
        let upstream = match TcpStream::connect_timeout(&self.target, CONNECT_TIMEOUT) {
            Ok(s) => s,
            Err(_) => {
                // The nearest a userspace relay comes to "connection refused": the accepted connection is reset.
                link.reset();
                return;
            }
        };
        for s in [&link.client, &upstream] {
            let _ = s.set_nodelay(true);
            let _ = s.set_write_timeout(Some(POLL));
        }
        let _ = link.upstream.set(upstream);
        if link.closing() {
            // Closed while connecting: shut the new socket as well.
            for s in link.sockets() {
                let _ = s.shutdown(Shutdown::Both);
            }
            return;
        }
        let mut handles = Vec::new();
        let jobs: [(&str, usize, bool); 3] = [
            ("realer-netkit-read", DOWN, true),
            ("realer-netkit-write", UP, false),
            ("realer-netkit-write", DOWN, false),
        ];
        for (name, d, reader) in jobs {
            let (inner, l) = (Arc::clone(self), Arc::clone(&link));
            let spawned = thread::Builder::new().name(name.into()).stack_size(PIPE_STACK).spawn(move || {
                if reader {
                    inner.read_loop(&l, d)
                } else {
                    inner.write_loop(&l, d)
                }
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(_) => link.close(),
            }
        }
        self.read_loop(&link, UP);
        for h in handles {
            let _ = h.join();
        }
    }

    /// A silent new connection: read and drop everything the client sends, until it closes.
    fn swallow(&self, link: &Link) {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let r = (&link.client).read(&mut buf);
            if link.closing() {
                return;
            }
            match r {
                Ok(0) => break,
                Ok(n) => {
                    self.shared.counters.bytes[UP].fetch_add(n as u64, Ordering::SeqCst);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        link.close();
    }

    fn read_loop(&self, link: &Link, d: usize) {
        let Some(src) = link.source(d) else {
            return;
        };
        let mut buf = vec![0u8; CHUNK];
        loop {
            let r = (&*src).read(&mut buf);
            if link.closing() {
                return;
            }
            let n = match r {
                Ok(0) => return self.ended(link, d, false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.ended(link, d, true),
            };
            self.shared.counters.bytes[d].fetch_add(n as u64, Ordering::SeqCst);
            if !self.arrived(link, d, &buf[..n]) {
                return;
            }
        }
    }

    /// The source of `d` closed (`error`: with a reset, or failed).
    fn ended(&self, link: &Link, d: usize, error: bool) {
        if link.silent() {
            // Nothing crosses a forgotten connection, not even a FIN. Once the client has closed its end, nothing
            // can be observed any more; the upstream closing is ignored (the client is not told).
            if d == UP {
                link.close();
            }
            return;
        }
        let latency = lock(&self.shared.shaping).latency[d];
        let item = if error { Item::Reset } else { Item::Eof };
        link.lanes[d].push(link, Instant::now() + latency, item);
    }

    /// A chunk arrived from the source of `d`. `false`: stop reading.
    fn arrived(&self, link: &Link, d: usize, bytes: &[u8]) -> bool {
        let now = Instant::now();
        let sh = lock(&self.shared.shaping).clone();
        if link.silent() {
            return true;
        }
        {
            let mut last = lock(&link.last_activity);
            if sh.blackhole_idle.is_some_and(|idle| now.duration_since(*last) > idle) {
                drop(last);
                link.go_silent(&self.shared);
                return true;
            }
            *last = now;
        }
        let mut data = bytes;
        let mut reset = false;
        if let Some(r) = sh.reset_after.filter(|r| r.dir.covers(d)) {
            let mut count = lock(&link.reset_count);
            if count.0 != r.generation {
                *count = (r.generation, 0);
            }
            let left = r.bytes.saturating_sub(count.1);
            if data.len() as u64 >= left {
                data = &data[..left as usize];
                reset = true;
            }
            count.1 += data.len() as u64;
        }
        let mut release = now + sh.latency[d];
        if d == UP && !link.first_up_seen.swap(true, Ordering::SeqCst) {
            // The TCP handshake's round trip, which the kernel completed at once.
            release += sh.latency[UP] + sh.latency[DOWN];
        }
        if link.last_dir.swap(d, Ordering::SeqCst) != d && d == DOWN {
            release += sh.hold_answers;
        }
        if !data.is_empty() && !link.lanes[d].push(link, release, Item::Data(data.to_vec())) {
            return false;
        }
        if reset {
            link.lanes[d].push(link, release, Item::Reset);
            return false;
        }
        true
    }

    fn write_loop(&self, link: &Link, d: usize) {
        let Some(dst) = link.dest(d) else {
            return;
        };
        let mut next_free = Instant::now();
        while let Some(item) = link.lanes[d].pop_due(link) {
            match item {
                Item::Data(bytes) => {
                    if !link.silent() && !self.deliver(link, d, dst, &bytes, &mut next_free) {
                        link.close();
                        return;
                    }
                }
                Item::Eof => {
                    if !link.silent() {
                        let _ = dst.shutdown(Shutdown::Write);
                    }
                    return;
                }
                Item::Reset => {
                    if !link.silent() && link.reset() {
                        self.shared.counters.resets.fetch_add(1, Ordering::SeqCst);
                    }
                    return;
                }
            }
        }
    }

    /// Writes `bytes` to `dst`, paced by the rate of `d` (read again for every piece, so a change applies at once).
    /// `false`: the destination failed or the connection is closing.
    fn deliver(&self, link: &Link, d: usize, dst: &TcpStream, bytes: &[u8], next_free: &mut Instant) -> bool {
        let mut off = 0;
        while off < bytes.len() {
            if link.silent() {
                return true;
            }
            if link.closing() {
                return false;
            }
            let rate = lock(&self.shared.shaping).rate[d];
            let end = match rate {
                None => bytes.len(),
                // Pieces of 10 ms on the link, so that a later rate change or silence takes effect quickly.
                Some(bps) => off + ((bps / 800) as usize).clamp(1, CHUNK).min(bytes.len() - off),
            };
            if let Some(bps) = rate {
                let now = Instant::now();
                if *next_free < now {
                    *next_free = now;
                }
                *next_free += Duration::from_secs_f64((end - off) as f64 * 8.0 / bps.max(1) as f64);
                if !link.sleep_until(*next_free) {
                    return false;
                }
            }
            if link.write_all(dst, &bytes[off..end]).is_err() {
                return false;
            }
            off = end;
        }
        true
    }
}
