"""The C side of the binding: finds and loads librealer, mirrors include/realer.h in ctypes, and declares
`argtypes`/`restype` on every exported function so a wrong argument is a Python error, not a crash.
Nothing here knows Realer's API rules; those live in the library."""

import ctypes
import ctypes.util
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_int32,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)

# The ABI this binding mirrors (include/realer.h, REALER_VERSION_MAJOR/MINOR). Pre-1.0 every minor release
# may change it, so a library of another major.minor is refused rather than misread.
ABI_VERSION = (0, 2)

# Constants of realer.h.
REALER_MESSAGE_ID_MAX = 128
REALER_MESSAGE_ID_SIZE = 129
REALER_VALUE_RECEIVED_AT_SIZE = 40
REALER_TIMESTAMP_SIZE = 25
REALER_BATCH_MAX_ITEMS = 100000

REALER_DESIRED_ACTION_APPLY = 1
REALER_DESIRED_ACTION_STALE = 2

REALER_DESIRED_SOURCE_DESIRED_STATES = 1
REALER_DESIRED_SOURCE_CATALOG = 2

REALER_LOG_ERROR = 1
REALER_LOG_WARN = 2
REALER_LOG_INFO = 3
REALER_LOG_DEBUG = 4

REALER_OK = 0
REALER_ERR_INVALID_ARGUMENT = 1
REALER_ERR_CONFIG = 2
REALER_ERR_TLS = 3
REALER_ERR_TLS_CERT_TIME = 4
REALER_ERR_NETWORK = 5
REALER_ERR_TIMEOUT = 6
REALER_ERR_AUTH = 7
REALER_ERR_API = 8
REALER_ERR_PROTOCOL = 9
REALER_ERR_BUFFER_TOO_SMALL = 10
REALER_ERR_INTERNAL = 11
REALER_ERR_OUTBOX_FULL = 12
REALER_ERR_STORAGE = 13
REALER_ERR_CANCELLED = 14

REALER_REPORT_STATUS_NONE = 0
REALER_REPORT_STATUS_APPLIED = 1
REALER_REPORT_STATUS_REJECTED = 2
REALER_REPORT_STATUS_STALE = 3
REALER_REPORT_STATUS_REPORTED = 4

REALER_FEED_OUTCOME_CREATED = 0
REALER_FEED_OUTCOME_IDEMPOTENT = 1
REALER_FEED_OUTCOME_REJECTED = 2
REALER_FEED_OUTCOME_NOT_SENT = 3

REALER_OUTBOX_FULL_REFUSE = 0
REALER_OUTBOX_FULL_DROP_OLDEST = 1

# Integer typedefs of realer.h.
realer_status = c_int32
realer_desired_action = c_int32
realer_desired_source = c_int32
realer_log_level = c_int32
realer_report_status = c_int32
realer_feed_outcome = c_int32
realer_outbox_full_policy = c_int32


# Opaque handles: distinct types, so passing a config where a client is expected is a ctypes.ArgumentError.
class realer_batch_result(Structure):
    pass


class realer_client(Structure):
    pass


class realer_commands(Structure):
    pass


class realer_config(Structure):
    pass


class realer_dead_letters(Structure):
    pass


class realer_desired_states(Structure):
    pass


class realer_sensors(Structure):
    pass


class realer_command(Structure):
    _fields_ = [
        ("id", c_char_p),
        ("value", c_char_p),
        ("value_type", c_char_p),
        ("kind", c_char_p),
        ("pin_port", c_char_p),
        ("error_type", c_char_p),
        ("error_message", c_char_p),
    ]


class realer_desired_state(Structure):
    _fields_ = [
        ("command_id", c_char_p),
        ("value", c_char_p),
        ("value_type", c_char_p),
        ("desired_id", c_char_p),
        ("sequence_number", c_int64),
        ("expires_at", c_char_p),
        ("expires_at_unix_ms", c_int64),
        ("action", realer_desired_action),
    ]


class realer_sensor(Structure):
    _fields_ = [
        ("id", c_char_p),
        ("kind", c_char_p),
        ("qc", c_char_p),
        ("mu", c_char_p),
        ("pin_port", c_char_p),
        ("error_type", c_char_p),
        ("error_message", c_char_p),
    ]


realer_log_callback = CFUNCTYPE(None, c_void_p, realer_log_level, c_char_p)


class realer_error(Structure):
    _fields_ = [
        ("status", realer_status),
        ("http_status", c_int32),
        ("code", c_int32),
        ("type", c_char_p),
        ("message", c_char_p),
        ("request_id", c_char_p),
        ("details_json", c_char_p),
        ("retryable", c_bool),
        ("retry_after_ms", c_int64),
    ]


class realer_feed_item(Structure):
    _fields_ = [
        ("sensor_id", c_char_p),
        ("command_id", c_char_p),
        ("value", c_char_p),
        ("value_received_at", c_char_p),
        ("message_id", c_char_p),
        ("desired_id", c_char_p),
        ("report_status", realer_report_status),
        ("sequence_number", c_int64),
    ]


class realer_feed_result(Structure):
    _fields_ = [
        ("outcome", realer_feed_outcome),
        ("feed_data_id", c_int64),
        ("http_status", c_int32),
        ("code", c_int32),
        ("message_id", c_char * REALER_MESSAGE_ID_SIZE),
        ("value_received_at", c_char * REALER_VALUE_RECEIVED_AT_SIZE),
    ]


class realer_item_result(Structure):
    _fields_ = [
        ("outcome", realer_feed_outcome),
        ("feed_data_id", c_int64),
        ("code", c_int32),
        ("message_id", c_char_p),
        ("value_received_at", c_char_p),
        ("error_type", c_char_p),
        ("error_message", c_char_p),
        ("details_json", c_char_p),
        ("warnings_json", c_char_p),
    ]


class realer_flush_report(Structure):
    _fields_ = [
        ("sent", c_uint64),
        ("replayed", c_uint64),
        ("rejected", c_uint64),
        ("pending", c_uint64),
    ]


class realer_outbox_stats(Structure):
    _fields_ = [
        ("pending", c_uint64),
        ("dead", c_uint64),
        ("bytes", c_uint64),
        ("oldest_age_ms", c_int64),
        ("dropped", c_uint64),
        ("dead_dropped", c_uint64),
    ]


class realer_dead_letter(Structure):
    _fields_ = [
        ("message_id", c_char_p),
        ("item_json", c_char_p),
        ("code", c_int32),
        ("error_type", c_char_p),
        ("error_message", c_char_p),
        ("details_json", c_char_p),
        ("failed_at_unix_ms", c_int64),
    ]


# Every function of realer.h: name -> (restype, argtypes), in the header's order.
PROTOTYPES = {
    "realer_commands_fetch": (realer_status, [POINTER(realer_client), POINTER(POINTER(realer_commands))]),
    "realer_command_fetch": (realer_status, [POINTER(realer_client), c_char_p, POINTER(POINTER(realer_commands))]),
    "realer_sensors_fetch": (realer_status, [POINTER(realer_client), POINTER(POINTER(realer_sensors))]),
    "realer_sensor_fetch": (realer_status, [POINTER(realer_client), c_char_p, POINTER(POINTER(realer_sensors))]),
    "realer_commands_len": (c_size_t, [POINTER(realer_commands)]),
    "realer_commands_get": (realer_status, [POINTER(realer_commands), c_size_t, POINTER(realer_command)]),
    "realer_commands_free": (None, [POINTER(realer_commands)]),
    "realer_sensors_len": (c_size_t, [POINTER(realer_sensors)]),
    "realer_sensors_get": (realer_status, [POINTER(realer_sensors), c_size_t, POINTER(realer_sensor)]),
    "realer_sensors_free": (None, [POINTER(realer_sensors)]),
    "realer_desired_states_fetch": (
        realer_status,
        [POINTER(realer_client), POINTER(POINTER(realer_desired_states))],
    ),
    "realer_desired_states_source": (realer_desired_source, [POINTER(realer_desired_states)]),
    "realer_desired_states_len": (c_size_t, [POINTER(realer_desired_states)]),
    "realer_desired_states_get": (realer_status, [POINTER(realer_desired_states), c_size_t, POINTER(realer_desired_state)]),
    "realer_desired_states_free": (None, [POINTER(realer_desired_states)]),
    "realer_feed_item_init_answer": (
        realer_status,
        [POINTER(realer_feed_item), POINTER(realer_desired_state), c_char_p, realer_report_status],
    ),
    "realer_values_equal": (c_bool, [c_char_p, c_char_p, c_char_p]),
    "realer_client_new": (realer_status, [POINTER(realer_config), POINTER(POINTER(realer_client))]),
    "realer_client_free": (None, [POINTER(realer_client)]),
    "realer_client_authenticate": (realer_status, [POINTER(realer_client)]),
    "realer_client_cancel": (realer_status, [POINTER(realer_client)]),
    "realer_client_resume": (realer_status, [POINTER(realer_client)]),
    "realer_config_new": (POINTER(realer_config), []),
    "realer_config_free": (None, [POINTER(realer_config)]),
    "realer_config_set_base_url": (realer_status, [POINTER(realer_config), c_char_p]),
    "realer_config_allow_insecure_loopback": (realer_status, [POINTER(realer_config), c_int32]),
    "realer_config_set_device_id": (realer_status, [POINTER(realer_config), c_char_p]),
    "realer_config_set_credentials": (realer_status, [POINTER(realer_config), c_char_p, c_char_p]),
    "realer_config_set_scope": (realer_status, [POINTER(realer_config), c_char_p]),
    "realer_config_set_ca_file": (realer_status, [POINTER(realer_config), c_char_p]),
    "realer_config_set_ca_pem": (realer_status, [POINTER(realer_config), POINTER(c_uint8), c_size_t]),
    "realer_config_set_timeouts": (realer_status, [POINTER(realer_config), c_uint32, c_uint32]),
    "realer_config_set_retry": (realer_status, [POINTER(realer_config), c_uint32, c_uint32, c_uint32]),
    "realer_config_set_user_agent": (realer_status, [POINTER(realer_config), c_char_p]),
    "realer_config_set_proxy": (realer_status, [POINTER(realer_config), c_char_p]),
    "realer_config_set_keepalive": (realer_status, [POINTER(realer_config), c_uint32, c_uint32]),
    "realer_config_set_logger": (
        realer_status,
        [POINTER(realer_config), realer_log_callback, c_void_p, realer_log_level],
    ),
    "realer_config_from_env": (realer_status, [POINTER(realer_config)]),
    "realer_config_from_file": (realer_status, [POINTER(realer_config), c_char_p]),
    "realer_status_str": (c_char_p, [realer_status]),
    "realer_last_error": (POINTER(realer_error), []),
    "realer_feed_item_init": (realer_status, [POINTER(realer_feed_item)]),
    "realer_feed_post": (
        realer_status,
        [POINTER(realer_client), POINTER(realer_feed_item), POINTER(realer_feed_result)],
    ),
    "realer_feed_post_batch": (
        realer_status,
        [POINTER(realer_client), POINTER(realer_feed_item), c_size_t, POINTER(POINTER(realer_batch_result))],
    ),
    "realer_last_warnings": (c_char_p, []),
    "realer_batch_result_len": (c_size_t, [POINTER(realer_batch_result)]),
    "realer_batch_result_get": (realer_status, [POINTER(realer_batch_result), c_size_t, POINTER(realer_item_result)]),
    "realer_batch_result_free": (None, [POINTER(realer_batch_result)]),
    "realer_timestamp_format": (realer_status, [c_int64, c_char_p, c_size_t]),
    "realer_config_set_outbox": (realer_status, [POINTER(realer_config), c_char_p, c_uint64, c_uint64]),
    "realer_config_set_outbox_when_full": (realer_status, [POINTER(realer_config), realer_outbox_full_policy]),
    "realer_outbox_push": (realer_status, [POINTER(realer_client), POINTER(realer_feed_item), c_char_p, c_size_t]),
    "realer_outbox_push_many": (realer_status, [POINTER(realer_client), POINTER(realer_feed_item), c_size_t]),
    "realer_outbox_flush": (realer_status, [POINTER(realer_client), c_size_t, POINTER(realer_flush_report)]),
    "realer_outbox_stats_read": (realer_status, [POINTER(realer_client), POINTER(realer_outbox_stats)]),
    "realer_dead_letters_fetch": (realer_status, [POINTER(realer_client), POINTER(POINTER(realer_dead_letters))]),
    "realer_dead_letters_clear": (realer_status, [POINTER(realer_client), POINTER(c_uint64)]),
    "realer_dead_letters_len": (c_size_t, [POINTER(realer_dead_letters)]),
    "realer_dead_letters_get": (realer_status, [POINTER(realer_dead_letters), c_size_t, POINTER(realer_dead_letter)]),
    "realer_dead_letters_free": (None, [POINTER(realer_dead_letters)]),
    "realer_version": (c_char_p, []),
}


def _file_name():
    if sys.platform == "darwin":
        return "librealer.dylib"
    if sys.platform == "win32":
        return "realer.dll"
    return "librealer.so"


def _candidates():
    """Where to look, in order: `REALER_LIB` alone when set; else the library installed inside this package
    (a wheel carries it there); else the workspace's build outputs (newest first) when this is the source
    tree; then the system's library path."""
    override = os.environ.get("REALER_LIB")
    if override:
        return [("REALER_LIB", override)]
    here = os.path.dirname(os.path.abspath(__file__))
    found = []
    bundled = os.path.join(here, _file_name())
    if os.path.isfile(bundled):
        found.append(("inside the package", bundled))
    root = os.path.dirname(os.path.dirname(here))
    built = [os.path.join(root, "target", profile, _file_name()) for profile in ("release", "debug")]
    existing = sorted((p for p in built if os.path.isfile(p)), key=os.path.getmtime, reverse=True)
    found += [("workspace build", p) for p in existing]
    found += [("workspace build (missing)", p) for p in built if p not in existing]
    system = ctypes.util.find_library("realer")
    if system:
        found.append(("ctypes.util.find_library", system))
    # The SONAME carries the minor version before 1.0 (librealer.so.0.2): the ABI this binding was written for.
    found.append(("system library path", "librealer.so.0.2"))
    return found


def _load():
    tried = []
    for origin, path in _candidates():
        if origin.endswith("(missing)"):
            tried.append(f"{path} ({origin})")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append(f"{path} ({origin}: {e})")
    raise ImportError(
        "librealer could not be loaded. Tried:\n  "
        + "\n  ".join(tried)
        + "\nInstall the wheel (pip install realer-*.whl), build it with `cargo build --release --features capi` "
        "in the librealer workspace, or set REALER_LIB to the path of librealer.so."
    )


def _declare(lib, path):
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError(f"{path} does not export {name}: it is not the librealer this binding expects")
        fn.restype = restype
        fn.argtypes = argtypes


lib, LIBRARY_PATH = _load()
_declare(lib, LIBRARY_PATH)

_version = lib.realer_version().decode("ascii", "replace")
try:
    _major_minor = tuple(int(part) for part in _version.split(".")[:2])
except ValueError:
    _major_minor = None
if _major_minor != ABI_VERSION:
    raise ImportError(
        f"{LIBRARY_PATH} is librealer {_version}, but this binding mirrors the ABI of "
        f"{ABI_VERSION[0]}.{ABI_VERSION[1]}.x; use the binding that ships with that library"
    )
