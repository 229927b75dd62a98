"""The legacy upload API: ``POST /`` and ``POST /legacy/`` (``:action=file_upload``).

What twine and ``uv publish`` need from it: never a redirect (twine aborts on one, so
``/legacy`` without the slash is served too), 200 for a stored or identical file, and
errors whose one-line reason is in the HTTP status line (twine prints only that) and in
a plain-text body (uv prints the body): 400 bad input, 401 + ``WWW-Authenticate``, 403,
409 "File already exists" (what ``twine --skip-existing`` recognises), 413, 429.
A browser's request (``Origin``, ``Sec-Fetch-*`` or our session cookie) is refused with
403 unless it carries the session's CSRF token: a cross-site form must not upload with
Basic credentials the browser cached (issue 10; rules in ``web/security.py``).

The form is parsed here rather than through ``request.files`` so the file part spools to
an anonymous temp file under the data directory (no trace if the client hangs up) and long
descriptions fit; the bytes are then streamed by :func:`~pypi_repo.uploads.accept_upload`.
"""
from __future__ import annotations

import logging
import tempfile
from typing import IO

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from .. import metrics
from ..durable import raise_for_disk
from ..errors import InvalidDistribution, PermissionDenied, PypiRepoError, RateLimited, UploadTooLarge
from ..uploads import accept_upload
from . import security
from .access import client_addr, request_principal
from .app import Services, services
from .errors import public_message, status_for

log = logging.getLogger(__name__)
bp = Blueprint("upload", __name__)

MIB = 1024 * 1024
FORM_OVERHEAD = 16 * MIB  # the non-file fields (long descriptions) on top of the file
MAX_FORM_PARTS = 10000


def _spool_factory(svc: Services):
    spool_dir = svc.settings.data_dir / "tmp"

    def factory(total_content_length, content_type, filename, content_length=None) -> IO[bytes]:
        spool_dir.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryFile(dir=spool_dir, prefix="upload-")

    return factory


def upload_limit_bytes(svc: Services) -> int:
    """The one upload limit (issue 10): ``max_upload_mb`` MiB for the file, in bytes."""
    return svc.settings.max_upload_mb * MIB


def _parse_form(svc: Services):
    """Parse the multipart form; the request may exceed the file limit by the text fields'
    allowance (long descriptions), never more. Every refusal states the one limit in bytes."""
    limit = upload_limit_bytes(svc)
    too_large = UploadTooLarge(f"file is larger than the limit of {limit} bytes")
    if request.content_length is not None and request.content_length > limit + FORM_OVERHEAD:
        raise too_large
    request.max_content_length = limit + FORM_OVERHEAD  # not the app-wide MAX_CONTENT_LENGTH
    parser = FormDataParser(
        stream_factory=_spool_factory(svc),
        max_form_memory_size=FORM_OVERHEAD,
        max_content_length=limit + FORM_OVERHEAD,
        max_form_parts=MAX_FORM_PARTS,
    )
    try:
        _, form, files = parser.parse(request.stream, request.mimetype, request.content_length,
                                      request.mimetype_params)
    except RequestEntityTooLarge:
        raise too_large from None
    except OSError as exc:  # the spool file under data/ on a full disk
        raise_for_disk(exc)
    return form, files


@bp.post("/")
@bp.post("/legacy/")
@bp.post("/legacy")
def legacy_upload() -> Response:
    svc = services()
    if request.authorization is not None and security.is_browser_request(request) and not _csrf_valid():
        raise PermissionDenied("browsers cannot use the upload API (no CSRF token); "
                               "upload from the /upload page, or with twine or uv publish")
    principal = request_principal(svc, allow_session=False)
    form, files = _parse_form(svc)
    try:
        if form.get(":action") != "file_upload":
            raise InvalidDistribution("only ':action=file_upload' is supported")
        content = files.get("content")
        if content is None:
            raise InvalidDistribution("no file was sent (the form field is 'content')")
        stored = accept_upload(svc, principal, form, content.filename or "", content.stream,
                               client_addr=client_addr(), user_agent=request.headers.get("User-Agent", ""))
    finally:
        for item in files.values():
            item.close()
    metrics.record_upload(accepted=True)
    message = "stored" if stored.created else "identical file already stored"
    return Response(f"OK: {message} {stored.path.name}\n", 200, content_type="text/plain; charset=utf-8")


def _reason(message: str) -> str:
    """A one-line, latin-1 reason phrase for the status line."""
    line = " ".join(message.split())[:200]
    return line.encode("latin-1", errors="replace").decode("latin-1")


def upload_error(status: int, message: str) -> Response:
    metrics.record_upload(accepted=False)
    resp = Response(f"{status} {message}\n", content_type="text/plain; charset=utf-8")
    resp.status = f"{status} {_reason(message)}"
    return security.challenge(resp)


def _csrf_valid() -> bool:
    from .ui_account import csrf_valid

    return csrf_valid(read_form=False)


@bp.errorhandler(PypiRepoError)
def domain_error(exc: PypiRepoError) -> Response:
    status = status_for(exc)
    if status >= 500:
        log.error("upload refused with %d: %s", status, exc)
    resp = upload_error(status, public_message(exc))
    if isinstance(exc, RateLimited):
        resp.headers["Retry-After"] = "60"
    elif status == 503:
        resp.headers["Retry-After"] = "5"
    return resp


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    return upload_error(exc.code or 500, exc.description or exc.name)
