"""Small in-memory caches shared by the index (rendered pages) and file serving (file bodies)."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

__all__ = ["ByteLRU", "FileBodyCache", "stat_key"]


class ByteLRU:
    """A thread-safe LRU bounded by the total size of its values' bodies."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Any, value: Any, size: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def __len__(self) -> int:
        return len(self._items)


class FileBodyCache:
    """The bytes of recently served small files, valid while the file's stat is unchanged.

    A distribution file is immutable under its name in normal use, and the request has
    stat'ed it anyway: a hit costs no open, no read and no sendfile, just one socket write,
    which is what an in-memory server does. Large files always stream (sendfile).
    """

    def __init__(self, max_bytes: int, max_file_bytes: int = 512 * 1024) -> None:
        self.max_file_bytes = min(max_file_bytes, max_bytes)
        self._lru = ByteLRU(max_bytes)

    def get(self, path: str, key: tuple[int, int, int]) -> bytes | None:
        """Cached bytes of ``path`` if they were read when its (size, mtime_ns, inode) was ``key``."""
        item = self._lru.get(path)
        if item is not None and item[0] == key:
            return item[1]
        return None

    def put(self, path: str, key: tuple[int, int, int], data: bytes) -> None:
        if len(data) <= self.max_file_bytes:
            self._lru.put(path, (key, data), len(data) + 100)


def stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)
