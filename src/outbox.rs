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

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::feed::{field_error, FeedResult, Prepared};
use crate::pacing::FlushPacing;
use crate::random::random_u64;
// The settings live with the rest of the configuration; named here too, where they are used.
pub use crate::config::{FullPolicy, OutboxSettings};
use crate::time;

/// SQLite's page size (its default; the outbox never changes it).
const PAGE_BYTES: u64 = 4096;
/// The WAL is copied into the database once it holds this many pages (SQLite's default is 1000, 4 MiB).
/// Each checkpoint costs two fsyncs, and with 100 readings a commit writes about 16 pages: at 256 pages a
/// checkpoint comes every 16 group pushes. (bench/outbox_bench.rs on this project's machine: the durable
/// push rate in groups of 100 fell by a quarter at 128 pages, by a seventh at 256.)
const WAL_CHECKPOINT_PAGES: u64 = 256;
/// A checkpointed WAL is cut back to this size instead of keeping its largest size for good.
const WAL_SIZE_LIMIT: u64 = WAL_CHECKPOINT_PAGES * PAGE_BYTES;
/// A push of more item bytes than this first checks that the disk has room for it twice over (its WAL frames
/// and the database pages its checkpoint adds), so that what it leaves to checkpoint never exceeds what the
/// reserve can cover. The check writes to the page cache only (no fsync): cheap enough to do often.
const PROBE_ABOVE_BYTES: u64 = 16 * 1024;
/// Space kept in a file beside the database and given back when the disk is full, so that a flush can still
/// record what it sent. After it is given back, the checkpoint that empties the WAL must be able to grow the
/// database file by the new pages the WAL holds. A commit that adds pages also rewrites at least four the
/// file has (page 1, a pointer-map page, a table leaf, an index leaf) and a push below the probe adds at most
/// four: new pages are at most half of a checkpoint's worth plus one push, 528 KiB (measured: 448 KiB with
/// single 16 KiB items). Files of 0.1.0 have no pointer-map pages: there it may be 4/7, about 600 KiB.
/// Once the WAL is emptied, a batch's deletes reuse its space.
pub(crate) const RESERVE_BYTES: u64 = WAL_SIZE_LIMIT / 2 + 64 * 1024;
/// Free pages a flush leaves in the file for the next pushes; beyond this they go back to the file system.
const FREE_PAGES_KEPT: i64 = 16;

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
    pub message_id: String,
    /// The item as it was sent (JSON).
    pub item_json: String,
    pub code: i32,
    pub error_type: String,
    pub message: String,
    pub details_json: String,
    pub failed_at_unix_ms: i64,
}

/// A pending item, as a maintainer looks at it.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingItem {
    pub message_id: String,
    /// The item as it will be sent (JSON).
    pub item_json: String,
    pub queued_at_unix_ms: i64,
}

pub(crate) struct Outbox {
    conn: Mutex<Connection>,
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

/// Whether a failure may come from a full disk, so that giving space back may cure it.
fn may_be_disk_full(e: &Error) -> bool {
    e.kind == ErrorKind::Storage && (e.message.starts_with(DISK_FULL) || e.message.starts_with(DISK_IO))
}

/// A file beside the database: `<db><suffix>`.
fn beside(db: &str, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{db}{suffix}"))
}

/// Writes `len` bytes that no file system compresses (UBIFS and btrfs compress zeros to nothing): space a
/// later write can count on.
fn write_filler(f: &mut File, len: u64) -> std::io::Result<()> {
    let mut x = random_u64() | 1;
    let mut block = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        for b in block.chunks_exact_mut(8) {
            // xorshift64: cheap and incompressible enough.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    Ok(())
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

/// The `value_received_at` inside an item's JSON as the outbox stored it (the column is left empty).
fn value_received_at_of(body: &str) -> String {
    let item: Option<serde_json::Value> = serde_json::from_str(body).ok();
    item.as_ref().and_then(|v| v.get("value_received_at")?.as_str()).unwrap_or_default().to_string()
}

/// Removes `<db>-reserve.*` files a process killed while making the reserve left, once a minute old (a
/// younger one may be another process's, still being written).
fn remove_stale_reserve_copies(db: &str) {
    let db = Path::new(db);
    let (Some(dir), Some(name)) = (db.parent(), db.file_name().and_then(|n| n.to_str())) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!("{name}-reserve.");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(60)));
        if stale && entry.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The tables. Each statement is idempotent, so opening runs them all every time: a table added later is made
/// in files of earlier versions too.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    message_id TEXT NOT NULL,
    -- Empty since 0.2: the body holds it (files of 0.1 have it here). It cost a ninth of the file.
    value_received_at TEXT NOT NULL,
    body TEXT NOT NULL,
    command_id TEXT,
    sequence_number INTEGER,
    pushed_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    UNIQUE (source, message_id)
);
-- The pending rows a flush is sending: `owner` is the flush, and the claim ends at `until_ms`. A table of
-- its own, so that claiming writes one small page rather than rewriting (and on a full disk, splitting)
-- the pages of the items.
CREATE TABLE IF NOT EXISTS claims (
    seq INTEGER PRIMARY KEY,
    owner INTEGER NOT NULL,
    until_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    code INTEGER NOT NULL,
    error_type TEXT NOT NULL,
    message TEXT NOT NULL,
    details_json TEXT NOT NULL,
    failed_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0), ('dead_dropped', 0);
";

/// What a dead letter weighs against `max_bytes`: its item and what Realer said about it.
const DEAD_BYTES: &str =
    "length(CAST(body AS BLOB)) + length(CAST(message AS BLOB)) + length(CAST(details_json AS BLOB)) + length(CAST(error_type AS BLOB))";

impl Outbox {
    /// Opens (or makes) the outbox file. Each wait for another process's write lock is bounded by the
    /// request timeout; a flush's claims last as long as its longest batch request can (see `lease_for`).
    pub(crate) fn open(settings: &OutboxSettings, config: &Config) -> Result<Outbox> {
        let path = &settings.path;
        let reserve_path = beside(path, "-reserve");
        let connect = || Outbox::connect(path, config.request_timeout);
        // On a disk full to the last byte SQLite cannot even make its shared-memory index: the reserve is
        // there for that too.
        let conn = match connect() {
            Err(e) if may_be_disk_full(&e) && std::fs::remove_file(&reserve_path).is_ok() => connect()?,
            other => other?,
        };
        remove_stale_reserve_copies(path);
        let outbox = Outbox {
            conn: Mutex::new(conn),
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

    fn connect(path: &str, busy: Duration) -> Result<Connection> {
        let conn = Connection::open(path).map_err(|e| Error::config(format!("outbox {path:?}: {e}")))?;
        let named =
            |e: rusqlite::Error| Error::new(ErrorKind::Storage, format!("{}, file {path:?}", storage(e).message));
        conn.busy_timeout(busy).map_err(named)?;
        // Only a new, empty file takes it: free pages can then go back to the file system.
        conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL;").map_err(named)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(named)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::new(ErrorKind::Storage, format!("outbox {path:?}: WAL journal refused ({mode})")));
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}; \
             PRAGMA journal_size_limit={WAL_SIZE_LIMIT};"
        ))
        .map_err(named)?;
        conn.execute_batch(SCHEMA).map_err(named)?;
        Ok(conn)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // SQLite keeps the file consistent whatever a panicking thread left; the connection is usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the reserve file when it is missing (another process, or this one, gave it back).
    fn ensure_reserve(&self) -> std::io::Result<()> {
        if std::fs::metadata(&self.reserve_path).is_ok_and(|m| m.len() >= RESERVE_BYTES) {
            return Ok(());
        }
        // Written aside and renamed, so that two processes making it at once never leave a short one.
        let tmp = beside(&self.settings.path, &format!("-reserve.{:016x}", random_u64()));
        let made = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| write_filler(&mut f, RESERVE_BYTES).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, &self.reserve_path));
        if made.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        made
    }

    /// Runs a write that only ever shrinks what is stored (deleting sent items, claiming rows). If the disk is
    /// full, the reserve is given back, the WAL checkpointed and cut to nothing, and the write tried again.
    fn write_freeing<T>(&self, conn: &mut Connection, mut f: impl FnMut(&mut Connection) -> Result<T>) -> Result<T> {
        match f(conn) {
            Err(e) if may_be_disk_full(&e) => {
                // Already gone when another flush gave it back: then what the checkpoint frees must do.
                let _ = std::fs::remove_file(&self.reserve_path);
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                f(conn)
            }
            other => other,
        }
    }

    /// Stores the items in one transaction, synced before it returns. An item whose source and
    /// `message_id` are already pending with the same payload is accepted as is (a repeated push); with a
    /// different payload the whole push fails. Returns how many old items the drop-oldest policy removed.
    /// A disk too full to keep the reserve refuses the push (`ErrorKind::Storage`): that space is a flush's.
    pub(crate) fn push(&self, items: &[Prepared]) -> Result<u64> {
        let mut conn = self.lock();
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
        let dropped = if added_items == 0 { 0 } else { self.make_room(&tx, &protected)? };
        tx.commit().map_err(storage)?;
        Ok(dropped)
    }

    fn limited(&self) -> bool {
        self.settings.max_items != 0 || self.settings.max_bytes != 0
    }

    fn over(&self, items: u64, bytes: u64) -> bool {
        let s = &self.settings;
        (s.max_items != 0 && items > s.max_items) || (s.max_bytes != 0 && bytes > s.max_bytes)
    }

    /// Items and bytes held, pending and dead together (what the limits bound).
    fn held(tx: &rusqlite::Transaction<'_>) -> Result<(u64, u64)> {
        let (count, bytes): (i64, i64) = tx
            .query_row(
                &format!(
                    "SELECT (SELECT COUNT(*) FROM pending) + (SELECT COUNT(*) FROM dead),
                            (SELECT COALESCE(SUM(length(CAST(body AS BLOB))), 0) FROM pending)
                          + (SELECT COALESCE(SUM({DEAD_BYTES}), 0) FROM dead)"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(storage)?;
        Ok((count as u64, bytes as u64))
    }

    /// Deletes the oldest dead letters until what is held fits the limits or none is left; counts them in
    /// `dead_dropped`. Returns what is held afterwards.
    fn drop_dead_letters(&self, tx: &rusqlite::Transaction<'_>) -> Result<(u64, u64)> {
        if !self.limited() {
            return Ok((0, 0));
        }
        let (mut count, mut bytes) = Outbox::held(tx)?;
        if !self.over(count, bytes) {
            return Ok((count, bytes));
        }
        let mut victims = Vec::new();
        {
            let mut oldest =
                tx.prepare(&format!("SELECT seq, {DEAD_BYTES} FROM dead ORDER BY seq")).map_err(storage)?;
            let mut rows = oldest.query([]).map_err(storage)?;
            while self.over(count, bytes) {
                let Some(row) = rows.next().map_err(storage)? else { break };
                let (seq, len): (i64, i64) = (row.get(0).map_err(storage)?, row.get(1).map_err(storage)?);
                victims.push(seq);
                count -= 1;
                bytes -= len as u64;
            }
        }
        let mut del = tx.prepare_cached("DELETE FROM dead WHERE seq = ?1").map_err(storage)?;
        for &seq in &victims {
            del.execute([seq]).map_err(storage)?;
        }
        tx.execute("UPDATE counters SET value = value + ?1 WHERE name = 'dead_dropped'", [victims.len() as i64])
            .map_err(storage)?;
        Ok((count, bytes))
    }

    /// Applies the size limits after an insert inside `tx`: dead letters give way first (oldest first), then
    /// the policy refuses, or deletes the oldest pending items other than the `protected` ones (those this
    /// push stored or vouched for).
    fn make_room(&self, tx: &rusqlite::Transaction<'_>, protected: &HashSet<i64>) -> Result<u64> {
        let s = &self.settings;
        if !self.limited() {
            return Ok(0);
        }
        let (count, bytes) = self.drop_dead_letters(tx)?;
        if !self.over(count, bytes) {
            return Ok(0);
        }
        let full = || {
            Error::new(
                ErrorKind::OutboxFull,
                format!(
                    "outbox full: {} items / {} bytes would exceed the limits ({} items, {} bytes); nothing was stored",
                    count, bytes, s.max_items, s.max_bytes
                ),
            )
        };
        if s.when_full == FullPolicy::Refuse {
            return Err(full());
        }
        // Drop the oldest items that were pending before this push until the rest fits.
        let mut dropped = 0u64;
        let (mut c, mut b) = (count, bytes);
        let mut oldest =
            tx.prepare("SELECT seq, length(CAST(body AS BLOB)) FROM pending ORDER BY seq").map_err(storage)?;
        let mut victims = Vec::new();
        let mut rows = oldest.query([]).map_err(storage)?;
        while self.over(c, b) {
            let Some(row) = rows.next().map_err(storage)? else {
                // Only items this push needs are left, and they do not fit: store none of them.
                return Err(full());
            };
            let (seq, len): (i64, i64) = (row.get(0).map_err(storage)?, row.get(1).map_err(storage)?);
            if protected.contains(&seq) {
                continue;
            }
            victims.push(seq);
            c -= 1;
            b -= len as u64;
            dropped += 1;
        }
        drop(rows);
        let mut del = tx.prepare_cached("DELETE FROM pending WHERE seq = ?1").map_err(storage)?;
        for seq in victims {
            del.execute([seq]).map_err(storage)?;
        }
        tx.execute("UPDATE counters SET value = value + ?1 WHERE name = 'dropped'", [dropped as i64])
            .map_err(storage)?;
        Ok(dropped)
    }

    /// Starts a flush: claims made through it are its own, and end when it is dropped. When no other flush
    /// is running (in any process), claims left in the file belong to flushers that died: they are cleared.
    pub(crate) fn begin_flush(&self) -> Flush<'_> {
        let owner = (random_u64() >> 1) as i64;
        let lock = OpenOptions::new().write(true).create(true).truncate(false).open(&self.flush_lock_path).ok();
        if let Some(file) = &lock {
            if file.try_lock().is_ok() {
                let mut conn = self.lock();
                // Best effort: a claim that stays only waits for its time to run out.
                let _ = self.write_freeing(&mut conn, |c| {
                    unsynced(c, |c| c.execute("DELETE FROM claims", []).map_err(storage))
                });
                let _ = file.unlock();
            }
        }
        // Shared from here on: others see this flush alive. Another flush holds the lock exclusively only
        // while it clears dead claims, which waits for SQLite's write lock at most `busy`: so does this.
        // Without the lock, this flush's claims are protected by their time alone.
        let deadline = Instant::now() + self.busy;
        let lock = lock.filter(|file| loop {
            match file.try_lock_shared() {
                Ok(()) => break true,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(_) => break false,
            }
        });
        Flush { outbox: self, owner, settled: Cell::new(false), _lock: lock }
    }

    /// After a flush: gives back what it still claims, returns free pages to the file system, checkpoints,
    /// and remakes the reserve if a full disk took it. Nothing here may fail the flush.
    fn end_flush(&self, owner: i64, settled: bool) {
        let mut conn = self.lock();
        let _ = self.write_freeing(&mut conn, |c| {
            unsynced(c, |c| c.execute("DELETE FROM claims WHERE owner = ?1", [owner]).map_err(storage))
        });
        let _ = unsynced(&mut conn, |c| {
            // In steps of half a checkpoint's worth of pages, so the WAL stays within its bound while pages move.
            loop {
                let free: i64 = c.query_row("PRAGMA freelist_count", [], |r| r.get(0)).map_err(storage)?;
                if free <= FREE_PAGES_KEPT {
                    return Ok(());
                }
                let step = (free - FREE_PAGES_KEPT).min(WAL_CHECKPOINT_PAGES as i64 / 2);
                // It answers one row per page it frees, and frees only as many as it is stepped through.
                c.prepare(&format!("PRAGMA incremental_vacuum({step})"))
                    .and_then(|mut stmt| {
                        let mut rows = stmt.query([])?;
                        while rows.next()?.is_some() {}
                        Ok(())
                    })
                    .map_err(storage)?;
                let left: i64 = c.query_row("PRAGMA freelist_count", [], |r| r.get(0)).map_err(storage)?;
                // A file made before auto-vacuum frees nothing: stop.
                if left >= free {
                    return Ok(());
                }
            }
        });
        let reserve_missing = !std::fs::metadata(&self.reserve_path).is_ok_and(|m| m.len() >= RESERVE_BYTES);
        // After a flush that settled items, TRUNCATE empties the WAL file too (waiting for other connections'
        // readers within the busy timeout), so a drained outbox is small. Otherwise a passive checkpoint: a
        // flush with nothing to do (a firmware loop's usual call) leaves the WAL's space for the next pushes.
        let mode = if settled || reserve_missing { "TRUNCATE" } else { "PASSIVE" };
        let _ = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()));
        if reserve_missing {
            let _ = self.ensure_reserve();
        }
    }

    /// Claims up to `limit` pending items after `after_seq`, oldest first, with their place in the queue:
    /// rows another live flush claimed are skipped.
    fn claim_batch(&self, owner: i64, after_seq: i64, limit: usize) -> Result<(Vec<i64>, Vec<Prepared>)> {
        let mut conn = self.lock();
        let lease_ms = self.lease.as_millis().min(i64::MAX as u128 / 4) as i64;
        let mut pairs = self.write_freeing(&mut conn, |c| {
            unsynced(c, |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage)?;
                // Read once the write lock is held: a time taken before waiting for it could be older than a
                // claim committed meanwhile, which would then look like one made before the clock went back.
                let now = time::now_unix_ms();
                let pairs = {
                    let mut claim = tx
                        .prepare_cached(
                            // A claim ends at its time, or earlier when the clock went back (its end is then
                            // further ahead than a lease can be).
                            "INSERT OR REPLACE INTO claims (seq, owner, until_ms)
                             SELECT seq, ?1, ?2 + ?3 FROM pending
                             WHERE seq > ?4
                               AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.seq = pending.seq AND c.owner != ?1
                                               AND c.until_ms > ?2 AND c.until_ms <= ?2 + ?3)
                             ORDER BY seq LIMIT ?5
                             RETURNING seq",
                        )
                        .map_err(storage)?;
                    let seqs = claim
                        .query_map(params![owner, now, lease_ms, after_seq, limit as i64], |r| r.get::<_, i64>(0))
                        .map_err(storage)?
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(storage)?;
                    let mut read = tx
                        .prepare_cached(
                            "SELECT source, message_id, value_received_at, body, command_id, sequence_number
                             FROM pending WHERE seq = ?1",
                        )
                        .map_err(storage)?;
                    let mut pairs = Vec::with_capacity(seqs.len());
                    for seq in seqs {
                        let mut p = read
                            .query_row([seq], |r| {
                                Ok(Prepared {
                                    source: r.get(0)?,
                                    message_id: r.get(1)?,
                                    value_received_at: r.get(2)?,
                                    body: r.get(3)?,
                                    command_id: r.get(4)?,
                                    // Answers were remembered when they were pushed.
                                    desired_id: None,
                                    sequence_number: r.get(5)?,
                                })
                            })
                            .map_err(storage)?;
                        if p.value_received_at.is_empty() {
                            p.value_received_at = value_received_at_of(&p.body);
                        }
                        pairs.push((seq, p));
                    }
                    pairs
                };
                tx.commit().map_err(storage)?;
                Ok(pairs)
            })
        })?;
        pairs.sort_by_key(|(seq, _)| *seq);
        Ok(pairs.into_iter().unzip())
    }

    /// Records a batch's fate in one transaction: accepted items leave, refused ones become dead letters
    /// (within the limits: the oldest dead letters give way), the rest stay pending with one more attempt
    /// counted and their claim given back.
    fn settle(&self, owner: i64, seqs: &[i64], items: &[Prepared], results: &[FeedResult]) -> Result<()> {
        let mut conn = self.lock();
        self.write_freeing(&mut conn, |c| self.settle_once(c, owner, seqs, items, results))
    }

    fn settle_once(
        &self,
        conn: &mut Connection,
        owner: i64,
        seqs: &[i64],
        items: &[Prepared],
        results: &[FeedResult],
    ) -> Result<()> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage)?;
        let mut buried = false;
        {
            let mut delete = tx.prepare_cached("DELETE FROM pending WHERE seq = ?1").map_err(storage)?;
            let mut unclaim = tx.prepare_cached("DELETE FROM claims WHERE seq = ?1").map_err(storage)?;
            let mut bury = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO dead (seq, message_id, body, code, error_type, message, details_json, failed_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(storage)?;
            let mut retry = tx
                .prepare_cached(
                    "UPDATE pending SET attempts = attempts + 1
                     WHERE seq = (SELECT seq FROM claims WHERE seq = ?1 AND owner = ?2)",
                )
                .map_err(storage)?;
            let mut unclaim_own =
                tx.prepare_cached("DELETE FROM claims WHERE seq = ?1 AND owner = ?2").map_err(storage)?;
            let now = time::now_unix_ms();
            for ((&seq, item), result) in seqs.iter().zip(items).zip(results) {
                use crate::feed::FeedOutcome::*;
                match result.outcome {
                    Created | Idempotent => {
                        delete.execute([seq]).map_err(storage)?;
                        unclaim.execute([seq]).map_err(storage)?;
                    }
                    Rejected => {
                        let e = result.error.clone().unwrap_or_else(|| Error::protocol("rejected without an error"));
                        bury.execute(params![
                            seq,
                            item.message_id,
                            item.body,
                            result.code,
                            e.error_type,
                            e.message,
                            e.details_json(),
                            now
                        ])
                        .map_err(storage)?;
                        delete.execute([seq]).map_err(storage)?;
                        unclaim.execute([seq]).map_err(storage)?;
                        buried = true;
                    }
                    NotSent => {
                        retry.execute(params![seq, owner]).map_err(storage)?;
                        unclaim_own.execute(params![seq, owner]).map_err(storage)?;
                    }
                }
            }
        }
        if buried {
            self.drop_dead_letters(&tx)?;
        }
        tx.commit().map_err(storage)
    }

    pub(crate) fn stats(&self) -> Result<OutboxStats> {
        let conn = self.lock();
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
        let conn = self.lock();
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
        let conn = self.lock();
        let mut stmt = conn.prepare("PRAGMA quick_check").map_err(storage)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(storage)?;
        let found = rows.collect::<std::result::Result<Vec<_>, _>>().map_err(storage)?;
        Ok(found.into_iter().filter(|r| r != "ok").collect())
    }

    /// The pending items, oldest first, at most `limit`.
    pub(crate) fn pending(&self, limit: usize) -> Result<Vec<PendingItem>> {
        let conn = self.lock();
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
        let mut conn = self.lock();
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
        let mut conn = self.lock();
        self.write_freeing(&mut conn, |c| c.execute("DELETE FROM dead", []).map(|n| n as u64).map_err(storage))
    }
}

/// How long a claim lasts while its flusher may be alive: twice the longest a batch request can take, every
/// attempt with its connect and request timeouts and the longest backoff between them, plus 10 s. A batch
/// answered 413 is split and resent within the same claim, hence twice.
fn lease_for(config: &Config) -> Duration {
    let attempts = config.retry.max_attempts.max(1);
    let one = (config.connect_timeout + config.request_timeout).saturating_mul(attempts)
        + config.retry.max_delay.saturating_mul(attempts - 1);
    one.saturating_mul(2) + Duration::from_secs(10)
}

/// One flush's hold on the outbox: the rows it claimed are sent by it alone until it ends (when it is
/// dropped) or, if its process dies, until another flush finds it gone or its claims' time runs out.
pub(crate) struct Flush<'a> {
    outbox: &'a Outbox,
    owner: i64,
    /// A shared lock on `<db>-flush` while the flush runs (released by the kernel if the process dies).
    _lock: Option<File>,
    /// Whether a batch was settled (items left the outbox or became dead letters).
    settled: Cell<bool>,
}

impl Flush<'_> {
    /// Claims up to `limit` pending items after `after_seq` that no other live flush claimed, oldest first,
    /// with their place in the queue.
    pub(crate) fn next_batch(&self, after_seq: i64, limit: usize) -> Result<(Vec<i64>, Vec<Prepared>)> {
        self.outbox.claim_batch(self.owner, after_seq, limit)
    }

    /// Records a batch's fate (see `Outbox::settle`).
    pub(crate) fn settle(&self, seqs: &[i64], items: &[Prepared], results: &[FeedResult]) -> Result<()> {
        self.settled.set(true);
        self.outbox.settle(self.owner, seqs, items, results)
    }
}

impl Drop for Flush<'_> {
    fn drop(&mut self) {
        self.outbox.end_flush(self.owner, self.settled.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::FeedItem;

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
    fn flushes_claim_different_rows_until_they_end() {
        let d = dir("claims");
        let db = d.join("o.db");
        let (a, b) = (open(&db, Duration::from_secs(60)), open(&db, Duration::from_secs(60)));
        push(&a, 250);
        let fa = a.begin_flush();
        let fb = b.begin_flush();
        assert_eq!(seqs(fa.next_batch(0, 100).unwrap()), (1..=100).collect::<Vec<_>>());
        // Claims commit unsynced; the connection is back to synced commits (2 = FULL) for the pushes.
        let synchronous: i64 = a.lock().query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(synchronous, 2);
        assert_eq!(seqs(fb.next_batch(0, 100).unwrap()), (101..=200).collect::<Vec<_>>());
        assert_eq!(seqs(fa.next_batch(100, 100).unwrap()), (201..=250).collect::<Vec<_>>());
        assert!(fb.next_batch(200, 100).unwrap().0.is_empty(), "everything is claimed");
        // A flush's claims end with it, even while another flush runs.
        drop(fa);
        let fa = a.begin_flush();
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
        let fa = a.begin_flush();
        assert_eq!(fa.next_batch(0, 100).unwrap().0.len(), 100);
        // `a` still holds its lock (its flush is stuck, not dead): `b` waits for the lease to run out.
        let fb = b.begin_flush();
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
        let running = b.begin_flush();
        // What a SIGKILLed flush leaves: claims for an hour, and no lock held.
        let now = time::now_unix_ms();
        a.lock()
            .execute("INSERT INTO claims SELECT seq, 42, ?1 FROM pending WHERE seq <= 100", [now + 3_600_000])
            .unwrap();
        let fa = a.begin_flush();
        assert_eq!(seqs(fa.next_batch(0, 200).unwrap()), (101..=150).collect::<Vec<_>>());
        drop((fa, running));
        // Alone, a flush knows every claim left is a dead flusher's.
        let fa = a.begin_flush();
        assert_eq!(seqs(fa.next_batch(0, 100).unwrap()), (1..=100).collect::<Vec<_>>());
        drop(fa);
        // A claim whose end is further ahead than a lease can be (the clock went back) has ended.
        let running = b.begin_flush();
        a.lock().execute("INSERT OR REPLACE INTO claims SELECT seq, 42, ?1 FROM pending", [now + 7_200_000]).unwrap();
        assert_eq!(a.begin_flush().next_batch(0, 200).unwrap().0.len(), 150);
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
        let flush = outbox.begin_flush();
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
