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

import errno
import hashlib
import logging
import os
import stat
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, ContextManager, Iterator

from packaging.utils import NormalizedName, canonicalize_name

from .distfiles import DIST_SUFFIXES, DistFile, canonical_filename, check_basename, legacy_format, \
    parse_distribution_filename
from .durable import atomic_write_bytes, fsync_dir, locked_dir, raise_for_disk, unlink_quietly
from .errors import FileExists, FileNotFound, ProjectNotFound, UnsafePath, UploadTooLarge

__all__ = ["PackageStore", "FileEntry", "Fingerprint", "StoredFile", "YANK_SUFFIX", "atomic_write_bytes",
           "sha256_file", "STALE_TEMP_S", "is_temp_name"]

log = logging.getLogger(__name__)

YANK_SUFFIX = ".yanked"
CHUNK = 1024 * 1024
#: Changes closer than this to a fingerprint could share its timestamps (coarse clocks).
RACY_NS = 2_000_000_000
#: While the root's mtime is that young, its listing is re-read at most this often.
RELIST_NS = 50_000_000
#: A temp file untouched this long belongs to no live upload (the body is copied from a local
#: spool file at disk speed); it is removed at start and before the next upload to its project.
STALE_TEMP_S = 300
MAX_WARNINGS = 10000

#: Called with (temp path, sha256, size) just before a new file is published, under the
#: publish lock; the context it returns wraps the publish (see ``uploads.accept_upload``).
PublishGuard = Callable[[Path, str, int], ContextManager]


def is_temp_name(name: str) -> bool:
    """Temp files of :meth:`PackageStore.store` and :func:`atomic_write_bytes`."""
    return name.startswith((".upload-", ".tmp-")) and name.endswith(".part")


@dataclass(frozen=True)
class FileEntry:
    """One distribution file as found on disk (what a stat tells, nothing hashed)."""

    dist: DistFile
    path: Path
    size: int
    mtime_ns: int
    inode: int
    yanked: str | None  # None: not yanked; "" yanked without a reason

    @property
    def filename(self) -> str:
        return self.dist.filename

    @property
    def stat_key(self) -> tuple[int, int, int]:
        return (self.size, self.mtime_ns, self.inode)


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


@dataclass(frozen=True)
class StoredFile:
    """The result of storing a file: where it is and what its bytes hash to."""

    path: Path
    sha256: str
    size: int
    created: bool  # False when an identical file was already there


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class PackageStore:
    """Reads and writes the package tree. Safe to share between threads of one process."""

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
                    if entry.name.startswith(".") or not entry.is_dir():
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
        entries = self._scan_dirs(project, self.project_dirs(project))
        chosen: dict[tuple, FileEntry] = {}
        for entry in sorted(entries, key=lambda e: (e.filename != canonical_filename(e.dist), e.filename)):
            kept = chosen.setdefault(entry.dist.identity, entry)
            if kept is not entry:
                self._warn_once(str(entry.path), f"same release file as {kept.filename}, which is served")
        return sorted(chosen.values(), key=lambda e: e.filename)

    def _scan_dirs(self, project: NormalizedName, directories) -> list[FileEntry]:
        entries: list[FileEntry] = []
        for directory in directories:
            try:
                with os.scandir(directory) as it:
                    names = {e.name: e for e in it}
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name, dirent in names.items():
                dist = self.listable(project, dirent)
                if dist is None:
                    continue
                try:
                    st = dirent.stat()
                except OSError:
                    continue
                yanked = None
                sidecar = names.get(name + YANK_SUFFIX)
                if sidecar is not None:
                    yanked = self._read_yank_reason(Path(sidecar.path))
                entries.append(FileEntry(dist, Path(dirent.path), st.st_size, st.st_mtime_ns, st.st_ino, yanked))
        return entries

    @staticmethod
    def _read_yank_reason(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return ""

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

    # ----------------------------------------------------------------- writing
    def target_dir(self, project: NormalizedName) -> Path:
        """Directory new files of ``project`` go to (an existing spelling, else normalized)."""
        if canonicalize_name(project) != project or not project or "/" in project or project.startswith("."):
            raise UnsafePath(f"not a normalized project name: {project!r}")
        existing = self.projects().get(project)
        return self.root / (existing[0] if existing else project)

    def store(
        self,
        dist: DistFile,
        source: BinaryIO,
        *,
        overwrite: bool = False,
        max_bytes: int | None = None,
        check=None,
        guard: PublishGuard | None = None,
    ) -> StoredFile:
        """Stream ``source`` into the tree under ``dist.filename``, atomically and durably.

        The bytes go to a hidden temp file in the project directory while hashed. ``check``
        (called with the temp path and the hex sha256) may raise to reject the file; then,
        and on any error, nothing is left behind. An identical existing file is not an error
        (clients retry); a different one, or another file of the same release identity
        (another spelling of the version, a second sdist), raises :class:`FileExists`
        (``overwrite`` replaces a same-named file only).
        """
        directory = self.target_dir(dist.name)
        created_dir = not directory.exists()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise_for_disk(exc)
        try:
            return self._store_in(directory, dist, source, overwrite, max_bytes, check, guard)
        except BaseException:
            if created_dir:  # a rejected first upload must not leave an empty project behind
                try:
                    directory.rmdir()
                except OSError:
                    pass
            raise

    def _new_temp(self, directory: Path) -> tuple[int, Path]:
        self.clean_stale_temp(directory)
        try:
            fd, name = tempfile.mkstemp(dir=directory, prefix=".upload-", suffix=".part")
        except FileNotFoundError:  # a parallel failed first upload removed the directory
            directory.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=directory, prefix=".upload-", suffix=".part")
        return fd, Path(name)

    def _store_in(self, directory: Path, dist: DistFile, source: BinaryIO, overwrite: bool,
                  max_bytes: int | None, check, guard: PublishGuard | None) -> StoredFile:
        final = directory / dist.filename
        tmp: Path | None = None
        try:
            fd, tmp = self._new_temp(directory)
            digest, size = self._copy_hashing(fd, source, max_bytes)
            if check is not None:
                check(tmp, digest)
            os.chmod(tmp, 0o644)
            with locked_dir(self.root):  # decide and publish: one upload at a time
                if self._decide(directory, dist, final, digest, overwrite) == "identical":
                    unlink_quietly(tmp)
                    return StoredFile(final, digest, size, created=False)
                with guard(tmp, digest, size) if guard is not None else nullcontext():
                    self._publish(tmp, final, overwrite)
                fsync_dir(directory)
                fsync_dir(self.root)  # the project directory's own entry, when it is new
        except OSError as exc:
            if tmp is not None:
                unlink_quietly(tmp)
            raise_for_disk(exc)
        except BaseException:
            if tmp is not None:
                unlink_quietly(tmp)
            raise
        log.info("stored %s (%d bytes, sha256 %s)", final, size, digest)
        return StoredFile(final, digest, size, created=True)

    def _decide(self, directory: Path, dist: DistFile, final: Path, digest: str, overwrite: bool) -> str:
        """"new", "replace" or "identical"; :class:`FileExists` for any other same-identity file."""
        dirs = {directory, *(self.root / n for n in self.projects().get(dist.name, ()))}
        for entry in self._scan_dirs(dist.name, sorted(dirs)):
            if entry.filename == dist.filename:
                if sha256_file(entry.path) == digest:
                    return "identical"
                if overwrite:
                    return "replace"
                raise FileExists(f"File already exists: {dist.filename}")
            if entry.dist.identity == dist.identity:
                if dist.is_wheel:
                    raise FileExists(f"File already exists: {entry.filename} is the same wheel "
                                     f"(version {entry.dist.version}, same tags); use a new version")
                raise FileExists(f"File already exists: only one sdist may be uploaded per release, "
                                 f"and {entry.filename} is stored")
        return "replace" if final.exists() else "new"

    @staticmethod
    def _publish(tmp: Path, final: Path, overwrite: bool) -> None:
        """Move ``tmp`` to ``final``. Without overwrite, ``os.link`` creates the name only if
        it is free (atomic even without the lock, e.g. a file copied in by hand meanwhile)."""
        if overwrite:
            os.replace(tmp, final)
            return
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise FileExists(f"File already exists: {final.name}") from None
        except OSError as exc:  # a filesystem without hard links
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if final.exists():
                raise FileExists(f"File already exists: {final.name}") from None
            os.replace(tmp, final)
            return
        unlink_quietly(tmp)

    @staticmethod
    def _copy_hashing(fd: int, source: BinaryIO, max_bytes: int | None) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise UploadTooLarge(f"file is larger than the limit of {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        return digest.hexdigest(), size

    def clean_stale_temp(self, directory: Path | None = None, max_age_s: float = STALE_TEMP_S) -> list[Path]:
        """Remove temp files untouched for ``max_age_s`` (left by a killed upload); in one
        project directory, or in all of them (at start). Returns what was removed."""
        directories = [directory] if directory is not None else self._all_dirs()
        removed: list[Path] = []
        cutoff = time.time() - max_age_s
        for path in directories:
            try:
                with os.scandir(path) as it:
                    stale = [Path(e.path) for e in it if is_temp_name(e.name) and e.is_file(follow_symlinks=False)
                             and e.stat(follow_symlinks=False).st_mtime < cutoff]
            except OSError:
                continue
            for temp in stale:
                unlink_quietly(temp)
                removed.append(temp)
                log.info("removed stale temp file %s", temp)
            if stale and directory is None:
                try:
                    os.rmdir(path)  # only when that was all it held
                except OSError:
                    pass
        return removed

    def _all_dirs(self) -> list[Path]:
        try:
            with os.scandir(self.root) as it:
                return [Path(e.path) for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
        except OSError:
            return []

    def remove(self, project: NormalizedName, filename: str) -> None:
        path = self.file_path(project, filename)
        os.unlink(path)
        unlink_quietly(path.with_name(path.name + YANK_SUFFIX))
        fsync_dir(path.parent)
        log.info("removed %s", path)

    def set_yanked(self, project: NormalizedName, filename: str, reason: str | None) -> None:
        """Yank (``reason`` a string, may be empty) or un-yank (``None``) a file (PEP 592)."""
        path = self.file_path(project, filename)
        sidecar = path.with_name(path.name + YANK_SUFFIX)
        if reason is None:
            unlink_quietly(sidecar)
            fsync_dir(path.parent)
        else:
            atomic_write_bytes(sidecar, reason.encode("utf-8"), durable=True, mode=0o644)
