"""Core metadata (METADATA / PKG-INFO) read out of distribution archives.

The wheel's ``METADATA`` is served verbatim as the PEP 658 ``.metadata`` file; the parsed
form (``packaging.metadata``) gives requires-python, summary and dependencies. Archives
are read, never extracted, and every member read is size-capped (zip bombs).
"""
from __future__ import annotations

import tarfile
import zipfile
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser, HeaderParser
from pathlib import Path

from packaging.metadata import Metadata, parse_email
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .distfiles import DistFile
from .errors import InvalidDistribution

__all__ = ["CoreMetadata", "IndexFacts", "extract_core_metadata", "read_core_metadata", "read_index_facts",
           "parse_core_metadata", "validate_metadata_strictly"]

MAX_METADATA_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class CoreMetadata:
    """The raw metadata bytes of a distribution and the fields the index uses."""

    raw: bytes
    name: str
    version: str
    requires_python: str | None = None
    summary: str | None = None
    requires_dist: tuple[str, ...] = ()
    fields: dict = field(default_factory=dict, compare=False, hash=False)


def parse_core_metadata(raw: bytes) -> CoreMetadata:
    """Parse METADATA/PKG-INFO leniently (real-world files bend the spec)."""
    text = raw.decode("utf-8", errors="replace")
    parsed, _unparsed = parse_email(text)
    name = parsed.get("name")
    version = parsed.get("version")
    if not name or not version:
        headers = HeaderParser().parsestr(text)
        name = name or headers.get("Name")
        version = version or headers.get("Version")
    if not name or not version:
        raise InvalidDistribution("metadata has no Name or Version")
    return CoreMetadata(
        raw=raw,
        name=str(name),
        version=str(version),
        requires_python=parsed.get("requires_python"),
        summary=parsed.get("summary"),
        requires_dist=tuple(parsed.get("requires_dist") or ()),
        fields=dict(parsed),
    )


def _read_capped(fh, what: str) -> bytes:
    data = fh.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise InvalidDistribution(f"{what} is larger than {MAX_METADATA_BYTES} bytes")
    return data


def _wheel_metadata(path: Path, dist: DistFile) -> bytes:
    try:
        with zipfile.ZipFile(path) as zf:
            candidates = [
                n for n in zf.namelist()
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]
            matching = [n for n in candidates if _dist_info_matches(n.split("/")[0], dist)]
            if len(matching) != 1:
                raise InvalidDistribution(
                    f"wheel has no single {dist.name}-{dist.version}.dist-info/METADATA"
                )
            with zf.open(matching[0]) as fh:
                return _read_capped(fh, "METADATA")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, InvalidDistribution):
            raise
        raise InvalidDistribution(f"not a valid wheel (zip) file: {exc}") from None


def _dist_info_matches(dirname: str, dist: DistFile) -> bool:
    stem = dirname[: -len(".dist-info")]
    name, sep, version = stem.rpartition("-")
    if not sep:
        return False
    try:
        return canonicalize_name(name) == dist.name and Version(version) == dist.version
    except InvalidVersion:
        return False


def _sdist_metadata(path: Path, dist: DistFile) -> bytes:
    try:
        if dist.filename.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/PKG-INFO")]
                if not names:
                    raise InvalidDistribution("sdist has no top-level */PKG-INFO")
                with zf.open(sorted(names, key=len)[0]) as fh:
                    return _read_capped(fh, "PKG-INFO")
        with tarfile.open(path, mode="r:gz") as tf:
            for member in tf:
                if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/PKG-INFO"):
                    fh = tf.extractfile(member)
                    if fh is not None:
                        return _read_capped(fh, "PKG-INFO")
            raise InvalidDistribution("sdist has no top-level */PKG-INFO")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, InvalidDistribution):
            raise
        raise InvalidDistribution(f"not a valid sdist archive: {exc}") from None


def extract_core_metadata(path: Path, dist: DistFile) -> bytes:
    """The raw METADATA (wheel) or PKG-INFO (sdist) bytes; :class:`InvalidDistribution` if broken."""
    return _wheel_metadata(path, dist) if dist.is_wheel else _sdist_metadata(path, dist)


def _check_identity(name: str | None, version: str | None, dist: DistFile) -> None:
    try:
        same = bool(name) and canonicalize_name(name) == dist.name and Version(version or "") == dist.version
    except InvalidVersion:
        same = False
    if not same:
        raise InvalidDistribution(f"metadata says {name} {version}, file name says {dist.name} {dist.version}")


def read_core_metadata(path: Path, dist: DistFile) -> CoreMetadata:
    """Read, parse and check the core metadata of a wheel or sdist.

    Raises :class:`InvalidDistribution` when the archive is broken or its metadata names
    another project or version than the file name.
    """
    meta = parse_core_metadata(extract_core_metadata(path, dist))
    _check_identity(meta.name, meta.version, dist)
    return meta


@dataclass(frozen=True)
class IndexFacts:
    """The few metadata fields a Simple API page needs, and the raw bytes they came from."""

    raw: bytes
    requires_python: str | None
    summary: str | None


def read_index_facts(path: Path, dist: DistFile) -> IndexFacts:
    """Like :func:`read_core_metadata`, for the index: headers only, no full parse.

    The stdlib header parser is about half the cost of ``packaging``'s complete parse, and
    this runs once for every file of a tree the index has not seen before.
    """
    raw = extract_core_metadata(path, dist)
    headers = BytesHeaderParser().parsebytes(raw)
    _check_identity(headers.get("Name"), headers.get("Version"), dist)
    requires_python = headers.get("Requires-Python")
    summary = headers.get("Summary")
    return IndexFacts(raw, str(requires_python).strip() if requires_python else None,
                      str(summary).strip() if summary else None)


def validate_metadata_strictly(meta: CoreMetadata) -> None:
    """Full ``packaging.metadata`` validation, for new uploads (not for files already served)."""
    try:
        Metadata.from_email(meta.raw.decode("utf-8", errors="replace"), validate=True)
    except Exception as exc:  # ExceptionGroup of InvalidMetadata
        details = "; ".join(str(e) for e in getattr(exc, "exceptions", [exc]))
        raise InvalidDistribution(f"invalid metadata: {details}") from None
