//! The client: one per device, shareable between threads. Every call runs inside one deadline (the request
//! timeout) that covers its token fetch, its retries and their backoff.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::auth::{self, Grant, KnownSecrets, TokenCache};
use crate::catalog::{self, Command, CommandSink, Commands, ItemErrorRef, Sensor, SensorSink, Sensors};
use crate::codes::{self, Class};
use crate::config::{check_id, Config};
use crate::desired::{self, AnsweredLog, DesiredSource, DesiredStates, REPROBE_AFTER};
use crate::error::{Error, ErrorKind, Result};
use crate::feed::{self, FeedItem, FeedOutcome, FeedResult, ItemRef, PathSizes, Prepared, SingleAnswer, Verdict413};
use crate::json;
use crate::limits::MAX_BATCH_ITEMS;
use crate::log::{log, Level};
use crate::outbox::{DeadLetter, FlushReport, Outbox, OutboxStats};
use crate::pacing;
use crate::process::Owner;
use crate::random::random_u64;
use crate::retry::backoff;
use crate::time;
use crate::transport::{Answer, AuthHeader, Body, Method, Transport};

/// Why a client uses the catalog's values instead of `/desired-states` ([`Client::desired_states_fallback`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DesiredStatesFallback {
    /// What `/desired-states` answered: 404 or 405 (not offered), 403 (not allowed), 400.
    pub http_status: u16,
    /// The 403 came with a token whose granted scope lacks `iot:desired-state:read`: on a newer service no
    /// desired state is delivered. Leave the scope unset (Realer's default scopes), or add it.
    pub scope_lacks_desired_state_read: bool,
}

/// The results of a batch post, one per item in order, and the first error that stopped a request.
#[derive(Clone, Debug)]
pub struct BatchReport {
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

pub struct Client {
    config: Config,
    transport: Transport,
    basic_auth: AuthHeader,
    tokens: TokenCache,
    /// What this device answered of Realer's desired states (in the outbox file when there is one).
    answered: AnsweredLog,
    /// Which kind of service answers for `/desired-states`, as far as this client knows.
    service: Mutex<Service>,
    /// The key of this client's service in the outbox file's memory (base URL, device, client id).
    service_key: String,
    /// The last full command list read, and when: the next desired-state fetch of an older service uses it
    /// instead of reading the catalog a second time in the same pass.
    last_commands: Mutex<Option<(Instant, Commands)>>,
    /// When `/feed-data/batches` refused a request as a whole or answered in a shape this client cannot
    /// read: batches go one item at a time through `/feed-data` until `REPROBE_AFTER` has passed.
    batches_missing: Mutex<Option<Instant>>,
    /// The largest body the path to Realer carried and the smallest it refused with 413: what a 413 means,
    /// and how large a batch is sent whole.
    sizes: PathSizes,
    outbox: Option<Outbox>,
    feed_data_path: String,
    batches_path: String,
    /// The process that made the client (and opened its outbox).
    owner: Owner,
}

impl Drop for Client {
    fn drop(&mut self) {
        if !self.owner.is_this_process() {
            // A child after fork(): closing the parent's SQLite connection could disturb the parent's locks
            // and WAL; it is left as it is (its memory and file descriptor go with the process).
            std::mem::forget(self.outbox.take());
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.config.base_url)
            .field("device_id", &self.config.device_id)
            .finish_non_exhaustive()
    }
}

fn device_path(config: &Config, tail: &str) -> String {
    format!("/iot/v1/devices/{}{tail}", config.device_id.as_deref().unwrap_or_default())
}

/// Locks a mutex whose data stays consistent under any panic (plain field writes).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether something found missing at `since` should be asked for again.
fn reprobe_due(since: &Mutex<Option<Instant>>) -> bool {
    lock(since).is_none_or(|at| at.elapsed() >= REPROBE_AFTER)
}

/// What a client knows of the service's `/desired-states` (contract section 3b).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Service {
    /// Not asked yet (or something suggests the service changed): ask.
    Unknown,
    /// It answered a list: a newer service.
    Newer,
    /// It answered that it does not offer them: the catalog's values stand in, for the client's life, while
    /// the token's granted scope and the catalog stay as they were.
    Older(desired::Fallback),
}

/// How a batch request that failed as a whole goes on (contract section 5).
enum BatchRefusal {
    /// 413, from Realer or the path: too large, or a refusal, by the body's size (`Client::batch_too_large`).
    TooLarge,
    /// The endpoint refused the request itself (400, 404, 405, 415, 422 without per-item results, another
    /// 4xxx of Realer's) or answered in a shape this client cannot read (a 2xx without Realer's body): send
    /// the items one by one.
    OneByOne,
    /// A refusal of the request that says nothing of the endpoint or the items (a token refused after
    /// renewal, 402, 403, 408, 425, 429/5xx after retries, another page of the path's own, network,
    /// timeout): the items stay unsent.
    Stop,
}

fn batch_refusal(e: &Error) -> BatchRefusal {
    if codes::is_unconfirmed_success(e) {
        return BatchRefusal::OneByOne;
    }
    if e.kind != ErrorKind::Api || e.retryable {
        return BatchRefusal::Stop;
    }
    if e.code == 4013 {
        return BatchRefusal::TooLarge;
    }
    if !e.from_realer {
        // A page of the path's own: only the statuses by which an endpoint refuses a request itself (a
        // gateway that does not route the batch path) send the items one by one, judged by their own answers.
        return match e.http_status {
            400 | 404 | 405 | 415 | 422 => BatchRefusal::OneByOne,
            _ => BatchRefusal::Stop,
        };
    }
    match e.code {
        4001 | 4002 | 4003 | 4029 => BatchRefusal::Stop,
        4000..=4999 => BatchRefusal::OneByOne,
        _ => BatchRefusal::Stop,
    }
}

/// Every item of `chunk` unsent with `e`, and `e` to stop the send.
fn stop_with(chunk: &[Prepared], e: Error, out: &mut Vec<FeedResult>) -> Result<()> {
    out.extend(chunk.iter().map(|p| FeedResult::not_sent(p.message_id.clone(), e.clone())));
    Err(e)
}

enum AttemptError {
    /// 401 with this token.
    Unauthorized(crate::auth::Token, Error),
    Failed(Error),
}

impl From<Error> for AttemptError {
    fn from(e: Error) -> AttemptError {
        AttemptError::Failed(e)
    }
}

/// Parses a JSON answer into its `code` and what the caller wants of it; `None` when it is not JSON.
type ReadAnswer<T> = fn(&Answer) -> Option<(Option<i32>, T)>;

/// Reads only an answer's top-level `code` (the body itself is read later, by its owner).
fn read_code(answer: &Answer) -> Option<(Option<i32>, ())> {
    let code = json::top_code(codes::json_bytes(answer)?)?;
    Some((code.and_then(|c| i32::try_from(c).ok()), ()))
}

impl Client {
    /// Copies the configuration and opens the outbox file when one is configured; no network I/O.
    pub fn new(config: &Config) -> Result<Client> {
        config.check_complete()?;
        let client_id = config.client_id.as_deref().unwrap_or_default();
        let basic = auth::basic_credentials(client_id, &config.client_secret);
        let basic_auth = AuthHeader::with_scheme("Basic ", &basic)?;
        // Redacted from whatever a server says, in errors and in log lines.
        let mut known = vec![config.client_secret.clone(), basic];
        known.extend(config.proxy.as_ref().map(crate::transport::proxy_secrets).unwrap_or_default());
        let secrets = Arc::new(KnownSecrets::new(known));
        let mut own = config.clone();
        own.logger = config.logger.as_ref().map(|l| auth::guarded_logger(l, secrets.clone()));
        let feed_data_path = device_path(config, "/feed-data");
        let batches_path = device_path(config, "/feed-data/batches");
        let outbox = config.outbox.as_ref().map(|o| Outbox::open(o, config)).transpose()?;
        let answered = match &config.outbox {
            Some(o) => AnsweredLog::open(&o.path, config.request_timeout)?,
            None => AnsweredLog::memory(),
        };
        let service_key =
            format!("{} {} {}", config.base_url, config.device_id.as_deref().unwrap_or_default(), client_id);
        let service = match answered.fallback(&service_key)? {
            Some(f) => Service::Older(f),
            None => Service::Unknown,
        };
        let transport = Transport::new(&own, &[auth::TOKEN_PATH, &feed_data_path, &batches_path]);
        Ok(Client {
            config: own,
            transport,
            basic_auth,
            tokens: TokenCache::new(secrets),
            answered,
            service: Mutex::new(service),
            service_key,
            last_commands: Mutex::new(None),
            batches_missing: Mutex::new(None),
            sizes: PathSizes::default(),
            outbox,
            feed_data_path,
            batches_path,
            owner: Owner::by_pid(),
        })
    }

    fn device_path(&self, tail: &str) -> String {
        device_path(&self.config, tail)
    }

    fn fetch_token(&self, deadline: Instant) -> Result<Grant> {
        let scope = self.config.scope.as_deref();
        auth::request_token(&self.transport, &self.basic_auth, scope, &self.config.logger, deadline)
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
    ) -> std::result::Result<(Answer, T), AttemptError> {
        let token = self.token(deadline)?;
        let body = body.map_or(Body::Empty, Body::Json);
        let answer = self.transport.send(method, path, &token.header, body, deadline)?;
        let parsed = read(&answer);
        let class = codes::classify(answer.status, parsed.as_ref().and_then(|(code, _)| *code));
        if class != Class::RenewToken {
            token.mark_answered();
        }
        match class {
            Class::Success => match parsed {
                Some((_, v)) => Ok((answer, v)),
                None => Err(codes::not_realers_success(&answer).into()),
            },
            Class::RenewToken => {
                Err(AttemptError::Unauthorized(token, codes::error_from_answer(&answer, ErrorKind::Auth)))
            }
            Class::Retry | Class::Fail => Err(codes::error_from_answer(&answer, ErrorKind::Api).into()),
        }
    }

    /// One protected call with the contract's handling: a new token and another attempt after a 401 (see
    /// [`Client::retrying`]), backoff retries of transient failures, all before the request deadline. The answer is a success (2xx with a
    /// JSON body whose `code`, if any, is 2xxx); its body is the caller's to read.
    fn call(&self, method: Method, path: &str, body: Option<&[u8]>) -> Result<Answer> {
        self.call_reading(method, path, body, read_code).map(|(answer, ())| answer)
    }

    /// `call`, with the answer parsed by `read`.
    fn call_reading<T>(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        read: ReadAnswer<T>,
    ) -> Result<(Answer, T)> {
        self.retrying(path, |deadline| self.attempt(method, path, body, deadline, read))
    }

    /// Runs `attempt` until it succeeds, fails for good, runs out of attempts, or would overrun the request
    /// timeout. A 401 drops the token and earns another attempt with a new one, outside the count, unless the
    /// refused token arrived during this call and had never been answered otherwise (contract section 6: a
    /// token refused on its first use means the credentials or the device's access are wrong).
    fn retrying<T>(&self, what: &str, attempt: impl Fn(Instant) -> std::result::Result<T, AttemptError>) -> Result<T> {
        let started = Instant::now();
        let deadline = started + self.config.request_timeout;
        let policy = pacing::policy_for_call(self.config.retry);
        let mut failed = 0u32;
        let mut reconnected = false;
        let cancel = self.transport.cancel_state();
        loop {
            cancel.check()?;
            // What a server said may echo a secret or carry control characters: cleaned before anyone sees it.
            let outcome = attempt(deadline).map_err(|e| match e {
                AttemptError::Unauthorized(t, err) => {
                    AttemptError::Unauthorized(t, self.tokens.secrets().clean_error(err))
                }
                AttemptError::Failed(err) => AttemptError::Failed(self.tokens.secrets().clean_error(err)),
            });
            let err = match outcome {
                Ok(ok) => return Ok(ok),
                // A kept-alive connection the server closed moments ago, or one that went silent (a stall):
                // once per call, a new connection at once, outside the count (the transport skips probing
                // connections used within a second). Not after a refusal that a new connection cannot change
                // (a proxy's 407 or 403).
                Err(AttemptError::Failed(err)) if err.kind == ErrorKind::Network && err.retryable && !reconnected => {
                    log!(self.config.logger, Level::Debug, "{what}: {err}; trying a new connection");
                    reconnected = true;
                    continue;
                }
                Err(AttemptError::Unauthorized(token, err)) => {
                    self.tokens.invalidate(token.generation);
                    if !token.was_answered() && token.arrived >= started {
                        return Err(err);
                    }
                    // An expiry (a token already used for another answer, or one kept from before this call):
                    // a new token, within the deadline.
                    log!(
                        self.config.logger,
                        Level::Info,
                        "{what}: token refused (401); getting a new one and retrying"
                    );
                    continue;
                }
                Err(AttemptError::Failed(err)) if err.kind == ErrorKind::Cancelled => return Err(err),
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
            cancel.sleep(delay)?;
        }
    }

    /// Makes every call in progress on this client return `ErrorKind::Cancelled` promptly (within
    /// milliseconds on a blocked read or write; a TCP connect in progress runs out its connect timeout), and
    /// every call started afterwards at once, until [`Client::resume`]. Callable from any thread; nothing is
    /// lost: a cancelled post is `NotSent` with its `message_id`, a cancelled flush leaves every unconfirmed
    /// item pending. Not async-signal-safe (it takes locks and allocates): from a signal, use a thread that
    /// waits for it (sigwait) or a self-pipe.
    pub fn cancel(&self) {
        self.transport.cancel();
    }

    /// What the token endpoint said about the current access token (scopes, lifetimes; never the token),
    /// `None` before the first token (call [`Client::authenticate`]).
    pub fn token_info(&self) -> Option<crate::auth::TokenInfo> {
        self.tokens.info()
    }

    /// Lets calls run again after [`Client::cancel`].
    pub fn resume(&self) {
        self.transport.resume();
    }

    /// Gets a token now, unless a valid one is cached. Optional: every call fetches one when needed.
    pub fn authenticate(&self) -> Result<()> {
        self.retrying(auth::TOKEN_PATH, |deadline| self.token(deadline).map(drop).map_err(AttemptError::Failed))
    }

    fn warn_sink(&self) -> impl FnMut(Level, String) + '_ {
        move |level, m| log!(self.config.logger, level, "{m}")
    }

    /// Reads the device's commands (or, with `id`, one command) into `sink`, borrowed from the answer.
    pub(crate) fn fetch_commands_with(&self, id: Option<&str>, sink: &mut dyn CommandSink) -> Result<()> {
        let answer = self.fetch_catalog("command", "/commands", id)?;
        sink.reserve(catalog::count(&answer.body, "commands", "command"), answer.body.len());
        let mut seen = 0usize;
        catalog::parse_commands(
            &answer.body,
            &mut |mut c| {
                seen += 1;
                self.clean_item_error(&mut c.error);
                sink.push(c)
            },
            &mut self.warn_sink(),
        )?;
        drop(answer);
        sink.finish();
        Self::one_expected(id, seen, "command")
    }

    /// As [`Client::fetch_commands_with`], for sensors.
    pub(crate) fn fetch_sensors_with(&self, id: Option<&str>, sink: &mut dyn SensorSink) -> Result<()> {
        let answer = self.fetch_catalog("sensor", "/sensors", id)?;
        sink.reserve(catalog::count(&answer.body, "sensors", "sensor"), answer.body.len());
        let mut seen = 0usize;
        catalog::parse_sensors(
            &answer.body,
            &mut |mut s| {
                seen += 1;
                self.clean_item_error(&mut s.error);
                sink.push(s)
            },
            &mut self.warn_sink(),
        )?;
        drop(answer);
        sink.finish();
        Self::one_expected(id, seen, "sensor")
    }

    fn fetch_catalog(&self, what: &str, tail: &str, id: Option<&str>) -> Result<Answer> {
        let path = match id {
            None => self.device_path(tail),
            Some(id) => {
                check_id(&format!("{what} id"), id).map_err(Error::invalid)?;
                self.device_path(&format!("{tail}/{id}"))
            }
        };
        self.call(Method::Get, &path, None)
    }

    /// An item's error is what the server said about it: cleaned as any error is (secrets redacted, control
    /// characters dropped).
    fn clean_item_error(&self, error: &mut Option<ItemErrorRef<'_>>) {
        if let Some(e) = error {
            e.error_type = self.tokens.secrets().clean(&e.error_type).into();
            e.message = self.tokens.secrets().clean(&e.message).into();
        }
    }

    fn one_expected(id: Option<&str>, seen: usize, what: &str) -> Result<()> {
        match id {
            Some(id) if seen == 0 => Err(Error::protocol(format!("the answer for {what} {id} holds no item"))),
            _ => Ok(()),
        }
    }

    /// The device's commands, as a compact list (an item costs about its JSON text; `to_vec` for owned
    /// items).
    pub fn fetch_commands(&self) -> Result<Commands> {
        self.fetch_command_list(None)
    }

    /// The device's commands (or, with `id`, one), as a compact list. A whole list read is kept (shared, not
    /// copied) for the next [`Client::fetch_desired_states`], unless the service is known to offer desired
    /// states.
    pub(crate) fn fetch_command_list(&self, id: Option<&str>) -> Result<Commands> {
        let mut out = Commands::default();
        self.fetch_commands_with(id, &mut out)?;
        if id.is_none() && *lock(&self.service) != Service::Newer {
            *lock(&self.last_commands) = Some((Instant::now(), out.clone()));
        }
        Ok(out)
    }

    /// The device's sensors; as [`Client::fetch_commands`].
    pub fn fetch_sensors(&self) -> Result<Sensors> {
        let mut out = Sensors::default();
        self.fetch_sensors_with(None, &mut out)?;
        Ok(out)
    }

    pub fn fetch_command(&self, id: &str) -> Result<Command> {
        let out = self.fetch_command_list(Some(id))?;
        out.get(0)
            .map(|c| c.to_owned())
            .ok_or_else(|| Error::protocol(format!("the answer for command {id} holds no item")))
    }

    pub fn fetch_sensor(&self, id: &str) -> Result<Sensor> {
        let mut out = Sensors::default();
        self.fetch_sensors_with(Some(id), &mut out)?;
        out.get(0)
            .map(|s| s.to_owned())
            .ok_or_else(|| Error::protocol(format!("the answer for sensor {id} holds no item")))
    }

    /// What Realer wants the device's actuators at (contract section 7.2), whichever kind of service answers:
    /// the pending desired states of `/desired-states`, decided (apply, or answer stale) against what this
    /// device already answered; or, where that endpoint answers 400, 403, 404 or 405, the catalog's values that
    /// are new (first seen, or changed since the last value seen: a value already acted on is never handed
    /// over again, so a local change is not undone). Which kind of service it is, is remembered for the
    /// client's life (and in the outbox file), and asked again when the token's granted scope or the catalog's
    /// commands change. On an older service, a command list read by [`Client::fetch_commands`] within the
    /// request timeout before stands in for the catalog read (once). States already answered, or queued in the
    /// outbox to be, are left out. Answer each with [`crate::DesiredState::answer`] and a post or an outbox push.
    pub fn fetch_desired_states(&self) -> Result<DesiredStates> {
        // The granted scope says whether a finding still holds: a token first (every call needs one anyway).
        self.authenticate()?;
        let scope = self.tokens.info().and_then(|i| i.scope);
        let mut probed = false;
        // A catalog read before a re-probe that found the same kind of service again is used, not read again.
        let mut read = None;
        loop {
            let known = lock(&self.service).clone();
            let fallback = match known {
                Service::Older(f) if f.scope == scope || probed => f,
                Service::Older(f) => {
                    log!(
                        self.config.logger,
                        Level::Info,
                        "desired states: the token's scope is now {:?} (was {:?}); asking /desired-states again",
                        scope.as_deref().unwrap_or_default(),
                        f.scope.as_deref().unwrap_or_default()
                    );
                    self.forget_fallback();
                    continue;
                }
                Service::Unknown | Service::Newer => {
                    probed = true;
                    match self.probe_desired_states(scope.as_deref())? {
                        Some(states) => return Ok(states),
                        None => continue,
                    }
                }
            };
            let mut states = match read.take() {
                Some(states) => states,
                None => self.catalog_values()?,
            };
            let fingerprint = desired::catalog_fingerprint(&states);
            match fallback.catalog {
                Some(before) if before != fingerprint && !probed => {
                    log!(
                        self.config.logger,
                        Level::Info,
                        "desired states: the catalog's commands changed; asking /desired-states again"
                    );
                    self.forget_fallback();
                    read = Some(states);
                    continue;
                }
                Some(_) => {}
                None => self.keep_fallback(desired::Fallback { catalog: Some(fingerprint), ..fallback }),
            }
            self.answered.keep_new_catalog_values(&mut states)?;
            states.shrink();
            return Ok(DesiredStates { source: DesiredSource::Catalog, states });
        }
    }

    /// Asks `/desired-states`: `Some` with the decided states of a newer service; `None` when the service does
    /// not offer them (the finding is kept: the caller reads the catalog).
    fn probe_desired_states(&self, scope: Option<&str>) -> Result<Option<DesiredStates>> {
        let path = self.device_path("/desired-states");
        match self.call(Method::Get, &path, None) {
            Ok(answer) => {
                let now = time::now_unix_ms();
                let mut states = desired::parse_desired_states(&answer.body, now, &mut self.warn_sink())?;
                drop(answer);
                desired::decide(&mut states, &self.answered, now)?;
                states.shrink();
                if *lock(&self.service) != Service::Newer {
                    self.forget_fallback();
                    *lock(&self.service) = Service::Newer;
                }
                *lock(&self.last_commands) = None;
                Ok(Some(DesiredStates { source: DesiredSource::DesiredStates, states }))
            }
            // Contract section 3b: not offered here (an older service, or a token without the scope; 400 and
            // 405 from a service that has no such route), whatever the label.
            Err(e) if e.kind == ErrorKind::Api && matches!(e.http_status, 400 | 403 | 404 | 405) => {
                let fallback =
                    desired::Fallback { http_status: e.http_status, scope: scope.map(str::to_string), catalog: None };
                if fallback.scope_lacks_desired_states() {
                    log!(
                        self.config.logger,
                        Level::Warn,
                        "desired states: {e}; the token's scope ({}) lacks {}: a newer Realer service then delivers \
                         no desired state, and the catalog's values (there: confirmed values, not wishes) stand in. \
                         Fix: leave the scope unset (REALER_SCOPE, realer_config_set_scope) for Realer's default \
                         scopes, or add {} to it",
                        scope.unwrap_or_default(),
                        desired::DESIRED_STATE_SCOPE,
                        desired::DESIRED_STATE_SCOPE
                    );
                } else {
                    log!(
                        self.config.logger,
                        Level::Info,
                        "desired states: {e}; an older service: using the catalog's command values"
                    );
                }
                self.keep_fallback(fallback);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The catalog's values as desired states: from the command list read just before, else read now.
    fn catalog_values(&self) -> Result<desired::StateList> {
        let recent = lock(&self.last_commands)
            .take()
            .filter(|(at, _)| at.elapsed() <= self.config.request_timeout)
            .map(|(_, commands)| commands);
        let mut states = desired::FromCatalog::default();
        match recent {
            Some(commands) => {
                states.reserve(commands.len(), 0);
                commands.iter().for_each(|c| states.push(c));
                drop(commands);
                states.finish();
            }
            None => self.fetch_commands_with(None, &mut states)?,
        }
        Ok(states.0)
    }

    /// Keeps a finding, in memory and in the outbox file (a failure to write it costs a probe next time).
    fn keep_fallback(&self, fallback: desired::Fallback) {
        if let Err(e) = self.answered.set_fallback(&self.service_key, Some(&fallback)) {
            log!(self.config.logger, Level::Warn, "desired states: the service's kind not remembered: {e}");
        }
        *lock(&self.service) = Service::Older(fallback);
    }

    fn forget_fallback(&self) {
        if let Err(e) = self.answered.set_fallback(&self.service_key, None) {
            log!(self.config.logger, Level::Warn, "desired states: an old finding not forgotten: {e}");
        }
        *lock(&self.service) = Service::Unknown;
    }

    /// Why the catalog's values stand in for desired states, when they do: what `/desired-states` answered
    /// (400, 403, 404 or 405) and whether the token's granted scope lacks `iot:desired-state:read` (then, on
    /// a newer service, desired states are never delivered: leave the scope unset, or add it). `None` before
    /// the first [`Client::fetch_desired_states`], or on a service that offers desired states.
    pub fn desired_states_fallback(&self) -> Option<DesiredStatesFallback> {
        match &*lock(&self.service) {
            Service::Older(f) => Some(DesiredStatesFallback {
                http_status: f.http_status,
                scope_lacks_desired_state_read: f.scope_lacks_desired_states(),
            }),
            _ => None,
        }
    }

    /// Remembers that a desired state was answered (accepted by Realer, or queued in the outbox), so it is
    /// never offered again and no older sequence is applied after it.
    fn remember_answer(&self, p: &Prepared) {
        let (Some(command_id), Some(desired_id)) = (&p.command_id, &p.desired_id) else { return };
        if let Err(e) = self.answered.record(command_id, Some(desired_id), p.sequence_number) {
            log!(self.config.logger, Level::Warn, "desired state {desired_id} answered, but not remembered: {e}");
        }
    }

    /// Posts one item. The result always carries the `message_id` used, so a failed post can be retried with it.
    pub fn post_feed_data(&self, item: &FeedItem) -> FeedResult {
        self.post_item(item.borrowed())
    }

    /// [`Client::post_feed_data`] for an item whose strings are borrowed (the C ABI's).
    /// [`Client::post_item`] for an item as a caller handed it over, perhaps unreadable (the C boundary reads
    /// it first): an unreadable item is not sent, as an invalid one.
    pub(crate) fn post_item_read(&self, item: Result<ItemRef<'_>>) -> FeedResult {
        match item {
            Ok(item) => self.post_item(item),
            Err(e) => FeedResult::not_sent(String::new(), e),
        }
    }

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

    fn outbox(&self) -> Result<&Outbox> {
        if !self.owner.is_this_process() {
            // SQLite: a database connection must not be used across fork() (its locks belong to the parent).
            return Err(Error::config(
                "this client's outbox was opened by the parent process: after fork(), make a new client in the child",
            ));
        }
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
        let dropped = self.outbox()?.push(&prepared)?;
        prepared.iter().for_each(|p| self.remember_answer(p));
        if dropped > 0 {
            log!(self.config.logger, Level::Warn, "outbox full: dropped the {dropped} oldest unsent items");
        }
        Ok(prepared.into_iter().map(|p| p.message_id).collect())
    }

    /// Sends pending items, oldest first, in batches of up to 100, until none is left or `max_items` (0 = all)
    /// were tried. After a long outage flushes are paced (see `pacing`): one called too early sends nothing
    /// and returns a retryable network error that says how long to wait. Accepted items leave the outbox; items Realer judged and refused one by one, in its own
    /// JSON, become dead letters; the rest stay for the next flush. Stops at the first request that fails as a whole (transiently, or refused
    /// as a request: its items were never judged), returning its error.
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
        let flush = outbox.begin_flush();
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

    pub fn outbox_stats(&self) -> Result<OutboxStats> {
        self.outbox()?.stats()
    }

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
        if e.kind == ErrorKind::Api && e.code == 4013 {
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
    fn send_batch(&self, chunk: &[Prepared], out: &mut Vec<FeedResult>) -> Result<()> {
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
                if e.from_realer && e.code != 4013 {
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
