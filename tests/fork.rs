//! fork(): a child that posts through the client it inherited must not touch the parent's connections (its
//! TLS records would reuse the parent's sequence numbers and break both sides). Parent and child each post
//! after the fork, and both are stored. The inherited outbox is refused in the child (an SQLite connection
//! does not survive a fork) and keeps working in the parent. Then the same through the C API, where a
//! pthread_atfork handler counts forks instead of a getpid per request. One test in this binary: fork()
//! keeps only the calling thread, and the Rust client must come first (before the C API installs its handler).

mod common;

use std::ffi::CString;
use std::ptr::null_mut;

use common::*;
use realer::ffi::client::*;
use realer::ffi::config::*;
use realer::ffi::error::*;
use realer::ffi::feed::*;
use realer::{Client, ErrorKind, FeedItem, FeedOutcome};

/// Forks; the child runs `child` (its exit status is what it returns) and the parent waits for it.
fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `child` only (no lock is held by another thread of this test: the sim's threads
    // wait in accept or read) and leaves with _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = child();
        // SAFETY: ends the child at once, without the parent's destructors or the harness.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child made above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "the child died ({status})");
    libc::WEXITSTATUS(status)
}

/// Posts one reading through the C API; the outcome.
fn c_post(client: *const realer_client, value: &str) -> realer_feed_outcome {
    let (sensor, value) = (CString::new("7").unwrap(), CString::new(value).unwrap());
    // SAFETY: plain C API calls with live arguments.
    unsafe {
        let mut item = std::mem::zeroed::<realer_feed_item>();
        assert_eq!(realer_feed_item_init(&mut item), REALER_OK);
        item.sensor_id = sensor.as_ptr();
        item.value = value.as_ptr();
        let mut out = std::mem::zeroed::<realer_feed_result>();
        if realer_feed_post(client, &item, &mut out) != REALER_OK {
            eprintln!("{:?}", std::ffi::CStr::from_ptr((*realer_last_error()).message));
        }
        out.outcome
    }
}

#[test]
fn parent_and_child_both_post_after_a_fork() {
    let sim = sim();
    let dir = std::env::temp_dir().join(format!("realer-fork-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = config(&sim);
    cfg.set_outbox(dir.join("outbox.db").to_str().unwrap(), 100, 0).unwrap();
    let mut owned = Some(Client::new(&cfg).unwrap());
    let c = owned.as_ref().unwrap();
    // Sensor 7 is a thermistor, whose readings are numbers: each value marks where it was posted (101 pushed
    // before the fork, 102 posted before it, 103 from the child, 104 from the parent after it, 105 pushed in
    // the child; 2xx the same through the C API).
    c.outbox_push(&FeedItem::sensor("7", "101")).unwrap();
    // A kept-alive TLS connection in the pool before the fork.
    let r = c.post_feed_data(&FeedItem::sensor("7", "102"));
    assert_eq!(r.outcome, FeedOutcome::Created, "{:?}", r.error);

    let child = in_child(|| {
        let c = owned.as_ref().unwrap();
        let r = c.post_feed_data(&FeedItem::sensor("7", "103"));
        let mut code = match r.outcome {
            FeedOutcome::Created => 0,
            _ => {
                eprintln!("child: {:?}", r.error);
                1
            }
        };
        match c.outbox_push(&FeedItem::sensor("7", "105")) {
            Err(e) if e.kind == ErrorKind::Config => {}
            other => {
                eprintln!("child: the inherited outbox was used: {other:?}");
                code |= 2;
            }
        }
        // Freeing the client in the child must leave the parent's SQLite connection alone.
        drop(owned.take());
        code
    });
    assert_eq!(child, 0, "the child's post failed (1) or it used the inherited outbox (2)");
    let c = owned.as_ref().unwrap();
    let r = c.post_feed_data(&FeedItem::sensor("7", "104"));
    assert_eq!(r.outcome, FeedOutcome::Created, "the parent's post after the fork: {:?}", r.error);
    let (report, err) = c.outbox_flush(0);
    assert!(err.is_none(), "the parent's outbox after the fork: {err:?}");
    assert_eq!((report.sent, report.pending), (1, 0));
    let values: Vec<String> = sim.records().iter().map(|r| r.item["value"].to_string()).collect();
    for v in ["102", "103", "104", "101"] {
        assert!(values.iter().any(|s| s.contains(v)), "{v} not stored: {values:?}");
    }
    assert!(!values.iter().any(|s| s.contains("105")));
    let _ = std::fs::remove_dir_all(&dir);

    // The C API: realer_client_new installs the fork-counting handler.
    let (url, ca) = (CString::new(sim.base_url()).unwrap(), sim.ca_pem());
    let (device, id, secret) = (
        CString::new(builtin::DEVICE_ID).unwrap(),
        CString::new(builtin::CLIENT_ID).unwrap(),
        CString::new(builtin::CLIENT_SECRET).unwrap(),
    );
    let mut client = null_mut();
    // SAFETY: plain C API calls with live arguments.
    unsafe {
        let cfg = realer_config_new();
        assert_eq!(realer_config_set_base_url(cfg, url.as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_ca_pem(cfg, ca.as_ptr(), ca.len()), REALER_OK);
        assert_eq!(realer_config_set_device_id(cfg, device.as_ptr()), REALER_OK);
        assert_eq!(realer_config_set_credentials(cfg, id.as_ptr(), secret.as_ptr()), REALER_OK);
        assert_eq!(realer_client_new(cfg, &mut client), REALER_OK);
        realer_config_free(cfg);
    }
    assert_eq!(c_post(client, "201"), REALER_FEED_OUTCOME_CREATED);
    let child = in_child(|| i32::from(c_post(client, "202") != REALER_FEED_OUTCOME_CREATED));
    assert_eq!(child, 0, "the child's post through the C API failed");
    assert_eq!(c_post(client, "203"), REALER_FEED_OUTCOME_CREATED, "the parent's, after the fork");
    // SAFETY: the client made above, freed once.
    unsafe { realer_client_free(client) };
    let values: Vec<String> = sim.records().iter().map(|r| r.item["value"].to_string()).collect();
    for v in ["201", "202", "203"] {
        assert!(values.iter().any(|s| s.contains(v)), "{v} not stored: {values:?}");
    }
}
