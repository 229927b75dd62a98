"""Checks and repairs of the tree and its derived data (``manage_repo.py verify`` / ``reindex``).

The package tree is the truth; everything under the data directory can be re-derived
from it. ``verify`` re-hashes every file against the index records and finds what a crash
or a hand edit can leave behind; ``reindex`` rebuilds the records from scratch.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from .errors import InvalidDistribution
from .index import ProjectIndex
from .metadata import read_core_metadata
from .storage import STALE_TEMP_S, YANK_SUFFIX, FileEntry, PackageStore, is_temp_name, sha256_file

__all__ = ["Problem", "verify_derived", "reindex", "STALE_TEMP_S"]


@dataclass
class Problem:
    """One thing ``verify`` found: what, where, and whether ``--fix`` repaired it."""

    kind: str
    path: Path
    detail: str = ""
    fixed: bool = False


def _verify_project(index: ProjectIndex, project: str, entries: list[FileEntry]) -> tuple[list[Problem], bool]:
    """Re-hash and re-read every file of a project against its cached index records."""
    problems: list[Problem] = []
    rebuild = False
    cached = index.cached_records(project)
    for entry in entries:
        record = cached.get(entry.filename)
        try:
            read_core_metadata(entry.path, entry.dist)
        except InvalidDistribution as exc:
            problems.append(Problem("broken archive", entry.path, str(exc)))
        if record is None:
            problems.append(Problem("not indexed", entry.path))
        elif record.stat != entry.stat_key:
            problems.append(Problem("stale index entry", entry.path, "file changed since it was indexed"))
        elif (actual := sha256_file(entry.path)) != record.sha256:
            problems.append(Problem("hash mismatch", entry.path, f"index says {record.sha256}, file is {actual}"))
        elif record.metadata_sha256 and _stale_metadata(index, project, entry.filename, record.metadata_sha256):
            problems.append(Problem("stale PEP 658 metadata", index.metadata_path(project, entry.filename)))
        else:
            continue
        rebuild = True
    present = {e.filename for e in entries}
    for filename in sorted(set(cached) - present):
        problems.append(Problem("index entry without file", index.cache_dir / f"{project}.json", filename))
        rebuild = True
    return problems, rebuild


def _stale_metadata(index: ProjectIndex, project: str, filename: str, expected: str) -> bool:
    """A written ``.metadata`` file that no longer matches its record (a missing one is fine:
    it is written on first request)."""
    try:
        return hashlib.sha256(index.metadata_path(project, filename).read_bytes()).hexdigest() != expected
    except FileNotFoundError:
        return False


def _verify_tree_orphans(store: PackageStore, fix: bool) -> list[Problem]:
    """Temp files left by a crash, yank sidecars without their file, empty project directories
    (listed or not: a directory without a served file is no project, issue 9)."""
    problems: list[Problem] = []
    for directory in _tree_dirs(store):
        children = list(directory.iterdir())
        if not children:
            problems.append(Problem("empty project directory", directory, "", fix))
            if fix:
                directory.rmdir()
        for child in children:
            if is_temp_name(child.name):
                old = time.time() - child.lstat().st_mtime > STALE_TEMP_S
                problems.append(Problem("leftover temp file", child, "" if old else "recent: maybe an upload",
                                        fix and old))
                if fix and old:
                    child.unlink()
            elif child.name.endswith(YANK_SUFFIX) and not child.with_name(child.name[: -len(YANK_SUFFIX)]).exists():
                problems.append(Problem("yank sidecar without file", child, "", fix))
                if fix:
                    child.unlink()
    return problems


def _tree_dirs(store: PackageStore) -> list[Path]:
    """Every project directory, listed or not (not symlinks, not ``lost+found``)."""
    try:
        return sorted(p for p in store.root.iterdir() if not p.name.startswith(".") and p.is_dir()
                      and not p.is_symlink() and _valid_project_dirname(p.name))
    except OSError:
        return []


def _valid_project_dirname(name: str) -> bool:
    try:
        canonicalize_name(name, validate=True)
    except ValueError:
        return False
    return True


def _verify_not_served(store: PackageStore) -> list[Problem]:
    """Files in the tree that no page lists, and why (issue 10): another project's file in
    this directory, a legacy format, a symlink leaving the root, a second file of one
    release. Not fixed automatically: moving or deleting them is the operator's call."""
    problems: list[Problem] = []
    for entry in sorted(store.root.iterdir()) if store.root.is_dir() else []:
        if entry.name.startswith(".") or entry.name == "lost+found" or not entry.is_dir():
            continue
        if entry.is_symlink() and not store.inside_root(str(entry)):
            problems.append(Problem("not served", entry, "symlink to a directory outside the package root"))
            continue
        try:
            project = canonicalize_name(entry.name, validate=True)
        except ValueError:
            problems.append(Problem("not served", entry, "directory name is not a valid project name"))
            continue
        with os.scandir(entry) as it:
            for dirent in sorted(it, key=lambda d: d.name):
                reason = store.skip_reason(project, dirent)
                if reason not in (None, "hidden"):
                    problems.append(Problem("not served", Path(dirent.path), reason))
    for project, served in store.iter_all():
        shown = {e.path for e in served}
        for entry in store.scan_copies(project, store.project_dirs(project)):
            if entry.path not in shown:
                twin = next(e.filename for e in served if e.dist.identity == entry.dist.identity)
                problems.append(Problem("not served", entry.path, f"same release file as {twin}, which is served"))
    return problems


def _verify_derived_orphans(store: PackageStore, index: ProjectIndex, fix: bool) -> list[Problem]:
    """Cache and metadata files of projects or files that are gone."""
    problems: list[Problem] = []
    projects = store.projects()
    for cache in sorted(index.cache_dir.glob("*.json")):
        if cache.stem not in projects:
            problems.append(Problem("index cache of a missing project", cache, "", fix))
            if fix:
                cache.unlink()
    for meta in sorted(index.metadata_dir.glob("*/*.metadata")):
        project, filename = meta.parent.name, meta.name[: -len(".metadata")]
        if store.remote:  # a shared bucket (issue 14): its listing, not the node's disk
            exists = project in projects and any(e.filename == filename for e in store.scan_project(project))
        else:
            exists = project in projects and any((store.root / n / filename).is_file() for n in projects[project])
        if not exists:
            problems.append(Problem("metadata of a missing file", meta, "", fix))
            if fix:
                meta.unlink()
    return problems


def verify_derived(store: PackageStore, index: ProjectIndex, *, fix: bool = False) -> list[Problem]:
    """Check every file and all derived data; with ``fix``, rebuild and delete what is wrong."""
    problems: list[Problem] = []
    for project, entries in store.iter_all():
        found, rebuild = _verify_project(index, project, entries)
        if rebuild and fix:
            (index.cache_dir / f"{project}.json").unlink(missing_ok=True)
            for file in index.project_detail(project).files:
                if file.core_metadata_sha256:
                    index.core_metadata(project, file.filename)  # rewrites a stale one
            for problem in found:
                problem.fixed = problem.kind != "broken archive"
        problems += found
    problems += _verify_tree_orphans(store, fix)
    problems += _verify_not_served(store)
    problems += _verify_derived_orphans(store, index, fix)
    return problems


def reindex(store: PackageStore, index: ProjectIndex) -> int:
    """Re-derive hashes and PEP 658 metadata of every file (atomic rewrites: safe while serving)."""
    count = 0
    for project, entries in store.iter_all():
        (index.cache_dir / f"{project}.json").unlink(missing_ok=True)
        count += len(index.project_detail(project).files)
    _verify_derived_orphans(store, index, fix=True)
    return count
