"""Failures as Python exceptions: every non-OK status becomes a `RealerError` (a subclass per status) carrying
the thread's `realer_last_error` record, read right after the failing call."""

import enum
import json
from typing import TYPE_CHECKING, Any, Optional, Union

from . import _native as n

if TYPE_CHECKING:  # only for the annotations: client.py imports this module
    from .client import FlushReport, ItemResult, Outcome


class Status(enum.IntEnum):
    """`realer_status`: what a call returned. The values are the C ones and never change meaning."""

    OK = n.REALER_OK
    INVALID_ARGUMENT = n.REALER_ERR_INVALID_ARGUMENT
    CONFIG = n.REALER_ERR_CONFIG
    TLS = n.REALER_ERR_TLS
    TLS_CERT_TIME = n.REALER_ERR_TLS_CERT_TIME
    NETWORK = n.REALER_ERR_NETWORK
    TIMEOUT = n.REALER_ERR_TIMEOUT
    AUTH = n.REALER_ERR_AUTH
    API = n.REALER_ERR_API
    PROTOCOL = n.REALER_ERR_PROTOCOL
    BUFFER_TOO_SMALL = n.REALER_ERR_BUFFER_TOO_SMALL
    INTERNAL = n.REALER_ERR_INTERNAL
    OUTBOX_FULL = n.REALER_ERR_OUTBOX_FULL
    STORAGE = n.REALER_ERR_STORAGE
    CANCELLED = n.REALER_ERR_CANCELLED


class RealerError(Exception):
    """A failed librealer call.

    Attributes: `status` (a `Status`, an int), `status_name` ("REALER_ERR_API"), `http_status` (0 when no
    answer arrived), `code` (Realer's code such as 4022, 0 when none), `type` (Realer's `error.type`, such
    as "validation_failed", "" when none), `message`, `request_id` ("" when none), `details` (Realer's
    `error.details` as a dict, or None), `retryable` (the same call may succeed later unchanged),
    `retry_after_ms` (None when the server sent no Retry-After).
    `post()` failures also carry `outcome` ("rejected" or "not_sent") and the `message_id` and
    `value_received_at` to retry with;
    `post_batch()` failures carry `results`, the per-item results (possibly empty), and `Outbox.flush()`
    failures `report`, the `FlushReport` so far. Elsewhere these are None.
    """

    status: Union[Status, int]
    status_name: str
    http_status: int
    code: int
    type: str
    message: str
    request_id: str
    details: Any
    retryable: bool
    retry_after_ms: Optional[int]
    message_id: Optional[str]
    value_received_at: Optional[str]
    outcome: Optional["Outcome"]
    results: Optional[list["ItemResult"]]
    report: Optional["FlushReport"]

    def __init__(
        self,
        status: int,
        message: str,
        *,
        status_name: Optional[str] = None,
        http_status: int = 0,
        code: int = 0,
        type: str = "",
        request_id: str = "",
        details: Any = None,
        retryable: bool = False,
        retry_after_ms: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        try:
            self.status = Status(status)
        except ValueError:
            self.status = status
        self.status_name = status_name or _status_name(status)
        self.http_status = http_status
        self.code = code
        self.type = type
        self.message = message
        self.request_id = request_id
        self.details = details
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms
        self.message_id = None
        self.value_received_at = None
        self.outcome = None
        self.results = None
        self.report = None

    def __str__(self) -> str:
        parts = [self.status_name]
        if self.http_status:
            parts.append(f"HTTP {self.http_status}")
        if self.code:
            parts.append(f"code {self.code}")
        if self.type:
            parts.append(self.type)
        text = f"{self.message} ({', '.join(parts)})"
        if self.request_id:
            text += f" [request_id {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status_name}, code={self.code}, message={self.message!r})"


class InvalidArgumentError(RealerError, ValueError):
    """REALER_ERR_INVALID_ARGUMENT: the library refused an argument (an item breaking the contract...);
    nothing was sent."""


class ConfigError(RealerError):
    """REALER_ERR_CONFIG: a configuration value was refused, or the configuration is incomplete."""


class TLSError(RealerError, OSError):
    """REALER_ERR_TLS: handshake failed, untrusted certificate, bad CA material. An `OSError`, as the
    standard library's `ssl.SSLError` is, so `except OSError` handles every connection failure."""


class CertificateTimeError(TLSError):
    """REALER_ERR_TLS_CERT_TIME: the server certificate is expired or not yet valid (check the clock)."""


class NetworkError(RealerError, OSError):
    """REALER_ERR_NETWORK: connecting, sending or receiving failed. Retryable. An `OSError`, as the
    standard library's socket errors are."""


class RealerTimeoutError(RealerError, TimeoutError):
    """REALER_ERR_TIMEOUT: the configured time ran out. Retryable. The built-in `TimeoutError` (an
    `OSError`), so `except TimeoutError` catches it as it catches `socket.timeout`."""


class AuthError(RealerError):
    """REALER_ERR_AUTH: the token endpoint refused the credentials (or a freshly issued token)."""


class ApiError(RealerError):
    """REALER_ERR_API: Realer answered an application error; see `http_status`, `code`, `type`, `details`."""


class ProtocolError(RealerError):
    """REALER_ERR_PROTOCOL: the server's answer could not be understood."""


class BufferTooSmallError(RealerError):
    """REALER_ERR_BUFFER_TOO_SMALL."""


class InternalError(RealerError):
    """REALER_ERR_INTERNAL: a bug in librealer (a panic caught at the C boundary)."""


class OutboxFullError(RealerError):
    """REALER_ERR_OUTBOX_FULL: the outbox is full and refuses new items; nothing was stored."""


class StorageError(RealerError):
    """REALER_ERR_STORAGE: the outbox file could not be read or written."""


class CancelledError(RealerError):
    """REALER_ERR_CANCELLED: `Client.cancel()` (or Ctrl-C) interrupted the call, or refused it until
    `Client.resume()`. Nothing was lost."""


_CLASSES: dict[int, type[RealerError]] = {
    Status.INVALID_ARGUMENT: InvalidArgumentError,
    Status.CONFIG: ConfigError,
    Status.TLS: TLSError,
    Status.TLS_CERT_TIME: CertificateTimeError,
    Status.NETWORK: NetworkError,
    Status.TIMEOUT: RealerTimeoutError,
    Status.AUTH: AuthError,
    Status.API: ApiError,
    Status.PROTOCOL: ProtocolError,
    Status.BUFFER_TOO_SMALL: BufferTooSmallError,
    Status.INTERNAL: InternalError,
    Status.OUTBOX_FULL: OutboxFullError,
    Status.STORAGE: StorageError,
    Status.CANCELLED: CancelledError,
}


def _status_name(status: int) -> str:
    name: bytes = n.lib.realer_status_str(status)
    return name.decode("ascii", "replace")


def decode(raw: Optional[bytes]) -> Optional[str]:
    """A C string from the library as str (None stays None); invalid UTF-8 is replaced, never raised."""
    return None if raw is None else raw.decode("utf-8", "replace")


def parse_details(raw: Optional[bytes]) -> Any:
    """`details_json` as a dict (or whatever JSON value it holds); None when absent or empty."""
    text = decode(raw)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"_raw": text}


def last_error(status: int) -> RealerError:
    """The exception for `status`, which the call on this thread just returned. Must be called before any
    other librealer call on this thread, as the next failure overwrites the record."""
    rec = n.lib.realer_last_error()
    if rec:
        e = rec.contents
        fields: dict[str, Any] = dict(
            http_status=e.http_status,
            code=e.code,
            type=decode(e.type) or "",
            request_id=decode(e.request_id) or "",
            details=parse_details(e.details_json),
            retryable=bool(e.retryable),
            retry_after_ms=None if e.retry_after_ms < 0 else e.retry_after_ms,
        )
        message = decode(e.message) or ""
        # The record belongs to the last *failing* call: if it is not this one's, keep only the status.
        if e.status != status:
            fields = {}
            message = ""
    else:
        fields, message = {}, ""
    cls = _CLASSES.get(status, RealerError)
    return cls(status, message or _status_name(status), **fields)


def check(status: int) -> None:
    """Raises the exception for a non-OK `status`."""
    if status != n.REALER_OK:
        raise last_error(status)
