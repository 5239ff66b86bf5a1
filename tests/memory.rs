//! Peak memory of reading large answers, within the 8 MiB answer bound: at most 4x the answer's size plus
//! 1 MiB, for a catalog of 200,000 commands, a batch answer with 60,000 results beyond the 100 items sent,
//! and 60,000 pending desired states, each read through the C ABI; and the same rule, with no allowance, for
//! answers of up to 8 MiB made of minimal items (`{"id":N}`, `{"id":"a"}`, error items, items of many short
//! fields, minimal desired states): the lists are compact (an item costs at most its JSON text plus 4 bytes of
//! index). The client runs in a child process (this
//! test binary run again), so that its heap and its resident set are its own: the heap is counted by the
//! observer of the library's allocator, the resident set by Linux's peak RSS (VmHWM, reset before the call). realer-sim runs in
//! the parent and serves each answer verbatim (its `answer` fault).

use std::ffi::{CStr, CString};
use std::process::Command;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicIsize, Ordering};

use realer::ffi::catalog::*;
use realer::ffi::client::*;
use realer::ffi::config::*;
use realer::ffi::desired::*;
use realer::ffi::error::*;
use realer::ffi::feed::*;
use realer::test_hooks::HeapObserver;
use realer_sim::{builtin, Fault, Sim, SimOptions, Target};

// Signed: blocks allocated before the observer was installed may be freed while it counts.
static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by as isize, Ordering::Relaxed) + by as isize;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

/// The heap is counted by the observer of the library's allocator (a `realloc` there is an allocation, a copy
/// and a release: both blocks count while both are alive, as they are).
static COUNTING: HeapObserver =
    HeapObserver { allocated: grew, freeing: |_, size| _ = CURRENT.fetch_sub(size as isize, Ordering::Relaxed) };

// Without the `wipe-freed-memory` feature the library installs no allocator: this test installs the same one
// (which then does not wipe) for its observer.
#[cfg(not(feature = "wipe-freed-memory"))]
#[global_allocator]
static ALLOCATOR: realer::test_hooks::WipeOnFree = realer::test_hooks::WipeOnFree;

const TEST_NAME: &str = "peak_memory_of_large_answers_is_bounded_by_their_size";
const MIB: usize = 1024 * 1024;

fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

fn catalog_body() -> String {
    let mut s = String::from("{\"code\":2000,\"commands\":[");
    for i in 0..200_000 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{{\"id\":{},\"value\":\"{}.0\"}}", 100_000 + i, i % 10));
    }
    s.push_str("]}");
    s
}

/// An answer of `key` holding `items` items made by `item`, up to the 8 MiB bound.
fn list_body(key: &str, items: usize, item: impl Fn(usize) -> String) -> String {
    let mut s = format!("{{\"code\":2000,\"{key}\":[");
    for i in 0..items {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&item(i));
    }
    s.push_str("]}");
    s
}

/// A case of minimal items: its name, the list's key, the item count, and the item made from its index.
type MinimalCase = (&'static str, &'static str, usize, fn(usize) -> String);

/// The cases of minimal items, each answer near 8 MiB.
fn minimal_cases() -> Vec<MinimalCase> {
    vec![
        ("minimal catalog", "commands", 590_000, |i| format!("{{\"id\":{}}}", 100_000 + i)),
        ("string ids", "commands", 680_000, |i| format!("{{\"id\":\"{}\"}}", i % 100)),
        ("error items", "commands", 300_000, |i| format!("{{\"id\":{i},\"error\":\"x\"}}")),
        ("unreadable items", "commands", 300_000, |i| format!("{{\"id\":{i},\"kind\":1e999}}")),
        ("many short fields", "commands", 125_000, |i| {
            format!("{{\"id\":{},\"value\":\"a\",\"value_type\":\"b\",\"kind\":\"c\",\"pin_port\":\"d\"}}", i % 10)
        }),
        ("minimal sensors", "sensors", 800_000, |i| format!("{{\"id\":{}}}", i % 100)),
        ("minimal desired", "desired_states", 155_000, |i| {
            format!("{{\"desired_id\":{i},\"command_id\":1,\"expires_in\":1}}")
        }),
    ]
}

fn batch_body(message_ids: &[String]) -> String {
    let mut s = String::from("{\"code\":2000,\"status\":\"completed\",\"results\":[");
    for (i, id) in message_ids.iter().enumerate() {
        s.push_str(&format!("{{\"index\":{i},\"message_id\":\"{id}\",\"status\":\"created\",\"feed_data_id\":{i}}},"));
    }
    for i in 0..60_000 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"index\":{},\"message_id\":\"extra-{i:08}\",\"status\":\"created\",\"feed_data_id\":{}}}",
            100 + i,
            1_000_000 + i
        ));
    }
    s.push_str("]}");
    s
}

fn desired_body() -> String {
    let mut s = String::from("{\"code\":2000,\"desired_states\":[");
    for i in 0..60_000 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"desired_id\":\"des_{i:026}\",\"command_id\":{},\"value\":\"1.0\",\"sequence_number\":{i},\"expires_at\":\"2099-01-01T00:00:00Z\"}}",
            i % 500
        ));
    }
    s.push_str("]}");
    s
}

fn message_ids() -> Vec<String> {
    (0..100).map(|i| format!("memtest-{i:04}")).collect()
}

/// The child: one call through the C ABI, measured; prints `MEMTEST <heap peak> <rss peak>` in bytes.
fn child(case: &str) {
    let cstr = |s: String| CString::new(s).unwrap();
    let var = |k: &str| cstr(std::env::var(k).unwrap());
    realer::test_hooks::observe(&COUNTING);
    unsafe {
        let cfg = realer_config_new();
        assert_eq!(realer_config_set_base_url(cfg, var("REALER_BASE_URL").as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_ca_file(cfg, var("REALER_CA_FILE").as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_device_id(cfg, cstr(builtin::DEVICE_ID.into()).as_ptr()), REALER_OK);
        let (id, secret) = (cstr(builtin::CLIENT_ID.into()), cstr(builtin::CLIENT_SECRET.into()));
        assert_eq!(realer_config_set_credentials(cfg, id.as_ptr(), secret.as_ptr()), REALER_OK);
        let mut client = null_mut();
        assert_eq!(realer_client_new(cfg, &mut client), REALER_OK);
        realer_config_free(cfg);
        // The token and the TLS connection are there before the measure starts.
        assert_eq!(realer_client_authenticate(client), REALER_OK);
        let ids: Vec<CString> = message_ids().into_iter().map(cstr).collect();
        let (sensor, value) = (cstr("7".into()), cstr("1".into()));
        let items: Vec<realer_feed_item> = ids
            .iter()
            .map(|id| {
                let mut it = std::mem::zeroed::<realer_feed_item>();
                realer_feed_item_init(&mut it);
                it.sensor_id = sensor.as_ptr();
                it.value = value.as_ptr();
                it.message_id = id.as_ptr();
                it
            })
            .collect();

        let baseline = CURRENT.load(Ordering::Relaxed);
        PEAK.store(baseline, Ordering::Relaxed);
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let rss_before = status_kib("VmRSS:");
        let expected: usize = std::env::var("REALER_MEMTEST_ITEMS").unwrap().parse().unwrap();
        let status = match case {
            "catalog" | "minimal catalog" | "string ids" | "error items" | "unreadable items" | "many short fields" => {
                let mut list = null_mut();
                let st = realer_commands_fetch(client, &mut list);
                assert_eq!(realer_commands_len(list), expected);
                realer_commands_free(list);
                st
            }
            "minimal sensors" => {
                let mut list = null_mut();
                let st = realer_sensors_fetch(client, &mut list);
                assert_eq!(realer_sensors_len(list), expected);
                realer_sensors_free(list);
                st
            }
            "batch" => {
                let mut out = null_mut();
                let st = realer_feed_post_batch(client, items.as_ptr(), items.len(), &mut out);
                assert_eq!(realer_batch_result_len(out), 100);
                realer_batch_result_free(out);
                st
            }
            "desired" | "minimal desired" => {
                let mut list = null_mut();
                let st = realer_desired_states_fetch(client, &mut list);
                assert_eq!(realer_desired_states_len(list), expected);
                realer_desired_states_free(list);
                st
            }
            other => panic!("unknown case {other}"),
        };
        let heap = (PEAK.load(Ordering::Relaxed) - baseline).max(0) as usize;
        let rss = status_kib("VmHWM:").saturating_sub(rss_before) * 1024;
        if status != REALER_OK {
            let e = &*realer_last_error();
            panic!("{case}: status {status}: {}", CStr::from_ptr(e.message).to_string_lossy());
        }
        realer_client_free(client);
        let _ = null::<u8>();
        println!("MEMTEST {heap} {rss}");
    }
}

#[test]
fn peak_memory_of_large_answers_is_bounded_by_their_size() {
    if let Ok(case) = std::env::var("REALER_MEMTEST_CASE") {
        child(&case);
        return;
    }
    let sim = Sim::start(SimOptions { quiet: true, ..Default::default() }).expect("realer-sim starts");
    let dir = std::env::temp_dir().join(format!("realer-memtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();

    println!("| answer | bytes | heap peak | RSS peak | limit (4x + 1 MiB) |");
    println!("|---|---:|---:|---:|---:|");
    let desired_path = || Target::Path("/iot/v1/devices/12345/desired-states".into());
    let mut cases = vec![
        ("catalog", catalog_body(), Target::Catalog, 200_000),
        ("batch", batch_body(&message_ids()), Target::Batch, 100),
        ("desired", desired_body(), desired_path(), 60_000),
    ];
    for (case, key, items, item) in minimal_cases() {
        let target = match key {
            "commands" => Target::Catalog,
            "sensors" => Target::Path("/iot/v1/devices/12345/sensors".into()),
            _ => desired_path(),
        };
        cases.push((case, list_body(key, items, item), target, items));
    }
    for (case, body, target, items) in cases {
        assert!(body.len() <= 8 * MIB, "{case}: {} bytes is over the answer bound", body.len());
        let size = body.len();
        sim.inject(Fault::Answer { status: 200, body }, target, 1);
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env("REALER_MEMTEST_CASE", case)
            .env("REALER_MEMTEST_ITEMS", items.to_string())
            .env("REALER_BASE_URL", sim.base_url())
            .env("REALER_CA_FILE", &ca)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{case}: child failed\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let figures: Vec<usize> = stdout
            .lines()
            .find_map(|l| Some(&l[l.find("MEMTEST ")? + "MEMTEST ".len()..]))
            .unwrap_or_else(|| panic!("{case}: no MEMTEST line\n{stdout}"))
            .split_whitespace()
            .take(2)
            .map(|n| n.parse().unwrap())
            .collect();
        let (heap, rss) = (figures[0], figures[1]);
        let limit = 4 * size + MIB;
        println!(
            "| {case} | {size} | {heap} ({:.2}x) | {rss} ({:.2}x) | {limit} |",
            heap as f64 / size as f64,
            rss as f64 / size as f64
        );
        assert!(heap <= limit, "{case}: heap peak {heap} > {limit} for a {size}-byte answer");
        assert!(rss <= limit, "{case}: RSS peak {rss} > {limit} for a {size}-byte answer");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
