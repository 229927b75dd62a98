"""SQLite as a :class:`~pypi_repo.backends.database.SqlDatabase`: the embedded default.

A thin adapter over the existing :class:`pypi_repo.db.Database` (WAL, per-thread and
fork-safe connections, ``BEGIN IMMEDIATE``, numbered migrations), so both keep one behaviour.

Errors that mean "the database cannot take this now" are translated here, once, so callers
never look at ``sqlite3`` (issue 14): a full disk (``SQLITE_FULL``) raises
:class:`DatabaseFull` (a 507), a file that cannot be opened, an I/O error or a lock still
held after the busy timeout raise :class:`BackendUnavailable` (a 503). Anything else (a
programming error such as a missing table) stays a ``sqlite3.Error``, which is ``Error``.
"""
from __future__ import annotations

import shutil
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from ..db import Database
from .errors import BackendUnavailable, DatabaseFull

__all__ = ["SqliteDatabase", "translate_sqlite_error"]

_FULL_BELOW = 64 * 1024  # bytes free under which an I/O error is taken for a full disk
_UNAVAILABLE = ("unable to open", "disk i/o error", "locked", "busy", "readonly", "read-only",
                "malformed", "not a database")


def translate_sqlite_error(exc: sqlite3.Error, url: str, path: Path | None = None) -> Exception:
    """The backend error an ``sqlite3`` error stands for, or ``exc`` itself.

    A full disk shows as ``SQLITE_FULL``, and also as an I/O error when the WAL index
    (``-shm``) or the WAL cannot grow: an I/O error on a file system with no room left is
    a full disk too."""
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.IntegrityError):
        return exc
    text = str(exc).lower()
    name = getattr(exc, "sqlite_errorname", "") or ""
    if "disk is full" in text or name in ("SQLITE_FULL", "SQLITE_IOERR_SHMSIZE") or (
            name.startswith("SQLITE_IOERR") and path is not None and _no_room(path)):
        return DatabaseFull(f"database {url}: the disk is full ({exc})")
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_BUSY", "SQLITE_LOCKED",
                        "SQLITE_READONLY", "SQLITE_CORRUPT", "SQLITE_NOTADB")) \
            or any(word in text for word in _UNAVAILABLE):
        return BackendUnavailable(f"database {url} unavailable: {exc}")
    return exc


def _no_room(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < _FULL_BELOW
    except OSError:
        return False


class SqliteDatabase:
    dialect = "sqlite"
    IntegrityError = sqlite3.IntegrityError
    Error = sqlite3.Error

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._db = Database(self.path)

    def _raise(self, exc: sqlite3.Error):
        translated = translate_sqlite_error(exc, self.url, self.path)
        if translated is exc:
            raise exc
        raise translated from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._db.transaction() as conn:
                yield conn
        except sqlite3.Error as exc:
            self._raise(exc)

    def query(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        try:
            return self._db.query(sql, params)
        except sqlite3.Error as exc:
            self._raise(exc)

    def execute(self, sql: str, params: Sequence = ()) -> int:
        try:
            return self._db.connection().execute(sql, params).rowcount
        except sqlite3.Error as exc:
            self._raise(exc)

    def migrate(self, component: str, scripts: Sequence[str]) -> int:
        try:
            return self._db.migrate(component, scripts)
        except sqlite3.Error as exc:
            self._raise(exc)

    def check(self) -> None:
        """Readiness: the file opens and its schema is readable (``SELECT 1`` alone never
        touches the file)."""
        try:
            self._db.query("SELECT count(*) FROM sqlite_master")
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"database {self.url} unavailable: {exc}") from None

    def close(self) -> None:
        self._db.close()
