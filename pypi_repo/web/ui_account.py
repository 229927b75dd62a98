"""Browser login (a signed session cookie) and the web upload form.

The same users and tokens as twine (``svc.auth.authenticate``), the same upload path as the
legacy API (``uploads.accept_upload``). Every POST carries a per-session CSRF token; the
cookie is HttpOnly, SameSite=Lax, and Secure whenever the request came over HTTPS (TLS
here, or ``X-Forwarded-Proto: https`` from a trusted proxy). The signed cookie holds only
a random session id; the session itself is a database row bound to the user's uuid
(:mod:`pypi_repo.sessions`), so logout, a password change, removing the user or revoking
the token ends it at once, in every worker (issue 10). A cookie never authorizes the
upload API, and never an unsafe request without the session's CSRF token. The signing key
is ``Settings.secret_key`` or, when empty, a random key created once under the data
directory (shared by workers).
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from flask import (Blueprint, Flask, Response, abort, flash, g, redirect, render_template, request, session,
                   url_for)
from flask.sessions import SecureCookieSessionInterface

from ..auth import Principal
from ..errors import AuthenticationFailed, PypiRepoError, RateLimited
from ..uploads import FILETYPES, accept_upload
from ..distfiles import parse_distribution_filename
from ..durable import atomic_write_bytes, locked_dir
from .access import client_addr
from .app import services
from .errors import status_for

__all__ = ["bp", "session_principal", "csrf_token"]

bp = Blueprint("account", __name__)
log = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _usable_key(raw: bytes) -> bytes | None:
    """A key file's key, or None when empty or corrupt (a crash can leave zeros or nothing)."""
    key = raw.strip()
    if not key or not key.isascii() or not all(32 < c < 127 for c in key):
        return None
    return key


def _secret_key(data_dir: Path, configured: str) -> bytes:
    """The configured key, else one random key per data directory, written atomically.

    Workers serialize on a lock of the data directory: the first writes the key (temp file,
    fsync, rename, fsync dir: a crash leaves the old state or the whole key, issue 10), the
    others read it. An empty or corrupt file is replaced with a log line (sessions signed
    with the lost key end) rather than failing every start.
    """
    if configured:
        return configured.encode()
    path = data_dir / "secret_key"
    data_dir.mkdir(parents=True, exist_ok=True)
    with locked_dir(data_dir):
        try:
            key = _usable_key(path.read_bytes())
            if key:
                return key
            log.warning("secret key file %s is empty or corrupt: writing a new key (existing sessions end)", path)
        except FileNotFoundError:
            pass
        key = secrets.token_hex(32).encode()
        atomic_write_bytes(path, key, durable=True, mode=0o600)
        return key


class CookieOnlySessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the signer set-up on requests with no cookie
    (every pip, uv and twine request): those get the same empty session, for less."""

    def open_session(self, app: Flask, request):  # type: ignore[override]
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when configured, and on any request that arrived over HTTPS (TLS, or a
        trusted proxy's ``X-Forwarded-Proto: https``, see ``web/proxy.py``)."""
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


@bp.record_once
def _setup(state) -> None:
    app: Flask = state.app
    svc = app.extensions["pypi_repo"]
    app.secret_key = _secret_key(svc.settings.data_dir, svc.settings.secret_key)
    app.session_interface = CookieOnlySessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="pypi_repo_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(svc.settings.certfile) or svc.settings.public_url.startswith("https:"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=svc.settings.session_hours),
    )
    svc.session_principal = session_principal
    svc.open_endpoints |= {"account.login", "static"}


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_valid(*, read_form: bool = True) -> bool:
    """The session's CSRF token came with this request (``X-CSRF-Token``, or the form
    field unless ``read_form`` is false: the upload API parses its own stream)."""
    expected = session.get("csrf", "")
    sent = request.headers.get("X-CSRF-Token") or (request.form.get("csrf_token", "") if read_form else "")
    return bool(expected and sent) and hmac.compare_digest(sent.encode(), expected.encode())


def _check_csrf() -> None:
    if not csrf_valid():
        abort(400, "The form expired or did not come from this site (CSRF check failed). Reload and try again.")


def session_principal() -> Principal | None:
    """The logged-in principal of this browser request, or None.

    Never for the upload API (``upload.*``: cross-site uploads), and for an unsafe method
    only with the session's CSRF token, whatever view it reaches.
    """
    principal = _session_lookup()
    if principal is None:
        return None
    if request.method not in SAFE_METHODS:
        if (request.endpoint or "").startswith("upload."):
            return None
        _check_csrf()
    return principal


def _session_lookup() -> Principal | None:
    """The session's principal, looked up once per request, without the CSRF rule (for
    display only: the header of any page, error pages included, shows who is logged in)."""
    if "session_principal" not in g:
        principal = None
        session_id = session.get("sid")
        if session_id:
            principal = services().auth.session_principal(session_id)
            if principal is None:
                session.clear()  # ended or expired: drop the cookie too
        g.session_principal = principal
    return g.session_principal


def current_user() -> str | None:
    if "ui_user" not in g:
        try:
            principal = _session_lookup() if "sid" in session else None
        except PypiRepoError:
            principal = None
        g.ui_user = principal.display if principal else None
    return g.ui_user


@bp.app_context_processor
def _inject() -> dict:
    return {"csrf_token": csrf_token, "ui_user": current_user()}


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a login link must not become an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("ui.home")


def _page(template: str, status: int = 200, **context) -> Response:
    resp = Response(render_template(template, **context), status=status, content_type="text/html; charset=utf-8")
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return _page("login.html", next=target)
    _check_csrf()
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    svc = services()
    try:
        principal = svc.auth.authenticate(username, password, client_addr())
    except (AuthenticationFailed, RateLimited) as exc:
        message = ("Too many failed attempts; wait a minute and try again." if isinstance(exc, RateLimited)
                   else "Wrong user name, password or token.")
        return _page("login.html", status_for(exc), next=target, error=message, username=username)
    old = session.get("sid")
    if old:
        svc.auth.end_session(old)
    session.clear()  # a fresh id and CSRF token: no session fixation
    session.permanent = True
    session["sid"] = svc.auth.start_session(principal)
    csrf_token()
    svc.auth.audit(principal.display, "web.login", "", client_addr())
    flash(f"Logged in as {principal.display}.", "ok")
    return redirect(target, 303)


@bp.post("/logout")
def logout() -> Response:
    _check_csrf()
    session_id = session.get("sid")
    if session_id:
        services().auth.end_session(session_id)
    session.clear()
    flash("Logged out.", "ok")
    return redirect(url_for("ui.home"), 303)


@bp.route("/upload", methods=["GET", "POST"])
def upload_form() -> Response:
    principal = session_principal()
    if principal is None:
        return redirect(url_for("account.login", next=url_for("account.upload_form")), 303)
    if request.method == "GET":
        return _page("upload.html", user=principal.display)
    _check_csrf()
    content = request.files.get("content")
    svc = services()
    try:
        if content is None or not content.filename:
            raise PypiRepoError("Choose a wheel (.whl) or sdist (.tar.gz) file to upload.")
        filename = os.path.basename(content.filename.replace("\\", "/"))
        dist = parse_distribution_filename(filename)
        form = {"name": dist.name, "version": str(dist.version),
                "filetype": next(k for k, v in FILETYPES.items() if v == dist.kind)}
        stored = accept_upload(svc, principal, form, filename, content.stream, client_addr=client_addr())
    except PypiRepoError as exc:
        status = status_for(exc)
        return _page("upload.html", 400 if status >= 500 and not isinstance(exc, OSError) else status,
                     user=principal.display, error=str(exc))
    from .ui import ui_services

    ui_services().catalog.refresh_project(dist.name)
    flash(f"Uploaded {filename}." if stored.created else f"{filename} was already stored (identical file).", "ok")
    return redirect(url_for("ui.project_version", name=dist.name, version=str(dist.version)), 303)
