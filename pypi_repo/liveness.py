"""Is the service alive, as opposed to ready (issue 9)? The Gunicorn master's heartbeat, read
by the workers for ``/health/live``, and the systemd watchdog pinger that acts on it.

A worker answering is not enough: with the master SIGSTOPped or stuck, the workers keep
answering while nobody replaces a dead worker, reloads on HUP or stops on TERM. So the
master touches a heartbeat file on every turn of its main loop (at least once a second:
``Arbiter.run`` waits for signals for at most 1 s, then calls ``murder_workers``), and a
worker's liveness check fails once that file is older than :data:`MASTER_STALE_S`.
"""
from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from .probe import http_check

__all__ = ["HEARTBEAT_ENV", "MASTER_STALE_S", "install_master_heartbeat", "remove_master_heartbeat",
           "master_check", "start_systemd_watchdog"]

HEARTBEAT_ENV = "PYPI_REPO_MASTER_HEARTBEAT"
PIDFILE_ENV = "PYPI_REPO_MASTER_PIDFILE"
MASTER_STALE_S = 10.0  # default of Settings.master_stale_s: the master beats every <= 1 s


def install_master_heartbeat(server: Any, pidfile: Path) -> str:
    """In the Gunicorn master (``when_ready``, before the first fork): write the master's pid
    where the monitor looks for it, create the heartbeat file, name it in the environment the
    workers inherit, and beat on every loop turn.

    Not Gunicorn's own ``pidfile`` setting: that one refuses to start while the file names a
    running process, and two servers from one checkout (tests, a second port) would collide.
    """
    _write_pidfile(pidfile)
    try:
        fd, path = tempfile.mkstemp(prefix=f"pypi_repo-master-{os.getpid()}-", suffix=".heartbeat")
    except OSError:
        return ""  # no heartbeat (a full /tmp): the workers' master check is skipped, never fails
    os.close(fd)
    os.environ[HEARTBEAT_ENV] = path
    os.environ[PIDFILE_ENV] = str(pidfile)
    murder_workers = server.murder_workers

    def beat_then_murder_workers() -> None:
        try:
            os.utime(path)
        except OSError:
            pass
        murder_workers()

    server.murder_workers = beat_then_murder_workers
    return path


def _write_pidfile(pidfile: Path) -> None:
    try:
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        tmp = pidfile.with_name(f".{pidfile.name}.{os.getpid()}")
        tmp.write_text(f"{os.getpid()}\n")
        os.replace(tmp, pidfile)
    except OSError:
        pass  # no pid file: the monitor falls back to its restart command


def remove_master_heartbeat() -> None:
    """In the master at exit (``on_exit``): the heartbeat file and our pid file go with it."""
    path = os.environ.get(HEARTBEAT_ENV)
    pidfile = os.environ.get(PIDFILE_ENV)
    try:
        if pidfile and Path(pidfile).read_text().strip() == str(os.getpid()):
            os.unlink(pidfile)
    except OSError:
        pass
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def master_check(stale_s: float = MASTER_STALE_S, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The liveness check a worker runs: its master's heartbeat is fresh.

    Outside Gunicorn (the Flask test client, ``app.py --dev``) there is no master to check.
    """
    environ = os.environ if environ is None else environ
    path = environ.get(HEARTBEAT_ENV)
    if not path:
        return {"ok": True, "master": None}
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError as exc:
        return {"ok": False, "error": f"no master heartbeat: {exc.strerror or exc}"}
    if age > stale_s:
        return {"ok": False, "master_pid": os.getppid(), "heartbeat_age_s": round(age, 1),
                "error": f"the Gunicorn master (pid {os.getppid()}) has not run its loop for {age:.0f} s"}
    return {"ok": True, "master_pid": os.getppid(), "heartbeat_age_s": round(age, 1)}


def start_systemd_watchdog(url: str, environ: Mapping[str, str] | None = None) -> threading.Thread | None:
    """Under systemd ``WatchdogSec=``, ping ``WATCHDOG=1`` while ``url`` (liveness) answers 200.

    A hung master or hung workers stop the pings, and systemd kills and restarts the unit
    (``Restart=on-failure``); a low disk does not (it is readiness, not liveness). Does
    nothing unless ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` are set for this process.
    """
    environ = os.environ if environ is None else environ
    address, usec = environ.get("NOTIFY_SOCKET", ""), environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not address or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    if address.startswith("@"):
        address = "\0" + address[1:]
    period = max(0.1, int(usec) / 1e6 / 3)

    def ping_while_alive() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            while True:
                started = time.monotonic()
                if http_check(url, timeout=period).ok:
                    try:
                        sock.sendto(b"WATCHDOG=1", address)
                    except OSError:
                        pass
                time.sleep(max(0.0, period - (time.monotonic() - started)))

    thread = threading.Thread(target=ping_while_alive, name="systemd-watchdog", daemon=True)
    thread.start()
    return thread
