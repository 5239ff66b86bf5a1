# Type information for client.py (PEP 561: the package has py.typed). CI checks this stub against the module
# with mypy's stubtest (tests/packaging/run): a change to client.py's public API must change it too.
import datetime
import decimal
import enum
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Union

from typing_extensions import Self

_Id = Union[int, str]
_Value = Union[str, int, float, decimal.Decimal]
_Timestamp = Union[str, datetime.datetime]
_Logger = Union[logging.Logger, Callable[[LogLevel, str], object]]
_PathLike = Union[str, os.PathLike[str]]

class LogLevel(enum.IntEnum):
    ERROR = ...
    WARN = ...
    INFO = ...
    DEBUG = ...

class _StrEnum(str, enum.Enum):  # type: ignore[misc]  # members are in the subclasses
    def __new__(cls, value: str) -> Self: ...
    def __str__(self) -> str: ...

class DesiredAction(_StrEnum):
    APPLY = "apply"
    STALE = "stale"

class DesiredSource(_StrEnum):
    DESIRED_STATES = "desired_states"
    CATALOG = "catalog"

class Outcome(_StrEnum):
    CREATED = "created"
    IDEMPOTENT = "idempotent"
    REJECTED = "rejected"
    NOT_SENT = "not_sent"

class ReportStatus(_StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"
    STALE = "stale"
    REPORTED = "reported"

@dataclass(frozen=True)
class Command:
    id: str
    value: Optional[str] = None
    value_type: Optional[str] = None
    kind: Optional[str] = None
    pin_port: Optional[str] = None
    error_type: Optional[str] = None
    error_message: Optional[str] = None

@dataclass(frozen=True)
class Sensor:
    id: str
    kind: Optional[str] = None
    qc: Optional[str] = None
    mu: Optional[str] = None
    pin_port: Optional[str] = None
    error_type: Optional[str] = None
    error_message: Optional[str] = None

@dataclass
class FeedItem:
    sensor_id: object = None
    command_id: object = None
    value: object = None
    message_id: Optional[str] = None
    value_received_at: object = None
    desired_id: Optional[str] = None
    report_status: object = None
    sequence_number: Optional[int] = None

@dataclass(frozen=True)
class DesiredState:
    command_id: str
    value: Optional[str]
    value_type: Optional[str]
    desired_id: Optional[str]
    sequence_number: Optional[int]
    expires_at: Optional[str]
    expires_at_unix_ms: Optional[int]
    action: DesiredAction
    def answer(self, value: _Value, report_status: Union[ReportStatus, str] = "applied") -> FeedItem: ...

@dataclass(frozen=True)
class DesiredStates:
    source: DesiredSource
    states: list[DesiredState]
    def __iter__(self) -> Iterator[DesiredState]: ...
    def __len__(self) -> int: ...

@dataclass(frozen=True)
class PostResult:
    outcome: Outcome
    feed_data_id: Optional[int]
    message_id: str
    value_received_at: str
    http_status: int
    code: int
    warnings: Optional[str] = None

@dataclass(frozen=True)
class ItemResult:
    index: int
    outcome: Outcome
    feed_data_id: Optional[int]
    code: int
    message_id: str
    value_received_at: str
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    details: Optional[dict[str, Any]] = None
    warnings: Optional[str] = None
    @property
    def ok(self) -> bool: ...

@dataclass(frozen=True)
class FlushReport:
    sent: int
    replayed: int
    rejected: int
    pending: int

@dataclass(frozen=True)
class OutboxStats:
    pending: int
    dead: int
    bytes: int
    oldest_age_ms: Optional[int]
    dropped: int
    dead_dropped: int = 0

@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    item: Optional[dict[str, Any]]
    code: int
    error_type: Optional[str]
    error_message: Optional[str]
    details: Optional[dict[str, Any]]
    failed_at_unix_ms: int

def version() -> str: ...
def values_equal(value_type: Optional[str], a: _Value, b: _Value) -> bool: ...
def format_timestamp(unix_ms: int = 0) -> str: ...

class Client:
    def __init__(
        self,
        base_url: Optional[str] = None,
        *,
        device_id: Optional[_Id] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        ca_file: Optional[_PathLike] = None,
        ca_pem: Optional[Union[str, bytes]] = None,
        scope: Optional[str] = None,
        connect_timeout_ms: Optional[int] = None,
        request_timeout_ms: Optional[int] = None,
        retry: Optional[tuple[int, int, int]] = None,
        user_agent: Optional[str] = None,
        proxy: Optional[str] = None,
        stall_timeout_ms: Optional[int] = None,
        idle_timeout_ms: Optional[int] = None,
        allow_insecure_loopback: bool = False,
        logger: Optional[_Logger] = None,
        log_level: LogLevel = ...,
        outbox: Optional[_PathLike] = None,
        outbox_max_items: int = 0,
        outbox_max_bytes: int = 0,
        outbox_when_full: Optional[str] = None,
    ) -> None: ...
    @classmethod
    def from_env(cls, **overrides: Any) -> Client: ...
    @classmethod
    def from_file(cls, path: _PathLike, **overrides: Any) -> Client: ...
    def cancel(self) -> None: ...
    def resume(self) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Client: ...
    def __exit__(self, *exc: object) -> bool: ...
    def __del__(self) -> None: ...
    def authenticate(self) -> None: ...
    def commands(self) -> list[Command]: ...
    def command(self, id: _Id) -> Optional[Command]: ...
    def sensors(self) -> list[Sensor]: ...
    def sensor(self, id: _Id) -> Optional[Sensor]: ...
    def desired_states(self) -> DesiredStates: ...
    def post_item(self, item: FeedItem) -> PostResult: ...
    def post(
        self,
        sensor_id: Optional[_Id] = None,
        command_id: Optional[_Id] = None,
        value: Optional[_Value] = None,
        message_id: Optional[str] = None,
        value_received_at: Optional[_Timestamp] = None,
        desired_id: Optional[str] = None,
        report_status: Optional[Union[ReportStatus, str]] = None,
        sequence_number: Optional[int] = None,
    ) -> PostResult: ...
    def post_batch(self, items: Iterable[Union[FeedItem, Mapping[str, Any]]]) -> list[ItemResult]: ...
    @property
    def outbox(self) -> Outbox: ...

class Outbox:
    def __init__(self, client: Client) -> None: ...
    def push(
        self,
        sensor_id: Optional[_Id] = None,
        command_id: Optional[_Id] = None,
        value: Optional[_Value] = None,
        message_id: Optional[str] = None,
        value_received_at: Optional[_Timestamp] = None,
        desired_id: Optional[str] = None,
        report_status: Optional[Union[ReportStatus, str]] = None,
        sequence_number: Optional[int] = None,
    ) -> str: ...
    def push_many(self, items: Iterable[Union[FeedItem, Mapping[str, Any]]]) -> None: ...
    def flush(self, max_items: int = 0) -> FlushReport: ...
    def stats(self) -> OutboxStats: ...
    def dead_letters(self) -> list[DeadLetter]: ...
    def clear_dead_letters(self) -> int: ...
