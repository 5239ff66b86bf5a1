//! Secrets in freed memory: a global allocator that, while armed, searches every heap block freed in this
//! process for the client secret, the Basic credentials and the access token. A client authenticates and
//! posts over plain HTTP on loopback (the scripted server keeps its buffers on the stack), then is freed:
//! no freed block may still hold a secret. TLS is left out on purpose: rustls's own buffers are outside
//! what the library can wipe (see the README's section on secrets). One test in this binary.

#[path = "support/scripted.rs"]
mod scripted;

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use realer::{Client, Config, FeedItem, FeedOutcome};

const CLIENT_SECRET: &[u8] = b"Zk4-client-secret-to-wipe";
/// base64("cdv_zeroize:Zk4-client-secret-to-wipe")
const BASIC: &[u8] = b"Y2R2X3plcm9pemU6Wms0LWNsaWVudC1zZWNyZXQtdG8td2lwZQ==";
const TOKEN: &[u8] = b"tok-Vb3-access-token-to-wipe";
const SECRETS: [&[u8]; 3] = [CLIENT_SECRET, BASIC, TOKEN];

struct Scanning;

static ARMED: AtomicBool = AtomicBool::new(false);
static FOUND: [AtomicUsize; 3] = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];

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
    assert_eq!(b"{\"access_token\":\"tok-Vb3-access-token-to-wipe\",\"expires_in\":60}".len(), 63);
    assert_eq!(b"{\"code\":2000,\"status\":\"created\",\"feed_data_id\":1}".len(), 49);
    let server = scripted::serve(script);
    ARMED.store(true, Ordering::SeqCst);
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
    ARMED.store(false, Ordering::SeqCst);
    let found: Vec<usize> = FOUND.iter().map(|f| f.load(Ordering::SeqCst)).collect();
    assert_eq!(found, [0, 0, 0], "freed blocks holding the client secret, the Basic value, the token");
}
