"""Issue 9: a project exists once it has a stored file; its first uploader or the owner the
operator names (``--owner``) may upload; a 403 says which command grants the right.
Issue 10: one upload limit, in bytes; the secret key survives a crash while it was written."""
from __future__ import annotations

import logging
import os
import time

import pytest
from pubhelpers import PASSWORDS, basic, make_users, snapshot, upload_form

from distbuilder import make_wheel
from pypi_repo import create_app
from pypi_repo.cli import main as manage

ALICE = basic("alice", PASSWORDS["alice"])
BOB = basic("bob", PASSWORDS["bob"])
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


@pytest.fixture
def users(overrides):
    return make_users(overrides)


def _listed(client) -> list[str]:
    return [p["name"] for p in client.get("/simple/", headers=JSON).get_json()["projects"]]


def test_a_directory_without_a_stored_file_is_no_project(client, users, packages, tmp_path):
    (packages / "newproj").mkdir()
    (packages / "newproj" / ".upload-x1y2.part").write_bytes(b"half an upload")
    (packages / "empty").mkdir()
    assert _listed(client) == []
    assert client.get("/simple/newproj/").status_code == 404
    assert client.get("/stats").get_json()["projects"] == 0
    wheel = make_wheel(tmp_path, "newproj", "1.0")
    assert client.post("/legacy/", data=upload_form(wheel), headers=ALICE).status_code == 200  # not 403
    assert _listed(client) == ["newproj"]
    assert users.project_roles("newproj") == [("alice", "owner")]


def test_a_file_copied_into_an_empty_directory_is_listed_at_once(client, packages):
    (packages / "later").mkdir()
    assert _listed(client) == []
    make_wheel(packages / "later", "later", "1.0")
    assert _listed(client) == ["later"]


def test_stale_temp_files_are_removed_before_the_next_upload(client, users, packages, tmp_path):
    project = packages / "newproj"
    project.mkdir()
    stale, fresh = project / ".upload-old.part", project / ".upload-new.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (time.time() - 3600,) * 2)
    wheel = make_wheel(tmp_path, "newproj", "1.0")
    assert client.post("/legacy/", data=upload_form(wheel), headers=ALICE).status_code == 200
    assert not stale.exists() and fresh.exists()


def _cli(packages, data_dir, *argv):
    return manage(["--packages-dir", str(packages), "--data-dir", str(data_dir), *argv])


def test_the_403_for_an_ownerless_project_names_the_grant_command(client, users, packages, repo_dirs, tmp_path):
    assert _cli(packages, repo_dirs["data"], "add", str(make_wheel(tmp_path / "a", "demo-pkg", "1.0"))) == 0
    resp = client.post("/legacy/", data=upload_form(make_wheel(tmp_path / "b", "demo-pkg", "2.0")), headers=ALICE)
    assert resp.status_code == 403
    assert "python3 manage_repo.py user grant alice demo-pkg" in resp.get_data(as_text=True)
    assert _cli(packages, repo_dirs["data"], "user", "grant", "alice", "demo-pkg") == 0
    resp = client.post("/legacy/", data=upload_form(make_wheel(tmp_path / "b", "demo-pkg", "2.0")), headers=ALICE)
    assert resp.status_code == 200


@pytest.mark.parametrize("form", ["add", "seed"])
def test_owner_named_when_adding_may_upload_at_once(client, users, packages, repo_dirs, tmp_path, monkeypatch, form):
    make_wheel(tmp_path / "dist", "demo-pkg", "1.0")
    monkeypatch.chdir(tmp_path)
    argv = ["add", "dist", "--owner", "alice"] if form == "add" else ["demo-pkg", "--owner", "alice"]
    assert _cli(packages, repo_dirs["data"], *argv) == 0
    assert users.project_roles("demo-pkg") == [("alice", "owner")]
    second = make_wheel(tmp_path / "v2", "demo-pkg", "2.0")
    assert client.post("/legacy/", data=upload_form(second), headers=ALICE).status_code == 200
    assert client.post("/legacy/", data=upload_form(make_wheel(tmp_path / "v3", "demo-pkg", "3.0")),
                       headers=BOB).status_code == 403


def test_an_unknown_owner_adds_nothing(users, packages, repo_dirs, tmp_path, capsys):
    assert _cli(packages, repo_dirs["data"], "add", str(make_wheel(tmp_path, "demo-pkg", "1.0")),
                "--owner", "mallory") == 1
    assert "no user named 'mallory'" in capsys.readouterr().err
    assert snapshot(packages) == {}


def test_one_upload_limit_a_long_description_fits(overrides, tmp_path):
    settings = {**overrides, "max_upload_mb": 1}
    make_users(settings)
    client = create_app(settings).test_client()
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    form = upload_form(wheel, description="d" * (2 * 1024 * 1024))
    resp = client.post("/legacy/", data=form, headers=ALICE)
    assert resp.status_code == 200, resp.get_data(as_text=True)


@pytest.mark.parametrize("content", [b"", b"\n", b"\x00" * 64])
def test_an_empty_or_corrupt_secret_key_is_replaced_not_fatal(overrides, repo_dirs, content):
    key_file = repo_dirs["data"] / "secret_key"
    key_file.write_bytes(content)
    app = create_app(overrides)
    key = key_file.read_bytes()
    assert len(key) == 64 and app.secret_key == key
    for handler in logging.getLogger("pypi_repo").handlers:
        handler.flush()
    assert "empty or corrupt" in (repo_dirs["logs"] / "pypi_repo.log").read_text()
    assert create_app(overrides).secret_key == key  # the next worker reads the same key
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_verify_fixes_what_a_killed_upload_left_and_spares_lost_and_found(packages, repo_dirs, capsys):
    (packages / "newproj").mkdir()
    part = packages / "newproj" / ".upload-abc.part"
    part.write_bytes(b"half")
    os.utime(part, (time.time() - 3600,) * 2)
    (packages / "lost+found").mkdir()
    assert _cli(packages, repo_dirs["data"], "verify", "--fix") == 0
    assert "fixed: leftover temp file" in capsys.readouterr().out
    assert not part.exists() and (packages / "lost+found").is_dir()
