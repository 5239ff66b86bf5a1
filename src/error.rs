//! The one error type of the core: a kind that maps to a C status, plus what Realer said about it.
//! Messages never carry a secret: the client secret and tokens are not formatted anywhere in this crate.

use std::fmt;
use std::time::Duration;

/// What went wrong, coarse enough for firmware to branch on. Each kind is one `REALER_ERR_*` status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An argument or item broke the contract before anything was sent.
    InvalidArgument,
    /// A configuration value was refused, or the configuration is incomplete.
    Config,
    /// TLS failed (handshake, untrusted certificate, bad CA material).
    Tls,
    /// The server's certificate is expired or not yet valid: on a device, usually a wrong clock.
    TlsCertTime,
    /// Connecting, sending or receiving failed below HTTP.
    Network,
    /// The configured time ran out.
    Timeout,
    /// The token endpoint refused the credentials, or a fresh token was refused too.
    Auth,
    /// The server answered an application error (see `http_status`, `code`, `error_type`).
    Api,
    /// The server's answer could not be understood.
    Protocol,
    /// A caller-provided buffer is too small.
    BufferTooSmall,
    /// A bug: a panic caught at the C boundary.
    Internal,
    /// The outbox is at its configured limit and its policy is to refuse new items.
    OutboxFull,
    /// The outbox file could not be read or written (disk full, permissions, corruption).
    Storage,
}

/// A failure, with everything Realer said about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// HTTP status of the answer, 0 when none arrived.
    pub http_status: u16,
    /// Realer's numeric `code` (or one derived from the HTTP status when the answer had none), 0 when none.
    pub code: i32,
    /// `error.type` (or the OAuth `error`), empty when absent.
    pub error_type: String,
    /// The server's `request_id`, empty when absent.
    pub request_id: String,
    /// `error.details` as JSON, when the server sent them.
    pub details: Option<serde_json::Value>,
    /// Whether the same call may succeed later unchanged (with the same `message_id`).
    pub retryable: bool,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            http_status: 0,
            code: 0,
            error_type: String::new(),
            request_id: String::new(),
            details: None,
            retryable: matches!(kind, ErrorKind::Network | ErrorKind::Timeout),
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub fn config(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Config, message)
    }

    pub fn protocol(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Protocol, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }

    /// `details` serialised as JSON, empty when absent.
    pub fn details_json(&self) -> String {
        self.details.as_ref().map(|d| d.to_string()).unwrap_or_default()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.http_status != 0 {
            write!(f, " (HTTP {}", self.http_status)?;
            if self.code != 0 {
                write!(f, ", code {}", self.code)?;
            }
            if !self.error_type.is_empty() {
                write!(f, ", {}", self.error_type)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
