"""Helpers for publishing tests: users in the real database, tree snapshots, upload forms."""
from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

from pypi_repo.auth import AuthService
from pypi_repo.config import load_settings
from pypi_repo.distfiles import parse_distribution_filename

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "carol": "carol-secret-333"}


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (hidden ones too) with the sha256 of its bytes: 'dir' for dirs."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        result[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def upload_form(path_or_bytes, filename: str | None = None, **fields) -> dict:
    """The multipart form twine sends, for the Flask test client."""
    if isinstance(path_or_bytes, Path):
        data = path_or_bytes.read_bytes()
        filename = filename or path_or_bytes.name
    else:
        data = path_or_bytes
    form = {
        ":action": "file_upload",
        "protocol_version": "1",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        "md5_digest": hashlib.md5(data).hexdigest(),
        "content": (io.BytesIO(data), filename),
    }
    try:
        dist = parse_distribution_filename(filename)
        form.update(name=dist.name, version=str(dist.version))
    except ValueError:
        pass
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


def make_users(overrides: dict) -> AuthService:
    """alice and bob may upload to new projects and their own; carol to every project."""
    auth = AuthService(load_settings(overrides))
    auth.add_user("alice", PASSWORDS["alice"])
    auth.add_user("bob", PASSWORDS["bob"])
    auth.add_user("carol", PASSWORDS["carol"], all_projects=True)
    return auth


