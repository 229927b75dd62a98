"""What the monitor does to processes (issue 9): recover a failing service with the least loss,
bring back a killed supervisord, and make sure only one monitor runs.

Recovery, in order:
1. the Gunicorn master (``pidfile``) still runs its loop: workers that are stopped (SIGSTOP)
   are killed, then the master gets HUP, a graceful reload: new workers start on the same
   listening socket, no request is lost. If liveness is back within ``reload_wait`` seconds,
   that was it.
2. otherwise (the master is stopped, gone, or the reload did not help): SIGKILL to the
   master's process group (a hung process is killed, not waited for), then the restart
   command (``supervisorctl start pypi_repo``; supervisord's autorestart usually wins the race).

A killed supervisord leaves its programs behind as orphans: the Gunicorn master still holds
the port and the monitor still runs. The orphaned monitor replaces them cleanly: TERM to the
orphaned Gunicorn (KILL after a few seconds), supervisord started again, and then it exits, so
the monitor that the new supervisord starts takes over. A lock file (``flock``) guarantees that
two monitors never act at once.
"""
from __future__ import annotations

import configparser
import fcntl
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

from .probe import CheckResult, CommandResult, run_command
from .procs import Proc, alive, checkout_processes, read_proc

__all__ = ["SupervisorWatch", "Recovery", "MonitorLock", "supervisord_pidfile", "under_supervisord"]

log = logging.getLogger("pypi_repo.monitor")

ORPHAN_STOP_S = 5.0  # an orphaned Gunicorn gets this long to finish its requests


def under_supervisord(environ: dict[str, str] | None = None) -> bool:
    """supervisord sets ``SUPERVISOR_ENABLED`` for the programs it starts."""
    return (os.environ if environ is None else environ).get("SUPERVISOR_ENABLED") == "1"


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
    """Cheap enough for every second: the pidfile's process exists and is a supervisord."""
    try:
        proc = read_proc(int(pidfile.read_text().strip()))
    except (OSError, ValueError):
        return False
    return proc is not None and proc.state not in ("Z", "X") and proc.kind == "supervisord"


def _stop(procs: list[Proc], grace: float) -> None:
    """SIGCONT + TERM, then KILL whatever is left after ``grace`` seconds."""
    for sig in (signal.SIGCONT, signal.SIGTERM):
        for p in procs:
            try:
                os.kill(p.pid, sig)
            except OSError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p.pid) for p in procs):
        time.sleep(0.1)
    for p in procs:
        if alive(p.pid):
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass


@dataclass
class SupervisorWatch:
    """Is supervisord alive, and (optionally) how to bring it back.

    ``hand_over``: after a successful start the monitor exits, because the new supervisord
    starts its own monitor (the one that waits for :class:`MonitorLock`).
    """

    is_running: Callable[[], bool]
    start: Callable[[], CommandResult] | None = None
    description: str = "supervisord"
    hand_over: bool = False

    @classmethod
    def for_config(cls, conf: str, start_it: bool, timeout: float) -> "SupervisorWatch":
        conf_path = Path(conf).resolve()
        pidfile = supervisord_pidfile(conf_path)

        def is_running() -> bool:
            return _is_supervisord(pidfile)

        def start() -> CommandResult:
            return restore_supervisord(conf_path, timeout)

        return cls(is_running, start if start_it else None, f"supervisord ({conf})", hand_over=start_it)


def restore_supervisord(conf: Path, timeout: float) -> CommandResult:
    """Replace the orphans of a killed supervisord (not this monitor), then start it again."""
    root = conf.parent
    me = os.getpid()
    orphans = [p for p in checkout_processes(root) if p.pid != me and p.ppid != me
               and p.kind in ("gunicorn", "supervisord", "other")]
    masters = [p for p in orphans if p.kind == "gunicorn" and p.ppid not in {o.pid for o in orphans}]
    if orphans:
        log.warning("replacing %d orphaned process(es) of the killed supervisord: %s", len(orphans),
                    ", ".join(f"{p.pid} ({p.kind})" for p in masters or orphans))
        _stop(masters or orphans, ORPHAN_STOP_S)
        _stop([p for p in orphans if alive(p.pid)], 2.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    return run_command(["supervisord", "-c", str(conf)], timeout, env=env, cwd=str(root))


@dataclass
class Recovery:
    """The monitor's restart: graceful when the master answers signals, else kill + start."""

    pidfile: Path
    check: Callable[[], CheckResult]
    restart_argv: list[str]
    reload_wait: float = 5.0
    restart_timeout: float = 120.0
    poll: float = 0.25

    def __call__(self) -> CommandResult:
        master = self._master()
        if master is not None and master.state not in ("T", "t"):
            how = self._reload(master)
            if how.ok:
                return how
            reason = how.output
        elif master is not None:
            reason = f"the Gunicorn master (pid {master.pid}) is stopped: it cannot act on signals"
        else:
            reason = f"no running Gunicorn master in {self.pidfile}"
        if master is not None:
            self._kill_group(master)
            reason += f"; killed the process group of pid {master.pid} (SIGKILL)"
        if not self.restart_argv:
            return CommandResult(True, reason)
        started = run_command(self.restart_argv, self.restart_timeout)
        if not started.ok and "already started" in started.output:
            started = CommandResult(True, started.output)
        return CommandResult(started.ok, f"{reason}; {' '.join(self.restart_argv)}: {started.output}")

    def _master(self) -> Proc | None:
        try:
            proc = read_proc(int(self.pidfile.read_text().strip()))
        except (OSError, ValueError):
            return None
        return proc if proc is not None and proc.kind == "gunicorn" and proc.state not in ("Z", "X") else None

    def _reload(self, master: Proc) -> CommandResult:
        stopped = [p for p in _children(master.pid) if p.state in ("T", "t")]
        for p in stopped:  # a stopped worker can finish nothing: the master forks a new one
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.kill(master.pid, signal.SIGHUP)
        except OSError as exc:
            return CommandResult(False, f"HUP to the Gunicorn master (pid {master.pid}) failed: {exc}")
        deadline = time.monotonic() + self.reload_wait
        while time.monotonic() < deadline:
            time.sleep(self.poll)
            if self.check().ok:
                killed = f" after killing {len(stopped)} stopped worker(s)" if stopped else ""
                return CommandResult(True, f"graceful reload: HUP to the Gunicorn master (pid {master.pid}){killed}; "
                                           "alive again")
        return CommandResult(False, f"HUP to the Gunicorn master (pid {master.pid}) did not bring it back "
                                    f"within {self.reload_wait:.0f} s")

    @staticmethod
    def _kill_group(master: Proc) -> None:
        try:
            if master.pgid == master.pid:
                os.killpg(master.pgid, signal.SIGKILL)
            else:
                for p in [master, *_children(master.pid)]:
                    os.kill(p.pid, signal.SIGKILL)
        except OSError:
            pass


def _children(pid: int) -> list[Proc]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            pids = [int(x) for x in fh.read().split()]
    except OSError:
        return []
    return [p for p in map(read_proc, pids) if p is not None]


class MonitorLock:
    """``flock`` on a file: never two monitors at once (issue 9). The holder's pid is in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: IO[str] | None = None

    def acquire(self, should_stop: Callable[[], bool], wait: Callable[[float], object]) -> bool:
        """Block until the lock is ours (or we are told to stop); log once while waiting."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+", encoding="utf-8")
        except OSError as exc:  # a full data disk must not stop the monitor from monitoring
            log.warning("monitor lock %s unavailable (%s): running without it", self.path, exc)
            return True
        said = False
        while not should_stop():
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not said:
                    fh.seek(0)
                    log.warning("another monitor runs (pid %s, lock %s): waiting to take over",
                                fh.read().strip() or "?", self.path)
                    said = True
                wait(0.5)
                continue
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            self.fh = fh
            return True
        fh.close()
        return False

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def main(argv: list[str] | None = None) -> int:
    """``python -m pypi_repo.supervision restart`` (``./start.sh restart``): the monitor's
    recovery on demand, graceful first."""
    import argparse
    import shlex
    import sys

    from .config import load_settings
    from .probe import default_health_url, http_check

    parser = argparse.ArgumentParser(prog="python -m pypi_repo.supervision")
    parser.add_argument("action", choices=["restart"])
    parser.parse_args(argv)
    settings = load_settings()
    url = default_health_url(settings)
    outcome = Recovery(settings.master_pidfile, lambda: http_check(url, settings.monitor_timeout),
                       shlex.split(settings.monitor_restart_command), settings.monitor_reload_wait,
                       settings.monitor_restart_timeout)()
    sys.stdout.write(f"{outcome.output}\n")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
