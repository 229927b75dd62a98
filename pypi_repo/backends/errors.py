"""Errors of the shared backends (issue 14). The rest reuses :mod:`pypi_repo.errors`."""
from __future__ import annotations

from ..errors import ConfigError, PypiRepoError, StorageFull

__all__ = ["BackendUnavailable", "BackendConfigError", "DatabaseFull"]


class BackendUnavailable(PypiRepoError):
    """The database or the object store cannot be reached (or timed out): retryable, a 503.

    The message names the backend (with any password masked) and the reason, so the
    readiness answer can show it as is.
    """


class BackendConfigError(ConfigError):
    """A ``storage_url`` / ``database_url`` that cannot work; refused at start, one line."""


class DatabaseFull(StorageFull):
    """The database's disk has no room for the write (SQLite ``SQLITE_FULL``, PostgreSQL
    SQLSTATE 53100): a 507 like a full package disk, nothing half-written."""
