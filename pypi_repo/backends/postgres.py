"""PostgreSQL as a :class:`~pypi_repo.backends.database.SqlDatabase` (issue 14).

psycopg 3 with a ``psycopg_pool.ConnectionPool`` per process: the pool is made lazily and
made again after a ``fork`` (Gunicorn forks its workers; a connection must never be used by
two processes, and libpq's own ``__del__`` leaves the parent's sockets alone). Connections
are checked on checkout, so a restarted server costs one retry, not an error.

Every connection gets short limits, added to whatever the URL says: ``connect_timeout``,
``statement_timeout``, ``lock_timeout`` and ``idle_in_transaction_session_timeout``. A
server that is down, unreachable or too slow raises ``BackendUnavailable`` with the reason
within about ``connect_timeout_s + acquire_timeout_s``, never a hang.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from .database import Row, qmark_to_pyformat
from .errors import BackendUnavailable, DatabaseFull

__all__ = ["PostgresDatabase", "display_url"]

_MIGRATE_LOCK = 0x7079_7069_5F72_6570 & 0x7FFF_FFFF_FFFF_FFFF  # "pypi_rep": one advisory lock id


def display_url(params: dict) -> str:
    """``postgresql://user@host:port/db`` from conninfo parameters, without the password."""
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    user = f"{params['user']}@" if params.get("user") else ""
    if host.startswith("/"):
        return f"postgresql://{user}/{params.get('dbname', '')}?host={host}{port.replace(':', '&port=')}"
    return f"postgresql://{user}{host}{port}/{params.get('dbname', '')}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _row_factory(cursor: psycopg.Cursor):
    names = [col.name for col in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}
    return lambda values: Row(values, index)


class _Tx:
    """The transaction handle: ``?`` placeholders, cursors with fetchone/fetchall/rowcount."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence = ()) -> psycopg.Cursor:
        return self._conn.execute(qmark_to_pyformat(sql), tuple(params))

    def executemany(self, sql: str, seq: Sequence[Sequence]) -> psycopg.Cursor:
        cur = self._conn.cursor()
        cur.executemany(qmark_to_pyformat(sql), [tuple(p) for p in seq])
        return cur


class PostgresDatabase:
    dialect = "postgresql"
    IntegrityError = psycopg.IntegrityError
    Error = psycopg.Error

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout_s: float = 3.0,
                 statement_timeout_s: float = 15.0, acquire_timeout_s: float = 5.0) -> None:
        params = conninfo_to_dict(url)  # raises ProgrammingError on a malformed URL
        self.url = display_url(params)
        limits = (f"-c statement_timeout={int(statement_timeout_s * 1000)} "
                  f"-c lock_timeout={int(min(statement_timeout_s, 5.0) * 1000)} "
                  "-c idle_in_transaction_session_timeout=60000")
        params["options"] = f"{params.get('options', '')} {limits}".strip()
        params.setdefault("connect_timeout", str(max(1, int(connect_timeout_s))))
        params.setdefault("application_name", "pypi_repo")
        self._conninfo = make_conninfo(**params)
        self._pool_size = pool_size
        self._acquire_timeout_s = acquire_timeout_s
        self._pool: ConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._migrated: set[tuple[str, int]] = set()

    # ------------------------------------------------------------- connections
    def _get_pool(self) -> ConnectionPool:
        if self._pid != os.getpid():
            # A fork: the inherited pool and lock belong to the parent; start afresh
            # (closing it here would talk over the parent's sockets).
            self._lock = threading.Lock()
            self._pool, self._pid = None, os.getpid()
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    pool = ConnectionPool(
                        self._conninfo, min_size=1, max_size=self._pool_size, open=False,
                        kwargs={"autocommit": True, "row_factory": _row_factory},
                        check=ConnectionPool.check_connection, timeout=self._acquire_timeout_s,
                        name=f"pypi_repo-{os.getpid()}")
                    pool.open(wait=False)
                    self._pool = pool
        return self._pool

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        """The reason, in one line: from the error, or from one direct connection attempt."""
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, PoolTimeout):
            try:
                psycopg.connect(self._conninfo).close()
            except psycopg.Error as direct:
                reason = (str(direct).strip().splitlines() or [type(direct).__name__])[0]
            else:
                reason = f"no free connection within {self._acquire_timeout_s:g} s (pool of {self._pool_size})"
        return BackendUnavailable(f"database {self.url} unavailable: {reason}")

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            with self._get_pool().connection() as conn:
                yield conn
        except psycopg.errors.DiskFull as exc:
            raise DatabaseFull(f"database {self.url}: the disk is full ({_first_line(exc)})") from None
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise self._unavailable(exc) from None

    # ---------------------------------------------------------------- interface
    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        with self._connection() as conn:
            with conn.transaction():
                yield _Tx(conn)

    def query(self, sql: str, params: Sequence = ()) -> list[Any]:
        with self._connection() as conn:
            return conn.execute(qmark_to_pyformat(sql), tuple(params)).fetchall()

    def execute(self, sql: str, params: Sequence = ()) -> int:
        with self._connection() as conn:
            return conn.execute(qmark_to_pyformat(sql), tuple(params)).rowcount

    def migrate(self, component: str, scripts: Sequence[str]) -> int:
        """Numbered scripts like ``pypi_repo.db``; nodes serialize on an advisory lock."""
        if (component, len(scripts)) in self._migrated:
            return len(scripts)
        with self.transaction() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATE_LOCK,))
            tx.execute("CREATE TABLE IF NOT EXISTS schema_versions ("
                       "component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            row = tx.execute("SELECT version FROM schema_versions WHERE component = ?",
                             (component,)).fetchone()
            current = row["version"] if row else 0
            if current > len(scripts):
                raise RuntimeError(f"database {self.url} has {component} schema v{current}, "
                                   f"newer than this code (v{len(scripts)})")
            for script in scripts[current:]:
                tx._conn.execute(script)  # no parameters: several statements are fine
            tx.execute("INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                       "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                       (component, len(scripts)))
        self._migrated.add((component, len(scripts)))
        return len(scripts)

    def check(self) -> None:
        self.query("SELECT 1")

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None
