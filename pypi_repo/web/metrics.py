"""``GET /metrics`` (Prometheus text format) and the per-request hooks: request id and
request metrics.

The hooks run on every request, so they do the least possible: a clock read and a
context variable before; one counter and one histogram update after (measured with
../shared/bench, see docs/observability.md).
"""
from __future__ import annotations

import hmac
import ipaddress
import itertools
import os
import re
import time

from flask import Blueprint, Flask, Response, abort, request

from .. import downloads, metrics
from ..logs import REQUEST_ID_HEADER, bind_request, unbind_request
from .app import services

__all__ = ["bp", "init_app", "on_worker_exit"]

bp = Blueprint("metrics", __name__)

# An incoming id is kept only if it is short and plain (it is echoed and logged).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_REQUEST_ID_ENVIRON = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")


class _RequestIds:
    """Unique ids, cheaply: a random prefix per process and a counter (uuid4 per request
    costs more than the rest of the hooks together)."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._counter = itertools.count(1)

    def new(self) -> str:
        if self._pid != os.getpid():  # a forked worker must not repeat its parent's ids
            self._pid = os.getpid()
            self._prefix = os.urandom(6).hex()
            self._counter = itertools.count(1)
        return f"{self._prefix}{next(self._counter):08x}"


_ids = _RequestIds()


_STARTED = "pypi_repo.started"
_REQUEST_ID = "pypi_repo.request_id"
_LOG_TOKEN = "pypi_repo.log_token"


def _begin() -> None:
    """Before every request: a clock read, the request id, the logging context.

    State lives in the WSGI environ (one proxy lookup per hook, not one per field)."""
    environ = request.environ
    incoming = environ.get("HTTP_X_REQUEST_ID")
    request_id = incoming if incoming and _SANE_REQUEST_ID.fullmatch(incoming) else _ids.new()
    environ[_STARTED] = time.perf_counter()
    environ[_REQUEST_ID] = request_id
    environ[_LOG_TOKEN] = bind_request(request_id, client=environ.get("REMOTE_ADDR"),
                                       route=request.endpoint)


def _finish(resp: Response) -> Response:
    resp.headers[REQUEST_ID_HEADER] = request.environ.get(_REQUEST_ID, "")
    return resp


def _teardown(_exc: BaseException | None) -> None:
    token = request.environ.pop(_LOG_TOKEN, None)
    if token is not None:
        unbind_request(token)


def _make_finish_and_measure(sync: metrics.CacheStatsSync):
    """``_finish`` plus the request counter and latency histogram, in one hook."""
    def finish_and_measure(resp: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        environ = req.environ
        resp.headers[REQUEST_ID_HEADER] = environ.get(_REQUEST_ID, "")
        started = environ.get(_STARTED)
        if started is not None:
            now = time.perf_counter()
            rule = req.url_rule
            route = rule.endpoint if rule is not None else "unmatched"
            metrics.record_request(route, req.method, resp.status_code, now - started)
            sync.maybe_sync(now)
        return resp

    return finish_and_measure


def _allowed_networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item.strip(), strict=False) for item in spec.split(",") if item.strip()]


def _may_read_metrics(token: str, networks: list) -> bool:
    """Open when nothing is configured; otherwise the bearer token or an allowed address."""
    if not token and not networks:
        return True
    if token:
        given = request.headers.get("Authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode()):
            return True
    if networks and request.remote_addr:
        try:
            address = ipaddress.ip_address(request.remote_addr)
        except ValueError:
            return False
        return any(address in net for net in networks)
    return False


class Scrape:
    """What ``/metrics`` needs, built once by :func:`init_app` (``Services.metrics_scrape``)."""

    def __init__(self, token: str, allow: list, sync: metrics.CacheStatsSync, collectors: list) -> None:
        self.token = token
        self.allow = allow
        self.sync = sync
        self.collectors = collectors

    def __call__(self) -> Response:
        if not _may_read_metrics(self.token, self.allow):
            abort(403)
        self.sync.sync()
        return Response(metrics.render(self.collectors), mimetype=None, content_type=metrics.CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})


@bp.get("/metrics")
def scrape() -> Response:
    handler = services().metrics_scrape
    if handler is None:
        abort(404)
    return handler()


def init_app(app: Flask) -> None:
    """Request ids always; request metrics and ``/metrics`` when ``Settings.metrics`` is on."""
    app.before_request(_begin)
    app.teardown_request(_teardown)
    svc = app.extensions["pypi_repo"]
    settings = svc.settings
    if not settings.metrics:
        app.after_request(_finish)
        return
    if settings.metrics_token or settings.metrics_allow:
        # /metrics has its own protection then (a Prometheus bearer token cannot also be
        # Basic credentials); otherwise private mode's read check guards it too.
        svc.open_endpoints.add("metrics.scrape")
    mp_dir = metrics.multiprocess_dir()
    if mp_dir is not None:
        mp_dir.mkdir(parents=True, exist_ok=True)  # a worker must never fail a request for a missing dir
    sync = metrics.CacheStatsSync(lambda: svc.index.cache_stats)
    svc.metrics_scrape = Scrape(settings.metrics_token, _allowed_networks(settings.metrics_allow), sync, [
        metrics.IndexSizeCollector(svc.tree_stats.get, settings.metrics_index_ttl),
        metrics.ServiceCollector(svc.started_at),
        metrics.ProjectDownloadsCollector(lambda top: downloads.top_projects(svc, top),
                                          settings.metrics_top_projects, settings.metrics_index_ttl),
    ])
    app.after_request(_make_finish_and_measure(sync))
    app.register_blueprint(bp)


def on_worker_exit(app: Flask | None) -> None:
    """Gunicorn ``worker_exit``: write the download counts this worker still buffers."""
    extensions = getattr(app, "extensions", None) or {}
    svc = extensions.get("pypi_repo")
    recorder = svc.extras.get("downloads") if svc is not None else None
    if recorder is not None:
        recorder.close()
