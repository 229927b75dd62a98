"""The package tree on disk: ``<packages_dir>/<project>/<files>``, the whole truth.

Besides distribution files a project directory may hold ``<filename>.yanked`` sidecars
(PEP 592 yank state; the file's text is the reason). Everything else the service knows is
derived and lives under the data directory.

Every path built from outside input goes through :meth:`PackageStore.project_dir` and
:func:`~pypi_repo.distfiles.parse_distribution_filename`, so no request can leave the root.
Writes go to a temp file in the target directory and are published with ``os.replace``:
readers see the old state or the new one, never half a file.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from packaging.utils import NormalizedName, canonicalize_name

from .distfiles import DIST_SUFFIXES, DistFile, check_basename, parse_distribution_filename
from .errors import FileExists, FileNotFound, ProjectNotFound, StorageFull, UnsafePath

__all__ = ["PackageStore", "FileEntry", "Fingerprint", "StoredFile", "YANK_SUFFIX", "atomic_write_bytes", "sha256_file"]

log = logging.getLogger(__name__)

YANK_SUFFIX = ".yanked"
CHUNK = 1024 * 1024
#: Changes closer than this to a fingerprint could share its timestamps (coarse clocks).
RACY_NS = 2_000_000_000
#: While the root's mtime is that young, its listing is re-read at most this often.
RELIST_NS = 50_000_000


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


def _raise_for_disk(exc: OSError) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise StorageFull("not enough disk space to store the file") from None
    raise exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(Path(tmp))
        _raise_for_disk(exc)
    except BaseException:
        _unlink_quietly(Path(tmp))
        raise


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class PackageStore:
    """Reads and writes the package tree. Safe to share between threads of one process."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._root_str = str(self.root)
        self._listing_key: int | None = None
        self._listing: dict[NormalizedName, tuple[str, ...]] = {}
        self._listed_at = 0
        self._listing_racy = False

    # ----------------------------------------------------------------- reading
    def root_mtime_ns(self) -> int:
        try:
            return os.stat(self.root).st_mtime_ns
        except OSError:
            return -1

    def projects(self) -> dict[NormalizedName, tuple[str, ...]]:
        """Map of normalized project name to the directory names that hold it.

        Hand-made directories need not be normalized (``mkdir Payo_CLI``); two spellings of
        one name are merged. Re-read when the root directory's mtime changes, and, while
        that mtime is younger than the clock granularity allows to trust (the "racy" rule
        of :meth:`is_fresh`), at most every ``RELIST_NS``: a project created in the same
        tick as the last listing still shows within milliseconds. An unchanged listing
        keeps its identity, so pages built from it stay cached.
        """
        key = self.root_mtime_ns()
        now = time.time_ns()
        racy_due = self._listing_racy and now - self._listed_at > RELIST_NS
        if key != self._listing_key or racy_due:
            listing = self._read_listing()
            if listing != self._listing:
                self._listing = listing
            self._listing_key = key
            self._listed_at = now
            self._listing_racy = now - key < RACY_NS
        return self._listing

    def _read_listing(self) -> dict[NormalizedName, tuple[str, ...]]:
        listing: dict[NormalizedName, list[str]] = {}
        try:
            with os.scandir(self.root) as it:
                for entry in it:
                    if entry.name.startswith(".") or not entry.is_dir():
                        continue
                    try:
                        name = canonicalize_name(entry.name, validate=True)
                    except ValueError:
                        continue
                    listing.setdefault(name, []).append(entry.name)
        except FileNotFoundError:
            pass
        return {k: tuple(sorted(v)) for k, v in sorted(listing.items())}

    def project_dirs(self, project: NormalizedName) -> list[Path]:
        names = self.projects().get(project)
        if not names:
            raise ProjectNotFound(f"no project named {project!r}")
        return [self.root / n for n in names]

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
        """Stat every distribution file of a project (no hashing): the cheap freshness check."""
        entries: list[FileEntry] = []
        for directory in self.project_dirs(project):
            try:
                with os.scandir(directory) as it:
                    names = {e.name: e for e in it}
            except FileNotFoundError:
                continue
            for name, dirent in names.items():
                if name.startswith(".") or name.endswith(YANK_SUFFIX):
                    continue
                try:
                    dist = parse_distribution_filename(name)
                    st = dirent.stat()
                except (ValueError, OSError):
                    continue
                if not dirent.is_file():
                    continue
                yanked = None
                sidecar = names.get(name + YANK_SUFFIX)
                if sidecar is not None:
                    yanked = self._read_yank_reason(Path(sidecar.path))
                entries.append(FileEntry(dist, Path(dirent.path), st.st_size, st.st_mtime_ns, st.st_ino, yanked))
        entries.sort(key=lambda e: e.filename)
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
        """Path and stat of an existing distribution file of ``project``.

        The common case (normalized directory) costs one ``stat``; the full file-name parse
        runs only for the spellings a hand-made tree may use. A name with a separator, a
        leading dot or another suffix never reaches the file system.
        """
        check_basename(filename)
        if not filename.endswith(DIST_SUFFIXES):
            raise FileNotFound(f"not a distribution file: {filename!r}")
        direct = os.path.join(self._root_str, project, filename)
        try:
            st = os.stat(direct)
            if stat.S_ISREG(st.st_mode):
                return Path(direct), st
        except (FileNotFoundError, NotADirectoryError):
            pass
        dist = parse_distribution_filename(filename)
        if dist.name != project:
            raise FileNotFound(f"{filename} does not belong to {project}")
        for directory in self.project_dirs(project):
            candidate = directory / filename
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                return candidate, st
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
    ) -> StoredFile:
        """Stream ``source`` into the tree under ``dist.filename``, atomically.

        The bytes go to a hidden temp file in the project directory while hashed. ``check``
        (called with the temp path and the hex sha256) may raise to reject the file; then,
        and on any error, nothing is left behind. An identical existing file is not an error
        (clients retry); a different one raises :class:`FileExists` unless ``overwrite``.
        """
        directory = self.target_dir(dist.name)
        created_dir = not directory.exists()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _raise_for_disk(exc)
        try:
            return self._store_in(directory, dist, source, overwrite, max_bytes, check)
        except BaseException:
            if created_dir:  # a rejected first upload must not leave an empty project behind
                try:
                    directory.rmdir()
                except OSError:
                    pass
            raise

    def _store_in(self, directory: Path, dist: DistFile, source: BinaryIO, overwrite: bool,
                  max_bytes: int | None, check) -> StoredFile:
        final = directory / dist.filename
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".upload-", suffix=".part")
        tmp = Path(tmp_name)
        try:
            digest, size = self._copy_hashing(fd, source, max_bytes)
            if check is not None:
                check(tmp, digest)
            os.chmod(tmp, 0o644)
            if not self._publish(tmp, final, overwrite):
                if sha256_file(final) == digest:
                    _unlink_quietly(tmp)
                    return StoredFile(final, digest, size, created=False)
                if not overwrite:
                    raise FileExists(f"File already exists: {dist.filename}")
                os.replace(tmp, final)
        except OSError as exc:
            _unlink_quietly(tmp)
            _raise_for_disk(exc)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        log.info("stored %s (%d bytes, sha256 %s)", final, size, digest)
        return StoredFile(final, digest, size, created=True)

    @staticmethod
    def _publish(tmp: Path, final: Path, overwrite: bool) -> bool:
        """Move ``tmp`` to ``final`` unless a file is there; False if one was.

        Without overwrite, ``os.link`` creates the name only if it is free (atomic), so two
        concurrent uploads of different files under one name cannot both win.
        """
        if overwrite:
            if final.exists():
                return False
            os.replace(tmp, final)
            return True
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        except OSError as exc:  # a filesystem without hard links
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if final.exists():
                return False
            os.replace(tmp, final)
            return True
        _unlink_quietly(tmp)
        return True

    @staticmethod
    def _copy_hashing(fd: int, source: BinaryIO, max_bytes: int | None) -> tuple[str, int]:
        from .errors import UploadTooLarge

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

    def remove(self, project: NormalizedName, filename: str) -> None:
        path = self.file_path(project, filename)
        os.unlink(path)
        _unlink_quietly(path.with_name(path.name + YANK_SUFFIX))
        log.info("removed %s", path)

    def set_yanked(self, project: NormalizedName, filename: str, reason: str | None) -> None:
        """Yank (``reason`` a string, may be empty) or un-yank (``None``) a file (PEP 592)."""
        path = self.file_path(project, filename)
        sidecar = path.with_name(path.name + YANK_SUFFIX)
        if reason is None:
            _unlink_quietly(sidecar)
        else:
            atomic_write_bytes(sidecar, reason.encode("utf-8"))
