"""Prometheus metrics (prometheus-client), aggregated across Gunicorn workers.

Under Gunicorn, ``gunicorn.conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker
starts (prometheus-client picks its storage when it is first imported): every worker then
writes its counters to memory-mapped files there and a scrape answered by any worker sums
all of them. Without it (tests, ``--dev``) the metrics live in this process.

The metric objects are module-level on purpose: they are process-wide by nature (one
file per process in multiprocess mode). Domain code never calls this module: the web app
passes the ``record_*`` functions as event hooks at start-up (``AuthService(on_failure=)``,
``downloads.init(observers=)``). Names follow Prometheus conventions: ``_total`` counters,
``_seconds`` and ``_bytes`` units, bounded label values (the route is the Flask endpoint
name, never the raw path; per-project downloads come from the database, for the
``metrics_top_projects`` most downloaded projects only, issue 10). Where the multiprocess
files live and how dead workers' files are folded: ``metrics_store.py``.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from . import __version__

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CacheStatsSync",
    "IndexSizeCollector",
    "ProjectDownloadsCollector",
    "ServiceCollector",
    "multiprocess_dir",
    "record_auth_failure",
    "record_download",
    "record_request",
    "record_upload",
    "render",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

disable_created_metrics()  # no *_created series: they double the output and no dashboard uses them

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "pypi_repo_http_requests", "HTTP requests answered, by route (endpoint name), method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "pypi_repo_http_request_duration_seconds", "Time to produce a response, by route.",
    ["route"], buckets=LATENCY_BUCKETS,
)
DOWNLOADS = Counter("pypi_repo_downloads", "Distribution files downloaded (GET 200/206), all projects.")
DOWNLOAD_CLIENTS = Counter("pypi_repo_downloads_by_client", "Distribution files downloaded, by client kind.",
                           ["client"])
UPLOADS = Counter("pypi_repo_uploads", "Uploads, by result (accepted or rejected).", ["result"])
AUTH_FAILURES = Counter("pypi_repo_auth_failures", "Requests refused for bad or missing credentials.")
PAGE_CACHE = Counter("pypi_repo_page_cache_lookups", "Rendered-page cache lookups, by result (hit or miss).",
                     ["result"])

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


# Labelled children by label values: ``labels()`` takes a lock and validates on every call,
# a dict lookup does not (measured: a third of the per-request cost). Bounded by the labels'
# cardinality; rebuilt after a fork, where prometheus-client swaps the value files itself.
_children: dict[tuple, Any] = {}


def _child(metric: Any, *values: str) -> Any:
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def record_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request (called by the web layer's after-request hook)."""
    _child(HTTP_REQUESTS, route, method if method in _METHODS else "other", str(status)).inc()
    _child(HTTP_LATENCY, route).observe(seconds)


def record_download(project: str, client: str) -> None:
    """Count one download (a ``downloads.init`` observer); the project is counted in the
    database only, so the label set stays bounded."""
    DOWNLOADS.inc()
    _child(DOWNLOAD_CLIENTS, client).inc()


def record_upload(accepted: bool) -> None:
    """Count one upload attempt; publishing code calls this once per upload request."""
    _child(UPLOADS, "accepted" if accepted else "rejected").inc()


def record_auth_failure(reason: str = "") -> None:
    """Count one refused authentication (bad password or token); the web app passes this
    to :class:`~pypi_repo.auth.AuthService` as its ``on_failure`` hook."""
    AUTH_FAILURES.inc()


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


class CacheStatsSync:
    """Moves a per-process ``ProjectIndex.cache_stats`` into the shared page-cache counter.

    The index counts hits and misses in plain integers (free on the hot path); this adds
    the growth since the last sync to a Prometheus counter, so every worker's share is
    summed by the scrape.
    """

    def __init__(self, stats: Callable[[], dict[str, int]], every_s: float = 1.0) -> None:
        self._stats = stats
        self._every_s = every_s
        self._seen = {"hits": 0, "misses": 0}
        self._next = 0.0
        self._lock = threading.Lock()

    def maybe_sync(self, now: float) -> None:
        if now >= self._next:
            self.sync(now)

    def sync(self, now: float | None = None) -> None:
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._next = (now if now is not None else time.monotonic()) + self._every_s
            current = self._stats()
            for key, label in (("hits", "hit"), ("misses", "miss")):
                delta = current.get(key, 0) - self._seen[key]
                if delta > 0:
                    _child(PAGE_CACHE, label).inc(delta)
                self._seen[key] = current.get(key, 0)
        finally:
            self._lock.release()


class IndexSizeCollector:
    """Index size gauges from a summary cached for ``ttl_s``: a scrape never walks the tree
    more than once per ``ttl_s`` in each worker."""

    def __init__(self, summarize: Callable[[], dict[str, Any]], ttl_s: float = 60.0) -> None:
        self._summarize = summarize
        self._ttl_s = ttl_s
        self._cached: dict[str, Any] | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def summary(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._at > self._ttl_s:
                self._cached = self._summarize()
                self._at = now
            return self._cached

    def collect(self) -> Iterable[GaugeMetricFamily]:
        s = self.summary()
        yield GaugeMetricFamily("pypi_repo_index_projects", "Projects in the package tree.", value=s["projects"])
        files = GaugeMetricFamily("pypi_repo_index_files", "Distribution files in the package tree, by kind.",
                                  labels=["kind"])
        files.add_metric(["wheel"], s["wheels"])
        files.add_metric(["sdist"], s["sdists"])
        yield files
        yield GaugeMetricFamily("pypi_repo_index_bytes", "Bytes of distribution files in the package tree.",
                                value=s["total_bytes"])


class ProjectDownloadsCollector:
    """All-time downloads of the ``top`` most downloaded projects, from the database (so
    the series count is bounded by ``top``, not by projects x workers), cached ``ttl_s``."""

    def __init__(self, top_projects: Callable[[int], list[tuple[str, int]]], top: int, ttl_s: float) -> None:
        self._query = top_projects
        self._top = top
        self._ttl_s = ttl_s
        self._cached: list[tuple[str, int]] | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def rows(self) -> list[tuple[str, int]]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._at >= self._ttl_s:
                try:
                    self._cached = self._query(self._top)
                except Exception:  # a scrape must answer even if the database cannot
                    self._cached = self._cached or []
                self._at = now
            return self._cached

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily("pypi_repo_project_downloads",
                                     "All-time downloads of the most downloaded projects (from the database).",
                                     labels=["project"])
        if self._top > 0:
            for project, count in self.rows():
                family.add_metric([project], count)
        yield family


class ServiceCollector:
    """The whole service (Gunicorn master and workers), whichever worker answers the scrape."""

    def __init__(self, started_at: float) -> None:
        self._started_at = started_at

    @staticmethod
    def _processes() -> list[psutil.Process]:
        me = psutil.Process()
        try:
            parent = me.parent()
            if parent is not None and "gunicorn" in " ".join(parent.cmdline()):
                return [parent, *parent.children()]
        except (psutil.Error, OSError):
            pass
        return [me]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        rss = cpu = fds = 0.0
        procs = self._processes()
        for proc in procs:
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    times = proc.cpu_times()
                    cpu += times.user + times.system
                    fds += proc.num_fds()
            except (psutil.Error, OSError):
                continue
        info = GaugeMetricFamily("pypi_repo_info", "Version of pypi_repo (always 1).", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily("pypi_repo_start_time_seconds", "When this worker started (Unix time).",
                                value=self._started_at)
        yield GaugeMetricFamily("pypi_repo_service_processes", "Server processes (master and workers).",
                                value=len(procs))
        yield GaugeMetricFamily("pypi_repo_service_resident_memory_bytes",
                                "Resident memory of all server processes.", value=rss)
        yield GaugeMetricFamily("pypi_repo_service_cpu_seconds",
                                "CPU time of the live server processes (drops when a worker is replaced).",
                                value=cpu)
        yield GaugeMetricFamily("pypi_repo_service_open_fds", "Open file descriptors of all server processes.",
                                value=fds)


def render(extra_collectors: Iterable[Any]) -> bytes:
    """The exposition text: shared counters (all workers), then the per-scrape collectors."""
    mp_dir = multiprocess_dir()
    if mp_dir is not None:
        shared = CollectorRegistry()
        MultiProcessCollector(shared, path=str(mp_dir))
    else:
        shared = REGISTRY  # this process only; includes process_* and python_* metrics
    local = CollectorRegistry(auto_describe=False)
    if mp_dir is not None:
        ProcessCollector(registry=local)  # the answering worker's own process_* metrics
    for collector in extra_collectors:
        local.register(collector)
    return generate_latest(shared) + generate_latest(local)
