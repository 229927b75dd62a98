"""An S3-compatible bucket as a :class:`~pypi_repo.backends.storage.BlobStore` (issue 14).

``s3://BUCKET/PREFIX``: keys live under ``PREFIX/``. Endpoint, credentials and region come
from boto3's usual chain: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` or ``~/.aws/config``/``credentials``
(``AWS_PROFILE``). Addressing is path-style (``http://host:8333/BUCKET/KEY``), which every
self-hosted store (SeaweedFS, MinIO, Ceph) serves without wildcard DNS.

A put spools the upload to a node-local temp file while hashing (so ``check`` can read the
file and the sha256 is known before anything is published), then sends one ``PutObject``
with ``x-amz-checksum-sha256`` (the store verifies the bytes it got) and, unless
``overwrite``, ``If-None-Match: *``: a conditional put, so of several nodes storing one
name exactly one wins, with no lock. AWS S3 (since 2024), SeaweedFS (4.x, checked by the
contract tests) and MinIO honour it. The sha256 is also kept as object metadata so a retry
with the same bytes is recognised without reading the object.
"""
from __future__ import annotations

import base64
import hashlib
import io
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Optional

import boto3
import botocore.exceptions as bex
from botocore.config import Config

from ..errors import FileExists, FileNotFound, UploadTooLarge
from .errors import BackendUnavailable
from .storage import CHUNK, BlobInfo, CheckHook, PutResult, check_key

__all__ = ["S3BlobStore", "make_client"]

SHA256_META = "sha256"
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_TAKEN = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_REFUSED = {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_NETWORK = (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError,
            bex.ConnectionClosedError, bex.NoCredentialsError, bex.PartialCredentialsError,
            bex.NoRegionError, bex.ProxyConnectionError, bex.SSLError)


def make_client(timeout_s: float = 5.0, attempts: int = 3) -> Any:
    """An S3 client from the standard AWS settings: path-style, short timeouts, few retries."""
    config = Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                    connect_timeout=timeout_s, read_timeout=timeout_s,
                    retries={"mode": "standard", "total_max_attempts": attempts},
                    max_pool_connections=32)
    return boto3.session.Session().client("s3", config=config)


def _code(exc: bex.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: bex.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


class S3BlobStore:
    """Keys under ``s3://bucket/prefix/``. One boto3 client, shared by threads (it is safe)."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None,
                 spool_dir: Optional[Path] = None, timeout_s: float = 5.0) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self.spool_dir = spool_dir
        self._client = client if client is not None else make_client(timeout_s)

    # ---------------------------------------------------------------- errors
    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Network, credential and server failures become one ``BackendUnavailable``."""
        try:
            yield
        except _NETWORK as exc:
            raise BackendUnavailable(f"storage {self.url} unreachable ({what}): {exc}") from None
        except bex.ClientError as exc:
            if _status(exc) in (401, 403) or _status(exc) >= 500 or _code(exc) in _REFUSED:
                raise BackendUnavailable(f"storage {self.url} refused {what}: {_code(exc)} "
                                         f"{exc.response.get('Error', {}).get('Message', '')}".rstrip()) from None
            raise

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _info(self, key: str, size: int, modified, etag: str) -> BlobInfo:
        return BlobInfo(key, int(size), int(modified.timestamp()) * 1_000_000_000, etag.strip('"'))

    # ---------------------------------------------------------------- reading
    def projects(self) -> list[str]:
        names = []
        with self._errors("list"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/")
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(self.prefix):].rstrip("/")
                    if name and not name.startswith("."):
                        names.append(name)
        return sorted(names)

    def list(self, project: str) -> list[BlobInfo]:
        base = self._full(project) + "/"
        found = []
        with self._errors("list"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/")
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(base):]
                    if name and not name.startswith("."):
                        found.append(self._info(f"{project}/{name}", obj["Size"],
                                                obj["LastModified"], obj["ETag"]))
        return sorted(found, key=lambda b: b.key)

    def _head(self, key: str) -> dict:
        with self._errors("stat"):
            try:
                return self._client.head_object(Bucket=self.bucket, Key=self._full(key))
            except bex.ClientError as exc:
                if _code(exc) in _NOT_FOUND or _status(exc) == 404:
                    raise FileNotFound(f"no object {key!r}") from None
                raise

    def stat(self, key: str) -> BlobInfo:
        head = self._head(key)
        return self._info(key, head["ContentLength"], head["LastModified"], head["ETag"])

    def open(self, key: str, start: int = 0, stop: Optional[int] = None) -> BinaryIO:
        args = {"Bucket": self.bucket, "Key": self._full(key)}
        if stop is not None and stop <= start:
            self.stat(key)  # still FileNotFound for a missing key
            return io.BytesIO(b"")
        if start or stop is not None:
            args["Range"] = f"bytes={start}-{'' if stop is None else stop - 1}"
        with self._errors("read"):
            try:
                return self._client.get_object(**args)["Body"]
            except bex.ClientError as exc:
                if _code(exc) in _NOT_FOUND or _status(exc) == 404:
                    raise FileNotFound(f"no object {key!r}") from None
                if _code(exc) == "InvalidRange" or _status(exc) == 416:
                    return io.BytesIO(b"")
                raise

    def local_path(self, key: str) -> Optional[Path]:
        return None

    def presigned_url(self, key: str, expires_s: int = 300) -> Optional[str]:
        with self._errors("presign"):
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._full(key)}, ExpiresIn=expires_s)

    def check(self) -> None:
        with self._errors("head bucket"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except bex.ClientError as exc:
                if _status(exc) == 404:
                    raise BackendUnavailable(f"storage {self.url}: no bucket {self.bucket!r}") from None
                raise

    # ---------------------------------------------------------------- writing
    def put(self, key: str, source: BinaryIO, *, overwrite: bool = False,
            max_bytes: Optional[int] = None, check: Optional[CheckHook] = None) -> PutResult:
        with tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix=".spool-", suffix=".part") as spool:
            digest, size = _spool_hashing(source, spool, max_bytes)
            if check is not None:
                check(Path(spool.name), digest.hexdigest())
            spool.seek(0)
            return self.put_file(key, spool, digest.digest(), size, overwrite=overwrite)

    def put_file(self, key: str, body: BinaryIO, sha256: bytes, size: int, *,
                 overwrite: bool = False, metadata: Optional[dict[str, str]] = None) -> PutResult:
        """Send an already spooled and hashed file (``sha256``: the raw digest) as one
        conditional ``PutObject``; the upload path spools once, not twice. ``metadata``:
        more ``x-amz-meta-*`` (``migrate`` keeps the original upload time)."""
        full = self._full(key)
        hexdigest = sha256.hex()
        args = {"Bucket": self.bucket, "Key": full, "Body": body, "ContentLength": size,
                "ChecksumSHA256": base64.b64encode(sha256).decode(),
                "Metadata": {**(metadata or {}), SHA256_META: hexdigest}}
        if not overwrite:
            args["IfNoneMatch"] = "*"
        with self._errors("put"):
            try:
                answer = self._client.put_object(**args)
            except bex.ClientError as exc:
                if overwrite or (_code(exc) not in _TAKEN and _status(exc) not in (409, 412)):
                    raise
                if self._stored_sha256(key) != hexdigest:
                    raise FileExists(f"File already exists: {key}") from None
                return PutResult(key, hexdigest, size, created=False)
        return PutResult(key, hexdigest, size, created=True, etag=str(answer.get("ETag", "")).strip('"'))

    def stored_sha256(self, key: str) -> Optional[str]:
        """The sha256 kept as object metadata by :meth:`put` (None: a foreign object)."""
        return self._head(key).get("Metadata", {}).get(SHA256_META) or None

    def _stored_sha256(self, key: str) -> str:
        """The sha256 of what is stored: our metadata, else (a foreign upload) by reading it."""
        try:
            meta = self._head(key).get("Metadata", {}).get(SHA256_META)
        except FileNotFound:  # removed since our put was refused
            return ""
        if meta:
            return meta
        digest = hashlib.sha256()
        with self.open(key) as body:
            while chunk := body.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def delete(self, key: str) -> None:
        with self._errors("delete"):
            self._client.delete_object(Bucket=self.bucket, Key=self._full(key))


def _spool_hashing(source: BinaryIO, spool, max_bytes: Optional[int]):
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(CHUNK):
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise UploadTooLarge(f"file is larger than the limit of {max_bytes} bytes")
        digest.update(chunk)
        spool.write(chunk)
    spool.flush()
    return digest, size
