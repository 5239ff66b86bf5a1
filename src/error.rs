//! The one error type of the core: a kind that maps to a C status, plus what Realer said about it.
//! Messages never carry a secret: the client secret and tokens are not formatted anywhere in this crate, and
//! what a server said passes through `Error::map_server_text` (secrets it echoed are redacted, control
//! characters dropped) before a caller or a log line sees it.

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
    /// `Client::cancel` interrupted the call, or refused it until `Client::resume`.
    Cancelled,
}

/// A failure, with everything Realer said about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    /// What kind of failure it is (the C status it maps to).
    pub kind: ErrorKind,
    /// What happened, for people (secrets redacted, control characters removed).
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
    /// Whether the answer was Realer's: its JSON with a numeric `code` (contract section 6). An answer without
    /// it came from something on the path (a proxy, a gateway, a captive portal) and judged no item.
    pub from_realer: bool,
}

impl Error {
    /// An error of `kind` with `message` and nothing from a server; retryable when it is a network error or a
    /// timeout.
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
            from_realer: false,
        }
    }

    /// A bad argument (`ErrorKind::InvalidArgument`).
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// A bad or missing setting (`ErrorKind::Config`).
    pub fn config(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Config, message)
    }

    /// An answer this client cannot read as the contract says (`ErrorKind::Protocol`).
    pub fn protocol(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Protocol, message)
    }

    /// A bug inside the library (`ErrorKind::Internal`).
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }

    /// Rewrites every text that may hold what a server said: message, `error_type`, `request_id`, and every
    /// key and string inside `details`.
    pub(crate) fn map_server_text(&mut self, f: &dyn Fn(&str) -> String) {
        for text in [&mut self.message, &mut self.error_type, &mut self.request_id] {
            *text = f(text);
        }
        if let Some(d) = &mut self.details {
            map_json_strings(d, f);
        }
    }

    /// `details` serialised as JSON, empty when absent.
    pub fn details_json(&self) -> String {
        self.details.as_ref().map(|d| d.to_string()).unwrap_or_default()
    }
}

fn map_json_strings(v: &mut serde_json::Value, f: &dyn Fn(&str) -> String) {
    use serde_json::Value;
    match v {
        Value::String(s) => *s = f(s),
        Value::Array(items) => items.iter_mut().for_each(|i| map_json_strings(i, f)),
        Value::Object(map) => {
            *map = std::mem::take(map)
                .into_iter()
                .map(|(k, mut v)| {
                    map_json_strings(&mut v, f);
                    (f(&k), v)
                })
                .collect();
        }
        _ => {}
    }
}

/// Characters a terminal or a log viewer acts on rather than shows: C0 (CR, LF, ESC...), DEL, C1, and the
/// bidirectional overrides and marks that reorder what is displayed.
pub(crate) fn is_control_text(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Server text made safe to print on one line: each run of control characters becomes one space.
pub(crate) fn strip_control(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_control_text) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for c in text.chars() {
        if is_control_text(c) {
            if !in_run {
                out.push(' ');
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    std::borrow::Cow::Owned(out)
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

/// The result of every fallible call of the library.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_one_space() {
        assert_eq!(strip_control("plain text"), "plain text");
        assert_eq!(strip_control("a\r\nX-Forged: 1\u{1b}[2J\u{7}"), "a X-Forged: 1 [2J ");
        assert_eq!(strip_control("\u{9b}31m\u{202e}gnp.exe\u{7f}"), " 31m gnp.exe ");
        assert_eq!(strip_control("tab\there é ✓"), "tab here é ✓");
    }

    #[test]
    fn every_server_text_is_mapped() {
        let mut e = Error::new(ErrorKind::Api, "m\n");
        e.error_type = "t\n".into();
        e.request_id = "r\n".into();
        e.details = Some(serde_json::json!({"k\n": ["v\n", 1, {"x": "y\n"}]}));
        e.map_server_text(&|s| strip_control(s).into_owned());
        assert_eq!((e.message.as_str(), e.error_type.as_str(), e.request_id.as_str()), ("m ", "t ", "r "));
        assert_eq!(e.details_json(), r#"{"k ":["v ",1,{"x":"y "}]}"#);
    }
}
