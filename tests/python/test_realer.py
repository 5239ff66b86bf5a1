"""The Python binding against a running realer-sim (built-in fixture, served as a newer Realer service: v2,
with /desired-states), as `cargo test --test python` runs it.

The sim's coordinates come from REALER_BASE_URL, REALER_CA_FILE, REALER_DEVICE_ID, REALER_CLIENT_ID,
REALER_CLIENT_SECRET and REALER_OTHER_DEVICE_ID; the CA is always passed explicitly, never through
SSL_CERT_FILE or REQUESTS_CA_BUNDLE. The catalog test answers the fixture's desired states, so the suite
expects a fresh sim."""

import base64
import contextlib
import datetime
import gc
import http.server
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import uuid
from unittest import mock

import realer

# Built-in fixture facts (tests/realer-sim/src/builtin.rs).
TEMPERATURE_SENSOR_ID = "7"
HUMIDITY_SENSOR_ID = "8"
PENDING_COMMAND_ID = "1"
PENDING_DESIRED_ID = "des_0123456789abcdefghijklmnop"
PENDING_SEQUENCE_NUMBER = 3
EXPIRED_COMMAND_ID = "2"
UNREPRESENTABLE_COMMAND_ID = "3"
PLAIN_COMMAND_ID = "4"
UNKNOWN_SENSOR_ID = "99"

ENV = ("REALER_BASE_URL", "REALER_CA_FILE", "REALER_DEVICE_ID", "REALER_CLIENT_ID", "REALER_CLIENT_SECRET")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def message_id():
    return f"py-{uuid.uuid4().hex}"


def closed_port():
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_client(**overrides):
    """A client for a server that is not there: any I/O fails with a network error."""
    options = dict(
        base_url=f"https://127.0.0.1:{closed_port()}",
        device_id="12345",
        client_id="cdv_offline",
        client_secret="offline-secret",
        retry=(1, 1, 1),
        connect_timeout_ms=2000,
        request_timeout_ms=2000,
    )
    options.update(overrides)
    return realer.Client(**options)


class SilentServer:
    """Accepts TCP connections on loopback and never answers (not even the TLS handshake)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class ScriptedRealer:
    """A plain-HTTP Realer on loopback (the client allows it with allow_insecure_loopback) playing the older
    service (no /desired-states: 404) for device 12345, whose answers a test can script per path: a queue of
    (status, body) or (status, body, drip_ms) answers, taken before the default one. It counts the requests
    per path and keeps the feed items it stored."""

    CATALOG = {
        "code": 2000,
        "commands": [
            {"id": 1, "value": "1.0", "value_type": "NumericRange", "kind": "relay", "pin_port": "6"},
            {"id": 4, "value": "20.5", "value_type": "NumericRange", "kind": "thermostat", "pin_port": "8"},
        ],
    }

    def __init__(self):
        self.lock = threading.Lock()
        self.script = {}
        self.requests = {}
        self.stored = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.answer()

            def do_POST(self):
                self.answer()

            def answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                with server.lock:
                    server.requests[path] = server.requests.get(path, 0) + 1
                    queued = server.script.get(path)
                    scripted = queued.pop(0) if queued else None
                status, text, drip_ms = scripted + (0,) * (3 - len(scripted)) if scripted else server.default(path, body)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    if drip_ms:
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(drip_ms / 1000)
                    else:
                        self.wfile.write(data)
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def default(self, path, body):
        device = "/iot/v1/devices/12345"
        if path == "/oauth/token":
            token = {"access_token": uuid.uuid4().hex, "expires_in": 3600, "renew_after": 3000,
                     "scope": "iot:catalog:read iot:feed-data:write"}
            return 200, json.dumps(token), 0
        if path == f"{device}/commands":
            return 200, json.dumps(self.CATALOG), 0
        if path == f"{device}/feed-data":
            item = json.loads(body)
            with self.lock:
                self.stored.append(item)
                n = len(self.stored)
            return 201, json.dumps({"code": 2000, "status": "created", "feed_data_id": n,
                                    "message_id": item["message_id"]}), 0
        return 404, json.dumps({"code": 4004, "error": {"type": "not_found", "message": f"no {path}"}}), 0

    def queue(self, path, *answers):
        with self.lock:
            self.script.setdefault(path, []).extend(answers)

    def count(self, path):
        with self.lock:
            return self.requests.get(path, 0)

    def client(self, **overrides):
        options = dict(
            base_url=self.url,
            allow_insecure_loopback=True,
            device_id="12345",
            client_id="cdv_scripted",
            client_secret="scripted-secret",
            retry=(5, 10, 100),
            request_timeout_ms=10000,
        )
        options.update(overrides)
        return realer.Client(**options)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


DEVICE = "/iot/v1/devices/12345"
UNAUTHORIZED = (401, '{"code":4001,"error":{"type":"invalid_token","message":"the token expired"}}')
UNAVAILABLE = (503, '{"code":5003,"error":{"type":"service_unavailable","message":"busy"}}')


class AsDocumented(unittest.TestCase):
    """Realer's rules as a second reading of its pages states them, through the binding, against a scripted
    older service."""

    def setUp(self):
        self.server = ScriptedRealer()
        self.addCleanup(self.server.close)

    def client(self, **overrides):
        client = self.server.client(**overrides)
        self.addCleanup(client.close)
        return client

    def test_a_local_change_is_never_undone_and_the_catalog_is_read_once_a_pass(self):
        client = self.client()
        for n in range(3):
            client.commands()
            wanted = client.desired_states()
            self.assertEqual(wanted.source, "catalog")
            if n == 0:
                self.assertEqual([(s.command_id, s.value) for s in wanted], [("1", "1.0"), ("4", "20.5")])
                for s in wanted:
                    client.post_item(s.answer(s.value, "applied"))
                client.post(command_id="1", value="0")  # a local change, by hand
            else:
                self.assertEqual(list(wanted), [], "already acted on: the local change stays")
        self.assertEqual(self.server.count(f"{DEVICE}/commands"), 3, "one catalog read per pass")
        self.assertEqual(self.server.count(f"{DEVICE}/desired-states"), 1)
        # A user changes the value in Realer: new, handed over once.
        catalog = json.loads(json.dumps(ScriptedRealer.CATALOG))
        catalog["commands"][0]["value"] = "0.5"
        self.server.queue(f"{DEVICE}/commands", (200, json.dumps(catalog)))
        self.assertEqual([(s.command_id, s.value) for s in client.desired_states()], [("1", "0.5")])

    def test_the_examples_of_the_docstring_and_the_readme_run_as_written(self):
        """The package docstring's example and the README's Python example, as a newcomer copies them: each
        drives the two catalog values (new to a new client) and answers them, then posts a reading and a batch.
        `from_env()` is pointed at this scripted service (plain HTTP, which only a client configured in code may
        use); everything else is the binding."""
        readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
        with open(readme, encoding="utf-8") as f:
            blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
        examples = [("realer.__doc__", textwrap.dedent(re.search(r"\n((?:    .*\n|\n)+)", realer.__doc__).group(1)))]
        examples += [("README.md", b) for b in blocks if "realer.Client.from_env()" in b]
        self.assertEqual(len(examples), 2, "an example in each")
        from_env = classmethod(lambda cls, **overrides: self.server.client(**overrides))
        for where, code in examples:
            with self.subTest(where):
                before = len(self.server.stored)
                printed = io.StringIO()
                with mock.patch.object(realer.Client, "from_env", from_env), contextlib.redirect_stdout(printed):
                    exec(compile(code, where, "exec"), {})
                stored = self.server.stored[before:]
                answers = [(i["command_id"], i["value"]) for i in stored if "command_id" in i]
                self.assertEqual(answers, [(1, "1.0"), (4, "20.5")], stored)
                self.assertEqual([i.get("sensor_id") for i in stored if "sensor_id" in i], [7, 7, 8], stored)
                self.assertRegex(printed.getvalue(), r"^created \d+ rl-", printed.getvalue())

    def test_405_from_desired_states_is_not_offered_here(self):
        self.server.queue(f"{DEVICE}/desired-states", (405, '{"code":4005,"error":{"type":"x","message":"no"}}'))
        wanted = self.client().desired_states()
        self.assertEqual((wanted.source, len(wanted)), ("catalog", 2))

    def test_a_401_on_a_token_used_for_another_answer_renews_again(self):
        client = self.client()
        client.authenticate()
        self.server.queue(f"{DEVICE}/feed-data", UNAUTHORIZED, UNAVAILABLE, UNAVAILABLE, UNAUTHORIZED)
        result = client.post(sensor_id=7, value="1", message_id="py-expired-twice")
        self.assertEqual(result.outcome, "created")
        self.assertEqual(self.server.count("/oauth/token"), 3)
        self.assertEqual([i["message_id"] for i in self.server.stored], ["py-expired-twice"])
        # A fresh token refused on its first use ends the call.
        self.server.queue(f"{DEVICE}/feed-data", UNAUTHORIZED, UNAUTHORIZED)
        with self.assertRaises(realer.AuthError) as cm:
            client.post(sensor_id=7, value="1", message_id="py-refused-fresh")
        self.assertEqual((cm.exception.outcome, cm.exception.message_id), ("not_sent", "py-refused-fresh"))
        self.assertEqual(self.server.count("/oauth/token"), 4)

    def test_an_answer_that_is_not_the_list_is_a_protocol_error(self):
        client = self.client()
        for body, says in [
            ('[{"id":1}]', 'the commands answer is an array, not a JSON object with a "commands" array'),
            ('"commands"', 'the commands answer is a string, not a JSON object with a "commands" array'),
            ("[" * 100_000 + "]" * 100_000, "the commands answer is an array"),
        ]:
            self.server.queue(f"{DEVICE}/commands", (200, body))
            with self.assertRaises(realer.ProtocolError) as cm:
                client.commands()
            self.assertTrue(cm.exception.message.startswith(says), cm.exception.message)
        self.server.queue(f"{DEVICE}/commands", (200, '{"code":2000,"commands":[]}'))
        self.assertEqual(client.commands(), [])

    def test_a_dripping_token_endpoint_gets_about_one_request_per_timeout_window(self):
        token = json.dumps({"access_token": "t" * 40, "expires_in": 3600, "renew_after": 3000})
        self.server.queue("/oauth/token", *[(200, token, 30)] * 50)  # ~2.4 s an answer
        client = self.client(request_timeout_ms=1500, retry=(3, 10, 100))
        started = time.monotonic()
        statuses = []

        def calls(i):
            time.sleep(0.03 * i)
            while time.monotonic() - started < 3.0:
                try:
                    client.post(sensor_id=7, value="1")
                    statuses.append("ok")
                except realer.RealerTimeoutError:
                    statuses.append("timeout")

        threads = [threading.Thread(target=calls, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        windows = int(elapsed / 1.5) + (elapsed % 1.5 > 0)
        self.assertTrue(statuses and all(s == "timeout" for s in statuses), statuses)
        self.assertLessEqual(self.server.count("/oauth/token"), windows, f"{elapsed:.1f} s")


class Cancel(unittest.TestCase):
    """Client.cancel() and Ctrl-C end a call blocked on a silent server at once (the request timeout is 30 s)."""

    def setUp(self):
        self.server = SilentServer()
        self.addCleanup(self.server.close)
        self.client = realer.Client(
            f"https://127.0.0.1:{self.server.port}",
            device_id="12345",
            client_id="cdv_silent",
            client_secret="silent-secret",
            retry=(1, 1, 1),
            request_timeout_ms=30_000,
        )
        self.addCleanup(self.client.close)

    def test_cancel_from_another_thread(self):
        timer = threading.Timer(0.3, self.client.cancel)
        timer.start()
        started = time.monotonic()
        with self.assertRaises(realer.CancelledError) as cm:
            self.client.post(sensor_id=7, value="1", message_id="py-cancelled")
        took = time.monotonic() - started
        timer.join()
        self.assertLess(took, 2.0)
        self.assertEqual((cm.exception.outcome, cm.exception.message_id), ("not_sent", "py-cancelled"))
        self.assertTrue(cm.exception.retryable)
        # Refused at once until resume.
        with self.assertRaises(realer.CancelledError):
            self.client.authenticate()
        self.client.resume()

    def test_ctrl_c_cancels_the_call_and_keeps_the_client_usable(self):
        timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        started = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            self.client.authenticate()
        took = time.monotonic() - started
        timer.join()
        self.assertLess(took, 2.0)
        # Resumed: a call from another thread runs (and runs out its own, short, timeout against the silent server).
        short = realer.Client(
            f"https://127.0.0.1:{self.server.port}",
            device_id="12345",
            client_id="cdv_silent",
            client_secret="silent-secret",
            retry=(1, 1, 1),
            request_timeout_ms=300,
        )
        self.addCleanup(short.close)
        errors = []
        t = threading.Thread(target=lambda: errors.append(self._fails(self.client.cancel) or self._fails(short.authenticate)))
        t.start()
        t.join()
        self.assertIsInstance(errors[0], realer.RealerTimeoutError)
        self.client.resume()

    @staticmethod
    def _fails(call):
        try:
            call()
        except realer.RealerError as e:
            return e
        return None


class WithoutServer(unittest.TestCase):
    def test_version(self):
        self.assertRegex(realer.version(), r"^\d+\.\d+\.\d+")

    def test_library_comes_from_realer_lib(self):
        if os.environ.get("REALER_LIB"):
            self.assertEqual(realer.LIBRARY_PATH, os.environ["REALER_LIB"])
        self.assertTrue(realer.LIBRARY_PATH)

    def test_library_lookup(self):
        def import_realer(**env):
            full = {k: v for k, v in os.environ.items() if k != "REALER_LIB"}
            full.update(env)
            code = "import realer; print(realer.LIBRARY_PATH)"
            return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=60)

        missing = import_realer(REALER_LIB="/nonexistent/librealer.so")
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn("ImportError", missing.stderr)
        self.assertIn("/nonexistent/librealer.so", missing.stderr)
        self.assertIn("REALER_LIB", missing.stderr)
        # Without REALER_LIB: the workspace's build, the release or the debug one, whichever is newer.
        found = import_realer()
        self.assertEqual(found.returncode, 0, found.stderr)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(realer.__file__))))
        profiles = [os.path.join(root, "target", p, "librealer.so") for p in ("release", "debug")]
        self.assertIn(found.stdout.strip(), profiles)

    def test_format_timestamp(self):
        self.assertEqual(realer.format_timestamp(1), "1970-01-01T00:00:00.001Z")
        self.assertEqual(realer.format_timestamp(1_777_025_700_000), "2026-04-24T10:15:00.000Z")
        now = realer.format_timestamp()
        self.assertRegex(now, TIMESTAMP)
        parsed = datetime.datetime.strptime(now, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        self.assertLess(abs(parsed.timestamp() - time.time()), 60)
        with self.assertRaises(realer.RealerError) as cm:
            realer.format_timestamp(-5)
        self.assertEqual(cm.exception.status, realer.Status.INVALID_ARGUMENT)
        self.assertEqual(cm.exception.status_name, "REALER_ERR_INVALID_ARGUMENT")
        with self.assertRaises(TypeError):
            realer.format_timestamp("now")
        with self.assertRaises(ValueError):
            realer.format_timestamp(2**70)

    def test_configuration_refused(self):
        with self.assertRaises(realer.ConfigError) as cm:
            offline_client(base_url="http://example.com")
        self.assertEqual(cm.exception.status, realer.Status.CONFIG)
        self.assertIn("http", cm.exception.message)
        with self.assertRaises(realer.ConfigError):
            offline_client(ca_file="/nonexistent/ca.pem")
        with self.assertRaises(realer.ConfigError):
            offline_client(request_timeout_ms=0)
        with self.assertRaises(realer.ConfigError):
            realer.Client(base_url="https://127.0.0.1:1")  # no device id, no credentials
        with self.assertRaises(ValueError):
            offline_client(connect_timeout_ms=2**32)
        with self.assertRaises(TypeError):
            offline_client(retry=3)
        with self.assertRaises(ValueError):
            offline_client(client_secret=None)
        with self.assertRaises(TypeError):
            realer.Client.from_env(no_such_option=1)

    def test_arguments_refused_before_c(self):
        with offline_client() as client:
            with self.assertRaises(ValueError):
                client.post(sensor_id=7, value="21\x004")
            with self.assertRaises(TypeError):
                client.post(sensor_id=7, value=b"21.4")
            with self.assertRaises(TypeError):
                client.post(sensor_id=True, value="1")
            with self.assertRaises(TypeError):
                client.post(sensor_id=7.5, value="1")
            with self.assertRaises(TypeError):
                client.post(sensor_id=7)
            with self.assertRaises(ValueError):
                client.post(command_id=1, value="1", report_status="done")
            with self.assertRaises(ValueError):
                client.post(sensor_id=7, value="1", sequence_number=-1)
            with self.assertRaises(ValueError):
                client.post(sensor_id=7, value="1", value_received_at=datetime.datetime(2026, 4, 24))
            with self.assertRaises(TypeError):
                client.post_batch([{"sensor": 7, "value": "1"}])
            with self.assertRaises(TypeError):
                client.post_batch({"sensor_id": 7, "value": "1"})
            with self.assertRaises(TypeError):
                client.post_item({"sensor_id": 7, "value": "1"})

    def test_invalid_item_fails_before_any_io(self):
        # The server is not there: had anything been sent, this would be a network error.
        with offline_client() as client:
            with self.assertRaises(realer.RealerError) as cm:
                client.post(sensor_id=7, command_id=1, value="1")
            err = cm.exception
            self.assertIsInstance(err, realer.InvalidArgumentError)
            self.assertEqual(err.status, realer.Status.INVALID_ARGUMENT)
            self.assertEqual(err.http_status, 0)
            self.assertEqual(err.outcome, "not_sent")
            self.assertIn("sensor_id", err.message)
            with self.assertRaises(realer.InvalidArgumentError) as cm:
                client.post_batch([{"sensor_id": 7, "value": "1"}, {"command_id": 1, "value": "1", "message_id": "a b"}])
            self.assertEqual(len(cm.exception.results), 2)
            self.assertTrue(all(r.outcome == "not_sent" for r in cm.exception.results))
            with self.assertRaises(realer.InvalidArgumentError):
                client.post_batch([])
            # The same items, valid, do reach for the network.
            with self.assertRaises(realer.NetworkError) as cm:
                client.post(sensor_id=7, value="1")
            self.assertTrue(cm.exception.retryable)
            self.assertEqual(cm.exception.outcome, "not_sent")
            self.assertTrue(cm.exception.message_id)

    def test_dropped_without_close(self):
        client = offline_client(logger=lambda level, message: None)
        del client
        gc.collect()

    def test_outbox_offline(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "outbox.sqlite")
            with offline_client(outbox=path, outbox_max_items=2) as client:
                outbox = client.outbox
                self.assertEqual(outbox.stats(), realer.OutboxStats(0, 0, 0, None, 0))
                mid = outbox.push(sensor_id=7, value=1.5)
                self.assertTrue(mid)
                self.assertEqual(outbox.push(sensor_id=7, value="2", message_id="py-fixed-id"), "py-fixed-id")
                with self.assertRaises(realer.OutboxFullError) as cm:
                    outbox.push(sensor_id=7, value="3")
                self.assertEqual(cm.exception.status, realer.Status.OUTBOX_FULL)
                with self.assertRaises(realer.InvalidArgumentError):
                    outbox.push(sensor_id=7, command_id=1, value="3")
                stats = outbox.stats()
                self.assertEqual((stats.pending, stats.dead, stats.dropped), (2, 0, 0))
                self.assertGreater(stats.bytes, 0)
                self.assertGreaterEqual(stats.oldest_age_ms, 0)
                # Nobody to send to: the flush fails, the items stay.
                with self.assertRaises(realer.NetworkError) as cm:
                    outbox.flush()
                self.assertEqual(cm.exception.report.pending, 2)
                self.assertEqual(outbox.stats().pending, 2)
            # The items survive the client.
            with offline_client(outbox=path, outbox_max_items=2, outbox_when_full="drop_oldest") as client:
                self.assertEqual(client.outbox.stats().pending, 2)
                client.outbox.push_many([{"sensor_id": 7, "value": "4"}, realer.FeedItem(sensor_id=8, value="5")])
                stats = client.outbox.stats()
                self.assertEqual((stats.pending, stats.dropped), (2, 2))
        with offline_client() as client:
            with self.assertRaises(realer.ConfigError):
                client.outbox.push(sensor_id=7, value="1")
        with self.assertRaises(ValueError):
            offline_client(outbox="x.sqlite", outbox_when_full="sometimes")

    def test_close(self):
        client = offline_client()
        self.assertFalse(client.closed)
        client.close()
        client.close()
        self.assertTrue(client.closed)
        with self.assertRaises(ValueError):
            client.sensors()
        with self.assertRaises(ValueError):
            with client:
                pass


class AgainstSim(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [name for name in ENV if not os.environ.get(name)]
        if missing:
            raise unittest.SkipTest(f"no realer-sim: set {', '.join(missing)} (cargo test --test python does)")
        cls.base_url = os.environ["REALER_BASE_URL"]
        cls.ca_file = os.environ["REALER_CA_FILE"]
        cls.device_id = os.environ["REALER_DEVICE_ID"]
        cls.client_id = os.environ["REALER_CLIENT_ID"]
        cls.client_secret = os.environ["REALER_CLIENT_SECRET"]
        cls.other_device_id = os.environ.get("REALER_OTHER_DEVICE_ID", "12346")

    def client(self, **overrides):
        options = dict(
            base_url=self.base_url,
            ca_file=self.ca_file,
            device_id=self.device_id,
            client_id=self.client_id,
            client_secret=self.client_secret,
            retry=(3, 20, 200),
            connect_timeout_ms=5000,
            request_timeout_ms=10000,
        )
        options.update(overrides)
        client = realer.Client(**options)
        self.addCleanup(client.close)
        return client

    def test_a_scope_without_desired_state_read_is_warned_about_with_the_fix(self):
        lines = []
        client = self.client(
            scope="iot:catalog:read iot:feed-data:write", logger=lambda level, message: lines.append((level, message))
        )
        self.assertEqual(client.desired_states().source, "catalog")
        warned = [m for level, m in lines if level == realer.LogLevel.WARN]
        self.assertEqual(len(warned), 1, lines)
        self.assertIn("lacks iot:desired-state:read", warned[0])
        self.assertIn("Fix: leave the scope unset", warned[0])

    def test_caller_timestamps_go_out_in_realers_form(self):
        client = self.client()
        at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(minutes=1)
        plain = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        shifted = (at + datetime.timedelta(hours=2)).strftime("%Y-%m-%dt%H:%M:%S.25+02:00")
        for given, sent in [
            (plain.lower(), plain),
            (plain[:-1] + "-00:00", plain),
            (shifted, at.strftime("%Y-%m-%dT%H:%M:%S.250Z")),
        ]:
            result = client.post(sensor_id=TEMPERATURE_SENSOR_ID, value="1", value_received_at=given)
            self.assertEqual(result.value_received_at, sent, given)
        with self.assertRaises(realer.InvalidArgumentError) as cm:
            client.post(sensor_id=TEMPERATURE_SENSOR_ID, value="1", value_received_at=plain[:-1] + "+0200")
        self.assertIn("value_received_at", cm.exception.message)

    def test_through_a_connect_proxy(self):
        """A CONNECT proxy written here: the client tunnels through it (it sees only CONNECT lines); a proxy
        that wants credentials raises NetworkError naming it, never with its password; REALER_PROXY is read
        by from_env only."""
        seen = []

        def serve(listener, answer):
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(1024)
                    if not chunk:
                        break
                    head += chunk
                line = head.split(b"\r\n", 1)[0].decode()
                seen.append(line)
                if answer:
                    conn.sendall(answer)
                    conn.close()
                    continue
                host, port = line.split()[1].rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)))
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

                def pipe(a, b):
                    try:
                        while True:
                            data = a.recv(65536)
                            if not data:
                                break
                            b.sendall(data)
                    except OSError:
                        pass
                    finally:
                        for s in (a, b):
                            try:
                                s.shutdown(socket.SHUT_RDWR)
                            except OSError:
                                pass

                threading.Thread(target=pipe, args=(conn, upstream), daemon=True).start()
                threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()

        def start(answer=None):
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            self.addCleanup(listener.close)
            threading.Thread(target=serve, args=(listener, answer), daemon=True).start()
            return "http://127.0.0.1:%d" % listener.getsockname()[1]

        tunnel = start()
        with self.client(proxy=tunnel, stall_timeout_ms=2000, idle_timeout_ms=1000) as client:
            client.authenticate()
            self.assertEqual(client.post(sensor_id=TEMPERATURE_SENSOR_ID, value="20.5").outcome, "created")
        self.assertTrue(seen and all(line.startswith("CONNECT 127.0.0.1:") for line in seen), seen)
        refusing = start(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
        lines = []
        secret_url = refusing.replace("http://", "http://bob:py-pr0xy-secret@")
        with self.client(proxy=secret_url, logger=lambda level, m: lines.append(m), log_level=realer.LogLevel.DEBUG) as client:
            with self.assertRaises(realer.NetworkError) as cm:
                client.post(sensor_id=TEMPERATURE_SENSOR_ID, value="20.5")
        err = cm.exception
        self.assertIn(refusing, err.message)
        self.assertIn("407", err.message)
        self.assertFalse(err.retryable)
        self.assertEqual((err.http_status, err.outcome), (0, "not_sent"))
        for text in [err.message] + lines:
            self.assertNotIn("py-pr0xy-secret", text)
        with self.assertRaises(realer.ConfigError):
            self.client(proxy="https://127.0.0.1:3128")
        with self.assertRaises(realer.ConfigError):
            self.client(stall_timeout_ms=3_600_001)
        os.environ["REALER_PROXY"] = refusing
        try:
            with realer.Client.from_env() as client:
                with self.assertRaises(realer.NetworkError):
                    client.authenticate()
        finally:
            del os.environ["REALER_PROXY"]

    def test_from_env(self):
        with realer.Client.from_env() as client:
            client.authenticate()
            self.assertEqual([s.id for s in client.sensors()], [TEMPERATURE_SENSOR_ID, HUMIDITY_SENSOR_ID])
        with realer.Client.from_env(client_secret="not-the-secret") as client:
            with self.assertRaises(realer.AuthError):
                client.authenticate()

    def test_from_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "realer.conf")
            with open(path, "w", encoding="utf-8") as f:
                for key in ENV:
                    f.write(f"{key}={os.environ[key]}\n")
            os.chmod(path, 0o644)
            with self.assertRaises(realer.ConfigError) as cm:
                realer.Client.from_file(path)
            self.assertIn("chmod 600", cm.exception.message)
            self.assertNotIn(os.environ["REALER_CLIENT_SECRET"], cm.exception.message)
            os.chmod(path, 0o600)
            with realer.Client.from_file(path) as client:
                client.authenticate()
            with realer.Client.from_file(path, client_id=os.environ["REALER_CLIENT_ID"], client_secret="not-the-secret") as client:
                with self.assertRaises(realer.AuthError):
                    client.authenticate()

    def test_explicit_construction(self):
        with open(self.ca_file, encoding="ascii") as f:
            pem = f.read()
        client = self.client(ca_file=None, ca_pem=pem, device_id=int(self.device_id), user_agent="realer-py-test/1")
        client.authenticate()
        self.assertEqual(len(client.sensors()), 2)
        # Without the sim's CA (the bundled Mozilla roots): the handshake fails. The library never reads
        # SSL_CERT_FILE and the like, so this holds whatever the environment says.
        with self.assertRaises(realer.TLSError) as cm:
            self.client(ca_file=None).authenticate()
        self.assertEqual(cm.exception.status, realer.Status.TLS)

    def test_context_manager(self):
        with self.client() as client:
            self.assertIsInstance(client, realer.Client)
            self.assertEqual(len(client.commands()), 4)
        self.assertTrue(client.closed)
        with self.assertRaises(ValueError):
            client.commands()

    def test_catalog_and_desired_states(self):
        client = self.client()
        commands = {c.id: c for c in client.commands()}
        self.assertEqual(
            sorted(commands),
            sorted([PENDING_COMMAND_ID, EXPIRED_COMMAND_ID, UNREPRESENTABLE_COMMAND_ID, PLAIN_COMMAND_ID]),
        )
        for c in commands.values():
            self.assertIsInstance(c, realer.Command)

        # A newer service's catalog shows confirmed values and no desired state.
        pending = commands[PENDING_COMMAND_ID]
        self.assertEqual((pending.value, pending.kind, pending.pin_port), ("0.0", "relay", "6"))
        self.assertFalse(hasattr(pending, "desired_id"))
        self.assertIsNone(pending.error_type)

        unrepresentable = commands[UNREPRESENTABLE_COMMAND_ID]
        self.assertEqual(unrepresentable.error_type, "unsupported_value_type")
        self.assertIn("ColorWheel", unrepresentable.error_message)
        self.assertIsNone(unrepresentable.value)
        self.assertEqual(commands[PLAIN_COMMAND_ID].value, "20.5")

        wanted = client.desired_states()
        self.assertIsInstance(wanted, realer.DesiredStates)
        self.assertEqual(wanted.source, "desired_states")
        self.assertIs(wanted.source, realer.DesiredSource.DESIRED_STATES)
        self.assertEqual(len(wanted), 2)
        states = {s.desired_id: s for s in wanted}
        state = states[PENDING_DESIRED_ID]
        self.assertIsInstance(state, realer.DesiredState)
        self.assertEqual(
            (state.command_id, state.value, state.sequence_number, state.action),
            (PENDING_COMMAND_ID, "1.0", PENDING_SEQUENCE_NUMBER, "apply"),
        )
        self.assertIs(state.action, realer.DesiredAction.APPLY)
        self.assertRegex(state.expires_at, r"^\d{4}-\d\d-\d\dT")
        self.assertGreater(state.expires_at_unix_ms, time.time() * 1000)
        (expired,) = [s for s in wanted if s.action == "stale"]
        self.assertEqual(expired.command_id, EXPIRED_COMMAND_ID)
        self.assertLess(expired.expires_at_unix_ms, time.time() * 1000)

        # The library builds the answer: desired_id, status, the sequence echoed, the physical value.
        item = state.answer("1.0")
        self.assertIsInstance(item, realer.FeedItem)
        self.assertEqual(
            (item.command_id, item.value, item.desired_id, item.report_status, item.sequence_number),
            (PENDING_COMMAND_ID, "1.0", PENDING_DESIRED_ID, "applied", PENDING_SEQUENCE_NUMBER),
        )
        with self.assertRaises(realer.InvalidArgumentError):
            state.answer("1.0", "reported")
        with self.assertRaises(ValueError):
            state.answer("1.0", "done")
        self.assertEqual(client.post_item(item).outcome, "created")
        stale = client.post_item(expired.answer("0.0", realer.ReportStatus.STALE))
        self.assertEqual(stale.outcome, "created")
        # Answered: nothing pending, and the applied value is the confirmed one.
        self.assertEqual(len(client.desired_states()), 0)
        self.assertEqual(client.command(PENDING_COMMAND_ID).value, "1.0")

        # Catalog values compare by type.
        self.assertTrue(realer.values_equal("NumericRange", "0", "0.0"))
        self.assertFalse(realer.values_equal("Boolean", "on", "On"))
        self.assertFalse(realer.values_equal(None, "0", "0.0"))

    def test_single_item_lookups(self):
        client = self.client()
        sensor = client.sensor(int(TEMPERATURE_SENSOR_ID))
        self.assertEqual(
            (sensor.id, sensor.kind, sensor.qc, sensor.mu, sensor.pin_port),
            (TEMPERATURE_SENSOR_ID, "thermistor", "celsius_temperature", "degree_celsius:0", "5"),
        )
        self.assertIsNone(sensor.error_type)
        self.assertEqual(client.command(PLAIN_COMMAND_ID).value, "20.5")
        with self.assertRaises(realer.ApiError) as cm:
            client.sensor(UNKNOWN_SENSOR_ID)
        self.assertEqual((cm.exception.code, cm.exception.http_status), (4004, 404))
        self.assertEqual(cm.exception.type, "not_found")
        self.assertFalse(cm.exception.retryable)

    def test_post_created_then_idempotent(self):
        client = self.client()
        mid = message_id()
        first = client.post(sensor_id=int(TEMPERATURE_SENSOR_ID), value=21.4, message_id=mid)
        self.assertIsInstance(first, realer.PostResult)
        self.assertEqual(first.outcome, "created")
        self.assertIs(first.outcome, realer.Outcome.CREATED)
        self.assertIsInstance(first.feed_data_id, int)
        self.assertEqual((first.message_id, first.http_status, first.code), (mid, 201, 2000))
        self.assertRegex(first.value_received_at, r"^\d{4}-\d\d-\d\dT")
        # A retry of the same physical event: same message_id, same payload (value_received_at included).
        again = client.post(
            sensor_id=TEMPERATURE_SENSOR_ID, value="21.4", message_id=mid, value_received_at=first.value_received_at
        )
        self.assertEqual(again.outcome, "idempotent")
        self.assertEqual(again.feed_data_id, first.feed_data_id)
        self.assertEqual(again.message_id, mid)

        # Without a message_id the library makes one, and reports it.
        generated = client.post(sensor_id=HUMIDITY_SENSOR_ID, value=55)
        self.assertEqual(generated.outcome, "created")
        self.assertTrue(0 < len(generated.message_id) <= realer.REALER_MESSAGE_ID_MAX)
        # A datetime is sent as RFC 3339 UTC.
        at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
        dated = client.post(sensor_id=TEMPERATURE_SENSOR_ID, value="20.0", value_received_at=at)
        self.assertEqual(dated.outcome, "created")
        self.assertTrue(dated.value_received_at.startswith(at.strftime("%Y-%m-%dT%H:%M:%S")))

    def test_conflict(self):
        client = self.client()
        mid = message_id()
        at = realer.format_timestamp()
        client.post(sensor_id=TEMPERATURE_SENSOR_ID, value="1", message_id=mid, value_received_at=at)
        with self.assertRaises(realer.ApiError) as cm:
            client.post(sensor_id=TEMPERATURE_SENSOR_ID, value="2", message_id=mid, value_received_at=at)
        err = cm.exception
        self.assertEqual((err.code, err.http_status, err.type), (4009, 409, "conflict"))
        self.assertEqual(err.status, realer.Status.API)
        self.assertEqual(err.outcome, "rejected")
        self.assertEqual(err.message_id, mid)
        self.assertFalse(err.retryable)
        self.assertTrue(err.request_id)

    def test_unknown_sensor(self):
        client = self.client()
        with self.assertRaises(realer.RealerError) as cm:
            client.post(sensor_id=UNKNOWN_SENSOR_ID, value="1")
        err = cm.exception
        self.assertIsInstance(err, realer.ApiError)
        self.assertEqual((err.code, err.http_status, err.type), (4022, 422, "validation_failed"))
        self.assertIsInstance(err.details, dict)
        self.assertIn("sensor_id", err.details)
        self.assertEqual(err.outcome, "rejected")
        self.assertTrue(err.message_id)
        self.assertIsNone(err.retry_after_ms)

    def test_invalid_item_is_not_sent(self):
        lines = []
        client = self.client(logger=lambda level, message: lines.append(message), log_level=realer.LogLevel.DEBUG)
        client.authenticate()
        lines.clear()
        with self.assertRaises(realer.InvalidArgumentError) as cm:
            client.post(sensor_id=TEMPERATURE_SENSOR_ID, command_id=PLAIN_COMMAND_ID, value="1")
        self.assertEqual(cm.exception.status, realer.Status.INVALID_ARGUMENT)
        self.assertEqual(cm.exception.http_status, 0)
        self.assertFalse([line for line in lines if "feed-data" in line], lines)

    def test_batch_mixed_outcomes(self):
        client = self.client()
        earlier = client.post(sensor_id=TEMPERATURE_SENSOR_ID, value="19.5", message_id=message_id())
        items = [
            {"sensor_id": TEMPERATURE_SENSOR_ID, "value": 21.5},
            realer.FeedItem(
                sensor_id=TEMPERATURE_SENSOR_ID,
                value="19.5",
                message_id=earlier.message_id,
                value_received_at=earlier.value_received_at,
            ),
            {"sensor_id": UNKNOWN_SENSOR_ID, "value": "3"},
            {"command_id": int(PLAIN_COMMAND_ID), "value": "21.0", "report_status": "reported"},
        ]
        results = client.post_batch(items)
        self.assertEqual([r.outcome for r in results], ["created", "idempotent", "rejected", "created"])
        self.assertEqual([r.index for r in results], [0, 1, 2, 3])
        self.assertTrue(results[0].ok)
        self.assertIsInstance(results[0].feed_data_id, int)
        self.assertEqual(results[1].feed_data_id, earlier.feed_data_id)
        self.assertEqual(results[1].message_id, earlier.message_id)
        rejected = results[2]
        self.assertFalse(rejected.ok)
        self.assertIsNone(rejected.feed_data_id)
        self.assertEqual((rejected.code, rejected.error_type), (4022, "validation_failed"))
        self.assertIn("sensor_id", rejected.details)
        self.assertTrue(all(r.message_id for r in results))
        self.assertIsNone(results[0].details)

    def test_batch_larger_than_one_request(self):
        # The library sends at most 100 items per request; the results still come back one per item, in order.
        items = [realer.FeedItem(sensor_id=HUMIDITY_SENSOR_ID, value=i, message_id=message_id()) for i in range(230)]
        results = self.client().post_batch(iter(items))
        self.assertEqual(len(results), 230)
        self.assertEqual([r.message_id for r in results], [i.message_id for i in items])
        self.assertTrue(all(r.outcome == "created" for r in results))
        self.assertEqual(len({r.feed_data_id for r in results}), 230)

    def test_outbox_flush(self):
        with tempfile.TemporaryDirectory() as tmp:
            client = self.client(outbox=os.path.join(tmp, "outbox.sqlite"))
            outbox = client.outbox
            earlier = client.post(sensor_id=TEMPERATURE_SENSOR_ID, value="18.0", message_id=message_id())
            outbox.push(sensor_id=TEMPERATURE_SENSOR_ID, value=22.5)
            outbox.push(
                sensor_id=TEMPERATURE_SENSOR_ID,
                value="18.0",
                message_id=earlier.message_id,
                value_received_at=earlier.value_received_at,
            )
            refused = outbox.push(sensor_id=UNKNOWN_SENSOR_ID, value="1")
            self.assertEqual(outbox.stats().pending, 3)
            report = outbox.flush()
            self.assertEqual(report, realer.FlushReport(sent=1, replayed=1, rejected=1, pending=0))
            stats = outbox.stats()
            self.assertEqual((stats.pending, stats.dead, stats.oldest_age_ms), (0, 1, None))
            (dead,) = outbox.dead_letters()
            self.assertEqual(dead.message_id, refused)
            self.assertEqual((dead.code, dead.error_type), (4022, "validation_failed"))
            self.assertIn("sensor_id", dead.details)
            self.assertEqual(str(dead.item["sensor_id"]), UNKNOWN_SENSOR_ID)
            self.assertGreater(dead.failed_at_unix_ms, 0)
            self.assertEqual(outbox.clear_dead_letters(), 1)
            self.assertEqual(outbox.dead_letters(), [])
            self.assertEqual(outbox.flush(), realer.FlushReport(0, 0, 0, 0))

    def test_batch_failure_carries_results(self):
        client = self.client(client_secret="not-the-secret")
        items = [{"sensor_id": TEMPERATURE_SENSOR_ID, "value": "1"}, {"sensor_id": HUMIDITY_SENSOR_ID, "value": "2"}]
        with self.assertRaises(realer.AuthError) as cm:
            client.post_batch(items)
        results = cm.exception.results
        self.assertEqual(len(results), 2)
        self.assertTrue(all(r.outcome == "not_sent" and r.message_id for r in results))

    def test_wrong_credentials(self):
        secret = "definitely-wrong-secret"
        client = self.client(client_secret=secret)
        with self.assertRaises(realer.AuthError) as cm:
            client.authenticate()
        err = cm.exception
        self.assertEqual(err.status, realer.Status.AUTH)
        self.assertEqual(err.status_name, "REALER_ERR_AUTH")
        self.assertEqual(err.http_status, 401)
        self.assertFalse(err.retryable)
        self.assertNotIn(secret, str(err))
        with self.assertRaises(realer.AuthError):
            client.commands()

    def test_other_device_is_forbidden(self):
        client = self.client(device_id=self.other_device_id)
        with self.assertRaises(realer.ApiError) as cm:
            client.commands()
        self.assertEqual((cm.exception.code, cm.exception.http_status, cm.exception.type), (4003, 403, "forbidden"))

    def test_logger(self):
        lines = []
        client = self.client(
            logger=lambda level, message: lines.append((level, message)), log_level=realer.LogLevel.DEBUG
        )
        client.authenticate()
        client.commands()
        client.post(sensor_id=TEMPERATURE_SENSOR_ID, value="22.0")
        with self.assertRaises(realer.ApiError):
            client.post(sensor_id=UNKNOWN_SENSOR_ID, value="22.0")
        self.assertTrue(lines)
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        for level, message in lines:
            self.assertIn(level, list(realer.LogLevel))
            self.assertIsInstance(message, str)
            self.assertNotIn(self.client_secret, message)
            self.assertNotIn(basic, message)

        # At ERROR, the debug lines of a successful call are filtered out by the library.
        quiet = []
        client = self.client(logger=lambda level, message: quiet.append(level), log_level=realer.LogLevel.ERROR)
        client.commands()
        self.assertTrue(all(level == realer.LogLevel.ERROR for level in quiet), quiet)

        # A logging.Logger is accepted as is.
        logger = logging.getLogger("realer.test")
        with self.assertLogs(logger, level="DEBUG") as logs:
            self.client(logger=logger, log_level=realer.LogLevel.DEBUG).authenticate()
        self.assertTrue(logs.output)
        self.assertFalse([line for line in logs.output if self.client_secret in line])

    def test_shared_between_threads(self):
        client = self.client(logger=lambda level, message: None, log_level=realer.LogLevel.DEBUG)
        failures = []

        def work():
            try:
                for _ in range(5):
                    self.assertEqual(client.post(sensor_id=TEMPERATURE_SENSOR_ID, value="1").outcome, "created")
                    # The last error is per thread: each thread sees its own 4022.
                    try:
                        client.post(sensor_id=UNKNOWN_SENSOR_ID, value="1")
                    except realer.ApiError as e:
                        self.assertEqual(e.code, 4022)
                    else:
                        self.fail("unknown sensor accepted")
            except Exception as e:  # collected: an exception in a thread would not fail the test
                failures.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])


if __name__ == "__main__":
    unittest.main()
