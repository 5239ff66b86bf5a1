"""The Pythonic face of librealer: a `Client` for one device, the catalog as dataclasses, feed data posted
one by one or in batches. Python only converts and type-checks arguments (what C cannot receive safely);
every rule of Realer's contract is checked by the library, which reports it as a `RealerError`."""

import ctypes
import datetime
import decimal
import enum
import logging
import os
import queue
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

from . import _native as n
from .errors import RealerError, check, decode, last_error, parse_details

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_SIZE_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_size_t)) - 1
_I64_MAX = 2**63 - 1
_DEFAULT_CONNECT_TIMEOUT_MS = 10_000
_DEFAULT_REQUEST_TIMEOUT_MS = 30_000
_DEFAULT_STALL_TIMEOUT_MS = 5_000
_DEFAULT_IDLE_TIMEOUT_MS = 15_000


class LogLevel(enum.IntEnum):
    ERROR = n.REALER_LOG_ERROR
    WARN = n.REALER_LOG_WARN
    INFO = n.REALER_LOG_INFO
    DEBUG = n.REALER_LOG_DEBUG


class _StrEnum(str, enum.Enum):
    """An enum whose members are their strings: they compare equal to, and print as, their value."""

    def __str__(self):
        return self.value


class DesiredAction(_StrEnum):
    """What to do about one thing Realer wants; compares equal to "apply" and "stale"."""

    APPLY = "apply"
    STALE = "stale"


class DesiredSource(_StrEnum):
    """Which kind of Realer service said what it wants: "desired_states" (a newer one, each state with a
    `desired_id` to answer) or "catalog" (an older one: the catalog's command values)."""

    DESIRED_STATES = "desired_states"
    CATALOG = "catalog"


class Outcome(_StrEnum):
    """What became of a posted item; compares equal to its string."""

    CREATED = "created"
    IDEMPOTENT = "idempotent"
    REJECTED = "rejected"
    NOT_SENT = "not_sent"


class ReportStatus(_StrEnum):
    """`report_status` of a command report; `post()` also takes the plain strings."""

    APPLIED = "applied"
    REJECTED = "rejected"
    STALE = "stale"
    REPORTED = "reported"


_ACTIONS = {
    n.REALER_DESIRED_ACTION_APPLY: DesiredAction.APPLY,
    n.REALER_DESIRED_ACTION_STALE: DesiredAction.STALE,
}
_SOURCES = {
    n.REALER_DESIRED_SOURCE_DESIRED_STATES: DesiredSource.DESIRED_STATES,
    n.REALER_DESIRED_SOURCE_CATALOG: DesiredSource.CATALOG,
}
_OUTCOMES = {
    n.REALER_FEED_OUTCOME_CREATED: Outcome.CREATED,
    n.REALER_FEED_OUTCOME_IDEMPOTENT: Outcome.IDEMPOTENT,
    n.REALER_FEED_OUTCOME_REJECTED: Outcome.REJECTED,
    n.REALER_FEED_OUTCOME_NOT_SENT: Outcome.NOT_SENT,
}
_FULL_POLICIES = {
    "refuse": n.REALER_OUTBOX_FULL_REFUSE,
    "drop_oldest": n.REALER_OUTBOX_FULL_DROP_OLDEST,
}
_REPORT_STATUSES = {
    None: n.REALER_REPORT_STATUS_NONE,
    ReportStatus.APPLIED: n.REALER_REPORT_STATUS_APPLIED,
    ReportStatus.REJECTED: n.REALER_REPORT_STATUS_REJECTED,
    ReportStatus.STALE: n.REALER_REPORT_STATUS_STALE,
    ReportStatus.REPORTED: n.REALER_REPORT_STATUS_REPORTED,
}


@dataclass(frozen=True)
class Command:
    """A command of the catalog (the device's actuators). On an older service its `value` is what Realer
    wants; on a newer one the value last confirmed: ask `Client.desired_states()` what Realer wants. For an
    item Realer cannot represent, only `id`, `error_type` and `error_message` are set."""

    id: str
    value: Optional[str] = None
    value_type: Optional[str] = None
    kind: Optional[str] = None
    pin_port: Optional[str] = None
    error_type: Optional[str] = None
    error_message: Optional[str] = None


@dataclass(frozen=True)
class Sensor:
    """A sensor of the catalog: what the device may report."""

    id: str
    kind: Optional[str] = None
    qc: Optional[str] = None
    mu: Optional[str] = None
    pin_port: Optional[str] = None
    error_type: Optional[str] = None
    error_message: Optional[str] = None


@dataclass
class FeedItem:
    """One sensor reading or command report, for `post_batch` (`post` takes the same names as keywords).
    `value_received_at` is an aware `datetime` or RFC 3339 text; it is sent in Realer's form
    (`2026-04-24T10:15:00Z`, offsets converted to UTC, a fraction in milliseconds), other text is refused
    (`InvalidArgumentError`)."""

    sensor_id: object = None
    command_id: object = None
    value: object = None
    message_id: Optional[str] = None
    value_received_at: object = None
    desired_id: Optional[str] = None
    report_status: object = None
    sequence_number: Optional[int] = None


@dataclass(frozen=True)
class PostResult:
    """A stored item: `outcome` is "created" or "idempotent" (a replay; `feed_data_id` is the original).
    `message_id` and `value_received_at` are what was sent (generated when not given). `warnings` is the
    `warnings` list Realer sent, as JSON text (undocumented contents), or None."""

    outcome: Outcome
    feed_data_id: Optional[int]
    message_id: str
    value_received_at: str
    http_status: int
    code: int
    warnings: Optional[str] = None


@dataclass(frozen=True)
class ItemResult:
    """One item's fate in a batch. `details` is Realer's `error.details` as a dict, or None. To resend a
    "not_sent" item, send it with this `message_id` and `value_received_at`."""

    index: int
    outcome: Outcome
    feed_data_id: Optional[int]
    code: int
    message_id: str
    value_received_at: str
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    details: Optional[dict] = field(default=None)
    warnings: Optional[str] = None

    @property
    def ok(self):
        """Stored (now or before)."""
        return self.outcome in (Outcome.CREATED, Outcome.IDEMPOTENT)


@dataclass(frozen=True)
class DesiredState:
    """One thing Realer wants: drive command `command_id`'s actuator to `value`. With a `desired_id` (a newer
    service) answer it with `answer()`: "applied" (or "rejected") when `action` is "apply", "stale" when it
    is "stale". Without (a catalog value of an older service) apply it only when the actuator differs
    (`values_equal`), then report the new physical value with `answer()`."""

    command_id: str
    value: Optional[str]
    value_type: Optional[str]
    desired_id: Optional[str]
    sequence_number: Optional[int]
    expires_at: Optional[str]
    expires_at_unix_ms: Optional[int]
    action: DesiredAction

    def answer(self, value, report_status="applied"):
        """The `FeedItem` answering this state with `value`, the physical value now at the actuator (built by
        the library: with a `desired_id`, the status and echoed `sequence_number`; without, a plain report).
        Post it with `Client.post_item`, or push it to the outbox."""
        raw_value = _value(value)
        c = n.realer_desired_state(
            command_id=_text(self.command_id, "command_id", optional=False),
            value=_text(self.value, "value"),
            value_type=_text(self.value_type, "value_type"),
            desired_id=_text(self.desired_id, "desired_id"),
            sequence_number=-1
            if self.sequence_number is None
            else _int(self.sequence_number, "sequence_number", 0, _I64_MAX),
            expires_at=_text(self.expires_at, "expires_at"),
            expires_at_unix_ms=-1
            if self.expires_at_unix_ms is None
            else _int(self.expires_at_unix_ms, "expires_at_unix_ms", 0, _I64_MAX),
            action=n.REALER_DESIRED_ACTION_STALE if self.action == DesiredAction.STALE else n.REALER_DESIRED_ACTION_APPLY,
        )
        item = n.realer_feed_item()
        check(n.lib.realer_feed_item_init_answer(ctypes.byref(item), ctypes.byref(c), raw_value, _report_status(report_status)))
        statuses = {code: status for status, code in _REPORT_STATUSES.items()}
        return FeedItem(
            command_id=decode(item.command_id),
            value=decode(item.value),
            desired_id=decode(item.desired_id),
            report_status=statuses.get(item.report_status),
            sequence_number=_opt_i64(item.sequence_number),
        )


@dataclass(frozen=True)
class DesiredStates:
    """What Realer wants (`Client.desired_states()`): `states` (a list of `DesiredState`), and `source`,
    which kind of service said so. Iterating goes over the states."""

    source: DesiredSource
    states: list

    def __iter__(self):
        return iter(self.states)

    def __len__(self):
        return len(self.states)


def _desired_state(d):
    return DesiredState(
        command_id=decode(d.command_id),
        value=decode(d.value),
        value_type=decode(d.value_type),
        desired_id=decode(d.desired_id),
        sequence_number=_opt_i64(d.sequence_number),
        expires_at=decode(d.expires_at),
        expires_at_unix_ms=_opt_i64(d.expires_at_unix_ms),
        action=_ACTIONS.get(d.action, DesiredAction.STALE),
    )


def values_equal(value_type, a, b):
    """Whether two values of a command are the same setting, as Realer's contract compares them: by
    `value_type`, numerically for "NumericRange" and "Binary" ("0" equals "0.0"), else as text."""
    return bool(n.lib.realer_values_equal(_text(value_type, "value_type"), _value(a), _value(b)))


# Converting arguments. C strings cannot hold NUL and ctypes integers wrap silently, so both are refused here.


def _text(value, name, *, optional=True):
    if value is None:
        if optional:
            return None
        raise TypeError(f"{name} is required")
    if isinstance(value, bytes):
        raise TypeError(f"{name} must be str, not bytes")
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{name} contains a NUL character")
    return value.encode("utf-8")


def _path(value, name):
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, not {type(value).__name__}")
    raw = os.fsencode(value)
    if b"\0" in raw:
        raise ValueError(f"{name} contains a NUL character")
    return raw


def _id(value, name):
    """Ids are text in the C API: an int becomes its decimal digits."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{name} must be int or str, not {type(value).__name__}")
    return _text(str(value), name)


def _value(value):
    if value is None:
        raise TypeError("value is required")
    if isinstance(value, bool) or not isinstance(value, (str, int, float, decimal.Decimal)):
        raise TypeError(f"value must be str, int or float, not {type(value).__name__}")
    return _text(str(value), "value")


def _timestamp(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("value_received_at must be a timezone-aware datetime (UTC is assumed by no one)")
        utc = value.astimezone(datetime.timezone.utc)
        value = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return _text(value, "value_received_at")


def _int(value, name, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def _report_status(value):
    if value is None:
        return n.REALER_REPORT_STATUS_NONE
    if not isinstance(value, str):
        raise TypeError(f"report_status must be str or ReportStatus, not {type(value).__name__}")
    try:
        return _REPORT_STATUSES[ReportStatus(value)]
    except ValueError:
        raise ValueError(
            f"report_status must be one of {', '.join(s.value for s in ReportStatus)} (or None), not {value!r}"
        ) from None


class _CItem:
    """A `realer_feed_item` and the bytes its pointers point into, kept together for the call's duration."""

    def __init__(self, item, index=None):
        if isinstance(item, dict):
            unknown = set(item) - set(FeedItem.__dataclass_fields__)
            if unknown:
                where = "" if index is None else f"items[{index}]: "
                raise TypeError(f"{where}unknown feed item key(s): {', '.join(sorted(unknown))}")
            item = FeedItem(**item)
        elif not isinstance(item, FeedItem):
            raise TypeError(f"a feed item is a dict or a FeedItem, not {type(item).__name__}")
        self.keep = dict(
            sensor_id=_id(item.sensor_id, "sensor_id"),
            command_id=_id(item.command_id, "command_id"),
            value=_value(item.value),
            value_received_at=_timestamp(item.value_received_at),
            message_id=_text(item.message_id, "message_id"),
            desired_id=_text(item.desired_id, "desired_id"),
        )
        self.report_status = _report_status(item.report_status)
        self.sequence_number = (
            -1 if item.sequence_number is None else _int(item.sequence_number, "sequence_number", 0, _I64_MAX)
        )

    def fill(self, c):
        check(n.lib.realer_feed_item_init(ctypes.byref(c)))
        for name, raw in self.keep.items():
            setattr(c, name, raw)
        c.report_status = self.report_status
        c.sequence_number = self.sequence_number


def _one_c_item(**fields):
    """The item of `Client.post` and `Outbox.push` (their keywords): the checked `_CItem`, which owns the bytes,
    and the `realer_feed_item` it filled, pointing into them (keep both for the call)."""
    item = _CItem(FeedItem(**fields))
    c = n.realer_feed_item()
    item.fill(c)
    return item, c


def _c_items(items, call, single):
    """The items of `Client.post_batch` and `Outbox.push_many`: the checked `_CItem`s, which own the bytes, and
    the `realer_feed_item` array they filled, pointing into them (keep both for the call)."""
    if isinstance(items, (dict, FeedItem, str, bytes)):
        raise TypeError(f"{call} takes a sequence of items; use {single}() for one")
    converted = [_CItem(item, i) for i, item in enumerate(items)]
    array = (n.realer_feed_item * max(len(converted), 1))()
    for c, item in zip(array, converted):
        item.fill(c)
    return converted, array


def _opt_i64(v):
    return None if v < 0 else v


def _at(get, struct, ptr, i):
    """Item `i` of a C list: the struct its `_get` fills (a ctypes struct passed byref; its strings point into
    the list, so read them before the list is freed)."""
    item = struct()
    check(get(ptr, i, ctypes.byref(item)))
    return item


def _command(c):
    return Command(
        id=decode(c.id),
        value=decode(c.value),
        value_type=decode(c.value_type),
        kind=decode(c.kind),
        pin_port=decode(c.pin_port),
        error_type=decode(c.error_type),
        error_message=decode(c.error_message),
    )


def _sensor(s):
    return Sensor(
        id=decode(s.id),
        kind=decode(s.kind),
        qc=decode(s.qc),
        mu=decode(s.mu),
        pin_port=decode(s.pin_port),
        error_type=decode(s.error_type),
        error_message=decode(s.error_message),
    )


def _batch_results(ptr):
    out = []
    for i in range(n.lib.realer_batch_result_len(ptr)):
        r = _at(n.lib.realer_batch_result_get, n.realer_item_result, ptr, i)
        out.append(
            ItemResult(
                index=i,
                outcome=_OUTCOMES.get(r.outcome, Outcome.NOT_SENT),
                feed_data_id=_opt_i64(r.feed_data_id),
                code=r.code,
                message_id=decode(r.message_id) or "",
                value_received_at=decode(r.value_received_at) or "",
                # Results of items that were never sent carry "" rather than NULL: absent either way.
                error_type=decode(r.error_type) or None,
                error_message=decode(r.error_message) or None,
                details=parse_details(r.details_json),
                warnings=decode(r.warnings_json),
            )
        )
    return out


def version():
    """The loaded library's version, such as "0.2.0"."""
    return n.lib.realer_version().decode("ascii", "replace")


def format_timestamp(unix_ms=0):
    """`unix_ms` (milliseconds since 1970; 0 = now) as RFC 3339 UTC, such as "2026-04-24T10:15:00.000Z"."""
    unix_ms = _int(unix_ms, "unix_ms", -(2**63), _I64_MAX)
    buf = ctypes.create_string_buffer(n.REALER_TIMESTAMP_SIZE)
    check(n.lib.realer_timestamp_format(unix_ms, buf, len(buf)))
    return buf.value.decode("ascii")


def _logging_adapter(logger):
    levels = {
        LogLevel.ERROR: logging.ERROR,
        LogLevel.WARN: logging.WARNING,
        LogLevel.INFO: logging.INFO,
        LogLevel.DEBUG: logging.DEBUG,
    }
    return lambda level, message: logger.log(levels.get(level, logging.DEBUG), "%s", message)


_OPTIONS = (
    "base_url",
    "device_id",
    "client_id",
    "client_secret",
    "ca_file",
    "ca_pem",
    "scope",
    "connect_timeout_ms",
    "request_timeout_ms",
    "retry",
    "user_agent",
    "proxy",
    "stall_timeout_ms",
    "idle_timeout_ms",
    "allow_insecure_loopback",
    "logger",
    "log_level",
    "outbox",
    "outbox_max_items",
    "outbox_max_bytes",
    "outbox_when_full",
)


def _status_and_error(status):
    """A call's status and, on failure, its exception (read on the thread that made the call)."""
    return status, (None if status == n.REALER_OK else last_error(status))


class _Runner:
    """Runs a client's network calls. From the main thread they run on a worker thread of the client's, so
    that Ctrl-C reaches Python at once instead of after the call: the call is cancelled
    (`realer_client_cancel`), returns within milliseconds, the client is resumed, and the KeyboardInterrupt
    goes on. From other threads they run where they are called."""

    def __init__(self):
        self._jobs = None
        self._thread = None
        self._lock = threading.Lock()

    def _work(self):
        # Signals go to the main thread, which turns them into exceptions.
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        while True:
            job = self._jobs.get()
            if job is None:
                return
            call, box, done = job
            try:
                box.append((True, call()))
            except BaseException as e:  # handed to the caller as it is
                box.append((False, e))
            finally:
                done.set()

    def run(self, call, handle):
        if threading.current_thread() is not threading.main_thread():
            return call()
        with self._lock:
            if self._thread is None:
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._work, name="realer-call", daemon=True)
                self._thread.start()
        box, done = [], threading.Event()
        self._jobs.put((call, box, done))
        try:
            # Woken every 50 ms, so a signal's exception is raised even when the signal reached another thread.
            while not done.wait(0.05):
                pass
        except KeyboardInterrupt:
            n.lib.realer_client_cancel(handle)
            done.wait()
            n.lib.realer_client_resume(handle)
            raise
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def stop(self):
        with self._lock:
            if self._thread is not None:
                self._jobs.put(None)
                self._thread = None


class Client:
    """A client for one device; see `Client.from_env` to configure it from REALER_* variables.

    No network I/O happens here; calls authenticate as needed. A client may be shared between threads.
    Close it with `close()` or use it as a context manager. `logger` is a callable `(level, message)` (or a
    `logging.Logger`); it may be called from any thread using the client, and must not call back into it.
    `retry` is `(max_attempts, base_delay_ms, max_delay_ms)`. `proxy` is an HTTP proxy to reach Realer
    through with CONNECT, `http://[user:password@]host:port` (never taken from the environment's proxy
    variables; `from_env` reads REALER_PROXY); a proxy's refusal raises `NetworkError` naming the proxy.
    `stall_timeout_ms` (default 5000; 0: never) is how long a request on a reused connection may wait for the
    first byte of its answer before it is sent again on a new connection; `idle_timeout_ms` (default 15000;
    0: never reuse) how long an unused connection is kept (see `realer_config_set_keepalive`). `outbox` is the path of a SQLite file that
    keeps unsent items (see `Client.outbox`), with at most `outbox_max_items` items and `outbox_max_bytes`
    bytes (0 = no limit); `outbox_when_full` is "refuse" (the default) or "drop_oldest".
    Failures raise `RealerError`.
    """

    def __init__(
        self,
        base_url=None,
        *,
        device_id=None,
        client_id=None,
        client_secret=None,
        ca_file=None,
        ca_pem=None,
        scope=None,
        connect_timeout_ms=None,
        request_timeout_ms=None,
        retry=None,
        user_agent=None,
        proxy=None,
        stall_timeout_ms=None,
        idle_timeout_ms=None,
        allow_insecure_loopback=False,
        logger=None,
        log_level=LogLevel.INFO,
        outbox=None,
        outbox_max_items=0,
        outbox_max_bytes=0,
        outbox_when_full=None,
    ):
        self._init(
            False,
            dict(
                base_url=base_url,
                device_id=device_id,
                client_id=client_id,
                client_secret=client_secret,
                ca_file=ca_file,
                ca_pem=ca_pem,
                scope=scope,
                connect_timeout_ms=connect_timeout_ms,
                request_timeout_ms=request_timeout_ms,
                retry=retry,
                user_agent=user_agent,
                proxy=proxy,
                stall_timeout_ms=stall_timeout_ms,
                idle_timeout_ms=idle_timeout_ms,
                allow_insecure_loopback=allow_insecure_loopback,
                logger=logger,
                log_level=log_level,
                outbox=outbox,
                outbox_max_items=outbox_max_items,
                outbox_max_bytes=outbox_max_bytes,
                outbox_when_full=outbox_when_full,
            ),
        )

    @classmethod
    def from_env(cls, **overrides):
        """A client configured from REALER_BASE_URL, REALER_DEVICE_ID, REALER_CLIENT_ID with
        REALER_CLIENT_SECRET, REALER_CA_FILE, REALER_SCOPE and REALER_PROXY (those that are set), then from `overrides`,
        which take the constructor's keywords."""
        self = cls.__new__(cls)
        self._init(True, overrides)
        return self

    @classmethod
    def from_file(cls, path, **overrides):
        """A client configured from a file of KEY=value lines with the REALER_* variables' names (see
        `realer_config_from_file`: a file holding the secret must be readable by its owner only), then from
        `overrides`, which take the constructor's keywords."""
        self = cls.__new__(cls)
        self._init(("file", _path(path, "path")), overrides)
        return self

    def _init(self, source, options):
        from_env = source is True
        # Set first, so close() and __del__ work whatever fails below.
        self._handle = None
        self._free = n.lib.realer_client_free
        self._cond = threading.Condition()
        self._busy = 0
        self._closed = False
        self._log_callback = None
        self._runner = _Runner()

        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        o = dict(options)
        if from_env and (o.get("client_id") is None) != (o.get("client_secret") is None):
            # The library sets the credentials as a pair: complete a one-sided override from the environment.
            o.setdefault("client_id", None)
            o.setdefault("client_secret", None)
            if o["client_id"] is None:
                o["client_id"] = os.environ.get("REALER_CLIENT_ID")
            else:
                o["client_secret"] = os.environ.get("REALER_CLIENT_SECRET")

        cfg = n.lib.realer_config_new()
        if not cfg:
            raise MemoryError("realer_config_new failed")
        try:
            if from_env:
                check(n.lib.realer_config_from_env(cfg))
            elif isinstance(source, tuple):
                check(n.lib.realer_config_from_file(cfg, source[1]))
            self._configure(cfg, o)
            handle = ctypes.POINTER(n.realer_client)()
            check(n.lib.realer_client_new(cfg, ctypes.byref(handle)))
            self._handle = handle
        finally:
            n.lib.realer_config_free(cfg)

    def _configure(self, cfg, o):
        lib = n.lib
        if o.get("allow_insecure_loopback"):
            check(lib.realer_config_allow_insecure_loopback(cfg, 1))
        if o.get("base_url") is not None:
            check(lib.realer_config_set_base_url(cfg, _text(o["base_url"], "base_url")))
        if o.get("device_id") is not None:
            check(lib.realer_config_set_device_id(cfg, _id(o["device_id"], "device_id")))
        client_id, client_secret = o.get("client_id"), o.get("client_secret")
        if client_id is not None or client_secret is not None:
            if client_id is None or client_secret is None:
                raise ValueError("client_id and client_secret are set together")
            check(
                lib.realer_config_set_credentials(
                    cfg, _text(client_id, "client_id"), _text(client_secret, "client_secret")
                )
            )
        if o.get("ca_file") is not None:
            check(lib.realer_config_set_ca_file(cfg, _path(o["ca_file"], "ca_file")))
        if o.get("ca_pem") is not None:
            pem = o["ca_pem"]
            if isinstance(pem, str):
                pem = pem.encode("utf-8")
            if not isinstance(pem, (bytes, bytearray)):
                raise TypeError(f"ca_pem must be str or bytes, not {type(pem).__name__}")
            buf = (ctypes.c_uint8 * len(pem)).from_buffer_copy(pem)
            check(lib.realer_config_set_ca_pem(cfg, buf, len(pem)))
        if o.get("scope") is not None:
            check(lib.realer_config_set_scope(cfg, _text(o["scope"], "scope")))
        connect_ms, request_ms = o.get("connect_timeout_ms"), o.get("request_timeout_ms")
        if connect_ms is not None or request_ms is not None:
            connect_ms = _DEFAULT_CONNECT_TIMEOUT_MS if connect_ms is None else connect_ms
            request_ms = _DEFAULT_REQUEST_TIMEOUT_MS if request_ms is None else request_ms
            check(
                lib.realer_config_set_timeouts(
                    cfg,
                    _int(connect_ms, "connect_timeout_ms", 0, _U32_MAX),
                    _int(request_ms, "request_timeout_ms", 0, _U32_MAX),
                )
            )
        if o.get("retry") is not None:
            retry = o["retry"]
            if not isinstance(retry, (tuple, list)) or len(retry) != 3:
                raise TypeError("retry is a tuple (max_attempts, base_delay_ms, max_delay_ms)")
            names = ("max_attempts", "base_delay_ms", "max_delay_ms")
            check(lib.realer_config_set_retry(cfg, *(_int(v, f"retry {k}", 0, _U32_MAX) for k, v in zip(names, retry))))
        if o.get("user_agent") is not None:
            check(lib.realer_config_set_user_agent(cfg, _text(o["user_agent"], "user_agent")))
        if o.get("proxy") is not None:
            check(lib.realer_config_set_proxy(cfg, _text(o["proxy"], "proxy")))
        stall_ms, idle_ms = o.get("stall_timeout_ms"), o.get("idle_timeout_ms")
        if stall_ms is not None or idle_ms is not None:
            stall_ms = _DEFAULT_STALL_TIMEOUT_MS if stall_ms is None else stall_ms
            idle_ms = _DEFAULT_IDLE_TIMEOUT_MS if idle_ms is None else idle_ms
            check(
                lib.realer_config_set_keepalive(
                    cfg,
                    _int(stall_ms, "stall_timeout_ms", 0, _U32_MAX),
                    _int(idle_ms, "idle_timeout_ms", 0, _U32_MAX),
                )
            )
        logger = o.get("logger")
        if logger is not None:
            if isinstance(logger, logging.Logger):
                logger = _logging_adapter(logger)
            if not callable(logger):
                raise TypeError("logger must be a callable (level, message) or a logging.Logger")
            level = _int(int(o.get("log_level", LogLevel.INFO)), "log_level", LogLevel.ERROR, LogLevel.DEBUG)

            def on_log(_user_data, level, message, logger=logger):
                # An exception here cannot cross into C: ctypes reports it as unraisable and returns.
                logger(level, message.decode("utf-8", "replace") if message is not None else "")

            # The C library keeps this pointer for the client's life: so must we.
            self._log_callback = n.realer_log_callback(on_log)
            check(lib.realer_config_set_logger(cfg, self._log_callback, None, level))
        if o.get("outbox") is not None:
            check(
                lib.realer_config_set_outbox(
                    cfg,
                    _path(o["outbox"], "outbox"),
                    _int(o.get("outbox_max_items") or 0, "outbox_max_items", 0, _U64_MAX),
                    _int(o.get("outbox_max_bytes") or 0, "outbox_max_bytes", 0, _U64_MAX),
                )
            )
            when_full = o.get("outbox_when_full")
            if when_full is not None:
                if when_full not in _FULL_POLICIES:
                    raise ValueError(f"outbox_when_full must be 'refuse' or 'drop_oldest', not {when_full!r}")
                check(lib.realer_config_set_outbox_when_full(cfg, _FULL_POLICIES[when_full]))
        elif o.get("outbox_when_full") is not None or o.get("outbox_max_items") or o.get("outbox_max_bytes"):
            raise ValueError("outbox_max_items, outbox_max_bytes and outbox_when_full need outbox (a path)")

    # Lifetime. realer_client_free must not race with calls, so close() waits for calls in flight.

    @contextmanager
    def _handle_in_use(self):
        """The open handle, for the calls in the `with` block: raises ValueError on a closed client; `close()`
        waits until every block that holds the handle has left."""
        with self._cond:
            if self._closed or not self._handle:
                raise ValueError("the realer.Client is closed")
            self._busy += 1
            handle = self._handle
        try:
            yield handle
        finally:
            with self._cond:
                self._busy -= 1
                if self._busy == 0:
                    self._cond.notify_all()

    def close(self):
        """Frees the client (idempotent). Waits for calls in flight on other threads."""
        cond = getattr(self, "_cond", None)
        if cond is None:
            return
        with cond:
            if self._closed:
                return
            self._closed = True
            while self._busy:
                cond.wait()
            handle, self._handle = self._handle, None
        runner = getattr(self, "_runner", None)
        if runner is not None:
            runner.stop()
        if handle:
            self._free(handle)

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        with self._handle_in_use():
            return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # Calls.

    def _checked(self, call, h):
        """Runs a network call (through the runner: see `_Runner`) and raises its error, read on the thread
        that made it (the last error is per thread)."""
        _, err = self._runner.run(lambda: _status_and_error(call()), h)
        if err is not None:
            raise err

    def authenticate(self):
        """Gets an access token now unless a valid one is cached (optional: calls authenticate as needed)."""
        with self._handle_in_use() as h:
            self._checked(lambda: n.lib.realer_client_authenticate(h), h)

    def _commands(self, fetch, *args):
        with self._handle_in_use() as h:
            ptr = ctypes.POINTER(n.realer_commands)()
            self._checked(lambda: fetch(h, *args, ctypes.byref(ptr)), h)
        try:
            get = n.lib.realer_commands_get
            return [_command(_at(get, n.realer_command, ptr, i)) for i in range(n.lib.realer_commands_len(ptr))]
        finally:
            n.lib.realer_commands_free(ptr)

    def _sensors(self, fetch, *args):
        with self._handle_in_use() as h:
            ptr = ctypes.POINTER(n.realer_sensors)()
            self._checked(lambda: fetch(h, *args, ctypes.byref(ptr)), h)
        try:
            get = n.lib.realer_sensors_get
            return [_sensor(_at(get, n.realer_sensor, ptr, i)) for i in range(n.lib.realer_sensors_len(ptr))]
        finally:
            n.lib.realer_sensors_free(ptr)

    def commands(self):
        """The device's commands (a list of `Command`)."""
        return self._commands(n.lib.realer_commands_fetch)

    def command(self, id):
        """One command by id; an unknown id raises `ApiError` with code 4004."""
        found = self._commands(n.lib.realer_command_fetch, _id(id, "id"))
        return found[0] if found else None

    def sensors(self):
        """The device's sensors (a list of `Sensor`)."""
        return self._sensors(n.lib.realer_sensors_fetch)

    def sensor(self, id):
        """One sensor by id; an unknown id raises `ApiError` with code 4004."""
        found = self._sensors(n.lib.realer_sensor_fetch, _id(id, "id"))
        return found[0] if found else None

    def desired_states(self):
        """What Realer wants the device's actuators at (`DesiredStates`), whichever kind of service answers:
        a newer one's pending desired states, each decided "apply" or "stale" by the library against what
        this device already answered; or an older one's catalog values that are new (first seen, or changed in
        Realer since the last value seen): each is handed over once, so a local change is never undone by the
        next call (nor, with an outbox, by a restart). Answer each with `DesiredState.answer()` and
        `post_item()`. On an older service the command list `commands()` read just before stands in for the
        catalog read."""
        with self._handle_in_use() as h:
            ptr = ctypes.POINTER(n.realer_desired_states)()
            self._checked(lambda: n.lib.realer_desired_states_fetch(h, ctypes.byref(ptr)), h)
        try:
            states = [
                _desired_state(_at(n.lib.realer_desired_states_get, n.realer_desired_state, ptr, i))
                for i in range(n.lib.realer_desired_states_len(ptr))
            ]
            source = _SOURCES.get(n.lib.realer_desired_states_source(ptr), DesiredSource.CATALOG)
        finally:
            n.lib.realer_desired_states_free(ptr)
        return DesiredStates(source=source, states=states)

    def cancel(self):
        """Makes every call in progress on this client (from any thread) raise `CancelledError` promptly, and
        every call started afterwards at once, until `resume()`. Nothing is lost: a cancelled `post` carries
        the `message_id` and `value_received_at` to send again, a cancelled flush leaves its items pending.
        Ctrl-C (KeyboardInterrupt) in a call made from the main thread does this by itself."""
        with self._handle_in_use() as h:
            check(n.lib.realer_client_cancel(h))

    def resume(self):
        """Lets calls run again after `cancel()`."""
        with self._handle_in_use() as h:
            check(n.lib.realer_client_resume(h))

    def post_item(self, item):
        """`post()` for a `FeedItem` (such as `DesiredState.answer()`'s)."""
        if not isinstance(item, FeedItem):
            raise TypeError(f"item must be a realer.FeedItem, not {type(item).__name__}")
        return self.post(**{name: getattr(item, name) for name in FeedItem.__dataclass_fields__})

    def post(
        self,
        sensor_id=None,
        command_id=None,
        value=None,
        message_id=None,
        value_received_at=None,
        desired_id=None,
        report_status=None,
        sequence_number=None,
    ):
        """Posts one sensor reading (`sensor_id`) or command report (`command_id`) and returns a
        `PostResult` ("created", or "idempotent" for a replay). On failure the `RealerError` carries the
        `outcome` ("rejected": do not resend; "not_sent": resend) and the `message_id` and
        `value_received_at` to resend with (a different payload under the same `message_id` is a conflict)."""
        item, c = _one_c_item(
            sensor_id=sensor_id,
            command_id=command_id,
            value=value,
            message_id=message_id,
            value_received_at=value_received_at,
            desired_id=desired_id,
            report_status=report_status,
            sequence_number=sequence_number,
        )
        out = n.realer_feed_result()
        out.outcome = n.REALER_FEED_OUTCOME_NOT_SENT
        out.feed_data_id = -1
        if item.keep["message_id"] is not None:
            out.message_id = item.keep["message_id"][: n.REALER_MESSAGE_ID_MAX]
        with self._handle_in_use() as h:

            def call():
                status, err = _status_and_error(n.lib.realer_feed_post(h, ctypes.byref(c), ctypes.byref(out)))
                return err, decode(n.lib.realer_last_warnings()) or None

            err, warnings = self._runner.run(call, h)
        message_id = out.message_id.decode("ascii", "replace")
        value_received_at = out.value_received_at.decode("utf-8", "replace")
        outcome = _OUTCOMES.get(out.outcome, Outcome.NOT_SENT)
        if err is not None:
            err.message_id = message_id
            err.value_received_at = value_received_at
            err.outcome = outcome
            raise err
        return PostResult(
            outcome=outcome,
            feed_data_id=_opt_i64(out.feed_data_id),
            message_id=message_id,
            value_received_at=value_received_at,
            http_status=out.http_status,
            code=out.code,
            warnings=warnings,
        )

    def post_batch(self, items):
        """Posts items (dicts with `post`'s keywords, or `FeedItem`s) and returns one `ItemResult` per item,
        in order. Items are judged one by one: check each result's `outcome`. If a request fails as a whole,
        raises `RealerError` with the per-item results in `err.results`."""
        converted, array = _c_items(items, "post_batch", "post")
        out = ctypes.POINTER(n.realer_batch_result)()
        with self._handle_in_use() as h:
            status, err = self._runner.run(
                lambda: _status_and_error(n.lib.realer_feed_post_batch(h, array, len(converted), ctypes.byref(out))),
                h,
            )
        try:
            results = _batch_results(out) if out else []
        finally:
            n.lib.realer_batch_result_free(out)
        if err is not None:
            err.results = results
            raise err
        return results

    @property
    def outbox(self):
        """The durable store-and-forward queue of this client (configured with `outbox=path`)."""
        return Outbox(self)

    def __repr__(self):
        return f"<realer.Client {'closed' if self._closed else 'open'}>"


@dataclass(frozen=True)
class FlushReport:
    """What `Outbox.flush` did: items stored now (`sent`), already stored (`replayed`), refused for good and
    moved to the dead letters (`rejected`), and still `pending` after it."""

    sent: int
    replayed: int
    rejected: int
    pending: int


@dataclass(frozen=True)
class OutboxStats:
    """The outbox's state. `oldest_age_ms` is None when nothing is pending; `dropped` counts items the
    drop-oldest policy deleted unsent, ever; `dead_dropped` dead letters deleted to make room, ever."""

    pending: int
    dead: int
    bytes: int
    oldest_age_ms: Optional[int]
    dropped: int
    dead_dropped: int = 0


@dataclass(frozen=True)
class DeadLetter:
    """An item Realer refused for good. `item` is the item as sent (a dict), `details` Realer's
    `error.details` (a dict or None)."""

    message_id: str
    item: Optional[dict]
    code: int
    error_type: Optional[str]
    error_message: Optional[str]
    details: Optional[dict]
    failed_at_unix_ms: int


class Outbox:
    """Items kept on disk until Realer has them: `push` stores (synced) and returns at once, `flush` sends
    what is pending. Obtained as `client.outbox`; a client made without `outbox=path` raises `ConfigError`."""

    def __init__(self, client):
        self._client = client

    def push(
        self,
        sensor_id=None,
        command_id=None,
        value=None,
        message_id=None,
        value_received_at=None,
        desired_id=None,
        report_status=None,
        sequence_number=None,
    ):
        """Stores one item (the keywords of `Client.post`) and returns its `message_id`."""
        item, c = _one_c_item(
            sensor_id=sensor_id,
            command_id=command_id,
            value=value,
            message_id=message_id,
            value_received_at=value_received_at,
            desired_id=desired_id,
            report_status=report_status,
            sequence_number=sequence_number,
        )
        buf = ctypes.create_string_buffer(n.REALER_MESSAGE_ID_MAX + 1)
        with self._client._handle_in_use() as h:
            check(n.lib.realer_outbox_push(h, ctypes.byref(c), buf, len(buf)))
        return buf.value.decode("ascii", "replace")

    def push_many(self, items):
        """Stores items (dicts or `FeedItem`s) in one transaction: all of them or none."""
        converted, array = _c_items(items, "push_many", "push")
        with self._client._handle_in_use() as h:
            check(n.lib.realer_outbox_push_many(h, array, len(converted)))

    def flush(self, max_items=0):
        """Sends pending items, oldest first (at most `max_items`, 0 = all), and returns a `FlushReport`. If
        a request fails as a whole, raises `RealerError` with the report so far in `err.report`."""
        max_items = _int(max_items, "max_items", 0, _SIZE_MAX)
        out = n.realer_flush_report()
        with self._client._handle_in_use() as h:
            status, err = self._client._runner.run(
                lambda: _status_and_error(n.lib.realer_outbox_flush(h, max_items, ctypes.byref(out))), h
            )
        report = FlushReport(sent=out.sent, replayed=out.replayed, rejected=out.rejected, pending=out.pending)
        if err is not None:
            err.report = report
            raise err
        return report

    def stats(self):
        """The outbox's state (`OutboxStats`)."""
        out = n.realer_outbox_stats()
        with self._client._handle_in_use() as h:
            check(n.lib.realer_outbox_stats_read(h, ctypes.byref(out)))
        return OutboxStats(
            pending=out.pending,
            dead=out.dead,
            bytes=out.bytes,
            oldest_age_ms=_opt_i64(out.oldest_age_ms),
            dropped=out.dropped,
            dead_dropped=out.dead_dropped,
        )

    def dead_letters(self):
        """Every dead letter, oldest first (a list of `DeadLetter`)."""
        ptr = ctypes.POINTER(n.realer_dead_letters)()
        with self._client._handle_in_use() as h:
            check(n.lib.realer_dead_letters_fetch(h, ctypes.byref(ptr)))
        try:
            out = []
            for i in range(n.lib.realer_dead_letters_len(ptr)):
                d = _at(n.lib.realer_dead_letters_get, n.realer_dead_letter, ptr, i)
                out.append(
                    DeadLetter(
                        message_id=decode(d.message_id) or "",
                        item=parse_details(d.item_json),
                        code=d.code,
                        error_type=decode(d.error_type) or None,
                        error_message=decode(d.error_message) or None,
                        details=parse_details(d.details_json),
                        failed_at_unix_ms=d.failed_at_unix_ms,
                    )
                )
            return out
        finally:
            n.lib.realer_dead_letters_free(ptr)

    def clear_dead_letters(self):
        """Deletes every dead letter; returns how many there were."""
        cleared = ctypes.c_uint64()
        with self._client._handle_in_use() as h:
            check(n.lib.realer_dead_letters_clear(h, ctypes.byref(cleared)))
        return cleared.value
