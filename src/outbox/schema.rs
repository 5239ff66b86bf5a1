//! The outbox file's settings (WAL, synced commits, checkpoints) and its tables.

use std::time::Duration;

use rusqlite::Connection;

use super::{storage, Outbox};
use crate::error::{Error, ErrorKind, Result};

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
";

impl Outbox {
    pub(super) fn connect(path: &str, busy: Duration) -> Result<Connection> {
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
}
