"""The self-healing monitor: poll ``/health``, restart after N consecutive failures, alert.

The state machine (:class:`Monitor`) gets its check, restart command, supervisor watch, clock
and alert dispatcher injected, so its rules are unit-tested in milliseconds; ``main`` wires
the real ones (an HTTP probe, ``supervisorctl``, the channels of :mod:`pypi_repo.alerts`).

Rules (issue 3): a restart only after ``threshold`` *consecutive* failures (a flapping check
never restarts on one failure); failures before the first healthy check are not counted for
one cooldown (the service may be starting alongside the monitor); after a restart a cooldown during which failures are logged
but not counted, doubled for every further restart within the hour (exponential backoff);
at most ``max_restarts_per_hour`` restarts, then one "gave up" alert and no more restarts
until the service is healthy again or the hour has passed.

This module also holds the systemd watchdog pinger that ``gunicorn.conf.py`` starts in the
Gunicorn master: it sends ``WATCHDOG=1`` only while ``/health`` answers 200.
"""
from __future__ import annotations

import argparse
import configparser
import http.client
import ipaddress
import json
import logging
import logging.handlers
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Mapping, Sequence
from urllib.parse import urlsplit

import psutil

from .alerts import Alert, AlertDispatcher, channels_from_settings
from .config import Settings, load_settings
from .errors import ConfigError
from .logs import JsonFormatter

__all__ = [
    "CheckResult", "CommandResult", "Policy", "Monitor", "SupervisorWatch", "http_check",
    "run_command", "default_health_url", "start_systemd_watchdog", "main",
]

log = logging.getLogger("pypi_repo.monitor")

HOUR = 3600.0
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    output: str


@dataclass(frozen=True)
class Policy:
    """When to restart: the numbers behind the rules in the module docstring."""

    threshold: int = 3
    cooldown: float = 60.0
    max_backoff: float = 1800.0
    max_restarts_per_hour: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> "Policy":
        return cls(max(1, settings.monitor_threshold), settings.monitor_cooldown,
                   settings.monitor_max_backoff, settings.monitor_max_restarts_per_hour)


def default_health_url(settings: Settings) -> str:
    """``monitor_url`` or the local ``/health`` of the configured bind (0.0.0.0 -> 127.0.0.1)."""
    if settings.monitor_url:
        return settings.monitor_url
    host = settings.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.certfile else "http"
    return f"{scheme}://{host}:{settings.port}/health"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def http_check(url: str, timeout: float) -> CheckResult:
    """GET the health URL: healthy means HTTP 200 within ``timeout``.

    Plain ``http.client`` on purpose: no proxy variables (a proxy must not stand between the
    monitor and the local service), no logging (it also runs in a thread of the Gunicorn
    master, where fork safety matters). A loopback HTTPS URL is probed without certificate
    verification: it checks liveness, not identity.
    """
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    path = (parts.path or "/health") + (f"?{parts.query}" if parts.query else "")
    start = time.monotonic()
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if _is_loopback(host):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json", "User-Agent": "pypi_repo-monitor"})
        resp = conn.getresponse()
        body = resp.read(65536)
    except (OSError, http.client.HTTPException) as exc:
        elapsed = time.monotonic() - start
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        return CheckResult(False, f"{reason} after {elapsed:.1f} s", elapsed)
    finally:
        conn.close()
    elapsed = time.monotonic() - start
    detail = f"HTTP {resp.status} in {elapsed * 1000:.0f} ms"
    if resp.status != 200:
        detail += _failing_checks(body)
    return CheckResult(resp.status == 200, detail, elapsed)


def _failing_checks(body: bytes) -> str:
    """The names and errors of the failing checks in a /health document, if it is one."""
    try:
        checks = json.loads(body).get("checks", {})
        bad = [f"{name}: {c.get('error', 'failed')}" for name, c in checks.items() if not c.get("ok")]
    except (ValueError, AttributeError):
        return ""
    return f" ({'; '.join(bad)})" if bad else ""


def _resolve(argv: Sequence[str]) -> list[str]:
    """A bare program name is looked up beside this interpreter first (the venv's
    ``supervisorctl``), then on PATH."""
    argv = list(argv)
    if argv and os.sep not in argv[0]:
        beside = Path(sys.executable).parent / argv[0]
        if beside.exists():
            argv[0] = str(beside)
        else:
            argv[0] = shutil.which(argv[0]) or argv[0]
    return argv


def run_command(argv: Sequence[str], timeout: float) -> CommandResult:
    """Run a command (argument list, bounded); never raises."""
    try:
        proc = subprocess.run(_resolve(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CommandResult(False, f"{type(exc).__name__}: {exc}")
    output = "; ".join(line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip())[-1000:]
    if proc.returncode != 0:
        return CommandResult(False, f"exit status {proc.returncode}: {output}")
    return CommandResult(True, output)


@dataclass
class SupervisorWatch:
    """Is supervisord alive, and (optionally) how to start it again."""

    is_running: Callable[[], bool]
    start: Callable[[], CommandResult] | None = None
    description: str = "supervisord"

    @classmethod
    def for_config(cls, conf: str, start_it: bool, timeout: float) -> "SupervisorWatch":
        pidfile = supervisord_pidfile(Path(conf))

        def is_running() -> bool:
            return _is_supervisord(pidfile)

        def start() -> CommandResult:
            return run_command(["supervisord", "-c", conf], timeout)

        return cls(is_running, start if start_it else None, f"supervisord ({conf})")


def supervisord_pidfile(conf: Path) -> Path:
    """The ``pidfile`` a supervisor config names (``%(here)s`` expanded), else its default."""
    parser = configparser.ConfigParser(defaults={"here": str(conf.resolve().parent)}, strict=False)
    try:
        parser.read(conf, encoding="utf-8")
        value = parser.get("supervisord", "pidfile", fallback="supervisord.pid")
    except (configparser.Error, OSError):
        value = "supervisord.pid"
    return conf.resolve().parent / value if not os.path.isabs(value) else Path(value)


def _is_supervisord(pidfile: Path) -> bool:
    """Cheap enough for every check: the pidfile's process exists and is a supervisord."""
    try:
        proc = psutil.Process(int(pidfile.read_text().strip()))
        return proc.status() != psutil.STATUS_ZOMBIE and any("supervisord" in part for part in proc.cmdline())
    except (OSError, ValueError, psutil.Error):
        return False


class Monitor:
    """The restart state machine; call :meth:`step` once per interval."""

    def __init__(self, policy: Policy, check: Callable[[], CheckResult], restart: Callable[[], CommandResult],
                 alerts: AlertDispatcher, clock: Callable[[], float] = time.monotonic,
                 supervisor: SupervisorWatch | None = None, restart_label: str = "restart") -> None:
        self.policy = policy
        self.check = check
        self.restart = restart
        self.alerts = alerts
        self.clock = clock
        self.supervisor = supervisor
        self.restart_label = restart_label
        self.failures = 0
        self.restarts: deque[float] = deque()
        self.cooldown_until = float("-inf")
        self.gave_up = False
        self.troubled = False  # restarted or gave up since the last healthy check
        self.supervisor_down = False
        self.start_grace_until: float | None = None  # until the first ok check or one cooldown

    def step(self) -> CheckResult:
        if self.start_grace_until is None:
            self.start_grace_until = self.clock() + self.policy.cooldown
        self._watch_supervisor()
        result = self.check()
        if result.ok:
            self._healthy(result)
        else:
            self._unhealthy(result)
        return result

    def next_cooldown(self) -> float:
        """Cooldown after the restart about to happen: doubled per restart already in the hour."""
        return min(self.policy.cooldown * 2 ** len(self.restarts), self.policy.max_backoff)

    def _healthy(self, result: CheckResult) -> None:
        if self.failures or self.troubled:
            log.info("check ok: %s (healthy again)", result.detail)
        else:
            log.info("check ok: %s", result.detail)
        if self.troubled:
            self.alerts.send(Alert("recovered", f"pypi_repo is healthy again: {result.detail}", "info"))
        self.failures = 0
        self.gave_up = self.troubled = False
        self.start_grace_until = float("-inf")

    def _unhealthy(self, result: CheckResult) -> None:
        now = self.clock()
        if self.start_grace_until is not None and now < self.start_grace_until:
            log.warning("check failed: %s (not counted: the service may still be starting, %.0f s left)",
                        result.detail, self.start_grace_until - now)
            return
        if now < self.cooldown_until:
            log.warning("check failed: %s (cooldown after restart, %.0f s left: not counted)",
                        result.detail, self.cooldown_until - now)
            return
        self.failures += 1
        log.warning("check failed (%d/%d): %s", self.failures, self.policy.threshold, result.detail)
        if self.failures < self.policy.threshold:
            return
        while self.restarts and now - self.restarts[0] >= HOUR:
            self.restarts.popleft()
        if len(self.restarts) >= self.policy.max_restarts_per_hour:
            self._give_up(result, now)
            return
        self._restart(result)

    def _give_up(self, result: CheckResult, now: float) -> None:
        wait = HOUR - (now - self.restarts[0])
        log.error("still unhealthy, not restarting: %d restarts in the last hour (cap %d); next allowed in %.0f s",
                  len(self.restarts), self.policy.max_restarts_per_hour, wait)
        if not self.gave_up:
            self.gave_up = self.troubled = True
            self.alerts.send(Alert(
                "gave_up",
                f"gave up restarting pypi_repo: {len(self.restarts)} restarts in the last hour did not keep it "
                f"healthy (last check: {result.detail}); manual action needed",
                "critical", {"restarts_last_hour": len(self.restarts), "last_check": result.detail}))

    def _restart(self, result: CheckResult) -> None:
        cooldown = self.next_cooldown()
        log.warning("restarting after %d consecutive failed checks: %s", self.failures, self.restart_label)
        outcome = self.restart()
        now = self.clock()
        self.restarts.append(now)
        self.cooldown_until = now + cooldown
        self.failures = 0
        self.gave_up = False
        self.troubled = True
        details = {"last_check": result.detail, "command": self.restart_label, "output": outcome.output,
                   "restarts_last_hour": len(self.restarts), "cooldown_s": cooldown}
        if outcome.ok:
            log.warning("restart done (%s); cooldown %.0f s", outcome.output or "ok", cooldown)
            self.alerts.send(Alert(
                "restart", f"restarted pypi_repo after {self.policy.threshold} consecutive failed health checks "
                f"(last: {result.detail})", "warning", details))
        else:
            log.error("restart command failed: %s; cooldown %.0f s", outcome.output, cooldown)
            self.alerts.send(Alert("restart_failed", f"could not restart pypi_repo: {outcome.output}",
                                   "critical", details))

    def _watch_supervisor(self) -> None:
        if self.supervisor is None:
            return
        running = self.supervisor.is_running()
        if running and self.supervisor_down:
            self.supervisor_down = False
            log.warning("%s is running again", self.supervisor.description)
            self.alerts.send(Alert("supervisord_back", f"{self.supervisor.description} is running again", "info"))
        elif not running:
            if not self.supervisor_down:
                self.supervisor_down = True
                log.error("%s is not running: nothing supervises pypi_repo", self.supervisor.description)
                self.alerts.send(Alert("supervisord_down", f"{self.supervisor.description} is not running",
                                       "critical"))
            if self.supervisor.start is not None:
                outcome = self.supervisor.start()
                log.warning("starting %s: %s", self.supervisor.description,
                            "ok" if outcome.ok else outcome.output)
                if outcome.ok:
                    self.alerts.send(Alert("supervisord_started",
                                           f"started {self.supervisor.description} again", "warning"))

    def run(self, interval: float, sleep: Callable[[float], object], should_stop: Callable[[], bool]) -> None:
        """Check every ``interval`` seconds (measured start to start) until told to stop."""
        while not should_stop():
            started = self.clock()
            self.step()
            sleep(max(0.0, interval - (self.clock() - started)))


def start_systemd_watchdog(url: str, environ: Mapping[str, str] | None = None) -> threading.Thread | None:
    """Under systemd ``WatchdogSec=``, ping ``WATCHDOG=1`` while ``url`` answers 200.

    A hung or unhealthy service stops the pings, and systemd kills and restarts the unit
    (``Restart=on-failure``). Does nothing unless ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``
    are set for this process.
    """
    environ = os.environ if environ is None else environ
    address, usec = environ.get("NOTIFY_SOCKET", ""), environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not address or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    if address.startswith("@"):
        address = "\0" + address[1:]
    period = max(0.1, int(usec) / 1e6 / 3)

    def ping_while_healthy() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            while True:
                started = time.monotonic()
                if http_check(url, timeout=period).ok:
                    try:
                        sock.sendto(b"WATCHDOG=1", address)
                    except OSError:
                        pass
                time.sleep(max(0.0, period - (time.monotonic() - started)))

    thread = threading.Thread(target=ping_while_healthy, name="systemd-watchdog", daemon=True)
    thread.start()
    return thread


# --- command line ---------------------------------------------------------------------------

_MONITOR_FIELDS = [f for f in fields(Settings) if f.name.startswith("monitor_")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor.py",
        description="Poll pypi_repo's /health, restart it after consecutive failures, send alerts. "
                    "Every flag is also a PYPI_REPO_MONITOR_* variable and a monitor_* TOML key.")
    parser.add_argument("--once", action="store_true", help="one check, exit 0 if healthy, 1 if not")
    parser.add_argument("--config", help="TOML config file (PYPI_REPO_CONFIG)")
    parser.add_argument("--port", type=int, help="port of the service (for the default URL)")
    parser.add_argument("--logs-dir", help="where monitor.log goes (default ./logs)")
    for f in _MONITOR_FIELDS:
        flag = "--" + f.name.removeprefix("monitor_").replace("_", "-")
        kind = str(f.type)
        if "bool" in kind:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, dest=f.name, type=float if "float" in kind else int if "int" in kind else str,
                                help=f"default: {f.default!r}")
    return parser


def _configure_logging(settings: Settings, to_stderr: bool) -> None:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        settings.logs_dir / "monitor.log", maxBytes=settings.log_max_bytes,
        backupCount=settings.log_backups, encoding="utf-8")
    handlers: list[logging.Handler] = [handler]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    formatter = JsonFormatter() if settings.log_format == "json" else logging.Formatter(LOG_FORMAT)
    for h in handlers:
        h.setFormatter(formatter)
        log.addHandler(h)
    log.setLevel(settings.log_level.upper())
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k != "once" and v is not None}
    try:
        settings = load_settings(overrides)
    except ConfigError as exc:
        sys.stderr.write(f"monitor.py: {exc}\n")
        return 2
    _configure_logging(settings, to_stderr=args.once or sys.stderr.isatty())
    url = default_health_url(settings)

    def check() -> CheckResult:
        return http_check(url, settings.monitor_timeout)

    if args.once:
        result = check()
        log.log(logging.INFO if result.ok else logging.WARNING, "check %s: %s %s",
                "ok" if result.ok else "failed", url, result.detail)
        return 0 if result.ok else 1

    restart_argv = shlex.split(settings.monitor_restart_command)
    supervisor = None
    if settings.monitor_supervisor_conf:
        supervisor = SupervisorWatch.for_config(settings.monitor_supervisor_conf,
                                                settings.monitor_start_supervisord, settings.monitor_timeout + 20)
    monitor = Monitor(
        Policy.from_settings(settings), check,
        lambda: run_command(restart_argv, settings.monitor_restart_timeout),
        AlertDispatcher(channels_from_settings(settings)), supervisor=supervisor,
        restart_label=settings.monitor_restart_command)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("monitor stopping (%s)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("monitor started: %s every %.1f s, timeout %.1f s, restart after %d failures with %r",
             url, settings.monitor_interval, settings.monitor_timeout, monitor.policy.threshold,
             settings.monitor_restart_command)
    monitor.run(settings.monitor_interval, stop.wait, stop.is_set)
    return 0
