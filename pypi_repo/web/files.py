"""Distribution files and their PEP 658 core metadata: ``/packages/<project>/<filename>``.

A plain GET (what pip and uv send) is answered from one ``stat``: the body goes to
Gunicorn's sendfile through ``wsgi.file_wrapper``, the ETag is derived from the stat and so
equal on every worker, and ``If-None-Match`` gives a 304. Requests with Range or date
conditions go through werkzeug's ``send_file``, which implements them in full (206/416).
"""
from __future__ import annotations

import os
import time
from functools import lru_cache

from flask import Blueprint, Response, request, send_file
from werkzeug.wsgi import wrap_file

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


def file_etag(st: os.stat_result) -> str:
    """Strong validator from size, mtime and inode (unquoted, as werkzeug takes it)."""
    return f"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"


@lru_cache(maxsize=4096)
def http_date(seconds: int) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(seconds))


def serve_file(path: os.PathLike, st: os.stat_result, mimetype: str, max_age: int,
               download_name: str | None = None) -> Response:
    etag = file_etag(st)
    environ = request.environ
    if any(h in environ for h in _SLOW_PATH_HEADERS):
        resp = send_file(path, mimetype=mimetype, conditional=True, etag=etag, max_age=max_age,
                         download_name=download_name, last_modified=st.st_mtime)
        resp.headers["Accept-Ranges"] = "bytes"
        return resp
    headers = {
        "ETag": f'"{etag}"',
        "Last-Modified": http_date(int(st.st_mtime)),
        "Cache-Control": f"public, max-age={max_age}",
        "Accept-Ranges": "bytes",
    }
    if download_name:
        headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    if "HTTP_IF_NONE_MATCH" in environ and request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    headers["Content-Length"] = str(st.st_size)
    body = wrap_file(environ, open(path, "rb"))
    return Response(body, mimetype=mimetype, headers=headers, direct_passthrough=True)


@bp.get("/packages/<project>/<filename>")
def download(project: str, filename: str) -> Response:
    svc = services()
    max_age = svc.settings.file_max_age
    try:
        canonical = canonical_project_name(project)
        if filename.endswith(METADATA_SUFFIX):
            path = svc.index.core_metadata(canonical, filename[: -len(METADATA_SUFFIX)])
            return serve_file(path, os.stat(path), "text/plain; charset=utf-8", max_age)
        path, st = svc.store.locate_file(canonical, filename)
    except (InvalidName, InvalidFilename):
        raise FileNotFound(f"no file {filename[:100]!r}") from None
    resp = serve_file(path, st, content_type_for(filename), max_age, download_name=filename)
    if request.method == "GET" and resp.status_code in (200, 206):
        hook = svc.extras.get("on_download")
        if hook is not None:
            hook(canonical, filename, request)
    return resp
