"""The auth component's tables and the records :class:`~pypi_repo.auth.AuthService` returns.

Migrations of the ``auth`` component of :mod:`pypi_repo.db`: append, never edit.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Principal", "UserInfo", "TokenInfo", "AuditEntry"]

MIGRATIONS = (
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        all_projects INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        secret_sha256 TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('upload', 'read')),
        projects TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expires_at REAL,
        last_used_at REAL
    );
    CREATE TABLE project_roles (
        project TEXT NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('owner', 'maintainer')),
        created_at REAL NOT NULL,
        PRIMARY KEY (project, user_id)
    );
    CREATE TABLE auth_failures (
        client_addr TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX auth_failures_by_addr ON auth_failures (client_addr, at);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        client_addr TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL DEFAULT 'ok',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_log_by_time ON audit_log (at);
    """,
    # 2 (issue 10): a random uuid per user (numeric ids are reused by SQLite), sessions in
    # the database, login attempts keyed per (address, account) and per account.
    """
    ALTER TABLE users ADD COLUMN uuid TEXT;
    UPDATE users SET uuid = lower(hex(randomblob(16))) WHERE uuid IS NULL;
    CREATE UNIQUE INDEX users_by_uuid ON users (uuid);
    CREATE TABLE web_sessions (
        id_sha256 TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        user_uuid TEXT NOT NULL,
        token_id TEXT REFERENCES tokens(id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX web_sessions_by_user ON web_sessions (user_id);
    CREATE INDEX web_sessions_by_token ON web_sessions (token_id);
    CREATE TABLE login_attempts (
        attempt TEXT NOT NULL,
        key TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX login_attempts_by_key ON login_attempts (key, at);
    CREATE INDEX login_attempts_by_time ON login_attempts (at);
    CREATE INDEX login_attempts_by_attempt ON login_attempts (attempt);
    DROP TABLE auth_failures;
    """,
)


@dataclass(frozen=True)
class Principal:
    """Who a request is: a user, possibly acting through a token that narrows their rights."""

    username: str
    user_id: int
    all_projects: bool
    scope: str = "upload"  # a password login has every scope
    token_id: str | None = None
    token_projects: frozenset[str] | None = None  # None: not narrowed

    @property
    def display(self) -> str:
        return f"{self.username} (token {self.token_id})" if self.token_id else self.username


@dataclass(frozen=True)
class UserInfo:
    name: str
    all_projects: bool
    created_at: float
    projects: tuple[tuple[str, str], ...]  # (project, role)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    username: str
    scope: str
    projects: tuple[str, ...]
    description: str
    created_at: float
    expires_at: float | None
    last_used_at: float | None


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor: str
    action: str
    target: str
    client_addr: str
    outcome: str
    detail: str
