//! Posting feed data: one item through `/feed-data`, or batches through `/feed-data/batches` (split on 413,
//! one by one where the batch endpoint is missing), each item's fate read from Realer's answer.

use std::sync::Mutex;
use std::time::Instant;

use super::{lock, read_code, Client};
use crate::codes::{self, batch_refusal, BatchRefusal};
use crate::desired::REPROBE_AFTER;
use crate::error::{Error, ErrorKind, Result};
use crate::feed::{self, FeedItem, FeedOutcome, FeedResult, ItemRef, Prepared, SingleAnswer, Verdict413};
use crate::limits::MAX_BATCH_ITEMS;
use crate::log::{log, Level};
use crate::time;
use crate::transport::Method;

/// The results of a batch post, one per item in order, and the first error that stopped a request.
#[derive(Clone, Debug)]
pub struct BatchReport {
    /// One result per item, in the order of the items.
    pub results: Vec<FeedResult>,
    /// `None` when every request was answered (items may still be rejected one by one).
    pub error: Option<Error>,
}

impl BatchReport {
    /// A batch refused before anything was sent: every item `NotSent` with `error`, under its `message_id`
    /// when it has one.
    fn refused(message_ids: impl Iterator<Item = Option<String>>, error: Error) -> BatchReport {
        let results = message_ids.map(|id| FeedResult::not_sent(id.unwrap_or_default(), error.clone())).collect();
        BatchReport { results, error: Some(error) }
    }
}

/// Whether something found missing at `since` should be asked for again.
fn reprobe_due(since: &Mutex<Option<Instant>>) -> bool {
    lock(since).is_none_or(|at| at.elapsed() >= REPROBE_AFTER)
}

/// Every item of `chunk` unsent with `e`, and `e` to stop the send.
fn stop_with(chunk: &[Prepared], e: Error, out: &mut Vec<FeedResult>) -> Result<()> {
    out.extend(chunk.iter().map(|p| FeedResult::not_sent(p.message_id.clone(), e.clone())));
    Err(e)
}

impl Client {
    /// Posts one item. The result always carries the `message_id` used, so a failed post can be retried with it.
    pub fn post_feed_data(&self, item: &FeedItem) -> FeedResult {
        self.post_item(item.borrowed())
    }

    /// [`Client::post_item`] for an item as a caller handed it over, perhaps unreadable (the C boundary reads
    /// it first): an unreadable item is not sent, as an invalid one.
    pub(crate) fn post_item_read(&self, item: Result<ItemRef<'_>>) -> FeedResult {
        match item {
            Ok(item) => self.post_item(item),
            Err(e) => FeedResult::not_sent(String::new(), e),
        }
    }

    /// [`Client::post_feed_data`] for an item whose strings are borrowed (the C ABI's).
    pub(crate) fn post_item(&self, item: ItemRef<'_>) -> FeedResult {
        match item.prepare(time::now_unix_ms()) {
            Ok(p) => self.post_prepared(&p),
            Err(e) => FeedResult::not_sent(item.message_id.unwrap_or_default().to_string(), e),
        }
    }

    /// Posts one checked item through `/feed-data`.
    fn post_prepared(&self, prepared: &Prepared) -> FeedResult {
        let body = prepared.body.as_bytes();
        let sent = self.call_reading(Method::Post, &self.feed_data_path, Some(body), SingleAnswer::read);
        let mut result = match sent {
            Ok((answer, single)) => {
                self.sizes.carried(body.len());
                feed::parse_single(answer.status, &single, prepared.message_id.clone())
            }
            Err(e) => self.post_failed(&prepared.message_id, body.len(), e),
        };
        if result.is_accepted() {
            self.remember_answer(prepared);
        }
        result.value_received_at.clone_from(&prepared.value_received_at);
        result
    }

    /// Posts items in batch requests of up to 100 (more items make more requests, sent in order; a batch
    /// answered 413 is split in halves and resent, sized from then on below the smallest body refused; where
    /// the batch endpoint is missing or answers in a shape this client cannot read, a 2xx without Realer's
    /// body included, the items go one by one through `/feed-data`). Stops at the first request refused as a
    /// whole (contract section 7.5; a 413 for a body that cannot be too large is one): the items it and later
    /// requests held are `NotSent`.
    pub fn post_feed_batch(&self, items: &[FeedItem]) -> BatchReport {
        let now = time::now_unix_ms();
        let mut prepared = Vec::with_capacity(items.len());
        let mut first_bad = None;
        for (i, item) in items.iter().enumerate() {
            match item.prepare_at(now, i) {
                Ok(p) => prepared.push(Some(p)),
                Err(e) => {
                    first_bad.get_or_insert(e);
                    prepared.push(None);
                }
            }
        }
        if items.is_empty() {
            first_bad = Some(Error::invalid("a batch needs at least one item"));
        }
        if let Some(err) = first_bad {
            let ids =
                items.iter().zip(prepared).map(|(item, p)| p.map(|p| p.message_id).or_else(|| item.message_id.clone()));
            return BatchReport::refused(ids, err);
        }
        let prepared: Vec<Prepared> = prepared.into_iter().flatten().collect();
        let mut results = Vec::with_capacity(prepared.len());
        let mut error = None;
        for chunk in prepared.chunks(MAX_BATCH_ITEMS) {
            if let Some(e) = &error {
                results.extend(chunk.iter().map(|p| FeedResult::not_sent(p.message_id.clone(), Error::clone(e))));
                continue;
            }
            if let Err(e) = self.send_batch(chunk, &mut results) {
                error = Some(e);
            }
        }
        for (p, r) in prepared.iter().zip(results.iter_mut()) {
            r.value_received_at.clone_from(&p.value_received_at);
        }
        BatchReport { results, error }
    }

    /// [`Client::post_feed_batch`] for items as a caller handed them over, some perhaps unreadable (the C
    /// boundary reads each item first): one unreadable item refuses the batch as an invalid item does,
    /// before anything is sent.
    pub(crate) fn post_feed_batch_read(&self, items: Vec<Result<FeedItem>>) -> BatchReport {
        match items.iter().find_map(|r| r.as_ref().err()).cloned() {
            Some(err) => BatchReport::refused(items.into_iter().map(|r| r.ok().and_then(|i| i.message_id)), err),
            None => self.post_feed_batch(&items.into_iter().flatten().collect::<Vec<_>>()),
        }
    }

    /// The result of a post that failed (contract section 7.5). A 2xx without Realer's body confirms nothing;
    /// a 413 for a body that cannot be too large refused the request, not the item; an answer without
    /// Realer's JSON code judged nothing. Each leaves the item unsent.
    fn post_failed(&self, message_id: &str, bytes: usize, mut e: Error) -> FeedResult {
        if codes::is_unconfirmed_success(&e) {
            e.message.push_str(
                "; the item is not confirmed stored: NOT_SENT, send it again with the same message_id (a replay is harmless)",
            );
            log!(self.config.logger, Level::Warn, "feed data {message_id}: {e}");
            return FeedResult::not_sent(message_id.to_string(), e);
        }
        if codes::is_too_large(&e) {
            if self.sizes.refused_413(bytes, 1) == Verdict413::Refusal {
                return FeedResult::not_sent(message_id.to_string(), self.refusal_413(e, bytes));
            }
        } else if e.from_realer {
            self.sizes.carried(bytes);
        }
        if e.kind == ErrorKind::Api && !e.from_realer && !e.retryable {
            log!(self.config.logger, Level::Warn, "feed data {message_id}: {e}; kept unsent");
        }
        FeedResult::from_error(message_id.to_string(), e)
    }

    /// A 413 for a body of `bytes` that cannot be over any byte budget: a refusal of the request (sent again
    /// later), said in the message and the log.
    fn refusal_413(&self, mut e: Error, bytes: usize) -> Error {
        e.message = format!(
            "{}; {}: the request was refused, not the item (kept unsent)",
            e.message,
            self.sizes.why_refusal(bytes)
        );
        e.retryable = true;
        log!(self.config.logger, Level::Warn, "feed data: HTTP 413 taken as a refusal of the request: {}", e.message);
        e
    }

    /// Sends one chunk (up to 100 items), appending one result per item to `out`, in order. `Err` when a
    /// request was refused as a whole in a way that stops the caller (the items left are `NotSent`).
    pub(super) fn send_batch(&self, chunk: &[Prepared], out: &mut Vec<FeedResult>) -> Result<()> {
        if !reprobe_due(&self.batches_missing) {
            return self.send_one_by_one(chunk, out);
        }
        let mut body = String::with_capacity(chunk.iter().map(|p| p.body.len() + 1).sum::<usize>() + 12);
        feed::write_items_envelope(&mut body, chunk);
        if chunk.len() > 1 && !self.sizes.fits(body.len()) {
            // No smaller than a body the path refused as too large: halved before asking.
            return self.split_batch(chunk, out);
        }
        // Every arm that does not return falls back to sending the chunk one by one.
        match self.call_reading(Method::Post, &self.batches_path, Some(body.as_bytes()), read_code) {
            Ok((answer, ())) => {
                let ids: Vec<String> = chunk.iter().map(|p| p.message_id.clone()).collect();
                match feed::parse_batch(answer.status, &answer.body, &ids) {
                    Ok(results) => {
                        drop(answer);
                        self.sizes.carried(body.len());
                        return self.settle_batch(chunk, results, out);
                    }
                    Err(e) => {
                        log!(self.config.logger, Level::Warn, "batch answer unreadable ({e}); sending one by one");
                        *lock(&self.batches_missing) = Some(Instant::now());
                    }
                }
            }
            Err(e) => {
                if e.from_realer && e.code != codes::TOO_LARGE {
                    self.sizes.carried(body.len());
                }
                match batch_refusal(&e) {
                    BatchRefusal::Stop => return stop_with(chunk, e, out),
                    BatchRefusal::TooLarge => return self.batch_too_large(chunk, body.len(), e, out),
                    BatchRefusal::OneByOne => {
                        log!(self.config.logger, Level::Warn, "batch endpoint: {e}; sending one by one for an hour");
                        *lock(&self.batches_missing) = Some(Instant::now());
                    }
                }
            }
        }
        self.send_one_by_one(chunk, out)
    }

    /// A batch body of `bytes` answered 413 (contract sections 5 and 7.5): halved until one item remains; one
    /// item that may be too large is rejected when the 413 was Realer's; one item that cannot be too large
    /// (under 1 KiB, or no larger than a body the path carried) was a refusal of the request, which stops the
    /// send.
    fn batch_too_large(&self, chunk: &[Prepared], bytes: usize, e: Error, out: &mut Vec<FeedResult>) -> Result<()> {
        match self.sizes.refused_413(bytes, chunk.len()) {
            Verdict413::MayBeTooLarge if chunk.len() > 1 => {
                log!(
                    self.config.logger,
                    Level::Info,
                    "batch of {} items ({bytes} bytes) too large (413); splitting it",
                    chunk.len()
                );
                self.split_batch(chunk, out)
            }
            Verdict413::MayBeTooLarge => {
                // One item, larger than any body the path carried: over the byte budget when Realer said so
                // (the send goes on); too large for something on the path otherwise, which judged nothing.
                let r = FeedResult::from_error(chunk[0].message_id.clone(), e.clone());
                if r.outcome == FeedOutcome::NotSent {
                    return stop_with(chunk, e, out);
                }
                out.push(r);
                Ok(())
            }
            Verdict413::Refusal => {
                let e = self.refusal_413(e, bytes);
                stop_with(chunk, e, out)
            }
        }
    }

    /// Halves a chunk by bytes (413) and sends each part. The first part holds at most half the items too,
    /// so that a path refusing every body is found out within 8 requests for 100 items.
    fn split_batch(&self, chunk: &[Prepared], out: &mut Vec<FeedResult>) -> Result<()> {
        let total: usize = chunk.iter().map(|p| p.body.len()).sum();
        let mut bytes = 0;
        let half = chunk
            .iter()
            .position(|p| {
                bytes += p.body.len();
                bytes * 2 >= total
            })
            .map_or(chunk.len() / 2, |i| i + 1)
            .min(chunk.len().div_ceil(2))
            .clamp(1, chunk.len() - 1);
        let (a, b) = chunk.split_at(half);
        match self.send_batch(a, out) {
            Ok(()) => self.send_batch(b, out),
            Err(e) => {
                out.extend(b.iter().map(|p| FeedResult::not_sent(p.message_id.clone(), e.clone())));
                Err(e)
            }
        }
    }

    /// Results of a readable batch answer; the items it said nothing readable about go one by one.
    fn settle_batch(
        &self,
        chunk: &[Prepared],
        results: Vec<Option<FeedResult>>,
        out: &mut Vec<FeedResult>,
    ) -> Result<()> {
        let mut stopped = None;
        for (p, r) in chunk.iter().zip(results) {
            let r = match (r, &stopped) {
                (Some(mut r), _) => {
                    if r.is_accepted() {
                        self.remember_answer(p);
                    }
                    // A rejected item's error is what the server said about it.
                    r.error = r.error.map(|e| self.tokens.secrets().clean_error(e));
                    r
                }
                (None, Some(e)) => FeedResult::not_sent(p.message_id.clone(), Error::clone(e)),
                (None, None) => {
                    let r = self.post_prepared(p);
                    if r.outcome == FeedOutcome::NotSent {
                        stopped = r.error.clone();
                    }
                    r
                }
            };
            out.push(r);
        }
        stopped.map_or(Ok(()), Err)
    }

    /// Sends a chunk item by item through `/feed-data`, stopping at the first item left unsent.
    fn send_one_by_one(&self, chunk: &[Prepared], out: &mut Vec<FeedResult>) -> Result<()> {
        for (i, p) in chunk.iter().enumerate() {
            let r = self.post_prepared(p);
            if r.outcome == FeedOutcome::NotSent {
                let e = r.error.clone().unwrap_or_else(|| Error::protocol("the item was not sent"));
                out.push(r);
                out.extend(chunk[i + 1..].iter().map(|p| FeedResult::not_sent(p.message_id.clone(), e.clone())));
                return Err(e);
            }
            out.push(r);
        }
        Ok(())
    }
}
