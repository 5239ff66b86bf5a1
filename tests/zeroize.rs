//! Secrets in freed memory: a global allocator that, while armed, searches every heap block freed in this
//! process for the client secret, the Basic credentials and the access token. A client authenticates and
//! posts, then is freed: no freed block may still hold a secret.
//! - Over plain HTTP on loopback (the scripted server keeps its buffers on the stack): nothing at all, the
//!   token included.
//! - Over TLS against realer-sim, run in a child process so that its own buffers are not this process's:
//!   nothing of what the client sends (the secret, the Basic value, a Bearer header). What it receives passes
//!   through rustls's buffers, which the library cannot wipe: the test prints how many freed blocks still
//!   held the token answer (see the README's section on secrets).
//!
//! The tests take turns: the scan is process-wide.

#[path = "support/scripted.rs"]
mod scripted;

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::Mutex;

use realer::{Client, Config, FeedItem, FeedOutcome};

const CLIENT_SECRET: &[u8] = b"Zk4-client-secret-to-wipe";
/// base64("cdv_zeroize:Zk4-client-secret-to-wipe")
const BASIC: &[u8] = b"Y2R2X3plcm9pemU6Wms0LWNsaWVudC1zZWNyZXQtdG8td2lwZQ==";
const TOKEN: &[u8] = b"tok-Vb3-access-token-to-wipe";
/// realer-sim's built-in credentials, and base64 of "client_id:client_secret".
const SIM_SECRET: &[u8] = b"demo-secret";
const SIM_BASIC: &[u8] = b"Y2R2XzAxMjM0NTY3ODlhYmNkZWZnaGlqa2xtbm9wOmRlbW8tc2VjcmV0";
/// Any Authorization header with a token (realer-sim's tokens are random).
const BEARER: &[u8] = b"Bearer ";
/// The token answer.
const TOKEN_ANSWER: &[u8] = b"\"access_token\"";
const SECRETS: [&[u8]; 7] = [CLIENT_SECRET, BASIC, TOKEN, SIM_SECRET, SIM_BASIC, BEARER, TOKEN_ANSWER];

struct Scanning;

static ARMED: AtomicBool = AtomicBool::new(false);
static FOUND: [AtomicUsize; 7] = [const { AtomicUsize::new(0) }; 7];
/// One scan at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn arm() {
    FOUND.iter().for_each(|f| f.store(0, Ordering::SeqCst));
    ARMED.store(true, Ordering::SeqCst);
}

fn disarm() -> Vec<usize> {
    ARMED.store(false, Ordering::SeqCst);
    FOUND.iter().map(|f| f.load(Ordering::SeqCst)).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay.windows(needle.len()).any(|w| w == needle)
}

// SAFETY: forwards to the system allocator; the scan only reads the block before it is released.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) {
            // SAFETY: the block is still allocated and `layout.size()` bytes long.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            for (secret, found) in SECRETS.iter().zip(&FOUND) {
                if contains(block, secret) {
                    found.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    // realloc is the default one: alloc, copy, dealloc, so a block left behind by growth is scanned too.
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

fn script(r: &scripted::Request<'_>) -> Cow<'static, [u8]> {
    const TOKEN_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 63\r\n\r\n{\"access_token\":\"tok-Vb3-access-token-to-wipe\",\"expires_in\":60}";
    const CREATED: &[u8] =
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 49\r\n\r\n{\"code\":2000,\"status\":\"created\",\"feed_data_id\":1}";
    if r.path == "/oauth/token" {
        Cow::Borrowed(TOKEN_ANSWER)
    } else {
        Cow::Borrowed(CREATED)
    }
}

#[test]
fn no_freed_block_holds_a_secret_once_the_client_is_freed() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(b"{\"access_token\":\"tok-Vb3-access-token-to-wipe\",\"expires_in\":60}".len(), 63);
    assert_eq!(b"{\"code\":2000,\"status\":\"created\",\"feed_data_id\":1}".len(), 49);
    let server = scripted::serve(script);
    arm();
    let mut c = Config::new();
    c.allow_insecure_loopback(true);
    c.set_base_url(&server.url).unwrap();
    c.set_device_id("12345").unwrap();
    c.set_credentials("cdv_zeroize", std::str::from_utf8(CLIENT_SECRET).unwrap()).unwrap();
    c.set_timeouts(Duration::from_secs(2), Duration::from_secs(5)).unwrap();
    let client = Client::new(&c).unwrap();
    drop(c);
    for i in 0..3 {
        let r = client.post_feed_data(&FeedItem::sensor("7", &i.to_string()));
        assert_eq!(r.outcome, FeedOutcome::Created, "{:?}", r.error);
    }
    drop(client);
    let found = disarm();
    assert_eq!(
        found[..3],
        [0, 0, 0],
        "freed blocks holding the client secret, the Basic value, the token; then a Bearer header: {found:?}"
    );
    assert_eq!(found[5], 0, "a freed block holds a Bearer header");
}

#[test]
fn over_tls_nothing_the_client_sent_is_left_in_freed_blocks() {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut fds = [0; 2];
    // SAFETY: a pipe for the child to say where it listens and which CA it uses.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child starts its own threads and never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: the child owns the write end; the read end is the parent's.
        unsafe { libc::close(fds[0]) };
        let sim = realer_sim::Sim::start(realer_sim::SimOptions { quiet: true, ..Default::default() });
        if let Ok(sim) = &sim {
            // SAFETY: the write end, owned from here on.
            let mut out = unsafe { std::fs::File::from_raw_fd(fds[1]) };
            let _ = write!(out, "{}\n{}", sim.base_url(), sim.ca_pem());
            drop(out);
            // Serve until the parent kills this process.
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        // SAFETY: ends the child without running the harness.
        unsafe { libc::_exit(1) };
    }
    // SAFETY: the parent's read end; the write end is the child's.
    unsafe { libc::close(fds[1]) };
    let mut told = String::new();
    // SAFETY: the read end, owned from here on.
    unsafe { std::fs::File::from_raw_fd(fds[0]) }.read_to_string(&mut told).unwrap();
    let (url, ca) = told.split_once('\n').expect("the sim started");

    arm();
    let mut c = Config::new();
    c.set_base_url(url).unwrap();
    c.set_ca_pem(ca.as_bytes()).unwrap();
    c.set_device_id("12345").unwrap();
    c.set_credentials("cdv_0123456789abcdefghijklmnop", std::str::from_utf8(SIM_SECRET).unwrap()).unwrap();
    c.set_timeouts(Duration::from_secs(5), Duration::from_secs(10)).unwrap();
    let client = Client::new(&c).unwrap();
    drop(c);
    let mut outcomes = Vec::new();
    for i in 0..3 {
        outcomes.push(client.post_feed_data(&FeedItem::sensor("7", &i.to_string())).outcome);
    }
    drop(client);
    let found = disarm();
    // SAFETY: the child made above.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    assert_eq!(outcomes, [FeedOutcome::Created; 3]);
    assert_eq!(
        [found[3], found[4], found[5]],
        [0, 0, 0],
        "freed blocks holding the client secret, the Basic value, a Bearer header"
    );
    eprintln!("freed blocks still holding (part of) the token answer, left by rustls: {}", found[6]);
}
