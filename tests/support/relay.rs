//! A small TCP relay on loopback with the impairments the transport tests need until the field network kit
//! (realer_sim::netkit) is merged: one-way latency, a bandwidth cap, and a black hole for a connection that
//! was idle (its bytes are swallowed both ways, its sockets stay open: no FIN, no RST, as when a NAT forgot
//! it). It counts connections and the bytes of each. The kernel completes the TCP handshake with the relay at
//! once, so the relay adds its round trip before the client's first byte goes on.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Default)]
pub struct Impairments {
    /// Added to every byte, each way (a round trip gets twice this).
    pub one_way_latency: Duration,
    /// Bytes per second, each way; `None`: as fast as loopback.
    pub bytes_per_sec: Option<u64>,
    /// A connection idle this long (no byte either way) becomes a black hole.
    pub blackhole_after_idle: Option<Duration>,
}

/// Bytes relayed on one connection: (client to server, server to client).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bytes {
    pub up: u64,
    pub down: u64,
}

pub struct Relay {
    addr: SocketAddr,
    stopped: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<Arc<Mutex<Bytes>>>>>,
}

impl Relay {
    pub fn start(upstream: SocketAddr, imp: Impairments) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<Arc<Mutex<Bytes>>>>> = Arc::default();
        let (stop, conns) = (stopped.clone(), connections.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let bytes = Arc::new(Mutex::new(Bytes::default()));
                conns.lock().unwrap().push(bytes.clone());
                let accepted = Instant::now();
                let last = Arc::new(Mutex::new(accepted));
                let holed = Arc::new(AtomicBool::new(false));
                for (from, to, up) in
                    [(client.try_clone().unwrap(), server.try_clone().unwrap(), true), (server, client, false)]
                {
                    let (bytes, last, holed) = (bytes.clone(), last.clone(), holed.clone());
                    // A client's bytes could not leave before the SYN-ACK came back.
                    let earliest = if up { accepted + imp.one_way_latency * 2 } else { accepted };
                    std::thread::spawn(move || pump(from, to, up, earliest, imp, &bytes, &last, &holed));
                }
            }
        });
        Relay { addr, stopped, connections }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The sim's base URL, through the relay.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.lock().unwrap().len()
    }

    pub fn bytes(&self) -> Vec<Bytes> {
        self.connections.lock().unwrap().iter().map(|b| *b.lock().unwrap()).collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// One direction: read, stamp, and hand over to a writer that delivers each chunk `one_way_latency` after it
/// arrived, no faster than `bytes_per_sec`.
#[allow(clippy::too_many_arguments)]
fn pump(
    mut from: TcpStream,
    to: TcpStream,
    up: bool,
    earliest: Instant,
    imp: Impairments,
    bytes: &Mutex<Bytes>,
    last: &Mutex<Instant>,
    holed: &AtomicBool,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        let mut to = to;
        let mut free_at = Instant::now();
        for (arrived, chunk) in rx {
            if chunk.is_empty() {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            let due = arrived.max(earliest) + imp.one_way_latency;
            // Store and forward, in small pieces so that a cap paces the bytes rather than bursts them.
            for piece in chunk.chunks(if imp.bytes_per_sec.is_some() { 256 } else { chunk.len() }) {
                let start = due.max(free_at);
                let done = match imp.bytes_per_sec {
                    Some(rate) => start + Duration::from_micros(piece.len() as u64 * 1_000_000 / rate),
                    None => start,
                };
                free_at = done;
                let now = Instant::now();
                if done > now {
                    std::thread::sleep(done - now);
                }
                if to.write_all(piece).is_err() {
                    return;
                }
            }
        }
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // An error ends the direction as an end of stream does.
        let n = from.read(&mut buf).unwrap_or_default();
        if n > 0 {
            let now = Instant::now();
            let mut last = last.lock().unwrap();
            if imp.blackhole_after_idle.is_some_and(|idle| now.duration_since(*last) >= idle) {
                holed.store(true, Ordering::SeqCst);
            }
            *last = now;
        }
        if holed.load(Ordering::SeqCst) {
            if n == 0 {
                // The client gave up on the black hole: let the writer go, keep the other side silent.
                drop(tx);
                let _ = writer.join();
                return;
            }
            continue;
        }
        {
            let mut b = bytes.lock().unwrap();
            if up {
                b.up += n as u64;
            } else {
                b.down += n as u64;
            }
        }
        let _ = tx.send((Instant::now(), buf[..n].to_vec()));
        if n == 0 {
            let _ = writer.join();
            return;
        }
    }
}
