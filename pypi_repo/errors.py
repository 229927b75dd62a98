"""Domain exceptions. One place (``web/errors.py``) maps them to HTTP status codes."""
from __future__ import annotations

__all__ = [
    "PypiRepoError",
    "ConfigError",
    "InvalidName",
    "InvalidFilename",
    "InvalidDistribution",
    "ProjectNotFound",
    "FileNotFound",
    "FileExists",
    "UnsafePath",
    "StorageFull",
    "DigestMismatch",
    "UploadTooLarge",
    "AuthenticationFailed",
    "PermissionDenied",
    "RateLimited",
    "NotFound",
    "Conflict",
]


class PypiRepoError(Exception):
    """Base of every error this package raises on purpose; the message is for the user."""


class ConfigError(PypiRepoError):
    """A setting is missing, unknown or malformed."""


class InvalidName(PypiRepoError, ValueError):
    """A project name that is not a valid Python project name."""


class InvalidFilename(PypiRepoError, ValueError):
    """A file name that is not a wheel or sdist name (PEP 427 / PEP 625)."""


class InvalidDistribution(PypiRepoError, ValueError):
    """A file whose contents do not match what its name promises."""


class NotFound(PypiRepoError, LookupError):
    """Something asked for does not exist."""


class ProjectNotFound(NotFound):
    """No such project in the index."""


class FileNotFound(NotFound):
    """No such file in the project."""


class Conflict(PypiRepoError):
    """The request conflicts with what is stored."""


class FileExists(Conflict):
    """A different file is already stored under this name."""


class UnsafePath(PypiRepoError, ValueError):
    """A path that would leave the package root."""


class StorageFull(PypiRepoError, OSError):
    """The disk has no room for the write."""


class DigestMismatch(InvalidDistribution):
    """The bytes received do not match the digest the client sent."""


class UploadTooLarge(PypiRepoError):
    """An upload over the configured size limit."""


class AuthenticationFailed(PypiRepoError):
    """Missing or wrong credentials."""


class PermissionDenied(PypiRepoError):
    """Valid credentials, but not allowed to do this."""


class RateLimited(PypiRepoError):
    """Too many failed attempts from one client."""
