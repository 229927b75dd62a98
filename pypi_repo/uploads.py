"""The legacy upload (what ``twine upload`` and ``uv publish`` send), as one service call.

:func:`accept_upload` is the single path into the tree for new files: the web API, the
web form and ``manage_repo.py add`` all call it. The order matters and is the whole rule
set (issue 4):

1. the file name is a plain basename that parses as a wheel or ``.tar.gz`` sdist
   (``packaging``) and is spelled canonically (``distfiles.check_upload_filename``: the
   400 names the right spelling, as Warehouse does);
2. the form's ``name`` and ``version`` match the file name;
3. the principal may upload to the project (cheap check, before reading the body);
4. the bytes stream into a hidden temp file in the project directory, hashed on the way
   (sha256, blake2b-256, md5), never held in memory, capped at ``max_upload_mb`` MiB;
5. the digests the client sent match; the archive opens and its core metadata names the
   same project and version and passes ``packaging.metadata`` validation;
6. under the tree's publish lock: an identical existing file is a success; a different
   one, or another file of the same release identity (issue 10: ``1.0`` vs ``1.0.0``, a
   second sdist) is :class:`FileExists` (409) (``allow_overwrite`` replaces same-named
   files only); then ownership claim and audit record commit in one transaction;
7. ``os.link``/``os.replace`` publishes it (fsynced); if that fails the claim and record
   are undone. A full disk anywhere is 507 (issue 9).

Any failure before 7 removes the temp file: a rejected upload leaves the tree unchanged.
"""
from __future__ import annotations

import gzip
import hashlib
import hmac
import logging
import tarfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Mapping, Protocol

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .auth import AuthService, Principal
from .config import Settings
from .distfiles import DistFile, check_upload_filename
from .backends import BackendUnavailable
from .errors import DigestMismatch, InvalidDistribution, InvalidFilename, StorageFull
from .metadata import read_core_metadata, validate_metadata_strictly
from .index import ProjectIndex
from .storage import PackageStore, StoredFile

__all__ = ["accept_upload", "UploadServices", "check_archive_integrity", "validate_upload_form", "HashingReader", "FILETYPES",
           "UA_MARK"]

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
MAX_UNPACKED_BYTES = 16 * 1024**3  # zip bombs: a wheel declaring more than this is refused
FILETYPES = {"bdist_wheel": "wheel", "sdist": "sdist"}
UA_MARK = "; user agent: "  # the last field of a stored upload's audit detail
_DIGEST_FIELDS = (
    ("sha256_digest", "sha256"),
    ("blake2_256_digest", "blake2_256"),
    ("md5_digest", "md5"),
)


class UploadServices(Protocol):
    """What an upload needs; ``web.app.Services`` and the CLI's services both fit."""

    settings: Settings
    store: PackageStore
    index: ProjectIndex
    auth: AuthService


class HashingReader:
    """Wraps a binary stream and hashes what is read through it (one pass over the bytes)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.hashes = {
            "sha256": hashlib.sha256(),
            "blake2_256": hashlib.blake2b(digest_size=32),
            "md5": hashlib.md5(usedforsecurity=False),
        }

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        for h in self.hashes.values():
            h.update(chunk)
        return chunk

    def hexdigest(self, kind: str) -> str:
        return self.hashes[kind].hexdigest()


def _one_line(value: str, limit: int = 100) -> str:
    return value.replace("\n", " ").replace("\r", " ")[:limit]


def validate_upload_form(form: Mapping[str, str], filename: str) -> DistFile:
    """Check the file name and the form fields that describe it; returns the parsed name."""
    if not filename:
        raise InvalidDistribution("no file was sent (the form field is 'content')")
    if "/" in filename or "\\" in filename or filename.startswith("."):
        raise InvalidFilename(f"file name must be a plain name, not a path: {_one_line(filename)!r}")
    dist = check_upload_filename(filename)
    name, version = form.get("name") or "", form.get("version") or ""
    if not name or not version:
        raise InvalidDistribution("the form must carry the project's name and version")
    if canonicalize_name(name) != dist.name:
        raise InvalidDistribution(
            f"form says project {_one_line(name)!r}, file name says {dist.name!r}")
    try:
        same_version = Version(version) == dist.version
    except InvalidVersion:
        same_version = False
    if not same_version:
        raise InvalidDistribution(
            f"form says version {_one_line(version)!r}, file name says {dist.version}")
    filetype = form.get("filetype")
    if filetype and FILETYPES.get(filetype, dist.kind) != dist.kind:
        raise InvalidDistribution(f"filetype {_one_line(filetype)!r} does not match {filename}")
    return dist


def _expected_digests(form: Mapping[str, str]) -> dict[str, str]:
    expected: dict[str, str] = {}
    for field, kind in _DIGEST_FIELDS:
        value = (form.get(field) or "").strip().lower()
        if value:
            expected[kind] = value
    return expected


def _archive_check(dist: DistFile, reader: HashingReader, expected: Mapping[str, str]) -> Callable:
    """The ``check`` callback of :meth:`PackageStore.store`: digests first, then contents."""

    def check(tmp: Path, sha256: str) -> None:
        for kind, want in expected.items():
            got = sha256 if kind == "sha256" else reader.hexdigest(kind)
            if not hmac.compare_digest(got, want):
                raise DigestMismatch(f"{kind} digest of the received file does not match the one sent")
        validate_metadata_strictly(read_core_metadata(tmp, dist))
        check_archive_integrity(tmp, dist)

    return check


def _check_member_name(name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or (parts and parts[0].endswith(":")):
        raise InvalidDistribution(f"archive member with an unsafe path: {_one_line(name)!r}")


def check_archive_integrity(path: Path, dist: DistFile) -> None:
    """Read the whole archive once: every CRC checks, nothing is truncated, no member path
    escapes its directory. The metadata alone can be intact in a broken file."""
    try:
        if dist.filename.endswith((".whl", ".zip")):
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
                if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
                    raise InvalidDistribution("archive unpacks to more than the allowed size")
                for info in infos:
                    _check_member_name(info.filename)
                bad = zf.testzip()
                if bad is not None:
                    raise InvalidDistribution(f"archive member {bad!r} is corrupt")
        else:
            with tarfile.open(path, mode="r:gz") as tf:
                for member in tf:
                    _check_member_name(member.name)
            with gzip.open(path) as gz:  # to the end: the gzip CRC is checked there
                while gz.read(CHUNK):
                    pass
    except InvalidDistribution:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, OSError, ValueError,
            zlib.error) as exc:
        raise InvalidDistribution(f"{dist.filename} is not a valid archive: {exc}") from None


def _audit_softly(svc: UploadServices, principal: Principal, target: str, client_addr: str, *,
                  outcome: str = "ok", detail: str = "") -> None:
    """An audit record that must not turn the answer into a 500 (a rejection, an identical
    retry): with a full data disk it is logged instead."""
    try:
        svc.auth.audit(principal.display, "upload", target, client_addr, outcome=outcome, detail=detail)
    except (svc.auth.db.Error, BackendUnavailable, OSError) as exc:
        log.warning("could not write the audit record of %s (%s %s): %s", target, outcome, detail, exc)


def _user_agent_detail(user_agent: str) -> str:
    """The last field of an upload's audit detail (read back by the UI's "Uploaded via")."""
    return f"{UA_MARK}{_one_line(user_agent, 200)}" if user_agent else ""


def _publish_guard(svc: UploadServices, principal: Principal, dist: DistFile, exists: bool,
                   client_addr: str, user_agent: str = ""):
    """The ``guard`` of :meth:`PackageStore.store`: ownership claim and audit record are
    committed just before the file is published and undone if publishing fails, so the
    file and its record exist together or not at all (issue 9)."""

    @contextmanager
    def guard(tmp: Path, sha256: str, size: int) -> Iterator[None]:
        detail = f"sha256 {sha256}, {size} bytes" + _user_agent_detail(user_agent)
        try:
            undo = svc.auth.claim_project(principal, dist.name, exists=exists, client_addr=client_addr,
                                          audit=("upload", dist.filename, detail))
        except StorageFull:  # the database's disk (DatabaseFull); unreachable: BackendUnavailable, a 503
            raise StorageFull("not enough disk space for the upload's audit record") from None
        try:
            yield
        except BaseException:
            try:
                undo()
            except (svc.auth.db.Error, BackendUnavailable, OSError):
                log.exception("could not undo the audit record of %s", dist.filename)
            raise

    return guard


def accept_upload(
    svc: UploadServices,
    principal: Principal,
    form: Mapping[str, str],
    filename: str,
    stream: BinaryIO,
    *,
    client_addr: str = "",
    user_agent: str = "",
) -> StoredFile:
    """Validate and store one uploaded distribution file (see the module docstring).

    ``user_agent`` (the client's ``User-Agent``) ends the audit record's detail, so the UI can
    say "Uploaded via twine 7.0.0 by alice" (issue 12).
    """
    dist = validate_upload_form(form, filename)
    exists = svc.store.has_files(dist.name)
    svc.auth.check_upload(principal, dist.name, exists=exists)
    reader = HashingReader(stream)
    limit = svc.settings.max_upload_mb * 1024 * 1024
    try:
        stored = svc.store.store(
            dist, reader,  # type: ignore[arg-type]
            overwrite=svc.settings.allow_overwrite,
            max_bytes=limit,
            check=_archive_check(dist, reader, _expected_digests(form)),
            guard=_publish_guard(svc, principal, dist, exists, client_addr, user_agent),
        )
    except Exception as exc:
        _audit_softly(svc, principal, dist.filename, client_addr, outcome="rejected", detail=_one_line(str(exc), 300))
        raise
    if not stored.created:
        _audit_softly(svc, principal, dist.filename, client_addr,
                      detail=f"sha256 {stored.sha256}, {stored.size} bytes, identical file already stored"
                      + _user_agent_detail(user_agent))
    else:
        try:
            svc.index.project_detail(dist.name)  # hash + PEP 658 metadata now, not on first view
        except Exception:  # the file is stored; a cold cache only costs the next reader
            log.exception("could not warm the index of %s", dist.name)
    return stored
