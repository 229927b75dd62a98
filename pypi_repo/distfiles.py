"""Distribution file names: what a file is, read from its name alone (via ``packaging``)."""
from __future__ import annotations

from dataclasses import dataclass

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from .errors import InvalidFilename, InvalidName

__all__ = [
    "DistFile",
    "parse_distribution_filename",
    "canonical_project_name",
    "SDIST_SUFFIXES",
    "DIST_SUFFIXES",
    "check_basename",
]

SDIST_SUFFIXES = (".tar.gz", ".zip")
DIST_SUFFIXES = (".whl", *SDIST_SUFFIXES)
MAX_FILENAME_LENGTH = 255
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class DistFile:
    """A distribution file name, parsed: ``payo_cli-1.0.0-py3-none-any.whl``."""

    filename: str
    name: NormalizedName
    version: Version
    kind: str  # "wheel" or "sdist"
    tags: frozenset[Tag] = frozenset()

    @property
    def is_wheel(self) -> bool:
        return self.kind == "wheel"


def check_basename(filename: str) -> None:
    """Refuse anything but a plain, printable file name (no separators, no leading dot)."""
    if (
        not filename
        or len(filename) > MAX_FILENAME_LENGTH
        or filename.startswith(".")
        or any(c in filename for c in "/\\\x00")
        or not filename.isprintable()
    ):
        raise InvalidFilename(f"not a plain file name: {filename[:80]!r}")


def parse_distribution_filename(filename: str) -> DistFile:
    """Parse a wheel (PEP 427) or sdist (PEP 625, plus legacy ``.zip``) file name.

    Raises :class:`InvalidFilename` for anything else, including path separators.
    """
    check_basename(filename)
    try:
        if filename.endswith(".whl"):
            name, version, _build, tags = parse_wheel_filename(filename)
            return DistFile(filename, name, version, "wheel", tags)
        if filename.endswith(SDIST_SUFFIXES):
            name, version = parse_sdist_filename(filename)
            return DistFile(filename, name, version, "sdist")
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise InvalidFilename(str(exc)) from None
    raise InvalidFilename(f"not a wheel or sdist file name: {filename!r}")


def canonical_project_name(name: str) -> NormalizedName:
    """PEP 503 normalized form of a valid project name; :class:`InvalidName` otherwise."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidName("project name is empty or too long")
    try:
        return canonicalize_name(name, validate=True)
    except Exception:  # packaging raises InvalidName of its own
        raise InvalidName(f"not a valid project name: {name[:80]!r}") from None
