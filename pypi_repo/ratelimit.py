"""Failed-login limits, shared by every Gunicorn worker (and, on PostgreSQL, by every node)
through the database (issues 10 and 14).

Rules:
- A password attempt is counted under two keys: the pair (client address, account) with
  ``auth_rate_limit`` per minute, and the account alone with ``auth_account_rate_limit``
  per minute (a distributed guesser). Failures against one account never block another
  account from the same address, so one attacker behind a shared proxy or NAT cannot lock
  everybody out; the attacked account's *password* may stay locked for up to a minute, as
  on PyPI.
- API tokens are checked before any limit: a 256-bit secret cannot be guessed, so a valid
  token is never refused because of somebody else's failures. Invalid tokens are counted
  per address and answered 429 past the limit.
- Counting is atomic across workers and nodes: an attempt *reserves* its slot in one
  transaction before the (slow) password check and gives it back on success, so N parallel
  wrong guesses let at most the limit through, never more. On SQLite the transaction's
  ``BEGIN IMMEDIATE`` serializes all writers; PostgreSQL runs READ COMMITTED, where two
  counts could both see room, so the transaction first takes a transaction-scoped advisory
  lock per key (in sorted order: no deadlock), which makes count-then-insert atomic per key.
"""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .backends import SqlDatabase
from .backends.database import Transaction
from .backends.errors import DatabaseFull
from .errors import RateLimited

log = logging.getLogger(__name__)

__all__ = ["LoginLimiter", "LimitKey", "WINDOW_S"]

WINDOW_S = 60.0
KEEP_S = 10 * WINDOW_S  # rows older than this are deleted on the next write
_LOCK_CLASS = 0x7072  # the first key of the two-key advisory locks (PostgreSQL), "pr"


@dataclass(frozen=True)
class LimitKey:
    """One counter: ``key`` may see ``limit`` failures per window (0 or less: no limit)."""

    key: str
    limit: int


def account_key(username: str) -> str:
    return "account:" + _text(username.strip().lower()[:100])


def pair_key(client_addr: str, username: str) -> str:
    return f"pair:{_text(client_addr)}\x1f{_text(username.strip().lower()[:100])}"


def token_key(client_addr: str) -> str:
    return "token:" + _text(client_addr)


def _text(value: str) -> str:
    """Client-chosen text as a key both engines store (PostgreSQL's TEXT refuses NUL)."""
    return value.replace("\x00", "\\x00")


def _lock_keys(db: SqlDatabase, conn: Transaction, keys: Sequence[str]) -> None:
    """PostgreSQL: serialize this transaction with others counting the same keys (SQLite's
    ``BEGIN IMMEDIATE`` already serializes every writer)."""
    if db.dialect == "postgresql":
        for key in sorted(set(keys)):
            conn.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", (_LOCK_CLASS, key))


class LoginLimiter:
    """Sliding-window failure counters in the ``login_attempts`` table (auth migration 2)."""

    def __init__(self, db: SqlDatabase, window_s: float = WINDOW_S) -> None:
        self.db = db
        self.window_s = window_s

    def reserve(self, keys: Sequence[LimitKey]) -> str:
        """Take one slot under every key, or raise RateLimited if any key is full.

        Returns the attempt id: :meth:`release` it when the credentials were right; a
        wrong attempt keeps its slot (it *is* the failure).
        """
        keys = [k for k in keys if k.limit > 0]
        attempt = secrets.token_hex(8)
        now = time.time()
        try:
            with self.db.transaction() as conn:
                _lock_keys(self.db, conn, [item.key for item in keys])
                self._check(lambda sql, params: conn.execute(sql, params).fetchall(), keys, now)
                conn.executemany("INSERT INTO login_attempts (attempt, key, at) VALUES (?, ?, ?)",
                                 [(attempt, item.key, now) for item in keys])
                conn.execute("DELETE FROM login_attempts WHERE at < ?", (now - KEEP_S,))
        except DatabaseFull as exc:
            # A full data disk (issue 9): the limits still hold (reading works), this
            # attempt is just not counted, so logins and uploads get their real answer.
            log.warning("login limiter cannot record an attempt: %s", exc)
            self._check(self.db.query, keys, now)
            return ""
        return attempt

    def _check(self, run: Callable[[str, Sequence], list], keys: Sequence[LimitKey], now: float) -> None:
        """Raise RateLimited if any key is full (``run`` runs a query, in or out of a transaction)."""
        for item in keys:
            count = run("SELECT COUNT(*) FROM login_attempts WHERE key = ? AND at > ?",
                        (item.key, now - self.window_s))[0][0]
            if count >= item.limit:
                raise RateLimited("too many failed logins; try again in a minute")

    def release(self, attempt: str) -> None:
        """The attempt succeeded: it does not count as a failure."""
        if not attempt:
            return
        try:
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM login_attempts WHERE attempt = ?", (attempt,))
        except DatabaseFull as exc:
            log.warning("login limiter cannot release an attempt: %s", exc)

    def record_failure(self, key: LimitKey) -> None:
        """Count a failure that was checked first (tokens); raise RateLimited past the limit."""
        if key.limit <= 0:
            return
        now = time.time()
        try:
            with self.db.transaction() as conn:
                _lock_keys(self.db, conn, [key.key])
                count = conn.execute("SELECT COUNT(*) FROM login_attempts WHERE key = ? AND at > ?",
                                     (key.key, now - self.window_s)).fetchone()[0]
                conn.execute("INSERT INTO login_attempts (attempt, key, at) VALUES (?, ?, ?)",
                             (secrets.token_hex(8), key.key, now))
        except DatabaseFull as exc:
            log.warning("login limiter cannot record a failure: %s", exc)
            self._check(self.db.query, [key], now)
            return
        if count >= key.limit:
            raise RateLimited("too many failed logins; try again in a minute")
