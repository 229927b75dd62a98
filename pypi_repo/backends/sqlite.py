"""SQLite as a :class:`~pypi_repo.backends.database.SqlDatabase`: the embedded default.

A thin adapter over the existing :class:`pypi_repo.db.Database` (WAL, per-thread and
fork-safe connections, ``BEGIN IMMEDIATE``, numbered migrations), so both keep one behaviour.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from ..db import Database
from .errors import BackendUnavailable

__all__ = ["SqliteDatabase"]


class SqliteDatabase:
    dialect = "sqlite"
    IntegrityError = sqlite3.IntegrityError

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._db = Database(self.path)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db.transaction() as conn:
            yield conn

    def query(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        return self._db.query(sql, params)

    def execute(self, sql: str, params: Sequence = ()) -> int:
        return self._db.connection().execute(sql, params).rowcount

    def migrate(self, component: str, scripts: Sequence[str]) -> int:
        return self._db.migrate(component, scripts)

    def check(self) -> None:
        try:
            self._db.query("SELECT 1")
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"database {self.url}: {exc}") from None

    def close(self) -> None:
        self._db.close()
