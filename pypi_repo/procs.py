"""The processes of one checkout, found without a broad name match (issue 9).

A process belongs to the checkout at ``root`` when its command line runs one of the
checkout's service programs: ``root/.venv/bin/{gunicorn,supervisord}``, ``root/monitor.py``
or ``root/app.py`` under a Python interpreter, or anything given ``-c``/``--config`` with
``root/gunicorn.conf.py`` or ``root/supervisor.conf``. Their descendants (Gunicorn workers,
the index warm-up) belong to it too. An editor open on ``supervisor.conf``, a shell whose
current directory is the checkout, or the same programs of another checkout do not.

Standard library only and Linux ``/proc`` only: ``stop.sh`` runs it with whatever Python
there is (the venv's, or the system ``python3`` when the venv is gone).
``python3 -m pypi_repo.procs list|stop ROOT`` is the command-line form.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Proc", "checkout_processes", "stop_checkout", "read_proc", "alive"]

PROGRAMS = (".venv/bin/gunicorn", ".venv/bin/supervisord")
SCRIPTS = ("monitor.py", "app.py")
CONFIGS = ("gunicorn.conf.py", "supervisor.conf")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str  # one letter of /proc/PID/stat: R S D T t Z ...
    argv: tuple[str, ...]
    cwd: str

    @property
    def kind(self) -> str:
        """``supervisord``, ``monitor``, ``gunicorn`` or ``other`` (a child such as the warm-up)."""
        names = [os.path.basename(a) for a in self.argv[:3]]
        if "supervisord" in names:
            return "supervisord"
        if "monitor.py" in names:
            return "monitor"
        if "gunicorn" in names or "gunicorn" in self.argv[1:3] or "app.py" in names:
            return "gunicorn"
        return "other"


def read_proc(pid: int) -> Proc | None:
    """One process from /proc, or None if it is gone (or not ours to read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = tuple(a.decode(errors="replace") for a in fh.read().split(b"\0") if a)
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    rest = stat[stat.rindex(")") + 2:].split()
    return Proc(pid, int(rest[1]), int(rest[2]), rest[0], argv, cwd)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    proc = read_proc(pid)
    return proc is not None and proc.state not in ("Z", "X")


def _all_procs() -> list[Proc]:
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = read_proc(int(entry))
            if proc is not None and proc.state not in ("Z", "X"):
                procs.append(proc)
    return procs


def _runs_checkout_program(proc: Proc, root: str) -> bool:
    def absolute(arg: str) -> str:
        return os.path.normpath(os.path.join(proc.cwd or "/", arg))

    argv = proc.argv
    if not argv:
        return False
    if (len(argv) > 1 and os.path.basename(argv[0]).startswith("python")
            and absolute(argv[1]) in {os.path.join(root, s) for s in SCRIPTS}):
        return True
    if (len(argv) > 2 and os.path.basename(argv[0]).startswith("python") and argv[1] == "-m"
            and argv[2].startswith("pypi_repo.") and proc.cwd == root):
        return True  # the master's helpers (the index warm-up), even once orphaned by a kill
    configs = {os.path.join(root, c) for c in CONFIGS}
    given = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    given += [argv[i] for i in range(1, len(argv)) if argv[i - 1] in ("-c", "--config")]
    if given:  # a program told which config to use belongs to that config's checkout
        return any(absolute(arg) in configs for arg in given)
    programs = {os.path.join(root, p) for p in PROGRAMS}
    return absolute(argv[0]) in programs or (len(argv) > 1 and absolute(argv[1]) in programs)


def _ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        proc = read_proc(pid)
        if proc is None:
            break
        pid = proc.ppid
    return seen


def checkout_processes(root: Path) -> list[Proc]:
    """Every live process of the checkout at ``root`` (never this process or its ancestors)."""
    top = os.path.abspath(root)
    procs = _all_procs()
    mine = {p.pid for p in procs if _runs_checkout_program(p, top)}
    children: dict[int, list[int]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p.pid)
    todo = list(mine)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in mine:
                mine.add(child)
                todo.append(child)
    mine -= _ancestors(os.getpid())
    return [p for p in procs if p.pid in mine]


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if alive(p)]
    return left


def stop_checkout(root: Path, timeout: float = 60.0, log=print) -> list[Proc]:
    """Stop every process of the checkout; return what was found.

    Orphaned monitors first (so nothing brings supervisord back), then supervisord (TERM: it
    stops its programs gracefully, its own monitor included), then whatever is left (orphans
    of a killed supervisord): TERM, and KILL once ``timeout`` has passed. Stopped (SIGSTOP)
    processes get SIGCONT so they can act on the TERM. Repeated until nothing is left.
    """
    found = checkout_processes(root)
    deadline = time.monotonic() + timeout
    for _ in range(3):
        procs = checkout_processes(root)
        if not procs:
            break
        supervisords = {p.pid for p in procs if p.kind == "supervisord"}
        batches = (
            [p.pid for p in procs if p.kind == "monitor" and p.ppid not in supervisords],
            sorted(supervisords),
            [p.pid for p in checkout_processes(root)],
        )
        _signal([p.pid for p in procs], signal.SIGCONT)
        for batch in batches:
            if not batch:
                continue
            _signal(batch, signal.SIGCONT)
            _signal(batch, signal.SIGTERM)
            left = _wait_gone(batch, max(1.0, deadline - time.monotonic()))
            if left:
                log(f"killing {len(left)} process(es) that did not stop within {timeout:.0f} s: {left}")
                _signal(left, signal.SIGKILL)
                _wait_gone(left, 10)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m pypi_repo.procs",
                                     description="List or stop the processes of one pypi_repo checkout.")
    parser.add_argument("action", choices=["list", "stop"])
    parser.add_argument("root", type=Path)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before KILL (stop)")
    args = parser.parse_args(argv)
    if args.action == "list":
        for p in checkout_processes(args.root):
            sys.stdout.write(f"{p.pid} {p.kind} {' '.join(p.argv)}\n")
        return 0
    found = stop_checkout(args.root, args.timeout, log=lambda msg: sys.stderr.write(f"stop.sh: {msg}\n"))
    sys.stdout.write(f"{len(found)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
