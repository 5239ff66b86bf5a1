//! The outbox file: its one SQLite connection, through which every table of the file is read and written (the
//! queue, the dead letters, the claims, and the desired-state memory of `memory`), its settings (WAL, synced
//! commits, checkpoints), its tables, and the process that opened it. After `fork()` the connection is the
//! parent's (SQLite's locks and its view of the WAL index belong to the process that opened it): a child may
//! neither use it nor close it.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use super::storage;
use crate::error::{Error, ErrorKind, Result};
use crate::process::Owner;

/// SQLite's page size (its default; the outbox never changes it).
const PAGE_BYTES: u64 = 4096;

/// The WAL is copied into the database once it holds this many pages (SQLite's default is 1000, 4 MiB).
/// Each checkpoint costs two fsyncs, and with 100 readings a commit writes about 16 pages: at 256 pages a
/// checkpoint comes every 16 group pushes. (bench/outbox_bench.rs on this project's machine: the durable
/// push rate in groups of 100 fell by a quarter at 128 pages, by a seventh at 256.)
pub(super) const WAL_CHECKPOINT_PAGES: u64 = 256;

/// A checkpointed WAL is cut back to this size instead of keeping its largest size for good.
pub(super) const WAL_SIZE_LIMIT: u64 = WAL_CHECKPOINT_PAGES * PAGE_BYTES;

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
-- What this device answered of Realer's desired states (see `memory`): the highest sequence number per
-- command, and the last desired_ids answered.
CREATE TABLE IF NOT EXISTS desired_sequence (command_id TEXT PRIMARY KEY, sequence_number INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS desired_answered (seq INTEGER PRIMARY KEY AUTOINCREMENT, desired_id TEXT NOT NULL UNIQUE);
-- The catalog value last handed over per command (an older service's wishes), and what a service was found
-- not to offer (`/desired-states`).
CREATE TABLE IF NOT EXISTS catalog_seen (command_id TEXT PRIMARY KEY, value_type TEXT, value TEXT NOT NULL);
-- The device whose items, answers and memory the file holds: the first to open it (one file per device).
CREATE TABLE IF NOT EXISTS device (one INTEGER PRIMARY KEY CHECK (one = 1), device_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS desired_fallback (
    service TEXT PRIMARY KEY,
    http_status INTEGER NOT NULL,
    scope TEXT,
    catalog INTEGER
);
";

/// A storage error that names the file.
fn at_file(path: &str) -> impl Fn(rusqlite::Error) -> Error + Copy + '_ {
    move |e| Error::new(ErrorKind::Storage, format!("{}, file {path:?}", storage(e).message))
}

/// The outbox file, opened once per client (see the module's comment).
pub(crate) struct OutboxFile {
    /// `None` only while it is dropped.
    conn: Option<Mutex<Connection>>,
    /// The process that opened it, told by its process id: no way of forking escapes that (a child made by a
    /// raw `clone` or glibc's `_Fork` runs no atfork handler), and it is checked per statement, not per byte.
    owner: Owner,
}

impl OutboxFile {
    /// Opens (or makes) the file at `path` with its settings and tables; a wait for another connection's lock
    /// lasts at most `busy`.
    pub(super) fn open(path: &str, busy: Duration) -> Result<OutboxFile> {
        let conn = Connection::open(path).map_err(|e| Error::config(format!("outbox {path:?}: {e}")))?;
        let named = at_file(path);
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
        Ok(OutboxFile { conn: Some(Mutex::new(conn)), owner: Owner::by_pid() })
    }

    /// Makes the file `device_id`'s when it is no device's yet, and refuses it when it is another's: its pending
    /// items carry no device (a flush sends them all under its own device's path), nor do the desired-state
    /// memory's rows, so two devices sharing a file would send each other's readings as their own.
    pub(super) fn claim_for(&self, device_id: &str, path: &str) -> Result<()> {
        let conn = self.lock()?;
        let named = at_file(path);
        conn.execute("INSERT OR IGNORE INTO device (one, device_id) VALUES (1, ?1)", [device_id]).map_err(named)?;
        let owner: String = conn.query_row("SELECT device_id FROM device", [], |r| r.get(0)).map_err(named)?;
        if owner == device_id {
            return Ok(());
        }
        Err(Error::config(format!(
            "outbox {path:?} holds the items of device {owner:?}, not of device {device_id:?}: give each device a \
             file of its own (the processes of one device may share one)"
        )))
    }

    /// Refuses a process other than the one that opened the file (a child after `fork()`).
    pub(super) fn check_process(&self) -> Result<()> {
        if self.owner.is_this_process() {
            Ok(())
        } else {
            Err(Error::config(
                "this client's outbox was opened by the parent process: after fork(), make a new client in the child",
            ))
        }
    }

    /// The connection, locked for one statement or transaction; refused in a child after `fork()`.
    pub(super) fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.check_process()?;
        let conn = self.conn.as_ref().ok_or_else(|| Error::internal("the outbox file is closed"))?;
        // SQLite keeps the file consistent whatever a panicking thread left; the connection is usable.
        Ok(conn.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for OutboxFile {
    fn drop(&mut self) {
        if !self.owner.is_this_process() {
            // A child after fork(): closing the parent's connection would release the POSIX locks SQLite
            // believes it holds and could disturb its WAL; it is left as it is (its memory and descriptor go with
            // the process).
            std::mem::forget(self.conn.take());
        }
    }
}
