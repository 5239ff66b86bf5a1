//! The client: one per device, shareable between threads. Every call runs inside one deadline (the request
//! timeout) that covers its token fetch, its retries and their backoff. This file holds the client, its
//! making and the retry loop every call goes through; each job of the device loop has its own room beside it:
//! the catalog (`catalog`), desired states (`desired`), posting feed data (`feed`) and the outbox (`outbox`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::auth::{self, Grant, KnownSecrets, TokenCache};
use crate::catalog::Commands;
use crate::codes::{self, Class};
use crate::config::Config;
use crate::desired::DesiredMemory;
use crate::error::{Error, ErrorKind, Result};
use crate::feed::PathSizes;
use crate::json;
use crate::log::{log, Level};
use crate::outbox::Outbox;
use crate::pacing;
use crate::random::random_u64;
use crate::retry::backoff;
use crate::transport::{basic_credentials, Answer, AuthHeader, Body, Method, Transport};

mod catalog;
mod desired;
mod feed;
mod outbox;

pub use desired::DesiredStatesFallback;
use desired::Service;
pub use feed::BatchReport;

/// A client for one device, shareable between threads (see the module's comment). Made from a [`Config`] by
/// [`Client::new`].
pub struct Client {
    config: Config,
    transport: Transport,
    basic_auth: AuthHeader,
    tokens: TokenCache,
    /// What this device answered of Realer's desired states and the catalog values it acted on (in the outbox
    /// file when there is one: the outbox module owns it).
    memory: DesiredMemory,
    /// Which kind of service answers for `/desired-states`, as far as this client knows.
    service: Mutex<Service>,
    /// The key of this client's service in the outbox file's memory (base URL, device, client id).
    service_key: String,
    /// The last full command list read, and when: the next desired-state fetch of an older service uses it
    /// instead of reading the catalog a second time in the same pass.
    last_commands: Mutex<Option<(Instant, Commands)>>,
    /// The catalog values the last desired-state fetch handed over, not yet acted on (see
    /// `desired::keep_new_catalog_values`).
    catalog_handed: Mutex<Vec<crate::desired::CatalogValue>>,
    /// When `/feed-data/batches` refused a request as a whole or answered in a shape this client cannot
    /// read: batches go one item at a time through `/feed-data` until `REPROBE_AFTER` has passed.
    batches_missing: Mutex<Option<Instant>>,
    /// The largest body the path to Realer carried and the smallest it refused with 413: what a 413 means,
    /// and how large a batch is sent whole.
    sizes: PathSizes,
    outbox: Option<Outbox>,
    feed_data_path: String,
    batches_path: String,
}

impl Drop for Client {
    fn drop(&mut self) {
        // A client freed is a pass ended: the catalog values it handed over were acted on (a process killed
        // before acting on them gets them again). Not in a child after fork(): the file is the parent's.
        if self.memory.check_process().is_ok() {
            let _ = self.catalog_values_acted_on(None);
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
        let basic = basic_credentials(client_id, &config.client_secret);
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
        let memory = outbox.as_ref().map_or_else(DesiredMemory::in_memory, Outbox::desired_memory);
        let service_key =
            format!("{} {} {}", config.base_url, config.device_id.as_deref().unwrap_or_default(), client_id);
        let service = match memory.fallback(&service_key)? {
            Some(f) => Service::Older(f),
            None => Service::Unknown,
        };
        let transport = Transport::new(&own, &[auth::TOKEN_PATH, &feed_data_path, &batches_path]);
        Ok(Client {
            config: own,
            transport,
            basic_auth,
            tokens: TokenCache::new(secrets),
            memory,
            service: Mutex::new(service),
            service_key,
            last_commands: Mutex::new(None),
            catalog_handed: Mutex::new(Vec::new()),
            batches_missing: Mutex::new(None),
            sizes: PathSizes::default(),
            outbox,
            feed_data_path,
            batches_path,
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
    /// [`Client::retrying`]), backoff retries of transient failures, all before the request deadline. The answer is a
    /// success (2xx with a JSON body whose `code`, if any, is 2xxx); its body is the caller's to read.
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
}
