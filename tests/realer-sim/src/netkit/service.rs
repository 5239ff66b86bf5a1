//! The threads behind every port of the kit: an accept loop that can be stopped (a blocking accept is woken by a
//! connection to itself), and the private loopback server the front and the CONNECT proxy run in, whose open
//! sockets are shut down when it stops.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::server::lock;

/// How long stopping waits for each thread before leaving it detached (it ends on its own once its socket
/// reports the shutdown).
pub(crate) const JOIN_GRACE: Duration = Duration::from_secs(2);

pub(crate) fn join_within(handle: JoinHandle<()>, deadline: Instant) {
    while !handle.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
    }
    if handle.is_finished() {
        let _ = handle.join();
    }
}

/// A thread accepting connections on a listener until stopped.
pub(crate) struct Acceptor {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Acceptor {
    /// Hands every accepted connection to `on_conn`, on the accept thread (which must not block long).
    pub(crate) fn spawn(
        listener: TcpListener,
        name: &str,
        on_conn: impl Fn(TcpStream, &AtomicBool) + Send + 'static,
    ) -> io::Result<Acceptor> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::Builder::new().name(name.to_string()).spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                match stream {
                    Ok(stream) => on_conn(stream, &flag),
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        })?;
        Ok(Acceptor { addr, stop, handle })
    }

    /// Closes the listening socket (new connections are refused from then on).
    pub(crate) fn stop(self, deadline: Instant) {
        self.stop.store(true, Ordering::SeqCst);
        let wake_ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let _ = TcpStream::connect_timeout(&SocketAddr::new(wake_ip, self.addr.port()), JOIN_GRACE);
        join_within(self.handle, deadline);
    }
}

/// The sockets of one connection of a service (the client's, and the upstream or tunnel target it opens), shut
/// down when the service stops so that no thread stays blocked on them.
#[derive(Default)]
pub(crate) struct Sockets(Mutex<SocketList>);

#[derive(Default)]
struct SocketList {
    stopped: bool,
    next: u64,
    held: Vec<(u64, TcpStream)>,
}

/// A socket held by [`Sockets`] until this is dropped (a keep-alive connection opens one upstream connection
/// per request: each is let go when done, so that descriptors do not pile up).
pub(crate) struct Held<'a> {
    sockets: &'a Sockets,
    id: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        lock(&self.sockets.0).held.retain(|(id, _)| *id != self.id);
    }
}

impl Sockets {
    /// Keeps a handle on `stream` to shut it down when the service stops (at once if it already has).
    pub(crate) fn hold(&self, stream: &TcpStream) -> Held<'_> {
        let mut list = lock(&self.0);
        let id = list.next;
        list.next += 1;
        if list.stopped {
            let _ = stream.shutdown(Shutdown::Both);
        } else if let Ok(clone) = stream.try_clone() {
            list.held.push((id, clone));
        }
        Held { sockets: self, id }
    }

    fn shutdown(&self) {
        let mut list = lock(&self.0);
        list.stopped = true;
        for (_, stream) in &list.held {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// What a service does with one connection, on its own thread.
pub(crate) trait Handler: Send + Sync + 'static {
    fn serve(&self, stream: TcpStream, sockets: &Sockets);
}

#[derive(Default)]
struct Conns {
    stopped: bool,
    next: u64,
    open: HashMap<u64, (Arc<Sockets>, Option<JoinHandle<()>>)>,
}

/// A server on a free port of 127.0.0.1, one thread per connection.
pub(crate) struct Service {
    addr: SocketAddr,
    acceptor: Option<Acceptor>,
    conns: Arc<Mutex<Conns>>,
}

impl Service {
    pub(crate) fn start(name: &str, handler: Arc<dyn Handler>) -> io::Result<Service> {
        let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))?;
        let addr = listener.local_addr()?;
        let conns = Arc::new(Mutex::new(Conns::default()));
        let registry = Arc::clone(&conns);
        let conn_name = format!("{name}-conn");
        let acceptor = Acceptor::spawn(listener, name, move |stream, stop| {
            let mut c = lock(&registry);
            if c.stopped || stop.load(Ordering::SeqCst) {
                return;
            }
            let sockets = Arc::new(Sockets::default());
            let id = c.next;
            c.next += 1;
            let (handler, socks, reg) = (Arc::clone(&handler), Arc::clone(&sockets), Arc::clone(&registry));
            let spawned = thread::Builder::new().name(conn_name.clone()).spawn(move || {
                let _held = socks.hold(&stream);
                handler.serve(stream, &socks);
                lock(&reg).open.remove(&id);
            });
            if let Ok(handle) = spawned {
                c.open.insert(id, (sockets, Some(handle)));
            }
        })?;
        Ok(Service { addr, acceptor: Some(acceptor), conns })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let deadline = Instant::now() + JOIN_GRACE;
        let open: Vec<(Arc<Sockets>, Option<JoinHandle<()>>)> = {
            let mut c = lock(&self.conns);
            c.stopped = true;
            c.open.drain().map(|(_, v)| v).collect()
        };
        if let Some(a) = self.acceptor.take() {
            a.stop(deadline);
        }
        for (sockets, _) in &open {
            sockets.shutdown();
        }
        for (_, handle) in open {
            if let Some(h) = handle {
                join_within(h, deadline);
            }
        }
    }
}
