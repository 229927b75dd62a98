"""The embedded SQLite database (``<data_dir>/pypi_repo.sqlite3``): users, tokens, owners,
rate-limit counters, the audit log, and whatever other components keep there.

Why SQLite: several Gunicorn workers (separate processes) must agree on users and on
failed-login counts; SQLite in WAL mode gives that with no server to run.

Connections are per thread and per process: a :class:`Database` opens its connection
lazily on first use in each thread and reopens after a ``fork`` (Gunicorn forks workers;
a SQLite connection must never cross a fork). The busy timeout is short: a write waits a
few seconds for another writer, then fails loudly instead of hanging a request.

Schema migrations are numbered per *component*. A component owns a list of SQL scripts;
script ``i`` takes it from version ``i`` to ``i + 1``. Another module adds its own tables
the same way, with no edit here::

    from pypi_repo.db import Database

    DOWNLOAD_MIGRATIONS = (
        "CREATE TABLE downloads (project TEXT NOT NULL, day TEXT NOT NULL, "
        "count INTEGER NOT NULL, PRIMARY KEY (project, day))",
    )

    db = Database.for_settings(settings)
    db.migrate("downloads", DOWNLOAD_MIGRATIONS)   # idempotent, safe in every worker
    with db.transaction() as conn:
        conn.execute("INSERT ...")

Never edit a released script: append a new one.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from .config import Settings

__all__ = ["Database", "connect", "BUSY_TIMEOUT_S"]

BUSY_TIMEOUT_S = 5.0


def connect(path: Path | Settings) -> sqlite3.Connection:
    """A new connection with the settings every user of the database needs.

    WAL (readers never block the writer), a short busy timeout, foreign keys on,
    autocommit mode (transactions are explicit, see :meth:`Database.transaction`).
    """
    if isinstance(path, Settings):
        path = path.database_path
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=True)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    return conn


class Database:
    """Lazily opened, per-thread, fork-safe access to one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._migrated: set[str] = set()
        self._migrate_lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Settings) -> "Database":
        return cls(settings.database_path)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened now if needed (or again after a fork)."""
        pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != pid:
            conn = connect(self.path)
            self._local.conn = conn
            self._local.pid = pid
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock up front (no upgrade deadlock)."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def migrate(self, component: str, scripts: Sequence[str]) -> int:
        """Bring ``component``'s tables to ``len(scripts)``; returns the version reached.

        Runs once per process per component; concurrent workers serialize on the write lock,
        and each script runs in the same transaction as its version bump.
        """
        if component in self._migrated:
            return len(scripts)
        with self._migrate_lock:
            with self.transaction() as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_versions ("
                    "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
                )
                row = conn.execute(
                    "SELECT version FROM schema_versions WHERE component = ?", (component,)
                ).fetchone()
                current = row["version"] if row else 0
                if current > len(scripts):
                    raise RuntimeError(
                        f"database {self.path} has {component} schema v{current}, "
                        f"newer than this code (v{len(scripts)})"
                    )
                for script in scripts[current:]:
                    for statement in _statements(script):
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    (component, len(scripts)),
                )
            self._migrated.add(component)
        return len(scripts)

    def close(self) -> None:
        """Close this thread's connection (tests, CLI exit); others close with their thread."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would COMMIT ours)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return [s for s in statements if s.rstrip(";").strip()]
