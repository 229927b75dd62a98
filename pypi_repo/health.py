"""Health checks and repository statistics (Flask-free; served by ``web/ops.py``).

Liveness and readiness are separate (issue 9). Liveness (``/health/live``) holds only what a
restart can fix: this worker answers, and its Gunicorn master still runs its loop. The
monitor and the systemd watchdog act on it alone. Readiness (``/health``) adds what serving
needs from the outside world (packages readable, data writable, disk above
``min_free_disk_mb``, the index loadable, the shared database answering, issue 14): when one fails the answer is 503 with status
``degraded`` and an ``alerts`` list, for load balancers and people, but no restart follows.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from . import __version__
from .backends import BackendUnavailable, SqlDatabase
from .config import Settings
from .liveness import master_check
from .storage import PackageStore

__all__ = ["HealthChecker", "TreeSummaryCache", "repository_stats", "tree_summary"]


class HealthChecker:
    """Checks that really exercise what serving needs; cheap enough to poll every minute."""

    def __init__(self, settings: Settings, store: PackageStore, started_at: float | None = None,
                 db: SqlDatabase | None = None) -> None:
        self.settings = settings
        self.store = store
        self.db = db
        self.started_at = started_at or time.time()

    def uptime_s(self) -> float:
        return round(time.time() - self.started_at, 3)

    def live(self) -> tuple[bool, dict[str, Any]]:
        """Liveness: conditions a restart can fix (the master's heartbeat)."""
        checks = {"master": master_check(self.settings.master_stale_s)}
        alive = all(c["ok"] for c in checks.values())
        return alive, {"status": "ok" if alive else "unhealthy", "checks": checks, **self._about()}

    def check(self) -> tuple[bool, dict[str, Any]]:
        """Readiness: liveness plus what serving needs; ``degraded`` when only the latter fails."""
        alive, live_doc = self.live()
        ready_checks = {
            "packages_dir": self._packages_readable(),
            "data_dir": self._data_writable(),
            "disk": self._disk_free(),
            "index": self._index_loadable(),
        }
        if self.db is not None:
            ready_checks["database"] = self._database_answers()
        if self.store.remote:
            ready_checks["storage"] = self._storage_answers()
        ready = all(c["ok"] for c in ready_checks.values())
        status = "ok" if alive and ready else "degraded" if alive else "unhealthy"
        alerts = [f"{name}: {c.get('error', 'failed')}" for name, c in
                  {**live_doc["checks"], **ready_checks}.items() if not c["ok"]]
        return alive and ready, {
            "status": status,
            "live": alive,
            "checks": {**ready_checks, **live_doc["checks"]},
            "alerts": alerts,
            **self._about(),
        }

    def _about(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "uptime_s": self.uptime_s(),
            "pid": os.getpid(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _packages_readable(self) -> dict[str, Any]:
        root = self.settings.packages_dir
        try:
            with os.scandir(root) as it:
                next(it, None)
            ok = os.access(root, os.R_OK | os.X_OK)
            return {"ok": ok, "path": str(root)} if ok else {"ok": False, "error": "not readable"}
        except OSError as exc:
            return {"ok": False, "path": str(root), "error": exc.strerror or str(exc)}

    def _data_writable(self) -> dict[str, Any]:
        root = self.settings.data_dir
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=root, prefix=".health-") as fh:
                fh.write(b"ok")
                fh.flush()
            return {"ok": True, "path": str(root)}
        except OSError as exc:
            return {"ok": False, "path": str(root), "error": exc.strerror or str(exc)}

    def _disk_free(self) -> dict[str, Any]:
        try:
            usage = shutil.disk_usage(self.settings.packages_dir)
        except OSError as exc:
            return {"ok": False, "error": exc.strerror or str(exc)}
        free_mb = usage.free // (1024 * 1024)
        low = free_mb < self.settings.min_free_disk_mb
        return {
            "ok": not low,
            **({"error": f"{free_mb} MB free, below min_free_disk_mb ({self.settings.min_free_disk_mb})"}
               if low else {}),
            "free_mb": free_mb,
            "total_mb": usage.total // (1024 * 1024),
            "min_free_mb": self.settings.min_free_disk_mb,
        }

    def _database_answers(self) -> dict[str, Any]:
        """The shared database answers a query (a down PostgreSQL: not ready, no restart)."""
        assert self.db is not None
        engine = self.db.dialect  # the URL (a path, or a host) only in the error, masked
        try:
            self.db.check()
        except BackendUnavailable as exc:
            return {"ok": False, "engine": engine, "error": str(exc)}
        except Exception as exc:  # the check must report, never raise
            return {"ok": False, "engine": engine, "error": f"database {self.db.url}: {type(exc).__name__}: {exc}"}
        return {"ok": True, "engine": engine}

    def _storage_answers(self) -> dict[str, Any]:
        """The shared bucket answers (issue 14): unreachable means not ready, no restart."""
        try:
            self.store.check_storage()
        except BackendUnavailable as exc:
            return {"ok": False, "url": self.store.url, "error": str(exc)}
        except Exception as exc:  # the check must report, never raise
            return {"ok": False, "url": self.store.url, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True, "url": self.store.url}

    def _index_loadable(self) -> dict[str, Any]:
        try:
            return {"ok": True, "projects": len(self.store.projects())}
        except Exception as exc:  # the check must report, never raise
            return {"ok": False, "error": str(exc)}


def tree_summary(root: Path | PackageStore) -> dict[str, Any]:
    """Counts from a stat walk of the tree (no hashing): exactly the files the pages list
    (``PackageStore.scan_project``: wrong-project, legacy-format and escaping files are
    skipped the same way here, issue 10)."""
    projects: dict[str, dict[str, int]] = {}
    newest: list[tuple[int, str, str, int]] = []
    wheels = sdists = total_bytes = 0
    store = root if isinstance(root, PackageStore) else PackageStore(root)  # a long-lived one caches
    for name, entries in store.iter_all():
        if not entries:
            continue
        info = projects.setdefault(name, {"files": 0, "bytes": 0})
        for entry in entries:
            wheels += entry.dist.is_wheel
            sdists += not entry.dist.is_wheel
            total_bytes += entry.size
            info["files"] += 1
            info["bytes"] += entry.size
            newest.append((entry.mtime_ns, name, entry.filename, entry.size))
    newest.sort(reverse=True)
    largest = sorted(projects.items(), key=lambda kv: kv[1]["bytes"], reverse=True)[:10]
    return {
        "projects": len(projects),
        "files": wheels + sdists,
        "wheels": wheels,
        "sdists": sdists,
        "total_bytes": total_bytes,
        "largest_projects": [{"name": n, **v} for n, v in largest],
        "newest_files": [
            {"project": n, "filename": fn, "size": size,
             "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mt / 1e9))}
            for mt, n, fn, size in newest[:10]
        ],
    }


class TreeSummaryCache:
    """:func:`tree_summary` reused for ``ttl_s`` and while the root directory is unchanged
    (issue 10: a stat of every file per ``/stats`` request let anyone load the server).

    A new or removed project changes the root's mtime and shows at once; a file added to
    an existing project shows within ``ttl_s``. One walk at a time per process: callers
    arriving during a walk wait for it instead of starting their own.
    """

    def __init__(self, store: PackageStore, ttl_s: float) -> None:
        self.store = store
        self.root = store.root
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._key: tuple[int, int] | None = None
        self._at = 0.0

    def _root_key(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.root)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_ino

    def get(self) -> dict[str, Any]:
        with self._lock:
            key = self._root_key()
            now = time.monotonic()
            if self._value is None or key != self._key or now - self._at >= self.ttl_s:
                self._value = tree_summary(self.store)
                self._key, self._at = key, now
            return self._value


def _service_memory() -> dict[str, int]:
    """RSS of this process and of the whole service (the Gunicorn master and its workers)."""
    me = psutil.Process()
    worker_rss = me.memory_info().rss
    service_rss = worker_rss
    try:
        parent = me.parent()
        if parent is not None and "gunicorn" in " ".join(parent.cmdline()):
            service_rss = parent.memory_info().rss + sum(
                c.memory_info().rss for c in parent.children(recursive=True)
            )
    except (psutil.Error, OSError):
        pass
    return {"worker_rss_bytes": worker_rss, "service_rss_bytes": service_rss}


def repository_stats(settings: Settings, uptime_s: float, extra: dict[str, Any] | None = None,
                     tree: TreeSummaryCache | None = None, store: PackageStore | None = None) -> dict[str, Any]:
    """``/stats``: the tree summary (from ``tree``, the app's cache, when given) and more."""
    stats = dict(tree.get() if tree is not None else tree_summary(store or settings.packages_dir))
    stats.update({"uptime_s": uptime_s, "memory": _service_memory(), "version": __version__})
    if extra:
        stats.update(extra)
    return stats
