"""Browser sessions kept in the database, bound to things that never repeat (issue 10).

The signed cookie holds only a random 256-bit session id; the database keeps its sha256
with the user's numeric id *and* the user's random ``uuid`` (auth migration 2), and the
token the login used, if any. A session is valid while its row exists, has not expired,
and still joins a user with the same uuid (and the same, unexpired token). So a session
ends on logout (the row is deleted), on password change and on user removal (all rows of
the user are deleted, and a new user who gets the same numeric id has another uuid), and
on token revocation (the rows made with the token are deleted). Flask-free; the same SQL
on SQLite and PostgreSQL (issue 14).
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from .backends import SqlDatabase
from .backends.database import Transaction

__all__ = ["SessionRow", "WebSessions"]


@dataclass(frozen=True)
class SessionRow:
    """What a valid session resolves to, read fresh from the users and tokens tables."""

    user_id: int
    username: str
    all_projects: bool
    token_id: str | None
    scope: str
    token_projects: frozenset[str] | None


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class WebSessions:
    """Create, resolve and end sessions in the ``web_sessions`` table."""

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db

    def start(self, user_id: int, token_id: str | None, lifetime_s: float) -> str:
        """A new session for the user (and token); returns the secret id for the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT uuid FROM users WHERE id = ?", (user_id,)).fetchone()
            if row is None:
                raise LookupError(f"no user with id {user_id}")
            conn.execute(
                "INSERT INTO web_sessions (id_sha256, user_id, user_uuid, token_id, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (_digest(session_id), user_id, row["uuid"], token_id, now, now + lifetime_s))
            conn.execute("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
        return session_id

    def resolve(self, session_id: str) -> SessionRow | None:
        """The session's user as it is now, or None if the session is gone or invalid."""
        if not session_id or len(session_id) > 100:
            return None
        rows = self.db.query(
            "SELECT s.user_id, s.token_id, s.expires_at, u.name, u.all_projects, "
            "t.id AS tid, t.scope, t.projects, t.expires_at AS token_expires "
            "FROM web_sessions s JOIN users u ON u.id = s.user_id AND u.uuid = s.user_uuid "
            "LEFT JOIN tokens t ON t.id = s.token_id AND t.user_id = s.user_id "
            "WHERE s.id_sha256 = ?", (_digest(session_id),))
        if not rows:
            return None
        row = rows[0]
        now = time.time()
        if row["expires_at"] <= now:
            return None
        if row["token_id"] is not None:
            if row["tid"] is None or (row["token_expires"] is not None and row["token_expires"] <= now):
                return None
            projects = frozenset(filter(None, row["projects"].split(","))) or None
            return SessionRow(row["user_id"], row["name"], bool(row["all_projects"]), row["token_id"],
                              row["scope"], projects)
        return SessionRow(row["user_id"], row["name"], bool(row["all_projects"]), None, "upload", None)

    def end(self, session_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM web_sessions WHERE id_sha256 = ?", (_digest(session_id),))

    @staticmethod
    def end_for_user(conn: Transaction, user_id: int) -> None:
        """Inside the caller's transaction: every session of the user ends."""
        conn.execute("DELETE FROM web_sessions WHERE user_id = ?", (user_id,))

    @staticmethod
    def end_for_token(conn: Transaction, token_id: str) -> None:
        conn.execute("DELETE FROM web_sessions WHERE token_id = ?", (token_id,))
