"""Browser-facing security rules (issue 10): response headers, where to send a Basic
challenge, and how to tell a browser's request from an installer's or uploader's.

- Every response gets ``X-Content-Type-Options: nosniff`` (files too: a wheel must never
  be sniffed into HTML). HTML responses also get a strict ``Content-Security-Policy``
  (no inline script or style: the templates use only ``/static/`` files), ``X-Frame-Options:
  DENY`` with ``frame-ancestors 'none'`` (no clickjacking of ``/login`` or ``/upload``), and
  ``Referrer-Policy: same-origin``.
- ``WWW-Authenticate: Basic`` only where pip/uv/twine need a challenge: the Simple API
  pages and files, and the upload API for non-browser clients. An HTML UI page never
  sends one, so a browser never caches Basic credentials from our UI.
- A request is *browser-originated* when it carries ``Origin`` or ``Sec-Fetch-*`` headers
  (every current browser sends them on a POST; twine, uv and poetry never do) or our
  session cookie. The upload API refuses those unless they carry the session's CSRF
  token, so a cross-site form cannot upload with credentials a browser cached.
"""
from __future__ import annotations

from flask import Flask, Request, Response, request

__all__ = ["CONTENT_SECURITY_POLICY", "install", "is_browser_request", "wants_basic_challenge"]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HTML_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
)
CHALLENGE = 'Basic realm="pypi_repo"'
INSTALLER_BLUEPRINTS = frozenset({"simple", "files"})
SESSION_COOKIE = "pypi_repo_session"


def is_browser_request(req: Request) -> bool:
    """Sent by a browser: fetch metadata, an ``Origin``, or our session cookie."""
    environ = req.environ
    return ("HTTP_ORIGIN" in environ or "HTTP_SEC_FETCH_SITE" in environ
            or "HTTP_SEC_FETCH_MODE" in environ or SESSION_COOKIE in req.cookies)


def wants_basic_challenge(req: Request) -> bool:
    """Whether a 401 to this request should carry ``WWW-Authenticate: Basic``."""
    blueprint = req.blueprint
    if blueprint in INSTALLER_BLUEPRINTS:
        return True
    return blueprint == "upload" and not is_browser_request(req)


def _headers(resp: Response) -> Response:
    """After every request (a few microseconds: appended, as no view sets these itself)."""
    headers = resp.headers
    headers.add("X-Content-Type-Options", "nosniff")
    if headers.get("Content-Type", "").startswith("text/html"):
        headers.extend(HTML_HEADERS)
    return resp


def install(app: Flask) -> None:
    app.after_request(_headers)


def challenge(resp: Response) -> Response:
    """Add the Basic challenge to a 401 if this request is an installer's or uploader's."""
    if resp.status_code == 401 and wants_basic_challenge(request):
        resp.headers["WWW-Authenticate"] = CHALLENGE
    return resp
