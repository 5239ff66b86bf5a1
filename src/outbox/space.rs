//! Disk space: the reserve given back when the disk is full (so a flush can always record what it sent), the
//! probe before a large push, the files a killed process left, and the outbox's own limits (`max_items`,
//! `max_bytes`), within which the oldest dead letters give way first.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::file::WAL_SIZE_LIMIT;
use super::{beside, storage, Outbox, DISK_FULL, DISK_IO};
use crate::error::{Error, ErrorKind, Result};
use crate::outbox::FullPolicy;
use crate::random::random_u64;

/// A push of more item bytes than this first checks that the disk has room for it twice over (its WAL frames
/// and the database pages its checkpoint adds), so that what it leaves to checkpoint never exceeds what the
/// reserve can cover. The check writes to the page cache only (no fsync): cheap enough to do often.
pub(super) const PROBE_ABOVE_BYTES: u64 = 16 * 1024;

/// Space kept in a file beside the database and given back when the disk is full, so that a flush can still
/// record what it sent. After it is given back, the checkpoint that empties the WAL must be able to grow the
/// database file by the new pages the WAL holds. A commit that adds pages also rewrites at least four the
/// file has (page 1, a pointer-map page, a table leaf, an index leaf) and a push below the probe adds at most
/// four: new pages are at most half of a checkpoint's worth plus one push, 528 KiB (measured: 448 KiB with
/// single 16 KiB items). Files of 0.1.0 have no pointer-map pages: there it may be 4/7, about 600 KiB.
/// Once the WAL is emptied, a batch's deletes reuse its space.
pub(crate) const RESERVE_BYTES: u64 = WAL_SIZE_LIMIT / 2 + 64 * 1024;

/// Free pages a flush leaves in the file for the next pushes; beyond this they go back to the file system.
pub(super) const FREE_PAGES_KEPT: i64 = 16;

/// Whether a failure may come from a full disk, so that giving space back may cure it.
pub(super) fn may_be_disk_full(e: &Error) -> bool {
    e.kind == ErrorKind::Storage && (e.message.starts_with(DISK_FULL) || e.message.starts_with(DISK_IO))
}

/// Writes `len` bytes that no file system compresses (UBIFS and btrfs compress zeros to nothing): space a
/// later write can count on.
pub(super) fn write_filler(f: &mut File, len: u64) -> std::io::Result<()> {
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

/// Removes `<db>-reserve.*` files a process killed while making the reserve left, once a minute old (a
/// younger one may be another process's, still being written).
pub(super) fn remove_stale_reserve_copies(db: &str) {
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

/// What a dead letter weighs against `max_bytes`: its item and what Realer said about it.
const DEAD_BYTES: &str =
    "length(CAST(body AS BLOB)) + length(CAST(message AS BLOB)) + length(CAST(details_json AS BLOB)) + length(CAST(error_type AS BLOB))";

impl Outbox {
    /// Makes the reserve file when it is missing (another process, or this one, gave it back).
    pub(super) fn ensure_reserve(&self) -> std::io::Result<()> {
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
    pub(super) fn write_freeing<T>(
        &self,
        conn: &mut Connection,
        mut f: impl FnMut(&mut Connection) -> Result<T>,
    ) -> Result<T> {
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
    pub(super) fn drop_dead_letters(&self, tx: &rusqlite::Transaction<'_>) -> Result<(u64, u64)> {
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
    pub(super) fn make_room(&self, tx: &rusqlite::Transaction<'_>, protected: &HashSet<i64>) -> Result<u64> {
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
}
