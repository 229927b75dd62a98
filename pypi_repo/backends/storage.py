"""The object-storage interface (issue 14): where distribution files and sidecars live.

Two implementations, chosen once by :func:`pypi_repo.backends.open_storage`:
:class:`~pypi_repo.backends.local.LocalBlobStore` (a directory tree, the single-machine
default) and :class:`~pypi_repo.backends.s3.S3BlobStore` (any S3-compatible store).

A *key* is a relative POSIX path, ``<project-dir>/<filename>`` for the index. Every key is
checked by :func:`check_key`: no empty, ``.`` or ``..`` segment, no segment starting with a
dot (temp files and hidden entries are the store's own), no backslash or NUL. Listings are
one level deep, like the package tree, and never show hidden names.

``PackageStore`` (``pypi_repo/storage.py``) is meant to sit on top of a ``BlobStore``: its
``projects()``/``scan_project()`` become :meth:`BlobStore.projects`/:meth:`BlobStore.list`,
``store()`` becomes :meth:`BlobStore.put` (same ``check`` hook, same "identical bytes are
not a conflict" rule), ``locate_file()`` becomes :meth:`BlobStore.stat`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Protocol, runtime_checkable

from ..errors import UnsafePath

__all__ = ["BlobInfo", "PutResult", "BlobStore", "CheckHook", "check_key", "CHUNK"]

CHUNK = 1024 * 1024

#: Called with the temp file's path and hex sha256 before a put publishes the key; raise to
#: reject the bytes (nothing is left behind). Same contract as ``PackageStore.store(check=)``.
CheckHook = Callable[[Path, str], None]


@dataclass(frozen=True)
class BlobInfo:
    """What a listing or a stat tells about one object, without reading it."""

    key: str
    size: int
    mtime_ns: int  # S3: LastModified, whole seconds
    etag: str  # opaque; changes whenever the bytes do (S3 ETag, or size-mtime-inode)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PutResult:
    key: str
    sha256: str
    size: int
    created: bool  # False: the same bytes were already stored under the key (a client retry)
    etag: str = ""  # the stored object's etag when the store tells it (S3 PutObject)


def check_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` if it is a safe relative key (``prefix``: one may end with ``/``)."""
    if not isinstance(key, str) or not key:
        raise UnsafePath("empty storage key")
    body = key[:-1] if prefix and key.endswith("/") else key
    if "\\" in body or "\x00" in body or body.startswith("/"):
        raise UnsafePath(f"unsafe storage key: {key!r}")
    for part in body.split("/"):
        if part in ("", ".", "..") or part.startswith("."):
            raise UnsafePath(f"unsafe storage key: {key!r}")
    return key


@runtime_checkable
class BlobStore(Protocol):
    """Keys to bytes. Implementations are safe to share between threads of one process."""

    #: ``file:///abs/dir`` or ``s3://bucket/prefix``: for logs and readiness, no secrets.
    url: str

    def projects(self) -> list[str]:
        """Top-level names (project directories as spelled), sorted; hidden ones left out.

        May include a name whose objects were all deleted (an empty directory on the local
        tree; SeaweedFS keeps an empty "folder" that AWS S3 would not): a project whose
        :meth:`list` is empty counts as absent.
        """
        ...

    def list(self, project: str) -> list[BlobInfo]:
        """The objects directly under ``project/``, sorted by key; [] for an unknown project."""
        ...

    def stat(self, key: str) -> BlobInfo:
        """One object's size, mtime and etag; ``FileNotFound`` if there is none."""
        ...

    def open(self, key: str, start: int = 0, stop: Optional[int] = None) -> BinaryIO:
        """A streaming reader of bytes ``[start, stop)`` (``stop`` None: to the end).

        Close it (or use ``with``). ``FileNotFound`` if missing; a ``start`` past the end
        gives an empty stream (the caller answers 416 from :meth:`stat` first).
        """
        ...

    def put(self, key: str, source: BinaryIO, *, overwrite: bool = False,
            max_bytes: Optional[int] = None, check: Optional[CheckHook] = None) -> PutResult:
        """Store ``source`` under ``key`` atomically, hashing sha256 on the way.

        Readers see the old object or the new one, never part of one. Without
        ``overwrite`` an existing key with *different* bytes raises ``FileExists`` (and
        exactly one of several concurrent puts of one key wins); the *same* bytes return
        ``created=False``. Over ``max_bytes`` raises ``UploadTooLarge``.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error (S3 semantics)."""
        ...

    def presigned_url(self, key: str, expires_s: int = 300) -> Optional[str]:
        """A short-lived GET URL a client can follow (S3), or None (local: serve it)."""
        ...

    def local_path(self, key: str) -> Optional[Path]:
        """The file behind ``key`` for ``sendfile`` (local), or None (S3: stream it)."""
        ...

    def check(self) -> None:
        """Readiness: return if the store answers, else raise ``BackendUnavailable``."""
        ...
