"""Health checks and repository statistics (Flask-free; served by ``web/ops.py``)."""
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
from .config import Settings
from .storage import YANK_SUFFIX, PackageStore

__all__ = ["HealthChecker", "TreeSummaryCache", "repository_stats", "tree_summary"]


class HealthChecker:
    """Checks that really exercise what serving needs; cheap enough to poll every minute."""

    def __init__(self, settings: Settings, store: PackageStore, started_at: float | None = None) -> None:
        self.settings = settings
        self.store = store
        self.started_at = started_at or time.time()

    def uptime_s(self) -> float:
        return round(time.time() - self.started_at, 3)

    def check(self) -> tuple[bool, dict[str, Any]]:
        checks = {
            "packages_dir": self._packages_readable(),
            "data_dir": self._data_writable(),
            "disk": self._disk_free(),
            "index": self._index_loadable(),
        }
        healthy = all(c["ok"] for c in checks.values())
        return healthy, {
            "status": "ok" if healthy else "unhealthy",
            "checks": checks,
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
        return {
            "ok": free_mb >= self.settings.min_free_disk_mb,
            "free_mb": free_mb,
            "total_mb": usage.total // (1024 * 1024),
            "min_free_mb": self.settings.min_free_disk_mb,
        }

    def _index_loadable(self) -> dict[str, Any]:
        try:
            return {"ok": True, "projects": len(self.store.projects())}
        except Exception as exc:  # the check must report, never raise
            return {"ok": False, "error": str(exc)}


def tree_summary(root: Path) -> dict[str, Any]:
    """Counts from a stat walk of the tree (no parsing, no hashing): fast at 120,000 files."""
    projects: dict[str, dict[str, int]] = {}
    newest: list[tuple[int, str, str, int]] = []
    wheels = sdists = total_bytes = 0
    store = PackageStore(root)
    for name, dirnames in store.projects().items():
        info = projects.setdefault(name, {"files": 0, "bytes": 0})
        for dirname in dirnames:
            try:
                with os.scandir(root / dirname) as it:
                    for entry in it:
                        fn = entry.name
                        if fn.startswith(".") or fn.endswith(YANK_SUFFIX):
                            continue
                        is_wheel = fn.endswith(".whl")
                        if not (is_wheel or fn.endswith((".tar.gz", ".zip"))):
                            continue
                        try:
                            st = entry.stat()
                        except OSError:
                            continue
                        wheels += is_wheel
                        sdists += not is_wheel
                        total_bytes += st.st_size
                        info["files"] += 1
                        info["bytes"] += st.st_size
                        newest.append((st.st_mtime_ns, name, fn, st.st_size))
            except OSError:
                continue
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

    def __init__(self, root: Path, ttl_s: float) -> None:
        self.root = root
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
                self._value = tree_summary(self.root)
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
                     tree: TreeSummaryCache | None = None) -> dict[str, Any]:
    """``/stats``: the tree summary (from ``tree``, the app's cache, when given) and more."""
    stats = dict(tree.get() if tree is not None else tree_summary(settings.packages_dir))
    stats.update({"uptime_s": uptime_s, "memory": _service_memory(), "version": __version__})
    if extra:
        stats.update(extra)
    return stats
