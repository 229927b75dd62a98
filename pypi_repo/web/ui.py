"""Human pages: home, project list and search, project pages, dependency reports, stats and
health, plus their JSON twins under ``/api/``. The home page also answers Simple API
clients pointed at ``/``. Login and the upload form live in ``web/ui_account.py``.

Views are thin: the data comes from the catalog (``catalog.py``), search (``search.py``),
dependency analysis (``deps.py``) and release views (``releases.py``), all Flask-free.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from packaging.version import InvalidVersion, Version

from ..catalog import Catalog, CatalogSnapshot, latest_version
from ..charts import human_bytes, line_chart, upload_history
from ..deps import analyse_requirements, dependency_graph
from ..downloads import download_counts
from ..distfiles import canonical_project_name
from ..errors import InvalidName, NotFound, ProjectNotFound
from ..releases import ReleaseViews
from ..search import search
from ..simple_api import HTML_V1, JSON_V1, TEXT_HTML, choose_content_type
from .app import services
from .simple import page_response

__all__ = ["bp", "index_url", "base_url", "ui_services", "html"]

bp = Blueprint("ui", __name__)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass
class UiServices:
    """Per-process state of the human pages, created on first use."""

    catalog: Catalog
    releases: ReleaseViews


def ui_services() -> UiServices:
    svc = services()
    found = svc.extras.get("ui")
    if found is None:
        catalog = Catalog(svc.index, svc.settings.data_dir, refresh_s=svc.settings.catalog_refresh_s)
        found = svc.extras.setdefault("ui", UiServices(catalog, ReleaseViews(svc.index)))
    return found


def index_url() -> str:
    """The URL clients should use for this index, as this request reached it."""
    return base_url() + "/simple/"


def base_url() -> str:
    configured = services().settings.public_url.rstrip("/")
    return configured or (request.host_url.rstrip("/") + request.script_root)


def html(template: str, status: int = 200, **context: Any) -> Response:
    resp = Response(render_template(template, **context), status=status, content_type="text/html; charset=utf-8")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.app_template_filter("bytes")
def _bytes_filter(size: float) -> str:
    return human_bytes(size)


@bp.app_template_filter("when")
def _when_filter(value: Any) -> str:
    """Epoch seconds or a PEP 700 time string -> ``2024-05-01 12:00 UTC``."""
    if not value:
        return ""
    if isinstance(value, str):
        return value[:16].replace("T", " ") + " UTC"
    return datetime.fromtimestamp(float(value), tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@bp.app_template_filter("duration")
def _duration_filter(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(request.args.get(name, default))))
    except ValueError:
        return default


def _canonical_or_404(name: str) -> str:
    try:
        return canonical_project_name(name)
    except InvalidName:
        raise ProjectNotFound(f"no project named {name[:100]!r}") from None


def _recent(snap: CatalogSnapshot) -> list:
    return sorted(snap.records.values(), key=lambda r: (-r.last_upload, r.name))


def _totals(snap: CatalogSnapshot) -> dict[str, int]:
    recs = snap.records.values()
    return {"files": sum(r.files for r in recs), "bytes": sum(r.bytes for r in recs),
            "wheels": sum(r.wheels for r in recs)}


# --------------------------------------------------------------------------- home
@bp.get("/")
def home() -> Response:
    accept = request.headers.get("Accept")
    if request.args.get("format") or (accept and choose_content_type(accept) in (JSON_V1, HTML_V1)):
        kind = choose_content_type(accept, request.args.get("format"))
        svc = services()
        return page_response(svc.index.project_list_page(kind, request.script_root), svc.settings.page_max_age)
    ui = ui_services()
    snap = ui.catalog.snapshot()
    return html(
        "home.html",
        index_url=index_url(),
        upload_url=base_url() + "/",
        project_count=snap.total,
        totals=ui.catalog.derived("totals", _totals),
        recent=ui.catalog.derived("recent", _recent)[:12],
        snap=snap,
        content_type=TEXT_HTML,
    )


# -------------------------------------------------------------- list and search
@bp.get("/projects/")
def project_list() -> Response:
    accept = request.headers.get("Accept")
    if accept and choose_content_type(accept) in (JSON_V1, HTML_V1):
        from .simple import project_detail_alias  # pip pointed at "/" asking for a project "projects"

        return project_detail_alias("projects")
    ui = ui_services()
    query = request.args.get("q", "").strip()[:200]
    sort = request.args.get("sort", "name")
    page = _int_arg("page", 1, 1, 10**6)
    size = _int_arg("size", PAGE_SIZE, 1, MAX_PAGE_SIZE)
    started = time.perf_counter()
    snap = ui.catalog.snapshot()
    if query:
        result = search(ui.catalog, query, limit=size, offset=(page - 1) * size)
        rows, total = [h.record for h in result.hits], result.total
    elif sort == "updated":
        recent = ui.catalog.derived("recent", _recent)
        rows, total = recent[(page - 1) * size: page * size], len(recent)
    else:
        names = ui.catalog.derived("names", lambda s: sorted(services().store.projects()))
        total = len(names)
        chosen = names[(page - 1) * size: page * size]
        rows = [snap.records.get(n) or n for n in chosen]
    context = dict(query=query, sort=sort, page=page, size=size, rows=rows, total=total,
                   pages=max(1, -(-total // size)), snap=snap,
                   took_ms=round((time.perf_counter() - started) * 1000, 1))
    if request.args.get("partial"):
        return html("_project_rows.html", **context)
    return html("projects.html", **context)


@bp.get("/search/")
def search_page() -> Response:
    return redirect(url_for("ui.project_list", q=request.args.get("q", "")), 302)


@bp.get("/api/search")
def api_search() -> Response:
    query = request.args.get("q", "").strip()
    limit = _int_arg("limit", 20, 1, MAX_PAGE_SIZE)
    offset = _int_arg("offset", 0, 0, 10**7)
    started = time.perf_counter()
    result = search(ui_services().catalog, query, limit=limit, offset=offset)
    return jsonify({
        "query": query,
        "total": result.total,
        "took_ms": round((time.perf_counter() - started) * 1000, 2),
        "results": [dict(h.to_json(), url=url_for("ui.project", name=h.record.name)) for h in result.hits],
    })


# ----------------------------------------------------------------- project pages
def _release_context(name: str, version: str | None) -> dict[str, Any]:
    svc = services()
    ui = ui_services()
    entries = svc.store.scan_project(name)
    detail = svc.index.project_detail(name)
    if not entries:
        raise ProjectNotFound(f"project {name!r} has no files")
    by_version: dict[Version, list] = {}
    for entry in entries:
        by_version.setdefault(entry.dist.version, []).append(entry)
    yanked = {v for v, es in by_version.items() if all(e.yanked is not None for e in es)}
    latest = latest_version(by_version, yanked)
    if version is None:
        chosen = latest
    else:
        try:
            chosen = Version(version)
        except InvalidVersion:
            raise NotFound(f"no version {version[:50]!r} of {name}") from None
        if chosen not in by_version:
            raise NotFound(f"no version {version[:50]!r} of {name}")
        chosen = next(v for v in by_version if v == chosen)  # the spelling on disk
    view = ui.releases.get(name, str(chosen), by_version[chosen])
    files_by_name = {f.filename: f for f in detail.files}
    files = [(files_by_name[e.filename], e) for e in by_version[chosen] if e.filename in files_by_name]
    versions = [
        {"version": str(v), "time": min(e.mtime_ns for e in es) / 1e9, "yanked": v in yanked,
         "reason": next((e.yanked for e in es if e.yanked), ""), "pre": v.is_prerelease}
        for v, es in sorted(by_version.items(), reverse=True)
    ]
    served = svc.store.projects()
    graph = dependency_graph(ui.catalog)
    return dict(
        name=name, view=view, version=str(chosen), latest=str(latest), is_latest=chosen == latest,
        versions=versions, files=files, deps=analyse_requirements(view.requires_dist, served),
        used_by=graph.used_by(name), snap=graph.snapshot, index_url=index_url(),
        yanked=chosen in yanked,
        downloads=download_counts(svc, name) if svc.settings.count_downloads else None,
    )


def _project_redirect(name: str, version: str | None) -> Response | None:
    canonical = _canonical_or_404(name)
    if canonical != name:
        args = {"name": canonical} | ({"version": version} if version else {})
        return redirect(url_for("ui.project_version" if version else "ui.project", **args), 301)
    return None


@bp.get("/project/<name>/")
def project(name: str) -> Response:
    return _project_redirect(name, None) or html("project.html", **_release_context(name, None))


@bp.get("/project/<name>/<version>/")
def project_version(name: str, version: str) -> Response:
    moved = _project_redirect(name, version)
    if moved:
        return moved
    context = _release_context(name, version)
    if context["version"] != version:  # 1.0 -> 1.0.0 style aliases land on one URL
        return redirect(url_for("ui.project_version", name=name, version=context["version"]), 301)
    return html("project.html", **context)


@bp.get("/api/project/<name>")
def api_project(name: str) -> Response:
    canonical = _canonical_or_404(name)
    ctx = _release_context(canonical, request.args.get("version"))
    view = ctx["view"]
    return jsonify({
        "name": canonical, "display_name": view.display_name, "version": ctx["version"],
        "latest": ctx["latest"], "summary": view.summary, "requires_python": view.requires_python,
        "license": view.license_expression or view.license, "urls": dict(view.urls),
        "versions": ctx["versions"],
        "files": [{"filename": f.filename, "size": f.size, "sha256": f.sha256, "upload_time": f.upload_time,
                   "yanked": f.yanked} for f, _ in ctx["files"]],
    })


# ---------------------------------------------------------------- dependencies
@bp.get("/api/project/<name>/dependencies")
def api_dependencies(name: str) -> Response:
    canonical = _canonical_or_404(name)
    ctx = _release_context(canonical, request.args.get("version"))
    return jsonify({
        "name": canonical,
        "version": ctx["version"],
        "dependencies": [d.to_json() for d in ctx["deps"]],
        "used_by": [{"name": d.name, "version": d.version, "optional": d.optional} for d in ctx["used_by"]],
        "complete": ctx["snap"].pending == 0,
    })


@bp.get("/api/project/<name>/dependents")
def api_dependents(name: str) -> Response:
    canonical = _canonical_or_404(name)
    if canonical not in services().store.projects():
        raise ProjectNotFound(f"no project named {canonical!r}")
    graph = dependency_graph(ui_services().catalog)
    return jsonify({"name": canonical, "complete": graph.snapshot.pending == 0,
                    "used_by": [{"name": d.name, "version": d.version, "optional": d.optional}
                                for d in graph.used_by(canonical)]})


def _missing() -> tuple[list, CatalogSnapshot]:
    graph = dependency_graph(ui_services().catalog)
    return graph.missing(services().store.projects()), graph.snapshot


@bp.get("/dependencies/missing/")
def missing_page() -> Response:
    missing, snap = _missing()
    return html("missing.html", missing=missing, snap=snap,
                required=[m for m in missing if not m.only_optional],
                optional=[m for m in missing if m.only_optional])


@bp.get("/api/dependencies/missing")
def api_missing() -> Response:
    missing, snap = _missing()
    return jsonify({
        "complete": snap.pending == 0,
        "projects_indexed": len(snap.records),
        "missing": [{"name": m.name, "required_by": list(m.required_by), "only_optional": m.only_optional}
                    for m in missing],
    })


# ------------------------------------------------------------------ stats, health
@bp.get("/ui/stats")
def stats_page() -> Response:
    svc = services()
    ui = ui_services()
    snap = ui.catalog.snapshot()
    history = ui.catalog.derived("history", upload_history)
    files_chart = line_chart([(d, f) for d, f, _ in history], lambda v: f"{v:,.0f}")
    bytes_chart = line_chart([(d, b) for d, _, b in history], human_bytes)
    largest = ui.catalog.derived("largest", lambda s: sorted(s.records.values(), key=lambda r: -r.bytes)[:10])
    extra = {}
    for key, provider in svc.extras.get("stats_providers", {}).items():
        try:
            extra[key] = provider()
        except Exception:  # a broken provider must not break the page
            extra[key] = {"error": "unavailable"}
    return html("stats.html", snap=snap, totals=ui.catalog.derived("totals", _totals),
                files_chart=files_chart, bytes_chart=bytes_chart, largest=largest,
                cache=svc.index.cache_stats, extra=extra, uptime_s=svc.health.uptime_s())


@bp.get("/ui/health")
def health_page() -> Response:
    healthy, doc = services().health.check()
    return html("health.html", status=200 if healthy else 503, healthy=healthy, doc=doc)


@bp.get("/favicon.ico")
def favicon() -> Response:
    return redirect(url_for("static", filename="favicon.svg"), 301)

