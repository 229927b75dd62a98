"""The index: the Simple API model built from the package tree, cached at two levels.

1. On disk, under ``<data_dir>/index/``: per project, each file's sha256 and what its core
   metadata says, keyed by the file's (size, mtime, inode). A file is hashed once in its
   life, not once per process or per request. Deleting this directory loses nothing: it is
   rebuilt on the next request. PEP 658 ``.metadata`` files live beside it.
2. In memory, per worker: the rendered page bytes (HTML and JSON) with their ETag, in a
   byte-bounded LRU, valid while the project's fingerprint holds
   (:meth:`PackageStore.is_fresh`: a stat per directory and per file).

So a request never rescans the tree or re-hashes a file, and a file dropped into the tree
by hand is on the very next page any worker serves.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName

from . import __version__
from .cache import ByteLRU
from .errors import FileNotFound, InvalidDistribution, NotFound
from .metadata import IndexFacts, extract_core_metadata, read_index_facts
from .model import File, ProjectDetail, ProjectList, format_upload_time
from .simple_api import JSON_V1, TEXT_HTML, render_project_detail, render_project_list
from .storage import FileEntry, Fingerprint, PackageStore, atomic_write_bytes

__all__ = ["ProjectIndex", "Page", "FileRecord"]

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
#: Part of every stored page's key: bump when templates or rendering change.
RENDER_VERSION = f"{__version__}-2"  # -2: pages no longer carry a sidecar read outside the root


@dataclass(frozen=True)
class Page:
    """A rendered page, ready to send."""

    body: bytes
    etag: str
    content_type: str
    built_from: Any = None  # the Fingerprint (project) or listing (root) it was rendered from


@dataclass(frozen=True)
class FileRecord:
    """What the index knows of one file beyond a stat: derived, cached on disk."""

    stat: tuple[int, int, int]
    sha256: str
    requires_python: str | None
    metadata_sha256: str | None
    summary: str | None = None

    def to_json(self) -> dict:
        return {
            "stat": list(self.stat),
            "sha256": self.sha256,
            "requires_python": self.requires_python,
            "metadata_sha256": self.metadata_sha256,
            "summary": self.summary,
        }

    @classmethod
    def from_json(cls, data: dict) -> "FileRecord":
        return cls(
            stat=tuple(data["stat"]),
            sha256=data["sha256"],
            requires_python=data.get("requires_python"),
            metadata_sha256=data.get("metadata_sha256"),
            summary=data.get("summary"),
        )


def make_etag(body: bytes) -> str:
    """Strong ETag from the bytes: equal on every worker and across restarts."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


class ProjectIndex:
    """Builds and caches the Simple API pages of a :class:`PackageStore`."""

    def __init__(self, store: PackageStore, data_dir: Path, page_cache_bytes: int = 48 << 20) -> None:
        self.store = store
        self.cache_dir = Path(data_dir) / "index"
        self.metadata_dir = Path(data_dir) / "metadata"
        self.pages_dir = Path(data_dir) / "pages"
        self._pages = ByteLRU(page_cache_bytes)
        self._root: dict[tuple[str, str], Page] = {}
        self._root_lock = threading.Lock()

    # ------------------------------------------------------------------ pages
    def project_page(self, project: NormalizedName, content_type: str, prefix: str = "") -> Page:
        """The rendered project page; raises :class:`ProjectNotFound`."""
        key = (project, content_type, prefix)
        page = self._pages.get(key)
        if page is not None and self.store.is_fresh(project, page.built_from):
            return page
        fingerprint = self.store.fingerprint(project)  # before reading: a later change stales it
        body = self._rendered_body(project, content_type, prefix, fingerprint)
        page = Page(body, make_etag(body), content_type, fingerprint)
        self._pages.put(key, page, len(body) + 200)
        return page

    def _page_path(self, project: str, content_type: str, prefix: str, fingerprint: Fingerprint) -> Path:
        variant = hashlib.blake2b(f"{content_type}|{prefix}".encode(), digest_size=6).hexdigest()
        return self.pages_dir / project / f"{variant}-{fingerprint.digest(RENDER_VERSION)}"

    def _rendered_body(self, project: NormalizedName, content_type: str, prefix: str, fingerprint: Fingerprint) -> bytes:
        """The page bytes: from ``<data_dir>/pages/`` when a worker rendered this exact state
        before (workers share the work, and a page evicted from memory costs a file read, not
        a render), else rendered now and stored there."""
        path = self._page_path(project, content_type, prefix, fingerprint)
        variant = path.name.split("-", 1)[0]
        if fingerprint.settled:
            try:
                return path.read_bytes()
            except OSError:
                pass
        body = render_project_detail(self.project_detail(project), content_type, prefix)
        if fingerprint.settled:  # a racy fingerprint may not describe what was rendered
            try:
                atomic_write_bytes(path, body)
                for old in path.parent.glob(f"{variant}-*"):
                    if old != path:
                        old.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot store rendered page %s: %s", path, exc)
        return body

    def project_list_page(self, content_type: str, prefix: str = "") -> Page:
        """The rendered root page, re-rendered only when the set of projects changes."""
        listing = self.store.projects()  # re-read when the root's mtime moved
        key = (content_type, prefix)
        page = self._root.get(key)
        if page is not None and page.built_from is listing:
            return page
        with self._root_lock:
            body = render_project_list(ProjectList(tuple(listing)), content_type, prefix)
            page = Page(body, make_etag(body), content_type, listing)
            self._root[key] = page
        return page

    @property
    def cache_stats(self) -> dict[str, int]:
        return {"hits": self._pages.hits, "misses": self._pages.misses, "pages": len(self._pages)}

    # ------------------------------------------------------------------ model
    def project_detail(self, project: NormalizedName) -> ProjectDetail:
        entries = self.store.scan_project(project)
        records = self.file_records(project, entries)
        files = tuple(self._file(project, e, records[e.filename]) for e in entries)
        versions = sorted({e.dist.version for e in entries})
        return ProjectDetail(name=project, files=files, versions=tuple(str(v) for v in versions))

    def _file(self, project: str, entry: FileEntry, record: FileRecord) -> File:
        return File(
            filename=entry.filename,
            path=f"{project}/{entry.filename}",
            sha256=record.sha256,
            size=entry.size,
            upload_time=format_upload_time(entry.mtime_ns),
            version=str(entry.dist.version),
            kind=entry.dist.kind,
            requires_python=record.requires_python,
            core_metadata_sha256=record.metadata_sha256,
            yanked=entry.yanked,
        )

    def file_records(self, project: NormalizedName, entries: list[FileEntry]) -> dict[str, FileRecord]:
        """Records for ``entries``, from the disk cache where the stat still matches."""
        cache_path = self.cache_dir / f"{project}.json"
        cached = self.cached_records(project)
        records: dict[str, FileRecord] = {}
        changed = False
        for entry in entries:
            record = cached.get(entry.filename)
            if record is None or record.stat != entry.stat_key:
                record = self._derive_record(project, entry)
                changed = True
            records[entry.filename] = record
        if changed or set(cached) != set(records):
            doc = {"format": CACHE_FORMAT, "files": {k: v.to_json() for k, v in records.items()}}
            try:
                atomic_write_bytes(cache_path, json.dumps(doc, sort_keys=True).encode())
            except OSError as exc:  # a read-only data dir must not break reads
                log.warning("cannot write index cache %s: %s", cache_path, exc)
        return records

    def cached_records(self, project: str) -> dict[str, FileRecord]:
        """The records on disk for ``project``, as they are (empty when missing or unreadable)."""
        path = self.cache_dir / f"{project}.json"
        try:
            doc = json.loads(path.read_bytes())
            if doc.get("format") != CACHE_FORMAT:
                return {}
            return {name: FileRecord.from_json(data) for name, data in doc["files"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def _derive_record(self, project: str, entry: FileEntry) -> FileRecord:
        """Hash a file and read its metadata facts: once in the file's life (cached by stat).

        The PEP 658 file itself is written on its first request (:meth:`core_metadata`),
        so indexing a large tree for the first time writes one small JSON per project.
        """
        sha256 = self.store.file_sha256(entry)
        facts: IndexFacts | None = None
        try:
            facts = read_index_facts(self.store.local_file(entry), entry.dist)
        except InvalidDistribution as exc:
            log.warning("%s: no usable core metadata: %s", entry.path, exc)
        log.debug("indexed %s", entry.path)
        return FileRecord(
            stat=entry.stat_key,
            sha256=sha256,
            requires_python=facts.requires_python if facts else None,
            metadata_sha256=hashlib.sha256(facts.raw).hexdigest() if facts and entry.dist.is_wheel else None,
            summary=facts.summary if facts else None,
        )

    # --------------------------------------------------------------- metadata
    def metadata_path(self, project: str, filename: str) -> Path:
        return self.metadata_dir / project / f"{filename}.metadata"

    def _metadata_entry(self, project: NormalizedName, filename: str) -> tuple[FileEntry, FileRecord]:
        entries = self.store.scan_project(project)
        entry = next((e for e in entries if e.filename == filename and e.dist.is_wheel), None)
        if entry is None:
            raise FileNotFound(f"no wheel {filename!r} in project {project!r}")
        record = self.file_records(project, entries)[filename]
        if record.metadata_sha256 is None:
            raise FileNotFound(f"no core metadata for {filename!r}")
        return entry, record

    def core_metadata_bytes(self, project: NormalizedName, filename: str) -> bytes:
        """The PEP 658 bytes straight from the wheel (when the data disk cannot take the file)."""
        entry, record = self._metadata_entry(project, filename)
        raw = extract_core_metadata(self.store.local_file(entry), entry.dist)
        if hashlib.sha256(raw).hexdigest() != record.metadata_sha256:
            raise FileNotFound(f"core metadata of {filename!r} is being re-indexed, retry")
        return raw

    def core_metadata(self, project: NormalizedName, filename: str) -> Path:
        """Path of the PEP 658 metadata file of a wheel, written on first request.

        The file's hash is checked against the index record on every request, so what is
        served always matches the ``core-metadata`` hash the page advertised. Raises
        ``OSError`` when it cannot be written (see :meth:`core_metadata_bytes`).
        """
        entry, record = self._metadata_entry(project, filename)
        path = self.metadata_path(project, filename)
        try:
            current = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            current = None
        if current != record.metadata_sha256:  # first request, deleted, or from an older file
            raw = extract_core_metadata(self.store.local_file(entry), entry.dist)
            if hashlib.sha256(raw).hexdigest() != record.metadata_sha256:  # changed under us
                raise FileNotFound(f"core metadata of {filename!r} is being re-indexed, retry")
            atomic_write_bytes(path, raw)
        return path

    def warm(self, shard: int = 0, shards: int = 1) -> tuple[int, int]:
        """Build the on-disk records and default pages of every project (hash new files once).

        Run in the background at server start so that the first request for each project
        after a deploy, or after the data directory was wiped, costs a stat, not a hash; the
        first shard also removes stale temp files of uploads a killed worker left.
        Returns (projects, seconds*1000).
        """
        started = time.monotonic()
        count = 0
        if shard == 0:  # at start: what killed uploads left behind (issue 9)
            self.store.clean_stale_temp()
        for position, project in enumerate(list(self.store.projects())):
            if position % shards != shard:  # several processes split the tree
                continue
            try:
                fingerprint = self.store.fingerprint(project)
                for content_type in (TEXT_HTML, JSON_V1):
                    stored = self._page_path(project, content_type, "", fingerprint)
                    if not (fingerprint.settled and stored.exists()):  # known state: nothing to do
                        self._rendered_body(project, content_type, "", fingerprint)
                count += 1
            except (NotFound, OSError) as exc:
                log.warning("warm-up skipped %s: %s", project, exc)
        return count, int((time.monotonic() - started) * 1000)
