"""Change serials: the one freshness rule of issue 14.

One global serial counts every write (upload, yank, removal, status change, reindex); a
project's serial is the global serial of its latest change (Warehouse's ``last_serial``).
:func:`bump_serial` runs inside the caller's write transaction, so the serial and the change
commit together or not at all; a cache keyed on ``(project, serial)`` is fresh exactly while
:func:`project_serial` (one indexed read) returns the same number.

The global row is updated first in every bump, so concurrent writers queue on one row lock
(SQLite: on its write lock) and never deadlock nor lose an increment.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .database import SqlDatabase, Transaction

__all__ = ["SERIAL_MIGRATIONS", "Serials", "ensure_schema", "bump_serial", "serials", "project_serial"]

GLOBAL = ""  # the global serial's row; no normalized project name is empty

SERIAL_MIGRATIONS: Sequence[str] = (
    "CREATE TABLE change_serials (project TEXT PRIMARY KEY, serial BIGINT NOT NULL);\n"
    "INSERT INTO change_serials (project, serial) VALUES ('', 0);",
)


@dataclass(frozen=True)
class Serials:
    last: int  # the global serial
    projects: dict[str, int]  # project -> serial of its latest change


def ensure_schema(db: SqlDatabase) -> None:
    db.migrate("serials", SERIAL_MIGRATIONS)


def bump_serial(tx: Transaction, project: str) -> int:
    """Record a change of ``project`` in the open transaction ``tx``; returns its new serial."""
    if not project:
        raise ValueError("bump_serial needs a project name")
    serial = tx.execute("UPDATE change_serials SET serial = serial + 1 WHERE project = ? "
                        "RETURNING serial", (GLOBAL,)).fetchone()[0]
    tx.execute("INSERT INTO change_serials (project, serial) VALUES (?, ?) "
               "ON CONFLICT (project) DO UPDATE SET serial = excluded.serial", (project, serial))
    return int(serial)


def project_serial(db: SqlDatabase, project: str) -> int:
    """The serial of ``project``'s latest change (0: never changed). One primary-key read."""
    rows = db.query("SELECT serial FROM change_serials WHERE project = ?", (project,))
    return int(rows[0][0]) if rows else 0


def serials(db: SqlDatabase, projects: Sequence[str] | None = None) -> Serials:
    """The global serial and the serials of ``projects`` (all when None) in one read."""
    if projects is None:
        rows = db.query("SELECT project, serial FROM change_serials")
    else:
        marks = ", ".join("?" for _ in (GLOBAL, *projects))
        rows = db.query(f"SELECT project, serial FROM change_serials WHERE project IN ({marks})",
                        (GLOBAL, *projects))
    found = {row[0]: int(row[1]) for row in rows}
    return Serials(found.pop(GLOBAL, 0), found)
