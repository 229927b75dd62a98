"""Storage and database backends (issue 14), each one small interface, two implementations.

- :func:`open_storage` -> :class:`BlobStore`: the local tree (``storage_url`` empty or
  ``file:///dir``) or an S3-compatible bucket (``s3://BUCKET/PREFIX``).
- :func:`open_database` -> :class:`SqlDatabase`: SQLite under the data dir (``database_url``
  empty or ``sqlite:///file``) or PostgreSQL (any libpq URL: ``postgresql://user:pw@host:5432/db``,
  ``postgresql:///db?host=/socket/dir``).

Both are chosen once, at start, from plain arguments (the settings layer passes them in). A
URL that cannot work is refused with :class:`BackendConfigError` and one clear line.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from ..errors import UnsafePath
from .database import SqlDatabase
from .errors import BackendConfigError, BackendUnavailable
from .storage import BlobInfo, BlobStore, PutResult, check_key

__all__ = ["open_storage", "open_database", "BlobStore", "BlobInfo", "PutResult", "SqlDatabase",
           "BackendUnavailable", "BackendConfigError", "SQLITE_FILENAME"]

SQLITE_FILENAME = "pypi_repo.sqlite3"  # as Settings.database_path
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_STORAGE_FORMS = "expected empty (the packages dir), file:///ABS/DIR or s3://BUCKET/PREFIX"
_DATABASE_FORMS = "expected empty (SQLite in the data dir), sqlite:///ABS/FILE or postgresql://..."


def open_storage(url: str, packages_dir: Path, *, spool_dir: Optional[Path] = None,
                 timeout_s: float = 5.0, client: Any = None) -> BlobStore:
    """The ``BlobStore`` for ``storage_url`` (``spool_dir``: where S3 uploads are staged)."""
    url = (url or "").strip()
    if not url:
        return _local(Path(packages_dir))
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.query:
            raise BackendConfigError(f"storage_url {url!r}: a file URL needs an absolute path, "
                                     f"file:///ABS/DIR")
        return _local(Path(parts.path))
    if parts.scheme == "s3":
        bucket, prefix = _parse_s3(url, parts)
        from .s3 import S3BlobStore

        return S3BlobStore(bucket, prefix, client=client, spool_dir=spool_dir, timeout_s=timeout_s)
    raise BackendConfigError(f"storage_url {url!r}: unknown scheme; {_STORAGE_FORMS}")


def _local(root: Path) -> BlobStore:
    from .local import LocalBlobStore

    root.mkdir(parents=True, exist_ok=True)
    return LocalBlobStore(root)


def _parse_s3(url: str, parts) -> tuple[str, str]:
    if parts.query or parts.fragment or "@" in parts.netloc or ":" in parts.netloc:
        raise BackendConfigError(f"storage_url {url!r}: s3://BUCKET/PREFIX takes no user, port, "
                                 f"query or fragment (the endpoint comes from AWS_ENDPOINT_URL)")
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise BackendConfigError(f"storage_url {url!r}: {bucket!r} is not a valid bucket name "
                                 f"(3-63 characters: a-z 0-9 . -)")
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except UnsafePath:
            raise BackendConfigError(f"storage_url {url!r}: unsafe prefix {prefix!r}") from None
    return bucket, prefix


def open_database(url: str, data_dir: Path, **options) -> SqlDatabase:
    """The ``SqlDatabase`` for ``database_url``; ``options`` go to the PostgreSQL pool."""
    url = (url or "").strip()
    if not url:
        from .sqlite import SqliteDatabase

        return SqliteDatabase(Path(data_dir) / SQLITE_FILENAME)
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = url[len("sqlite://"):]
        if not path.startswith("/") or path == "/":
            raise BackendConfigError(f"database_url {url!r}: expected sqlite:///ABS/FILE")
        from .sqlite import SqliteDatabase

        return SqliteDatabase(Path(path))
    if scheme in ("postgresql", "postgres"):
        return _open_postgres(url, options)
    raise BackendConfigError(f"database_url {_mask(url)!r}: unknown scheme; {_DATABASE_FORMS}")


def _mask(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _open_postgres(url: str, options: dict) -> SqlDatabase:
    import psycopg

    from .postgres import PostgresDatabase

    try:
        db = PostgresDatabase(url, **options)
    except psycopg.ProgrammingError as exc:
        reason = (str(exc).strip().splitlines() or ["malformed"])[0]
        raise BackendConfigError(f"database_url {_mask(url)!r}: {reason}") from None
    from psycopg.conninfo import conninfo_to_dict

    port = str(conninfo_to_dict(url).get("port", ""))
    if port and not all(p.isdigit() and 0 < int(p) < 65536 for p in port.split(",")):
        raise BackendConfigError(f"database_url {_mask(url)!r}: port {port!r} is not a number")
    return db
