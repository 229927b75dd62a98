"""The package store on an S3-compatible bucket, shared by every node (issue 14).

``storage_url = s3://BUCKET/PREFIX``: the objects ``PREFIX/<project>/<filename>`` are the
files; yanks are rows of the shared database (``s3_yanks``), so every node sees them. What
is listed is decided by the same rule as on the tree (``PackageStore.scan_project``: the
name parses, names its project, one file per release identity).

One freshness rule: every write here (upload, yank, un-yank, removal, reindex) bumps the
project's and the global change serial (``backends.serials``) right after the object
operation; a node keeps its bucket listings keyed on those serials, so a request costs one
indexed read to know it is fresh, and a write through any node is seen by every other at
once. An object put into the bucket by another tool appears after ``manage_repo.py
reindex`` (which bumps every serial). File bytes come from a bounded node-local cache
(``blobcache.FileCache``), or clients get a presigned URL (``storage_redirect``).

Chosen once at start by :func:`open_package_store`; the rest of the code sees a
``PackageStore``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from packaging.utils import NormalizedName, canonicalize_name

from .backends import BackendConfigError, SqlDatabase, open_storage
from .backends.serials import bump_serial, ensure_schema, project_serial, serials
from .blobcache import FileCache
from .distfiles import DIST_SUFFIXES, DistFile, check_basename, parse_distribution_filename
from .durable import copy_hashing, raise_for_disk, unlink_quietly
from .errors import FileNotFound, ProjectNotFound, UnsafePath
from .storage import FileEntry, Fingerprint, PackageStore, StoredFile
from .storewrite import PublishGuard, StoreWriter, decide_identity

if TYPE_CHECKING:  # boto3 costs ~80 ms at import: only an S3 deployment pays it
    from .backends.s3 import S3BlobStore

__all__ = ["S3PackageStore", "open_package_store", "check_storage_url", "YANK_MIGRATIONS", "UPLOAD_TIME_META"]

log = logging.getLogger(__name__)

YANK_MIGRATIONS = (
    "CREATE TABLE s3_yanks (project TEXT NOT NULL, filename TEXT NOT NULL, reason TEXT NOT NULL, "
    "PRIMARY KEY (project, filename));",
    # 2: upload times kept by ``manage_repo.py migrate`` (PEP 700 upload-time of the tree's
    # file, not the copy's LastModified); used while the object's etag is the one recorded.
    "CREATE TABLE s3_upload_times (project TEXT NOT NULL, filename TEXT NOT NULL, etag TEXT NOT NULL, "
    "upload_ns BIGINT NOT NULL, PRIMARY KEY (project, filename));",
)
#: Object metadata with the original upload time (ns since the epoch) of a migrated file.
UPLOAD_TIME_META = "upload-time-ns"
MAX_CACHED_PROJECTS = 20000
_SERIAL_FILE = "#serial"


def check_storage_url(settings) -> None:
    """Refuse a ``storage_url`` that cannot work before Gunicorn starts (one line)."""
    url = (settings.storage_url or "").strip()
    if url and not url.startswith("s3://"):
        raise BackendConfigError(f"storage_url {url!r}: expected empty (the packages dir) or s3://BUCKET/PREFIX")
    if url:
        open_storage(url, settings.packages_dir, client=object())  # parses only; no network


def open_package_store(settings, db: SqlDatabase) -> PackageStore:
    """The local tree (``storage_url`` empty: unchanged) or the shared bucket."""
    url = (settings.storage_url or "").strip()
    if not url:
        return PackageStore(settings.packages_dir)
    check_storage_url(settings)
    from .backends.s3 import S3BlobStore, make_client

    cache = Path(settings.data_dir) / "s3cache"
    (cache / "spool").mkdir(parents=True, exist_ok=True)
    blob = open_storage(url, settings.packages_dir, spool_dir=cache / "spool")
    assert isinstance(blob, S3BlobStore)
    probe = open_storage(url, settings.packages_dir, client=make_client(timeout_s=2.0, attempts=1))
    return S3PackageStore(blob, db, cache, settings.storage_cache_mb * 1024 * 1024,
                          redirect=settings.storage_redirect, probe=probe)


class S3PackageStore(PackageStore):
    """A ``PackageStore`` whose files are objects of a shared bucket (see the module doc)."""

    remote = True

    def __init__(self, blob: S3BlobStore, db: SqlDatabase, cache_dir: Path, cache_bytes: int,
                 *, redirect: bool = False, probe: S3BlobStore | None = None) -> None:
        super().__init__(Path(cache_dir))
        self.blob = blob
        self.probe = probe or blob
        self.db = db
        self.redirect = redirect
        self.url = blob.url
        self.files = FileCache(Path(cache_dir) / "files", cache_bytes)
        self.spool_dir = Path(cache_dir) / "spool"
        self._lock = threading.Lock()
        self._root_cache: tuple[int, dict[NormalizedName, tuple[str, ...]]] | None = None
        self._entries: dict[str, tuple[int, list[FileEntry]]] = {}
        ensure_schema(db)
        db.migrate("s3_yanks", YANK_MIGRATIONS)

    # ---------------------------------------------------------------- reading
    def projects(self) -> dict[NormalizedName, tuple[str, ...]]:
        """Projects with a served object, re-listed from the bucket when the global serial moved."""
        return self._projects_at(serials(self.db, ()).last)  # one primary-key read

    def _projects_at(self, last: int) -> dict[NormalizedName, tuple[str, ...]]:
        cached = self._root_cache
        if cached is not None and cached[0] == last:
            return cached[1]
        current = serials(self.db)  # the serials first: a later write stales what we list
        listing: dict[NormalizedName, list[str]] = {}
        for name in self.blob.projects():
            try:
                canonical = canonicalize_name(name, validate=True)
            except ValueError:
                continue
            if self._listed(canonical, name, current.projects.get(canonical, 0)):
                listing.setdefault(canonical, []).append(name)
        result = {k: tuple(sorted(v)) for k, v in sorted(listing.items())}
        if cached is not None and cached[1] == result:
            result = cached[1]  # an unchanged listing keeps its identity (root page stays cached)
        self._root_cache = (current.last, result)
        return result

    def _listed(self, project: NormalizedName, directory: str, serial: int) -> list[FileEntry]:
        """The served-format objects under one spelling of ``project``, cached by its serial."""
        key = f"{project}\0{directory}"
        cached = self._entries.get(key)
        if cached is not None and cached[0] == serial:
            return cached[1]
        yanks = {row[0]: row[1] for row in self.db.query(
            "SELECT filename, reason FROM s3_yanks WHERE project = ?", (project,))}
        kept = {row[0]: (row[1], int(row[2])) for row in self.db.query(
            "SELECT filename, etag, upload_ns FROM s3_upload_times WHERE project = ?", (project,))}
        entries = []
        for info in self.blob.list(directory):
            try:
                dist = parse_distribution_filename(info.name)
            except ValueError:
                continue
            if dist.name != project:
                self._warn_once(f"{self.url}{info.key}", f"belongs to project {dist.name}, not {project}")
                continue
            etag, upload_ns = kept.get(info.name, ("", 0))
            entries.append(FileEntry(dist, self.files.path_for(info.key, info.etag), info.size,
                                     upload_ns if etag == info.etag else info.mtime_ns, 0,
                                     yanks.get(info.name), etag=info.etag))
        with self._lock:
            if len(self._entries) >= MAX_CACHED_PROJECTS:
                self._entries.clear()
            self._entries[key] = (serial, entries)
        return entries

    def scan_project(self, project: NormalizedName) -> list[FileEntry]:
        """The served files of ``project``: one indexed read (its and the global serial) when
        the node's listings are fresh, as on every request after the first."""
        current = serials(self.db, (project,))
        names = self._projects_at(current.last).get(project)
        if not names:
            raise ProjectNotFound(f"no project named {project!r}")
        serial = current.projects.get(project, 0)
        return self.one_per_identity([e for n in names for e in self._listed(project, n, serial)])

    def project_dirs(self, project: NormalizedName) -> list[Path]:
        names = self.projects().get(project)
        if not names:
            raise ProjectNotFound(f"no project named {project!r}")
        return [Path(n) for n in names]

    def scan_copies(self, project: NormalizedName, directories) -> list[FileEntry]:
        serial = project_serial(self.db, project)
        found: list[FileEntry] = []
        for directory in directories:
            found += self._listed(project, Path(directory).name, serial)
        return found

    def _key(self, entry: FileEntry) -> str:
        return f"{entry.path.parent.name}/{entry.filename}"

    def fingerprint(self, project: NormalizedName) -> Fingerprint:
        """The project's serial (read first: a later write stales it) and what it lists."""
        serial = project_serial(self.db, project)
        files = [(_SERIAL_FILE, serial, 0, 0)]
        for directory in self.project_dirs(project):
            for e in self._listed(project, directory.name, serial):
                files.append((self._key(e), e.size, e.mtime_ns, e.etag))  # type: ignore[arg-type]
        return Fingerprint((), tuple(files), True)

    def is_fresh(self, project: NormalizedName, fp: Fingerprint) -> bool:
        """One primary-key read: fresh while the project's serial is the one rendered from."""
        if fp is None or not fp.files or fp.files[0][0] != _SERIAL_FILE:
            return False
        return project_serial(self.db, project) == fp.files[0][1]

    def locate_file(self, project: NormalizedName, filename: str) -> tuple[Path, os.stat_result]:
        """The node-local cached copy of a served file and its stat (fetched when missing)."""
        entry = self.entry(project, filename)
        path = self.local_file(entry)
        return path, os.stat(path)

    def entry(self, project: NormalizedName, filename: str) -> FileEntry:
        check_basename(filename)
        if not filename.endswith(DIST_SUFFIXES):
            raise FileNotFound(f"not a distribution file: {filename!r}")
        if parse_distribution_filename(filename).name != project:
            raise FileNotFound(f"{filename} does not belong to {project}")
        for entry in self.scan_project(project):
            if entry.filename == filename:
                return entry
        raise FileNotFound(f"no file {filename!r} in project {project!r}")

    def file_path(self, project: NormalizedName, filename: str) -> Path:
        return self.entry(project, filename).path

    def local_file(self, entry: FileEntry) -> Path:
        key = self._key(entry)
        try:
            return self.files.get(key, entry.etag, lambda: self.blob.open(key))
        except OSError as exc:
            raise_for_disk(exc)
            raise

    def file_sha256(self, entry: FileEntry) -> str:
        """From the object's metadata (set by every upload), so nothing is re-hashed; an
        object put by another tool is hashed once, from the node's cached copy."""
        try:
            known = self.blob.stored_sha256(self._key(entry))
        except FileNotFound:
            known = None
        if known:
            return known
        digest = hashlib.sha256()
        with open(self.local_file(entry), "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def serial_keys(self, names) -> dict[str, str]:
        """Freshness keys of ``names`` for the catalog: their change serials, one read."""
        names = list(names)
        current = serials(self.db, names)
        return {n: f"serial:{current.projects.get(n, 0)}" for n in names}

    def presigned_url(self, entry: FileEntry, expires_s: int = 300) -> str | None:
        return self.blob.presigned_url(self._key(entry), expires_s)

    def check_storage(self) -> None:
        """Readiness: the bucket answers a HEAD (one attempt, short timeout)."""
        self.probe.check()

    def refresh(self) -> None:
        """``manage_repo.py reindex``: bump the serial of every project in the bucket (and
        the global one), so every node re-lists objects other tools put there."""
        names = {canonicalize_name(n) for n in self.blob.projects()} | set(serials(self.db).projects)
        with self.db.transaction() as tx:
            for name in sorted(names):
                bump_serial(tx, name)

    def clean_stale_temp(self, directory: Path | None = None, max_age_s: float = 300) -> list[Path]:
        return StoreWriter.clean_stale_temp(self, self.spool_dir, max_age_s) if directory is None else []

    def _all_dirs(self) -> list[Path]:
        return [self.spool_dir]

    # ---------------------------------------------------------------- writing
    def target_dir(self, project: NormalizedName) -> Path:
        if canonicalize_name(project) != project or not project or "/" in project or project.startswith("."):
            raise UnsafePath(f"not a normalized project name: {project!r}")
        existing = self.projects().get(project)
        return Path(existing[0] if existing else project)

    def _bump(self, project: str, sql: str | None = None, params: tuple = (), *more: str) -> None:
        with self.db.transaction() as tx:
            for statement in (sql, *more) if sql else ():
                tx.execute(statement, params)
            bump_serial(tx, project)

    def store(self, dist: DistFile, source: BinaryIO, *, overwrite: bool = False, max_bytes: int | None = None,
              check=None, guard: PublishGuard | None = None) -> StoredFile:
        """Spool and hash on the node, ``check``, decide by the tree's identity rules, then one
        conditional put (of several nodes storing one name exactly one wins) and the serial
        bump; if the bump fails the object is deleted again, so no file is stored unlisted.
        An upload of bytes already stored bumps too: the client's retry after a node died
        between its put and its bump (issue 14, failover) makes that object listed everywhere."""
        key = f"{self.target_dir(dist.name)}/{dist.filename}"
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        tmp: Path | None = None
        try:
            self.clean_stale_temp()
            fd, name = tempfile.mkstemp(dir=self.spool_dir, prefix=".upload-", suffix=".part")
            tmp = Path(name)
            digest, size = copy_hashing(fd, source, max_bytes)
            if check is not None:
                check(tmp, digest)
            if self._decide_s3(dist, digest, overwrite) == "identical":
                self._bump(dist.name)  # the object may be one a node put and died before listing
                return StoredFile(Path(key), digest, size, created=False)
            with guard(tmp, digest, size) if guard is not None else nullcontext():
                with open(tmp, "rb") as body:
                    result = self.blob.put_file(key, body, bytes.fromhex(digest), size, overwrite=overwrite)
                if result.created:
                    try:
                        self._bump(dist.name)
                    except BaseException:
                        self._delete_quietly(key)
                        raise
                else:  # the same bytes were there already (a node died between its put and its bump)
                    self._bump(dist.name)  # the retry lists them on every node
            if result.created and result.etag:
                self._adopt_quietly(key, result.etag, tmp)
        except OSError as exc:
            raise_for_disk(exc)
            raise
        finally:
            if tmp is not None:
                unlink_quietly(tmp)
        log.info("stored %s%s (%d bytes, sha256 %s)", self.url, key, size, digest)
        return StoredFile(Path(key), digest, size, created=result.created)

    def _adopt_quietly(self, key: str, etag: str, spooled: Path) -> None:
        try:
            self.files.adopt(key, etag, spooled)
        except OSError as exc:  # only a cache: the next reader fetches it
            log.warning("could not keep %s in the file cache: %s", key, exc)

    def _delete_quietly(self, key: str) -> None:
        try:
            self.blob.delete(key)
        except Exception:
            log.exception("could not delete %s%s after a failed serial bump", self.url, key)

    def _decide_s3(self, dist: DistFile, digest: str, overwrite: bool) -> str:
        """"new", "replace" or "identical"; ``FileExists`` for another file of the identity."""
        try:
            entries = self.scan_copies(dist.name, self.project_dirs(dist.name))
        except ProjectNotFound:
            return "new"
        return decide_identity(entries, dist, digest, overwrite, self.file_sha256) or "new"

    def remove(self, project: NormalizedName, filename: str) -> None:
        entry = self.entry(project, filename)
        self.blob.delete(self._key(entry))
        self._bump(project, "DELETE FROM s3_yanks WHERE project = ? AND filename = ?", (project, filename),
                   "DELETE FROM s3_upload_times WHERE project = ? AND filename = ?")
        log.info("removed %s%s", self.url, self._key(entry))

    def set_yanked(self, project: NormalizedName, filename: str, reason: str | None) -> None:
        """PEP 592 yank state as a row of the shared database, committed with the serial bump."""
        self.entry(project, filename)
        if reason is None:
            self._bump(project, "DELETE FROM s3_yanks WHERE project = ? AND filename = ?", (project, filename))
        else:
            self._bump(project, "INSERT INTO s3_yanks (project, filename, reason) VALUES (?, ?, ?) "
                       "ON CONFLICT (project, filename) DO UPDATE SET reason = excluded.reason",
                       (project, filename, reason))
