//! The outbox through every fault realer-sim can produce: each test ends with the sim holding every pushed
//! `message_id` exactly once and the outbox empty. The kill test runs a child process that is SIGKILLed at
//! random instants while it pushes and flushes 10,000 readings.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use realer::{Client, Config, ErrorKind, FeedItem, FullPolicy};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "realer-outbox-{tag}-{}-{}",
        std::process::id(),
        realer::time::now_unix_ms()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn outbox_config(sim: &Sim, db: &Path) -> Config {
    let mut c = config(sim);
    c.set_outbox(db.to_str().unwrap(), 0, 0).unwrap();
    c
}

/// Reading `i` of a run: a fixed identity, so a resend is byte-for-byte the same item.
fn reading(tag: &str, i: usize) -> FeedItem {
    FeedItem {
        message_id: Some(format!("{tag}-{i}")),
        value_received_at: realer::time::format_rfc3339_ms(1_777_025_700_000 + i as i64 * 1000),
        ..FeedItem::sensor(if i.is_multiple_of(2) { "7" } else { "8" }, &format!("{}.5", i % 40))
    }
}

fn push(c: &Client, tag: &str, n: usize) -> Vec<String> {
    let items: Vec<FeedItem> = (0..n).map(|i| reading(tag, i)).collect();
    items.chunks(100).flat_map(|chunk| c.outbox_push_many(chunk).unwrap()).collect()
}

/// Flushes until the outbox is empty (at most `rounds` flushes), returning the last report.
fn drain(c: &Client, rounds: usize) -> realer::FlushReport {
    let mut last = Default::default();
    for _ in 0..rounds {
        let (report, err) = c.outbox_flush(0);
        last = report;
        if err.is_none() && report.pending == 0 {
            return report;
        }
    }
    panic!("outbox not drained after {rounds} flushes: {last:?}");
}

/// The sim holds exactly `ids`, each once, and the outbox is empty.
#[track_caller]
fn assert_exactly_once(sim: &Sim, c: &Client, ids: &[String]) {
    let records = sim.records();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in &records {
        *seen.entry(r.message_id.as_str()).or_default() += 1;
    }
    let want: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let got: BTreeSet<&str> = seen.keys().copied().collect();
    assert_eq!(got.len(), want.len(), "stored {} distinct ids, pushed {}", got.len(), want.len());
    assert!(got == want, "stored ids differ from pushed ids");
    assert!(seen.values().all(|&n| n == 1), "some message_id is stored twice");
    let stats = c.outbox_stats().unwrap();
    assert_eq!((stats.pending, stats.bytes, stats.oldest_age_ms), (0, 0, None), "{stats:?}");
}

#[test]
fn push_is_durable_and_flush_sends_in_batches_of_100() {
    let sim = sim();
    let dir = temp_dir("basic");
    let db = dir.join("outbox.db");
    let ids = {
        let c = Client::new(&outbox_config(&sim, &db)).unwrap();
        let one = c.outbox_push(&FeedItem::sensor("7", "20.0")).unwrap();
        assert!(one.starts_with("rl-"));
        let mut ids = vec![one];
        ids.extend(push(&c, "basic", 249));
        let s = c.outbox_stats().unwrap();
        assert_eq!(s.pending, 250);
        assert!(s.bytes > 250 * 80 && s.oldest_age_ms.is_some());
        ids
        // The client is dropped: only the file remains, as after a restart.
    };
    let c = Client::new(&outbox_config(&sim, &db)).unwrap();
    let report = c.outbox_flush(120).0;
    assert_eq!((report.sent, report.pending), (120, 130));
    let report = drain(&c, 1);
    assert_eq!((report.sent, report.replayed, report.rejected), (130, 0, 0));
    assert_eq!(sim.request_log().iter().filter(|e| e.path.ends_with("/batches")).count(), 2 + 2);
    assert_exactly_once(&sim, &c, &ids);
    // A repeated push of an already pending item is not a second copy; the same id with another payload is refused.
    c.outbox_push(&reading("again", 1)).unwrap();
    c.outbox_push(&reading("again", 1)).unwrap();
    assert_eq!(c.outbox_stats().unwrap().pending, 1);
    let e = c.outbox_push(&FeedItem { value: Some("other".into()), ..reading("again", 1) }).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn refused_items_become_dead_letters_and_can_be_cleared() {
    let sim = sim();
    let dir = temp_dir("dead");
    let c = Client::new(&outbox_config(&sim, &dir.join("o.db"))).unwrap();
    let mut ids = push(&c, "dead", 3);
    c.outbox_push(&FeedItem { message_id: Some("unknown-sensor".into()), ..FeedItem::sensor("99", "1") }).unwrap();
    let report = drain(&c, 1);
    assert_eq!((report.sent, report.rejected, report.pending), (3, 1, 0));
    let dead = c.outbox_dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].message_id.as_str(), dead[0].code, dead[0].error_type.as_str()),
        ("unknown-sensor", 4022, "validation_failed")
    );
    assert!(dead[0].details_json.contains("sensor_id") && dead[0].item_json.contains("\"sensor_id\":99"));
    assert_eq!(c.outbox_stats().unwrap().dead, 1);
    assert_eq!(c.outbox_clear_dead().unwrap(), 1);
    assert_eq!(c.outbox_stats().unwrap().dead, 0);
    assert_exactly_once(&sim, &c, &std::mem::take(&mut ids));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_refusal_of_the_whole_request_keeps_the_items_pending() {
    // A token without feed-data scope: Realer refuses every batch request (403) without judging its items.
    let sim = sim();
    let dir = temp_dir("refused");
    let db = dir.join("o.db");
    let mut cfg = outbox_config(&sim, &db);
    cfg.set_scope("iot:catalog:read").unwrap();
    let c = Client::new(&cfg).unwrap();
    let ids = push(&c, "refused", 150);
    for _ in 0..3 {
        let (report, err) = c.outbox_flush(0);
        assert_eq!(err.map(|e| (e.kind, e.code)), Some((ErrorKind::Api, 4003)));
        assert_eq!((report.rejected, report.pending), (0, 150));
    }
    assert_eq!(c.outbox_stats().unwrap().dead, 0, "no reading became a dead letter");
    // With the right scope, the same outbox delivers them all.
    drain(&Client::new(&outbox_config(&sim, &db)).unwrap(), 1);
    assert_exactly_once(&sim, &c, &ids);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_full_outbox_refuses_or_drops_the_oldest_as_configured() {
    let sim = sim();
    let dir = temp_dir("full");
    let mut cfg = config(&sim);
    cfg.set_outbox(dir.join("refuse.db").to_str().unwrap(), 10, 0).unwrap();
    let c = Client::new(&cfg).unwrap();
    push(&c, "full", 10);
    let e = c.outbox_push(&reading("full", 10)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::OutboxFull);
    assert_eq!(c.outbox_stats().unwrap().pending, 10);
    let e = c.outbox_push_many(&[reading("x", 1), reading("x", 2)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::OutboxFull);

    let mut cfg = config(&sim);
    cfg.set_outbox(dir.join("drop.db").to_str().unwrap(), 10, 0).unwrap();
    cfg.set_outbox_when_full(FullPolicy::DropOldest).unwrap();
    let c = Client::new(&cfg).unwrap();
    let mut ids = push(&c, "drop", 10);
    for i in 10..15 {
        ids.push(c.outbox_push(&reading("drop", i)).unwrap());
    }
    let s = c.outbox_stats().unwrap();
    assert_eq!((s.pending, s.dropped), (10, 5));
    drain(&c, 1);
    assert_exactly_once(&sim, &c, &ids[5..]);
    // Drop-oldest never takes an item the same push vouches for: A stays, B and C go.
    let mut cfg = config(&sim);
    cfg.set_outbox(dir.join("vouch.db").to_str().unwrap(), 3, 0).unwrap();
    cfg.set_outbox_when_full(FullPolicy::DropOldest).unwrap();
    let v = Client::new(&cfg).unwrap();
    push(&v, "v", 3);
    v.outbox_push_many(&[reading("v", 3), reading("v", 4), reading("v", 0)]).unwrap();
    assert_eq!(v.outbox_stats().unwrap().dropped, 2);
    drain(&v, 1);
    assert_exactly_once(&sim, &v, &[ids[5..].to_vec(), vec!["v-0".into(), "v-3".into(), "v-4".into()]].concat());

    // A group larger than the whole outbox is refused even with drop-oldest.
    assert_eq!(
        c.outbox_push_many(&(0..11).map(|i| reading("big", i)).collect::<Vec<_>>()).unwrap_err().kind,
        ErrorKind::OutboxFull
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fault_503_storm() {
    let sim = sim();
    let dir = temp_dir("503");
    let mut cfg = outbox_config(&sim, &dir.join("o.db"));
    cfg.set_retry(3, Duration::from_millis(5), Duration::from_millis(20)).unwrap();
    let c = Client::new(&cfg).unwrap();
    let ids = push(&c, "storm", 150);
    sim.inject(Fault::ServiceUnavailable, Target::Batch, 7);
    let (report, err) = c.outbox_flush(0);
    let err = err.unwrap();
    assert_eq!((err.kind, err.code, err.retryable, report.pending), (ErrorKind::Api, 5003, true, 150));
    drain(&c, 3);
    assert_exactly_once(&sim, &c, &ids);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fault_429_retry_after_is_honoured() {
    let sim = sim();
    let dir = temp_dir("429");
    let mut cfg = outbox_config(&sim, &dir.join("o.db"));
    cfg.set_retry(3, Duration::from_millis(5), Duration::from_secs(3)).unwrap();
    let c = Client::new(&cfg).unwrap();
    let ids = push(&c, "rl", 20);
    sim.inject(Fault::RateLimited { retry_after_secs: 1 }, Target::Batch, 1);
    let started = Instant::now();
    let report = drain(&c, 1);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1), "Retry-After of 1 s honoured, waited {waited:?}");
    assert_eq!(report.sent, 20);
    assert_exactly_once(&sim, &c, &ids);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fault_proxy_502_html_page() {
    let sim = sim();
    let dir = temp_dir("502");
    let c = Client::new(&outbox_config(&sim, &dir.join("o.db"))).unwrap();
    let ids = push(&c, "proxy", 30);
    sim.inject(Fault::ProxyBadGateway, Target::Batch, 2);
    drain(&c, 1);
    assert_exactly_once(&sim, &c, &ids);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fault_connection_closed_before_and_after_the_server_stored_the_batch() {
    let sim = sim();
    let dir = temp_dir("closed");
    let c = Client::new(&outbox_config(&sim, &dir.join("o.db"))).unwrap();
    let ids = push(&c, "closed", 40);
    sim.inject(Fault::CloseBeforeAnswer, Target::Batch, 1);
    assert_eq!(drain(&c, 1).sent, 40);
    let more = push(&c, "stored", 40);
    sim.inject(Fault::StoreThenClose, Target::Batch, 1);
    let report = drain(&c, 1);
    assert_eq!((report.sent, report.replayed), (0, 40), "the resend of a stored batch is answered idempotent");
    assert_exactly_once(&sim, &c, &[ids, more].concat());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fault_every_token_expires_in_the_middle_of_a_flush() {
    let sim = sim();
    let dir = temp_dir("expire");
    let c = Client::new(&outbox_config(&sim, &dir.join("o.db"))).unwrap();
    let ids = push(&c, "exp", 300);
    c.authenticate().unwrap();
    sim.inject(Fault::Delay { ms: 400 }, Target::Batch, 1);
    std::thread::scope(|s| {
        let flush = s.spawn(|| c.outbox_flush(0));
        std::thread::sleep(Duration::from_millis(150));
        sim.expire_all_tokens();
        let (report, err) = flush.join().unwrap();
        assert!(err.is_none(), "{err:?}");
        assert_eq!(report.sent, 300);
    });
    assert_eq!(sim.tokens_issued(), 2);
    assert!(sim.request_log().iter().any(|e| e.path.ends_with("/batches") && e.status == 401));
    assert_exactly_once(&sim, &c, &ids);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fault_the_server_stops_and_starts_again_in_the_middle_of_a_flush() {
    let sim = sim();
    let dir = temp_dir("restart");
    let mut cfg = outbox_config(&sim, &dir.join("o.db"));
    cfg.set_retry(3, Duration::from_millis(10), Duration::from_millis(50)).unwrap();
    let c = Client::new(&cfg).unwrap();
    let ids = push(&c, "restart", 400);
    sim.inject(Fault::Delay { ms: 50 }, Target::Batch, 4);
    std::thread::scope(|s| {
        let flush = s.spawn(|| c.outbox_flush(0));
        std::thread::sleep(Duration::from_millis(120));
        sim.set_down(true);
        let (report, err) = flush.join().unwrap();
        let err = err.expect("the flush fails while the server is down");
        assert!(matches!(err.kind, ErrorKind::Network | ErrorKind::Timeout), "{err:?}");
        assert!(report.pending > 0, "{report:?}");
    });
    sim.set_down(false);
    drain(&c, 2);
    assert_exactly_once(&sim, &c, &ids);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fault_a_server_that_never_answers_costs_one_timeout() {
    let sim = sim();
    let dir = temp_dir("hang");
    let mut cfg = outbox_config(&sim, &dir.join("o.db"));
    cfg.set_timeouts(Duration::from_secs(1), Duration::from_secs(1)).unwrap();
    let c = Client::new(&cfg).unwrap();
    c.authenticate().unwrap();
    let ids = push(&c, "hang", 250);
    sim.inject(Fault::Hang, Target::Batch, 1000);
    let started = Instant::now();
    let (report, err) = c.outbox_flush(0);
    let took = started.elapsed();
    assert_eq!(err.unwrap().kind, ErrorKind::Timeout);
    assert!(took < Duration::from_secs(2), "returned within its timeout: {took:?}");
    assert_eq!(report.pending, 250);
    sim.clear_faults();
    drain(&c, 2);
    assert_exactly_once(&sim, &c, &ids);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn two_clients_share_one_outbox_file() {
    let sim = sim();
    let dir = temp_dir("shared");
    let db = dir.join("o.db");
    let (a, b) = (Client::new(&outbox_config(&sim, &db)).unwrap(), Client::new(&outbox_config(&sim, &db)).unwrap());
    let ids: Vec<String> = std::thread::scope(|s| {
        let pa = s.spawn(|| push(&a, "a", 500));
        let pb = s.spawn(|| push(&b, "b", 500));
        let flusher = s.spawn(|| {
            for _ in 0..5 {
                let _ = a.outbox_flush(0);
            }
        });
        let ids = [pa.join().unwrap(), pb.join().unwrap()].concat();
        flusher.join().unwrap();
        ids
    });
    drain(&b, 2);
    assert_exactly_once(&sim, &a, &ids);
    std::fs::remove_dir_all(dir).unwrap();
}

const KILL_TOTAL: usize = 10_000;

/// The child of `killed_at_random_instants_loses_and_duplicates_nothing`: pushes readings in groups of 50
/// from where its progress file says, flushing every 500, until all 10,000 are pushed and flushed.
#[test]
#[ignore = "run as a child process by killed_at_random_instants_loses_and_duplicates_nothing"]
fn kill_child() {
    let Ok(db) = std::env::var("KILL_CHILD_DB") else { return };
    let mut cfg = Config::new();
    cfg.set_base_url(&std::env::var("KILL_CHILD_URL").unwrap()).unwrap();
    cfg.set_ca_file(&std::env::var("KILL_CHILD_CA").unwrap()).unwrap();
    cfg.set_device_id(builtin::DEVICE_ID).unwrap();
    cfg.set_credentials(builtin::CLIENT_ID, builtin::CLIENT_SECRET).unwrap();
    cfg.set_retry(5, Duration::from_millis(10), Duration::from_millis(100)).unwrap();
    cfg.set_outbox(&db, 0, 0).unwrap();
    let c = Client::new(&cfg).unwrap();
    let progress = PathBuf::from(format!("{db}.progress"));
    let mut next: usize = std::fs::read_to_string(&progress).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    while next < KILL_TOTAL {
        let group: Vec<FeedItem> = (next..(next + 50).min(KILL_TOTAL)).map(|i| reading("kill", i)).collect();
        c.outbox_push_many(&group).unwrap();
        next += group.len();
        // Written after the push: a kill in between only makes the next run push the group again.
        std::fs::write(&progress, next.to_string()).unwrap();
        if next.is_multiple_of(500) {
            let _ = c.outbox_flush(0);
        }
    }
    drain(&c, 10);
    println!("KILL_CHILD_DONE");
}

#[test]
fn killed_at_random_instants_loses_and_duplicates_nothing() {
    use std::hash::{BuildHasher, Hasher};
    let sim = sim();
    let dir = temp_dir("kill");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let db = dir.join("outbox.db");
    let spawn = || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kill_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("KILL_CHILD_DB", &db)
            .env("KILL_CHILD_URL", sim.base_url())
            .env("KILL_CHILD_CA", &ca)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let random = |bound: u64| std::collections::hash_map::RandomState::new().build_hasher().finish() % bound;
    let progress = PathBuf::from(format!("{}.progress", db.display()));
    let read_progress =
        || std::fs::read_to_string(&progress).ok().and_then(|s| s.trim().parse::<usize>().ok()).unwrap_or(0);
    // Kill k lands once the child has pushed a random count in its own band of the run, plus a random few
    // milliseconds: always mid-run (whatever the machine's speed), anywhere in a push or a flush.
    for k in 0..5usize {
        let target = k * 1900 + 300 + random(1500) as usize;
        let mut child = spawn();
        let deadline = Instant::now() + Duration::from_secs(60);
        while read_progress() < target {
            assert!(child.try_wait().unwrap().is_none(), "the child ended before kill {}", k + 1);
            assert!(Instant::now() < deadline, "the child made no progress");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(random(15)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        eprintln!("kill {} at {} pushed, {} stored", k + 1, read_progress(), sim.records().len());
    }
    let out = spawn().wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("KILL_CHILD_DONE"), "the last run completes");
    let ids: Vec<String> = (0..KILL_TOTAL).map(|i| format!("kill-{i}")).collect();
    let c = Client::new(&outbox_config(&sim, &db)).unwrap();
    assert_exactly_once(&sim, &c, &ids);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Every file the outbox at `db` keeps (the database, its WAL and shared-memory index, and any companion
/// file named after it), with its size in bytes.
fn outbox_files(db: &Path) -> Vec<(String, u64)> {
    let name = db.file_name().unwrap().to_str().unwrap();
    let mut files: Vec<(String, u64)> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(name) && !n.ends_with(".progress")))
        .map(|e| {
            use std::os::unix::fs::MetadataExt;
            let m = e.metadata().unwrap();
            // What the file takes on disk, or its length if that is more (a sparse file counts in full).
            (e.file_name().to_str().unwrap().to_string(), m.len().max(m.blocks() * 512))
        })
        .collect();
    files.sort();
    files
}

/// Bytes of the item JSON the outbox holds: pending items, and dead letters with Realer's error.
fn item_bytes(c: &Client) -> u64 {
    let dead: usize = c
        .outbox_dead_letters()
        .unwrap()
        .iter()
        .map(|d| d.item_json.len() + d.error_type.len() + d.message.len() + d.details_json.len())
        .sum();
    c.outbox_stats().unwrap().bytes + dead as u64
}

/// The fixed overhead the outbox's files may take beyond twice its item bytes (README, "Offline outbox").
const FILES_OVERHEAD: u64 = 1792 * 1024;

#[track_caller]
fn assert_files_bounded(db: &Path, c: &Client, when: &str) -> u64 {
    let files = outbox_files(db);
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let items = item_bytes(c);
    eprintln!("{when}: {total} bytes in files {files:?} for {items} item bytes");
    assert!(total <= 2 * items + FILES_OVERHEAD, "{when}: files take {total} bytes for {items} item bytes: {files:?}");
    total
}

#[test]
fn dead_letters_count_within_the_limits_and_the_files_stay_bounded() {
    let sim = sim();
    let dir = temp_dir("bounded");
    let db = dir.join("o.db");
    let mut cfg = config(&sim);
    cfg.set_outbox(db.to_str().unwrap(), 100, 0).unwrap();
    let c = Client::new(&cfg).unwrap();
    // 3,000 readings of a sensor Realer does not know, 100 at a time: every one becomes a dead letter.
    for round in 0..30 {
        let items: Vec<FeedItem> = (0..100)
            .map(|i| FeedItem { message_id: Some(format!("dead-{round}-{i}")), ..FeedItem::sensor("99", "1") })
            .collect();
        c.outbox_push_many(&items).unwrap();
        assert_eq!(drain(&c, 1).rejected, 100);
        let s = c.outbox_stats().unwrap();
        assert!(s.pending + s.dead <= 100, "round {round}: {s:?}");
    }
    let dead = c.outbox_dead_letters().unwrap();
    assert_eq!(dead.len(), 100);
    assert_eq!(dead[0].message_id, "dead-29-0", "the oldest dead letters went first");
    assert_eq!(c.outbox_stats().unwrap().dead_dropped, 2_900, "each one dropped is counted");
    assert_files_bounded(&db, &c, "100 dead letters");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_files_stay_within_twice_the_item_bytes_and_shrink_when_drained() {
    let sim = sim();
    let dir = temp_dir("files");
    let db = dir.join("o.db");
    let c = Client::new(&outbox_config(&sim, &db)).unwrap();
    let mut ids = Vec::new();
    for round in 0..4 {
        ids.extend(push(&c, &format!("files{round}"), 5_000));
        assert_files_bounded(&db, &c, &format!("{} pending", ids.len()));
    }
    // One by one, as a firmware loop pushes: the WAL still stays small.
    for i in 0..500 {
        ids.push(c.outbox_push(&reading("single", i)).unwrap());
    }
    assert_files_bounded(&db, &c, &format!("{} pending", ids.len()));
    drain(&c, 1);
    let total = assert_files_bounded(&db, &c, "drained");
    assert!(total <= FILES_OVERHEAD, "drained: {total} bytes");
    assert_exactly_once(&sim, &c, &ids);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn two_flushers_split_the_work_and_send_each_item_once() {
    let sim = sim();
    let dir = temp_dir("split");
    let db = dir.join("o.db");
    let (a, b) = (Client::new(&outbox_config(&sim, &db)).unwrap(), Client::new(&outbox_config(&sim, &db)).unwrap());
    let ids = push(&a, "split", 1_000);
    a.authenticate().unwrap();
    b.authenticate().unwrap();
    // Each batch answer takes 40 ms, so the two flushes run side by side for their whole length.
    sim.inject(Fault::Delay { ms: 40 }, Target::Batch, 1_000);
    let (ra, rb) = std::thread::scope(|s| {
        let fa = s.spawn(|| a.outbox_flush(0));
        let fb = s.spawn(|| b.outbox_flush(0));
        (fa.join().unwrap(), fb.join().unwrap())
    });
    sim.clear_faults();
    assert!(ra.1.is_none() && rb.1.is_none(), "{ra:?} {rb:?}");
    let (ra, rb) = (ra.0, rb.0);
    assert_eq!((ra.replayed, rb.replayed), (0, 0), "an item was sent twice: {ra:?} {rb:?}");
    assert_eq!(ra.sent + rb.sent, 1_000, "{ra:?} {rb:?}");
    assert!(ra.sent > 0 && rb.sent > 0, "both flushes took a share: {ra:?} {rb:?}");
    let items_received: u32 = sim.records().iter().map(|r| r.times_received).sum();
    assert_eq!(items_received, 1_000, "the sim received each item once");
    assert_eq!(sim.request_log().iter().filter(|e| e.path.ends_with("/batches")).count(), 10);
    assert_exactly_once(&sim, &a, &ids);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A tmpfs of `size` mounted on `dir` for the life of the value (root only).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None`, after saying why on stderr, when this process is not root and cannot mount.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
        if euid != Some("0") {
            eprintln!("SKIPPED: mounting a small tmpfs needs root (effective uid {euid:?}); CI runs this test as root");
            return None;
        }
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {}", String::from_utf8_lossy(&out.stderr));
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes a file at `path` until the disk refuses one more byte.
fn fill_disk(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [65_536usize, 4096, 512, 1] {
        while f.write_all(&vec![0xa5; chunk]).is_ok() {}
    }
    let _ = f.sync_all();
}

/// Pushes groups of `group` items made by `item` until the disk (a tmpfs of `size`) is full, lets another
/// program take the last byte, restarts, and flushes: every item leaves, each reaches Realer once, and pushes
/// are accepted again.
fn full_disk_drains(tag: &str, size: &str, group: usize, item: fn(usize) -> FeedItem) {
    let sim = sim();
    let dir = temp_dir(tag);
    let Some(tmpfs) = Tmpfs::mount(&dir, size) else { return };
    let db = dir.join("o.db");
    let c = Client::new(&outbox_config(&sim, &db)).unwrap();
    let mut ids = Vec::new();
    // Until the disk is full: the group that does not fit is refused whole.
    loop {
        let items: Vec<FeedItem> = (ids.len()..ids.len() + group).map(item).collect();
        match c.outbox_push_many(&items) {
            Ok(stored) => ids.extend(stored),
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Storage, "{e:?}");
                break;
            }
        }
    }
    assert!(ids.len() >= 10 * group, "only {} items fit", ids.len());
    // Another program takes what is left, to the last byte.
    fill_disk(&dir.join("other-program"));
    // One by one, pushes go on only while what SQLite already holds has room, then they are refused.
    let refused = loop {
        match c.outbox_push(&item(ids.len())) {
            Ok(id) => ids.push(id),
            Err(e) => break e,
        }
    };
    assert_eq!(refused.kind, ErrorKind::Storage, "{refused:?}");
    assert_eq!(c.outbox_stats().unwrap().pending, ids.len() as u64, "nothing stored was lost");
    // A restart on the full disk, then a flush to a healthy server: every item leaves.
    drop(c);
    let c = Client::new(&outbox_config(&sim, &db)).unwrap();
    let report = drain(&c, 3);
    assert_eq!(report.pending, 0);
    assert_exactly_once(&sim, &c, &ids);
    // The space the sent items took is free again: pushes are accepted while the other file stays.
    let mut more = push(&c, "again", 300);
    std::fs::remove_file(dir.join("other-program")).unwrap();
    more.extend(push(&c, "later", 300));
    drain(&c, 1);
    assert_exactly_once(&sim, &c, &[ids, more].concat());
    drop(c);
    drop(tmpfs);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_full_disk_refuses_pushes_and_a_flush_still_drains() {
    full_disk_drains("tmpfs", "3m", 100, |i| reading("disk", i));
}

#[test]
fn a_full_disk_of_medium_items_still_drains() {
    // 13 items of 1.1 KiB a push, just below the probe: nearly every page the WAL holds is a new one.
    full_disk_drains("tmpfs-medium", "4m", 13, |i| FeedItem {
        value: Some(format!("{i:08}").repeat(128)),
        ..reading("medium", i)
    });
}

#[test]
fn a_disk_that_fills_between_pushes_still_drains() {
    // Pushes of one 16 KiB item (just below the probe) while the disk has room: of all pushes, those add the
    // most pages the database file does not have yet. 26 of them fill a new WAL to just below its first
    // checkpoint. Then another program takes every byte, with no refused push to leave slack in the WAL:
    // emptying the WAL must fit in the reserve (this fails with a reserve of 256 KiB).
    let sim = sim();
    let dir = temp_dir("tmpfs-between");
    let Some(tmpfs) = Tmpfs::mount(&dir, "8m") else { return };
    let db = dir.join("o.db");
    let c = Client::new(&outbox_config(&sim, &db)).unwrap();
    let item = |i: usize| FeedItem { value: Some(format!("{i:08}").repeat(2000)), ..reading("between", i) };
    let mut ids = Vec::new();
    for _ in 0..26 {
        let group: Vec<FeedItem> = (ids.len()..ids.len() + 1).map(item).collect();
        ids.extend(c.outbox_push_many(&group).unwrap());
    }
    fill_disk(&dir.join("other-program"));
    let report = drain(&c, 3);
    assert_eq!(report.pending, 0);
    assert_exactly_once(&sim, &c, &ids);
    std::fs::remove_file(dir.join("other-program")).unwrap();
    let more = push(&c, "after", 100);
    drain(&c, 1);
    assert_exactly_once(&sim, &c, &[ids, more].concat());
    drop(c);
    drop(tmpfs);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_large_push_on_a_full_disk_is_refused_and_the_outbox_still_drains() {
    // 100 items of 8 KiB: one push writes more than the reserve holds.
    let sim = sim();
    let dir = temp_dir("tmpfs-large");
    let Some(tmpfs) = Tmpfs::mount(&dir, "6m") else { return };
    let db = dir.join("o.db");
    let c = Client::new(&outbox_config(&sim, &db)).unwrap();
    let group = |from: usize| -> Vec<FeedItem> {
        (from..from + 100)
            .map(|i| FeedItem { value: Some(format!("{i:08}").repeat(1024)), ..reading("large", i) })
            .collect()
    };
    let mut ids = c.outbox_push_many(&group(0)).unwrap();
    fill_disk(&dir.join("other-program"));
    // The WAL that push left is cut back when the next one starts, which gives that one room for its own
    // frames, but none for the checkpoint that must follow. Stored, it would leave more to checkpoint than
    // the reserve gives back; it is refused.
    match c.outbox_push_many(&group(100)) {
        Ok(stored) => ids.extend(stored),
        Err(e) => assert_eq!(e.kind, ErrorKind::Storage, "{e:?}"),
    }
    let report = drain(&c, 3);
    assert_eq!(report.pending, 0);
    assert_exactly_once(&sim, &c, &ids);
    assert_eq!(ids.len(), 100, "the second push was refused");
    std::fs::remove_file(dir.join("other-program")).unwrap();
    ids.extend(c.outbox_push_many(&group(100)).unwrap());
    drain(&c, 1);
    assert_exactly_once(&sim, &c, &ids);
    drop(c);
    drop(tmpfs);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A fleet whose Realer was away for long must not come back all at once: once flushes have failed for want
/// of Realer for more than 15 s, each flush waits a random while (full jitter, in a window as long as the
/// outage, capped) before it sends again, and one that sends makes one attempt per request instead of retrying
/// within the call. A flush called during the wait sends nothing and says how long to wait; the first flush
/// Realer answers ends it and delivers everything. (bench/fleet measures what this does to a thousand devices.)
/// The 15 s are lowered to 2 s on this test's thread, so that it takes seconds, with a second of margin on
/// each side of the threshold.
#[test]
fn flushes_after_a_long_outage_are_spread_out_and_probe_once() {
    const LONG_OFFLINE: Duration = Duration::from_secs(2);
    realer::test_hooks::set_long_offline_on_this_thread(Some(LONG_OFFLINE));
    let sim = sim();
    let dir = temp_dir("paced");
    let db = dir.join("o.db");
    let mut cfg = outbox_config(&sim, &db);
    cfg.set_retry(3, Duration::from_millis(10), Duration::from_millis(200)).unwrap();
    let c = Client::new(&cfg).unwrap();
    let ids = push(&c, "paced", 5);
    // Realer away: a load balancer answers 503 to everything.
    sim.inject(Fault::ServiceUnavailable, Target::Any, 1_000_000);
    let requests = || sim.stats().total;
    let flush_every = Duration::from_millis(200);
    // The library's clock starts when the first failed flush ends: between `started` (before it began) and
    // `first_failure` (after it returned).
    let started = Instant::now();
    let mut first_failure = None;
    // A short outage: every flush retries within its call (3 attempts), none is held back. The last begins
    // within 1 s of the outage, a second short of the threshold.
    while started.elapsed() < LONG_OFFLINE / 2 {
        let before = requests();
        let (report, err) = c.outbox_flush(0);
        first_failure.get_or_insert_with(Instant::now);
        assert_eq!((report.pending, err.as_ref().map(|e| e.http_status)), (5, Some(503)), "{err:?}");
        assert_eq!(requests() - before, 3, "a flush retries within its call while the outage is short");
        std::thread::sleep(flush_every);
    }
    // A gap (smoothed into the interval between flushes), until the outage is surely long.
    let first_failure = first_failure.unwrap();
    std::thread::sleep((LONG_OFFLINE + Duration::from_millis(500)).saturating_sub(first_failure.elapsed()));
    // A long one: flushes are held back a random while, and those that send make one attempt.
    let (mut held, mut probes) = (0, 0);
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(2500) {
        let before = requests();
        let (report, err) = c.outbox_flush(0);
        let err = err.expect("Realer is still away");
        assert_eq!(report.pending, 5);
        match requests() - before {
            0 => {
                held += 1;
                assert_eq!((err.kind, err.retryable), (ErrorKind::Network, true), "{err:?}");
                let wait = err.retry_after.expect("a held flush says how long to wait");
                // The window: 6 of the intervals between flushes (about 250 ms here), the 1.5 s gap smoothed in.
                assert!(wait <= Duration::from_secs(5), "{wait:?}");
                assert!(err.message.contains("the next flush sends in"), "{}", err.message);
            }
            1 => {
                probes += 1;
                assert_eq!(err.http_status, 503);
            }
            n => panic!("a flush after a long outage made {n} requests: it should probe once"),
        }
        std::thread::sleep(flush_every);
    }
    assert!(held > 0 && probes > 0, "held {held}, probes {probes}");
    // Realer is back: within one window a flush gets through with everything, and pacing ends.
    sim.clear_faults();
    let back = Instant::now();
    loop {
        let (report, err) = c.outbox_flush(0);
        if err.is_none() {
            assert_eq!((report.sent, report.pending), (5, 0));
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(5), "not drained within the window: {err:?}");
        std::thread::sleep(flush_every);
    }
    assert_exactly_once(&sim, &c, &ids);
    let ids_after = push(&c, "after", 3);
    sim.inject(Fault::ServiceUnavailable, Target::Batch, 1);
    let (report, err) = c.outbox_flush(0);
    assert_eq!((report.sent, err.is_none()), (3, true), "after an answer, a flush retries within its call again");
    assert_exactly_once(&sim, &c, &[ids, ids_after].concat());
    drop(c);
    std::fs::remove_dir_all(dir).unwrap();
}
