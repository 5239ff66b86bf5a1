//! `realer_client`: one device's connection to the API, shareable between threads.

use crate::client::Client;
use crate::ffi::config::realer_config;
use crate::ffi::error::realer_status;
use crate::ffi::{free_box, guard, make_into, with_client};

/// A client for one device. Thread-safe: any number of threads may call it at once (it serialises token
/// requests itself). Freed by `realer_client_free`, which must not race with calls on it.
///
/// After fork(), the child may use a client it inherited, provided no other thread was inside a librealer
/// call at the moment of the fork: its first request drops the inherited connections without writing to
/// them (the parent's connections keep working) and opens its own. The inherited outbox file is not usable in
/// the child (an SQLite connection does not survive fork): outbox calls there, and `realer_desired_states_fetch`
/// (whose memory of what was answered is in that file), fail with `REALER_ERR_CONFIG`, and
/// `realer_client_free` in the child leaves that SQLite connection alone. Make a new client in the child for
/// an outbox: it shares the file with the parent.
pub struct realer_client {
    pub(crate) inner: Client,
}

/// Makes a client from a copy of `config` (which stays the caller's). No network I/O; the outbox file, when
/// one is configured, is opened (and made) here. On success `*out` holds the client; free it with
/// `realer_client_free`.
/// `REALER_ERR_CONFIG`: the device id or the credentials are missing, or the outbox file cannot be opened.
/// `REALER_ERR_STORAGE`: the outbox file is not a usable database. `REALER_ERR_INVALID_ARGUMENT`: NULL.
///
/// # Safety
/// `config` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn realer_client_new(
    config: *const realer_config,
    out: *mut *mut realer_client,
) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { make_into(config, "config", out, |c| Ok(realer_client { inner: Client::new(&c.inner)? })) }
}

/// Frees a client and its connections, wiping the memory that held the client secret, tokens and the
/// plaintext of its connections. NULL is accepted. No other thread may be using it.
///
/// # Safety
/// `client` is NULL or from `realer_client_new`, and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn realer_client_free(client: *mut realer_client) {
    // SAFETY: the caller hands back a pointer from realer_client_new, once.
    guard((), || unsafe { free_box(client) })
}

/// Gets an access token now unless a valid one is cached. Optional: every call gets one when it needs it.
/// `REALER_ERR_AUTH`: the credentials were refused (in OAuth's or Realer's JSON). `REALER_ERR_NETWORK`, not
/// retryable, with its HTTP status: a page of the path's own on the token endpoint (a firewall's, a gateway's)
/// refused the request, not the credentials. Network, timeout and TLS statuses as for any call.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_client_authenticate(client: *const realer_client) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe { with_client(client, Client::authenticate) }
}

/// Cancels every call in progress on `client` and refuses new ones, so that a firmware shutdown never waits
/// on the network: each returns `REALER_ERR_CANCELLED` promptly (a blocked read or write at once; a TCP
/// connect in progress, rare, within its connect timeout), and every call started afterwards returns it at
/// once, until `realer_client_resume`. Nothing is lost: a cancelled `realer_feed_post` is
/// `REALER_FEED_OUTCOME_NOT_SENT` with its `message_id` (an item that may have reached Realer is sent again
/// later under the same `message_id`: Realer answers it idempotent), a cancelled flush leaves every
/// unconfirmed item pending. Callable from any thread, several at once; not from inside a signal handler
/// (it takes locks and allocates): let a thread wait for the signal (`sigwait`) or a self-pipe, then call it.
/// `REALER_ERR_INVALID_ARGUMENT`: NULL `client`.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_client_cancel(client: *const realer_client) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_client(client, |c| {
            c.cancel();
            Ok(())
        })
    }
}

/// Lets calls on `client` run again after `realer_client_cancel`. `REALER_ERR_INVALID_ARGUMENT`: NULL `client`.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn realer_client_resume(client: *const realer_client) -> realer_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_client(client, |c| {
            c.resume();
            Ok(())
        })
    }
}
