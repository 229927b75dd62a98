"""Distribution files and their PEP 658 core metadata: ``/packages/<project>/<filename>``.

A plain GET (what pip and uv send) is answered from one ``stat``: a small file from the
in-memory body cache (``file_cache_mb``), a large one through Gunicorn's sendfile; the ETag
is derived from the stat and so equal on every worker, and ``If-None-Match`` gives a 304. Requests with Range or date
conditions go through werkzeug's ``send_file``, which implements them in full (206/416).
"""
from __future__ import annotations

import os
import time
import unicodedata
from functools import lru_cache
from urllib.parse import quote

from flask import Blueprint, Response, redirect, request, send_file
from werkzeug.http import dump_options_header
from werkzeug.wsgi import wrap_file

from ..cache import FileBodyCache, stat_key
from ..distfiles import canonical_project_name
from ..errors import FileNotFound, InvalidFilename, InvalidName
from .app import services

bp = Blueprint("files", __name__)

METADATA_SUFFIX = ".metadata"
#: Headers (WSGI environ keys) that need werkzeug's full conditional/partial handling.
_SLOW_PATH_HEADERS = ("HTTP_RANGE", "HTTP_IF_RANGE", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH",
                      "HTTP_IF_UNMODIFIED_SINCE")


def content_type_for(filename: str) -> str:
    """Explicit types: ``mimetypes`` would add ``Content-Encoding: gzip`` to a .tar.gz."""
    if filename.endswith((".whl", ".zip")):
        return "application/zip"
    if filename.endswith(".tar.gz"):
        return "application/gzip"
    return "application/octet-stream"


def content_disposition(filename: str) -> str:
    """``attachment`` per RFC 6266: the name as an escaped quoted-string, and when it is not
    ASCII an RFC 5987 ``filename*`` beside an ASCII fallback (what werkzeug's ``send_file``
    sends). Built by werkzeug's header encoder, never by string formatting (issue 10)."""
    try:
        filename.encode("ascii")
        params = {"filename": filename}
    except UnicodeEncodeError:
        fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
        params = {"filename": fallback, "filename*": "UTF-8''" + quote(filename, safe="!#$&+^`|~")}
    return dump_options_header("attachment", params)


def file_etag(st: os.stat_result) -> str:
    """Strong validator from size, mtime and inode (unquoted, as werkzeug takes it)."""
    return f"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"


@lru_cache(maxsize=4096)
def http_date(seconds: int) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(seconds))


def _body(path: os.PathLike, st: os.stat_result, environ: dict, bodies: FileBodyCache | None):
    """The response body and the stat that describes it.

    A cached copy when the stat still matches; else the file is opened and ``fstat``-ed, so
    the headers describe the bytes sent even if the file was replaced since the ``stat``.
    Small files are read and cached; large ones go to Gunicorn's sendfile.
    """
    key = stat_key(st)
    if bodies is not None:
        cached = bodies.get(str(path), key)
        if cached is not None:
            return cached, st
    fh = open(path, "rb")
    opened = os.fstat(fh.fileno())
    if bodies is not None and opened.st_size <= bodies.max_file_bytes:
        with fh:
            data = fh.read()
        if len(data) == opened.st_size:
            bodies.put(str(path), stat_key(opened), data)
        return data, opened
    return wrap_file(environ, fh), opened


def _headers(st: os.stat_result, max_age: int, download_name: str | None) -> list[tuple[str, str]]:
    headers = [
        ("ETag", f'"{file_etag(st)}"'),
        ("Last-Modified", http_date(int(st.st_mtime))),
        ("Cache-Control", f"public, max-age={max_age}"),
        ("Accept-Ranges", "bytes"),
    ]
    if download_name:
        headers.append(("Content-Disposition", content_disposition(download_name)))
    return headers


def serve_file(path: os.PathLike, st: os.stat_result, mimetype: str, max_age: int,
               download_name: str | None = None, bodies: FileBodyCache | None = None) -> Response:
    environ = request.environ
    if any(h in environ for h in _SLOW_PATH_HEADERS):
        resp = send_file(path, mimetype=mimetype, conditional=True, etag=file_etag(st), max_age=max_age,
                         download_name=download_name, last_modified=st.st_mtime)
        resp.headers["Accept-Ranges"] = "bytes"
        return resp
    if "HTTP_IF_NONE_MATCH" in environ and request.if_none_match.contains(file_etag(st)):
        return Response(status=304, headers=_headers(st, max_age, download_name))
    body, described = _body(path, st, environ, bodies)
    headers = _headers(described, max_age, download_name)
    headers.append(("Content-Length", str(described.st_size)))
    return Response(body, content_type=mimetype, headers=headers, direct_passthrough=True)


def _core_metadata(svc, project, filename: str, max_age: int) -> Response:
    """The PEP 658 file; with a full or read-only data disk, the bytes from the archive."""
    try:
        path = svc.index.core_metadata(project, filename)
    except OSError:  # the derived copy could not be written: serve without it
        raw = svc.index.core_metadata_bytes(project, filename)
        return Response(raw, content_type="text/plain; charset=utf-8",
                        headers=[("Cache-Control", f"public, max-age={max_age}")])
    return serve_file(path, os.stat(path), "text/plain; charset=utf-8", max_age)


def serve_remote(svc, project, filename: str, max_age: int) -> Response:
    """A file of the shared bucket (``storage_url``, issue 14): a GET with
    ``storage_redirect`` is a 302 to a short-lived presigned URL (pip and uv follow it);
    otherwise the bytes come from the node's disk cache (fetched once per object), with
    werkzeug's full Range/HEAD/ETag/304 handling. The ETag is the object's, so it is the
    same on every node."""
    entry = svc.store.entry(project, filename)
    etag = f"{entry.size:x}-{entry.etag}"
    if svc.store.redirect and request.method == "GET" and "HTTP_RANGE" not in request.environ:
        url = svc.store.presigned_url(entry, min(max(max_age, 60), 900))
        if url:
            resp = redirect(url, 302)
            resp.headers["Cache-Control"] = "no-store"  # the URL expires; ask us again
            return resp
    if "HTTP_IF_NONE_MATCH" in request.environ and not any(h in request.environ for h in _SLOW_PATH_HEADERS) \
            and request.if_none_match.contains(etag):
        return Response(status=304, headers=[("ETag", f'"{etag}"'), ("Cache-Control", f"public, max-age={max_age}"),
                                             ("Accept-Ranges", "bytes")])
    resp = send_file(svc.store.local_file(entry), mimetype=content_type_for(filename), conditional=True,
                     etag=etag, max_age=max_age, download_name=filename, last_modified=entry.mtime_ns // 10**9)
    resp.headers["Accept-Ranges"] = "bytes"
    return resp


@bp.get("/packages/<project>/<filename>")
def download(project: str, filename: str) -> Response:
    svc = services()
    max_age = svc.settings.file_max_age
    try:
        canonical = canonical_project_name(project)
        if filename.endswith(METADATA_SUFFIX):
            return _core_metadata(svc, canonical, filename[: -len(METADATA_SUFFIX)], max_age)
        if svc.store.remote:
            resp = serve_remote(svc, canonical, filename, max_age)
        else:
            path, st = svc.store.locate_file(canonical, filename)
            resp = serve_file(path, st, content_type_for(filename), max_age, download_name=filename,
                              bodies=svc.file_bodies)
    except (InvalidName, InvalidFilename):
        raise FileNotFound(f"no file {filename[:100]!r}") from None
    if request.method == "GET" and resp.status_code in (200, 206, 302):
        hook = svc.extras.get("on_download")
        if hook is not None:
            hook(canonical, filename, request)
    return resp
