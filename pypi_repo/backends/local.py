"""A directory tree as a :class:`~pypi_repo.backends.storage.BlobStore` (the default).

Writes are atomic and durable: a hidden temp file in the target directory, ``fsync``, then
``link`` (no overwrite: the name is taken only if free, so one of two racing puts wins) or
``rename`` (overwrite), then ``fsync`` of the directory so the new name survives a crash.
Every key is resolved and checked against the root: a symlink that leads outside is
refused like a ``..`` (``UnsafePath``).
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import stat as stat_mod
import tempfile
from pathlib import Path
from typing import BinaryIO, Optional

from ..durable import copy_hashing, fsync_dir
from ..errors import FileExists, FileNotFound, StorageFull, UnsafePath
from .errors import BackendUnavailable
from .storage import CHUNK, BlobInfo, CheckHook, PutResult, check_key

__all__ = ["LocalBlobStore"]

_NO_LINK = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV)


class _RangeReader(io.RawIOBase):
    """At most ``length`` bytes of an open file, from where it stands."""

    def __init__(self, fh: BinaryIO, length: int) -> None:
        self._fh, self._left = fh, max(0, length)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: self._left]
        n = self._fh.readinto(view)
        self._left -= n or 0
        return n or 0

    def close(self) -> None:
        self._fh.close()
        super().close()


def _disk_error(exc: OSError) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("not enough disk space to store the file")
    return exc


class LocalBlobStore:
    """Keys are paths under ``root``; hidden names (``.upload-*.part``) are the store's own."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.url = f"file://{self.root}"

    # ------------------------------------------------------------------ paths
    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def _inside(self, path: str, real_root: str) -> bool:
        real = os.path.realpath(path)
        return real == real_root or real.startswith(real_root + os.sep)

    def _path(self, key: str) -> Path:
        check_key(key)
        path = os.path.join(self.root, key)
        if not self._inside(path, self._real_root()):
            raise UnsafePath(f"storage key leaves the root: {key!r}")
        return Path(path)

    # ---------------------------------------------------------------- reading
    def projects(self) -> list[str]:
        real_root = self._real_root()
        names = []
        try:
            with os.scandir(self.root) as it:
                for entry in it:
                    if entry.name.startswith(".") or not entry.is_dir():
                        continue
                    if entry.is_symlink() and not self._inside(entry.path, real_root):
                        continue
                    names.append(entry.name)
        except FileNotFoundError:
            return []
        return sorted(names)

    def list(self, project: str) -> list[BlobInfo]:
        directory = self._path(project)
        real_root = self._real_root()
        found = []
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if not entry.is_file():
                            continue
                        if entry.is_symlink() and not self._inside(entry.path, real_root):
                            continue
                        st = entry.stat()
                    except OSError:  # removed while we looked
                        continue
                    found.append(self._info(f"{project}/{entry.name}", st))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(found, key=lambda b: b.key)

    @staticmethod
    def _info(key: str, st: os.stat_result) -> BlobInfo:
        etag = f"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"
        return BlobInfo(key, st.st_size, st.st_mtime_ns, etag)

    def stat(self, key: str) -> BlobInfo:
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFound(f"no object {key!r}") from None
        if not stat_mod.S_ISREG(st.st_mode):
            raise FileNotFound(f"no object {key!r}")
        return self._info(key, st)

    def open(self, key: str, start: int = 0, stop: Optional[int] = None) -> BinaryIO:
        path = self._path(key)
        try:
            fh = open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise FileNotFound(f"no object {key!r}") from None
        if start:
            fh.seek(start)
        if stop is None:
            return fh
        return io.BufferedReader(_RangeReader(fh, stop - start), CHUNK)  # type: ignore[return-value]

    def local_path(self, key: str) -> Optional[Path]:
        return self._path(key)

    def presigned_url(self, key: str, expires_s: int = 300) -> Optional[str]:
        return None

    def check(self) -> None:
        if not self.root.is_dir():
            raise BackendUnavailable(f"storage {self.url}: not a directory")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise BackendUnavailable(f"storage {self.url}: not writable")

    # ---------------------------------------------------------------- writing
    def put(self, key: str, source: BinaryIO, *, overwrite: bool = False,
            max_bytes: Optional[int] = None, check: Optional[CheckHook] = None) -> PutResult:
        final = self._path(key)
        directory = final.parent
        created_dirs = [p for p in [directory, *directory.parents] if not p.exists()]
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for made in reversed(created_dirs):
                fsync_dir(made.parent)
            return self._put_in(key, final, source, overwrite, max_bytes, check)
        except BaseException as exc:
            for made in created_dirs:  # a rejected first upload leaves no empty project
                try:
                    made.rmdir()
                except OSError:
                    break
            if isinstance(exc, OSError) and not isinstance(exc, StorageFull):
                raise _disk_error(exc) from None
            raise

    def _put_in(self, key: str, final: Path, source: BinaryIO, overwrite: bool,
                max_bytes: Optional[int], check: Optional[CheckHook]) -> PutResult:
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=".upload-", suffix=".part")
        tmp = Path(tmp_name)
        try:
            digest, size = copy_hashing(fd, source, max_bytes, CHUNK)
            if check is not None:
                check(tmp, digest)
            os.chmod(tmp, 0o644)
            if not _publish(tmp, final, overwrite):
                if _sha256_file(final) != digest:
                    raise FileExists(f"File already exists: {key}")
                return PutResult(key, digest, size, created=False)
            fsync_dir(final.parent)
            return PutResult(key, digest, size, created=True)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        fsync_dir(path.parent)


def _publish(tmp: Path, final: Path, overwrite: bool) -> bool:
    """Give ``tmp`` the name ``final``; False if the name was taken and not ``overwrite``."""
    if overwrite:
        os.replace(tmp, final)
        return True
    try:
        os.link(tmp, final)  # atomic "create if absent": one of racing puts wins
        return True
    except FileExistsError:
        return False
    except OSError as exc:  # a filesystem without hard links: best effort
        if exc.errno not in _NO_LINK:
            raise
        if final.exists():
            return False
        os.replace(tmp, final)
        return True


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
