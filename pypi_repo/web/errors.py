"""The one table from domain exceptions to HTTP status codes, and the error bodies.

JSON clients (PEP 691 or plain JSON in Accept, or an ``/api/`` path) get a JSON body;
everyone else gets the HTML error page. No request may end in a 5xx for bad input.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .. import errors as e
from ..backends import BackendUnavailable
from ..simple_api import JSON_V1, NotAcceptable
from . import security
from .app import services

log = logging.getLogger("pypi_repo.web")

STATUS_BY_ERROR: tuple[tuple[type[Exception], int], ...] = (
    (e.NotFound, 404),
    (e.InvalidName, 404),
    (e.UnsafePath, 400),
    (e.InvalidFilename, 400),
    (e.InvalidDistribution, 400),
    (e.FileExists, 409),
    (e.Conflict, 409),
    (e.UploadTooLarge, 413),
    (e.AuthenticationFailed, 401),
    (e.PermissionDenied, 403),
    (e.RateLimited, 429),
    (e.StorageFull, 507),
    (BackendUnavailable, 503),  # the shared database (or storage) is down: retryable, never a 500
    (NotAcceptable, 406),
)


def status_for(exc: Exception) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return 500


def public_message(exc: Exception) -> str:
    """What the client is told: the error's text, except for an unreachable backend, whose
    reason (host, engine error) goes to the log and ``/health`` only."""
    if isinstance(exc, BackendUnavailable):
        part = "database" if str(exc).startswith("database") else "storage"
        return f"The index's {part} is unavailable right now; try again shortly."
    return str(exc)


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json", JSON_V1])
    return best in ("application/json", JSON_V1)


def error_response(status: int, message: str, title: str | None = None) -> Response:
    if wants_json():
        resp = jsonify({"status": status, "error": message})
    else:
        resp = Response(
            render_template("error.html", status=status, title=title or message, message=message),
            content_type="text/html; charset=utf-8",
        )
    resp.status_code = status
    if status == 429:
        resp.headers["Retry-After"] = "60"  # the login limits' window (pypi_repo/ratelimit.py)
    elif status == 503:
        resp.headers["Retry-After"] = "5"
    return security.challenge(resp)  # only installers and uploaders get a Basic challenge


def register(app: Flask) -> None:
    @app.errorhandler(e.PypiRepoError)
    @app.errorhandler(NotAcceptable)
    def domain_error(exc: Exception) -> Response:
        status = status_for(exc)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc)
        return error_response(status, public_message(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.code and 300 <= exc.code < 400:
            return exc.get_response()
        description = exc.description or exc.name
        if exc.code == 413:  # werkzeug's own words name no limit; say the one limit in bytes (issue 10)
            from .upload import upload_limit_bytes

            description = f"file is larger than the limit of {upload_limit_bytes(services())} bytes"
        resp = error_response(exc.code or 500, description, exc.name)
        if exc.code == 405:
            resp.headers["Allow"] = ", ".join(getattr(exc, "valid_methods", None) or [])
        return resp

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal server error")
