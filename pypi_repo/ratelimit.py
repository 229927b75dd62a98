"""Failed-login limits, shared by every Gunicorn worker through the SQLite database (issue 10).

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
- Counting is atomic across workers: an attempt *reserves* its slot in one ``BEGIN
  IMMEDIATE`` transaction before the (slow) password check and gives it back on success,
  so N parallel wrong guesses let at most the limit through, never more.
"""
from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Sequence

from .db import Database
from .errors import RateLimited

log = logging.getLogger(__name__)

__all__ = ["LoginLimiter", "LimitKey", "WINDOW_S"]

WINDOW_S = 60.0
KEEP_S = 10 * WINDOW_S  # rows older than this are deleted on the next write


@dataclass(frozen=True)
class LimitKey:
    """One counter: ``key`` may see ``limit`` failures per window (0 or less: no limit)."""

    key: str
    limit: int


def account_key(username: str) -> str:
    return "account:" + username.strip().lower()[:100]


def pair_key(client_addr: str, username: str) -> str:
    return f"pair:{client_addr}\0{username.strip().lower()[:100]}"


def token_key(client_addr: str) -> str:
    return "token:" + client_addr


def _disk_full(exc: sqlite3.OperationalError) -> bool:
    return "full" in str(exc)


class LoginLimiter:
    """Sliding-window failure counters in the ``login_attempts`` table (auth migration 2)."""

    def __init__(self, db: Database, window_s: float = WINDOW_S) -> None:
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
                self._check(conn, keys, now)
                conn.executemany("INSERT INTO login_attempts (attempt, key, at) VALUES (?, ?, ?)",
                                 [(attempt, item.key, now) for item in keys])
                conn.execute("DELETE FROM login_attempts WHERE at < ?", (now - KEEP_S,))
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
            # A full data disk (issue 9): the limits still hold (reading works), this
            # attempt is just not counted, so logins and uploads get their real answer.
            log.warning("login limiter cannot record an attempt: %s", exc)
            self._check(self.db.connection(), keys, now)
            return ""
        return attempt

    def _check(self, conn, keys: Sequence[LimitKey], now: float) -> None:
        for item in keys:
            count = conn.execute("SELECT COUNT(*) FROM login_attempts WHERE key = ? AND at > ?",
                                 (item.key, now - self.window_s)).fetchone()[0]
            if count >= item.limit:
                raise RateLimited("too many failed logins; try again in a minute")

    def release(self, attempt: str) -> None:
        """The attempt succeeded: it does not count as a failure."""
        if not attempt:
            return
        try:
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM login_attempts WHERE attempt = ?", (attempt,))
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
            log.warning("login limiter cannot release an attempt: %s", exc)

    def record_failure(self, key: LimitKey) -> None:
        """Count a failure that was checked first (tokens); raise RateLimited past the limit."""
        if key.limit <= 0:
            return
        now = time.time()
        try:
            with self.db.transaction() as conn:
                count = conn.execute("SELECT COUNT(*) FROM login_attempts WHERE key = ? AND at > ?",
                                     (key.key, now - self.window_s)).fetchone()[0]
                conn.execute("INSERT INTO login_attempts (attempt, key, at) VALUES (?, ?, ?)",
                             (secrets.token_hex(8), key.key, now))
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
            log.warning("login limiter cannot record a failure: %s", exc)
            self._check(self.db.connection(), [key], now)
            return
        if count >= key.limit:
            raise RateLimited("too many failed logins; try again in a minute")
