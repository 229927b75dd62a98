"""Users, API tokens, project permissions, failed-login rate limits and the audit log.

Rules (issue 4):
- Passwords are argon2 hashes (argon2-cffi); tokens are random, shown once, stored as a
  sha256 of their secret (they are long and random, so a slow hash adds nothing).
- A token is sent as the password, with the user name ``__token__`` (as on PyPI) or the
  name of the user it belongs to (so ``http://alice:<token>@host/simple/`` works).
- A user may upload to every project (``all_projects``) or to the projects they own or
  were granted. The first uploader of a *new* project becomes its owner. A project that is
  already in the tree but has no owner (copied in by hand) needs an all-projects user or
  a grant. A token may narrow its user's rights to some projects and to ``read``.
- Failed logins are limited per (address, account) and per account, atomically across
  workers; valid tokens are never limited (rules in :mod:`pypi_repo.ratelimit`).
- Browser sessions live in the database, bound to the user's random uuid, and end on
  logout, password change, removal and token revocation (:mod:`pypi_repo.sessions`).
- Every failure and every change is written to the audit log: who, what, when, from where.
  Counting failures for metrics is an event hook (``on_failure``) passed in at start-up.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from typing import Callable, Iterable

from packaging.utils import NormalizedName

from .auth_schema import AuditEntry, Principal, TokenInfo, UserInfo, clean_text, migrations_for, name_equals
from .backends import BackendUnavailable, SqlDatabase, open_database
from .config import Settings
from .distfiles import canonical_project_name
from .errors import AuthenticationFailed, NotFound, PermissionDenied, PypiRepoError
from .passwords import PasswordChecker, check_password_quality
from .ratelimit import LimitKey, LoginLimiter, account_key, pair_key, token_key
from .sessions import WebSessions

__all__ = [
    "AuthService",
    "Principal",
    "UserInfo",
    "TokenInfo",
    "AuditEntry",
    "TOKEN_USERNAME",
    "SCOPES",
    "validate_username",
]

log = logging.getLogger(__name__)

TOKEN_USERNAME = "__token__"
TOKEN_PREFIX = "prt-"
SCOPES = ("upload", "read")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOKEN_ID = re.compile(r"^[0-9a-f]{12}$")

FailureHook = Callable[[str], None]


def validate_username(name: str) -> str:
    if name == TOKEN_USERNAME or not _USERNAME.match(name or ""):
        raise PypiRepoError(
            f"invalid user name {name[:80]!r}: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


class AuthService:
    """Authentication and authorization over the shared :class:`SqlDatabase` (SQLite or
    PostgreSQL, issue 14: the same SQL on both, ``?`` placeholders)."""

    def __init__(self, settings: Settings, db: SqlDatabase | None = None, *,
                 on_failure: FailureHook | None = None) -> None:
        """``db``: the database the app or CLI opened once (without one, ``database_url`` is
        opened here: scripts and tests). ``on_failure(reason)`` is called once per refused
        authentication (metrics observe it; the web app passes the hook in at start-up)."""
        self.settings = settings
        self.db = db if db is not None else open_database(settings.database_url, settings.data_dir)
        self.limiter = LoginLimiter(self.db)
        self.sessions = WebSessions(self.db)
        self._on_failure = on_failure
        self.passwords = PasswordChecker(settings)

    # ------------------------------------------------------------ plumbing
    def _db(self) -> SqlDatabase:
        self.db.migrate("auth", migrations_for(self.db.dialect))
        return self.db

    def _name_is(self, column: str = "name") -> str:
        return name_equals(self.db.dialect, column)

    def audit(self, actor: str, action: str, target: str = "", client_addr: str = "",
              outcome: str = "ok", detail: str = "") -> None:
        """Append to the audit log (and the application log, for ``tail -f`` operators)."""
        self._db().execute(
            "INSERT INTO audit_log (at, actor, action, target, client_addr, outcome, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), clean_text(actor), action, clean_text(target), clean_text(client_addr), outcome,
             clean_text(detail[:500])),
        )
        level = logging.INFO if outcome == "ok" else logging.WARNING
        log.log(level, "audit: %s %s %s from %s: %s %s", actor, action, target, client_addr or "-",
                outcome, detail)

    def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        rows = self._db().query(
            "SELECT at, actor, action, target, client_addr, outcome, detail FROM audit_log "
            "ORDER BY id DESC LIMIT ?", (limit,))
        return [AuditEntry(**dict(row)) for row in rows]

    # ------------------------------------------------------------ users
    def has_users(self) -> bool:
        return bool(self._db().query("SELECT 1 FROM users LIMIT 1"))

    def _user_row(self, name: str):
        rows = self._db().query(f"SELECT * FROM users WHERE {self._name_is()}", (clean_text(name),))
        if not rows:
            raise NotFound(f"no user named {name!r}")
        return rows[0]

    def add_user(self, name: str, password: str, *, all_projects: bool = False,
                 actor: str = "cli", client_addr: str = "local") -> None:
        validate_username(name)
        check_password_quality(password)
        password_hash = self.passwords.hash(password)
        with self._db().transaction() as conn:
            if conn.execute(f"SELECT 1 FROM users WHERE {self._name_is()}", (name,)).fetchone():
                raise PypiRepoError(f"user {name!r} already exists")
            conn.execute(
                "INSERT INTO users (name, password_hash, all_projects, created_at, uuid) VALUES (?, ?, ?, ?, ?)",
                (name, password_hash, int(all_projects), time.time(), secrets.token_hex(16)),
            )
        self.audit(actor, "user.add", name, client_addr,
                   detail="all projects" if all_projects else "")

    def remove_user(self, name: str, *, actor: str = "cli", client_addr: str = "local") -> None:
        user = self._user_row(name)
        with self._db().transaction() as conn:
            self.sessions.end_for_user(conn, user["id"])
            conn.execute("DELETE FROM users WHERE id = ?", (user["id"],))
        self.passwords.forget_all()
        self.audit(actor, "user.remove", name, client_addr)

    def set_password(self, name: str, password: str, *, actor: str = "cli",
                     client_addr: str = "local") -> None:
        """Change the password (CLI ``user passwd``, account pages): every session ends."""
        user = self._user_row(name)
        check_password_quality(password)
        password_hash = self.passwords.hash(password)
        with self._db().transaction() as conn:
            conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user["id"]))
            self.sessions.end_for_user(conn, user["id"])
        self.passwords.forget_all()
        self.audit(actor, "user.passwd", name, client_addr)

    def set_all_projects(self, name: str, value: bool, *, actor: str = "cli",
                         client_addr: str = "local") -> None:
        user = self._user_row(name)
        with self._db().transaction() as conn:
            conn.execute("UPDATE users SET all_projects = ? WHERE id = ?", (int(value), user["id"]))
        self.audit(actor, "user.all_projects", name, client_addr, detail=str(value).lower())

    def list_users(self) -> list[UserInfo]:
        users = self._db().query("SELECT id, name, all_projects, created_at FROM users ORDER BY lower(name), name")
        roles = self._db().query("SELECT user_id, project, role FROM project_roles ORDER BY project")
        by_user: dict[int, list[tuple[str, str]]] = {}
        for row in roles:
            by_user.setdefault(row["user_id"], []).append((row["project"], row["role"]))
        return [UserInfo(u["name"], bool(u["all_projects"]), u["created_at"], tuple(by_user.get(u["id"], ())))
                for u in users]

    # ------------------------------------------------------------ project roles
    def grant(self, name: str, project: str, role: str = "maintainer", *, actor: str = "cli",
              client_addr: str = "local") -> None:
        user = self._user_row(name)
        canonical = canonical_project_name(project)
        with self._db().transaction() as conn:
            conn.execute(
                "INSERT INTO project_roles (project, user_id, role, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(project, user_id) DO UPDATE SET role = excluded.role",
                (canonical, user["id"], role, time.time()),
            )
        self.audit(actor, "project.grant", canonical, client_addr, detail=f"{name} as {role}")

    def revoke_grant(self, name: str, project: str, *, actor: str = "cli",
                     client_addr: str = "local") -> None:
        user = self._user_row(name)
        canonical = canonical_project_name(project)
        with self._db().transaction() as conn:
            cur = conn.execute("DELETE FROM project_roles WHERE project = ? AND user_id = ?",
                               (canonical, user["id"]))
        if not cur.rowcount:
            raise NotFound(f"{name} has no role on {canonical}")
        self.audit(actor, "project.revoke", canonical, client_addr, detail=name)

    def project_roles(self, project: NormalizedName) -> list[tuple[str, str]]:
        rows = self._db().query(
            "SELECT u.name, r.role FROM project_roles r JOIN users u ON u.id = r.user_id "
            "WHERE r.project = ? ORDER BY r.role DESC, u.name", (project,))
        return [(r["name"], r["role"]) for r in rows]

    # ------------------------------------------------------------ tokens
    def create_token(self, name: str, *, scope: str = "upload", projects: Iterable[str] = (),
                     expires_at: float | None = None, description: str = "",
                     actor: str = "cli", client_addr: str = "local") -> tuple[str, str]:
        """Make a token for user ``name``; returns ``(token_id, secret_token)``.

        The secret is returned once and never stored: only its sha256 is kept.
        """
        if scope not in SCOPES:
            raise PypiRepoError(f"scope must be one of {', '.join(SCOPES)}")
        if expires_at is not None and expires_at <= time.time():
            raise PypiRepoError("expiry is in the past")
        user = self._user_row(name)
        project_list = sorted({canonical_project_name(p) for p in projects})
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self._db().transaction() as conn:
            conn.execute(
                "INSERT INTO tokens (id, user_id, secret_sha256, scope, projects, description, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (token_id, user["id"], _sha256(secret), scope, ",".join(project_list),
                 clean_text(description), time.time(), expires_at),
            )
        self.audit(actor, "token.create", token_id, client_addr,
                   detail=f"user {name}, scope {scope}, projects {','.join(project_list) or 'all'}")
        return token_id, f"{TOKEN_PREFIX}{token_id}-{secret}"

    def revoke_token(self, token_id: str, *, actor: str = "cli", client_addr: str = "local") -> None:
        token_id = token_id.removeprefix(TOKEN_PREFIX).split("-", 1)[0]
        with self._db().transaction() as conn:
            self.sessions.end_for_token(conn, token_id)
            cur = conn.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
        if not cur.rowcount:
            raise NotFound(f"no token {token_id!r}")
        self.audit(actor, "token.revoke", token_id, client_addr)

    def list_tokens(self, name: str | None = None) -> list[TokenInfo]:
        sql = ("SELECT t.*, u.name AS username FROM tokens t JOIN users u ON u.id = t.user_id")
        params: tuple = ()
        if name:
            sql += f" WHERE {self._name_is('u.name')}"
            params = (name,)
        rows = self._db().query(sql + " ORDER BY t.created_at", params)
        return [TokenInfo(r["id"], r["username"], r["scope"], tuple(filter(None, r["projects"].split(","))),
                          r["description"], r["created_at"], r["expires_at"], r["last_used_at"])
                for r in rows]

    # ------------------------------------------------------------ authentication
    def authenticate(self, username: str | None, password: str | None, client_addr: str) -> Principal:
        """Check Basic-auth credentials; raises AuthenticationFailed or RateLimited.

        Tokens are checked before any limit (a valid token is never refused); passwords
        reserve a slot under the (address, account) and account limits first.
        """
        client_addr = client_addr or "unknown"
        self._db()
        if not username or not password:
            raise AuthenticationFailed("credentials required")
        if password.startswith(TOKEN_PREFIX) or username == TOKEN_USERNAME:
            try:
                return self._authenticate_token(username, password)
            except AuthenticationFailed as exc:
                self._refuse(username, client_addr, str(exc), "token")
                self.limiter.record_failure(LimitKey(token_key(client_addr), self.settings.auth_rate_limit))
                raise AuthenticationFailed("invalid credentials") from None
        return self._authenticate_password(username, password, client_addr)

    def _refuse(self, username: str, client_addr: str, detail: str, reason: str) -> None:
        if self._on_failure is not None and reason != "rate_limited":
            self._on_failure(reason)
        self.audit(username[:100], "auth", "", client_addr, outcome="denied", detail=detail)

    def _password_limits(self, username: str, client_addr: str) -> list[LimitKey]:
        return [LimitKey(pair_key(client_addr, username), self.settings.auth_rate_limit),
                LimitKey(account_key(username), self.settings.auth_account_rate_limit)]

    def _authenticate_password(self, username: str, password: str, client_addr: str) -> Principal:
        rows = self._db().query(f"SELECT * FROM users WHERE {self._name_is()}", (username,)) \
            if "\x00" not in username else []
        user = rows[0] if rows else None
        key = b""
        if user is not None:
            key = self.passwords.cache_key(user["name"], password, user["password_hash"])
            if self.passwords.recently_verified(key):  # verified right in the last minute: no guess
                return Principal(user["name"], user["id"], bool(user["all_projects"]))
        try:
            attempt = self.limiter.reserve(self._password_limits(username, client_addr))
        except PypiRepoError:
            self._refuse(username, client_addr, "rate limited", "rate_limited")
            raise
        if user is None:
            self.passwords.verify_dummy(password)
            self._refuse(username, client_addr, "unknown user", "password")
            raise AuthenticationFailed("invalid credentials")
        if not self.passwords.verify(user["password_hash"], password):
            self._refuse(username, client_addr, "wrong password", "password")
            raise AuthenticationFailed("invalid credentials")
        self.limiter.release(attempt)
        self.passwords.remember(key)
        if self.passwords.needs_rehash(user["password_hash"]):
            self._write_softly("UPDATE users SET password_hash = ? WHERE id = ?",
                               (self.passwords.hash(password), user["id"]), "rehash the password of", user["name"])
        return Principal(user["name"], user["id"], bool(user["all_projects"]))

    def _authenticate_token(self, username: str, token: str) -> Principal:
        if not token.startswith(TOKEN_PREFIX):
            raise AuthenticationFailed("not a valid token")
        token_id, _, secret = token.removeprefix(TOKEN_PREFIX).partition("-")
        if not _TOKEN_ID.match(token_id):
            raise AuthenticationFailed("not a valid token")
        rows = self._db().query(
            "SELECT t.*, u.name AS username, u.all_projects FROM tokens t "
            "JOIN users u ON u.id = t.user_id WHERE t.id = ?", (token_id,))
        if not rows or not hmac.compare_digest(rows[0]["secret_sha256"], _sha256(secret)):
            raise AuthenticationFailed("unknown token")
        row = rows[0]
        if username != TOKEN_USERNAME and username.lower() != row["username"].lower():
            raise AuthenticationFailed(f"token {token_id} does not belong to {username}")
        now = time.time()
        if row["expires_at"] is not None and row["expires_at"] <= now:
            raise AuthenticationFailed(f"token {token_id} has expired")
        if row["last_used_at"] is None or now - row["last_used_at"] > 60:
            self._write_softly("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, token_id),
                               "record the use of token", token_id)
        projects = frozenset(filter(None, row["projects"].split(","))) or None
        return Principal(row["username"], row["user_id"], bool(row["all_projects"]),
                         scope=row["scope"], token_id=token_id, token_projects=projects)

    def _write_softly(self, sql: str, params: tuple, what: str, target: str) -> None:
        """A bookkeeping write that must not fail the request it rides on: with a full data
        disk or a database that just went away, log it and go on (the credentials were
        already checked; the next use tries again)."""
        try:
            self.db.execute(sql, params)
        except (self.db.Error, BackendUnavailable, OSError) as exc:
            log.warning("could not %s %s (continuing): %s", what, target, exc)

    # ------------------------------------------------------------ browser sessions
    def start_session(self, principal: Principal) -> str:
        """A database session for a principal that just logged in; returns the cookie's id."""
        self._db()
        return self.sessions.start(principal.user_id, principal.token_id, self.settings.session_hours * 3600)

    def session_principal(self, session_id: str) -> Principal | None:
        """The principal of a live session, read fresh (None: ended, expired or invalid)."""
        self._db()
        row = self.sessions.resolve(session_id)
        if row is None:
            return None
        return Principal(row.username, row.user_id, row.all_projects, scope=row.scope,
                         token_id=row.token_id, token_projects=row.token_projects)

    def end_session(self, session_id: str) -> None:
        self._db()
        self.sessions.end(session_id)

    # ------------------------------------------------------------ authorization
    @staticmethod
    def operator(name: str) -> Principal:
        """The local operator (``manage_repo.py``): every right, no database user, owns nothing."""
        return Principal(name, 0, all_projects=True)

    def check_read(self, principal: Principal) -> None:
        """Every authenticated principal may read (read and upload scopes both include it)."""

    def check_upload(self, principal: Principal, project: NormalizedName, *,
                     exists: bool = True) -> None:
        """Raise PermissionDenied unless ``principal`` may upload to ``project``.

        ``exists`` says whether the project is already in the tree; a project nobody owns
        and that is not in the tree may be created by anyone allowed to upload.
        """
        if principal.scope != "upload":
            raise PermissionDenied(f"token {principal.token_id} is read-only")
        if principal.token_projects is not None and project not in principal.token_projects:
            raise PermissionDenied(f"token {principal.token_id} may not upload to {project}")
        if principal.all_projects:
            return
        roles = self._db().query("SELECT user_id FROM project_roles WHERE project = ?", (project,))
        if any(r["user_id"] == principal.user_id for r in roles):
            return
        if not roles and not exists:
            return
        grant = f"python3 manage_repo.py user grant {principal.username} {project}"
        if not roles:
            raise PermissionDenied(f"{principal.username} may not upload to {project}: it has no owner yet; "
                                   f"an operator grants the right with: {grant}")
        raise PermissionDenied(f"{principal.username} may not upload to {project}: ask an owner, or an "
                               f"operator can grant the right with: {grant}")

    def claim_project(self, principal: Principal, project: NormalizedName, *, exists: bool,
                      client_addr: str = "", audit: tuple[str, str, str] | None = None) -> Callable[[], None]:
        """Re-check permission, make the first uploader of a new project its owner, and write
        ``audit`` (action, target, detail), all in one transaction: two users racing to
        create a project cannot both win, and a file is never stored without its audit
        record (issue 9). Returns an undo for when the publish that follows fails."""
        with self._db().transaction() as conn:
            owners = conn.execute("SELECT user_id FROM project_roles WHERE project = ?",
                                  (project,)).fetchall()
            claimed = not owners and not exists and principal.user_id > 0
            if claimed:
                conn.execute(
                    "INSERT INTO project_roles (project, user_id, role, created_at) VALUES (?, ?, 'owner', ?)",
                    (project, principal.user_id, time.time()))
            else:
                self.check_upload(principal, project, exists=True)
            rows = [("project.create", project, f"{principal.username} is owner")] if claimed else []
            rows += [audit] if audit else []
            ids = [conn.execute(
                "INSERT INTO audit_log (at, actor, action, target, client_addr, outcome, detail) "
                "VALUES (?, ?, ?, ?, ?, 'ok', ?) RETURNING id",
                (time.time(), principal.display, action, target, clean_text(client_addr),
                 clean_text(detail[:500]))).fetchone()[0]
                for action, target, detail in rows]
        for action, target, detail in rows:
            log.info("audit: %s %s %s from %s: ok %s", principal.display, action, target, client_addr or "-", detail)

        def undo() -> None:
            with self._db().transaction() as conn:
                conn.executemany("DELETE FROM audit_log WHERE id = ?", [(i,) for i in ids])
                if claimed:
                    conn.execute("DELETE FROM project_roles WHERE project = ? AND user_id = ?",
                                 (project, principal.user_id))

        return undo


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
