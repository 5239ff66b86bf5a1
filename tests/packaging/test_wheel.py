"""The installed wheel, as a factory script sees it: run by tests/packaging/run in a fresh venv where only the
wheel is installed, from a directory outside the repository, with no REALER_LIB and no PYTHONPATH.

Needs REALER_BASE_URL, REALER_CA_FILE, REALER_DEVICE_ID, REALER_CLIENT_ID and REALER_CLIENT_SECRET of a
running realer-sim, and REALER_EXAMPLE, the path of python/examples/firmware_loop.py.
"""

import logging
import os
import subprocess
import sys
import unittest

import realer


class InstalledWheel(unittest.TestCase):
    def test_library_comes_from_inside_the_package(self):
        self.assertNotIn("REALER_LIB", os.environ)
        package = os.path.dirname(os.path.abspath(realer.__file__))
        self.assertIn("site-packages", package)
        self.assertEqual(os.path.dirname(realer.LIBRARY_PATH), package)
        self.assertEqual(os.path.basename(realer.LIBRARY_PATH), "librealer.so")
        # The library inside is the one this binding was made for (its ABI: major and minor).
        from realer._native import ABI_VERSION

        self.assertEqual(tuple(int(n) for n in realer.version().split(".")[:2]), ABI_VERSION)

    def test_typed_package_with_licences(self):
        package = os.path.dirname(os.path.abspath(realer.__file__))
        for name in ("py.typed", "LICENSE-MIT", "LICENSE-APACHE", "THIRD-PARTY-NOTICES.md"):
            self.assertTrue(os.path.isfile(os.path.join(package, name)), name)

    def test_exceptions_subclass_the_builtins(self):
        self.assertTrue(issubclass(realer.RealerTimeoutError, TimeoutError))
        self.assertTrue(issubclass(realer.NetworkError, OSError))
        self.assertTrue(issubclass(realer.TLSError, OSError))
        self.assertTrue(issubclass(realer.CertificateTimeError, OSError))
        self.assertTrue(issubclass(realer.InvalidArgumentError, ValueError))
        for cls in (realer.RealerTimeoutError, realer.NetworkError, realer.TLSError, realer.ApiError):
            self.assertTrue(issubclass(cls, realer.RealerError), cls)
        # A real failure, raised by the library: nothing listens on this port (connection refused).
        with self.assertRaises(OSError) as caught:
            with realer.Client(
                base_url="http://127.0.0.1:9",
                allow_insecure_loopback=True,
                device_id="12345",
                client_id="cdv_0123456789abcdefghijklmnop",
                client_secret="secret",
                retry=(1, 10, 10),
            ) as client:
                client.authenticate()
        self.assertIsInstance(caught.exception, realer.RealerError)
        self.assertIsInstance(caught.exception, (realer.NetworkError, realer.RealerTimeoutError))

    def test_log_lines_are_plain_text(self):
        records = []

        class Collect(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())

        logger = logging.getLogger("realer-wheel-test")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(Collect())
        with realer.Client.from_env(logger=logger, log_level=realer.LogLevel.DEBUG) as client:
            client.authenticate()
            client.sensors()
        self.assertTrue(any("access token issued" in line for line in records), records)
        for line in records:
            # Rust's Debug text (Some(3000s), None, Duration's 1.5s) must not reach a log line.
            self.assertNotIn("Some(", line)
            self.assertNotRegex(line, r"\bNone\b")

    def test_example_runs_from_another_directory(self):
        example = os.environ["REALER_EXAMPLE"]
        run = subprocess.run(
            [sys.executable, example], cwd=os.getcwd(), capture_output=True, text=True, timeout=300
        )
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("Done: every step succeeded.", run.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
