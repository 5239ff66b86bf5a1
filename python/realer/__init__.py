"""librealer for Python: a client for Realer's HTTPS device API (iot/v1), through the library's C ABI.

    import realer

    with realer.Client.from_env() as client:          # REALER_BASE_URL, REALER_DEVICE_ID, ...
        for cmd in client.commands():
            if client.desired_action(cmd) == "apply":
                ...                                   # drive the hardware, then:
                client.post(command_id=cmd.id, value=cmd.value, desired_id=cmd.desired_id,
                            report_status="applied", sequence_number=cmd.sequence_number)
        client.post(sensor_id=7, value=21.4)

The library is found through REALER_LIB (a path), else the workspace's target/release or target/debug
build (the newer), else the system's library path. Every failure raises `realer.RealerError`.
"""

from ._native import LIBRARY_PATH, REALER_BATCH_MAX_ITEMS, REALER_MESSAGE_ID_MAX
from .client import (
    Client,
    Command,
    DeadLetter,
    DesiredAction,
    DesiredSource,
    DesiredState,
    DesiredStates,
    FeedItem,
    FlushReport,
    ItemResult,
    LogLevel,
    Outbox,
    OutboxStats,
    Outcome,
    PostResult,
    ReportStatus,
    Sensor,
    format_timestamp,
    values_equal,
    version,
)
from .errors import (
    ApiError,
    AuthError,
    BufferTooSmallError,
    CancelledError,
    CertificateTimeError,
    ConfigError,
    InternalError,
    InvalidArgumentError,
    NetworkError,
    OutboxFullError,
    ProtocolError,
    RealerError,
    RealerTimeoutError,
    Status,
    StorageError,
    TLSError,
)

__all__ = [
    "LIBRARY_PATH",
    "REALER_BATCH_MAX_ITEMS",
    "REALER_MESSAGE_ID_MAX",
    "Client",
    "Command",
    "DeadLetter",
    "DesiredAction",
    "DesiredSource",
    "DesiredState",
    "DesiredStates",
    "FeedItem",
    "FlushReport",
    "ItemResult",
    "LogLevel",
    "Outbox",
    "OutboxStats",
    "Outcome",
    "PostResult",
    "ReportStatus",
    "Sensor",
    "format_timestamp",
    "values_equal",
    "version",
    "ApiError",
    "AuthError",
    "BufferTooSmallError",
    "CancelledError",
    "CertificateTimeError",
    "ConfigError",
    "InternalError",
    "InvalidArgumentError",
    "NetworkError",
    "OutboxFullError",
    "ProtocolError",
    "RealerError",
    "RealerTimeoutError",
    "Status",
    "StorageError",
    "TLSError",
]
