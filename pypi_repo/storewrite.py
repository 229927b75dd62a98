"""Writing the package tree: store (temp file, hash, check, lock, decide, publish, fsync),
remove, yank, and the clean-up of temp files a killed upload leaves (issue 9).

A mixin of :class:`~pypi_repo.storage.PackageStore`, which provides the reading side
(``root``, ``projects``, ``scan_copies``, ``file_path``).
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, ContextManager, Iterable

from packaging.utils import NormalizedName, canonicalize_name

from .distfiles import DistFile
from .durable import atomic_write_bytes, copy_hashing, fsync_dir, locked_dir, raise_for_disk, unlink_quietly
from .errors import Conflict, FileExists, UnsafePath

if TYPE_CHECKING:  # storage imports this module
    from .storage import FileEntry

__all__ = ["StoreWriter", "StoredFile", "sha256_file", "is_temp_name", "STALE_TEMP_S", "YANK_SUFFIX", "PublishGuard",
           "decide_identity"]

log = logging.getLogger("pypi_repo.storage")

YANK_SUFFIX = ".yanked"
CHUNK = 1024 * 1024
#: A temp file untouched this long belongs to no live upload (the body is copied from a local
#: spool file at disk speed); it is removed at start and before the next upload to its project.
STALE_TEMP_S = 300

#: Called with (temp path, sha256, size) just before a new file is published, under the
#: publish lock; the context it returns wraps the publish (see ``uploads.accept_upload``).
PublishGuard = Callable[[Path, str, int], ContextManager]


def is_temp_name(name: str) -> bool:
    """Temp files of :meth:`StoreWriter.store` and :func:`atomic_write_bytes`."""
    return name.startswith((".upload-", ".tmp-")) and name.endswith(".part")


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


def decide_identity(entries: Iterable[FileEntry], dist: DistFile, digest: str, overwrite: bool,
                    sha256_of: Callable[[FileEntry], str]) -> str | None:
    """The one release-identity rule of every store (issue 10, as Warehouse decides it):
    "identical" or "replace" for the same file name, :class:`FileExists` for another file of
    the same identity (wheel: name, version, build tag, tag set; sdist: one per release),
    None when the identity is free."""
    for entry in entries:
        if entry.filename == dist.filename:
            if sha256_of(entry) == digest:
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
    return None


class StoreWriter:
    """The writing half of :class:`~pypi_repo.storage.PackageStore`."""

    root: Path

    # ----------------------------------------------------------------- writing
    def target_dir(self, project: NormalizedName) -> Path:
        """Directory new files of ``project`` go to (an existing spelling, else normalized)."""
        if canonicalize_name(project) != project or not project or "/" in project or project.startswith("."):
            raise UnsafePath(f"not a normalized project name: {project!r}")
        existing = self.projects().get(project)
        directory = self.root / (existing[0] if existing else project)
        if os.path.lexists(directory) and not (directory.is_dir() and self.inside_root(str(directory))):
            # issue 10: a symlink leaving the root took the upload outside it (200, never
            # served); a plain file or a dangling symlink of that name made a 500.
            raise Conflict(f"{directory.name!r} in the package root is not a project directory inside "
                           "it (a file, or a symlink leaving the root); the operator must remove it")
        return directory

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
            digest, size = copy_hashing(fd, source, max_bytes, CHUNK)
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
        entries = self.scan_copies(dist.name, sorted(dirs))
        decided = decide_identity(entries, dist, digest, overwrite, lambda e: sha256_file(e.path))
        return decided or ("replace" if final.exists() else "new")

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
