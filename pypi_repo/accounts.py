"""Self-service accounts and project management behind the web UI (issue 12).

The rules, all checked here and not in the views:

- Account and project management need a *password* login. A session opened with an API
  token acts only within that token's rights (upload or read), as on PyPI, where tokens
  never log in to the site at all.
- Changing a password needs the current one, checked through ``AuthService.authenticate``
  (so it is rate limited and failures are audited like any other login).
- A user sees, creates and revokes only their own tokens. A token may be scoped to projects
  the user may upload to, or to names not in the tree yet (for a first upload); it can never
  widen its user's rights (``check_upload`` narrows by both).
- The owners of a project (role ``owner``) and all-projects users manage it: they grant and
  revoke the roles ``manage_repo.py user grant`` grants (``maintainer`` uploads, ``owner``
  also manages) and yank or un-yank a version or one file, like ``manage_repo.py yank``
  (PEP 592). A project never loses its last owner here: the check and the change share one
  transaction.
- Every change is in the audit log with the user as actor, under the CLI's action names.

Who uploaded a file, when and with which client comes from the upload's audit record
(actor, time, and the ``User-Agent`` that ``accept_upload`` appends after ``UA_MARK``). The
indexes this module adds on ``audit_log(target)`` and ``audit_log(actor)`` make that a few
index probes per project page, never a scan of the log.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from .auth import SCOPES, AuditEntry, AuthService, Principal, TokenInfo, validate_username
from .auth_schema import clean_text, migrations_for, name_equals
from .distfiles import canonical_project_name, parse_distribution_filename
from .errors import AuthenticationFailed, Conflict, InvalidFilename, InvalidName, NotFound, PermissionDenied, PypiRepoError
from .storage import FileEntry, PackageStore
from .uploads import UA_MARK

__all__ = ["Accounts", "UploadRecord", "ProjectRole", "ROLES", "EXPIRY_DAYS", "client_tool", "short_detail"]

ROLES = ("maintainer", "owner")
EXPIRY_DAYS = (30, 90, 365)
MAX_REASON = 300
MAX_DESCRIPTION = 100
_IN_CHUNK = 500  # SQLite host parameters per IN (...) list
_IDENTICAL = "identical file already stored"

MIGRATIONS = (
    """
    CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log (target);
    CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (actor);
    """,
)
# PostgreSQL (issue 14): the actor range of recent_uploads() compares bytes, whatever the
# database's collation, so its index is in the "C" collation.
POSTGRES_MIGRATIONS = (
    """
    CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log (target);
    CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (actor COLLATE "C");
    """,
)
_BYTEWISE = {"sqlite": "actor", "postgresql": 'actor COLLATE "C"'}


@dataclass(frozen=True)
class UploadRecord:
    """One stored upload, from its audit record."""

    filename: str
    project: str
    at: float
    uploader: str  # the user name (a token's owner), or the CLI operator
    token_id: str | None
    tool: str  # "twine 7.0.0", "uv 0.5.1", "a web browser", "manage_repo.py", or ""
    client_addr: str


@dataclass(frozen=True)
class ProjectRole:
    project: str
    role: str


def client_tool(user_agent: str, actor: str = "") -> str:
    """``twine/7.0.0 pkginfo/1.12 ...`` -> ``twine 7.0.0``: the first product token only.

    The value is what the client claims (as on PyPI's "Uploaded via"); it is shown escaped.
    """
    if not user_agent:
        return "manage_repo.py" if actor.startswith("cli:") else ""
    product = user_agent.split()[0]
    name, _, version = product.partition("/")
    if name.lower() == "mozilla":
        return "a web browser"
    name, version = name[:30], version[:30]
    return f"{name} {version}".strip()


def _split_actor(actor: str) -> tuple[str, str | None]:
    """``alice (token 1a2b)`` -> (``alice``, ``1a2b``): the inverse of ``Principal.display``."""
    name, sep, rest = actor.partition(" (token ")
    return (name, rest.rstrip(")")) if sep else (actor, None)


def _record(row, project: str | None = None) -> UploadRecord | None:
    detail, _, user_agent = row["detail"].partition(UA_MARK)
    if _IDENTICAL in detail:
        return None  # a repeated identical upload: the first one is the file's origin
    if project is None:
        try:
            project = parse_distribution_filename(row["target"]).name
        except InvalidFilename:
            return None
    uploader, token_id = _split_actor(row["actor"])
    return UploadRecord(row["target"], project, row["at"], uploader, token_id,
                        client_tool(user_agent, row["actor"]), row["client_addr"])


def short_detail(detail: str) -> str:
    """An audit detail for people: a shortened sha256, "via" for the user agent."""
    if detail.startswith("sha256 ") and len(detail) >= 71:
        detail = f"sha256 {detail[7:19]}\u2026{detail[71:]}"
    return detail.replace(UA_MARK, "; via ")


def _one_line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


def files_matching(entries: Sequence[FileEntry], selector: str) -> list[FileEntry]:
    """The files a selector names, as ``manage_repo.py yank PROJECT SELECTOR``: one file
    name, or every file of one version."""
    try:
        dist = parse_distribution_filename(selector)
        chosen = [e for e in entries if e.filename == dist.filename]
    except InvalidFilename:
        try:
            version = Version(selector)
        except InvalidVersion:
            raise PypiRepoError(f"{selector[:100]!r} is neither a file name nor a version") from None
        chosen = [e for e in entries if e.dist.version == version]
    if not chosen:
        raise NotFound(f"nothing matches {selector[:100]!r}")
    return chosen


class Accounts:
    """Account self-service and project management over :class:`AuthService` and the tree."""

    def __init__(self, auth: AuthService, store: PackageStore) -> None:
        self.auth = auth
        self.store = store

    def _db(self):
        db = self.auth.db
        db.migrate("auth", migrations_for(db.dialect))  # the audit log must exist before its indexes
        db.migrate("accounts", POSTGRES_MIGRATIONS if db.dialect == "postgresql" else MIGRATIONS)
        return db

    # ------------------------------------------------------------ who may do what
    @staticmethod
    def require_password_login(principal: Principal) -> None:
        if principal.token_id is not None:
            raise PermissionDenied("This session was opened with an API token. Log out and log in with "
                                   "your password to manage your account or projects.")

    def role_of(self, principal: Principal, project: NormalizedName) -> str | None:
        rows = self._db().query("SELECT role FROM project_roles WHERE project = ? AND user_id = ?",
                                (project, principal.user_id))
        return rows[0]["role"] if rows else None

    def can_manage(self, principal: Principal | None, project: NormalizedName) -> bool:
        if principal is None or principal.token_id is not None or principal.user_id <= 0:
            return False
        return principal.all_projects or self.role_of(principal, project) == "owner"

    def check_manage(self, principal: Principal, project: NormalizedName) -> None:
        """Raise PermissionDenied unless ``principal`` may manage ``project`` (its owners)."""
        self.require_password_login(principal)
        if project not in self.store.projects():
            raise NotFound(f"no project named {project!r}")
        if not self.can_manage(principal, project):
            raise PermissionDenied(f"{principal.username} is not an owner of {project}")

    # ------------------------------------------------------------ what a user has
    def projects_of(self, username: str) -> list[ProjectRole]:
        rows = self._db().query(
            "SELECT r.project, r.role FROM project_roles r JOIN users u ON u.id = r.user_id "
            f"WHERE {name_equals(self.auth.db.dialect, 'u.name')} ORDER BY r.project", (username,))
        return [ProjectRole(r["project"], r["role"]) for r in rows]

    def tokens_of(self, username: str) -> list[TokenInfo]:
        return self.auth.list_tokens(username) if username else []

    def recent_uploads(self, username: str, limit: int = 20) -> list[UploadRecord]:
        """The user's latest stored uploads, by password or by any of their tokens."""
        actor = _BYTEWISE[self.auth.db.dialect]
        rows = self._db().query(
            "SELECT at, actor, target, client_addr, detail FROM audit_log "
            f"WHERE {actor} >= ? AND {actor} <= ? AND action = 'upload' AND outcome = 'ok' "
            "ORDER BY id DESC LIMIT ?", (username, username + " (token \x7f", limit * 2))
        records = [r for r in map(_record, rows) if r is not None and r.uploader == username]
        return records[:limit]

    def upload_records(self, filenames: Iterable[str]) -> dict[str, UploadRecord]:
        """filename -> who stored it, from the latest ``upload`` record since its last ``remove``
        (the caller knows the project: ``UploadRecord.project`` is left empty)."""
        names = sorted(set(filenames))
        found: dict[str, UploadRecord] = {}
        for i in range(0, len(names), _IN_CHUNK):
            chunk = names[i:i + _IN_CHUNK]
            rows = self._db().query(
                "SELECT id, at, actor, action, target, client_addr, detail FROM audit_log "
                f"WHERE target IN ({','.join('?' * len(chunk))}) AND action IN ('upload', 'remove') "
                "AND outcome = 'ok' ORDER BY id", chunk)
            for row in rows:
                if row["action"] == "remove":
                    found.pop(row["target"], None)
                elif (record := _record(row, project="")) is not None:
                    found[record.filename] = record
        return found

    def project_history(self, project: NormalizedName, filenames: Iterable[str],
                        limit: int = 50) -> list[AuditEntry]:
        """The latest audit entries about a project and its files, newest first."""
        targets = sorted({project, *filenames})
        entries: list[tuple[int, AuditEntry]] = []
        for i in range(0, len(targets), _IN_CHUNK):
            chunk = targets[i:i + _IN_CHUNK]
            rows = self._db().query(
                "SELECT id, at, actor, action, target, client_addr, outcome, detail FROM audit_log "
                f"WHERE target IN ({','.join('?' * len(chunk))}) ORDER BY id DESC LIMIT ?", (*chunk, limit))
            entries += [(r["id"], AuditEntry(r["at"], r["actor"], r["action"], r["target"], r["client_addr"],
                                             r["outcome"], r["detail"])) for r in rows]
        entries.sort(key=lambda item: -item[0])
        return [entry for _, entry in entries[:limit]]

    # ------------------------------------------------------------ the user's own account
    def change_password(self, principal: Principal, current: str, new: str, repeat: str, *,
                        client_addr: str) -> None:
        """Set a new password after checking the current one (AuthService ends the sessions)."""
        self.require_password_login(principal)
        if new != repeat:
            raise PypiRepoError("The two new passwords differ.")
        try:
            who = self.auth.authenticate(principal.username, current, client_addr)
        except AuthenticationFailed:
            raise AuthenticationFailed("The current password is wrong.") from None
        if who.token_id is not None or who.user_id != principal.user_id:
            raise AuthenticationFailed("The current password is wrong.")
        self.auth.set_password(principal.username, new, actor=principal.display, client_addr=client_addr)

    def create_token(self, principal: Principal, *, scope: str, projects: Iterable[str],
                     expires_days: int | None, description: str, client_addr: str) -> tuple[str, str]:
        """A new token of the user's; returns ``(token_id, secret)``, the secret shown once."""
        self.require_password_login(principal)
        if scope not in SCOPES:
            raise PypiRepoError(f"The scope must be one of {', '.join(SCOPES)}.")
        if expires_days is not None and expires_days not in EXPIRY_DAYS:
            raise PypiRepoError("Choose an expiry from the list.")
        chosen = set()
        for name in filter(None, (p.strip() for p in projects)):
            try:
                chosen.add(canonical_project_name(name))
            except InvalidName:
                raise PypiRepoError(f"{name[:100]!r} is not a valid project name.") from None
        existing = self.store.projects()
        for project in sorted(chosen):
            if project in existing and not principal.all_projects and self.role_of(principal, project) is None:
                raise PermissionDenied(f"You may not upload to {project}, so a token cannot either.")
        expires_at = time.time() + expires_days * 86400 if expires_days else None
        return self.auth.create_token(principal.username, scope=scope, projects=sorted(chosen),
                                      expires_at=expires_at, description=_one_line(description, MAX_DESCRIPTION),
                                      actor=principal.display, client_addr=client_addr)

    def own_token(self, principal: Principal, token_id: str) -> TokenInfo:
        self.require_password_login(principal)
        found = next((t for t in self.tokens_of(principal.username) if t.id == token_id), None)
        if found is None:  # the same answer whether the token is someone else's or none at all
            raise NotFound(f"you have no token {token_id[:20]!r}")
        return found

    def revoke_token(self, principal: Principal, token_id: str, *, client_addr: str) -> None:
        token = self.own_token(principal, token_id)
        self.auth.revoke_token(token.id, actor=principal.display, client_addr=client_addr)

    # ------------------------------------------------------------ project roles
    def roles(self, project: NormalizedName) -> list[tuple[str, str]]:
        return self.auth.project_roles(project)

    def grant(self, principal: Principal, project: NormalizedName, username: str, role: str, *,
              client_addr: str) -> None:
        """Give ``username`` a role on ``project`` (or change it), as ``user grant --role``."""
        self.check_manage(principal, project)
        if role not in ROLES:
            raise PypiRepoError(f"The role must be one of {', '.join(ROLES)}.")
        validate_username(username.strip())
        with self._db().transaction() as conn:
            user = conn.execute(f"SELECT id, name FROM users WHERE {name_equals(self.auth.db.dialect)}",
                                (username.strip(),)).fetchone()
            if user is None:
                raise NotFound(f"There is no user named {username.strip()!r}.")
            self._keep_an_owner(conn, project, user["id"], user["name"], demoting=role != "owner")
            conn.execute(
                "INSERT INTO project_roles (project, user_id, role, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(project, user_id) DO UPDATE SET role = excluded.role",
                (project, user["id"], role, time.time()))
        self.auth.audit(principal.display, "project.grant", project, client_addr, detail=f"{user['name']} as {role}")

    def revoke(self, principal: Principal, project: NormalizedName, username: str, *, client_addr: str) -> None:
        """Take ``username``'s role on ``project`` away, as ``user ungrant``."""
        self.check_manage(principal, project)
        with self._db().transaction() as conn:
            row = conn.execute(
                "SELECT u.id, u.name FROM project_roles r JOIN users u ON u.id = r.user_id "
                f"WHERE r.project = ? AND {name_equals(self.auth.db.dialect, 'u.name')}",
                (project, clean_text(username))).fetchone()
            if row is None:
                raise NotFound(f"{username[:64]} has no role on {project}.")
            self._keep_an_owner(conn, project, row["id"], row["name"], demoting=True)
            conn.execute("DELETE FROM project_roles WHERE project = ? AND user_id = ?", (project, row["id"]))
        self.auth.audit(principal.display, "project.revoke", project, client_addr, detail=row["name"])

    @staticmethod
    def _keep_an_owner(conn, project: str, user_id: int, name: str, *, demoting: bool) -> None:
        owners = [r["user_id"] for r in conn.execute(
            "SELECT user_id FROM project_roles WHERE project = ? AND role = 'owner'", (project,))]
        if demoting and owners == [user_id]:
            raise Conflict(f"{name} is the only owner of {project}; make someone else an owner first.")

    # ------------------------------------------------------------ yanking (PEP 592)
    def set_yanked(self, principal: Principal, project: NormalizedName, selector: str,
                   reason: str | None, *, client_addr: str) -> list[str]:
        """Yank (``reason`` a string, may be empty) or un-yank (``None``) a version or a file;
        returns the file names changed."""
        self.check_manage(principal, project)
        entries = files_matching(self.store.scan_project(project), selector)
        if reason is not None:
            reason = _one_line(reason, MAX_REASON)
        changed = []
        for entry in entries:
            if reason is None and entry.yanked is None:
                continue
            self.store.set_yanked(project, entry.filename, reason)
            action = "unyank" if reason is None else "yank"
            self.auth.audit(principal.display, action, entry.filename, client_addr, detail=reason or "")
            changed.append(entry.filename)
        return changed
