"""``start.sh`` / ``stop.sh`` on a throw-away copy of the checkout (its own port and state)."""
from __future__ import annotations

import shutil
import socket
import subprocess

import psutil
import pytest
import requests

from conftest import free_port
from opskit import checkout, make_checkout, service_env  # noqa: F401
from pypi_repo.procs import checkout_processes

pytestmark = pytest.mark.e2e


def sh(root, script: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([str(root / script)], capture_output=True, text=True, timeout=timeout, env=env, cwd="/")


def tree(root) -> list[psutil.Process]:
    """supervisord and everything under it."""
    top = psutil.Process(int((root / "run" / "supervisord.pid").read_text()))
    return [top, *top.children(recursive=True)]


def test_start_twice_is_harmless_and_stop_leaves_nothing_then_stop_again_is_harmless(checkout):
    port = free_port()
    env = service_env(port)
    first = sh(checkout, "start.sh", env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"http://127.0.0.1:{port}/simple/" in first.stdout
    assert f"pip install --index-url http://127.0.0.1:{port}/simple/" in first.stdout
    assert "Installing requirements" not in first.stdout  # unchanged requirements: no pip run
    procs = tree(checkout)
    lasting = {p.pid for p in checkout_processes(checkout) if p.kind != "other"}
    assert len(procs) >= 5

    second = sh(checkout, "start.sh", env)
    assert second.returncode == 0, second.stderr
    assert "already runs" in second.stdout
    # Nothing restarted or duplicated (short-lived children such as the index warm-up aside).
    assert {p.pid for p in checkout_processes(checkout) if p.kind != "other"} == lasting
    assert len([p for p in tree(checkout) if "supervisord" in " ".join(p.cmdline())]) == 1
    assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200

    stopped = sh(checkout, "stop.sh", env)
    assert stopped.returncode == 0, stopped.stderr
    assert "pypi_repo stopped" in stopped.stdout
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)
    assert not (checkout / "run" / "supervisord.pid").exists()

    again = sh(checkout, "stop.sh", env)
    assert again.returncode == 0 and "not running" in again.stdout


def test_start_refuses_a_taken_port_with_a_clear_message(checkout):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        proc = sh(checkout, "start.sh", service_env(port))
    assert proc.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr
    assert not (checkout / "run" / "supervisord.pid").exists()


def test_start_reports_health_never_came_up_with_the_last_log_lines_and_cleans_up(checkout):
    env = service_env(free_port(), PYPI_REPO_WORKER_CLASS="no_such_worker_class", PYPI_REPO_START_TIMEOUT="6")
    proc = sh(checkout, "start.sh", env)
    assert proc.returncode == 1
    assert "did not answer 200 within 6 s" in proc.stderr
    assert "--- last lines of logs/" in proc.stderr
    assert "no_such_worker_class" in proc.stderr  # Gunicorn's own complaint, from its log
    assert "stopped the supervisord it had started" in proc.stderr
    assert not (checkout / "run" / "supervisord.pid").exists() or not psutil.pid_exists(
        int((checkout / "run" / "supervisord.pid").read_text()))


def test_start_on_a_low_disk_starts_the_service_degraded_instead_of_stopping_it(checkout):
    """Issue 9: below ``min_free_disk_mb`` the service serves every read; ``start.sh`` waits for
    liveness, says "degraded" and leaves it running (it used to wait for /health's 200, give
    up after the start timeout and stop the supervisord it had started)."""
    port = free_port()
    env = service_env(port, PYPI_REPO_MIN_FREE_DISK_MB="100000000", PYPI_REPO_START_TIMEOUT="20")
    proc = sh(checkout, "start.sh", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "degraded" in proc.stderr and "below min_free_disk_mb" in proc.stderr
    assert "pypi_repo is running." in proc.stdout
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/health", timeout=5).status_code == 503
    assert requests.get(f"{base}/health/live", timeout=5).status_code == 200
    assert requests.get(f"{base}/simple/demo-pkg/", timeout=5).status_code == 200
    assert psutil.pid_exists(int((checkout / "run" / "supervisord.pid").read_text()))


def test_start_without_python_says_so():
    root = make_checkout(with_venv=False)
    try:
        env = service_env(free_port(), PYTHON="/nonexistent/python3")
        proc = sh(root, "start.sh", env)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert proc.returncode == 1
    assert "'/nonexistent/python3' not found: install Python 3.11 or newer" in proc.stderr
