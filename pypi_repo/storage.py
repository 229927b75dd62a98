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
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from packaging.utils import NormalizedName, canonicalize_name

from .distfiles import DistFile, parse_distribution_filename
from .errors import FileExists, FileNotFound, ProjectNotFound, StorageFull, UnsafePath

__all__ = ["PackageStore", "FileEntry", "StoredFile", "YANK_SUFFIX", "atomic_write_bytes", "sha256_file"]

log = logging.getLogger(__name__)

YANK_SUFFIX = ".yanked"
CHUNK = 1024 * 1024


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
        self._listing_key: int | None = None
        self._listing: dict[NormalizedName, tuple[str, ...]] = {}

    # ----------------------------------------------------------------- reading
    def root_mtime_ns(self) -> int:
        try:
            return os.stat(self.root).st_mtime_ns
        except OSError:
            return -1

    def projects(self) -> dict[NormalizedName, tuple[str, ...]]:
        """Map of normalized project name to the directory names that hold it.

        Hand-made directories need not be normalized (``mkdir Payo_CLI``); two spellings of
        one name are merged. Re-read only when the root directory's mtime changes.
        """
        key = self.root_mtime_ns()
        if key != self._listing_key:
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
            self._listing = {k: tuple(sorted(v)) for k, v in sorted(listing.items())}
            self._listing_key = key
        return self._listing

    def project_dirs(self, project: NormalizedName) -> list[Path]:
        names = self.projects().get(project)
        if not names:
            raise ProjectNotFound(f"no project named {project!r}")
        return [self.root / n for n in names]

    def project_signature(self, project: NormalizedName) -> int:
        """A cheap fingerprint of a project's directory: names, sizes, mtimes, inodes.

        One ``scandir`` and one ``stat`` per entry, no parsing, no hashing: this runs on every
        request, so files copied in by hand (even over an existing name) show up at once.
        The value is process-local (``hash``); it keys caches, never ETags.
        """
        seen = []
        for directory in self.project_dirs(project):
            try:
                with os.scandir(directory) as it:
                    for entry in it:
                        if entry.name[0] != ".":
                            try:
                                st = entry.stat()
                            except OSError:  # removed while we looked
                                continue
                            seen.append((entry.name, st.st_size, st.st_mtime_ns, st.st_ino))
            except (FileNotFoundError, NotADirectoryError):
                continue
        seen.sort()
        return hash(tuple(seen))

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
        dist = parse_distribution_filename(filename)
        if dist.name != project:
            raise FileNotFound(f"{filename} does not belong to {project}")
        direct = self.root / project / filename
        if direct.is_file():
            return direct
        for directory in self.project_dirs(project):
            candidate = directory / filename
            if candidate.is_file():
                return candidate
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

    def safe_child(self, *parts: str) -> Path:
        """Join ``parts`` under the root, refusing anything that would escape it."""
        candidate = self.root.joinpath(*parts).resolve()
        root = self.root.resolve()
        if candidate != root and root not in candidate.parents:
            raise UnsafePath("path leaves the package root")
        return candidate
