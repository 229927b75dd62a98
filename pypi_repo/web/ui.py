"""Human pages: home, project list and search, project pages, dependency reports, stats and
health, plus their JSON twins under ``/api/``. The home page also answers Simple API
clients pointed at ``/``. Login and the upload form live in ``web/ui_account.py``.

Views are thin: the data comes from the catalog (``catalog.py``), search (``search.py``),
dependency analysis (``deps.py``) and release views (``releases.py``), all Flask-free.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for

from ..catalog import Catalog, CatalogSnapshot
from ..charts import human_bytes, line_chart, upload_history
from ..deps import PYTHON_VERSIONS, dependency_graph
from ..descriptions import pygments_css
from ..distfiles import canonical_project_name
from ..errors import InvalidName, ProjectNotFound
from ..releases import ReleaseViews
from ..search import SearchFilters, highlight_segments, normalize_query, search
from ..simple_api import HTML_V1, JSON_V1, TEXT_HTML, choose_content_type
from . import ui_format
from .app import services
from .simple import page_response
from .ui_format import HIDDEN_HEALTH_KEYS
from .ui_project import release_context

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


ui_format.register(bp)


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
    filters = _filters()
    snap = ui.catalog.snapshot()
    if query or filters:
        result = search(ui.catalog, query, limit=size, offset=(page - 1) * size, filters=filters)
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
                   pages=max(1, -(-total // size)), snap=snap, filters=filters,
                   python_versions=PYTHON_VERSIONS, words=normalize_query(query)[2],
                   pager_args=_pager_args(query, sort, size, filters))
    if request.args.get("partial"):
        return html("_project_rows.html", **context)
    return html("projects.html", **context)


def _filters() -> SearchFilters:
    python = request.args.get("python", "")
    return SearchFilters(classifier=" ".join(request.args.get("classifier", "").split())[:300],
                         python=python if python in PYTHON_VERSIONS else "")


def _pager_args(query: str, sort: str, size: int, filters: SearchFilters) -> dict[str, Any]:
    """Everything but the page number, so "Next" keeps the size and the filters (defect 3)."""
    args = {"q": query or None, "sort": sort if sort != "name" else None,
            "size": size if size != PAGE_SIZE else None,
            "classifier": filters.classifier or None, "python": filters.python or None}
    return {k: v for k, v in args.items() if v is not None}


@bp.app_template_global("highlight_segments")
def _highlight_segments(text: str, words: tuple[str, ...]) -> list[tuple[str, bool]]:
    return highlight_segments(text, words)


@bp.get("/search/")
def search_page() -> Response:
    return redirect(url_for("ui.project_list", q=request.args.get("q", "")), 302)


@bp.get("/api/search")
def api_search() -> Response:
    query = request.args.get("q", "").strip()
    limit = _int_arg("limit", 20, 1, MAX_PAGE_SIZE)
    offset = _int_arg("offset", 0, 0, 10**7)
    started = time.perf_counter()
    result = search(ui_services().catalog, query, limit=limit, offset=offset, filters=_filters())
    return jsonify({
        "query": query,
        "total": result.total,
        "took_ms": round((time.perf_counter() - started) * 1000, 2),
        "results": [dict(h.to_json(), url=url_for("ui.project", name=h.record.name)) for h in result.hits],
    })


# ----------------------------------------------------------------- project pages
def _project_redirect(name: str, version: str | None) -> Response | None:
    canonical = _canonical_or_404(name)
    if canonical != name:
        args = {"name": canonical} | ({"version": version} if version else {})
        return redirect(url_for("ui.project_version" if version else "ui.project", **args), 301)
    return None


@bp.get("/project/<name>/")
def project(name: str) -> Response:
    return _project_redirect(name, None) or html("project.html", **release_context(name, None))


@bp.get("/project/<name>/<version>/")
def project_version(name: str, version: str) -> Response:
    moved = _project_redirect(name, version)
    if moved:
        return moved
    context = release_context(name, version)
    if context["version"] != version:  # 1.0 -> 1.0.0 style aliases land on one URL
        return redirect(url_for("ui.project_version", name=name, version=context["version"]), 301)
    return html("project.html", **context)


@bp.get("/api/project/<name>")
def api_project(name: str) -> Response:
    canonical = _canonical_or_404(name)
    ctx = release_context(canonical, request.args.get("version"))
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
    ctx = release_context(canonical, request.args.get("version"))
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
    # only figures that every worker agrees on (defect 12): per-worker caches and uptime are in /metrics
    extra = {}
    for key, provider in svc.extras.get("stats_providers", {}).items():
        try:
            extra[key] = provider()
        except Exception:  # a broken provider must not break the page
            extra[key] = {"error": "unavailable"}
    return html("stats.html", snap=snap, totals=ui.catalog.derived("totals", _totals),
                files_chart=files_chart, bytes_chart=bytes_chart, largest=largest, extra=extra)


def _public_checks(doc: Any) -> list[tuple[str, bool, list[tuple[str, Any]]]]:
    """(name, ok, [(key, value)]) from whatever ``/health`` returns, minus paths and pids."""
    checks = doc.get("checks") if isinstance(doc, dict) else None
    out = []
    for name, check in (checks or {}).items() if isinstance(checks, dict) else ():
        check = check if isinstance(check, dict) else {"ok": bool(check)}
        details = [(k, v) for k, v in check.items()
                   if k != "ok" and k not in HIDDEN_HEALTH_KEYS and not k.endswith("pid") and not (isinstance(v, str) and v.startswith("/"))]
        out.append((str(name), bool(check.get("ok")), details))
    return out


@bp.get("/ui/health")
def health_page() -> Response:
    result = services().health.check()
    healthy, doc = result if isinstance(result, tuple) else (None, result)
    doc = doc if isinstance(doc, dict) else {}
    if healthy is None:  # a checker that returns only its document
        healthy = doc.get("status") in ("ok", "healthy", "ready") or bool(doc.get("ok"))
    disk = next((c for n, c in (doc.get("checks") or {}).items() if n == "disk" and isinstance(c, dict)), None)
    return html("health.html", status=200 if healthy else 503, healthy=healthy, status_word=doc.get("status"),
                checks=_public_checks(doc),
                version=doc.get("version"), uptime_s=doc.get("uptime_s"), checked=doc.get("time"), disk=disk)


@bp.get("/ui/pygments.css")
def pygments_stylesheet() -> Response:
    """README code colours (light and dark), generated from the installed Pygments (defect 4)."""
    css = pygments_css()
    etag = hashlib.sha256(css.encode()).hexdigest()[:20]
    resp = Response(css, content_type="text/css; charset=utf-8")
    resp.set_etag(etag)
    resp.headers["Cache-Control"] = "max-age=86400"
    return resp.make_conditional(request)


@bp.get("/favicon.ico")
def favicon() -> Response:
    return redirect(url_for("static", filename="favicon.svg"), 301)

