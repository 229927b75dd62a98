"""A wheel of a few hundred MB uploads through twine without the worker holding it in
memory (issue 4: "never the whole file in memory; large wheels must work")."""
from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path

import psutil
import pytest
from pubhelpers import PASSWORDS, make_users

from conftest import run, start_server
from distbuilder import metadata_text

pytestmark = pytest.mark.e2e

SIZE_MB = 200


def big_wheel(out_dir: Path, size_mb: int) -> Path:
    """A valid wheel with one incompressible member, written in chunks (the test stays small too)."""
    path = out_dir / "huge_pkg-1.0-py3-none-any.whl"
    info = "huge_pkg-1.0.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("huge_pkg/__init__.py", "")
        with zf.open("huge_pkg/blob.bin", "w", force_zip64=True) as fh:
            for _ in range(size_mb):
                fh.write(os.urandom(1024 * 1024))
        zf.writestr(f"{info}/METADATA", metadata_text("huge-pkg", "1.0"))
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_large_wheel_upload_streams(repo_dirs, tmp_path):
    make_users({"packages_dir": str(repo_dirs["packages"]), "data_dir": str(repo_dirs["data"]),
                "logs_dir": str(repo_dirs["logs"]), "argon2_time_cost": 1, "argon2_memory_kib": 8})
    wheel = big_wheel(tmp_path, SIZE_MB)
    live = start_server(repo_dirs, {"PYPI_REPO_MAX_UPLOAD_MB": str(SIZE_MB + 50)}, workers=1)
    try:
        live.get("/simple/")  # the worker has imported everything it will
        before = {c.pid: peak_rss_mb(c.pid) for c in psutil.Process(live.proc.pid).children()}
        run([sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
             "--repository-url", live.url + "/legacy/", "-u", "alice", "-p", PASSWORDS["alice"], str(wheel)],
            timeout=120)
        workers = [c.pid for c in psutil.Process(live.proc.pid).children() if c.pid in before]
        assert workers, "the worker was replaced during the upload"
        growth = max(peak_rss_mb(pid) - before[pid] for pid in workers)
        stored = repo_dirs["packages"] / "huge-pkg" / wheel.name
        assert stored.stat().st_size == wheel.stat().st_size
        assert growth < 48, f"worker peak RSS grew by {growth:.0f} MB for a {SIZE_MB} MB upload"
        with open(stored, "rb") as a, open(wheel, "rb") as b:
            assert hashlib.file_digest(a, "sha256").digest() == hashlib.file_digest(b, "sha256").digest()
        assert not list((repo_dirs["data"] / "tmp").iterdir())  # the spooled copy is gone
    finally:
        live.stop()
