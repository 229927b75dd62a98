"""Operational endpoints: ``/health`` (readiness), ``/health/live`` (liveness), ``/stats``.

``/health`` answers 200 when the service can serve, else 503 with status ``degraded`` (alive,
but e.g. the disk is below ``min_free_disk_mb``) or ``unhealthy`` (not alive). ``/health/live``
answers 503 only for what a restart can fix; the monitor and the systemd watchdog poll it
(issue 9). In private mode an anonymous caller gets the status alone; the details (paths,
PIDs, project count) need a login or ``health_details = true`` (issue 10).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..errors import AuthenticationFailed, RateLimited
from ..health import repository_stats
from .access import request_principal
from .app import services

bp = Blueprint("ops", __name__)


def _shown(doc: dict[str, Any]) -> dict[str, Any]:
    """The whole document, or only its status for an anonymous caller of a private index."""
    svc = services()
    if not svc.settings.private or svc.settings.health_details:
        return doc
    from_session = svc.session_principal
    if from_session is not None and from_session() is not None:
        return doc
    if request.authorization is not None:  # only then: no failed-login count for monitors
        try:
            request_principal(svc, allow_session=False)
            return doc
        except (AuthenticationFailed, RateLimited):
            pass  # a bad login still gets the status: monitors must never see a 401 here
    return {"status": doc["status"]}


def _answer(ok: bool, doc: dict[str, Any]) -> Response:
    resp = jsonify(_shown(doc))
    resp.status_code = 200 if ok else 503
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/health")
def health() -> Response:
    return _answer(*services().health.check())


@bp.get("/health/live")
def health_live() -> Response:
    return _answer(*services().health.live())


@bp.get("/stats")
def stats() -> Response:
    svc = services()
    extra = {"page_cache": svc.index.cache_stats}
    for name, provider in svc.extras.get("stats_providers", {}).items():
        extra[name] = provider()
    resp = jsonify(repository_stats(svc.settings, svc.health.uptime_s(), extra, tree=svc.tree_stats))
    resp.headers["Cache-Control"] = "no-store"
    return resp
