"""Shared fixtures: app -> client, real archives, and a real Gunicorn server on 127.0.0.1.

Client subprocesses (pip, uv, twine) run with an environment scrubbed of the machine's
pip/uv configuration, so they see only the server under test.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from distbuilder import make_sdist, make_wheel  # noqa: E402

from pypi_repo import create_app  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env(**extra: str) -> dict[str, str]:
    """Environment for pip/uv/twine: no machine-wide index config, no caches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "PYPI_REPO_", "TWINE_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        PIP_NO_INPUT="1",
        UV_NO_CACHE="1",
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def make_repo_dirs(base: Path) -> dict[str, Path]:
    """Empty packages/, data/ and logs/ directories under ``base``."""
    dirs = {name: base / name for name in ("packages", "data", "logs")}
    for d in dirs.values():
        d.mkdir()
    return dirs


@pytest.fixture
def repo_dirs(tmp_path: Path) -> dict[str, Path]:
    return make_repo_dirs(tmp_path)


@pytest.fixture
def overrides(repo_dirs) -> dict:
    """Settings for an app under test (cheap argon2 so hashing does not dominate)."""
    return {
        "packages_dir": str(repo_dirs["packages"]),
        "data_dir": str(repo_dirs["data"]),
        "logs_dir": str(repo_dirs["logs"]),
        "argon2_time_cost": 1,
        "argon2_memory_kib": 8,
    }


@pytest.fixture
def app(overrides):
    application = create_app(overrides)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def packages(repo_dirs) -> Path:
    return repo_dirs["packages"]


@pytest.fixture
def add_dist(packages):
    """Drop a real wheel (default) or sdist into the tree, as an operator's ``cp`` would."""

    def add(name: str, version: str, kind: str = "wheel", **kw) -> Path:
        target = packages / name.lower().replace("_", "-").replace(".", "-")
        maker = make_wheel if kind == "wheel" else make_sdist
        return maker(target, name, version, **kw)

    return add


@dataclass
class LiveServer:
    url: str
    port: int
    proc: subprocess.Popen
    dirs: dict[str, Path]
    env: dict[str, str]

    @property
    def index_url(self) -> str:
        return self.url + "/simple/"

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(dirs: dict[str, Path], extra_env: dict[str, str] | None = None, workers: int = 2) -> LiveServer:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYPI_REPO_")}
    env.update(
        PYPI_REPO_PACKAGES_DIR=str(dirs["packages"]),
        PYPI_REPO_DATA_DIR=str(dirs["data"]),
        PYPI_REPO_LOGS_DIR=str(dirs["logs"]),
        PYPI_REPO_HOST="127.0.0.1",
        PYPI_REPO_PORT=str(port),
        PYPI_REPO_WORKERS=str(workers),
        PYPI_REPO_ARGON2_TIME_COST="1",
        PYPI_REPO_ARGON2_MEMORY_KIB="8",
    )
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--chdir", str(ROOT), "app:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", port, proc, dirs, env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited: " + proc.stderr.read().decode(errors="replace")[-2000:])
        try:
            if requests.get(server.url + "/health", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("server did not become healthy in 20 s")


@pytest.fixture
def live_server(repo_dirs):
    server = start_server(repo_dirs)
    yield server
    server.stop()


def run(cmd: list[str], timeout: float = 120, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a client subprocess (argument list, timeout, scrubbed env) and show its output on failure."""
    kw.setdefault("env", client_env())
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def pip(*args: str, **kw) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "pip", "--isolated", *args], **kw)


def uv_bin() -> str:
    found = shutil.which("uv", path=str(VENV_BIN)) or shutil.which("uv")
    assert found, "uv is a test dependency (requirements-dev.txt)"
    return found


@pytest.fixture
def venv(tmp_path) -> Path:
    """A fresh, empty virtual environment (made by uv: fast) to install into."""
    target = tmp_path / "venv"
    run([uv_bin(), "venv", "--seed", "--python", sys.executable, str(target)])
    return target
