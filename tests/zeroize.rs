//! Secrets in memory after `realer_client_free`.
//!
//! The end-to-end test (`after_realer_client_free_no_writable_memory_holds_a_secret`): a child process (this
//! test binary run again) authenticates and posts over TLS against realer-sim through the C ABI, frees the
//! client, then reads all of its own writable memory (every `rw` mapping of /proc/self/maps: heap, stacks,
//! anonymous mappings, the binary's data) and searches it for the client secret, the Basic value, the token
//! and the Bearer header. It never holds them in plain: it gets them XOR-ed from the parent (the token too:
//! the parent takes one from the sim and has the sim serve it as the child's token answer) and compares
//! XOR-ed memory with them. With the library's allocator wiping freed blocks (`wipe-freed-memory`, part of
//! `capi`, which the tests build with) it must find nothing; with the wipe switched off (the control) it must
//! find the token, which rustls's freed buffers of received plaintext keep: so the search is shown to work.
//!
//! The other two watch every heap block the client's thread frees, before the allocator's wipe: the library
//! wipes its own buffers too (a Rust program without the feature relies on that), and no freed block holds a
//! secret:
//! - over plain HTTP on loopback (the scripted server keeps its buffers on the stack): nothing at all, the
//!   token included;
//! - over TLS against realer-sim, run in a child process so that its own buffers are not this process's:
//!   nothing of what the client sends (the secret, the Basic value, a Bearer header). What it receives passes
//!   through rustls's buffers, which only the allocator's wipe reaches: the test prints how many freed blocks
//!   held the token answer when freed.
//!
//! The tests take turns: the allocator's observer is process-wide.

#[path = "support/scripted.rs"]
mod scripted;

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::Mutex;

use realer::test_hooks::HeapObserver;
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

static ARMED: AtomicBool = AtomicBool::new(false);
static FOUND: [AtomicUsize; 7] = [const { AtomicUsize::new(0) }; 7];
/// One scan at a time.
static SERIAL: Mutex<()> = Mutex::new(());

thread_local! {
    /// The thread that armed the watch: only its frees are scanned. The client runs on it (the library starts
    /// no thread of its own); what other threads of this process free is not the client's (the harness with
    /// another test's captured output, the end-to-end search's realer-sim with the requests it received).
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

fn arm() {
    realer::test_hooks::observe(&SCANNING);
    FOUND.iter().for_each(|f| f.store(0, Ordering::SeqCst));
    WATCHED.with(|w| w.set(true));
    ARMED.store(true, Ordering::SeqCst);
}

fn disarm() -> Vec<usize> {
    ARMED.store(false, Ordering::SeqCst);
    WATCHED.with(|w| w.set(false));
    FOUND.iter().map(|f| f.load(Ordering::SeqCst)).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay.windows(needle.len()).any(|w| w == needle)
}

fn scan_freed(p: *const u8, size: usize) {
    // `try_with`: a thread's last frees may come after its thread-locals are gone.
    if ARMED.load(Ordering::SeqCst) && WATCHED.try_with(Cell::get).unwrap_or(false) {
        // SAFETY: the allocator passes a block that is allocated and `size` bytes long until this returns.
        let block = unsafe { std::slice::from_raw_parts(p, size) };
        for (secret, found) in SECRETS.iter().zip(&FOUND) {
            if contains(block, secret) {
                found.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Sees every block before the allocator wipes and frees it (its `realloc` moves every block: a block left
/// behind by growth is seen too).
static SCANNING: HeapObserver = HeapObserver { allocated: |_| {}, freeing: scan_freed };

// Without the `wipe-freed-memory` feature the library installs no allocator: this test installs the same one
// (which then does not wipe) for its observer.
#[cfg(not(feature = "wipe-freed-memory"))]
#[global_allocator]
static ALLOCATOR: realer::test_hooks::WipeOnFree = realer::test_hooks::WipeOnFree;

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

// The messages and the table of these tests never spell a searched pattern (such as "Bearer" and a space): the
// test harness frees the captured output of one test while another may be watching.
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
        "freed blocks holding the client secret, the Basic value, the token; then an Authorization header with a token: {found:?}"
    );
    assert_eq!(found[5], 0, "a freed block holds an Authorization header with a token");
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
        "freed blocks holding the client secret, the Basic value, an Authorization header with a token"
    );
    eprintln!(
        "freed blocks holding (part of) the token answer when freed, left by rustls for the allocator to wipe: {}",
        found[6]
    );
}

// The end-to-end search (see the module's comment).

const SEARCH_TEST: &str = "after_realer_client_free_no_writable_memory_holds_a_secret";
/// Every secret crosses to the child XOR-ed with this, and the child compares XOR-ed memory with them.
const XOR: u8 = 0xA5;
/// What is searched, in the order of the `REALER_ZT_*` variables that carry them.
const SEARCHED: [(&str, &str); 4] = [
    ("client secret", "REALER_ZT_SECRET"),
    ("Basic value", "REALER_ZT_BASIC"),
    ("token", "REALER_ZT_TOKEN"),
    ("token header", "REALER_ZT_BEARER"),
];

fn xor_hex(plain: &[u8]) -> String {
    plain.iter().map(|b| format!("{:02x}", b ^ XOR)).collect()
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// Where `needle` starts in `hay`.
fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut at = Vec::new();
    if needle.is_empty() || hay.len() < needle.len() {
        return at;
    }
    for i in 0..=hay.len() - needle.len() {
        if hay[i] == needle[0] && &hay[i..i + needle.len()] == needle {
            at.push(i);
        }
    }
    at
}

/// One place a secret was found: which (index in `SEARCHED`), its address, and the mapping's line.
struct Hit {
    which: usize,
    address: usize,
    mapping: String,
}

/// Reads every writable mapping of this process (through /proc/self/mem, which never faults) and finds
/// `xored` (secrets XOR-ed with [`XOR`]) in it, XOR-ing what it read. The buffer it reads into is left out:
/// it holds XOR-ed copies of what it read. Returns the hits and the bytes searched.
fn search_own_memory(xored: &[Vec<u8>]) -> (Vec<Hit>, usize) {
    use std::os::unix::fs::FileExt;
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK];
    let own = buf.as_ptr() as usize..buf.as_ptr() as usize + CHUNK;
    let overlap = xored.iter().map(Vec::len).max().unwrap_or(1) - 1;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mem = std::fs::File::open("/proc/self/mem").unwrap();
    let (mut hits, mut searched) = (Vec::new(), 0);
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next().unwrap(), fields.next().unwrap());
        if !perms.starts_with("rw") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (usize::from_str_radix(start, 16).unwrap(), usize::from_str_radix(end, 16).unwrap());
        let mut at = start;
        while at < end {
            let want = CHUNK.min(end - at);
            let Ok(n) = mem.read_at(&mut buf[..want], at as u64) else { break };
            if n == 0 {
                break;
            }
            searched += n;
            buf[..n].iter_mut().for_each(|b| *b ^= XOR);
            for (which, secret) in xored.iter().enumerate() {
                for off in find_all(&buf[..n], secret) {
                    let address = at + off;
                    if !own.contains(&address) && !hits.iter().any(|h: &Hit| h.which == which && h.address == address) {
                        hits.push(Hit { which, address, mapping: line.to_string() });
                    }
                }
            }
            if at + n >= end || n <= overlap {
                break;
            }
            at += n - overlap;
        }
    }
    buf.iter_mut().for_each(|b| *b = 0);
    (hits, searched)
}

/// The child: authenticates and posts through the C ABI, frees everything, searches its memory and prints
/// `ZEROTEST <index> <count>` per secret and `ZEROHIT <index> <address> <mapping>` per place found.
fn search_child(mode: &str) {
    use realer::ffi::client::*;
    use realer::ffi::config::*;
    use realer::ffi::error::*;
    use realer::ffi::feed::*;
    use std::ffi::{CStr, CString};
    use zeroize::Zeroize;

    if mode == "no-wipe" {
        realer::test_hooks::set_wiping(false);
    }
    let var = |k: &str| std::env::var(k).unwrap();
    let cstr = |s: String| CString::new(s).unwrap();
    let xored: Vec<Vec<u8>> = SEARCHED.iter().map(|(_, k)| unhex(&var(k))).collect();
    println!("ZEROMODE {mode} wiping={}", realer::test_hooks::wiping());
    // SAFETY: the C ABI used as documented in realer.h.
    unsafe {
        let check = |st: realer_status, what: &str| {
            if st != REALER_OK {
                let e = &*realer_last_error();
                panic!("{what}: status {st}: {}", CStr::from_ptr(e.message).to_string_lossy());
            }
        };
        let cfg = realer_config_new();
        check(realer_config_set_base_url(cfg, cstr(var("REALER_ZT_URL")).as_ptr()), "base URL");
        check(realer_config_set_ca_file(cfg, cstr(var("REALER_ZT_CA")).as_ptr()), "CA file");
        check(realer_config_set_device_id(cfg, cstr(realer_sim::builtin::DEVICE_ID.into()).as_ptr()), "device id");
        // The secret in plain only for this call, as a firmware reads it from its store: wiped right after.
        let mut secret: Vec<u8> = xored[0].iter().map(|b| b ^ XOR).chain([0]).collect();
        let id = cstr(realer_sim::builtin::CLIENT_ID.into());
        let st = realer_config_set_credentials(cfg, id.as_ptr(), secret.as_ptr().cast());
        secret.zeroize();
        drop(secret);
        check(st, "credentials");
        let mut client = std::ptr::null_mut();
        check(realer_client_new(cfg, &mut client), "client");
        realer_config_free(cfg);
        check(realer_client_authenticate(client), "authenticate");
        let (sensor, value) = (cstr("7".into()), cstr("21.4".into()));
        for _ in 0..3 {
            let mut item = std::mem::zeroed::<realer_feed_item>();
            check(realer_feed_item_init(&mut item), "item");
            item.sensor_id = sensor.as_ptr();
            item.value = value.as_ptr();
            let mut out = std::mem::zeroed::<realer_feed_result>();
            check(realer_feed_post(client, &item, &mut out), "post");
            assert_eq!(out.outcome, REALER_FEED_OUTCOME_CREATED);
        }
        realer_client_free(client);
    }
    // Canaries, to show that the search reads this thread's stack and the heap: a marker in a stack array
    // and one in a heap block, alive during the search (markers, not secrets: plain).
    let marker = |n: u8| {
        let mut m = *b"zeroize-search-canary-0";
        m[22] += n;
        m
    };
    let mut stack_canary = marker(1);
    let heap_canary = Box::new(marker(2));
    let canaries = [stack_canary.as_ptr() as usize, heap_canary.as_ptr() as usize];
    let mut searched_for = xored.clone();
    searched_for.push(stack_canary.iter().map(|b| b ^ XOR).collect());
    searched_for.push(heap_canary.iter().map(|b| b ^ XOR).collect());
    // On another thread, so that the search's own stack frames do not overwrite what the library's calls
    // left on this thread's stack.
    let (hits, searched) = std::thread::spawn(move || search_own_memory(&searched_for)).join().unwrap();
    for (k, (name, address)) in ["stack", "heap"].iter().zip(canaries).enumerate() {
        let found = hits.iter().any(|h| h.which == SEARCHED.len() + k && h.address == address);
        assert!(found, "the search did not find the {name} canary: it does not read all memory");
    }
    std::hint::black_box(&mut stack_canary);
    drop(heap_canary);
    let hits: Vec<Hit> = hits.into_iter().filter(|h| h.which < SEARCHED.len()).collect();
    println!("ZEROSEARCHED {searched}");
    for which in 0..SEARCHED.len() {
        println!("ZEROTEST {which} {}", hits.iter().filter(|h| h.which == which).count());
    }
    for h in &hits {
        println!("ZEROHIT {} {:#x} {}", h.which, h.address, h.mapping);
    }
}

#[test]
fn after_realer_client_free_no_writable_memory_holds_a_secret() {
    if let Ok(mode) = std::env::var("REALER_ZT_MODE") {
        search_child(&mode);
        return;
    }
    // The sim's buffers are freed in this process: not while another test watches.
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    use realer_sim::builtin::{CLIENT_ID, CLIENT_SECRET};
    let sim = realer_sim::Sim::start(realer_sim::SimOptions { quiet: true, ..Default::default() }).unwrap();
    let dir = std::env::temp_dir().join(format!("realer-zeroize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let basic = realer_sim::encoding::base64_encode(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes());
    let agent: ureq::Agent = {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let ca = Certificate::from_pem(sim.ca_pem().as_bytes()).unwrap();
        let tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[ca])).build();
        ureq::Agent::config_builder().tls_config(tls).build().into()
    };

    println!("| allocator | bytes searched | client secret | Basic value | token | token header |");
    println!("|---|---:|---:|---:|---:|---:|");
    // Built without the feature, nothing wipes: only the control runs.
    let modes: &[&str] = if cfg!(feature = "wipe-freed-memory") { &["wipe", "no-wipe"] } else { &["no-wipe"] };
    for &mode in modes {
        // A token of the sim's, which it then serves as the child's token answer: the parent knows it.
        let answer = agent
            .post(format!("{}/oauth/token", sim.base_url()))
            .header("Authorization", format!("Basic {basic}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send("grant_type=client_credentials")
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let token = json["access_token"].as_str().unwrap().to_string();
        sim.inject(realer_sim::Fault::Answer { status: 200, body: answer }, realer_sim::Target::Token, 1);
        let plain = [CLIENT_SECRET.to_string(), basic.clone(), token.clone(), format!("Bearer {token}")];
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args(["--exact", SEARCH_TEST, "--nocapture", "--test-threads=1"]);
        child.env("REALER_ZT_MODE", mode).env("REALER_ZT_URL", sim.base_url()).env("REALER_ZT_CA", &ca);
        for ((_, key), secret) in SEARCHED.iter().zip(&plain) {
            child.env(key, xor_hex(secret.as_bytes()));
        }
        let out = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: child failed\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let field = |tag: &str| -> Vec<String> {
            stdout.lines().filter_map(|l| Some(l[l.find(tag)? + tag.len()..].to_string())).collect()
        };
        let searched = field("ZEROSEARCHED ").first().cloned().unwrap_or_else(|| panic!("{mode}: no search\n{stdout}"));
        let mut found = [0usize; 4];
        for l in field("ZEROTEST ") {
            let (which, count) = l.split_once(' ').unwrap();
            found[which.parse::<usize>().unwrap()] = count.parse().unwrap();
        }
        let hits = field("ZEROHIT ");
        println!("| {mode} | {searched} | {} | {} | {} | {} |", found[0], found[1], found[2], found[3]);
        for h in &hits {
            let (which, place) = h.split_once(' ').unwrap();
            println!("  {mode}: {} at {place}", SEARCHED[which.parse::<usize>().unwrap()].0);
        }
        // The child's posts were made with that token.
        assert!(sim.request_log().iter().rev().take(3).all(|e| e.status == 201 && e.bearer_valid));
        if mode == "wipe" {
            assert_eq!(found, [0; 4], "{mode}: secrets left in memory after realer_client_free:\n{}", hits.join("\n"));
        } else {
            assert!(found[2] > 0, "the control: without the wipe the search must find the token rustls left\n{stdout}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
