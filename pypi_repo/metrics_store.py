"""Where Prometheus multiprocess files live, and what happens to a dead worker's files.

Used by ``gunicorn.conf.py`` in the Gunicorn master, so this module must not import
``prometheus_client`` at import time (the client picks its storage on first import, and
workers inherit the master's modules).

- Directory (issues 9 and 10): the files are memory-mapped, and a write to a mapped page
  of a full filesystem kills the process with SIGBUS. So they do not go under
  ``data_dir`` by default but into a tmpfs (``/dev/shm``), in a directory named for the
  data directory (two services on one machine never share it). ``metrics_dir`` chooses
  another place. The choice needs ``MIN_FREE_BYTES`` free; if neither place has it,
  multiprocess mode is off: each worker then reports its own counters (metrics degrade,
  workers do not die).
- Dead workers (issue 10): with ``max_requests`` every worker generation leaves a
  ``counter_<pid>.db`` and ``histogram_<pid>.db``, and a scrape reads them all. When a
  worker exits, the master adds its values into one ``<type>_archive.db`` per type
  (written with ``write()`` to a temp file, then renamed: never mmapped, so a full disk
  is an error, not a SIGBUS) and deletes the worker's files. The directory holds at most
  a few files per live worker plus the archives, whatever the uptime.
- Cleanup: the master removes its tmpfs directory on exit; one left by a killed master is
  removed by the next start of any service (its ``master.pid`` names a dead process).
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

__all__ = ["ENV", "MIN_FREE_BYTES", "archive_dead_worker", "choose_dir", "default_dir", "live_owners",
           "remove_dir", "reset_dir", "sweep_stale"]

log = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"
MIN_FREE_BYTES = 16 * 1024 * 1024
SHM = Path("/dev/shm")
ARCHIVED_TYPES = ("counter", "histogram", "summary")  # values that add up across processes
PREFIX = "pypi_repo-metrics-"
OWNER_FILE = "master.pid"
STALE_S = 600.0


def default_dir(data_dir: Path, shm: Path = SHM) -> Path:
    """The tmpfs directory for one data directory (stable across restarts of the service)."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return shm / f"{PREFIX}{digest}"


def _usable(directory: Path) -> bool:
    """Writable, ours (a world-writable tmpfs: another user could have made it first, or
    planted a symlink), and with ``MIN_FREE_BYTES`` free. Not created here: the master
    creates it at start (``reset_dir``), so a process that only reads the config leaves
    nothing behind."""
    try:
        if os.path.lexists(directory):
            st = os.lstat(directory)
            if os.path.islink(directory) or not os.path.isdir(directory) or st.st_uid != os.getuid():
                return False
            target = directory
        else:
            target = directory.parent
            while not target.exists():
                target = target.parent
        if not os.access(target, os.W_OK | os.X_OK):
            return False
        return shutil.disk_usage(target).free >= MIN_FREE_BYTES
    except OSError:
        return False


def choose_dir(data_dir: Path, configured: str = "", shm: Path = SHM) -> Path | None:
    """The multiprocess directory to use, or None for per-process metrics (see module doc)."""
    candidates = [Path(configured)] if configured else [default_dir(data_dir, shm), data_dir / "prometheus"]
    if not configured and not shm.is_dir():
        candidates.pop(0)
    elif not configured:
        sweep_stale(shm)
    for candidate in candidates:
        if _usable(candidate):
            return candidate
        log.warning("metrics directory %s is not writable or has less than %d MiB free", candidate,
                    MIN_FREE_BYTES // (1024 * 1024))
    return None


def live_owners(directory: Path) -> set[int]:
    """The live masters that use ``directory`` (``OWNER_FILE`` lists one pid a line: two
    while a USR2 upgrade runs the old and the new master side by side)."""
    try:
        lines = (directory / OWNER_FILE).read_text().split()
    except OSError:
        return set()
    return {int(t) for t in lines if t.isdigit() and _alive(int(t))}


def reset_dir(directory: Path, master_pid: int | None = None) -> bool:
    """Master start: no files from a previous run (counters restart from zero), and this
    master listed in ``OWNER_FILE``, so :func:`sweep_stale` can tell the directory is live.

    A directory another live master still uses (a USR2 upgrade, or a second start of the
    same service that will fail to bind) is shared, not reset: returns False.
    """
    master_pid = master_pid or os.getpid()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    others = live_owners(directory) - {master_pid}
    if not others:
        for entry in directory.iterdir():
            if entry.name.endswith(".db") or entry.name.startswith(".archive-"):
                entry.unlink(missing_ok=True)
    (directory / OWNER_FILE).write_text("".join(f"{pid}\n" for pid in sorted(others | {master_pid})))
    return not others


def remove_dir(directory: Path, master_pid: int | None = None) -> None:
    """Master exit: remove our tmpfs directory unless another live master still uses it."""
    master_pid = master_pid or os.getpid()
    if not directory.name.startswith(PREFIX):
        return
    others = live_owners(directory) - {master_pid}
    if others:
        try:
            (directory / OWNER_FILE).write_text("".join(f"{pid}\n" for pid in sorted(others)))
        except OSError:
            pass
        return
    shutil.rmtree(directory, ignore_errors=True)


def sweep_stale(shm: Path, now: float | None = None) -> None:
    """Remove our tmpfs directories left by a master that was killed (no ``on_exit``): those
    whose owner process is gone, or that never got an owner and are older than ``STALE_S``."""
    now = time.time() if now is None else now
    try:
        candidates = [p for p in shm.iterdir() if p.name.startswith(PREFIX) and not p.is_symlink()]
    except OSError:
        return
    for directory in candidates:
        try:
            if directory.stat().st_uid != os.getuid():
                continue
            if (directory / OWNER_FILE).exists():
                stale = not live_owners(directory)
            else:
                stale = now - directory.stat().st_mtime > STALE_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> dict[str, float]:
    from prometheus_client.mmap_dict import MmapedDict

    try:
        return {key: value for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(str(path))}
    except (OSError, struct.error, UnicodeDecodeError, ValueError):
        log.warning("unreadable metrics file %s: its values are dropped", path)
        return {}


def _encode(values: dict[str, float]) -> bytes:
    """``values`` in prometheus-client's mmap file format (see ``prometheus_client.mmap_dict``)."""
    body = bytearray()
    for key, value in values.items():
        encoded = key.encode("utf-8")
        padded = encoded + b" " * (8 - (len(encoded) + 4) % 8)
        body += struct.pack(f"i{len(padded)}sdd", len(encoded), padded, value, 0.0)
    return struct.pack("i", 8 + len(body)) + b"\0" * 4 + bytes(body)


def archive_dead_worker(directory: Path, pid: int) -> None:
    """Add a dead worker's counters and histograms into the archives, then delete its files."""
    for kind in ARCHIVED_TYPES:
        dead = directory / f"{kind}_{pid}.db"
        if not dead.exists():
            continue
        archive = directory / f"{kind}_archive.db"
        totals = _read(archive) if archive.exists() else {}
        for key, value in _read(dead).items():
            totals[key] = totals.get(key, 0.0) + value
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".archive-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(_encode(totals))
            os.replace(tmp, archive)
        except OSError as exc:
            log.warning("could not archive metrics of worker %d (%s): its counts stay in %s", pid, exc, dead)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            continue
        dead.unlink(missing_ok=True)
