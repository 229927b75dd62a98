"""Helpers and fixtures for the operations tests (imported by the test modules: a conftest.py here
would shadow tests/conftest.py, which every test imports as ``conftest``): a throw-away copy
of the checkout run by a real supervisord from the real ``supervisor.conf``, a webhook
receiver and an SMTP sink.

The copy lives in a short directory under /tmp (the supervisor socket path must stay under
108 bytes); code is symlinked, state (run/, logs/, data/, packages/) is its own, and its
``.venv`` is a bare venv that sees the real one's packages through a ``.pth`` file, so
nothing here touches the checkout's run/, logs/, data/ or .venv.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
import requests

from conftest import ROOT, VENV_BIN, free_port
from distbuilder import make_wheel

COPIED = ("supervisor.conf", "start.sh", "stop.sh", "requirements.txt")
LINKED = ("app.py", "gunicorn.conf.py", "monitor.py", "pypi_repo")
VENV_SCRIPTS = ("gunicorn", "supervisord", "supervisorctl", "pip")


def make_checkout(with_venv: bool = True) -> Path:
    """A runnable copy of the checkout in a fresh short directory (caller removes it)."""
    root = Path(tempfile.mkdtemp(prefix="pr-ops-", dir="/tmp"))
    for name in COPIED:
        shutil.copy2(ROOT / name, root / name)
    for name in LINKED:
        (root / name).symlink_to(ROOT / name)
    for kept in ("run", "logs"):  # in the repository as <dir>/.gitkeep
        (root / kept).mkdir()
    make_wheel(root / "packages" / "demo-pkg", "demo-pkg", "1.0")
    if with_venv:
        venv = root / ".venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
        real_site = next((VENV_BIN.parent / "lib").glob("python3*/site-packages"))
        site = next((venv / "lib").glob("python3*/site-packages"))
        (site / "real_venv.pth").write_text(str(real_site) + "\n")
        for script in VENV_SCRIPTS:
            (venv / "bin" / script).symlink_to(VENV_BIN / script)
        digest = hashlib.sha256((root / "requirements.txt").read_bytes()).hexdigest()
        (venv / ".requirements.sha256").write_text(digest + "\n")
    return root


def service_env(port: int, **extra: str) -> dict[str, str]:
    """The environment supervisord (and so Gunicorn and the monitor) is started with."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYPI_REPO_", "PROMETHEUS_", "PIP_", "UV_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        PYPI_REPO_HOST="127.0.0.1",
        PYPI_REPO_PORT=str(port),
        PYPI_REPO_WORKERS="2",
        PYPI_REPO_ARGON2_TIME_COST="1",
        PYPI_REPO_ARGON2_MEMORY_KIB="8",
        PYPI_REPO_GRACEFUL_TIMEOUT="3",
        PYPI_REPO_START_TIMEOUT="30",
        PYPI_REPO_STOP_TIMEOUT="30",
        PYPI_REPO_BIN_DIR=str(Path(tempfile.gettempdir()) / "pr-ops-bin-unused"),
    )
    env.update(extra)
    return env


@dataclass
class Supervised:
    """A supervisord started from ``<root>/supervisor.conf``, and ways to poke at it."""

    root: Path
    port: int
    env: dict[str, str]
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.root / "supervisor.conf"

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(VENV_BIN / "supervisorctl"), "-c", str(self.conf), *args],
                              capture_output=True, text=True, timeout=timeout, env=self.env, cwd=self.root)

    def start(self) -> None:
        proc = subprocess.run([str(VENV_BIN / "supervisord"), "-c", str(self.conf)], capture_output=True,
                              text=True, timeout=30, env=self.env, cwd=self.root)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        self.remember()

    def supervisord_pid(self) -> int:
        return int((self.root / "run" / "supervisord.pid").read_text())

    def program_pid(self, name: str = "pypi_repo") -> int:
        out = self.ctl("pid", name).stdout.strip()
        return int(out) if out.isdigit() else 0

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.program_pid()).children()

    def remember(self) -> None:
        """Note every process of the tree, so the teardown can prove none is left."""
        try:
            top = psutil.Process(self.supervisord_pid())
            self.seen.update((p.pid, p) for p in [top, *top.children(recursive=True)])
        except (OSError, ValueError, psutil.Error):
            pass

    def health(self, timeout: float = 2) -> int:
        try:
            return requests.get(self.url + "/health", timeout=timeout).status_code
        except requests.RequestException:
            return 0

    def wait_healthy(self, timeout: float = 30) -> float:
        """Seconds until /health answered 200 (fails the test past ``timeout``)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            # RUNNING too: supervisord calls a program STARTING for `startsecs` even when it
            # already answers, and refuses `signal` (HUP) until then
            if self.health() == 200 and "RUNNING" in self.ctl("status", "pypi_repo").stdout:
                self.remember()
                return time.monotonic() - start
            time.sleep(0.1)
        raise AssertionError(f"/health not 200 within {timeout} s; "
                             f"{self.ctl('status').stdout}\n{self.log_tail('gunicorn.out.log')}")

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.root / "logs" / name
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def survivors(self) -> list[psutil.Process]:
        """Processes of this tree still alive (psutil.Process checks identity, not just the pid)."""
        alive = []
        for proc in self.seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.Error:
                pass
        return alive

    def shutdown(self) -> None:
        """supervisorctl shutdown, then wait until every process ever seen is gone."""
        self.remember()
        for proc in self.survivors():
            proc.send_signal(signal.SIGCONT)  # a test may have stopped it
        self.ctl("shutdown")
        psutil.wait_procs(self.survivors(), timeout=30)

    def kill_leftovers(self) -> None:
        for proc in self.survivors():
            try:
                proc.kill()
            except psutil.Error:
                pass


def stop_whatever_runs(root: Path) -> None:
    """Teardown safety net: a failed test must not leave its supervisord tree behind."""
    try:
        top = psutil.Process(int((root / "run" / "supervisord.pid").read_text()))
        procs = [top, *top.children(recursive=True)]
    except (OSError, ValueError, psutil.Error):
        return
    for proc in procs:
        try:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=20)
    for proc in alive:
        proc.kill()


@pytest.fixture
def checkout():
    root = make_checkout()
    yield root
    stop_whatever_runs(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def supervised_factory(checkout):
    """Start supervisord on the copy with extra env; always shut down (and prove it) after."""
    started: list[Supervised] = []

    def start(**extra: str) -> Supervised:
        port = free_port()
        sup = Supervised(checkout, port, service_env(port, **extra))
        started.append(sup)
        sup.start()
        sup.wait_healthy()
        return sup

    yield start
    for sup in started:
        sup.shutdown()
        sup.kill_leftovers()


@pytest.fixture
def supervised(supervised_factory) -> Supervised:
    return supervised_factory()


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    """A local webhook receiver: ``.url``, ``.received`` (JSON bodies), ``.status`` to answer."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    server.status = 200  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp_sink():
    """A local SMTP server (aiosmtpd): ``.port``, ``.messages`` (email.message objects)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Collect(Message):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list = []

        def handle_message(self, message) -> None:
            self.messages.append(message)

    handler = Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    controller.messages = handler.messages  # type: ignore[attr-defined]
    yield controller
    controller.stop()
