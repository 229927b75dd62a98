"""Download counting: per file, per day (UTC) and per client kind, kept in the shared database
(SQLite under ``data_dir``, or PostgreSQL with ``database_url``: the counts of every node add up).

Counting must never slow a download (issue 6): the request only bumps a counter in a
per-process buffer; a background thread writes the buffer in one transaction (an upsert
that adds, so concurrent writers never lose a count) every ``downloads_flush_seconds`` (or
sooner once ``FLUSH_EVENTS`` are pending). Every Gunicorn worker has its own buffer, thread
and connection (opened lazily after the fork by the :class:`SqlDatabase`); a flush that
fails (database down, disk full) keeps its counts for the next one.
The buffer is flushed on graceful shutdown (``atexit`` and Gunicorn's ``worker_exit``
hook), so a restart loses nothing and a crash loses at most one flush interval.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable

from .backends import BackendUnavailable, SqlDatabase, open_database
from .backends.sqlite import SqliteDatabase
from .config import Settings

__all__ = [
    "CLIENT_KINDS",
    "DownloadRecorder",
    "classify_user_agent",
    "database",
    "download_counts",
    "download_summary",
    "init",
    "top_projects",
]

log = logging.getLogger(__name__)

CLIENT_KINDS = ("pip", "uv", "poetry", "twine", "browser", "other")
FLUSH_EVENTS = 500  # pending downloads that wake the flusher before its interval ends

# pypi_repo.db migrations of the "downloads" component: append, never edit.
MIGRATIONS = ("""
CREATE TABLE download_counts (
    day      TEXT NOT NULL,     -- YYYY-MM-DD, UTC
    project  TEXT NOT NULL,     -- normalized name (PEP 503)
    filename TEXT NOT NULL,
    client   TEXT NOT NULL,     -- one of CLIENT_KINDS
    count    INTEGER NOT NULL,
    PRIMARY KEY (day, project, filename, client)
) WITHOUT ROWID;
CREATE INDEX download_counts_by_project ON download_counts (project, day);
""",)
POSTGRES_MIGRATIONS = ("""
CREATE TABLE download_counts (
    day      TEXT NOT NULL,
    project  TEXT NOT NULL,
    filename TEXT NOT NULL,
    client   TEXT NOT NULL,
    count    BIGINT NOT NULL,
    PRIMARY KEY (day, project, filename, client)
);
CREATE INDEX download_counts_by_project ON download_counts (project, day);
""",)

_UPSERT = (
    "INSERT INTO download_counts (day, project, filename, client, count) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (day, project, filename, client) DO UPDATE SET count = download_counts.count + excluded.count"
)

# First product token of the User-Agent -> client kind. Like linehaul (the parser behind
# PyPI's public download statistics), only the leading "product/version" is trusted:
# pip sends "pip/24.0 {json}", uv "uv/0.5.1 {json}", poetry "poetry/1.8.3", twine
# "twine/5.1.1 ...", browsers "Mozilla/5.0 (...)".
_PRODUCTS = {
    "pip": "pip",
    "uv": "uv",
    "poetry": "poetry",
    "python-poetry": "poetry",
    "twine": "twine",
    "mozilla": "browser",
    "opera": "browser",
}


def classify_user_agent(user_agent: str | None) -> str:
    """The client kind (one of :data:`CLIENT_KINDS`) a User-Agent header names."""
    if not user_agent:
        return "other"
    product = user_agent.lstrip().split("/", 1)[0].split(" ", 1)[0].lower()
    return _PRODUCTS.get(product, "other")


def database(where: Path | Settings | SqlDatabase) -> SqlDatabase:
    """The shared database with the download tables in place (migrated once per process):
    the app's or CLI's (a ``SqlDatabase``), ``database_url`` of a ``Settings``, or a SQLite file."""
    if isinstance(where, Settings):
        db: SqlDatabase = open_database(where.database_url, where.data_dir)
    elif isinstance(where, (str, Path)):
        db = SqliteDatabase(Path(where))
    else:
        db = where
    db.migrate("downloads", POSTGRES_MIGRATIONS if db.dialect == "postgresql" else MIGRATIONS)
    return db


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


class UtcDay:
    """Today's UTC date as ``YYYY-MM-DD``, formatted once a day (strftime per download is
    measurable); the recorder's default clock."""

    def __init__(self) -> None:
        self._day = -1
        self._text = ""

    def __call__(self) -> str:
        day = int(time.time() // 86400)
        if day != self._day:
            self._text = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
            self._day = day
        return self._text


class DownloadRecorder:
    """Buffers download events in memory and writes them to the database in batches."""

    def __init__(self, db: SqlDatabase, flush_seconds: float = 1.0, clock: Callable[[], str] | None = None) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self._clock = clock or UtcDay()
        self._pending: Counter[tuple[str, str, str, str]] = Counter()
        self._lock = threading.Lock()  # guards _pending
        self._write_lock = threading.Lock()  # one writer at a time per process
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._failing = False  # the last flush failed: say so once, not once a second

    def record(self, project: str, filename: str, client: str) -> None:
        """Count one download; O(1), no I/O: the flusher thread does the writing."""
        key = (self._clock(), project, filename, client)
        with self._lock:
            self._pending[key] += 1
            backlog = len(self._pending)
        if self._pid != os.getpid():
            self._start()
        if backlog >= FLUSH_EVENTS:
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return sum(self._pending.values())

    def flush(self) -> int:
        """Write what is pending in one transaction; returns the number of downloads written."""
        with self._lock:
            batch, self._pending = self._pending, Counter()
        if not batch:
            return 0
        rows = [(*key, count) for key, count in batch.items()]
        try:
            with self._write_lock, self.db.transaction() as conn:
                conn.executemany(_UPSERT, rows)
        except (self.db.Error, BackendUnavailable, OSError) as exc:
            # A full data disk fails every flush (each second, in each worker): one error with
            # the traceback, then quiet until a flush succeeds again (issue 9, full data disk).
            if not self._failing:
                log.exception("could not write %d download counts; keeping them until a flush succeeds",
                              len(rows))
            else:
                log.debug("still cannot write %d download counts: %s", len(rows), exc)
            self._failing = True
            with self._lock:
                self._pending.update(batch)
            return 0
        if self._failing:
            log.warning("download counts written again (%d pending ones)", len(rows))
            self._failing = False
        return sum(batch.values())

    def close(self) -> None:
        """Stop the flusher and write the rest: called at worker exit (idempotent)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=10)
        self.flush()

    def _start(self) -> None:
        """Start this process's flusher (lazily: threads do not survive a fork)."""
        with self._write_lock:
            if self._pid == os.getpid():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="download-flusher", daemon=True)
            self._thread.start()
            self._pid = os.getpid()
        atexit.register(self.close)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()
        self.db.close()


DownloadObserver = Callable[[str, str], None]  # (project, client kind)


def init(svc: Any, db: SqlDatabase | None = None, observers: Iterable[DownloadObserver] = ()) -> None:
    """Register the download hook and the ``/stats`` provider on the app's services.

    ``svc`` is :class:`pypi_repo.web.app.Services`, ``db`` the database the app opened (default
    ``svc.db``); ``web/files.py`` calls
    ``svc.extras["on_download"](project, filename, request)`` after every successful GET.
    ``observers`` (the metrics counter, passed in by the app) see every counted download.
    """
    settings: Settings = svc.settings
    recorder = None
    observers = tuple(observers)
    if settings.count_downloads:
        recorder = DownloadRecorder(database(db if db is not None else svc.db), settings.downloads_flush_seconds)
        svc.extras["downloads"] = recorder
        svc.extras.setdefault("stats_providers", {})["downloads"] = lambda: _summary_or_reason(svc)
    if recorder is None and not observers:
        return

    def on_download(project: str, filename: str, request: Any) -> None:
        if filename.endswith(".metadata"):
            return  # PEP 658 metadata is not a download of the distribution
        client = classify_user_agent(request.headers.get("User-Agent"))
        if recorder is not None:
            recorder.record(project, filename, client)
        for observe in observers:
            observe(project, client)

    svc.extras["on_download"] = on_download


def _summary_or_reason(svc: Any) -> dict[str, Any]:
    """``/stats`` answers while the database is down: the counts say why they are missing."""
    try:
        return download_summary(svc)
    except BackendUnavailable as exc:
        log.warning("/stats without download counts: %s", exc)
        return {"error": "the database is unavailable"}


# ---------------------------------------------------------------------------- queries
def _query(source: Any, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
    """Rows from the app's database (``source`` a Services, or a ``SqlDatabase``), or from
    ``database_url`` of a Settings (opened for this query only; an absent SQLite file: no rows)."""
    if isinstance(source, Settings):
        if not source.database_url and not source.database_path.exists():
            return []  # nothing was ever counted (and a read creates no file)
        db = database(source)
        try:
            return _plain(db.query(sql, tuple(params)))
        finally:
            db.close()
    db = database(source if hasattr(source, "dialect") else source.db)
    return _plain(db.query(sql, tuple(params)))


def _plain(rows: Iterable[Any]) -> list[tuple]:
    """Rows as tuples of plain values (PostgreSQL's ``SUM(bigint)`` is a ``Decimal``)."""
    return [tuple(int(v) if isinstance(v, Decimal) else v for v in row) for row in rows]


def download_counts(source: Any, project: str, days: int = 30) -> dict[str, Any]:
    """Counts for one project (for its UI page): total, last ``days`` days, per file, per client.

    ``project`` must be the normalized name. Counts lag by at most one flush interval.
    """
    since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - days * 86400))
    rows = _query(source,
                  "SELECT day, filename, client, count FROM download_counts WHERE project = ?", (project,))
    by_file: Counter[str] = Counter()
    by_client: Counter[str] = Counter()
    recent = 0
    for day, filename, client, count in rows:
        by_file[filename] += count
        by_client[client] += count
        if day >= since:
            recent += count
    return {
        "total": sum(by_file.values()),
        f"last_{days}_days": recent,
        "by_file": dict(by_file.most_common()),
        "by_client": dict(by_client.most_common()),
    }


def top_projects(source: Any, top: int) -> list[tuple[str, int]]:
    """The ``top`` most downloaded projects, all time: ``[(project, downloads)]``."""
    return [(p, n) for p, n in _query(source, "SELECT project, SUM(count) FROM download_counts "
                                                      "GROUP BY project ORDER BY 2 DESC, 1 LIMIT ?", (top,))]


def download_summary(source: Any, top: int = 10) -> dict[str, Any]:
    """Totals for ``/stats``: all time, today, by client, and the most downloaded projects."""
    totals = _query(source,
                    "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(CASE WHEN day = ? THEN count END), 0) "
                    "FROM download_counts", (_today(),))
    clients = _query(source,
                     "SELECT client, SUM(count) FROM download_counts GROUP BY client ORDER BY 2 DESC")
    projects = _query(source, "SELECT project, SUM(count) FROM download_counts GROUP BY project "
                                       "ORDER BY 2 DESC, 1 LIMIT ?", (top,))
    total, today_count = totals[0] if totals else (0, 0)
    return {
        "total": total,
        "today": today_count,
        "by_client": {c: n for c, n in clients},
        "top_projects": [{"name": p, "downloads": n} for p, n in projects],
    }
