"""Distribution files and their PEP 658 core metadata: ``/packages/<project>/<filename>``.

``send_file`` gives conditional GET (ETag from the stat, 304), Range (206/416), HEAD, and
hands the body to Gunicorn's sendfile.
"""
from __future__ import annotations

from flask import Blueprint, Response, request, send_file

from ..distfiles import canonical_project_name
from ..errors import FileNotFound, InvalidFilename, InvalidName
from .app import services

bp = Blueprint("files", __name__)

METADATA_SUFFIX = ".metadata"


def content_type_for(filename: str) -> str:
    """Explicit types: ``mimetypes`` would add ``Content-Encoding: gzip`` to a .tar.gz."""
    if filename.endswith((".whl", ".zip")):
        return "application/zip"
    if filename.endswith(".tar.gz"):
        return "application/gzip"
    return "application/octet-stream"


@bp.get("/packages/<project>/<filename>")
def download(project: str, filename: str) -> Response:
    svc = services()
    try:
        canonical = canonical_project_name(project)
        if filename.endswith(METADATA_SUFFIX):
            dist_name = filename[: -len(METADATA_SUFFIX)]
            path = svc.index.core_metadata(canonical, dist_name)
            resp = send_file(path, mimetype="text/plain; charset=utf-8", conditional=True,
                             max_age=svc.settings.file_max_age)
        else:
            path = svc.store.file_path(canonical, filename)
            resp = send_file(path, mimetype=content_type_for(filename), conditional=True,
                             max_age=svc.settings.file_max_age, download_name=filename)
    except (InvalidName, InvalidFilename):
        raise FileNotFound(f"no file {filename[:100]!r}") from None
    if request.method == "GET" and resp.status_code in (200, 206):
        hook = svc.extras.get("on_download")
        if hook is not None:
            hook(canonical, filename, request)
    return resp
