"""The index-wide project table behind search, dependency analysis and the human pages.

One small record per project (latest version, summary, keywords, the latest release's
``Requires-Dist``, file counts and an upload histogram) so that questions about *all*
projects ("who depends on X?", "search for 'http'") never rescan the tree.

Kept fresh incrementally: a record is rebuilt only when its project's directory changed
(directory mtimes, with git's "racily clean" rule: an mtime younger than two seconds is not
trusted). Records are persisted in SQLite under the data directory, so a restart or a second
worker adopts them instead of re-reading archives. A first build of a big tree runs in a
background thread (one worker at a time, under a file lock); pages show what is ready.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from .errors import InvalidDistribution, ProjectNotFound
from .index import ProjectIndex
from .metadata import CoreMetadata, parse_core_metadata, read_core_metadata
from .storage import FileEntry, PackageStore

__all__ = ["Catalog", "CatalogSnapshot", "ProjectRecord", "latest_version", "release_metadata",
           "parse_requirement"]

log = logging.getLogger(__name__)

RECORD_FORMAT = 2  # 2: deps flag any marker as conditional; classifiers
RACY_NS = 2_000_000_000
DAY_S = 86400


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    """What the index-wide pages need to know about one project."""

    name: str  # normalized (PEP 503)
    display_name: str  # the Name: field of the latest release
    latest: str | None
    version_count: int
    summary: str
    keywords: str
    requires_python: str | None
    requires_dist: tuple[str, ...]  # of the latest release
    deps: tuple[tuple[str, bool], ...]  # (normalized name, conditional: behind an extra or marker)
    files: int
    wheels: int
    bytes: int
    last_upload: float  # epoch seconds of the newest file
    daily: tuple[tuple[int, int, int], ...]  # (day since epoch, files, bytes) by file mtime
    classifiers: tuple[str, ...] = ()  # of the latest release (search filters on them)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "ProjectRecord":
        data = json.loads(text)
        data["requires_dist"] = tuple(data["requires_dist"])
        data["deps"] = tuple((n, bool(o)) for n, o in data["deps"])
        data["daily"] = tuple(tuple(d) for d in data["daily"])
        data["classifiers"] = tuple(data.get("classifiers") or ())
        return cls(**data)


@dataclass(frozen=True)
class CatalogSnapshot:
    """An immutable view: safe to iterate while the catalog keeps updating."""

    records: Mapping[str, ProjectRecord]
    generation: int
    pending: int  # projects listed but not indexed yet (a background build is running)
    total: int  # projects in the tree


@lru_cache(maxsize=65536)
def parse_requirement(text: str) -> Requirement | None:
    """A parsed ``Requires-Dist`` value (cached: the same strings recur across projects)."""
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def marker_extras(req: Requirement) -> tuple[str, ...]:
    """The extras a requirement's marker is conditional on (``extra == "x"``)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, (list, tuple)) and len(node) == 3 and all(hasattr(p, "value") for p in node):
            lhs, _op, rhs = node
            if type(lhs).__name__ == "Variable" and lhs.value == "extra":
                found.append(str(canonicalize_name(rhs.value)))
            elif type(rhs).__name__ == "Variable" and rhs.value == "extra":
                found.append(str(canonicalize_name(lhs.value)))
            return
        if isinstance(node, (list, tuple)):
            for child in node:
                walk(child)

    if req.marker is not None:
        walk(getattr(req.marker, "_markers", []))
    return tuple(dict.fromkeys(found))


def latest_version(versions: Iterable[Version], yanked: Iterable[Version] = ()) -> Version | None:
    """The version pip would pick without ``--pre``: newest non-yanked final, else newest."""
    pool = sorted(set(versions))
    if not pool:
        return None
    usable = [v for v in pool if v not in set(yanked)] or pool
    finals = [v for v in usable if not v.is_prerelease]
    return (finals or usable)[-1]


def release_metadata(index: ProjectIndex, project: str, entries: list[FileEntry]) -> CoreMetadata | None:
    """Core metadata of a release: the cached PEP 658 file of a wheel, else the sdist's PKG-INFO."""
    for entry in sorted(entries, key=lambda e: not e.dist.is_wheel):
        if entry.dist.is_wheel:
            try:
                return parse_core_metadata(index.metadata_path(project, entry.filename).read_bytes())
            except (OSError, InvalidDistribution):
                pass
        try:
            return read_core_metadata(entry.path, entry.dist)
        except InvalidDistribution:
            continue
    return None


def build_record(index: ProjectIndex, project: NormalizedName) -> ProjectRecord:
    """Read one project (stat, cached hashes, one metadata file) into a record."""
    entries = index.store.scan_project(project)
    index.file_records(project, entries)  # hashes new files and writes .metadata sidecars
    versions = {e.dist.version for e in entries}
    yanked = {e.dist.version for e in entries if e.yanked is not None}
    yanked -= {e.dist.version for e in entries if e.yanked is None}
    latest = latest_version(versions, yanked)
    meta = release_metadata(index, project, [e for e in entries if e.dist.version == latest]) if latest else None
    fields = meta.fields if meta else {}
    keywords = fields.get("keywords") or []
    requires = tuple(meta.requires_dist) if meta else ()
    deps = []
    for text in requires:
        req = parse_requirement(text)
        if req is not None:
            deps.append((str(canonicalize_name(req.name)), req.marker is not None))
    daily: dict[int, list[int]] = {}
    for e in entries:
        bucket = daily.setdefault(e.mtime_ns // (DAY_S * 10**9), [0, 0])
        bucket[0] += 1
        bucket[1] += e.size
    return ProjectRecord(
        name=project,
        display_name=str(meta.name) if meta else project,
        latest=str(latest) if latest else None,
        version_count=len(versions),
        summary=(meta.summary or "").strip() if meta else "",
        keywords=", ".join(keywords) if isinstance(keywords, list) else str(keywords),
        requires_python=meta.requires_python if meta else None,
        requires_dist=requires,
        deps=tuple(deps),
        files=len(entries),
        wheels=sum(e.dist.is_wheel for e in entries),
        bytes=sum(e.size for e in entries),
        last_upload=max((e.mtime_ns for e in entries), default=0) / 1e9,
        daily=tuple((day, f, b) for day, (f, b) in sorted(daily.items())),
        classifiers=tuple(str(c) for c in fields.get("classifiers") or ()),
    )


class Catalog:
    """The incrementally maintained table of :class:`ProjectRecord` (one per worker)."""

    def __init__(self, index: ProjectIndex, data_dir: Path, refresh_s: float = 2.0, sync_limit: int = 64,
                 sweep_limit: int = 2000) -> None:
        self.index = index
        self.store: PackageStore = index.store
        self.db_path = Path(data_dir) / "catalog.sqlite3"
        self.lock_path = Path(data_dir) / "catalog.lock"
        self.refresh_s = refresh_s
        self.sync_limit = sync_limit
        self.sweep_limit = sweep_limit
        self._sweep_s = 0.0
        self._records: Mapping[str, ProjectRecord] = MappingProxyType({})
        self._keys: dict[str, str] = {}
        self._generation = 0
        self._pending: set[str] = set()
        self._listing: Any = None
        self._checked = -1e9
        self._loaded = False
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._builder: threading.Thread | None = None
        self._derived: dict[str, tuple[int, Any]] = {}

    # ----------------------------------------------------------------- reading
    def snapshot(self) -> CatalogSnapshot:
        """The current table, refreshed first when the tree may have changed."""
        self.refresh()
        listing = self.store.projects()
        return CatalogSnapshot(self._records, self._generation, len(self._pending), len(listing))

    def derived(self, key: str, build: Callable[[CatalogSnapshot], Any]) -> Any:
        """A value computed from a snapshot, recomputed only when the generation moves."""
        snap = self.snapshot()
        cached = self._derived.get(key)
        if cached is not None and cached[0] == snap.generation:
            return cached[1]
        value = build(snap)
        self._derived[key] = (snap.generation, value)
        return value

    # ---------------------------------------------------------------- freshness
    def _interval(self) -> float:
        """Re-check at most every ``refresh_s``, and never spend over ~10% of a core on it."""
        return max(self.refresh_s, 10 * self._sweep_s)

    def refresh(self, force: bool = False) -> None:
        """Bring the table up to date with the tree.

        Small trees (up to ``sweep_limit`` projects) are checked inline. For big ones a
        request only handles projects that appeared or vanished (the root listing changed);
        the stat sweep for changed projects runs in a background thread.
        """
        listing = self.store.projects()
        listing_changed = listing is not self._listing
        due = force or time.monotonic() - self._checked >= self._interval()
        if not (listing_changed or due):
            return
        if len(listing) > self.sweep_limit and not force:
            if listing_changed and self._loaded:
                self._quick_update(listing)
            if due or not self._loaded:
                self._start_sweep()
            return
        if not self._lock.acquire(blocking=force):
            return  # another thread of this worker is refreshing: serve what we have
        try:
            self._refresh(listing, background=False)
        finally:
            self._lock.release()

    def refresh_project(self, project: str) -> None:
        """Rebuild one project's record now (after an upload through this worker)."""
        self.store.projects()
        with self._lock:
            self._build_and_publish([project], self._dir_keys([project]))

    def _quick_update(self, listing: Mapping[str, Any]) -> None:
        if not self._lock.acquire(blocking=False):
            return
        try:
            added = [n for n in listing if n not in self._keys and n not in self._pending]
            removed = [n for n in self._records if n not in listing]
            if len(added) > self.sync_limit:
                return  # a bulk copy: the background sweep takes it
            if removed:
                self._publish({}, removed, {})
            if added:
                keys = self._dir_keys(added)
                adopted = self._adopt(self._load_rows(added), keys)
                self._build_and_publish([n for n in added if n not in adopted], keys)
            self._listing = listing
        finally:
            self._lock.release()

    def _start_sweep(self) -> None:
        if self._builder is not None and self._builder.is_alive():
            return
        self._checked = time.monotonic()
        self._builder = threading.Thread(target=self._sweep_in_background, name="catalog-sweep", daemon=True)
        self._builder.start()

    def _sweep_in_background(self) -> None:
        try:
            with self._lock:
                self._refresh(self.store.projects(), background=True)
        except Exception:  # a background failure must not take the worker down
            log.exception("catalog refresh failed")
            with self._publish_lock:
                self._pending.clear()

    def _dir_keys(self, names: Iterable[str]) -> dict[str, str]:
        if self.store.remote:  # a shared bucket (issue 14): the change serials are the keys
            return self.store.serial_keys(names)
        listing = self.store.projects()
        root = str(self.store.root) + os.sep
        now = time.time_ns()
        keys: dict[str, str] = {}
        for name in names:
            parts = []
            for dirname in listing.get(name, ()):  # type: ignore[call-overload]
                try:
                    mtime = os.stat(root + dirname).st_mtime_ns
                except OSError:
                    mtime = -1
                if now - mtime < RACY_NS:
                    parts = []  # racily clean: cannot tell a later change apart, recheck next time
                    break
                parts.append(f"{dirname}:{mtime}")
            keys[name] = ";".join(parts)
        return keys

    def _refresh(self, listing: Mapping[str, Any], background: bool) -> None:
        started = time.monotonic()
        self._listing = listing
        self._checked = started
        keys = self._dir_keys(listing)
        removed = [n for n in self._records if n not in listing]
        stale = [n for n, k in keys.items() if not k or self._keys.get(n) != k]
        if stale:
            adopted = self._adopt(self._load_rows(None if not self._loaded else stale), keys)
            stale = [n for n in stale if n not in adopted]
        self._loaded = True
        if removed:
            self._publish({}, removed, {})
        if background:  # inline sweeps of small trees are cheap; big ones pace themselves
            self._sweep_s = time.monotonic() - started
        if not stale:
            return
        if not background and len(stale) <= self.sync_limit:
            self._build_and_publish(stale, keys)
            return
        if not background:
            self._start_sweep()
            return
        with self._publish_lock:
            self._pending = set(stale)
        self._build_in_batches(stale)

    def _build_in_batches(self, names: list[str]) -> None:
        """Index many projects, one worker process at a time, publishing as it goes."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                for start in range(0, len(names), 200):
                    batch = names[start:start + 200]
                    keys = self._dir_keys(batch)
                    adopted = self._adopt(self._load_rows(batch), keys)  # another worker's work
                    self._build_and_publish([n for n in batch if n not in adopted], keys)
                    with self._publish_lock:
                        self._pending.difference_update(batch)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
                with self._publish_lock:
                    self._pending.clear()
        log.info("catalog: %d projects indexed", len(self._records))

    def _adopt(self, rows: dict[str, tuple[str, str]], keys: Mapping[str, str]) -> set[str]:
        """Take persisted records whose directory key still matches (work of another worker)."""
        fresh: dict[str, ProjectRecord] = {}
        fresh_keys: dict[str, str] = {}
        for name, (key, doc) in rows.items():
            if key and keys.get(name) == key:
                try:
                    fresh[name] = ProjectRecord.from_json(doc)
                    fresh_keys[name] = key
                except (ValueError, TypeError, KeyError):
                    continue
        if fresh:
            self._publish(fresh, [], fresh_keys)
        return set(fresh)

    def _build_and_publish(self, names: list[str], keys: Mapping[str, str]) -> None:
        built: dict[str, ProjectRecord] = {}
        gone: list[str] = []
        for name in names:
            try:
                built[name] = build_record(self.index, NormalizedName(name))
            except ProjectNotFound:
                gone.append(name)
            except OSError as exc:
                log.warning("catalog: cannot read project %s: %s", name, exc)
        new_keys = {n: keys.get(n, "") for n in built}
        self._publish(built, gone, new_keys)
        self._save_rows(built, new_keys, gone)

    def _publish(self, built: Mapping[str, ProjectRecord], gone: Iterable[str], keys: Mapping[str, str]) -> None:
        """Copy-on-write swap, so readers holding a snapshot never see it change."""
        with self._publish_lock:
            records = dict(self._records)
            records.update(built)
            for name in gone:
                records.pop(name, None)
                self._keys.pop(name, None)
            self._keys.update(keys)
            self._records = MappingProxyType(records)
            self._generation += 1

    # ------------------------------------------------------------- persistence
    def _connect(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS records (name TEXT PRIMARY KEY, format INTEGER, dir_key TEXT, doc TEXT)"
        )
        return conn

    def _load_rows(self, names: list[str] | None) -> dict[str, tuple[str, str]]:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            log.warning("catalog: cannot open %s: %s", self.db_path, exc)
            return {}
        try:
            if names is None:
                cur = conn.execute("SELECT name, dir_key, doc FROM records WHERE format = ?", (RECORD_FORMAT,))
                return {n: (k, d) for n, k, d in cur}
            found: dict[str, tuple[str, str]] = {}
            for start in range(0, len(names), 500):
                chunk = names[start:start + 500]
                cur = conn.execute(
                    f"SELECT name, dir_key, doc FROM records WHERE format = ? AND name IN ({','.join('?' * len(chunk))})",
                    (RECORD_FORMAT, *chunk),
                )
                found.update({n: (k, d) for n, k, d in cur})
            return found
        except sqlite3.Error as exc:
            log.warning("catalog: cannot read %s: %s", self.db_path, exc)
            return {}
        finally:
            conn.close()

    def _save_rows(self, built: Mapping[str, ProjectRecord], keys: Mapping[str, str], gone: Iterable[str]) -> None:
        try:
            conn = self._connect()
            with conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO records (name, format, dir_key, doc) VALUES (?, ?, ?, ?)",
                    [(n, RECORD_FORMAT, keys.get(n, ""), r.to_json()) for n, r in built.items()],
                )
                conn.executemany("DELETE FROM records WHERE name = ?", [(n,) for n in gone])
            conn.close()
        except sqlite3.Error as exc:  # a read-only data dir must not break pages
            log.warning("catalog: cannot write %s: %s", self.db_path, exc)
