//! A flush's hold on the rows it sends: claims with a lease, so that flushes of one file (in this process or
//! others) send different items, and a flusher that died is found out and its claims cleared.

use std::cell::Cell;
use std::fs::{File, OpenOptions, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};

use super::file::WAL_CHECKPOINT_PAGES;
use super::space::{FREE_PAGES_KEPT, RESERVE_BYTES};
use super::{storage, unsynced, Outbox};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::feed::{FeedResult, Prepared};
use crate::random::random_u64;
use crate::time;

/// The `value_received_at` inside an item's JSON as the outbox stored it (the column is left empty).
fn value_received_at_of(body: &str) -> String {
    let item: Option<serde_json::Value> = serde_json::from_str(body).ok();
    item.as_ref().and_then(|v| v.get("value_received_at")?.as_str()).unwrap_or_default().to_string()
}

impl Outbox {
    /// Starts a flush: claims made through it are its own, and end when it is dropped. When no other flush
    /// is running (in any process), claims left in the file belong to flushers that died: they are cleared.
    /// Refused in a child after `fork()`.
    pub(crate) fn begin_flush(&self) -> Result<Flush<'_>> {
        self.file.check_process()?;
        let owner = (random_u64() >> 1) as i64;
        let lock = OpenOptions::new().write(true).create(true).truncate(false).open(&self.flush_lock_path).ok();
        if let Some(file) = &lock {
            if file.try_lock().is_ok() {
                // Best effort: a claim that stays only waits for its time to run out.
                if let Ok(mut conn) = self.lock() {
                    let _ = self.write_freeing(&mut conn, |c| {
                        unsynced(c, |c| c.execute("DELETE FROM claims", []).map_err(storage))
                    });
                }
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
        Ok(Flush { outbox: self, owner, settled: Cell::new(false), _lock: lock })
    }

    /// After a flush: gives back what it still claims, returns free pages to the file system, checkpoints,
    /// and remakes the reserve if a full disk took it. Nothing here may fail the flush.
    fn end_flush(&self, owner: i64, settled: bool) {
        let Ok(mut conn) = self.lock() else { return };
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
        let mut conn = self.lock()?;
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
        let mut conn = self.lock()?;
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
}

/// How long a claim lasts while its flusher may be alive: twice every attempt of a request with its connect
/// and request timeouts and the longest backoff between them, plus 10 s. A request, retries included, ends
/// within the request timeout, so this covers several requests of a claimed batch: with the defaults (5
/// attempts, 650 s) the 8 requests of a batch halved for a 413 (240 s at most) fit twice over. Items sent one
/// by one on a slow server may outlast it; another flusher then sends some of them again under the same
/// message_ids: replays, nothing lost or duplicated.
pub(super) fn lease_for(config: &Config) -> Duration {
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
