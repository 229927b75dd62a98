"""Issue 10: source-of-truth writes are durable. The stored file, a ``.yanked`` sidecar and
the secret key are fsynced, and so is the directory that holds their new entries.

``os.fsync`` is wrapped (the real call still runs) to see which paths were synced."""
from __future__ import annotations

import os

import pytest

from distbuilder import make_wheel
from pypi_repo import create_app
from pypi_repo.cli import main as manage


@pytest.fixture
def synced(monkeypatch) -> list[str]:
    paths: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return paths


def test_a_stored_file_and_its_directory_entries_are_fsynced(repo_dirs, tmp_path, synced):
    packages = repo_dirs["packages"]
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    assert manage(["--packages-dir", str(packages), "--data-dir", str(repo_dirs["data"]), "add", str(wheel)]) == 0
    project = packages / "demo-pkg"
    assert any(p.startswith(str(project / ".upload-")) for p in synced)  # the bytes, before the link
    assert str(project) in synced  # the new name
    assert str(packages) in synced  # the new project directory


def test_yank_and_unyank_are_fsynced(repo_dirs, tmp_path, synced):
    packages = repo_dirs["packages"]
    base = ["--packages-dir", str(packages), "--data-dir", str(repo_dirs["data"])]
    assert manage([*base, "add", str(make_wheel(tmp_path, "demo-pkg", "1.0"))]) == 0
    synced.clear()
    assert manage([*base, "yank", "demo-pkg", "1.0", "--reason", "broken"]) == 0
    project = packages / "demo-pkg"
    assert any(p.startswith(str(project / ".tmp-")) for p in synced) and str(project) in synced
    assert (project / "demo_pkg-1.0-py3-none-any.whl.yanked").read_text() == "broken"
    synced.clear()
    assert manage([*base, "unyank", "demo-pkg", "1.0"]) == 0
    assert str(project) in synced


def test_the_secret_key_is_written_through_a_synced_temp_file(overrides, repo_dirs, synced):
    create_app(overrides)
    data = repo_dirs["data"]
    assert any(p.startswith(str(data / ".tmp-")) for p in synced) and str(data) in synced
    assert not [p for p in data.iterdir() if p.name.startswith(".tmp-")]
