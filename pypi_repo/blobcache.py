"""A bounded node-local disk cache of objects from the shared store (issue 14).

With ``storage_url = s3://...`` every node keeps the files it served (and the wheels whose
PEP 658 metadata it extracted) under ``<data_dir>/s3cache/``, named by the object's etag, so
a file rewritten in the bucket is fetched again and a cached copy is never served for other
bytes. The cache is disposable and bounded (``storage_cache_mb``): past the bound the least
recently used files go (a hit touches the file's mtime, which is the recency here).
Files land through a temp file and ``os.replace``, so concurrent workers never see part of one.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from .durable import unlink_quietly

__all__ = ["FileCache"]

log = logging.getLogger(__name__)

_SAFE_ETAG = re.compile(r"[^0-9A-Za-z_-]")
CHUNK = 1024 * 1024


class FileCache:
    """``key`` (``project/filename``) + ``etag`` -> a local file holding those bytes."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max(0, int(max_bytes))

    def path_for(self, key: str, etag: str) -> Path:
        project, _, name = key.rpartition("/")
        tag = _SAFE_ETAG.sub("", etag)[:64] or "x"
        return self.root / (project or "_") / f"{tag}-{name}"

    def get(self, key: str, etag: str, fetch: Callable[[], BinaryIO], expect_sha256: str | None = None) -> Path:
        """The cached copy, fetched (``fetch()`` returns a reader of the object) when missing.

        With ``expect_sha256`` the fetched bytes are checked on the way (no second pass): a
        mismatch (the object changed while read) raises ``OSError`` and caches nothing.
        """
        path = self.path_for(key, etag)
        try:
            os.utime(path)  # a hit: most recently used now
            return path
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fetch-", suffix=".part")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, fetch() as body:
                while chunk := body.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if expect_sha256 and digest.hexdigest() != expect_sha256:
                raise OSError(f"object {key} changed while fetched (sha256 mismatch)")
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            unlink_quietly(Path(tmp))
            raise
        for old in path.parent.glob(f"*-{glob_escape(path.name.split('-', 1)[1])}"):
            if old != path and not old.name.startswith("."):
                unlink_quietly(old)  # an older etag of the same key
        self.evict(keep=path)
        return path

    def adopt(self, key: str, etag: str, source: Path) -> None:
        """Move a local file with the object's bytes into the cache (an upload's spool file:
        the node that stored it need not fetch it back)."""
        path = self.path_for(key, etag)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(source, 0o644)
        os.replace(source, path)
        self.evict(keep=path)

    def evict(self, keep: Path | None = None) -> int:
        """Drop least recently used files until the cache fits ``max_bytes``; returns bytes freed."""
        files = []
        total = 0
        for directory, _dirs, names in os.walk(self.root):
            for name in names:
                full = os.path.join(directory, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                total += st.st_size
                files.append((st.st_mtime_ns, st.st_size, full))
        freed = 0
        for _mtime, size, full in sorted(files):
            if total - freed <= self.max_bytes:
                break
            if keep is not None and full == str(keep):
                continue
            unlink_quietly(Path(full))
            freed += size
        if freed:
            log.info("file cache: evicted %d bytes (bound %d)", freed, self.max_bytes)
        return freed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)
