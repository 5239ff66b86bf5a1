//! Cancel: a firmware shutdown never waits on the network. Calls blocked on a server that never
//! answers, or one that drips its answer a byte at a time, return `Cancelled` promptly after
//! `Client::cancel`; later calls return it at once until `resume`; nothing is lost or stored twice. The
//! measured delays are printed (the target is 100 ms on loopback; the asserts allow 1 s for a loaded
//! machine, far below the 30 s request timeout they would otherwise take).

#![allow(clippy::result_large_err)]

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use realer::{Client, ErrorKind, FeedItem, FeedOutcome};

/// What cancelling may take here at most (a blocked call otherwise takes the whole request timeout).
const PROMPT: Duration = Duration::from_secs(1);

fn patient_client(sim: &Sim) -> Arc<Client> {
    let mut cfg = config(sim);
    cfg.set_timeouts(Duration::from_secs(5), Duration::from_secs(30)).unwrap();
    Arc::new(Client::new(&cfg).unwrap())
}

/// Runs `call` on another thread, cancels once it has had `after` to block, and returns what the call
/// returned and how long after the cancel it returned.
fn cancel_during<T: Send + 'static>(
    client: &Arc<Client>,
    after: Duration,
    call: impl FnOnce(&Client) -> T + Send + 'static,
) -> (T, Duration) {
    let c = Arc::clone(client);
    let worker = thread::spawn(move || {
        let r = call(&c);
        (r, Instant::now())
    });
    thread::sleep(after);
    let cancelled_at = Instant::now();
    client.cancel();
    let (r, ended) = worker.join().unwrap();
    (r, ended.saturating_duration_since(cancelled_at))
}

#[track_caller]
fn assert_prompt(what: &str, took: Duration) {
    println!("{what}: returned {} ms after the cancel", took.as_millis());
    assert!(took < PROMPT, "{what} took {took:?} after the cancel");
}

/// A patient client with an outbox in a fresh directory (removed by the caller).
fn outbox_client(sim: &Sim, name: &str) -> (Arc<Client>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("realer-cancel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = config(sim);
    cfg.set_timeouts(Duration::from_secs(5), Duration::from_secs(30)).unwrap();
    cfg.set_outbox(dir.join("outbox.db").to_str().unwrap(), 0, 0).unwrap();
    (Arc::new(Client::new(&cfg).unwrap()), dir)
}

fn reading(id: &str) -> FeedItem {
    FeedItem { message_id: Some(id.into()), ..FeedItem::sensor("7", "21.4") }
}

#[test]
fn a_post_blocked_on_a_silent_server_is_cancelled_promptly_and_sent_later_once() {
    let sim = sim();
    let client = patient_client(&sim);
    client.authenticate().unwrap();
    // The server stores the item, then never answers: the item may have reached Realer.
    sim.inject(Fault::StoreThenHang, Target::FeedData, 1);
    let (r, took) = cancel_during(&client, Duration::from_millis(300), |c| c.post_feed_data(&reading("c-1")));
    assert_prompt("post (silent server)", took);
    assert_eq!((r.outcome, r.message_id.as_str()), (FeedOutcome::NotSent, "c-1"));
    assert_eq!(r.error.as_ref().unwrap().kind, ErrorKind::Cancelled);
    // Refused at once until resume, without a request.
    let before = sim.request_log().len();
    let started = Instant::now();
    let again = client.post_feed_data(&reading("c-1"));
    assert_eq!((again.outcome, again.error.unwrap().kind), (FeedOutcome::NotSent, ErrorKind::Cancelled));
    assert!(started.elapsed() < PROMPT);
    assert_eq!(sim.request_log().len(), before, "nothing sent while cancelled");
    client.resume();
    // The same event again (its message_id and value_received_at): Realer had it, and says so; stored once.
    let sent =
        client.post_feed_data(&FeedItem { value_received_at: Some(r.value_received_at.clone()), ..reading("c-1") });
    assert_eq!(sent.outcome, FeedOutcome::Idempotent, "{sent:?}");
    let records = sim.records();
    assert_eq!((records.len(), records[0].times_received), (1, 2));
}

#[test]
fn a_post_on_a_dripping_server_and_a_catalog_fetch_are_cancelled_promptly() {
    let sim = sim();
    let client = patient_client(&sim);
    client.authenticate().unwrap();
    sim.inject(Fault::Drip { ms: 50 }, Target::FeedData, 1);
    let (r, took) = cancel_during(&client, Duration::from_millis(400), |c| c.post_feed_data(&reading("d-1")));
    assert_prompt("post (dripping server)", took);
    assert_eq!((r.outcome, r.error.unwrap().kind), (FeedOutcome::NotSent, ErrorKind::Cancelled));
    client.resume();

    sim.inject(Fault::Hang, Target::Catalog, 1);
    let (r, took) = cancel_during(&client, Duration::from_millis(300), |c| c.fetch_commands());
    assert_prompt("catalog fetch", took);
    assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
    client.resume();
    sim.inject(Fault::Drip { ms: 50 }, Target::Catalog, 1);
    let (r, took) = cancel_during(&client, Duration::from_millis(400), |c| c.fetch_commands());
    assert_prompt("catalog fetch (dripping)", took);
    assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
    client.resume();
    sim.inject(Fault::Drip { ms: 50 }, Target::Any, 1);
    let (r, took) = cancel_during(&client, Duration::from_millis(400), |c| c.fetch_desired_states());
    assert_prompt("desired states (dripping)", took);
    assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
    client.resume();
    assert_eq!(client.fetch_commands().unwrap().len(), 4);
}

#[test]
fn a_token_request_and_a_backoff_wait_are_cancelled() {
    let sim = sim();
    let client = patient_client(&sim);
    sim.inject(Fault::Hang, Target::Token, 1);
    let (r, took) = cancel_during(&client, Duration::from_millis(300), |c| c.authenticate());
    assert_prompt("token request", took);
    assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
    client.resume();
    // A 429 asking for 20 s: the wait before the retry ends with the cancel.
    let mut cfg = config(&sim);
    cfg.set_retry(3, Duration::from_millis(20), Duration::from_secs(25)).unwrap();
    cfg.set_timeouts(Duration::from_secs(5), Duration::from_secs(30)).unwrap();
    let waiting = Arc::new(Client::new(&cfg).unwrap());
    waiting.authenticate().unwrap();
    sim.inject(Fault::RateLimited { retry_after_secs: 20 }, Target::FeedData, 1);
    let (r, took) = cancel_during(&waiting, Duration::from_millis(300), |c| c.post_feed_data(&reading("b-1")));
    assert_prompt("backoff wait", took);
    assert_eq!(r.error.unwrap().kind, ErrorKind::Cancelled);
}

#[test]
fn a_flush_blocked_on_a_silent_server_keeps_every_item_and_a_later_flush_stores_each_once() {
    let sim = sim();
    let (client, dir) = outbox_client(&sim, "flush");
    let items: Vec<FeedItem> = (0..250).map(|i| reading(&format!("f-{i}"))).collect();
    client.outbox_push_many(&items).unwrap();
    // The first batch is answered; the second is stored but never answered.
    sim.inject(Fault::Delay { ms: 0 }, Target::Batch, 1);
    sim.inject(Fault::StoreThenHang, Target::Batch, 1);
    let ((report, err), took) = cancel_during(&client, Duration::from_millis(500), |c| c.outbox_flush(0));
    assert_prompt("outbox flush", took);
    assert_eq!(err.unwrap().kind, ErrorKind::Cancelled);
    assert_eq!((report.sent, report.pending), (100, 150), "{report:?}");
    client.resume();
    // The 100 that reached Realer unanswered come back as replays: each item is stored once.
    let (report, err) = client.outbox_flush(0);
    assert!(err.is_none(), "{err:?}");
    assert_eq!((report.sent, report.replayed, report.pending), (50, 100, 0), "{report:?}");
    let records = sim.records();
    assert_eq!(records.len(), 250);
    let mut ids: Vec<&str> = records.iter().map(|r| r.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 250, "no message_id stored twice");
    drop(client);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_flush_on_a_dripping_server_is_cancelled_and_keeps_its_items() {
    let sim = sim();
    let (client, dir) = outbox_client(&sim, "drip");
    client.outbox_push_many(&(0..20).map(|i| reading(&format!("drip-{i}"))).collect::<Vec<_>>()).unwrap();
    sim.inject(Fault::Drip { ms: 50 }, Target::Batch, 1);
    let ((report, err), took) = cancel_during(&client, Duration::from_millis(500), |c| c.outbox_flush(0));
    assert_prompt("outbox flush (dripping)", took);
    assert_eq!(err.unwrap().kind, ErrorKind::Cancelled);
    assert_eq!(report.pending, 20);
    client.resume();
    let (report, err) = client.outbox_flush(0);
    assert!(err.is_none(), "{err:?}");
    // The dripping server stored them: the resend is a replay under the same message_ids.
    assert_eq!((report.replayed, report.pending), (20, 0), "{report:?}");
    assert_eq!(sim.records().len(), 20);
    drop(client);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eight_threads_cancel_at_once_while_four_calls_are_blocked() {
    let sim = sim();
    let client = patient_client(&sim);
    client.authenticate().unwrap();
    sim.inject(Fault::Hang, Target::FeedData, 4);
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let c = Arc::clone(&client);
            thread::spawn(move || {
                let r = c.post_feed_data(&reading(&format!("m-{i}")));
                (r, Instant::now())
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(400));
    let barrier = Arc::new(Barrier::new(8));
    let cancelled_at = Instant::now();
    let cancellers: Vec<_> = (0..8)
        .map(|_| {
            let (c, b) = (Arc::clone(&client), Arc::clone(&barrier));
            thread::spawn(move || {
                b.wait();
                c.cancel();
            })
        })
        .collect();
    cancellers.into_iter().for_each(|t| t.join().unwrap());
    for w in workers {
        let (r, ended) = w.join().unwrap();
        assert_eq!(r.error.unwrap().kind, ErrorKind::Cancelled);
        assert_prompt("one of four blocked posts", ended.saturating_duration_since(cancelled_at));
    }
    client.resume();
    for i in 0..4 {
        assert_eq!(client.post_feed_data(&reading(&format!("m-{i}"))).outcome, FeedOutcome::Created);
    }
}
