//! The store-and-forward outbox: feed items kept in SQLite until Realer has them. An item is pushed with its
//! `message_id` and `value_received_at` fixed, so every resend, across restarts and power cuts, is the same
//! payload under the same key: Realer answers a resend of a stored item `idempotent`, never a duplicate.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a push returns only after its commit is fsynced
//! (NORMAL would be faster but may lose the last commits on power loss, breaking "OK means on disk").
//! Two processes may open one file: SQLite's locks serialise writers; `busy_timeout` (the request timeout)
//! waits for them. A flush claims the rows it sends (a lease), so concurrent flushers split the work.
//!
//! Disk use: the WAL is checkpointed every `WAL_CHECKPOINT_PAGES` and cut back to `WAL_SIZE_LIMIT`; free pages
//! go back to the file system after a flush (incremental auto-vacuum). A reserve file of `RESERVE_BYTES` is
//! kept beside the database: when the disk is full, deleting what a flush sent frees it first, so a full disk
//! refuses pushes but never stops a flush from draining.
//!
//! One owner of the file: this module opens it (`file`: one connection for every table, and the fork guard),
//! knows its schema, and keeps in it, besides the queue, what the desired-state logic asks it to remember
//! (`memory`). Rooms: `file`, `memory`, `space` (the disk-full reserve and the size limits) and `claims` (a
//! flush's hold on the rows it sends).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::feed::{field_error, Prepared};
use crate::pacing::FlushPacing;
use crate::random::random_u64;
// The settings live with the rest of the configuration; named here too, where they are used.
pub use crate::config::{FullPolicy, OutboxSettings};
use crate::time;

mod claims;
mod file;
mod memory;
mod space;

use claims::lease_for;
use file::OutboxFile;
pub(crate) use memory::{DesiredMemory, Fallback};
pub(crate) use space::RESERVE_BYTES;
use space::{may_be_disk_full, remove_stale_reserve_copies, write_filler, PROBE_ABOVE_BYTES};

/// The outbox's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Items waiting to be sent.
    pub pending: u64,
    /// Items Realer refused for good, kept in the dead-letter table.
    pub dead: u64,
    /// Bytes of pending item JSON.
    pub bytes: u64,
    /// Age of the oldest pending item (since its push), in milliseconds.
    pub oldest_age_ms: Option<u64>,
    /// Items deleted unsent by the drop-oldest policy, ever.
    pub dropped: u64,
    /// Dead letters deleted to make room (the oldest first), ever: they count within the outbox's limits.
    pub dead_dropped: u64,
}

/// What a flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Stored now by Realer (`created`).
    pub sent: u64,
    /// Already stored before (`idempotent`): a resend after a lost answer.
    pub replayed: u64,
    /// Refused for good and moved to the dead-letter table.
    pub rejected: u64,
    /// Still pending after the flush (transient failures, or beyond `max_items`).
    pub pending: u64,
}

/// An item Realer refused for good.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// The `message_id` the item was sent under.
    pub message_id: String,
    /// The item as it was sent (JSON).
    pub item_json: String,
    /// Realer's code, such as 4022.
    pub code: i32,
    /// Realer's `error.type` (its label of `code`).
    pub error_type: String,
    /// Realer's `error.message`.
    pub message: String,
    /// Realer's `error.details` as JSON (which fields were wrong, and why).
    pub details_json: String,
    /// When Realer refused it, in Unix milliseconds.
    pub failed_at_unix_ms: i64,
}

/// A pending item, as a maintainer looks at it.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingItem {
    /// The item's `message_id`.
    pub message_id: String,
    /// The item as it will be sent (JSON).
    pub item_json: String,
    /// When it was pushed, in Unix milliseconds.
    pub queued_at_unix_ms: i64,
}

pub(crate) struct Outbox {
    /// The file and its one connection, shared with the desired-state memory kept in it.
    file: Arc<OutboxFile>,
    settings: OutboxSettings,
    /// How long rows claimed by a flush stay claimed when their flusher may still be alive.
    lease: Duration,
    /// The longest wait for another connection's lock (the request timeout).
    busy: Duration,
    /// `<db>-reserve`: the space given back when the disk is full.
    reserve_path: PathBuf,
    /// `<db>-flush`: each running flush holds a shared lock on it, so a flush that can lock it exclusively
    /// knows every claim in the file belongs to a flusher that died.
    flush_lock_path: PathBuf,
    /// This client's flushes after a long outage.
    pub(crate) pacing: FlushPacing,
}

const DISK_FULL: &str = "outbox: the disk is full";

const DISK_IO: &str = "outbox: disk I/O error (a full disk is one cause)";

fn storage(e: rusqlite::Error) -> Error {
    let message = match e.sqlite_error_code() {
        // ENOSPC on a write is SQLITE_FULL; growing the WAL's shared-memory index fails as an I/O error.
        Some(ErrorCode::DiskFull) => format!("{DISK_FULL} ({e})"),
        Some(ErrorCode::SystemIoFailure) => format!("{DISK_IO} ({e})"),
        _ => format!("outbox: {e}"),
    };
    Error::new(ErrorKind::Storage, message)
}

/// A file beside the database: `<db><suffix>`.
fn beside(db: &str, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{db}{suffix}"))
}

/// Runs `f` with commits that are not fsynced: for writes that only claims and file-space housekeeping
/// depend on, never an item's fate. A power cut may undo them, which costs nothing (a lost claim is no
/// claim; a lost vacuum step leaves free pages); the next synced commit syncs them with itself.
fn unsynced<T>(conn: &mut Connection, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("PRAGMA synchronous=NORMAL").map_err(storage)?;
    let result = f(conn);
    // Pushes also set FULL before they write, should this ever fail.
    let restored = conn.execute_batch("PRAGMA synchronous=FULL").map_err(storage);
    result.and_then(|t| restored.map(|()| t))
}

impl Outbox {
    /// Opens (or makes) the outbox file. Each wait for another process's write lock is bounded by the
    /// request timeout; a flush's claims last as long as its longest batch request can (see `lease_for`).
    pub(crate) fn open(settings: &OutboxSettings, config: &Config) -> Result<Outbox> {
        let path = &settings.path;
        let reserve_path = beside(path, "-reserve");
        let connect = || OutboxFile::open(path, config.request_timeout);
        // On a disk full to the last byte SQLite cannot even make its shared-memory index: the reserve is
        // there for that too.
        let file = match connect() {
            Err(e) if may_be_disk_full(&e) && std::fs::remove_file(&reserve_path).is_ok() => connect()?,
            other => other?,
        };
        if let Some(device_id) = &config.device_id {
            file.claim_for(device_id, path)?;
        }
        remove_stale_reserve_copies(path);
        let outbox = Outbox {
            file: Arc::new(file),
            settings: settings.clone(),
            lease: lease_for(config),
            busy: config.request_timeout,
            reserve_path,
            flush_lock_path: beside(path, "-flush"),
            pacing: FlushPacing::default(),
        };
        // Neither may fail an open: a client must be able to start, and drain, on a full disk.
        let _ = outbox.ensure_reserve();
        let _ = OpenOptions::new().write(true).create(true).truncate(false).open(&outbox.flush_lock_path);
        Ok(outbox)
    }

    /// The file's connection; refused in a child after `fork()` (see `file`).
    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.file.lock()
    }

    /// The desired-state memory, kept in this file.
    pub(crate) fn desired_memory(&self) -> DesiredMemory {
        DesiredMemory::File(self.file.clone())
    }

    /// Stores the items in one transaction, synced before it returns. An item whose source and
    /// `message_id` are already pending with the same payload is accepted as is (a repeated push); with a
    /// different payload the whole push fails. Returns how many old items the drop-oldest policy removed.
    /// A disk too full to keep the reserve refuses the push (`ErrorKind::Storage`): that space is a flush's.
    pub(crate) fn push(&self, items: &[Prepared]) -> Result<u64> {
        let mut conn = self.lock()?;
        if let Err(e) = self.ensure_reserve() {
            return Err(Error::new(
                ErrorKind::Storage,
                format!(
                    "outbox: the disk is full: its reserve of {} KiB, kept so that a flush can always record what \
                     it sent, cannot be made ({e}); nothing was stored",
                    RESERVE_BYTES / 1024
                ),
            ));
        }
        let bytes: u64 = items.iter().map(|p| p.body.len() as u64).sum();
        let large = bytes > PROBE_ABOVE_BYTES;
        if large {
            // Room for the WAL's copy and the database's: then the checkpoint below cannot fail for space,
            // and nothing this push adds is left for the reserve to cover. (Groups of 100 readings, about
            // 10 KiB, stay below the probe.)
            // ENOSPC shows at write(): no need to sync what is deleted at once. Unlinked before it is written,
            // so that a process killed meanwhile leaves nothing behind.
            let probe = beside(&self.settings.path, &format!("-probe.{:016x}", random_u64()));
            let room = OpenOptions::new().write(true).create_new(true).open(&probe).and_then(|mut f| {
                std::fs::remove_file(&probe)?;
                write_filler(&mut f, 2 * bytes + PROBE_ABOVE_BYTES)
            });
            if let Err(e) = room {
                return Err(Error::new(
                    ErrorKind::Storage,
                    format!("outbox: the disk has no room for {bytes} bytes of items ({e}); nothing was stored"),
                ));
            }
        }
        let dropped = self.push_locked(&mut conn, items).map_err(|e| match e.kind {
            ErrorKind::Storage => Error::new(ErrorKind::Storage, format!("{}; nothing was stored", e.message)),
            _ => e,
        })?;
        if large {
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
        Ok(dropped)
    }

    fn push_locked(&self, conn: &mut Connection, items: &[Prepared]) -> Result<u64> {
        // "OK means on disk" must not rest on `unsynced` having restored the setting.
        conn.prepare_cached("PRAGMA synchronous=FULL").and_then(|mut s| s.execute([])).map_err(storage)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage)?;
        let now = time::now_unix_ms();
        let mut added_items = 0u64;
        let mut protected = HashSet::new();
        {
            let mut find = tx
                .prepare_cached("SELECT seq, body FROM pending WHERE source = ?1 AND message_id = ?2")
                .map_err(storage)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO pending (source, message_id, value_received_at, body, command_id, sequence_number, pushed_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(storage)?;
            for (i, p) in items.iter().enumerate() {
                let existing: Option<(i64, String)> = find
                    .query_row(params![p.source, p.message_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(storage)?;
                match existing {
                    Some((seq, body)) if body == p.body => {
                        // Already pending: this push vouches for it, so drop-oldest must not take it.
                        protected.insert(seq);
                        continue;
                    }
                    Some(_) => {
                        return Err(field_error(
                            Some(i),
                            "message_id",
                            format_args!(
                                "{:?} is already pending for this source with a different payload",
                                p.message_id
                            ),
                        ))
                    }
                    None => {}
                }
                insert
                    .execute(params![p.source, p.message_id, "", p.body, p.command_id, p.sequence_number, now])
                    .map_err(storage)?;
                protected.insert(tx.last_insert_rowid());
                added_items += 1;
            }
        }
        for p in items {
            if let (Some(command_id), Some(desired_id)) = (&p.command_id, &p.desired_id) {
                memory::record_in(&tx, command_id, Some(desired_id), p.sequence_number)?;
            }
        }
        let dropped = if added_items == 0 { 0 } else { self.make_room(&tx, &protected)? };
        tx.commit().map_err(storage)?;
        Ok(dropped)
    }

    pub(crate) fn stats(&self) -> Result<OutboxStats> {
        let conn = self.lock()?;
        let (pending, bytes, oldest): (i64, i64, Option<i64>) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(CAST(body AS BLOB))), 0), MIN(pushed_at_ms) FROM pending",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(storage)?;
        let dead: i64 = conn.query_row("SELECT COUNT(*) FROM dead", [], |r| r.get(0)).map_err(storage)?;
        let counter = |name: &str| -> Result<i64> {
            conn.query_row("SELECT COALESCE((SELECT value FROM counters WHERE name = ?1), 0)", [name], |r| r.get(0))
                .map_err(storage)
        };
        let now = time::now_unix_ms();
        Ok(OutboxStats {
            pending: pending as u64,
            dead: dead as u64,
            bytes: bytes as u64,
            oldest_age_ms: oldest.map(|t| now.saturating_sub(t).max(0) as u64),
            dropped: counter("dropped")? as u64,
            dead_dropped: counter("dead_dropped")? as u64,
        })
    }

    pub(crate) fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare(
                "SELECT message_id, body, code, error_type, message, details_json, failed_at_ms FROM dead ORDER BY seq",
            )
            .map_err(storage)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DeadLetter {
                    message_id: r.get(0)?,
                    item_json: r.get(1)?,
                    code: r.get(2)?,
                    error_type: r.get(3)?,
                    message: r.get(4)?,
                    details_json: r.get(5)?,
                    failed_at_unix_ms: r.get(6)?,
                })
            })
            .map_err(storage)?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(storage)
    }

    /// SQLite's own check of the file (`PRAGMA quick_check`): empty when it is sound, else what it found.
    pub(crate) fn check(&self) -> Result<Vec<String>> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare("PRAGMA quick_check").map_err(storage)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(storage)?;
        let found = rows.collect::<std::result::Result<Vec<_>, _>>().map_err(storage)?;
        Ok(found.into_iter().filter(|r| r != "ok").collect())
    }

    /// The pending items, oldest first, at most `limit`.
    pub(crate) fn pending(&self, limit: usize) -> Result<Vec<PendingItem>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare("SELECT message_id, body, pushed_at_ms FROM pending ORDER BY seq LIMIT ?1")
            .map_err(storage)?;
        let rows = stmt
            .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(PendingItem { message_id: r.get(0)?, item_json: r.get(1)?, queued_at_unix_ms: r.get(2)? })
            })
            .map_err(storage)?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(storage)
    }

    /// Puts every dead letter back among the pending items (after the cause was fixed in Realer), under its
    /// own `message_id` and payload; returns how many. One already pending again is just dropped from the
    /// dead letters.
    pub(crate) fn retry_dead(&self) -> Result<u64> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage)?;
        let dead: Vec<(i64, String, String)> = {
            let mut stmt = tx.prepare("SELECT seq, message_id, body FROM dead ORDER BY seq").map_err(storage)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(storage)?;
            rows.collect::<std::result::Result<Vec<_>, _>>().map_err(storage)?
        };
        let now = time::now_unix_ms();
        let mut requeued = 0;
        for (seq, message_id, body) in dead {
            let item: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let id = |k: &str| match item.get(k) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            let source = match (id("sensor_id"), id("command_id")) {
                (Some(s), _) => format!("sensor:{s}"),
                (None, Some(c)) => format!("command:{c}"),
                (None, None) => continue,
            };
            let sequence_number = item.get("sequence_number").and_then(serde_json::Value::as_i64);
            requeued += tx
                .execute(
                    "INSERT OR IGNORE INTO pending (source, message_id, value_received_at, body, command_id,
                         sequence_number, pushed_at_ms) VALUES (?1, ?2, '', ?3, ?4, ?5, ?6)",
                    params![source, message_id, body, id("command_id"), sequence_number, now],
                )
                .map_err(storage)? as u64;
            tx.execute("DELETE FROM dead WHERE seq = ?1", params![seq]).map_err(storage)?;
        }
        tx.commit().map_err(storage)?;
        Ok(requeued)
    }

    /// Deletes every dead letter; returns how many there were. Works on a full disk (see `write_freeing`).
    pub(crate) fn clear_dead(&self) -> Result<u64> {
        let mut conn = self.lock()?;
        self.write_freeing(&mut conn, |c| c.execute("DELETE FROM dead", []).map(|n| n as u64).map_err(storage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::FeedItem;
    use std::fs::File;
    use std::path::Path;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("realer-outbox-unit-{tag}-{}-{}", std::process::id(), random_u64()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn open(db: &Path, lease: Duration) -> Outbox {
        let settings = OutboxSettings {
            path: db.to_str().unwrap().into(),
            max_items: 0,
            max_bytes: 0,
            when_full: FullPolicy::Refuse,
        };
        Outbox { lease, ..Outbox::open(&settings, &Config::new()).unwrap() }
    }

    fn push(outbox: &Outbox, n: usize) {
        let items: Vec<Prepared> = (0..n)
            .map(|i| {
                FeedItem { message_id: Some(format!("m-{i}")), ..FeedItem::sensor("7", "1.5") }.prepare(0).unwrap()
            })
            .collect();
        for group in items.chunks(100) {
            outbox.push(group).unwrap();
        }
    }

    fn seqs(batch: (Vec<i64>, Vec<Prepared>)) -> Vec<i64> {
        batch.0
    }

    #[test]
    fn a_push_remembers_the_answers_it_queues_in_its_own_transaction() {
        let d = dir("answers");
        let db = d.join("o.db");
        let outbox = open(&db, Duration::from_secs(60));
        let answer = FeedItem {
            message_id: Some("a-1".into()),
            desired_id: Some("des_1".into()),
            sequence_number: Some(4),
            ..FeedItem::command("3", "1")
        };
        let reading = FeedItem { message_id: Some("r-1".into()), ..FeedItem::sensor("7", "1.5") };
        outbox.push(&[answer.prepare(0).unwrap(), reading.prepare(0).unwrap()]).unwrap();
        // Read through another connection: what the push committed, with nothing else called.
        let memory = DesiredMemory::open_file(db.to_str().unwrap()).unwrap();
        assert!(memory.answered("des_1").unwrap());
        assert_eq!(memory.latest("3").unwrap(), Some(4));
        // A push refused as a whole remembers nothing.
        let conflicting = FeedItem { message_id: Some("r-1".into()), desired_id: None, ..FeedItem::sensor("7", "2.5") };
        let other = FeedItem {
            message_id: Some("a-2".into()),
            desired_id: Some("des_2".into()),
            ..FeedItem::command("3", "0")
        };
        assert!(outbox.push(&[other.prepare(0).unwrap(), conflicting.prepare(0).unwrap()]).is_err());
        assert!(!memory.answered("des_2").unwrap());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn flushes_claim_different_rows_until_they_end() {
        let d = dir("claims");
        let db = d.join("o.db");
        let (a, b) = (open(&db, Duration::from_secs(60)), open(&db, Duration::from_secs(60)));
        push(&a, 250);
        let fa = a.begin_flush().unwrap();
        let fb = b.begin_flush().unwrap();
        assert_eq!(seqs(fa.next_batch(0, 100).unwrap()), (1..=100).collect::<Vec<_>>());
        // Claims commit unsynced; the connection is back to synced commits (2 = FULL) for the pushes.
        let synchronous: i64 = a.lock().unwrap().query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(synchronous, 2);
        assert_eq!(seqs(fb.next_batch(0, 100).unwrap()), (101..=200).collect::<Vec<_>>());
        assert_eq!(seqs(fa.next_batch(100, 100).unwrap()), (201..=250).collect::<Vec<_>>());
        assert!(fb.next_batch(200, 100).unwrap().0.is_empty(), "everything is claimed");
        // A flush's claims end with it, even while another flush runs.
        drop(fa);
        let fa = a.begin_flush().unwrap();
        assert_eq!(
            seqs(fa.next_batch(0, 300).unwrap()),
            [(1..=100).collect::<Vec<_>>(), (201..=250).collect()].concat()
        );
        drop((fa, fb));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_claim_of_a_flush_that_may_be_alive_runs_out_with_its_lease() {
        let d = dir("lease");
        let db = d.join("o.db");
        let (a, b) = (open(&db, Duration::from_millis(300)), open(&db, Duration::from_millis(300)));
        push(&a, 100);
        let fa = a.begin_flush().unwrap();
        assert_eq!(fa.next_batch(0, 100).unwrap().0.len(), 100);
        // `a` still holds its lock (its flush is stuck, not dead): `b` waits for the lease to run out.
        let fb = b.begin_flush().unwrap();
        assert!(fb.next_batch(0, 100).unwrap().0.is_empty());
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(fb.next_batch(0, 100).unwrap().0.len(), 100);
        drop((fa, fb));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn claims_of_a_flusher_that_died_are_cleared_by_the_next_flush() {
        let d = dir("dead");
        let db = d.join("o.db");
        let a = open(&db, Duration::from_secs(3600));
        push(&a, 150);
        let b = open(&db, Duration::from_secs(3600));
        // While another flush runs, nobody can tell whose claims those are: they wait.
        let running = b.begin_flush().unwrap();
        // What a SIGKILLed flush leaves: claims for an hour, and no lock held.
        let now = time::now_unix_ms();
        a.lock()
            .unwrap()
            .execute("INSERT INTO claims SELECT seq, 42, ?1 FROM pending WHERE seq <= 100", [now + 3_600_000])
            .unwrap();
        let fa = a.begin_flush().unwrap();
        assert_eq!(seqs(fa.next_batch(0, 200).unwrap()), (101..=150).collect::<Vec<_>>());
        drop((fa, running));
        // Alone, a flush knows every claim left is a dead flusher's.
        let fa = a.begin_flush().unwrap();
        assert_eq!(seqs(fa.next_batch(0, 100).unwrap()), (1..=100).collect::<Vec<_>>());
        drop(fa);
        // A claim whose end is further ahead than a lease can be (the clock went back) has ended.
        let running = b.begin_flush().unwrap();
        a.lock()
            .unwrap()
            .execute("INSERT OR REPLACE INTO claims SELECT seq, 42, ?1 FROM pending", [now + 7_200_000])
            .unwrap();
        assert_eq!(a.begin_flush().unwrap().next_batch(0, 200).unwrap().0.len(), 150);
        drop(running);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_file_from_the_first_release_gets_the_new_columns() {
        let d = dir("old");
        let db = d.join("o.db");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode=WAL;
                 CREATE TABLE pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL,
                     message_id TEXT NOT NULL, value_received_at TEXT NOT NULL, body TEXT NOT NULL, command_id TEXT,
                     sequence_number INTEGER, pushed_at_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                     UNIQUE (source, message_id));
                 INSERT INTO pending (source, message_id, value_received_at, body, pushed_at_ms)
                     VALUES ('sensor:7', 'old', '2026-04-24T10:15:00Z', '{}', 1);",
            )
            .unwrap();
        }
        let outbox = open(&db, Duration::from_secs(60));
        push(&outbox, 1);
        let flush = outbox.begin_flush().unwrap();
        let (_, items) = flush.next_batch(0, 10).unwrap();
        assert_eq!(items.iter().map(|p| p.message_id.as_str()).collect::<Vec<_>>(), ["old", "m-0"]);
        // From the column in an old row, from the item's JSON in a new one.
        assert_eq!(items[0].value_received_at, "2026-04-24T10:15:00Z");
        assert_eq!(items[1].value_received_at, "1970-01-01T00:00:00.000Z");
        drop(flush);
        assert_eq!((outbox.stats().unwrap().pending, outbox.stats().unwrap().dead_dropped), (2, 0));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn opening_removes_reserve_copies_a_killed_process_left() {
        let d = dir("stale");
        let db = d.join("o.db");
        let old = d.join("o.db-reserve.0123456789abcdef");
        let young = d.join("o.db-reserve.fedcba9876543210");
        let other = d.join("other.db-reserve.0123456789abcdef");
        for f in [&old, &young, &other] {
            let file = File::create(f).unwrap();
            if f != &young {
                file.set_modified(std::time::SystemTime::now() - Duration::from_secs(120)).unwrap();
            }
        }
        let outbox = open(&db, Duration::from_secs(60));
        assert!(!old.exists() && young.exists() && other.exists());
        assert_eq!(std::fs::metadata(d.join("o.db-reserve")).unwrap().len(), RESERVE_BYTES);
        drop(outbox);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_lease_covers_every_attempt_of_a_batch_request() {
        // Defaults: 5 attempts of (10 s connect + 30 s request), 4 backoffs of at most 30 s: 320 s, twice, + 10 s.
        assert_eq!(lease_for(&Config::new()), Duration::from_secs(650));
    }
}
