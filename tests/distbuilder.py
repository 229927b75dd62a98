"""Build real, installable wheels and sdists for tests, in milliseconds.

The archives are what a build backend writes: a wheel with ``<pkg>/__init__.py`` and a
``.dist-info`` (METADATA, WHEEL, RECORD with correct hashes), an sdist ``.tar.gz`` with
``PKG-INFO`` and ``pyproject.toml``. pip, uv and twine accept them.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name


def dist_stem(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def metadata_text(name: str, version: str, requires_dist=(), requires_python=None,
                  summary="A test package", description: str | None = None,
                  description_content_type: str | None = None, extra_headers=()) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", f"Summary: {summary}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {req}" for req in requires_dist]
    if description_content_type:
        lines.append(f"Description-Content-Type: {description_content_type}")
    lines += list(extra_headers)
    text = "\n".join(lines) + "\n"
    if description:
        text += "\n" + description + "\n"
    return text


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(out_dir: Path, name: str, version: str, requires_dist=(), requires_python=None,
               module_source: str | None = None, **meta) -> Path:
    stem = dist_stem(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}-{version}-py3-none-any.whl"
    info = f"{stem}-{version}.dist-info"
    files = {
        f"{stem}/__init__.py": (module_source or f'__version__ = "{version}"\n').encode(),
        f"{info}/METADATA": metadata_text(name, version, requires_dist, requires_python, **meta).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: distbuilder\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(p, d) for p, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in files.items():
            zf.writestr(zipfile.ZipInfo(arcname, (2024, 1, 1, 0, 0, 0)), data)
    return path


def make_sdist(out_dir: Path, name: str, version: str, requires_dist=(), requires_python=None, **meta) -> Path:
    stem = dist_stem(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}-{version}.tar.gz"
    top = f"{stem}-{version}"
    deps = ", ".join(f'"{d}"' for d in requires_dist)
    rp = f'requires-python = "{requires_python}"\n' if requires_python else ""
    files = {
        f"{top}/PKG-INFO": metadata_text(name, version, requires_dist, requires_python, **meta).encode(),
        f"{top}/pyproject.toml": (
            '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [{deps}]\n{rp}'
        ).encode(),
        f"{top}/{stem}/__init__.py": f'__version__ = "{version}"\n'.encode(),
    }
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tf:  # deterministic bytes: golden hashes
            for arcname, data in files.items():
                ti = tarfile.TarInfo(arcname)
                ti.size = len(data)
                ti.mtime = 1704067200
                tf.addfile(ti, io.BytesIO(data))
    return path
