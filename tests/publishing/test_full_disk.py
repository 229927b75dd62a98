"""A full disk: the upload is refused with a clear 507, nothing is left behind, /health says so.

The package tree lives on a real 1 MiB tmpfs (the tests run as root, like CI here).
"""
from __future__ import annotations

import os
import subprocess

import pytest
from pubhelpers import PASSWORDS, basic, make_users, snapshot, upload_form

from distbuilder import make_wheel
from pypi_repo import create_app
from pypi_repo.cli import main as manage


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True, timeout=30)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True, timeout=30)


def _big_wheel(tmp_path):
    # incompressible module source: the wheel is bigger than the whole 1 MiB disk
    source = "DATA = " + repr(os.urandom(1200 * 1024).hex()) + "\n"
    return make_wheel(tmp_path / "dist", "big-one", "1.0", module_source=source)


def test_upload_to_a_full_disk_is_507_and_changes_nothing(small_disk, overrides, tmp_path):
    settings = {**overrides, "packages_dir": str(small_disk), "min_free_disk_mb": 0}
    make_users(settings)
    client = create_app(settings).test_client()
    before = snapshot(small_disk)
    wheel = _big_wheel(tmp_path)
    resp = client.post("/legacy/", data=upload_form(wheel), headers=basic("alice", PASSWORDS["alice"]),
                       content_type="multipart/form-data")
    assert resp.status_code == 507, resp.get_data(as_text=True)
    assert "disk space" in resp.get_data(as_text=True)
    assert snapshot(small_disk) == before  # no partial file, no temp file, no empty project dir


def test_manage_repo_add_on_a_full_disk_fails_clearly(small_disk, overrides, tmp_path, capsys):
    wheel = _big_wheel(tmp_path)
    code = manage(["--packages-dir", str(small_disk), "--data-dir", overrides["data_dir"], "add", str(wheel)])
    assert code == 1
    assert "disk space" in capsys.readouterr().err
    assert snapshot(small_disk) == {}


def test_health_reports_a_disk_below_the_threshold(small_disk, overrides):
    client = create_app({**overrides, "packages_dir": str(small_disk), "min_free_disk_mb": 2}).test_client()
    resp = client.get("/health")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["disk"]["ok"] is False
