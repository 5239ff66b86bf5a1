//! What the device remembers of Realer's wishes, for the rules of `desired` (which decide what to apply): the
//! desired states it answered (the highest `sequence_number` per command, the last `desired_id`s), the catalog
//! value last handed over per command, and what a service was found not to offer. Kept in the outbox file when
//! there is one (shared by every process that opens it, kept across restarts), else in memory for the
//! client's life.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::file::OutboxFile;
use crate::error::{Error, ErrorKind, Result};

/// How many answered `desired_id`s are remembered (per client, and per outbox file).
const ANSWERED_KEPT: usize = 4096;

/// What a service answered when asked for `/desired-states` and found not to offer them (contract section 3b:
/// 400, 403, 404 or 405), and under which token scope and catalog: the client keeps to the catalog's values
/// while both stay the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fallback {
    pub http_status: u16,
    /// The scopes the token of the finding was granted, as the token answer listed them.
    pub scope: Option<String>,
    /// The fingerprint of the catalog read with it (`desired::catalog_fingerprint`); `None` until one was read.
    pub catalog: Option<u64>,
}

/// The memory, in the outbox file or in this process.
pub(crate) enum DesiredMemory {
    Memory(Mutex<Tables>),
    File(Arc<OutboxFile>),
}

/// The memory of a client without an outbox file.
#[derive(Default)]
pub(crate) struct Tables {
    latest: HashMap<String, i64>,
    answered: HashSet<String>,
    order: VecDeque<String>,
    /// The last catalog value seen per command: its value type and value.
    catalog: HashMap<String, (Option<String>, String)>,
}

/// The catalog values last seen, per command, read and written within one pass (one transaction in the file).
pub(crate) trait SeenValues {
    /// The value type and value last seen for `command_id`.
    fn get(&mut self, command_id: &str) -> Result<Option<(Option<String>, String)>>;
    /// Makes `value` (of `value_type`) the last seen for `command_id`.
    fn set(&mut self, command_id: &str, value_type: Option<&str>, value: &str) -> Result<()>;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn file_error(e: rusqlite::Error) -> Error {
    Error::new(ErrorKind::Storage, format!("outbox file: desired-state memory: {e}"))
}

impl SeenValues for Tables {
    fn get(&mut self, command_id: &str) -> Result<Option<(Option<String>, String)>> {
        Ok(self.catalog.get(command_id).cloned())
    }
    fn set(&mut self, command_id: &str, value_type: Option<&str>, value: &str) -> Result<()> {
        self.catalog.insert(command_id.to_string(), (value_type.map(str::to_string), value.to_string()));
        Ok(())
    }
}

/// The catalog values in the file, within a transaction; counts what it writes.
struct SeenInFile<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    written: usize,
}

impl SeenValues for SeenInFile<'_> {
    fn get(&mut self, command_id: &str) -> Result<Option<(Option<String>, String)>> {
        self.tx
            .prepare_cached("SELECT value_type, value FROM catalog_seen WHERE command_id = ?1")
            .and_then(|mut read| read.query_row(params![command_id], |row| Ok((row.get(0)?, row.get(1)?))).optional())
            .map_err(file_error)
    }
    fn set(&mut self, command_id: &str, value_type: Option<&str>, value: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO catalog_seen (command_id, value_type, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(command_id) DO UPDATE SET value_type = excluded.value_type, value = excluded.value",
            )
            .and_then(|mut write| write.execute(params![command_id, value_type, value]))
            .map_err(file_error)?;
        self.written += 1;
        Ok(())
    }
}

/// Remembers an answer in the file, within the caller's transaction: the outbox's push records the answers it
/// queues in the transaction that queues them, so that no kill between the two can leave an answer queued but
/// not remembered (and the desired state applied and answered again under another `message_id`).
pub(super) fn record_in(
    tx: &rusqlite::Transaction<'_>,
    command_id: &str,
    desired_id: Option<&str>,
    sequence_number: Option<i64>,
) -> Result<()> {
    if let Some(seq) = sequence_number {
        tx.prepare_cached(
            "INSERT INTO desired_sequence (command_id, sequence_number) VALUES (?1, ?2)
             ON CONFLICT(command_id) DO UPDATE SET sequence_number = MAX(sequence_number, excluded.sequence_number)",
        )
        .and_then(|mut s| s.execute(params![command_id, seq]))
        .map_err(file_error)?;
    }
    if let Some(d) = desired_id {
        tx.prepare_cached("INSERT OR IGNORE INTO desired_answered (desired_id) VALUES (?1)")
            .and_then(|mut s| s.execute(params![d]))
            .map_err(file_error)?;
        tx.prepare_cached("DELETE FROM desired_answered WHERE seq <= (SELECT MAX(seq) FROM desired_answered) - ?1")
            .and_then(|mut s| s.execute(params![ANSWERED_KEPT as i64]))
            .map_err(file_error)?;
    }
    Ok(())
}

impl DesiredMemory {
    /// A memory of this process only (a client without an outbox file).
    pub(crate) fn in_memory() -> DesiredMemory {
        DesiredMemory::Memory(Mutex::new(Tables::default()))
    }

    /// Whether this process may use the memory: refused in a child after `fork()` when it is the parent's file.
    pub(crate) fn check_process(&self) -> Result<()> {
        match self {
            DesiredMemory::Memory(_) => Ok(()),
            DesiredMemory::File(f) => f.check_process(),
        }
    }

    /// The highest `sequence_number` answered for `command_id`.
    pub(crate) fn latest(&self, command_id: &str) -> Result<Option<i64>> {
        match self {
            DesiredMemory::Memory(m) => Ok(lock(m).latest.get(command_id).copied()),
            DesiredMemory::File(f) => f
                .lock()?
                .query_row(
                    "SELECT sequence_number FROM desired_sequence WHERE command_id = ?1",
                    params![command_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(file_error),
        }
    }

    /// Whether `desired_id` was answered (or queued to be).
    pub(crate) fn answered(&self, desired_id: &str) -> Result<bool> {
        if desired_id.is_empty() {
            return Ok(false);
        }
        match self {
            DesiredMemory::Memory(m) => Ok(lock(m).answered.contains(desired_id)),
            DesiredMemory::File(f) => f
                .lock()?
                .query_row("SELECT 1 FROM desired_answered WHERE desired_id = ?1", params![desired_id], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
                .map_err(file_error),
        }
    }

    /// Remembers an answer accepted by Realer or queued in the outbox: the command's highest sequence number,
    /// and the `desired_id` among the last [`ANSWERED_KEPT`].
    pub(crate) fn record(
        &self,
        command_id: &str,
        desired_id: Option<&str>,
        sequence_number: Option<i64>,
    ) -> Result<()> {
        match self {
            DesiredMemory::Memory(m) => {
                let mut m = lock(m);
                if let Some(seq) = sequence_number {
                    let e = m.latest.entry(command_id.to_string()).or_insert(seq);
                    *e = (*e).max(seq);
                }
                if let Some(d) = desired_id {
                    if m.answered.insert(d.to_string()) {
                        m.order.push_back(d.to_string());
                        while m.order.len() > ANSWERED_KEPT {
                            if let Some(old) = m.order.pop_front() {
                                m.answered.remove(&old);
                            }
                        }
                    }
                }
                Ok(())
            }
            DesiredMemory::File(f) => {
                let mut conn = f.lock()?;
                let tx = conn.transaction().map_err(file_error)?;
                record_in(&tx, command_id, desired_id, sequence_number)?;
                tx.commit().map_err(file_error)
            }
        }
    }

    /// Runs one pass over the catalog values last seen: `pass` reads and writes them, all at once for another
    /// process sharing the file (an IMMEDIATE transaction: it decides after this one, not at the same time).
    /// Written only when `pass` set something and returned `Ok` (a poll that finds nothing new costs no disk
    /// write); in the file a failure leaves the memory as it was (the transaction is rolled back). In memory a
    /// pass's writes stand as made: the passes in use fail only on the file's reads and writes.
    pub(crate) fn seen_values<T>(&self, pass: impl FnOnce(&mut dyn SeenValues) -> Result<T>) -> Result<T> {
        match self {
            DesiredMemory::Memory(m) => pass(&mut *lock(m)),
            DesiredMemory::File(f) => {
                let mut conn = f.lock()?;
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(file_error)?;
                let mut seen = SeenInFile { tx: &tx, written: 0 };
                let out = pass(&mut seen)?;
                if seen.written == 0 {
                    tx.rollback().map_err(file_error)?;
                } else {
                    tx.commit().map_err(file_error)?;
                }
                Ok(out)
            }
        }
    }

    /// The fallback found earlier for `service` (base URL, device and client), in the outbox file; `None` in
    /// memory (a new client without an outbox file asks the service again).
    pub(crate) fn fallback(&self, service: &str) -> Result<Option<Fallback>> {
        let DesiredMemory::File(f) = self else { return Ok(None) };
        f.lock()?
            .query_row(
                "SELECT http_status, scope, catalog FROM desired_fallback WHERE service = ?1",
                params![service],
                |r| {
                    Ok(Fallback {
                        http_status: r.get::<_, i64>(0)?.clamp(0, 999) as u16,
                        scope: r.get(1)?,
                        catalog: r.get::<_, Option<i64>>(2)?.map(|n| n as u64),
                    })
                },
            )
            .optional()
            .map_err(file_error)
    }

    /// Keeps (or, with `None`, forgets) the fallback found for `service`, in the outbox file.
    pub(crate) fn set_fallback(&self, service: &str, fallback: Option<&Fallback>) -> Result<()> {
        let DesiredMemory::File(f) = self else { return Ok(()) };
        let conn = f.lock()?;
        match fallback {
            Some(f) => conn.execute(
                "INSERT OR REPLACE INTO desired_fallback (service, http_status, scope, catalog) VALUES (?1, ?2, ?3, ?4)",
                params![service, i64::from(f.http_status), f.scope, f.catalog.map(|n| n as i64)],
            ),
            None => conn.execute("DELETE FROM desired_fallback WHERE service = ?1", params![service]),
        }
        .map(drop)
        .map_err(file_error)
    }
}

impl std::fmt::Debug for DesiredMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DesiredMemory::Memory(_) => "DesiredMemory::Memory",
            DesiredMemory::File(_) => "DesiredMemory::File",
        })
    }
}

#[cfg(test)]
impl DesiredMemory {
    /// The memory in the outbox file at `path` (made when missing), for the tests.
    pub(crate) fn open_file(path: &str) -> Result<DesiredMemory> {
        Ok(DesiredMemory::File(Arc::new(OutboxFile::open(path, std::time::Duration::from_secs(5))?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory, and the path of an outbox file in it.
    fn scratch(tag: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!(
            "realer-memory-{tag}-{}-{}",
            std::process::id(),
            crate::random::random_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("outbox.db").to_str().unwrap().to_string();
        (dir, path)
    }

    #[test]
    fn the_fallback_is_kept_in_the_file_only() {
        let (dir, path) = scratch("fallback");
        let memory = DesiredMemory::open_file(&path).unwrap();
        assert_eq!(memory.fallback("svc").unwrap(), None);
        let found = Fallback { http_status: 404, scope: Some("s".into()), catalog: Some(u64::MAX - 1) };
        memory.set_fallback("svc", Some(&found)).unwrap();
        drop(memory);
        let memory = DesiredMemory::open_file(&path).unwrap();
        assert_eq!(memory.fallback("svc").unwrap(), Some(found.clone()));
        assert_eq!(memory.fallback("other").unwrap(), None);
        memory.set_fallback("svc", None).unwrap();
        assert_eq!(memory.fallback("svc").unwrap(), None);
        let in_memory = DesiredMemory::in_memory();
        in_memory.set_fallback("svc", Some(&found)).unwrap();
        assert_eq!(in_memory.fallback("svc").unwrap(), None, "in memory: a new client asks again");
        drop(memory);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn answers_survive_a_reopen_and_the_oldest_give_way() {
        let (dir, path) = scratch("answers");
        let memory = DesiredMemory::open_file(&path).unwrap();
        memory.record("1", Some("des_a"), Some(3)).unwrap();
        memory.record("1", Some("des_b"), Some(2)).unwrap();
        drop(memory);
        for memory in [DesiredMemory::open_file(&path).unwrap(), DesiredMemory::in_memory()] {
            if matches!(memory, DesiredMemory::Memory(_)) {
                memory.record("1", Some("des_a"), Some(3)).unwrap();
                memory.record("1", Some("des_b"), Some(2)).unwrap();
            }
            assert_eq!(memory.latest("1").unwrap(), Some(3));
            assert!(memory.answered("des_a").unwrap() && memory.answered("des_b").unwrap());
            assert!(!memory.answered("des_c").unwrap() && !memory.answered("").unwrap());
            assert_eq!(memory.latest("2").unwrap(), None);
            for i in 0..ANSWERED_KEPT {
                memory.record("2", Some(&format!("des_{i}")), None).unwrap();
            }
            assert!(!memory.answered("des_a").unwrap(), "{memory:?}: the oldest answer gave way");
            assert!(
                memory.answered("des_0").unwrap() && memory.answered(&format!("des_{}", ANSWERED_KEPT - 1)).unwrap()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pass_over_seen_values_writes_only_what_it_set() {
        let (dir, path) = scratch("seen");
        let memory = DesiredMemory::open_file(&path).unwrap();
        memory.seen_values(|seen| seen.set("1", Some("Enum"), "open")).unwrap();
        let failed = memory.seen_values(|seen| {
            seen.set("1", Some("Enum"), "closed")?;
            Err::<(), _>(Error::internal("the pass failed"))
        });
        assert!(failed.is_err());
        let seen = memory.seen_values(|seen| seen.get("1")).unwrap();
        assert_eq!(seen, Some((Some("Enum".to_string()), "open".to_string())), "a failed pass wrote nothing");
        drop(memory);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
