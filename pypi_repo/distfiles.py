"""Distribution file names: what a file is, read from its name alone (via ``packaging``).

Three rules live here, one per question a caller may ask (issue 10):

- *What is it?* :func:`parse_distribution_filename`: a wheel (PEP 427/491, the binary
  distribution format spec) or an sdist (PEP 625, plus the legacy ``.zip`` sdist that
  PEP 527 still allows and pip and uv still install). Wheel tags must consist of ASCII
  letters, digits and ``_`` (what ``packaging.tags`` produces; no quotes, spaces, ``<``).
- *Which release slot does it fill?* :attr:`DistFile.identity`: normalized name, PEP 440
  version (``1.0 == 1.0.0 == v1.0.0``), and for a wheel its build tag and tag set; an sdist
  has one slot per version, whatever its format. Two files with one identity are one file
  published twice, which Warehouse refuses ("Only one sdist may be uploaded per release",
  "File already exists").
- *How must it be spelled?* :func:`canonical_filename`: the name with runs of ``-_.``
  replaced by ``_`` and lower-cased, the version in its PEP 440 normal form, tags lower-case
  (binary distribution format spec, "Escaping and Unicode"; PEP 625 for sdists). Uploads
  must use this spelling (Warehouse's "Filename ... is invalid, should be ...").

Legacy formats (:data:`LEGACY_SUFFIXES`: ``.egg``, ``.exe``, ``.tar.bz2``, ``.tgz``, ...)
are neither served nor accepted: PEP 527 removed them from PyPI, ``packaging`` cannot name
them, and no current installer needs them from an index. A tree that holds one logs it and
``manage_repo.py verify`` reports it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from packaging.tags import Tag
from packaging.utils import (
    BuildTag,
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
    "canonical_filename",
    "canonical_project_name",
    "check_upload_filename",
    "legacy_format",
    "SDIST_SUFFIXES",
    "DIST_SUFFIXES",
    "UPLOAD_SUFFIXES",
    "LEGACY_SUFFIXES",
    "check_basename",
]

#: Served: wheels, PEP 625 sdists and legacy ``.zip`` sdists (PEP 527 kept it; pip installs it).
SDIST_SUFFIXES = (".tar.gz", ".zip")
DIST_SUFFIXES = (".whl", *SDIST_SUFFIXES)
#: Accepted at upload: what PyPI accepts today (PEP 625 enforcement refuses ``.zip`` sdists).
UPLOAD_SUFFIXES = (".whl", ".tar.gz")
#: Recognised but never served (PEP 527 / PEP 715): skipped with a log line, reported by verify.
LEGACY_SUFFIXES = (".egg", ".exe", ".msi", ".rpm", ".deb", ".dmg", ".tar.bz2", ".tbz", ".tgz",
                   ".tar.xz", ".txz", ".tar", ".tar.z", ".tar.zst")
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
    build: BuildTag = ()

    @property
    def is_wheel(self) -> bool:
        return self.kind == "wheel"

    @property
    def identity(self) -> tuple:
        """The release slot this file fills; equal identities may not both be published."""
        if self.is_wheel:
            return ("wheel", self.name, self.version, self.build, self.tags)
        return ("sdist", self.name, self.version)


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


def _is_tag_word(word: str) -> bool:
    return bool(word) and word.isascii() and all(c.isalnum() or c == "_" for c in word)


def _check_wheel_parts(filename: str) -> None:
    """The name part is a valid project name; every tag word is ``[A-Za-z0-9_]+``."""
    parts = filename[: -len(".whl")].split("-")
    try:
        canonicalize_name(parts[0], validate=True)
    except ValueError:
        raise InvalidFilename(f"not a valid project name in {filename[:80]!r}") from None
    for part in parts[-3:]:
        if not all(_is_tag_word(word) for word in part.split(".")):
            raise InvalidFilename(
                f"invalid wheel tag {part[:40]!r} in {filename[:80]!r}: tags are letters, digits and '_'")


def parse_distribution_filename(filename: str) -> DistFile:
    """Parse a wheel (PEP 427) or sdist (PEP 625, plus legacy ``.zip``) file name.

    Raises :class:`InvalidFilename` for anything else, including path separators and
    wheel tags with characters no tag can have. Cached: the tree is re-scanned often and
    a name always parses the same way.
    """
    result = _parse_cached(filename)
    if isinstance(result, str):
        raise InvalidFilename(result)
    return result


@lru_cache(maxsize=1 << 16)
def _parse_cached(filename: str) -> DistFile | str:
    try:
        check_basename(filename)
        if filename.endswith(".whl"):
            name, version, build, tags = parse_wheel_filename(filename)
            _check_wheel_parts(filename)
            return DistFile(filename, name, version, "wheel", tags, build)
        if filename.endswith(SDIST_SUFFIXES):
            name, version = parse_sdist_filename(filename)
            return DistFile(filename, name, version, "sdist")
    except InvalidFilename as exc:
        return str(exc)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        return str(exc)
    return f"not a wheel or sdist file name: {filename[:80]!r}"


def canonical_filename(dist: DistFile) -> str:
    """The one spelling of ``dist``'s file name (binary distribution format spec, PEP 625)."""
    name = dist.name.replace("-", "_")
    if dist.is_wheel:
        build = f"-{dist.build[0]}{dist.build[1]}" if dist.build else ""
        tags = "-".join(dist.filename[: -len(".whl")].split("-")[-3:]).lower()
        return f"{name}-{dist.version}{build}-{tags}.whl"
    suffix = next(s for s in SDIST_SUFFIXES if dist.filename.endswith(s))
    return f"{name}-{dist.version}{suffix}"


def legacy_format(filename: str) -> str | None:
    """The legacy suffix of a file PEP 527 removed (``.egg``, ``.tar.bz2``, ...), else None."""
    lowered = filename.lower()
    return next((s for s in LEGACY_SUFFIXES if lowered.endswith(s)), None)


def check_upload_filename(filename: str) -> DistFile:
    """What an upload may be called: a wheel or ``.tar.gz`` sdist in its canonical spelling.

    Mirrors Warehouse's upload checks (PEP 527 extensions, PEP 625 sdist names, the
    normalized project name of PEP 427/503): the message names the spelling to use.
    """
    if legacy := legacy_format(filename):
        raise InvalidFilename(
            f"{legacy} files are not accepted (PEP 527): upload a wheel (.whl) or an sdist (.tar.gz)")
    dist = parse_distribution_filename(filename)
    if not filename.endswith(UPLOAD_SUFFIXES):
        raise InvalidFilename(
            f"{filename[:80]!r}: sdists must be .tar.gz (PEP 625); zip sdists are served but not accepted")
    if dist.version.local is not None:
        # PEP 440: "==1.0.0" ignores a candidate's local label, so a later 1.0.0+x would change
        # what an installer pinned to 1.0.0 gets. Warehouse refuses them the same way.
        raise InvalidFilename(
            f"Can't use PEP 440 local versions ({dist.version}): {dist.version.public!r} "
            "pins would pick the file up; use a public version")
    expected = canonical_filename(dist)
    if filename != expected:
        raise InvalidFilename(f"Filename {filename[:120]!r} is invalid, should be {expected!r}")
    return dist


def canonical_project_name(name: str) -> NormalizedName:
    """PEP 503 normalized form of a valid project name; :class:`InvalidName` otherwise."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidName("project name is empty or too long")
    try:
        return canonicalize_name(name, validate=True)
    except Exception:  # packaging raises InvalidName of its own
        raise InvalidName(f"not a valid project name: {name[:80]!r}") from None
