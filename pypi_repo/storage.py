"""The package tree on disk: ``<packages_dir>/<project>/<files>``, the whole truth.

Besides distribution files a project directory may hold ``<filename>.yanked`` sidecars
(PEP 592 yank state; the file's text is the reason). Everything else the service knows is
derived and lives under the data directory.

What the tree *serves* is decided in one place, :meth:`PackageStore.listable` (issue 10):
a file is listed, counted and downloadable only when its name parses (``distfiles``), it
names the project whose directory holds it, its format is served, and it does not resolve
(through a symlink) outside the package root; two files of one release identity are one
file (the canonical spelling wins). A project exists once it has such a file: a directory
holding only temp files of an interrupted upload is not a project (issue 9).

Every path built from outside input goes through :meth:`PackageStore.project_dirs` and
:func:`~pypi_repo.distfiles.parse_distribution_filename`, so no request can leave the root.
Writes go to a temp file in the target directory and are published with ``os.link`` /
``os.replace`` and fsynced (file and directory): readers see the old state or the new one.
"""
from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from packaging.utils import NormalizedName, canonicalize_name

from .distfiles import DIST_SUFFIXES, DistFile, canonical_filename, check_basename, legacy_format, \
    parse_distribution_filename
from .durable import atomic_write_bytes
from .errors import FileNotFound, ProjectNotFound
from .storewrite import STALE_TEMP_S, YANK_SUFFIX, StoredFile, StoreWriter, is_temp_name, sha256_file

__all__ = ["PackageStore", "FileEntry", "Fingerprint", "StoredFile", "YANK_SUFFIX", "atomic_write_bytes",
           "sha256_file", "STALE_TEMP_S", "is_temp_name"]

log = logging.getLogger(__name__)

#: Changes closer than this to a fingerprint could share its timestamps (coarse clocks).
RACY_NS = 2_000_000_000
#: While the root's mtime is that young, its listing is re-read at most this often.
RELIST_NS = 50_000_000
MAX_WARNINGS = 10000
MAX_CACHED_DIRS = 100_000
MAX_YANK_REASON_BYTES = 4096  # a reason is one line; a sidecar is never read whole



@dataclass(frozen=True)
class FileEntry:
    """One distribution file as found on disk (what a stat tells, nothing hashed)."""

    dist: DistFile
    path: Path
    size: int
    mtime_ns: int
    inode: int
    yanked: str | None  # None: not yanked; "" yanked without a reason
    etag: str = ""  # an object in a shared store (issue 14): its etag keys the index record

    @property
    def filename(self) -> str:
        return self.dist.filename

    @property
    def stat_key(self) -> tuple:
        return (self.size, self.mtime_ns, self.etag) if self.etag else (self.size, self.mtime_ns, self.inode)


@dataclass(frozen=True)
class Fingerprint:
    """A project's directories and files as ``stat`` saw them (see ``PackageStore.fingerprint``)."""

    dirs: tuple[tuple[str, int, int], ...]  # (path, mtime_ns, inode)
    files: tuple[tuple[str, int, int, int], ...]  # (path, size, mtime_ns, inode)
    settled: bool  # every mtime older than RACY_NS when taken

    def digest(self, salt: str = "") -> str:
        """A stable name for this state: equal in every process and across restarts."""
        text = salt + repr(self.files)
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _is_dir(entry: os.DirEntry) -> bool:
    """``DirEntry.is_dir`` that answers False for a symlink loop (ELOOP) or a vanished entry,
    as ``Path.is_dir`` does: one such name in the root made every request a 500."""
    try:
        return entry.is_dir()
    except OSError:
        return False


class PackageStore(StoreWriter):
    """Reads and writes (``storewrite.StoreWriter``) the package tree. Safe to share between
    threads of one process."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._root_str = str(self.root)
        self._real_root = os.path.realpath(self.root)
        self._listing_key: int | None = None
        self._listing: dict[NormalizedName, tuple[str, ...]] = {}
        self._listed_at = 0
        self._listing_racy = False
        self._unlisted: dict[str, int] = {}  # directories without a served file: path -> mtime_ns
        self._warned: set[tuple[str, str]] = set()
        self._dir_listings: dict[str, tuple] = {}  # see _served_names

    # ----------------------------------------------------------------- the rule
    def _warn_once(self, path: str, reason: str) -> None:
        """One log line per skipped file and reason, per process (pages are rebuilt often)."""
        key = (path, reason)
        if key not in self._warned and len(self._warned) < MAX_WARNINGS:
            self._warned.add(key)
            log.warning("skipped %s: %s", path, reason)

    def inside_root(self, path: str) -> bool:
        """True when ``path``, with every symlink resolved, is within the package root."""
        real = os.path.realpath(path)
        return real == self._real_root or real.startswith(self._real_root + os.sep)

    def skip_reason(self, project: NormalizedName, dirent: os.DirEntry) -> str | None:
        """Why a directory entry is not a served file of ``project`` (None: it is one).

        Hidden names, sidecars and non-files are simply not files; the other reasons are
        logged and reported by ``manage_repo.py verify``.
        """
        name = dirent.name
        if name.endswith(YANK_SUFFIX) and not name.startswith(".") and dirent.is_symlink() \
                and not self.inside_root(dirent.path):
            return "yank sidecar is a symlink outside the package root (its text is not read)"
        if name.startswith(".") or name.endswith(YANK_SUFFIX):
            return "hidden"
        try:
            dist = parse_distribution_filename(name)
        except ValueError:
            legacy = legacy_format(name)
            return f"legacy {legacy} format, not served (PEP 527)" if legacy else "not a distribution file"
        if dist.name != project:
            return f"belongs to project {dist.name}, not {project}"
        if dirent.is_symlink() and not self.inside_root(dirent.path):
            return "symlink to a path outside the package root"
        try:
            if not dirent.is_file():
                return "not a regular file"
        except OSError:
            return "not a regular file"
        return None

    def listable(self, project: NormalizedName, dirent: os.DirEntry) -> DistFile | None:
        reason = self.skip_reason(project, dirent)
        if reason is None:
            return parse_distribution_filename(dirent.name)
        if reason not in ("hidden", "not a distribution file", "not a regular file"):
            self._warn_once(dirent.path, reason)
        return None

    # ------------------------------------------------- the BlobStore-facing hooks
    #: False here; :class:`~pypi_repo.s3store.S3PackageStore` (issue 14) is the shared one.
    remote = False
    redirect = False

    def local_file(self, entry: FileEntry) -> Path:
        """A readable local file with ``entry``'s bytes (here: the file itself)."""
        return entry.path

    def file_sha256(self, entry: FileEntry) -> str:
        """The sha256 of ``entry``'s bytes (here: hashed; the index caches it by stat)."""
        return sha256_file(entry.path)

    def refresh(self) -> None:
        """After a reindex: nothing to do on the tree (every cache checks stats)."""

    def check_storage(self) -> None:
        """Readiness of the store itself (the tree: see ``HealthChecker._packages_readable``)."""

    # ----------------------------------------------------------------- reading
    def root_mtime_ns(self) -> int:
        try:
            return os.stat(self.root).st_mtime_ns
        except OSError:
            return -1

    def projects(self) -> dict[NormalizedName, tuple[str, ...]]:
        """Map of normalized project name to the directory names that hold it.

        Hand-made directories need not be normalized (``mkdir Payo_CLI``); two spellings of
        one name are merged. A directory without a served file (empty, or only an
        interrupted upload's temp file) is no project; it is watched by its mtime and listed
        as soon as a file lands in it. Re-read when the root's (or a watched directory's)
        mtime changes and, while that mtime is younger than the clock granularity allows to
        trust (the "racy" rule of :meth:`is_fresh`), at most every ``RELIST_NS``. An
        unchanged listing keeps its identity, so pages built from it stay cached.
        """
        key = self.root_mtime_ns()
        now = time.time_ns()
        racy_due = self._listing_racy and now - self._listed_at > RELIST_NS
        if key != self._listing_key or racy_due or self._unlisted_changed():
            listing, unlisted = self._read_listing()
            if listing != self._listing:
                self._listing = listing
            self._unlisted = unlisted
            self._listing_key = key
            self._listed_at = now
            self._listing_racy = now - max([key, *unlisted.values()]) < RACY_NS
        return self._listing

    def _unlisted_changed(self) -> bool:
        for path, mtime_ns in self._unlisted.items():
            try:
                if os.stat(path).st_mtime_ns != mtime_ns:
                    return True
            except OSError:
                return True
        return False

    def _read_listing(self) -> tuple[dict[NormalizedName, tuple[str, ...]], dict[str, int]]:
        listing: dict[NormalizedName, list[str]] = {}
        unlisted: dict[str, int] = {}
        try:
            with os.scandir(self.root) as it:
                for entry in it:
                    if entry.name.startswith(".") or not _is_dir(entry):
                        continue
                    if entry.is_symlink() and not self.inside_root(entry.path):
                        self._warn_once(entry.path, "symlink to a directory outside the package root")
                        continue
                    try:
                        name = canonicalize_name(entry.name, validate=True)
                    except ValueError:
                        continue
                    if self._has_served_file(name, entry.path):
                        listing.setdefault(name, []).append(entry.name)
                    else:
                        try:
                            unlisted[entry.path] = os.stat(entry.path).st_mtime_ns
                        except OSError:
                            pass
        except FileNotFoundError:
            pass
        return {k: tuple(sorted(v)) for k, v in sorted(listing.items())}, unlisted

    def _has_served_file(self, project: NormalizedName, path: str) -> bool:
        try:
            with os.scandir(path) as it:
                return any(self.listable(project, e) is not None for e in it)
        except OSError:
            return False

    def project_dirs(self, project: NormalizedName) -> list[Path]:
        names = self.projects().get(project)
        if not names:
            raise ProjectNotFound(f"no project named {project!r}")
        return [self.root / n for n in names]

    def has_files(self, project: NormalizedName) -> bool:
        """Whether ``project`` exists: it has at least one served file (issue 9)."""
        try:
            return bool(self.scan_project(project))
        except ProjectNotFound:
            return False

    def fingerprint(self, project: NormalizedName) -> "Fingerprint":
        """What a project's directories hold, by stat: names, sizes, mtimes, inodes.

        One ``scandir`` and one ``stat`` per entry, no parsing, no hashing. Cached pages keep
        the fingerprint they were built from and check it with :meth:`is_fresh` on every
        request, so a file copied in by hand, even over an existing name, shows at once.
        """
        now_ns = time.time_ns()
        dirs, files = [], []
        settled = True
        for directory in self.project_dirs(project):
            path = str(directory)
            try:
                dst = os.stat(path)
                with os.scandir(path) as it:
                    for entry in it:
                        if entry.name[0] == ".":
                            continue
                        try:
                            st = entry.stat()
                        except OSError:  # removed while we looked
                            continue
                        files.append((entry.path, st.st_size, st.st_mtime_ns, st.st_ino))
                        settled = settled and now_ns - st.st_mtime_ns > RACY_NS
            except (FileNotFoundError, NotADirectoryError):
                continue
            dirs.append((path, dst.st_mtime_ns, dst.st_ino))
            settled = settled and now_ns - dst.st_mtime_ns > RACY_NS
        files.sort()
        return Fingerprint(tuple(dirs), tuple(files), settled)

    def is_fresh(self, project: NormalizedName, fp: "Fingerprint") -> bool:
        """True while nothing in ``fp`` changed: a ``stat`` per directory and per file.

        Directory mtimes catch added, removed and renamed files; file stats catch a file
        rewritten in place. A fingerprint taken within a clock tick of a change is never
        trusted (``settled`` is false: the "racy git" rule), so no change can hide in the
        timestamp granularity. (A second, differently spelled directory of the same project
        created later is picked up with the next change of the first one.)
        """
        if not fp.settled:
            return False
        try:
            for path, mtime_ns, ino in fp.dirs:
                st = os.stat(path)
                if st.st_mtime_ns != mtime_ns or st.st_ino != ino:
                    return False
            for path, size, mtime_ns, ino in fp.files:
                st = os.stat(path)
                if st.st_mtime_ns != mtime_ns or st.st_size != size or st.st_ino != ino:
                    return False
        except OSError:
            return False
        return True

    def scan_project(self, project: NormalizedName) -> list[FileEntry]:
        """Stat every served file of a project (no hashing): the cheap freshness check.

        Of several files with one release identity (``distfiles.DistFile.identity``, e.g. a
        hand-copied ``Proj_A-1.0-...`` beside ``proj_a-1.0.0-...``) only one is served: the
        canonical spelling, else the first name in sort order; the others are logged.
        """
        return self.one_per_identity(self.scan_copies(project, self.project_dirs(project)))

    def one_per_identity(self, entries: list[FileEntry]) -> list[FileEntry]:
        """The served files of several copies of one release identity (see :meth:`scan_project`)."""
        if len({e.dist.identity for e in entries}) == len(entries):
            return sorted(entries, key=lambda e: e.filename)
        chosen: dict[tuple, FileEntry] = {}
        for entry in sorted(entries, key=lambda e: (e.filename != canonical_filename(e.dist), e.filename)):
            kept = chosen.setdefault(entry.dist.identity, entry)
            if kept is not entry:
                self._warn_once(str(entry.path), f"same release file as {kept.filename}, which is served")
        return sorted(chosen.values(), key=lambda e: e.filename)

    def scan_copies(self, project: NormalizedName, directories) -> list[FileEntry]:
        """Every served-format file of ``project`` in ``directories``, duplicates included."""
        entries: list[FileEntry] = []
        for directory in directories:
            listing = self._served_names(project, str(directory))
            if listing is None:
                continue
            served, sidecars = listing
            for name, dist in served:
                path = os.path.join(directory, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                yanked = None
                if name + YANK_SUFFIX in sidecars:
                    yanked = self._read_yank_reason(Path(path + YANK_SUFFIX))
                entries.append(FileEntry(dist, Path(path), st.st_size, st.st_mtime_ns, st.st_ino, yanked))
        return entries

    def _served_names(self, project: NormalizedName, directory: str):
        """(served file names with their parse, sidecar names) of one directory.

        Classifying a name (parse, project, format, symlink) is the costly part of a scan;
        the result is kept while the directory's mtime and inode hold and the mtime is older
        than a clock tick (the racy rule), so a re-scan costs a ``stat`` per file, as before.
        """
        try:
            dst = os.stat(directory)
        except OSError:
            return None
        key = (project, dst.st_mtime_ns, dst.st_ino)
        cached = self._dir_listings.get(directory)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            with os.scandir(directory) as it:
                dirents = list(it)
        except OSError:
            return None
        served = [(e.name, dist) for e in dirents if (dist := self.listable(project, e)) is not None]
        value = (served, frozenset(e.name for e in dirents if e.name.endswith(YANK_SUFFIX)))
        if time.time_ns() - dst.st_mtime_ns > RACY_NS:
            if len(self._dir_listings) >= MAX_CACHED_DIRS:
                self._dir_listings.clear()
            self._dir_listings[directory] = (key, value)
        return value

    def _read_yank_reason(self, path: Path) -> str:
        """The sidecar's text, bounded; a sidecar that resolves outside the root, or is not a
        regular file (a FIFO would block the worker), still yanks but its text is not read
        (issue 10: a symlink to /etc/passwd was served as the yank reason)."""
        if not self.inside_root(str(path)):
            return ""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return ""
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return ""
            data = os.read(fd, MAX_YANK_REASON_BYTES)
        except OSError:
            return ""
        finally:
            os.close(fd)
        return data.decode("utf-8", errors="replace").strip()

    def file_path(self, project: NormalizedName, filename: str) -> Path:
        """Path of an existing distribution file; never outside the root."""
        return self.locate_file(project, filename)[0]

    def locate_file(self, project: NormalizedName, filename: str) -> tuple[Path, os.stat_result]:
        """Path and stat of an existing served file of ``project``.

        One ``lstat`` per project directory (plus the root's cached listing); a symlink is
        followed only when it resolves inside the package root. A name with a separator, a
        leading dot, another suffix, or another project's name never reaches the file system.
        """
        check_basename(filename)
        if not filename.endswith(DIST_SUFFIXES):
            raise FileNotFound(f"not a distribution file: {filename!r}")
        dist = parse_distribution_filename(filename)
        if dist.name != project:
            raise FileNotFound(f"{filename} does not belong to {project}")
        for directory in self.project_dirs(project):
            candidate = os.path.join(directory, filename)
            try:
                st = os.lstat(candidate)
                if stat.S_ISLNK(st.st_mode):
                    if not self.inside_root(candidate):
                        self._warn_once(candidate, "symlink to a path outside the package root")
                        continue
                    st = os.stat(candidate)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                return Path(candidate), st
        raise FileNotFound(f"no file {filename!r} in project {project!r}")

    def iter_all(self) -> Iterator[tuple[NormalizedName, list[FileEntry]]]:
        for project in list(self.projects()):
            try:
                yield project, self.scan_project(project)
            except ProjectNotFound:
                continue
