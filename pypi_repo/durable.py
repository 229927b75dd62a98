"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.

Source-of-truth writes (stored distribution files, ``.yanked`` sidecars, the secret key)
use ``durable=True``: after a power cut the file is either there whole or absent, and its
directory entry survives (issue 10). Derived state under the data directory may skip the
fsyncs: it is rebuilt from the tree when lost.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import StorageFull, UploadTooLarge

__all__ = ["atomic_write_bytes", "fsync_dir", "raise_for_disk", "unlink_quietly", "locked_dir",
           "DISK_FULL_ERRNOS"]

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def raise_for_disk(exc: OSError) -> None:
    """Re-raise ``exc``, as :class:`StorageFull` (507) when the disk or quota is full."""
    if exc.errno in DISK_FULL_ERRNOS:
        raise StorageFull("not enough disk space to store the file") from None
    raise exc


def copy_hashing(fd: int, source: BinaryIO, max_bytes: int | None, chunk: int = 1024 * 1024) -> tuple[str, int]:
    """Stream ``source`` into the open file ``fd`` (closed after), hashing as it goes, then
    fsync: (sha256 hex, size). Past ``max_bytes``: :class:`UploadTooLarge`."""
    digest, size = hashlib.sha256(), 0
    with os.fdopen(fd, "wb") as out:
        while block := source.read(chunk):
            size += len(block)
            if max_bytes is not None and size > max_bytes:
                raise UploadTooLarge(f"file is larger than the limit of {max_bytes} bytes")
            digest.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def fsync_dir(path: Path) -> None:
    """Make the directory entries of ``path`` (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = False, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory and a rename.

    Readers see the old bytes or the new ones, never a part. With ``durable`` the file and
    its directory entry are fsynced before returning. ENOSPC raises :class:`StorageFull`.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    except OSError as exc:
        raise_for_disk(exc)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except OSError as exc:
        unlink_quietly(Path(tmp))
        raise_for_disk(exc)
    except BaseException:
        unlink_quietly(Path(tmp))
        raise


@contextmanager
def locked_dir(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on a directory, across processes (Gunicorn workers, the CLI).

    Held only for the short decide-and-publish step of a store, never while bytes stream.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
