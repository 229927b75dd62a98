"""The context of a project page: one release, its history, files, dependencies and users.

Kept apart from the routes in ``web/ui.py`` so both stay short. The dependency table is
evaluated for the environment the reader picks (``?python=3.11&platform=windows``; the
server's own by default), as issue 12 (defect 2) asks.
"""
from __future__ import annotations

from typing import Any

from flask import request
from packaging.version import InvalidVersion, Version

from ..catalog import latest_version
from ..deps import PLATFORM_LABELS, PYTHON_VERSIONS, Environment, analyse_requirements, dependency_graph
from ..downloads import download_counts
from ..errors import NotFound, ProjectNotFound
from .app import services

__all__ = ["release_context", "group_classifiers"]


def group_classifiers(classifiers: tuple[str, ...]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Trove classifiers grouped by their first part, as on PyPI's site: [(group, [(label, full)])]."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for full in classifiers:
        head, _, rest = full.partition(" :: ")
        groups.setdefault(head.strip(), []).append((rest.strip() or head.strip(), full))
    return sorted(groups.items())


def _chosen_version(by_version: dict[Version, list], version: str | None, latest: Version, name: str) -> Version:
    if version is None:
        return latest
    try:
        wanted = Version(version)
    except InvalidVersion:
        raise NotFound(f"no version {version[:50]!r} of {name}") from None
    if wanted not in by_version:
        raise NotFound(f"no version {version[:50]!r} of {name}")
    return next(v for v in by_version if v == wanted)  # the spelling on disk


def _split_files(files: list) -> tuple[list, list]:
    """(source distributions, built distributions), as PyPI's site splits them."""
    return [f for f in files if f[0].kind != "wheel"], [f for f in files if f[0].kind == "wheel"]


def release_context(name: str, version: str | None) -> dict[str, Any]:
    from .ui import index_url, ui_services

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
    chosen = _chosen_version(by_version, version, latest, name)
    view = ui.releases.get(name, str(chosen), by_version[chosen])
    files_by_name = {f.filename: f for f in detail.files}
    files = [(files_by_name[e.filename], e) for e in by_version[chosen] if e.filename in files_by_name]
    versions = [
        {"version": str(v), "time": min(e.mtime_ns for e in es) / 1e9, "yanked": v in yanked,
         "reason": next((e.yanked for e in es if e.yanked), ""), "pre": v.is_prerelease}
        for v, es in sorted(by_version.items(), reverse=True)
    ]
    current = next(v for v in versions if v["version"] == str(chosen))
    environment = Environment.parse(request.args.get("python"), request.args.get("platform"))
    deps = analyse_requirements(view.requires_dist, svc.store.projects(), environment)
    graph = dependency_graph(ui.catalog)
    sdists, wheels = _split_files(files)
    return dict(
        name=name, view=view, version=str(chosen), latest=str(latest), is_latest=chosen == latest,
        versions=versions, files=files, sdists=sdists, wheels=wheels, released=current["time"],
        yanked=chosen in yanked, yank_reason=current["reason"],
        deps=deps, needed=[d for d in deps if not d.conditional], conditional=[d for d in deps if d.conditional],
        environment=environment, python_versions=PYTHON_VERSIONS, platforms=PLATFORM_LABELS,
        classifier_groups=group_classifiers(view.classifiers),
        used_by=graph.used_by(name), snap=graph.snapshot, index_url=index_url(),
        downloads=download_counts(svc, name) if svc.settings.count_downloads else None,
    )
