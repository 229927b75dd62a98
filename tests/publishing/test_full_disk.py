"""A full disk: the upload is refused with a clear 507, nothing is left behind, /health says so.

The package tree lives on a real 1 MiB tmpfs (the tests run as root, like CI here).
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
from diskfull import fill_disk, mounted_tmpfs
from pubhelpers import PASSWORDS, basic, make_users, snapshot, upload_form

from distbuilder import make_wheel
from pypi_repo import create_app
from pypi_repo.cli import main as manage
from pypi_repo.downloads import DownloadRecorder, database


@pytest.fixture
def small_disk(tmp_path):
    with mounted_tmpfs(tmp_path / "small", "1m") as mount_point:
        yield mount_point


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


def _fill(directory: Path) -> None:
    fill_disk(directory)
    assert os.statvfs(directory).f_bavail == 0


@pytest.fixture
def served_tree(overrides, tmp_path):
    """A tree with one project, indexed, its users in the database."""
    make_users(overrides)
    wheel = make_wheel(tmp_path / "src", "demo-pkg", "1.0")
    manage(["--packages-dir", overrides["packages_dir"], "--data-dir", overrides["data_dir"], "add", str(wheel)])
    return wheel


def _reads_work(client, wheel) -> None:
    for path in ("/simple/", "/simple/demo-pkg/", f"/packages/demo-pkg/{wheel.name}",
                 f"/packages/demo-pkg/{wheel.name}.metadata", "/stats"):
        for accept in ("text/html", "application/vnd.pypi.simple.v1+json"):
            resp = client.get(path, headers={"Accept": accept})
            assert resp.status_code == 200, (path, resp.status_code, resp.get_data(as_text=True)[:300])
    assert client.get(f"/packages/demo-pkg/{wheel.name}").data == wheel.read_bytes()


def test_a_full_data_disk_keeps_reads_working_and_refuses_uploads_with_507(small_disk, overrides, served_tree,
                                                                          tmp_path):
    data = small_disk / "data"
    shutil.copytree(overrides["data_dir"], data)
    settings = {**overrides, "data_dir": str(data), "min_free_disk_mb": 0}
    for leftover in ("index", "metadata", "pages"):  # derived state must be re-derivable, or skipped
        shutil.rmtree(data / leftover, ignore_errors=True)
    client = create_app(settings).test_client()
    _fill(small_disk)
    _reads_work(client, served_tree)
    packages = Path(overrides["packages_dir"])
    before = snapshot(packages)
    second = make_wheel(tmp_path / "v2", "demo-pkg", "2.0")
    resp = client.post("/legacy/", data=upload_form(second), headers=basic("carol", PASSWORDS["carol"]),
                       content_type="multipart/form-data")
    assert resp.status_code == 507, resp.get_data(as_text=True)
    assert snapshot(packages) == before


def test_the_cli_add_on_a_full_data_disk_stores_no_file_without_its_audit_record(small_disk, overrides,
                                                                                served_tree, tmp_path, capsys):
    data = small_disk / "data"
    shutil.copytree(overrides["data_dir"], data)
    _fill(small_disk)
    packages = Path(overrides["packages_dir"])
    before = snapshot(packages)
    second = make_wheel(tmp_path / "v2", "demo-pkg", "2.0")
    code = manage(["--packages-dir", str(packages), "--data-dir", str(data), "add", str(second)])
    assert code == 1
    assert "disk space" in capsys.readouterr().err
    assert snapshot(packages) == before  # before the fix: stored, then the audit insert failed


def test_a_full_packages_disk_keeps_reads_working(small_disk, overrides, tmp_path):
    packages = small_disk / "packages"
    packages.mkdir()
    wheel = make_wheel(packages / "demo-pkg", "demo-pkg", "1.0")
    client = create_app({**overrides, "packages_dir": str(packages), "min_free_disk_mb": 0}).test_client()
    _fill(small_disk)
    _reads_work(client, wheel)


def test_download_counts_on_a_full_data_disk_log_one_error_and_are_written_once_there_is_room(small_disk,
                                                                                              caplog):
    """Every worker flushes each second: on a full data disk that was one traceback per
    second per worker in error.log. Now one error, quiet retries, the counts kept."""
    db = database(small_disk / "db.sqlite3")
    recorder = DownloadRecorder(db, flush_seconds=3600, clock=lambda: "2024-05-01")
    _fill(small_disk)
    with caplog.at_level(logging.DEBUG, logger="pypi_repo.downloads"):
        for attempt in range(3):
            for n in range(50):
                recorder.record("demo", f"demo-{attempt}.{n}-py3-none-any.whl", "pip")
            assert recorder.flush() == 0
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        (small_disk / "filler").unlink()
        assert recorder.flush() == 150
    assert "download counts written again" in caplog.text
    assert db.query("SELECT SUM(count) FROM download_counts")[0][0] == 150
