"""``python3 manage_repo.py``: manage the index from the server's shell.

The commands call the same services as the web app (``add`` goes through
:func:`~pypi_repo.uploads.accept_upload`, exactly like a twine upload), and every change
is written to the audit log as ``cli:<os user>`` from ``local``.

Exit codes: 0 success, 1 the operation failed or ``verify`` found problems, 2 usage error.

Adding a command from another module takes one line here: append the module's name to
:data:`EXTENSION_MODULES`; the module defines ``register(registry)`` and calls
``registry.register_command(name, help, configure_parser, handler)`` in it, where
``configure_parser(parser)`` adds arguments and ``handler(args, ctx) -> int`` runs it.
"""
from __future__ import annotations

import argparse
import getpass
import importlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence


from .accounts import files_matching
from .auth import SCOPES, AuthService, Principal
from .backends import SqlDatabase, open_database
from .config import Settings, load_settings
from .distfiles import canonical_project_name, parse_distribution_filename
from .errors import ConfigError, InvalidFilename, NotFound, PypiRepoError
from .index import ProjectIndex
from .logs import escape_control
from .s3store import check_storage_url, open_package_store
from .storage import FileEntry, PackageStore
from .maintenance import reindex, verify_derived
from .uploads import accept_upload

__all__ = ["main", "build_parser", "CommandRegistry", "CliContext", "EXTENSION_MODULES"]

EXTENSION_MODULES: tuple[str, ...] = ("pypi_repo.report",)

Handler = Callable[[argparse.Namespace, "CliContext"], int]


@dataclass
class CliContext:
    """The services a command uses, built lazily from the settings (fits UploadServices)."""

    settings: Settings
    out: object = field(default_factory=lambda: sys.stdout)
    err: object = field(default_factory=lambda: sys.stderr)

    @cached_property
    def store(self) -> PackageStore:
        return open_package_store(self.settings, self.db)  # the tree, or the shared bucket

    @cached_property
    def index(self) -> ProjectIndex:
        return ProjectIndex(self.store, self.settings.data_dir, 1 << 20)

    @cached_property
    def db(self) -> SqlDatabase:
        """The shared database (``database_url``), opened once per command."""
        return open_database(self.settings.database_url, self.settings.data_dir)

    @cached_property
    def auth(self) -> AuthService:
        return AuthService(self.settings, self.db)

    @cached_property
    def actor(self) -> str:
        try:
            return f"cli:{getpass.getuser()}"
        except Exception:  # no user name in a bare container
            return f"cli:uid{os.getuid()}"

    @property
    def principal(self) -> Principal:
        return AuthService.operator(self.actor)

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def warn(self, text: str) -> None:
        print(text, file=self.err)


class CommandRegistry:
    """Subcommands of ``manage_repo.py``; extensions add theirs with :meth:`register_command`."""

    def __init__(self, subparsers) -> None:
        self._subparsers = subparsers
        self.names: list[str] = []

    def register_command(self, name: str, help: str, configure_parser: Callable[[argparse.ArgumentParser], None],
                         handler: Handler) -> argparse.ArgumentParser:
        parser = self._subparsers.add_parser(name, help=help, description=help)
        configure_parser(parser)
        parser.set_defaults(handler=handler)
        self.names.append(name)
        return parser


# ---------------------------------------------------------------- helpers
def _files_for(ctx: CliContext, project: str, selector: str | None) -> list[FileEntry]:
    """The files of ``project`` a selector names: all, one file name, or one version."""
    canonical = canonical_project_name(project)
    entries = ctx.store.scan_project(canonical)
    if selector is None:
        return entries
    return files_matching(entries, selector)


def _collect_dist_files(paths: Sequence[Path], project: str | None = None) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                try:
                    dist = parse_distribution_filename(child.name)
                except InvalidFilename:
                    continue
                if child.is_file() and (project is None or dist.name == project):
                    found.append(child)
        elif path.is_file():
            found.append(path)
        else:
            raise NotFound(f"no such file or directory: {path}")
    return found


def _add_files(ctx: CliContext, files: Sequence[Path]) -> int:
    failures = 0
    for path in files:
        try:
            dist = parse_distribution_filename(path.name)
            form = {"name": dist.name, "version": str(dist.version)}
            with open(path, "rb") as fh:
                stored = accept_upload(ctx, ctx.principal, form, path.name, fh, client_addr="local")
        except PypiRepoError as exc:
            ctx.warn(f"{path.name}: {exc}")
            failures += 1
            continue
        ctx.say(f"{'added' if stored.created else 'unchanged'} {stored.path}")
    return 1 if failures else 0


def _parse_expiry(text: str | None) -> float | None:
    """``30d``, ``12h``, ``90m`` from now, or an ISO date/time (UTC unless it says)."""
    if not text:
        return None
    units = {"d": 86400, "h": 3600, "m": 60}
    if text[-1:] in units and text[:-1].isdigit():
        return time.time() + int(text[:-1]) * units[text[-1]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PypiRepoError(f"--expires: {text!r} is not like 30d, 12h or 2026-12-31") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise PypiRepoError("no terminal to ask for a password: use --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat: "):
        raise PypiRepoError("passwords differ")
    return first


# ---------------------------------------------------------------- package commands
def _grant_owner(ctx: CliContext, owner: str | None, projects: set[str]) -> None:
    """``--owner USER``: make USER an owner of the projects just added (issue 9: a project
    added by the operator otherwise has no owner, and the first twine upload gets 403)."""
    for project in sorted(projects):
        ctx.auth.grant(owner, project, "owner", actor=ctx.actor, client_addr="local")
        ctx.say(f"{owner} is an owner of {project}")


def _add_with_owner(ctx: CliContext, files: Sequence[Path], owner: str | None) -> int:
    if owner and not any(user.name == owner for user in ctx.auth.list_users()):
        raise NotFound(f"--owner: no user named {owner!r} (add one with: python3 manage_repo.py user add {owner})")
    code = _add_files(ctx, files)
    if owner:
        _grant_owner(ctx, owner, {n for n in (_project_of(p) for p in files) if n and ctx.store.has_files(n)})
    return code


def _project_of(path: Path) -> str | None:
    try:
        return parse_distribution_filename(path.name).name
    except InvalidFilename:
        return None


def cmd_publish(args: argparse.Namespace, ctx: CliContext) -> int:
    project = canonical_project_name(args.project)
    source = Path(args.source)
    files = _collect_dist_files([source], project)
    if not files:
        ctx.warn(f"no {project} wheels or sdists in {source}/")
        return 1
    return _add_with_owner(ctx, files, args.owner)


def cmd_add(args: argparse.Namespace, ctx: CliContext) -> int:
    files = _collect_dist_files([Path(p) for p in args.paths])
    if not files:
        ctx.warn("no wheels or sdists found")
        return 1
    return _add_with_owner(ctx, files, args.owner)


def cmd_remove(args: argparse.Namespace, ctx: CliContext) -> int:
    entries = _files_for(ctx, args.project, args.selector)
    project = canonical_project_name(args.project)
    for entry in entries:
        ctx.store.remove(project, entry.filename)
        try:
            ctx.index.metadata_path(project, entry.filename).unlink()
        except FileNotFoundError:
            pass
        ctx.auth.audit(ctx.actor, "remove", entry.filename, "local")
        ctx.say(f"removed {entry.path}")
    for directory in {e.path.parent for e in entries}:
        try:
            directory.rmdir()  # only when empty
        except OSError:
            pass
    return 0


def _set_yank(args: argparse.Namespace, ctx: CliContext, reason: str | None) -> int:
    project = canonical_project_name(args.project)
    for entry in _files_for(ctx, args.project, args.selector):
        ctx.store.set_yanked(project, entry.filename, reason)
        action = "unyank" if reason is None else "yank"
        ctx.auth.audit(ctx.actor, action, entry.filename, "local", detail=reason or "")
        ctx.say(f"{action}ed {entry.filename}")
    return 0


def cmd_yank(args: argparse.Namespace, ctx: CliContext) -> int:
    return _set_yank(args, ctx, args.reason or "")


def cmd_unyank(args: argparse.Namespace, ctx: CliContext) -> int:
    return _set_yank(args, ctx, None)


def cmd_list(args: argparse.Namespace, ctx: CliContext) -> int:
    if not args.project:
        for project, entries in ctx.store.iter_all():
            versions = {e.dist.version for e in entries}
            ctx.say(f"{project}  {len(versions)} version(s), {len(entries)} file(s)")
        return 0
    project = canonical_project_name(args.project)
    detail = ctx.index.project_detail(project)
    for f in detail.files:
        yanked = "" if f.yanked is None else f"  yanked: {f.yanked or '(no reason)'}"
        ctx.say(f"{f.filename}  {f.size} bytes  sha256={f.sha256}{yanked}")
    owners = ctx.auth.project_roles(project)
    if owners:
        ctx.say("roles: " + ", ".join(f"{name} ({role})" for name, role in owners))
    return 0


def cmd_verify(args: argparse.Namespace, ctx: CliContext) -> int:
    problems = verify_derived(ctx.store, ctx.index, fix=args.fix)
    for problem in problems:
        state = "fixed" if problem.fixed else "found"
        ctx.say(f"{state}: {problem.kind}: {problem.path}: {problem.detail}")
    remaining = [p for p in problems if not p.fixed]
    ctx.say(f"{len(problems)} problem(s), {len(remaining)} left")
    if args.fix and problems:
        ctx.auth.audit(ctx.actor, "verify.fix", "", "local", detail=f"{len(problems) - len(remaining)} fixed")
    return 1 if remaining else 0


def cmd_reindex(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.store.refresh()  # shared bucket: every node re-lists (objects other tools put there)
    count = reindex(ctx.store, ctx.index)
    ctx.auth.audit(ctx.actor, "reindex", "", "local", detail=f"{count} files")
    ctx.say(f"reindexed {count} file(s)")
    return 0


def cmd_migrate(args: argparse.Namespace, ctx: CliContext) -> int:
    """Issue 14: this install (tree + SQLite) into the shared backends; see ``pypi_repo.migrate``."""
    from .migrate import migrate, open_targets

    target_db, blob = open_targets(args.to_database, args.to_storage, ctx.settings.data_dir,
                                   ctx.settings.packages_dir)
    try:
        report = migrate(ctx.db, ctx.store, target_db=target_db, target_blob=blob, actor=ctx.actor)
    finally:
        if target_db is not None:
            target_db.close()
    for line in report.lines():
        ctx.say(line)
    return 0


# ---------------------------------------------------------------- users and tokens
def cmd_user_add(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.auth.add_user(args.name, _read_password(args), all_projects=args.all_projects,
                      actor=ctx.actor, client_addr="local")
    ctx.say(f"added user {args.name}" + (" (all projects)" if args.all_projects else ""))
    return 0


def cmd_user_remove(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.auth.remove_user(args.name, actor=ctx.actor, client_addr="local")
    ctx.say(f"removed user {args.name} and their tokens")
    return 0


def cmd_user_passwd(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.auth.set_password(args.name, _read_password(args), actor=ctx.actor, client_addr="local")
    ctx.say(f"changed the password of {args.name}")
    return 0


def cmd_user_list(args: argparse.Namespace, ctx: CliContext) -> int:
    for user in ctx.auth.list_users():
        rights = "all projects" if user.all_projects else (
            ", ".join(f"{p} ({r})" for p, r in user.projects) or "new projects only")
        ctx.say(f"{user.name}  created {_when(user.created_at)}  {rights}")
    return 0


def cmd_user_grant(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.all_projects:
        ctx.auth.set_all_projects(args.name, True, actor=ctx.actor, client_addr="local")
    for project in args.projects:
        ctx.auth.grant(args.name, project, args.role, actor=ctx.actor, client_addr="local")
    if not args.all_projects and not args.projects:
        raise PypiRepoError("name at least one PROJECT, or --all-projects")
    ctx.say(f"granted {args.name}: {', '.join(args.projects) or 'all projects'}")
    return 0


def cmd_user_ungrant(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.all_projects:
        ctx.auth.set_all_projects(args.name, False, actor=ctx.actor, client_addr="local")
    for project in args.projects:
        ctx.auth.revoke_grant(args.name, project, actor=ctx.actor, client_addr="local")
    ctx.say(f"revoked from {args.name}: {', '.join(args.projects) or 'all projects'}")
    return 0


def cmd_token_create(args: argparse.Namespace, ctx: CliContext) -> int:
    token_id, token = ctx.auth.create_token(
        args.name, scope=args.scope, projects=args.project or (), expires_at=_parse_expiry(args.expires),
        description=args.description or "", actor=ctx.actor, client_addr="local")
    ctx.warn(f"token {token_id} for {args.name} (scope {args.scope}); it is shown only once:")
    ctx.say(token)
    return 0


def cmd_token_revoke(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.auth.revoke_token(args.token_id, actor=ctx.actor, client_addr="local")
    ctx.say(f"revoked token {args.token_id}")
    return 0


def cmd_token_list(args: argparse.Namespace, ctx: CliContext) -> int:
    for t in ctx.auth.list_tokens(args.name):
        projects = ",".join(t.projects) or "all"
        ctx.say(f"{t.id}  user={t.username}  scope={t.scope}  projects={projects}  "
                f"expires={_when(t.expires_at)}  last used={_when(t.last_used_at)}  {t.description}")
    return 0


def cmd_audit(args: argparse.Namespace, ctx: CliContext) -> int:
    for entry in reversed(ctx.auth.audit_entries(args.limit)):
        ctx.say(escape_control(f"{_when(entry.at)}  {entry.actor}  {entry.action} {entry.target}  "
                               f"from {entry.client_addr}  {entry.outcome}  {entry.detail}"))
    return 0


# ---------------------------------------------------------------- parser
def _password_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="user name")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")


def _selector_args(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("project", help="project name")
    parser.add_argument("selector", nargs=None if required else "?", metavar="VERSION|FILENAME",
                        help="one version or one file" + ("" if required else " (default: all files)"))


def _grant_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="user name")
    parser.add_argument("projects", nargs="*", metavar="PROJECT")
    parser.add_argument("--all-projects", action="store_true", help="every project, present and future")


def _user_commands(registry: CommandRegistry) -> None:
    user = registry.register_command("user", "manage users", lambda p: None, None)
    sub = CommandRegistry(user.add_subparsers(dest="user_command", metavar="ACTION", required=True))

    def add_args(p: argparse.ArgumentParser) -> None:
        _password_args(p)
        p.add_argument("--all-projects", action="store_true",
                       help="may upload to every project (default: new projects and granted ones)")

    sub.register_command("add", "add a user", add_args, cmd_user_add)
    sub.register_command("remove", "remove a user and their tokens",
                         lambda p: p.add_argument("name"), cmd_user_remove)
    sub.register_command("passwd", "change a user's password", _password_args, cmd_user_passwd)
    sub.register_command("list", "list users and their projects", lambda p: None, cmd_user_list)

    def grant_args(p: argparse.ArgumentParser) -> None:
        _grant_args(p)
        p.add_argument("--role", choices=("maintainer", "owner"), default="maintainer")

    sub.register_command("grant", "let a user upload to projects", grant_args, cmd_user_grant)
    sub.register_command("ungrant", "take back a grant", _grant_args, cmd_user_ungrant)


def _token_commands(registry: CommandRegistry) -> None:
    token = registry.register_command("token", "manage API tokens", lambda p: None, None)
    sub = CommandRegistry(token.add_subparsers(dest="token_command", metavar="ACTION", required=True))

    def create_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", help="the user the token acts for")
        p.add_argument("--scope", choices=SCOPES, default="upload",
                       help="upload (includes read) or read (default: upload)")
        p.add_argument("--project", action="append", metavar="P",
                       help="limit the token to this project (repeatable)")
        p.add_argument("--expires", metavar="WHEN", help="30d, 12h, 90m or a date like 2026-12-31")
        p.add_argument("--description", help="a note to recognise the token by")

    sub.register_command("create", "create a token (printed once on stdout)", create_args, cmd_token_create)
    sub.register_command("revoke", "revoke a token", lambda p: p.add_argument("token_id", metavar="TOKEN_ID"),
                         cmd_token_revoke)
    sub.register_command("list", "list tokens (never their secrets)",
                         lambda p: p.add_argument("name", nargs="?"), cmd_token_list)


def build_parser() -> tuple[argparse.ArgumentParser, CommandRegistry]:
    parser = argparse.ArgumentParser(
        prog="manage_repo.py",
        description="Manage the pypi_repo package index: packages, users, tokens. "
                    "'manage_repo.py NAME' publishes ./dist/NAME-* (the old form of 'publish').",
    )
    parser.add_argument("--packages-dir", help="the package tree (default ./packages)")
    parser.add_argument("--data-dir", help="derived state and the user database (default ./data)")
    parser.add_argument("--database-url", help="the shared database: empty = SQLite in the data dir, "
                                               "or postgresql://... (PYPI_REPO_DATABASE_URL)")
    parser.add_argument("--storage-url", help="the package files: empty = the packages dir, "
                                              "or s3://BUCKET/PREFIX (PYPI_REPO_STORAGE_URL)")
    parser.add_argument("--logs-dir", help="log files (default ./logs)")
    parser.add_argument("--config", help="TOML config file (the server's)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    registry = CommandRegistry(subparsers)

    def owner_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--owner", metavar="USER",
                       help="make USER an owner of the project(s), so their twine uploads are allowed")

    def publish_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("project", help="project name; its wheels and sdists are taken from --from")
        p.add_argument("--from", dest="source", default="dist", help="directory (default ./dist)")
        owner_arg(p)

    def add_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
        owner_arg(p)

    registry.register_command("publish", "add NAME's wheels and sdists from ./dist", publish_args, cmd_publish)
    registry.register_command("add", "validate and add distribution files (or every one in a directory)",
                              add_args, cmd_add)
    registry.register_command("remove", "remove a project, a version or a file",
                              lambda p: _selector_args(p, False), cmd_remove)

    def yank_args(p: argparse.ArgumentParser) -> None:
        _selector_args(p, True)
        p.add_argument("--reason", help="shown to pip users (PEP 592)")

    registry.register_command("yank", "yank a file or version (PEP 592)", yank_args, cmd_yank)
    registry.register_command("unyank", "undo a yank", lambda p: _selector_args(p, True), cmd_unyank)
    registry.register_command("list", "list projects, or the files of one",
                              lambda p: p.add_argument("project", nargs="?"), cmd_list)
    registry.register_command("verify", "re-hash every file; report missing or stale derived data and orphans",
                              lambda p: p.add_argument("--fix", action="store_true", help="repair what can be"),
                              cmd_verify)
    registry.register_command("reindex", "rebuild all derived data (hashes, PEP 658 metadata)",
                              lambda p: None, cmd_reindex)
    registry.register_command(
        "migrate", "copy this install (tree + SQLite) into a shared database and/or bucket (idempotent)",
        lambda p: (p.add_argument("--to-database", metavar="URL", help="postgresql://... (users, tokens, ...)"),
                   p.add_argument("--to-storage", metavar="URL", help="s3://BUCKET/PREFIX (files, yanks)")),
        cmd_migrate)
    _user_commands(registry)
    _token_commands(registry)
    registry.register_command("audit", "show the audit log",
                              lambda p: p.add_argument("--limit", type=int, default=50), cmd_audit)
    for module_name in EXTENSION_MODULES:
        importlib.import_module(module_name).register(registry)
    return parser, registry


_TOP_OPTIONS = {"--packages-dir", "--data-dir", "--database-url", "--storage-url", "--logs-dir", "--config"}
_VALUE_OPTIONS = {*_TOP_OPTIONS, "--owner", "--from"}


def _legacy_form(argv: list[str], commands: Sequence[str]) -> list[str]:
    """``manage_repo.py payo-cli`` (the seed's form) means ``manage_repo.py publish payo-cli``;
    ``publish``'s own options (``--owner USER``, ``--from DIR``) may come before the name."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _VALUE_OPTIONS:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        if arg in commands:
            return argv
        head: list[str] = []
        rest: list[str] = []
        j = 0
        while j < len(argv):
            if argv[j] in _TOP_OPTIONS:
                head += argv[j:j + 2]
                j += 2
            else:
                (head if argv[j].split("=", 1)[0] in _TOP_OPTIONS else rest).append(argv[j])
                j += 1
        return head + ["publish"] + rest
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    parser, registry = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_legacy_form(argv, registry.names))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # its reconnect attempts: one error line is ours
    flags = {"packages_dir": args.packages_dir, "data_dir": args.data_dir,
             "logs_dir": args.logs_dir, "config": args.config, "database_url": args.database_url,
             "storage_url": args.storage_url}
    ctx = None
    try:
        ctx = CliContext(load_settings(flags))
        ctx.db  # a wrong database_url stops every command here, with one line
        check_storage_url(ctx.settings)  # and a wrong storage_url
        return args.handler(args, ctx)
    except ConfigError as exc:
        print(f"manage_repo.py: {exc}", file=sys.stderr)
        return 2
    except PypiRepoError as exc:
        print(f"manage_repo.py: {exc}", file=sys.stderr)
        return 1
    finally:
        if ctx is not None and "db" in ctx.__dict__:
            ctx.db.close()
