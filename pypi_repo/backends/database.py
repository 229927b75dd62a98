"""The SQL database interface (issue 14): users, tokens, audit, serials, ... on SQLite or
PostgreSQL, chosen once by :func:`pypi_repo.backends.open_database`.

**Placeholders: ``?`` everywhere** (qmark, the style the existing SQLite code already
uses). The PostgreSQL implementation translates ``?`` to ``%s`` (and a literal ``%`` to
``%%``) in one place, :func:`qmark_to_pyformat`; a ``?`` inside a quoted string or
identifier is left alone. Parameters are positional sequences.

Portable SQL both engines run unchanged: ``INSERT ... ON CONFLICT (...) DO UPDATE SET x =
excluded.x``, ``RETURNING`` (use it instead of ``lastrowid``), ``BIGINT``/``TEXT``/``REAL``
columns, ``CURRENT_TIMESTAMP``. Where a migration needs engine-specific DDL (``SERIAL`` vs
``INTEGER PRIMARY KEY``), pick the script list by :attr:`SqlDatabase.dialect`.

Rows support ``row["name"]`` and ``row[0]`` on both engines (``sqlite3.Row`` there, an
equivalent :class:`Row` here).
"""
from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

__all__ = ["SqlDatabase", "Transaction", "Cursor", "Row", "qmark_to_pyformat"]


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Transaction(Protocol):
    """What ``with db.transaction() as tx`` yields (a ``sqlite3.Connection`` fits it)."""

    def execute(self, sql: str, params: Sequence = ()) -> Cursor: ...

    def executemany(self, sql: str, seq: Sequence[Sequence]) -> Any: ...


@runtime_checkable
class SqlDatabase(Protocol):
    """One database shared by every thread, worker and node. Fork-safe (Gunicorn forks)."""

    url: str  # for logs and readiness; the password masked
    dialect: str  # "sqlite" or "postgresql"
    #: The engine's unique/foreign-key violation class (DB-API's ``connection.IntegrityError``):
    #: ``except db.IntegrityError`` works on both.
    IntegrityError: type[Exception]
    #: The engine's base error class (``sqlite3.Error`` / ``psycopg.Error``), for the few
    #: writes that must fail soft (an audit record, ``last_used_at``). A full disk raises
    #: ``DatabaseFull`` (a ``StorageFull``: 507) and an unreachable or timed-out database
    #: ``BackendUnavailable`` (503) on both engines, whatever the engine's own class.
    Error: type[Exception]

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Commit on success, roll back on any exception. SQLite takes the write lock up
        front (``BEGIN IMMEDIATE``); PostgreSQL runs READ COMMITTED, so write the row you
        read (``UPDATE ... RETURNING``) rather than read-then-write."""
        ...

    def query(self, sql: str, params: Sequence = ()) -> list[Any]:
        """All rows of one read, outside any transaction."""
        ...

    def execute(self, sql: str, params: Sequence = ()) -> int:
        """One statement in its own transaction (autocommit); returns the row count."""
        ...

    def migrate(self, component: str, scripts: Sequence[str]) -> int:
        """Bring ``component``'s tables to version ``len(scripts)`` (as ``pypi_repo.db``):
        idempotent, safe in every worker and node at once; returns the version reached.
        Runs once per process per component: later calls return at once."""
        ...

    def check(self) -> None:
        """Readiness: return if the database answers, else raise ``BackendUnavailable``."""
        ...

    def close(self) -> None: ...


class Row(Sequence):
    """A result row readable by column name or position, like ``sqlite3.Row``."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: Sequence, index: dict[str, int]) -> None:
        self._values, self._index = tuple(values), index

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator:
        return iter(self._values)

    def keys(self) -> list[str]:
        return list(self._index)

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, (Row, tuple)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values))!r})"


@functools.lru_cache(maxsize=1024)
def qmark_to_pyformat(sql: str) -> str:
    """``?`` -> ``%s`` and ``%`` -> ``%%``, outside '...' strings and "..." identifiers."""
    out, quote = [], ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)
