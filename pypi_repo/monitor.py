"""The self-healing monitor: poll ``/health/live``, recover after N consecutive failures, alert.

The state machine (:class:`Monitor`) gets its check, restart, supervisor watch, clock and
alert dispatcher injected, so its rules are unit-tested in milliseconds; ``main`` wires the
real ones (an HTTP probe of :mod:`pypi_repo.probe`, the graceful-first recovery and the
supervisord watch of :mod:`pypi_repo.supervision`, the channels of :mod:`pypi_repo.alerts`).

Rules (issue 3): a restart only after ``threshold`` *consecutive* failures (a flapping check
never restarts on one failure); failures before the first healthy check are not counted for
one cooldown (the service may be starting alongside the monitor); after a restart a cooldown
during which failures are logged but not counted, doubled for every further restart within
the hour (exponential backoff); at most ``max_restarts_per_hour`` restarts, then one "gave up"
alert and no more restarts until the service is healthy again or the hour has passed.

Liveness only (issue 9): the check is ``/health/live``; readiness (``/health``: low disk, an
unwritable data dir) is polled too but only alerts (``degraded``), it never restarts.
"""
from __future__ import annotations

import argparse
import logging
import logging.handlers
import shlex
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, fields
from typing import Callable

from .alerts import Alert, AlertDispatcher, channels_from_settings
from .config import Settings, load_settings
from .errors import ConfigError
from .liveness import start_systemd_watchdog
from .logs import JsonFormatter
from .probe import CheckResult, CommandResult, default_health_url, http_check, readiness_url, run_command
from .supervision import MonitorLock, Recovery, SupervisorWatch, under_supervisord

__all__ = [
    "CheckResult", "CommandResult", "Policy", "Monitor", "SupervisorWatch", "http_check",
    "run_command", "default_health_url", "start_systemd_watchdog", "main",
]

log = logging.getLogger("pypi_repo.monitor")

HOUR = 3600.0
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


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


class Monitor:
    """The restart state machine; call :meth:`step` once per interval."""

    def __init__(self, policy: Policy, check: Callable[[], CheckResult], restart: Callable[[], CommandResult],
                 alerts: AlertDispatcher, clock: Callable[[], float] = time.monotonic,
                 supervisor: SupervisorWatch | None = None, restart_label: str = "restart",
                 check_ready: Callable[[], CheckResult] | None = None) -> None:
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
        self.check_ready = check_ready
        self.degraded = False
        self.handed_over = False  # a new supervisord (and its monitor) took over

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
                    if self.supervisor.hand_over:
                        log.warning("handing over to the monitor of the new supervisord; this one exits")
                        self.handed_over = True

    def watch_readiness(self, result: CheckResult) -> None:
        """Alert once when readiness fails while alive (``degraded``), once when it is back."""
        if self.check_ready is None:
            return
        ready = self.check_ready()
        if not ready.ok and not self.degraded:
            self.degraded = True
            alerts = ready.doc.get("alerts") or [ready.detail]
            log.warning("service degraded (alive, not restarted): %s", "; ".join(map(str, alerts)))
            self.alerts.send(Alert("degraded", f"pypi_repo is degraded: {'; '.join(map(str, alerts))}",
                                   "warning", {"readiness": ready.detail}))
        elif ready.ok and self.degraded:
            self.degraded = False
            log.info("service ready again: %s", ready.detail)
            self.alerts.send(Alert("ready", "pypi_repo is ready again", "info"))

    def run(self, interval: float, sleep: Callable[[float], object], should_stop: Callable[[], bool],
            watch_interval: float | None = None) -> None:
        """Check every ``interval`` seconds (start to start) until told to stop or handed over;
        supervisord's pid is looked at every ``watch_interval`` seconds in between."""
        watch_interval = interval if watch_interval is None else min(interval, watch_interval)
        next_check = self.clock()
        while not should_stop() and not self.handed_over:
            if self.clock() >= next_check:
                next_check = self.clock() + interval
                result = self.step()
                if result.ok:
                    self.watch_readiness(result)
            else:
                self._watch_supervisor()
            if self.handed_over:
                return
            sleep(max(0.0, min(watch_interval, next_check - self.clock())))


# --- command line ---------------------------------------------------------------------------

_MONITOR_FIELDS = [f for f in fields(Settings) if f.name.startswith("monitor_")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor.py",
        description="Poll pypi_repo's /health/live, recover it after consecutive failures, send alerts. "
                    "Every flag is also a PYPI_REPO_MONITOR_* variable and a monitor_* TOML key.")
    parser.add_argument("--once", action="store_true", help="one readiness check (/health), exit 0 if ready, 1 if not")
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


def build_monitor(settings: Settings) -> Monitor:
    """The real monitor: HTTP liveness probe, graceful-first recovery, supervisord watch."""
    url = default_health_url(settings)

    def check() -> CheckResult:
        return http_check(url, settings.monitor_timeout)

    def check_ready() -> CheckResult:
        return http_check(readiness_url(url), settings.monitor_timeout)

    restart_argv = shlex.split(settings.monitor_restart_command)
    recovery = Recovery(settings.master_pidfile, check, restart_argv, settings.monitor_reload_wait,
                        settings.monitor_restart_timeout)
    supervisor = None
    if settings.monitor_supervisor_conf:
        supervisor = SupervisorWatch.for_config(
            settings.monitor_supervisor_conf, settings.monitor_start_supervisord and under_supervisord(),
            settings.monitor_timeout + 20)
    return Monitor(Policy.from_settings(settings), check, recovery,
                   AlertDispatcher(channels_from_settings(settings)), supervisor=supervisor,
                   restart_label=f"HUP, else kill + {settings.monitor_restart_command or 'the service manager'}",
                   check_ready=check_ready)


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
    if args.once:  # for scripts and cron: readiness, the whole picture (it restarts nothing)
        url = readiness_url(url)
        result = http_check(url, settings.monitor_timeout)
        log.log(logging.INFO if result.ok else logging.WARNING, "check %s: %s %s",
                "ok" if result.ok else "failed", url, result.detail)
        return 0 if result.ok else 1

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("monitor stopping (%s)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    lock = MonitorLock(settings.data_dir / "monitor.lock")
    if not lock.acquire(stop.is_set, stop.wait):
        return 0
    try:
        monitor = build_monitor(settings)
        log.info("monitor started: %s every %.1f s, timeout %.1f s, recover after %d failures (%s)",
                 url, settings.monitor_interval, settings.monitor_timeout, monitor.policy.threshold,
                 monitor.restart_label)
        monitor.run(settings.monitor_interval, stop.wait, stop.is_set, settings.monitor_supervisor_interval)
    finally:
        lock.release()
    return 0
