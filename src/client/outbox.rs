//! The client's side of the outbox: items pushed durably, flushed through the batch sender, and what a
//! maintainer reads of it.

use std::time::Instant;

use super::Client;
use crate::error::{Error, Result};
use crate::feed::{FeedItem, FeedOutcome, Prepared};
use crate::limits::MAX_BATCH_ITEMS;
use crate::log::{log, Level};
use crate::outbox::{DeadLetter, FlushReport, Outbox, OutboxStats};
use crate::pacing;
use crate::random::random_u64;
use crate::time;

impl Client {
    fn outbox(&self) -> Result<&Outbox> {
        self.outbox.as_ref().ok_or_else(|| Error::config("no outbox is configured: call realer_config_set_outbox"))
    }

    /// Stores one item in the outbox, synced to disk; returns its `message_id` (generated when it had none).
    pub fn outbox_push(&self, item: &FeedItem) -> Result<String> {
        let prepared = item.prepare(time::now_unix_ms())?;
        self.outbox_store(vec![prepared]).map(|mut ids| ids.remove(0))
    }

    /// Stores items in the outbox in one transaction: all of them or, on any error, none.
    pub fn outbox_push_many(&self, items: &[FeedItem]) -> Result<Vec<String>> {
        if items.is_empty() {
            return Err(Error::invalid("a push needs at least one item"));
        }
        let now = time::now_unix_ms();
        let prepared = items.iter().enumerate().map(|(i, item)| item.prepare_at(now, i)).collect::<Result<Vec<_>>>()?;
        self.outbox_store(prepared)
    }

    fn outbox_store(&self, prepared: Vec<Prepared>) -> Result<Vec<String>> {
        // The push remembers the desired states it queues answers to, in its own transaction; a command report
        // without desired_id marks the catalog value handed over for it as acted on.
        let dropped = self.outbox()?.push(&prepared)?;
        prepared.iter().filter(|p| p.desired_id.is_none()).for_each(|p| self.remember_answer(p));
        if dropped > 0 {
            log!(self.config.logger, Level::Warn, "outbox full: dropped the {dropped} oldest unsent items");
        }
        Ok(prepared.into_iter().map(|p| p.message_id).collect())
    }

    /// Sends pending items, oldest first, in batches of up to 100, until none is left or `max_items` (0 = all) were
    /// tried. After a long outage flushes are paced (see `pacing`): one called too early sends nothing and returns a
    /// retryable network error that says how long to wait. Accepted items leave the outbox; items Realer judged and
    /// refused one by one, in its own JSON, become dead letters; the rest stay for the next flush. Stops at the first
    /// request that fails as a whole (transiently, or refused as a request: its items were never judged), returning its
    /// error.
    pub fn outbox_flush(&self, max_items: usize) -> (FlushReport, Option<Error>) {
        let outbox = match self.outbox() {
            Ok(o) => o,
            Err(e) => return (FlushReport::default(), Some(e)),
        };
        let mut report = FlushReport::default();
        let probe = match outbox.pacing.begin(Instant::now()) {
            pacing::Gate::Send(probe) => probe,
            pacing::Gate::Wait(e) => {
                return match outbox.stats() {
                    Ok(s) => {
                        report.pending = s.pending;
                        (report, (s.pending > 0).then_some(e))
                    }
                    Err(e) => (report, Some(e)),
                };
            }
        };
        let mut budget = if max_items == 0 { usize::MAX } else { max_items };
        let mut after = 0i64;
        let mut error = None;
        // Claims the rows it sends, so that other flushes of the same file send others; ends when dropped.
        let flush = match outbox.begin_flush() {
            Ok(flush) => flush,
            Err(e) => return (report, Some(e)),
        };
        while budget > 0 {
            if let Err(e) = self.transport.cancel_state().check() {
                error = Some(e);
                break;
            }
            let (seqs, items) = match flush.next_batch(after, budget.min(MAX_BATCH_ITEMS)) {
                Ok(b) => b,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            let Some(&last) = seqs.last() else { break };
            after = last;
            budget -= items.len();
            let mut results = Vec::with_capacity(items.len());
            let sent = self.send_batch(&items, &mut results);
            for r in &results {
                match r.outcome {
                    FeedOutcome::Created => report.sent += 1,
                    FeedOutcome::Idempotent => report.replayed += 1,
                    FeedOutcome::Rejected => report.rejected += 1,
                    FeedOutcome::NotSent => {}
                }
            }
            if let Err(e) = flush.settle(&seqs, &items, &results) {
                error = Some(e);
                break;
            }
            if let Err(e) = sent {
                error = Some(e);
                break;
            }
        }
        drop(flush);
        drop(probe);
        let settled = report.sent + report.replayed + report.rejected;
        let outcome = pacing::Outcome::of(settled, error.as_ref());
        outbox.pacing.end(Instant::now(), outcome, &self.config.retry, random_u64());
        if report.rejected > 0 {
            log!(
                self.config.logger,
                Level::Warn,
                "outbox: {} items refused for good, moved to dead letters",
                report.rejected
            );
        }
        match outbox.stats() {
            Ok(s) => report.pending = s.pending,
            Err(e) => {
                error.get_or_insert(e);
            }
        }
        (report, error)
    }

    /// The outbox's counts: pending items and their bytes, dead letters, the oldest item's age, what was dropped.
    pub fn outbox_stats(&self) -> Result<OutboxStats> {
        self.outbox()?.stats()
    }

    /// Every dead letter (an item Realer refused for good), oldest first.
    pub fn outbox_dead_letters(&self) -> Result<Vec<DeadLetter>> {
        self.outbox()?.dead_letters()
    }

    /// SQLite's check of the outbox file: empty when it is sound, else what it found.
    pub fn outbox_check(&self) -> Result<Vec<String>> {
        self.outbox()?.check()
    }

    /// The pending items, oldest first, at most `limit` (for a maintainer's eyes).
    pub fn outbox_pending(&self, limit: usize) -> Result<Vec<crate::outbox::PendingItem>> {
        self.outbox()?.pending(limit)
    }

    /// Puts every dead letter back in the outbox, to be sent again (after its cause was fixed in Realer);
    /// returns how many.
    pub fn outbox_retry_dead(&self) -> Result<u64> {
        self.outbox()?.retry_dead()
    }

    /// Deletes every dead letter; returns how many there were.
    pub fn outbox_clear_dead(&self) -> Result<u64> {
        self.outbox()?.clear_dead()
    }
}
