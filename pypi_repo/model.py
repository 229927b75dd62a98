"""The Simple Repository API model, in the shape of PEP 691 (JSON) and PEP 700.

Each field notes the PEP it comes from. Rendering (HTML or JSON) lives in ``simple_api``;
this module only says what a project page contains.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = ["File", "ProjectDetail", "ProjectList", "API_VERSION", "format_upload_time"]

#: PEP 629 repository version; 1.1 adds PEP 700's ``versions``, ``size``, ``upload-time``.
API_VERSION = "1.1"


def format_upload_time(mtime_ns: int) -> str:
    """PEP 700: ISO 8601 ``yyyy-mm-ddThh:mm:ss.ffffffZ`` in UTC."""
    moment = datetime.fromtimestamp(mtime_ns / 1e9, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class File:
    """One distribution file of a project page."""

    filename: str  # PEP 691 "filename"
    path: str  # URL path below the files root: "<project>/<filename>"
    sha256: str  # PEP 503 "#sha256=" fragment / PEP 691 "hashes"
    size: int  # PEP 700 "size"
    upload_time: str  # PEP 700 "upload-time"
    version: str  # the version the file name carries (for PEP 700 "versions")
    kind: str  # "wheel" or "sdist"
    requires_python: str | None = None  # PEP 503 data-requires-python / PEP 691
    core_metadata_sha256: str | None = None  # PEP 658/714 core metadata, when served
    yanked: str | None = None  # PEP 592: None = not yanked, "" = yanked without reason


@dataclass(frozen=True)
class ProjectDetail:
    """A project page: PEP 691 ``name``, ``files`` and PEP 700 ``versions``."""

    name: str
    files: tuple[File, ...]
    versions: tuple[str, ...]


@dataclass(frozen=True)
class ProjectList:
    """The root page: every project name (normalized)."""

    projects: tuple[str, ...]
