"""What bench/fleet and bench/field share: building, realer-sim and its admin API, a tmpfs, and a Python with
matplotlib for the pictures (a venv made when missing). Standard library only."""

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RELEASE = os.path.join(ROOT, "target", "release")


def say(tool, msg):
    print(f"{tool}: {msg}", file=sys.stderr, flush=True)


def cargo(*args):
    """cargo in the repository, release profile, quiet; fails loudly."""
    subprocess.run(["cargo", *args, "--release", "--quiet"], cwd=ROOT, check=True)


def apt_install(*packages):
    """Debian packages, installed when missing (root, or sudo)."""
    missing = [p for p in packages if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL)


class Sim:
    """A realer-sim process: `listening on` and the admin token read from its stdout, its CA in `ca`."""

    def __init__(self, workdir, *flags, log=None):
        self.ca = os.path.join(workdir, "sim-ca.pem")
        binary = os.path.join(RELEASE, "realer-sim")
        self.log = open(log or os.devnull, "ab")
        self.proc = subprocess.Popen(
            [binary, "--ca-out", self.ca, *flags], stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"realer-sim did not start: {line!r}")
        self.base = line.split(" ", 2)[2]
        self.addr = self.base.split("://", 1)[1]
        self.admin_token = self.proc.stdout.readline().strip().split(": ", 1)[1]
        self._ssl = ssl.create_default_context(cafile=self.ca)
        # The sim counts its seconds from its start: where that was on this machine's clock.
        self.started_at = time.time() - self.admin("GET", "/_sim/stats?since_s=999999999")["uptime_ms"] / 1000

    def admin(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.admin_token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"realer-sim admin {method} {path}: HTTP {e.code} {e.read()[:300]!r}") from None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def mount_tmpfs(path, size):
    """A tmpfs of `size` (e.g. "64m") at `path`; False when mounting is not allowed (then `path` is a plain
    directory)."""
    os.makedirs(path, exist_ok=True)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    r = subprocess.run(sudo + ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path],
                       capture_output=True)
    return r.returncode == 0


def umount(path):
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run(sudo + ["umount", "-l", path], capture_output=True)


def plotting_python(tool):
    """A Python that has matplotlib: this one, or a venv in target/ made (and kept) for the pictures. None
    when neither can be had (the picture is then skipped, said on stderr)."""
    def has_matplotlib(python):
        return os.path.exists(python) and subprocess.run([python, "-c", "import matplotlib"],
                                                         capture_output=True).returncode == 0
    if has_matplotlib(sys.executable):
        return sys.executable
    venv = os.environ.get("REALER_BENCH_VENV", os.path.join(ROOT, "target", "bench-venv"))
    python = os.path.join(venv, "bin", "python")
    if has_matplotlib(python):
        return python
    say(tool, f"making a venv with matplotlib for the pictures in {venv}")
    try:
        if not os.path.exists(python):
            r = subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True)
            if r.returncode != 0:
                apt_install("python3-venv")
                shutil.rmtree(venv, ignore_errors=True)
                subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "matplotlib"],
                       check=True)
        return python
    except (subprocess.CalledProcessError, OSError) as e:
        say(tool, f"no matplotlib ({e}): the picture is skipped")
        return None


def plot(tool, kind, data_path, png):
    """Draws `png` from the JSON at `data_path` with bench/plots.py; returns whether it did."""
    python = plotting_python(tool)
    if python is None:
        return False
    r = subprocess.run([python, os.path.join(BENCH, "plots.py"), kind, data_path, png])
    if r.returncode != 0:
        say(tool, "the picture could not be drawn")
        return False
    return True


def fmt_int(n):
    return f"{int(round(n)):,}"
