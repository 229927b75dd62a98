"""gzip and Brotli for UI pages and the Simple API, when the client asks (issue 12, defect 16).

A project page of a big README is ~225 KB of HTML and compresses ~8x; a Simple API page of
a project with many files does too. Rules:
- only when ``Accept-Encoding`` allows it (Brotli preferred, then gzip), always with
  ``Vary: Accept-Encoding``; only 200 responses of text-like types, 1 KB or more;
- never distribution files or their ``.metadata`` (``files`` blueprint): they keep their
  bytes, strong ETag, 304 and Range answers exactly;
- a compressed body carries the weak form of its ETag (what nginx does), so
  ``If-None-Match`` still matches and 304s keep working;
- a response with an ETag (every Simple API page) is compressed once per page version:
  the compressed bytes sit in a bounded LRU keyed by (ETag, type, encoding).
"""
from __future__ import annotations

import gzip

from flask import Flask, Response, current_app, request

from ..cache import ByteLRU

try:  # Brotli is in requirements.txt; without it, gzip alone is offered
    import brotli
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None

__all__ = ["init_app", "compress_response", "MIN_BYTES"]

MIN_BYTES = 1024
CACHE_BYTES = 16 * 1024 * 1024
COMPRESSIBLE = ("text/html", "text/css", "text/plain", "text/javascript", "application/javascript",
                "application/json", "application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.v1+html",
                "image/svg+xml")
EXCLUDED_BLUEPRINTS = frozenset({"files", "upload"})
EXTENSION_KEY = "pypi_repo.compression"


def _encoding() -> str | None:
    accepted = request.accept_encodings
    if brotli is not None and accepted.quality("br") > 0:
        return "br"
    if accepted.quality("gzip") > 0:
        return "gzip"
    return None


def _compress(data: bytes, encoding: str) -> bytes:
    if encoding == "br":
        return brotli.compress(data, quality=5)
    return gzip.compress(data, compresslevel=6, mtime=0)


def _eligible(resp: Response) -> bool:
    if request.method != "GET" or resp.status_code != 200 or "Content-Encoding" in resp.headers:
        return False
    if request.blueprint in EXCLUDED_BLUEPRINTS or resp.mimetype not in COMPRESSIBLE:
        return False
    if request.endpoint == "static" and resp.direct_passthrough:  # our CSS/JS: small, read once per version
        resp.direct_passthrough = False
        resp.make_sequence()
    return not (resp.direct_passthrough or resp.is_streamed)


def compress_response(resp: Response) -> Response:
    """``after_request`` hook: compress the body in place when it pays."""
    if not _eligible(resp):
        return resp
    data = resp.get_data()
    if len(data) < MIN_BYTES:  # never compressed, whatever the client says: no Vary either
        return resp
    resp.vary.add("Accept-Encoding")
    encoding = _encoding()
    if encoding is None:
        return resp
    etag, weak = resp.get_etag()
    cache: ByteLRU = current_app.extensions[EXTENSION_KEY]
    key = (etag, resp.mimetype, encoding) if etag else None
    body = cache.get(key) if key else None
    if body is None:
        body = _compress(data, encoding)
        if key:
            cache.put(key, body, len(body) + 200)
    if len(body) >= len(data):
        return resp
    resp.set_data(body)
    resp.headers["Content-Encoding"] = encoding
    if etag and not weak:
        resp.set_etag(etag, weak=True)
    return resp


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION_KEY] = ByteLRU(CACHE_BYTES)
    app.after_request(compress_response)
