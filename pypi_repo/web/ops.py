"""Operational endpoints: ``/health`` (200 or 503) and ``/stats`` (JSON)."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..health import repository_stats
from .app import services

bp = Blueprint("ops", __name__)


@bp.get("/health")
def health() -> Response:
    healthy, doc = services().health.check()
    resp = jsonify(doc)
    resp.status_code = 200 if healthy else 503
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/stats")
def stats() -> Response:
    svc = services()
    extra = {"page_cache": svc.index.cache_stats}
    for name, provider in svc.extras.get("stats_providers", {}).items():
        extra[name] = provider()
    resp = jsonify(repository_stats(svc.settings, svc.health.uptime_s(), extra, tree=svc.tree_stats))
    resp.headers["Cache-Control"] = "no-store"
    return resp
