"""Who is asking: HTTP Basic credentials -> :class:`~pypi_repo.auth.Principal`, and the
private-index gate (``Settings.private``) that runs before every request.

In private mode every read (Simple API, files, UI) needs a user's password or a token
(``read`` or ``upload`` scope), sent as Basic auth: pip's ``http://user:token@host/simple/``
and ``~/.netrc`` both end up here. ``/health`` stays open for monitors. Other blueprints
add endpoints to ``Services.open_endpoints``, and the browser login sets
``Services.session_principal`` (a callable returning a Principal or None), consulted
before Basic auth. A browser asking for a UI page without a login is sent to ``/login``
(never a Basic challenge, see ``web/security.py``).
"""
from __future__ import annotations

from flask import g, redirect, request, url_for
from werkzeug.wrappers import Response

from ..auth import Principal
from ..errors import AuthenticationFailed
from ..logs import update_request
from .app import Services, services
from .security import INSTALLER_BLUEPRINTS

__all__ = ["basic_credentials", "request_principal", "require_read_access", "client_addr"]

OPEN_ENDPOINTS = frozenset({"ops.health", "ops.health_live", "static"})
NO_LOGIN_REDIRECT = INSTALLER_BLUEPRINTS | {"metrics", "ops", "upload"}  # machines: a 401, not a login page
NO_USERS_MESSAGE = (
    "no users are configured on this index; the operator adds one with "
    "'python3 manage_repo.py user add NAME --password-stdin'"
)


def client_addr() -> str:
    return request.remote_addr or "unknown"


def basic_credentials() -> tuple[str | None, str | None]:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return None, None
    return auth.username, auth.password


def request_principal(svc: Services, *, allow_session: bool = True) -> Principal:
    """The authenticated principal of this request (cached on ``g``); raises 401/429.

    The upload API passes ``allow_session=False``: a browser's session cookie must never
    authorize a cross-site POST to it, only explicit Basic credentials do.
    """
    principal = g.get("principal")
    if principal is not None:
        return principal
    from_session = svc.session_principal if allow_session else None
    principal = from_session() if from_session is not None else None
    if principal is None:
        if not svc.auth.has_users():
            raise AuthenticationFailed(NO_USERS_MESSAGE)
        username, password = basic_credentials()
        principal = svc.auth.authenticate(username, password, client_addr())
    g.principal = principal
    update_request(user=principal.username)  # the "user" of this request's log lines
    return principal


def require_read_access() -> Response | None:
    """``before_app_request`` hook: in private mode, no read without credentials."""
    svc = services()
    if not svc.settings.private or request.endpoint is None:
        return None
    endpoint = request.endpoint
    if endpoint in OPEN_ENDPOINTS or endpoint in svc.open_endpoints or endpoint in svc.extras.get("open_endpoints", ()):
        return None
    if endpoint.startswith("upload."):
        return None  # uploads authenticate themselves (and need the upload scope)
    try:
        svc.auth.check_read(request_principal(svc))
    except AuthenticationFailed:
        if (request.method in ("GET", "HEAD") and request.blueprint not in NO_LOGIN_REDIRECT
                and not request.path.startswith("/api/") and request.authorization is None):
            return redirect(url_for("account.login", next=request.full_path.rstrip("?")), 303)
        raise
    return None
