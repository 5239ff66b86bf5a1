//! `realer_config`: settings collected before a client is made. Each setter checks its value at once.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
use crate::ffi::error::realer_status;
use crate::ffi::{bytes_arg, free_box, guard, into_raw, str_arg, with_config};
use crate::log::{Level, Logger};

/// Settings for a client. Made by `realer_config_new`, freed by `realer_config_free`. Not thread-safe:
/// configure it on one thread, then make clients from it (they copy it).
pub struct realer_config {
    pub(crate) inner: Config,
}

/// Log severities: a logger receives lines at or below its max level.
pub type realer_log_level = i32;
/// Failures a call reports anyway (the status says them too).
pub const REALER_LOG_ERROR: realer_log_level = 1;
/// Retries, skipped catalog items, dropped outbox items: the library coped, something is wrong.
pub const REALER_LOG_WARN: realer_log_level = 2;
/// Token issue and renewal, fallbacks (no /desired-states, no batch endpoint).
pub const REALER_LOG_INFO: realer_log_level = 3;
/// One line per HTTP exchange: method, path, status, time taken.
pub const REALER_LOG_DEBUG: realer_log_level = 4;

/// A log callback. `message` is valid only during the call. It may be called from any thread that uses the
/// client, never while the library holds a lock; it must not call back into the same client.
pub type realer_log_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: realer_log_level, message: *const c_char)>;

/// A new configuration with the defaults: base URL https://api.therealer.com, the bundled Mozilla root
/// certificates, no scope sent, timeouts 10 s (connect) and 30 s (request), 5 attempts with backoff from
/// 500 ms up to 30 s, no proxy, kept-alive connections reused for 15 s with a 5 s stall time. Device id and
/// credentials must be set. Free it with `realer_config_free`.
/// Returns NULL only if a panic was caught.
#[no_mangle]
pub extern "C" fn realer_config_new() -> *mut realer_config {
    guard(std::ptr::null_mut(), || into_raw(realer_config { inner: Config::new() }))
}

/// Frees a configuration. NULL is accepted. Clients made from it are unaffected.
///
/// # Safety
/// `config` is NULL or from `realer_config_new`, and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn realer_config_free(config: *mut realer_config) {
    // SAFETY: the caller hands back a pointer from realer_config_new, once.
    guard((), || unsafe { free_box(config) })
}

/// Sets the API origin, `https://host[:port][/prefix]` (a trailing slash is ignored).
/// `REALER_ERR_CONFIG`: not https (plain http is accepted only for 127.0.0.1 or ::1, and only after
/// `realer_config_allow_insecure_loopback`), a port that is not 1 to 65535, user info (`user:password@`, refused
/// without repeating the URL in the message), or malformed. `REALER_ERR_INVALID_ARGUMENT`: NULL or not UTF-8.
///
/// # Safety
/// `config` is NULL or live; `base_url` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_base_url(
    config: *mut realer_config,
    base_url: *const c_char,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { with_config(config, |c| c.set_base_url(str_arg(base_url, "base_url")?)) }
}

/// Allows (`allow` non-zero) plain `http://` base URLs to 127.0.0.1 or ::1, for a local test server only.
/// Call it before `realer_config_set_base_url`. Device traffic to any other host is always HTTPS.
///
/// # Safety
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_config_allow_insecure_loopback(
    config: *mut realer_config,
    allow: i32,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_config(config, |c| {
            c.allow_insecure_loopback(allow != 0);
            Ok(())
        })
    }
}

/// Sets the device id (Realer's `device_id`, such as "12345"): 1 to 128 letters, digits, '-', '_', '.', '~',
/// and not "." or ".." (they would change the URL path). `REALER_ERR_CONFIG` otherwise.
///
/// # Safety
/// `config` is NULL or live; `device_id` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_device_id(
    config: *mut realer_config,
    device_id: *const c_char,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { with_config(config, |c| c.set_device_id(str_arg(device_id, "device_id")?)) }
}

/// Sets the OAuth client credentials (sent with HTTP Basic authentication to /oauth/token). The secret is
/// copied and never logged or shown in an error.
///
/// # Safety
/// `config` is NULL or live; the strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_credentials(
    config: *mut realer_config,
    client_id: *const c_char,
    client_secret: *const c_char,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_config(config, |c| {
            c.set_credentials(str_arg(client_id, "client_id")?, str_arg(client_secret, "client_secret")?)
        })
    }
}

/// Sets the OAuth scope to request, space separated ("iot:catalog:read iot:feed-data:write"). The default,
/// and an empty string, send no scope: Realer then grants both.
///
/// # Safety
/// `config` is NULL or live; `scope` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_scope(config: *mut realer_config, scope: *const c_char) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { with_config(config, |c| c.set_scope(str_arg(scope, "scope")?)) }
}

/// Trusts only the CA certificates in this PEM file (instead of the bundled Mozilla roots). The file is read
/// now; it must be a regular file (or a link to one) of at most 4 MiB: a FIFO, a device or a directory is
/// refused without being read, so the call never blocks. `REALER_ERR_CONFIG`: not a regular file, too large,
/// unreadable, no CERTIFICATE section, or a certificate that does not parse.
///
/// # Safety
/// `config` is NULL or live; `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_ca_file(config: *mut realer_config, path: *const c_char) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { with_config(config, |c| c.set_ca_file(str_arg(path, "path")?)) }
}

/// Trusts only the CA certificates in `len` bytes of PEM text at `pem` (copied). Errors as
/// `realer_config_set_ca_file`.
///
/// # Safety
/// `config` is NULL or live; `pem` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_ca_pem(
    config: *mut realer_config,
    pem: *const u8,
    len: usize,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { with_config(config, |c| c.set_ca_pem(bytes_arg(pem, len, "pem")?)) }
}

/// Sets the connect timeout (TCP and TLS setup) and the request timeout, in milliseconds, each 1 to 3,600,000. The
/// request timeout bounds each request of a call, within about 20 ms: its token request, retries and backoff included
/// (a call that makes several requests, such as a batch of more than 100 items, an outbox flush or a desired-state
/// fetch, gives each its own; see each call). There is no shorter timeout per read: a server may use what is left of
/// the call to answer (less at most 100 ms: socket timeouts are rounded down to 100 ms steps), except that on a reused
/// connection the answer must begin within the stall time (`realer_config_set_keepalive`), or the request is sent again
/// on a new connection, where it may take what is left.
///
/// # Safety
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_timeouts(
    config: *mut realer_config,
    connect_ms: u32,
    request_ms: u32,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_config(config, |c| {
            c.set_timeouts(Duration::from_millis(u64::from(connect_ms)), Duration::from_millis(u64::from(request_ms)))
        })
    }
}

/// Sets the retry policy for transient failures (network, timeout, 429, 5xx): at most `max_attempts`
/// attempts (1 to 100, the first included), waiting a random time up to `base_delay_ms` doubled per failure
/// and capped at `max_delay_ms` (full jitter), and at least the server's Retry-After (seconds, or an HTTP
/// date read against the device clock; at most a day). A Retry-After longer than `max_delay_ms` ends the call
/// with a retryable error carrying `retry_after_ms`.
///
/// # Safety
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_retry(
    config: *mut realer_config,
    max_attempts: u32,
    base_delay_ms: u32,
    max_delay_ms: u32,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_config(config, |c| {
            c.set_retry(
                max_attempts,
                Duration::from_millis(u64::from(base_delay_ms)),
                Duration::from_millis(u64::from(max_delay_ms)),
            )
        })
    }
}

/// Sends every connection through the HTTP proxy at `proxy_url`, `http://host:port` or, for a proxy that
/// wants a password, `http://user:password@host:port` (percent-encode a ':' or '@' in them): TCP to the proxy,
/// `CONNECT` to Realer's host and port, then TLS with Realer inside the tunnel, so the proxy sees the host
/// name, never what is said. The proxy's host name is looked up on the device; Realer's only by the proxy.
/// An empty string removes the proxy (the default: straight to Realer). Proxies are never taken from the
/// environment (`https_proxy` and the like) unless `realer_config_from_env` reads `REALER_PROXY`. The user
/// name and password are never shown: messages, log lines and `Debug` name the proxy as `http://host:port`.
/// A proxy that refuses the tunnel (407: credentials wanted or refused; 403: not allowed; 502/503/504: it
/// could not reach Realer) fails the call with `REALER_ERR_NETWORK` naming the proxy (407 and 403 are not
/// retryable; HTTP status 0: Realer never answered). `REALER_ERR_CONFIG`: not `http://`, no port, a path, or a
/// malformed host or user info (the message never repeats the user info). `REALER_ERR_INVALID_ARGUMENT`: NULL
/// or not UTF-8.
///
/// # Safety
/// `config` is NULL or live; `proxy_url` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_proxy(
    config: *mut realer_config,
    proxy_url: *const c_char,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { with_config(config, |c| c.set_proxy(str_arg(proxy_url, "proxy_url")?)) }
}

/// Sets how kept-alive connections are used, in milliseconds (each 0 to 3,600,000).
/// `stall_ms` (default 5,000): a request on a reused connection that gets no byte of answer for this long
/// (more for a large request: plus the time its bytes take at 20 kbit/s) is taken for a connection the path
/// forgot (a NAT or firewall that swallows its packets) and sent again at once on a new connection, with the
/// same `message_id`, inside the call's request timeout; 0: never (wait out the request timeout). The
/// default is not tripped by a slow cellular link (600 ms round trip, 20 kbit/s, a radio waking up).
/// `idle_ms` (default 15,000): a connection unused this long is closed rather than reused; 0: a new
/// connection for every request. Below the keep-alive timeouts of common servers (60 s and more) and the idle
/// timeouts of most NATs, so a kept connection has rarely been closed or forgotten. No TCP keep-alive probes
/// are sent: an idle device's link stays silent. `REALER_ERR_CONFIG`: a value over 3,600,000.
///
/// # Safety
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_keepalive(
    config: *mut realer_config,
    stall_ms: u32,
    idle_ms: u32,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_config(config, |c| {
            c.set_keepalive(Duration::from_millis(u64::from(stall_ms)), Duration::from_millis(u64::from(idle_ms)))
        })
    }
}

/// Sets the User-Agent header (1 to 256 printable ASCII characters). Default "librealer/VERSION".
///
/// # Safety
/// `config` is NULL or live; `user_agent` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_user_agent(
    config: *mut realer_config,
    user_agent: *const c_char,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { with_config(config, |c| c.set_user_agent(str_arg(user_agent, "user_agent")?)) }
}

/// A C callback with its user data; C promises the pair may be used from any thread.
struct CLogger {
    callback: unsafe extern "C" fn(*mut c_void, realer_log_level, *const c_char),
    user_data: *mut c_void,
}
// SAFETY: the documented contract of realer_config_set_logger: the callback and user_data are thread-safe.
unsafe impl Send for CLogger {}
// SAFETY: as above.
unsafe impl Sync for CLogger {}

impl CLogger {
    fn call(&self, level: Level, message: &str) {
        let text = crate::ffi::c_string(message);
        // SAFETY: the caller of realer_config_set_logger promised a valid callback; `text` outlives the call.
        unsafe { (self.callback)(self.user_data, level as realer_log_level, text.as_ptr()) }
    }
}

/// Installs a log callback receiving lines at or below `max_level` (`REALER_LOG_ERROR` to
/// `REALER_LOG_DEBUG`). A NULL callback removes the logger. `user_data` is passed back untouched; the
/// callback and `user_data` must be usable from any thread that uses the client, for as long as any client
/// made from this config lives. Log lines never contain the client secret or a token.
///
/// # Safety
/// `config` is NULL or live; `callback` is NULL or a valid function.
#[no_mangle]
pub unsafe extern "C" fn realer_config_set_logger(
    config: *mut realer_config,
    callback: realer_log_callback,
    user_data: *mut c_void,
    max_level: realer_log_level,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_config(config, |c| {
            let Some(callback) = callback else {
                c.set_logger(None);
                return Ok(());
            };
            let level = Level::from_i32(max_level).ok_or_else(|| {
                Error::invalid(format!("max_level {max_level} is not REALER_LOG_ERROR..REALER_LOG_DEBUG"))
            })?;
            let sink = CLogger { callback, user_data };
            c.set_logger(Some(Logger::new(level, move |level, message| sink.call(level, message))));
            Ok(())
        })
    }
}

/// Applies the environment variables that are set: REALER_BASE_URL, REALER_DEVICE_ID, REALER_CLIENT_ID with
/// REALER_CLIENT_SECRET (together), REALER_CA_FILE, REALER_SCOPE, REALER_PROXY (as
/// `realer_config_set_proxy`; no other proxy variable is read). Each is checked as its setter checks it;
/// the first refused one fails the call with `REALER_ERR_CONFIG`, naming the variable.
///
/// # Safety
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_config_from_env(config: *mut realer_config) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { with_config(config, Config::from_env) }
}

/// Applies the settings of a configuration file: `KEY=value` lines with the names of the variables
/// `realer_config_from_env` reads (blank lines and `#` comments skipped; the value is everything after the
/// first `=`, as it is), so that the secret need not sit in the environment. Each value is checked as its
/// setter checks it. `REALER_ERR_CONFIG`, naming the file and the line (never a value): an unknown key, a
/// key set twice, a line without `=`, a refused value, a file that is not a regular file or is larger than
/// 64 KiB, or a file holding `REALER_CLIENT_SECRET` (or a `REALER_PROXY` with credentials) that its group or
/// others may read (chmod 600 it).
/// `REALER_ERR_INVALID_ARGUMENT`: NULL or non-UTF-8 `path`.
///
/// # Safety
/// `config` is NULL or live; `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn realer_config_from_file(config: *mut realer_config, path: *const c_char) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_config(config, |c| {
            let path = str_arg(path, "path")?;
            c.apply_file(path)
        })
    }
}
