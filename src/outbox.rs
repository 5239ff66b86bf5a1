//! The store-and-forward outbox: feed items kept in SQLite until Realer has them. An item is pushed with its
//! `message_id` and `value_received_at` fixed, so every resend, across restarts and power cuts, is the same
//! payload under the same key: Realer answers a resend of a stored item `idempotent`, never a duplicate.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a push returns only after its commit is fsynced
//! (NORMAL would be faster but may lose the last commits on power loss, breaking "OK means on disk").
//! Two processes may open one file: SQLite's locks serialise writers; `busy_timeout` (the request timeout)
//! waits for them.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::{Error, ErrorKind, Result};
use crate::feed::{FeedResult, Prepared};
use crate::time;

/// What a push does when the outbox is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FullPolicy {
    /// Refuse the new items (`ErrorKind::OutboxFull`): nothing stored is lost.
    #[default]
    Refuse,
    /// Delete the oldest pending items to make room (counted in `dropped`, logged).
    DropOldest,
}

/// Where the outbox lives and how large it may grow (0 = no limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxSettings {
    pub path: String,
    pub max_items: u64,
    pub max_bytes: u64,
    pub when_full: FullPolicy,
}

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
}

fn storage(e: rusqlite::Error) -> Error {
    Error::new(ErrorKind::Storage, format!("outbox: {e}"))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    message_id TEXT NOT NULL,
    value_received_at TEXT NOT NULL,
    body TEXT NOT NULL,
    command_id TEXT,
    sequence_number INTEGER,
    pushed_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    UNIQUE (source, message_id)
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
INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);
";

impl Outbox {
    /// Opens (or makes) the outbox file. `busy` bounds each wait for another process's write lock.
    pub(crate) fn open(settings: &OutboxSettings, busy: Duration) -> Result<Outbox> {
        let path = &settings.path;
        let conn = Connection::open(path).map_err(|e| Error::config(format!("outbox {path:?}: {e}")))?;
        let named = |e: rusqlite::Error| Error::new(ErrorKind::Storage, format!("outbox {path:?}: {e}"));
        conn.busy_timeout(busy).map_err(named)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(named)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::new(ErrorKind::Storage, format!("outbox {path:?}: WAL journal refused ({mode})")));
        }
        conn.execute_batch("PRAGMA synchronous=FULL;").map_err(named)?;
        conn.execute_batch(SCHEMA).map_err(named)?;
        Ok(Outbox { conn: Mutex::new(conn), settings: settings.clone() })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // SQLite keeps the file consistent whatever a panicking thread left; the connection is usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the items in one transaction, synced before it returns. An item whose source and
    /// `message_id` are already pending with the same payload is accepted as is (a repeated push); with a
    /// different payload the whole push fails. Returns how many old items the drop-oldest policy removed.
    pub(crate) fn push(&self, items: &[Prepared]) -> Result<u64> {
        let mut conn = self.lock();
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
                        return Err(Error::invalid(format!(
                            "items[{i}]: message_id {:?} is already pending for this source with a different payload",
                            p.message_id
                        )))
                    }
                    None => {}
                }
                insert
                    .execute(params![
                        p.source,
                        p.message_id,
                        p.value_received_at,
                        p.body,
                        p.command_id,
                        p.sequence_number,
                        now
                    ])
                    .map_err(storage)?;
                protected.insert(tx.last_insert_rowid());
                added_items += 1;
            }
        }
        let dropped = self.make_room(&tx, added_items, &protected)?;
        tx.commit().map_err(storage)?;
        Ok(dropped)
    }

    /// Applies the size limits after an insert inside `tx`: refuses, or deletes the oldest items other than
    /// the `protected` ones (those this push stored or vouched for).
    fn make_room(&self, tx: &rusqlite::Transaction<'_>, added_items: u64, protected: &HashSet<i64>) -> Result<u64> {
        let s = &self.settings;
        if (s.max_items == 0 && s.max_bytes == 0) || added_items == 0 {
            return Ok(0);
        }
        let (count, bytes): (i64, i64) = tx
            .query_row("SELECT COUNT(*), COALESCE(SUM(length(CAST(body AS BLOB))), 0) FROM pending", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(storage)?;
        let (count, bytes) = (count as u64, bytes as u64);
        let over = |c: u64, b: u64| (s.max_items != 0 && c > s.max_items) || (s.max_bytes != 0 && b > s.max_bytes);
        if !over(count, bytes) {
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
        while over(c, b) {
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

    /// Up to `limit` pending items after `after_seq`, oldest first, with their place in the queue.
    pub(crate) fn next_batch(&self, after_seq: i64, limit: usize) -> Result<(Vec<i64>, Vec<Prepared>)> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, source, message_id, value_received_at, body, command_id, sequence_number
                 FROM pending WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(storage)?;
        let rows = stmt
            .query_map(params![after_seq, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Prepared {
                        source: r.get(1)?,
                        message_id: r.get(2)?,
                        value_received_at: r.get(3)?,
                        body: r.get(4)?,
                        command_id: r.get(5)?,
                        // Answers were remembered when they were pushed.
                        desired_id: None,
                        sequence_number: r.get(6)?,
                    },
                ))
            })
            .map_err(storage)?;
        let pairs = rows.collect::<std::result::Result<Vec<_>, _>>().map_err(storage)?;
        Ok(pairs.into_iter().unzip())
    }

    /// Records a batch's fate in one transaction: accepted items leave, refused ones become dead letters,
    /// the rest stay pending with one more attempt counted.
    pub(crate) fn settle(&self, seqs: &[i64], items: &[Prepared], results: &[FeedResult]) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage)?;
        {
            let mut delete = tx.prepare_cached("DELETE FROM pending WHERE seq = ?1").map_err(storage)?;
            let mut bury = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO dead (seq, message_id, body, code, error_type, message, details_json, failed_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(storage)?;
            let mut retry =
                tx.prepare_cached("UPDATE pending SET attempts = attempts + 1 WHERE seq = ?1").map_err(storage)?;
            let now = time::now_unix_ms();
            for ((&seq, item), result) in seqs.iter().zip(items).zip(results) {
                use crate::feed::FeedOutcome::*;
                match result.outcome {
                    Created | Idempotent => {
                        delete.execute([seq]).map_err(storage)?;
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
                    }
                    NotSent => {
                        retry.execute([seq]).map_err(storage)?;
                    }
                }
            }
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
        let dropped: i64 =
            conn.query_row("SELECT value FROM counters WHERE name = 'dropped'", [], |r| r.get(0)).map_err(storage)?;
        let now = time::now_unix_ms();
        Ok(OutboxStats {
            pending: pending as u64,
            dead: dead as u64,
            bytes: bytes as u64,
            oldest_age_ms: oldest.map(|t| now.saturating_sub(t).max(0) as u64),
            dropped: dropped as u64,
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
            let at = item.get("value_received_at").and_then(serde_json::Value::as_str).unwrap_or_default();
            let sequence_number = item.get("sequence_number").and_then(serde_json::Value::as_i64);
            requeued += tx
                .execute(
                    "INSERT OR IGNORE INTO pending (source, message_id, value_received_at, body, command_id,
                         sequence_number, pushed_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![source, message_id, at, body, id("command_id"), sequence_number, now],
                )
                .map_err(storage)? as u64;
            tx.execute("DELETE FROM dead WHERE seq = ?1", params![seq]).map_err(storage)?;
        }
        tx.commit().map_err(storage)?;
        Ok(requeued)
    }

    /// Deletes every dead letter; returns how many there were.
    pub(crate) fn clear_dead(&self) -> Result<u64> {
        let conn = self.lock();
        conn.execute("DELETE FROM dead", []).map(|n| n as u64).map_err(storage)
    }
}
