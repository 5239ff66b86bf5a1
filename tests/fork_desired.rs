//! fork() and the outbox file's second use, the desired-state memory (what was answered, the catalog values
//! acted on), through the C API: a child that fetches desired states through the client it inherited is
//! refused (the file's one connection is the parent's: using it, or closing it when the client is freed, would
//! act on SQLite's locks and WAL state of another process), while a client the child makes itself shares the
//! file with the parent: it does not offer what the parent answered, its answers land in the same file, and
//! the parent keeps pushing readings the whole time. Afterwards the parent's client still works, everything
//! is flushed, and SQLite's `PRAGMA integrity_check` finds the file sound. One test in this binary: fork()
//! keeps only the calling thread.

mod common;

use std::ffi::{CStr, CString};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use common::*;
use realer::ffi::client::*;
use realer::ffi::config::*;
use realer::ffi::desired::*;
use realer::ffi::error::*;
use realer::ffi::feed::*;
use realer::ffi::outbox::*;
use realer_sim::Flavour;

/// How long the child may run: it takes a few seconds; one that has not ended by then is deadlocked (what
/// this test exists to catch), and is killed rather than left to hang CI.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// The outbox's limit, in items: far above what the parent pushes while a sound child runs, so that a
/// runaway parent cannot fill the disk. The parent stops pushing short of it.
const OUTBOX_MAX_ITEMS: u64 = 20_000;
const MAX_PUSHES: usize = 19_000;

/// A C configuration for the demo device of `sim`, with an outbox at `path`.
fn outbox_config(sim: &Sim, path: &str) -> *mut realer_config {
    let cfg = c_config(sim, DEMO_DEVICE);
    let path = CString::new(path).unwrap();
    // SAFETY: a live configuration and string.
    assert_eq!(unsafe { realer_config_set_outbox(cfg, path.as_ptr(), OUTBOX_MAX_ITEMS, 0) }, REALER_OK);
    cfg
}

fn last_error() -> String {
    // SAFETY: realer_last_error is never NULL; its message lives until the next failing call on this thread.
    unsafe { CStr::from_ptr((*realer_last_error()).message).to_string_lossy().into_owned() }
}

/// Fetches desired states; the status, and (desired_id, action) of each state on success.
fn fetch(client: *const realer_client) -> (realer_status, Vec<(String, realer_desired_action)>) {
    let mut list = null_mut();
    // SAFETY: plain C API calls with live arguments; the list is freed once.
    unsafe {
        let status = realer_desired_states_fetch(client, &mut list);
        if status != REALER_OK {
            return (status, Vec::new());
        }
        let states = (0..realer_desired_states_len(list))
            .map(|i| {
                let mut s = std::mem::zeroed::<realer_desired_state>();
                assert_eq!(realer_desired_states_get(list, i, &mut s), REALER_OK);
                let id = if s.desired_id.is_null() { String::new() } else { cstr(s.desired_id) };
                (id, s.action)
            })
            .collect();
        realer_desired_states_free(list);
        (status, states)
    }
}

/// Answers every state of a fresh fetch through the outbox (applied, or stale as the list says); how many.
fn answer_all(client: *const realer_client) -> Result<usize, String> {
    let mut list = null_mut();
    // SAFETY: plain C API calls with live arguments; the list outlives the items that point into it.
    unsafe {
        if realer_desired_states_fetch(client, &mut list) != REALER_OK {
            return Err(format!("fetch: {}", last_error()));
        }
        let n = realer_desired_states_len(list);
        for i in 0..n {
            let mut s = std::mem::zeroed::<realer_desired_state>();
            assert_eq!(realer_desired_states_get(list, i, &mut s), REALER_OK);
            let status = match s.action {
                REALER_DESIRED_ACTION_STALE => REALER_REPORT_STATUS_STALE,
                _ => REALER_REPORT_STATUS_APPLIED,
            };
            let value = if s.value.is_null() { c"0".as_ptr() } else { s.value };
            let mut item = std::mem::zeroed::<realer_feed_item>();
            assert_eq!(realer_feed_item_init_answer(&mut item, &s, value, status), REALER_OK);
            if realer_outbox_push(client, &item, null_mut(), 0) != REALER_OK {
                realer_desired_states_free(list);
                return Err(format!("push of an answer: {}", last_error()));
            }
        }
        realer_desired_states_free(list);
        Ok(n)
    }
}

fn cstr(p: *const std::ffi::c_char) -> String {
    // SAFETY: a non-NULL string of a live list.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Pushes one reading of sensor 7 through the outbox.
fn push_reading(client: *const realer_client, n: usize) -> realer_status {
    let (sensor, value) = (CString::new("7").unwrap(), CString::new(format!("{}", 20 + n % 10)).unwrap());
    // SAFETY: plain C API calls with live arguments.
    unsafe {
        let mut item = std::mem::zeroed::<realer_feed_item>();
        assert_eq!(realer_feed_item_init(&mut item), REALER_OK);
        item.sensor_id = sensor.as_ptr();
        item.value = value.as_ptr();
        realer_outbox_push(client, &item, null_mut(), 0)
    }
}

/// The forked child: killed and reaped when dropped before it was reaped, so that a panic in the parent
/// (a failed assertion, the deadline) never leaves it running.
struct Child {
    pid: libc::pid_t,
    status: Option<i32>,
}

impl Child {
    /// Its wait status once it has ended (reaped once, remembered after).
    fn try_wait(&mut self) -> Option<i32> {
        if self.status.is_none() {
            let mut status = 0;
            // SAFETY: polls the child this process forked and has not reaped.
            let done = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            assert!(done == 0 || done == self.pid, "waitpid: {}", std::io::Error::last_os_error());
            if done == self.pid {
                self.status = Some(status);
            }
        }
        self.status
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            let mut status = 0;
            // SAFETY: the child this process forked and has not reaped: killed, then reaped.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, &mut status, 0);
            }
            self.status = Some(status);
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the child found, as bits of its exit status.
const INHERITED_USED: i32 = 1;
const OWN_CLIENT_FAILED: i32 = 2;
const PARENTS_ANSWER_OFFERED: i32 = 4;
const OWN_ANSWERS_MISSING: i32 = 8;
const CHILD_PANICKED: i32 = 16;

#[test]
fn a_forked_child_fetches_desired_states_while_the_parent_pushes() {
    let sim = sim_with(SimOptions { flavour: Flavour::V2, ..SimOptions::default() });
    let dir = std::env::temp_dir().join(format!("realer-fork-desired-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("outbox.db");
    let cfg = outbox_config(&sim, db.to_str().unwrap());
    let mut client = null_mut();
    // SAFETY: a live config and a writable out-pointer.
    assert_eq!(unsafe { realer_client_new(cfg, &mut client) }, REALER_OK);

    // Before the fork the parent answers what Realer wants (the built-in pending state, and the expired one
    // stale): the answers are queued and remembered in the file. Then a user wants command 4 at 21.5.
    let (status, before) = fetch(client);
    assert_eq!(status, REALER_OK, "{}", last_error());
    assert!(before.iter().any(|(id, a)| id == builtin::PENDING_DESIRED_ID && *a == REALER_DESIRED_ACTION_APPLY));
    assert_eq!(answer_all(client), Ok(before.len()));
    let wanted = sim.set_desired_value(builtin::DEVICE_ID, &builtin::PLAIN_COMMAND_ID.to_string(), "21.5").unwrap();

    // SAFETY: the child runs only librealer calls on its own thread and leaves with _exit; the sim's threads
    // wait in accept or read and hold no lock the child needs.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // A panic (a failed assertion) ends the child with its own bit: it never returns into the harness.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut code = 0;
            for _ in 0..3 {
                let (status, _) = fetch(client);
                if status != REALER_ERR_CONFIG {
                    eprintln!("child: the inherited client fetched desired states from the parent's file ({status})");
                    code |= INHERITED_USED;
                }
            }
            let mut own = null_mut();
            // SAFETY: the config is the parent's copy, untouched since; a writable out-pointer.
            if unsafe { realer_client_new(cfg, &mut own) } != REALER_OK {
                eprintln!("child: its own client: {}", last_error());
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(code | OWN_CLIENT_FAILED) };
            }
            match answer_all(own) {
                Ok(1) => {}
                other => {
                    eprintln!("child: answering the new state through its own client: {other:?}");
                    code |= OWN_CLIENT_FAILED;
                }
            }
            // Polls while the parent pushes: what either process answered is never offered again.
            for _ in 0..20 {
                let (status, states) = fetch(own);
                if status != REALER_OK {
                    eprintln!("child: fetch through its own client: {}", last_error());
                    code |= OWN_CLIENT_FAILED;
                    break;
                }
                if states.iter().any(|(id, _)| id == builtin::PENDING_DESIRED_ID) {
                    code |= PARENTS_ANSWER_OFFERED;
                }
                if states.iter().any(|(id, _)| *id == wanted.desired_id) {
                    code |= OWN_ANSWERS_MISSING;
                }
            }
            // SAFETY: both clients are freed once: the child's own, and the inherited one, whose SQLite
            // connection must be left alone.
            unsafe {
                realer_client_free(own);
                realer_client_free(client);
                libc::_exit(code);
            }
        }));
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(CHILD_PANICKED) };
    }

    let mut child = Child { pid, status: None };

    // The parent pushes readings, one synced commit each, for as long as the child runs (at least 20).
    let deadline = Instant::now() + CHILD_DEADLINE;
    let mut pushed = 0;
    let status = loop {
        if pushed < MAX_PUSHES {
            assert_eq!(push_reading(client, pushed), REALER_OK, "the parent's push: {}", last_error());
            pushed += 1;
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
        match child.try_wait() {
            Some(status) if pushed >= 20 => break status,
            _ if Instant::now() > deadline => {
                child.kill();
                panic!("the child had not ended {CHILD_DEADLINE:?} after the fork: killed (deadlocked?)");
            }
            _ => {}
        }
    };
    assert!(libc::WIFEXITED(status), "the child died ({status})");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child: 1 = used the inherited file, 2 = its own client failed, 4 = offered the parent's answer, \
         8 = offered its own answer again, 16 = panicked"
    );

    // The parent's client works on: the child's answer is in the shared memory, and everything is sent.
    let (status, after) = fetch(client);
    assert_eq!(status, REALER_OK, "{}", last_error());
    assert!(after.iter().all(|(id, _)| *id != wanted.desired_id), "answered in the child: {after:?}");
    let mut report = realer_flush_report { sent: 0, replayed: 0, rejected: 0, pending: 0 };
    // SAFETY: a live client and a writable report.
    assert_eq!(unsafe { realer_outbox_flush(client, 0, &mut report) }, REALER_OK, "{}", last_error());
    assert_eq!((report.sent, report.rejected, report.pending), (pushed as u64 + before.len() as u64 + 1, 0, 0));
    let answered: Vec<String> =
        sim.records().iter().filter_map(|r| r.item["desired_id"].as_str().map(str::to_string)).collect();
    assert!(answered.contains(&wanted.desired_id) && answered.iter().any(|d| d == builtin::PENDING_DESIRED_ID));
    // SAFETY: freed once, after its last use.
    unsafe {
        realer_client_free(client);
        realer_config_free(cfg);
    }

    let conn = rusqlite::Connection::open(&db).unwrap();
    let found: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(found, ["ok"], "the outbox file after the fork");
    let remembered: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM desired_answered WHERE desired_id IN (?1, ?2)",
            [builtin::PENDING_DESIRED_ID, wanted.desired_id.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(remembered, 2, "both processes' answers are remembered in the file");
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
}
