"""The account page and project management in the browser (issue 12): password, API tokens,
one's projects and uploads; roles and yanking for a project's owners; "Uploaded via ... by ..."
on project pages.

Views are thin: every rule is in :class:`~pypi_repo.accounts.Accounts`. Every POST carries
the session's CSRF token (``ui_account``'s), checked before anything else. Destructive
actions (revoke a token or a role, yank, un-yank) take two steps that need no JavaScript:
a GET shows what will happen and a form, and only its POST does it.
"""
from __future__ import annotations

from functools import wraps
from typing import Callable

from flask import Blueprint, Response, flash, g, redirect, render_template, request, session, url_for
from packaging.version import InvalidVersion, Version
from werkzeug.datastructures import MultiDict

from ..accounts import EXPIRY_DAYS, ROLES, Accounts, UploadRecord, files_matching, short_detail
from ..auth import SCOPES, Principal
from ..distfiles import canonical_project_name
from ..errors import InvalidName, NotFound, PypiRepoError
from .access import client_addr
from .app import services
from .errors import error_response, status_for
from .ui_account import SAFE_METHODS, _check_csrf, session_principal

__all__ = ["bp", "accounts"]

bp = Blueprint("manage", __name__)


def accounts() -> Accounts:
    svc = services()
    found = svc.extras.get("accounts")
    if found is None:
        found = svc.extras.setdefault("accounts", Accounts(svc.auth, svc.store))
    return found


def _page(template: str, status: int = 200, **context) -> Response:
    resp = Response(render_template(template, **context), status=status, content_type="text/html; charset=utf-8")
    resp.headers["Cache-Control"] = "no-store"  # token secrets and account data stay out of caches
    return resp


def _form_status(exc: PypiRepoError) -> int:
    """Bad form input is a 400 (the domain's plain errors map to 500 elsewhere)."""
    status = status_for(exc)
    return 400 if status in (401, 500) else status


def login_required(view: Callable[..., Response]) -> Callable[..., Response]:
    """CSRF first on POST, then a logged-in password session; the view gets the Principal."""

    @wraps(view)
    def wrapper(*args, **kwargs) -> Response:
        if request.method not in SAFE_METHODS:
            _check_csrf()
        principal = session_principal()
        if principal is None:
            target = request.path if request.method not in SAFE_METHODS or not request.query_string \
                else request.full_path
            return redirect(url_for("account.login", next=target), 303)
        accounts().require_password_login(principal)
        return view(principal, *args, **kwargs)

    return wrapper


def _project(name: str) -> str:
    try:
        return canonical_project_name(name)
    except InvalidName:
        raise NotFound(f"no project named {name[:100]!r}") from None


def _refresh_catalog(project: str) -> None:
    from .ui import ui_services

    ui_services().catalog.refresh_project(project)


# --------------------------------------------------------------------- account page
@bp.get("/account/")
@login_required
def account(principal: Principal) -> Response:
    acc = accounts()
    return _page("account/account.html", principal=principal, projects=acc.projects_of(principal.username),
                 tokens=acc.tokens_of(principal.username), uploads=acc.recent_uploads(principal.username))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password(principal: Principal) -> Response:
    if request.method == "GET":
        return _page("account/password.html")
    form = request.form
    try:
        accounts().change_password(principal, form.get("current", ""), form.get("new", ""), form.get("repeat", ""),
                                   client_addr=client_addr())
    except PypiRepoError as exc:
        return _page("account/password.html", _form_status(exc), error=str(exc))
    session.clear()  # every session of this user ends with a new password: this one too, and we say so
    flash("Your password was changed. All your sessions have ended, this one too: "
          "log in again with the new password.", "ok")
    return redirect(url_for("account.login", next=url_for("manage.account")), 303)


@bp.route("/account/tokens/new", methods=["GET", "POST"])
@login_required
def token_new(principal: Principal) -> Response:
    acc = accounts()
    own = [p.project for p in acc.projects_of(principal.username)]
    context = dict(own=own, scopes=SCOPES, expiry_days=EXPIRY_DAYS)
    if request.method == "GET":
        return _page("account/token_new.html", form=MultiDict(), **context)
    form = request.form
    projects = form.getlist("project") + form.get("other_projects", "").replace(",", " ").split()
    expires = form.get("expires", "")
    try:
        token_id, secret = acc.create_token(
            principal, scope=form.get("scope", "upload"), projects=projects,
            expires_days=None if not expires else int(expires) if expires.isdigit() else -1,
            description=form.get("description", ""), client_addr=client_addr())
    except PypiRepoError as exc:
        return _page("account/token_new.html", _form_status(exc), error=str(exc), form=form, **context)
    token = acc.own_token(principal, token_id)
    return _page("account/token_created.html", token=token, secret=secret)  # the one time it is shown


@bp.route("/account/tokens/<token_id>/revoke", methods=["GET", "POST"])
@login_required
def token_revoke(principal: Principal, token_id: str) -> Response:
    acc = accounts()
    token = acc.own_token(principal, token_id)
    if request.method == "GET":
        return _page("account/confirm.html", title=f"Revoke token {token.id}?", token=token,
                     action=url_for("manage.token_revoke", token_id=token.id), button="Revoke token",
                     cancel=url_for("manage.account"))
    acc.revoke_token(principal, token.id, client_addr=client_addr())
    flash(f"Token {token.id} is revoked; twine, pip or uv can no longer use it.", "ok")
    return redirect(url_for("manage.account"), 303)


# --------------------------------------------------------------------- project management
def _manage_context(principal: Principal, project: str) -> dict:
    acc = accounts()
    acc.check_manage(principal, project)
    entries = services().store.scan_project(project)
    by_version: dict = {}
    for entry in sorted(entries, key=lambda e: e.filename):
        by_version.setdefault(entry.dist.version, []).append(entry)
    releases = [{"version": str(v), "files": es, "yanked": all(e.yanked is not None for e in es),
                 "some_yanked": any(e.yanked is not None for e in es),
                 "reason": next((e.yanked for e in es if e.yanked), "")}
                for v, es in sorted(by_version.items(), reverse=True)]
    return dict(name=project, roles=acc.roles(project), roles_choice=ROLES, releases=releases,
                history=acc.project_history(project, [e.filename for e in entries]),
                uploads=acc.upload_records(e.filename for e in entries), me=principal.username)


@bp.get("/project/<name>/manage/")
@login_required
def project(principal: Principal, name: str) -> Response:
    return _page("account/project_manage.html", **_manage_context(principal, _project(name)))


@bp.post("/project/<name>/manage/roles")
@login_required
def grant(principal: Principal, name: str) -> Response:
    project = _project(name)
    username, role = request.form.get("username", "").strip(), request.form.get("role", "maintainer")
    try:
        accounts().grant(principal, project, username, role, client_addr=client_addr())
    except PypiRepoError as exc:
        if status_for(exc) == 403:
            raise
        return _page("account/project_manage.html", _form_status(exc), grant_error=str(exc),
                     grant_form=request.form, **_manage_context(principal, project))
    flash(f"{username} is now {role} of {project}.", "ok")
    return redirect(url_for("manage.project", name=project), 303)


@bp.route("/project/<name>/manage/roles/<username>/revoke", methods=["GET", "POST"])
@login_required
def revoke(principal: Principal, name: str, username: str) -> Response:
    project = _project(name)
    acc = accounts()
    acc.check_manage(principal, project)
    if request.method == "GET":
        role = dict(acc.roles(project)).get(username)
        if role is None:
            raise NotFound(f"{username[:64]} has no role on {project}")
        return _page("account/confirm.html", title=f"Remove {username} from {project}?", project=project,
                     subject=f"{username} ({role})", action=url_for("manage.revoke", name=project, username=username),
                     button=f"Remove {username}", cancel=url_for("manage.project", name=project))
    try:
        acc.revoke(principal, project, username, client_addr=client_addr())
    except PypiRepoError as exc:
        if status_for(exc) != 409:
            raise
        flash(str(exc), "error")
        return redirect(url_for("manage.project", name=project), 303)
    flash(f"{username} can no longer upload to {project} (unless they may upload everywhere).", "ok")
    if not acc.can_manage(session_principal(), project):
        return redirect(url_for("manage.account"), 303)
    return redirect(url_for("manage.project", name=project), 303)


def _yank_view(principal: Principal, name: str, undo: bool) -> Response:
    project = _project(name)
    acc = accounts()
    acc.check_manage(principal, project)
    selector = request.values.get("target", "")
    endpoint = "manage.unyank" if undo else "manage.yank"
    if request.method == "GET":
        files = files_matching(services().store.scan_project(project), selector)
        verb = "Un-yank" if undo else "Yank"
        return _page("account/confirm.html", title=f"{verb} {selector} of {project}?", project=project,
                     files=files, yank=not undo, unyank=undo, target=selector,
                     action=url_for(endpoint, name=project), button=verb,
                     cancel=url_for("manage.project", name=project))
    reason = None if undo else request.form.get("reason", "")
    changed = acc.set_yanked(principal, project, selector, reason, client_addr=client_addr())
    _refresh_catalog(project)
    what = ", ".join(changed) or "nothing (no file was yanked)"
    flash(f"{'Un-yanked' if undo else 'Yanked'}: {what}.", "ok")
    return redirect(url_for("manage.project", name=project), 303)


@bp.route("/project/<name>/manage/yank", methods=["GET", "POST"])
@login_required
def yank(principal: Principal, name: str) -> Response:
    return _yank_view(principal, name, undo=False)


@bp.route("/project/<name>/manage/unyank", methods=["GET", "POST"])
@login_required
def unyank(principal: Principal, name: str) -> Response:
    return _yank_view(principal, name, undo=True)


# --------------------------------------------------------------------- on the project page
def _records(name: str) -> tuple[dict[str, UploadRecord], dict[str, UploadRecord]]:
    """(filename -> record, version -> its first upload) of a project, once per request."""
    cache = g.setdefault("upload_records", {})
    if name not in cache:
        files = services().index.project_detail(name).files
        by_file = accounts().upload_records(f.filename for f in files)
        by_version: dict[str, UploadRecord] = {}
        for f in files:
            record = by_file.get(f.filename)
            try:
                version = str(Version(f.version))
            except InvalidVersion:
                continue
            if record is not None and (version not in by_version or record.at < by_version[version].at):
                by_version[version] = record
        cache[name] = (by_file, by_version)
    return cache[name]


@bp.app_template_global()
def uploaded(name: str, filename: str) -> UploadRecord | None:
    """Who stored ``filename`` of project ``name`` (for the files table)."""
    return _records(name)[0].get(filename)


@bp.app_template_global()
def release_uploader(name: str, version: str) -> UploadRecord | None:
    """Who made a version: its first upload (for the release history)."""
    try:
        return _records(name)[1].get(str(Version(version)))
    except InvalidVersion:
        return None


@bp.app_template_global()
def can_manage(name: str) -> bool:
    """Whether the logged-in user may manage project ``name`` (shows the Manage link)."""
    if "sid" not in session:
        return False
    try:
        if "manage_principal" not in g:
            g.manage_principal = session_principal()
        return accounts().can_manage(g.manage_principal, name)
    except PypiRepoError:
        return False


@bp.app_template_filter("audit_detail")
def _audit_detail(detail: str) -> str:
    return short_detail(detail)


@bp.errorhandler(PypiRepoError)
def _domain_error(exc: PypiRepoError) -> Response:
    """The app's error page, with bad input (the domain's plain errors) as 400, not 500."""
    return error_response(_form_status(exc), str(exc))
