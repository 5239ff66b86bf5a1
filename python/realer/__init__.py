"""librealer for Python: a client for Realer's HTTPS device API (iot/v1), through the library's C ABI.

    import realer

    with realer.Client.from_env() as client:          # REALER_BASE_URL, REALER_DEVICE_ID, ... (or from_file)
        # The device's actuators, command id -> value (here all at "0"; firmware reads its hardware).
        actuator = {c.id: "0" for c in client.commands() if c.error_type is None}
        for state in client.desired_states():         # desired states, or the catalog's new values
            now = actuator.get(state.command_id)
            if now is None:                           # a command this device has no actuator for
                continue
            if state.action == realer.DesiredAction.STALE:
                client.post_item(state.answer(now, "stale"))
            elif state.value is None:                 # nothing this device can drive to
                client.post_item(state.answer(now, "rejected"))
            elif not realer.values_equal(state.value_type, now, state.value):
                actuator[state.command_id] = state.value   # drive the hardware, then:
                client.post_item(state.answer(state.value, "applied"))
            elif state.desired_id is not None:        # a desired state is answered even when nothing changed
                client.post_item(state.answer(now, "applied"))
        result = client.post(sensor_id=7, value=21.4)
        print(result.outcome, result.feed_data_id, result.message_id)
        for r in client.post_batch([{"sensor_id": 7, "value": "21.5"}, {"sensor_id": 8, "value": "48"}]):
            print(r.index, r.outcome, r.message_id)

`Client(base_url, device_id=..., client_id=..., client_secret=..., ca_file=..., proxy=..., outbox=...)`
configures a client in code (with `outbox=PATH`, `client.outbox.push(...)` keeps readings on disk until
`client.outbox.flush()` sends them); `Client.from_env()` reads the REALER_* variables, `Client.from_file(path)`
the same names as KEY=value lines. Every failure raises `realer.RealerError` (a subclass per status, in
`realer.errors`); network and TLS failures are also `OSError`s. `client.cancel()` from another thread, or
Ctrl-C, ends a blocked call (`realer.CancelledError`).

The library is found through REALER_LIB (a path), else the one inside the installed package (the wheel), else
in the source tree the workspace's target/release or target/debug build (the newer), else librealer.so.0.2 on
the system's library path.
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
