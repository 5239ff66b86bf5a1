//! The client: one per device, shareable between threads. Every call runs inside one deadline (the request
//! timeout) that covers its token fetch, its retries and their backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

use crate::auth::{Grant, TokenCache};
use crate::catalog::{self, Command, DesiredAction, Sensor};
use crate::codes::{self, Class};
use crate::config::{check_id, Config, Secret};
use crate::error::{Error, ErrorKind, Result};
use crate::feed::{self, FeedItem, FeedOutcome, FeedResult, ItemRef, Prepared, SingleAnswer};
use crate::log::{log, Level};
use crate::outbox::{DeadLetter, FlushReport, Outbox, OutboxStats};
use crate::retry::{backoff, random_u64};
use crate::time;
use crate::transport::{Answer, AuthHeader, Body, Method, Transport};

/// Items per batch request (the contract's limit).
pub(crate) const MAX_BATCH_ITEMS: usize = 100;

/// The results of a batch post, one per item in order, and the first error that stopped a request.
#[derive(Clone, Debug)]
pub struct BatchReport {
    pub results: Vec<FeedResult>,
    /// `None` when every request was answered (items may still be rejected one by one).
    pub error: Option<Error>,
}

pub struct Client {
    config: Config,
    transport: Transport,
    basic_auth: AuthHeader,
    tokens: TokenCache,
    /// The highest `sequence_number` this client reported, per command id.
    reported_sequence: Mutex<HashMap<String, i64>>,
    outbox: Option<Outbox>,
    feed_data_path: String,
    batches_path: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.config.base_url)
            .field("device_id", &self.config.device_id)
            .finish_non_exhaustive()
    }
}

fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// application/x-www-form-urlencoded value encoding.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn device_path(config: &Config, tail: &str) -> String {
    format!("/iot/v1/devices/{}{tail}", config.device_id.as_deref().unwrap_or_default())
}

/// What a refusal of a whole batch request (403, 402, 404...) does to its items. It says nothing about the
/// items themselves: a direct post reports them rejected with the request's code; the outbox keeps them
/// pending, since Realer never judged them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refused {
    Reject,
    KeepPending,
}

enum AttemptError {
    /// 401 with this token generation.
    Unauthorized(u64, Error),
    Failed(Error),
}

impl From<Error> for AttemptError {
    fn from(e: Error) -> AttemptError {
        AttemptError::Failed(e)
    }
}

const TOKEN_PATH: &str = "/oauth/token";

/// Parses a JSON answer into its `code` and what the caller wants of it; `None` when it is not JSON.
type ReadAnswer<T> = fn(&Answer) -> Option<(Option<i32>, T)>;

impl Client {
    /// Copies the configuration and opens the outbox file when one is configured; no network I/O.
    pub fn new(config: &Config) -> Result<Client> {
        config.check_complete()?;
        let client_id = config.client_id.as_deref().unwrap_or_default();
        let basic = format!("Basic {}", base64(format!("{client_id}:{}", config.client_secret.expose()).as_bytes()));
        let feed_data_path = device_path(config, "/feed-data");
        let batches_path = device_path(config, "/feed-data/batches");
        Ok(Client {
            config: config.clone(),
            transport: Transport::new(config, &[TOKEN_PATH, &feed_data_path, &batches_path]),
            basic_auth: AuthHeader::new(&Secret::new(basic))?,
            tokens: TokenCache::default(),
            reported_sequence: Mutex::new(HashMap::new()),
            outbox: config.outbox.as_ref().map(|o| Outbox::open(o, config)).transpose()?,
            feed_data_path,
            batches_path,
        })
    }

    fn device_path(&self, tail: &str) -> String {
        device_path(&self.config, tail)
    }

    fn send_logged(
        &self,
        method: Method,
        path: &str,
        authorization: &AuthHeader,
        body: Body<'_>,
        deadline: Instant,
    ) -> Result<Answer> {
        let Some(logger) = self.config.logger.as_ref().filter(|l| l.enabled(Level::Debug)) else {
            return self.transport.send(method, path, authorization, body, deadline);
        };
        let name = match method {
            Method::Get => "GET",
            Method::Post => "POST",
        };
        let started = Instant::now();
        let r = self.transport.send(method, path, authorization, body, deadline);
        let ms = started.elapsed().as_millis();
        match &r {
            Ok(a) => logger.log(Level::Debug, format_args!("{name} {path} -> HTTP {} in {ms} ms", a.status)),
            Err(e) => logger.log(Level::Debug, format_args!("{name} {path} failed after {ms} ms: {e}")),
        }
        r
    }

    fn fetch_token(&self, deadline: Instant) -> Result<Grant> {
        let mut form = String::from("grant_type=client_credentials");
        if let Some(scope) = &self.config.scope {
            form.push_str("&scope=");
            form.push_str(&form_encode(scope));
        }
        let answer = self.send_logged(Method::Post, TOKEN_PATH, &self.basic_auth, Body::Form(&form), deadline)?;
        if answer.status == 200 {
            let json = codes::json_body(&answer).ok_or_else(|| Error::protocol("token answer is not JSON"))?;
            let grant = Grant::parse(&json, time::now_unix_ms())?;
            log!(
                self.config.logger,
                Level::Info,
                "access token issued (renew after {:?}, expires in {:?})",
                grant.renew_after,
                grant.expires_in
            );
            return Ok(grant);
        }
        let retryable = codes::classify(answer.status, None) == Class::Retry;
        let mut err = codes::error_from_answer(&answer, if retryable { ErrorKind::Api } else { ErrorKind::Auth });
        err.message = format!("token request refused: {}", err.message);
        Err(err)
    }

    fn token(&self, deadline: Instant) -> Result<crate::auth::Token> {
        self.tokens.get(deadline, || self.fetch_token(deadline))
    }

    /// One attempt of a protected call; `read` parses a JSON answer into its `code` and what the caller wants.
    fn attempt<T>(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        deadline: Instant,
        read: ReadAnswer<T>,
    ) -> std::result::Result<(u16, T), AttemptError> {
        let token = self.token(deadline)?;
        let body = body.map_or(Body::Empty, Body::Json);
        let answer = self.send_logged(method, path, &token.header, body, deadline)?;
        let parsed = read(&answer);
        match codes::classify(answer.status, parsed.as_ref().and_then(|(code, _)| *code)) {
            Class::Success => match parsed {
                Some((_, v)) => Ok((answer.status, v)),
                None => Err(Error::protocol(format!("HTTP {} answer is not JSON", answer.status)).into()),
            },
            Class::RenewToken => {
                Err(AttemptError::Unauthorized(token.generation, codes::error_from_answer(&answer, ErrorKind::Auth)))
            }
            Class::Retry | Class::Fail => Err(codes::error_from_answer(&answer, ErrorKind::Api).into()),
        }
    }

    /// One protected call with the contract's handling: one new token and one retry after a 401, backoff
    /// retries of transient failures, all before the request deadline.
    fn call(&self, method: Method, path: &str, body: Option<&[u8]>) -> Result<(u16, Value)> {
        self.call_reading(method, path, body, |answer| codes::json_body(answer).map(|v| (codes::code_of(&v), v)))
    }

    /// `call`, with the answer parsed by `read`.
    fn call_reading<T>(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        read: ReadAnswer<T>,
    ) -> Result<(u16, T)> {
        self.retrying(path, |deadline| self.attempt(method, path, body, deadline, read))
    }

    /// Runs `attempt` until it succeeds, fails for good, runs out of attempts, or would overrun the request
    /// timeout. A 401 drops the token and earns one more attempt, outside the count.
    fn retrying<T>(&self, what: &str, attempt: impl Fn(Instant) -> std::result::Result<T, AttemptError>) -> Result<T> {
        let deadline = Instant::now() + self.config.request_timeout;
        let policy = self.config.retry;
        let mut failed = 0u32;
        let mut renewed = false;
        let mut reconnected = false;
        loop {
            let err = match attempt(deadline) {
                Ok(ok) => return Ok(ok),
                // A kept-alive connection the server closed moments ago: once per call, a new connection at
                // once, outside the count (the transport skips probing connections used within a second).
                Err(AttemptError::Failed(err)) if err.kind == ErrorKind::Network && !reconnected => {
                    log!(self.config.logger, Level::Debug, "{what}: {err}; trying a new connection");
                    reconnected = true;
                    continue;
                }
                Err(AttemptError::Unauthorized(generation, err)) => {
                    self.tokens.invalidate(generation);
                    if renewed {
                        return Err(err);
                    }
                    log!(
                        self.config.logger,
                        Level::Info,
                        "{what}: token refused (401); getting a new one and retrying once"
                    );
                    renewed = true;
                    continue;
                }
                Err(AttemptError::Failed(err)) => err,
            };
            failed += 1;
            if !err.retryable || failed >= policy.max_attempts {
                return Err(err);
            }
            let Some(delay) = backoff(&policy, failed, err.retry_after, random_u64()) else {
                log!(
                    self.config.logger,
                    Level::Warn,
                    "{what}: {err}; Retry-After is longer than max_delay_ms, giving up"
                );
                return Err(err);
            };
            if Instant::now() + delay >= deadline {
                return Err(err);
            }
            log!(
                self.config.logger,
                Level::Warn,
                "{what}: attempt {failed} failed ({err}); retrying in {} ms",
                delay.as_millis()
            );
            std::thread::sleep(delay);
        }
    }

    /// Gets a token now, unless a valid one is cached. Optional: every call fetches one when needed.
    pub fn authenticate(&self) -> Result<()> {
        self.retrying(TOKEN_PATH, |deadline| self.token(deadline).map(drop).map_err(AttemptError::Failed))
    }

    fn warn_sink(&self) -> impl FnMut(Level, String) + '_ {
        move |level, m| log!(self.config.logger, level, "{m}")
    }

    pub fn fetch_commands(&self) -> Result<Vec<Command>> {
        let (_, body) = self.call(Method::Get, &self.device_path("/commands"), None)?;
        catalog::parse_commands(&body, &mut self.warn_sink())
    }

    pub fn fetch_sensors(&self) -> Result<Vec<Sensor>> {
        let (_, body) = self.call(Method::Get, &self.device_path("/sensors"), None)?;
        catalog::parse_sensors(&body, &mut self.warn_sink())
    }

    fn one<T>(items: Vec<T>, what: &str, id: &str) -> Result<T> {
        items.into_iter().next().ok_or_else(|| Error::protocol(format!("the answer for {what} {id} holds no item")))
    }

    pub fn fetch_command(&self, id: &str) -> Result<Command> {
        check_id("command id", id).map_err(Error::invalid)?;
        let (_, body) = self.call(Method::Get, &self.device_path(&format!("/commands/{id}")), None)?;
        Self::one(catalog::parse_commands(&body, &mut self.warn_sink())?, "command", id)
    }

    pub fn fetch_sensor(&self, id: &str) -> Result<Sensor> {
        check_id("sensor id", id).map_err(Error::invalid)?;
        let (_, body) = self.call(Method::Get, &self.device_path(&format!("/sensors/{id}")), None)?;
        Self::one(catalog::parse_sensors(&body, &mut self.warn_sink())?, "sensor", id)
    }

    /// What to do about a command's pending desired state at `now_unix_ms`, given what this client reported.
    pub fn desired_action(&self, command: &Command, now_unix_ms: i64) -> DesiredAction {
        let last = self.lock_reported().get(&command.id).copied();
        catalog::desired_action(command, last, now_unix_ms)
    }

    fn lock_reported(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.reported_sequence.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember_reported(&self, prepared: &Prepared, result: &FeedResult) {
        if let (true, Some(cmd), Some(seq)) = (result.is_accepted(), &prepared.command_id, prepared.sequence_number) {
            let mut map = self.lock_reported();
            let e = map.entry(cmd.clone()).or_insert(seq);
            *e = (*e).max(seq);
        }
    }

    /// Posts one item. The result always carries the `message_id` used, so a failed post can be retried with it.
    pub fn post_feed_data(&self, item: &FeedItem) -> FeedResult {
        self.post_item(item.borrowed())
    }

    /// [`Client::post_feed_data`] for an item whose strings are borrowed (the C ABI's).
    pub(crate) fn post_item(&self, item: ItemRef<'_>) -> FeedResult {
        let prepared = match item.prepare(time::now_unix_ms()) {
            Ok(p) => p,
            Err(e) => return FeedResult::not_sent(item.message_id.unwrap_or_default().to_string(), e),
        };
        let body = prepared.body.as_bytes();
        let sent = self.call_reading(Method::Post, &self.feed_data_path, Some(body), SingleAnswer::read);
        let mut result = match sent {
            Ok((status, answer)) => feed::parse_single(status, &answer, prepared.message_id.clone()),
            Err(e) => FeedResult::from_error(prepared.message_id.clone(), e),
        };
        self.remember_reported(&prepared, &result);
        result.value_received_at = prepared.value_received_at;
        result
    }

    /// Posts items in batch requests of up to 100 (more items make more requests, sent in order; a batch
    /// answered 413 is split in halves and resent). Stops at the first request that fails as a whole; the
    /// items it and later requests held are `NotSent` (or `Rejected`, when the failure is final).
    pub fn post_feed_batch(&self, items: &[FeedItem]) -> BatchReport {
        let now = time::now_unix_ms();
        let mut prepared = Vec::with_capacity(items.len());
        let mut first_bad = None;
        for (i, item) in items.iter().enumerate() {
            match item.prepare(now) {
                Ok(p) => prepared.push(Some(p)),
                Err(e) => {
                    first_bad.get_or_insert_with(|| Error::invalid(format!("items[{i}]: {}", e.message)));
                    prepared.push(None);
                }
            }
        }
        if items.is_empty() {
            first_bad = Some(Error::invalid("a batch needs at least one item"));
        }
        if let Some(err) = first_bad {
            let results = items
                .iter()
                .zip(prepared)
                .map(|(item, p)| {
                    FeedResult::not_sent(
                        p.map(|p| p.message_id).or_else(|| item.message_id.clone()).unwrap_or_default(),
                        err.clone(),
                    )
                })
                .collect();
            return BatchReport { results, error: Some(err) };
        }
        let prepared: Vec<Prepared> = prepared.into_iter().flatten().collect();
        let mut results = Vec::with_capacity(prepared.len());
        let mut error = None;
        for chunk in prepared.chunks(MAX_BATCH_ITEMS) {
            if let Some(e) = &error {
                results.extend(chunk.iter().map(|p| FeedResult::not_sent(p.message_id.clone(), Error::clone(e))));
                continue;
            }
            if let Err(e) = self.send_batch(chunk, &mut results, Refused::Reject) {
                error = Some(e);
            }
        }
        for (p, r) in prepared.iter().zip(results.iter_mut()) {
            r.value_received_at = p.value_received_at.clone();
            self.remember_reported(p, r);
        }
        BatchReport { results, error }
    }

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
        let prepared = items
            .iter()
            .enumerate()
            .map(|(i, item)| item.prepare(now).map_err(|e| Error::invalid(format!("items[{i}]: {}", e.message))))
            .collect::<Result<Vec<_>>>()?;
        self.outbox_store(prepared)
    }

    fn outbox_store(&self, prepared: Vec<Prepared>) -> Result<Vec<String>> {
        let dropped = self.outbox()?.push(&prepared)?;
        if dropped > 0 {
            log!(self.config.logger, Level::Warn, "outbox full: dropped the {dropped} oldest unsent items");
        }
        Ok(prepared.into_iter().map(|p| p.message_id).collect())
    }

    /// Sends pending items, oldest first, in batches of up to 100, until none is left or `max_items` (0 = all)
    /// were tried. Accepted items leave the outbox; items Realer refused one by one become dead letters; the
    /// rest stay for the next flush. Stops at the first request that fails as a whole (transiently, or refused
    /// as a request: its items were never judged), returning its error.
    pub fn outbox_flush(&self, max_items: usize) -> (FlushReport, Option<Error>) {
        let outbox = match self.outbox() {
            Ok(o) => o,
            Err(e) => return (FlushReport::default(), Some(e)),
        };
        let mut report = FlushReport::default();
        let mut budget = if max_items == 0 { usize::MAX } else { max_items };
        let mut after = 0i64;
        let mut error = None;
        // Claims the rows it sends, so that other flushes of the same file send others; ends when dropped.
        let flush = outbox.begin_flush();
        while budget > 0 {
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
            let sent = self.send_batch(&items, &mut results, Refused::KeepPending);
            for (item, r) in items.iter().zip(&results) {
                match r.outcome {
                    FeedOutcome::Created => report.sent += 1,
                    FeedOutcome::Idempotent => report.replayed += 1,
                    FeedOutcome::Rejected => report.rejected += 1,
                    FeedOutcome::NotSent => {}
                }
                self.remember_reported(item, r);
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

    pub fn outbox_stats(&self) -> Result<OutboxStats> {
        self.outbox()?.stats()
    }

    pub fn outbox_dead_letters(&self) -> Result<Vec<DeadLetter>> {
        self.outbox()?.dead_letters()
    }

    /// Deletes every dead letter; returns how many there were.
    pub fn outbox_clear_dead(&self) -> Result<u64> {
        self.outbox()?.clear_dead()
    }

    fn send_batch(&self, chunk: &[Prepared], out: &mut Vec<FeedResult>, refused: Refused) -> Result<()> {
        let mut body = String::with_capacity(chunk.iter().map(|p| p.body.len() + 1).sum::<usize>() + 12);
        body.push_str("{\"items\":[");
        for (i, p) in chunk.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&p.body);
        }
        body.push_str("]}");
        match self.call(Method::Post, &self.batches_path, Some(body.as_bytes())) {
            Ok((status, json)) => {
                let ids: Vec<String> = chunk.iter().map(|p| p.message_id.clone()).collect();
                match feed::parse_batch(status, &json, &ids) {
                    Ok(results) => {
                        out.extend(results);
                        Ok(())
                    }
                    Err(e) => {
                        out.extend(chunk.iter().map(|p| FeedResult::not_sent(p.message_id.clone(), e.clone())));
                        Err(e)
                    }
                }
            }
            Err(e) if e.code == 4013 && chunk.len() > 1 => {
                log!(self.config.logger, Level::Info, "batch of {} items too large (413); splitting it", chunk.len());
                let (a, b) = chunk.split_at(chunk.len() / 2);
                match self.send_batch(a, out, refused) {
                    Ok(()) => self.send_batch(b, out, refused),
                    Err(e) => {
                        out.extend(b.iter().map(|p| FeedResult::not_sent(p.message_id.clone(), e.clone())));
                        Err(e)
                    }
                }
            }
            Err(e) => {
                // A single item too large for any request is refused for good, whoever sent it.
                let keep = refused == Refused::KeepPending && !(chunk.len() == 1 && e.code == 4013);
                out.extend(chunk.iter().map(|p| {
                    let r = FeedResult::from_error(p.message_id.clone(), e.clone());
                    if keep {
                        FeedResult { outcome: FeedOutcome::NotSent, ..r }
                    } else {
                        r
                    }
                }));
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_form_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"cdv_x:demo-secret"), "Y2R2X3g6ZGVtby1zZWNyZXQ=");
        assert_eq!(form_encode("iot:catalog:read iot:feed-data:write"), "iot%3Acatalog%3Aread+iot%3Afeed-data%3Awrite");
    }
}
