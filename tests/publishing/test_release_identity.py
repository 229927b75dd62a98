"""Issue 10: one release file, one set of bytes. Uniqueness is decided on the parsed identity
(normalized name, PEP 440 version, a wheel's build tag and tag set; one sdist per version),
and uploads must use the canonical spelling (binary distribution format spec, PEP 625), as
Warehouse's upload checks do."""
from __future__ import annotations

import shutil

import pytest
from pubhelpers import PASSWORDS, basic, make_users, snapshot, upload_form

from distbuilder import make_sdist, make_wheel
from pypi_repo.cli import main as manage

ALICE = basic("alice", PASSWORDS["alice"])
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


@pytest.fixture
def users(overrides):
    return make_users(overrides)


def _renamed(path, filename):
    target = path.with_name(filename)
    path.rename(target)
    return target


def _files(client, project="proj-a"):
    doc = client.get(f"/simple/{project}/", headers=JSON).get_json()
    return [f["filename"] for f in doc["files"]], doc["versions"]


@pytest.mark.parametrize("filename, version, status, hint", [
    ("proj_a-1.0-py3-none-any.whl", "1.0", 409, "proj_a-1.0.0-py3-none-any.whl"),
    ("proj_a-1.0.0.0-py3-none-any.whl", "1.0.0.0", 409, "proj_a-1.0.0-py3-none-any.whl"),
    ("proj_a-v1.0.0-py3-none-any.whl", "1.0.0", 400, "should be 'proj_a-1.0.0-py3-none-any.whl'"),
    ("Proj_A-1.0.0-py3-none-any.whl", "1.0.0", 400, "should be 'proj_a-1.0.0-py3-none-any.whl'"),
    ("proj.a-1.0.0-py3-none-any.whl", "1.0.0", 400, "should be 'proj_a-1.0.0-py3-none-any.whl'"),
    ("proj_a-1.0.0-PY3-none-any.whl", "1.0.0", 400, "should be 'proj_a-1.0.0-py3-none-any.whl'"),
])
def test_another_spelling_of_a_published_wheel_is_refused(client, users, packages, tmp_path,
                                                         filename, version, status, hint):
    first = make_wheel(tmp_path / "one", "proj-a", "1.0.0")
    assert client.post("/legacy/", data=upload_form(first), headers=ALICE).status_code == 200
    before = snapshot(packages)
    other = _renamed(make_wheel(tmp_path / "two", "proj-a", version, summary="other bytes"), filename)
    resp = client.post("/legacy/", data=upload_form(other), headers=ALICE)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert hint in resp.get_data(as_text=True)
    assert snapshot(packages) == before
    assert _files(client) == (["proj_a-1.0.0-py3-none-any.whl"], ["1.0.0"])


@pytest.mark.parametrize("filename, version", [
    ("proj_a-1.0.0+0-py3-none-any.whl", "1.0.0+0"),
    ("proj_a-1.0.0+local.7.tar.gz", "1.0.0+local.7"),
])
def test_a_local_version_cannot_shadow_a_pinned_release(client, users, packages, tmp_path, filename, version):
    """pip's ``proj-a==1.0.0`` matches ``1.0.0+0`` (PEP 440 ignores the local label) and prefers
    it, so accepting it would change the bytes a pin installs. Refused, as Warehouse does."""
    first = make_wheel(tmp_path / "one", "proj-a", "1.0.0")
    assert client.post("/legacy/", data=upload_form(first), headers=ALICE).status_code == 200
    before = snapshot(packages)
    build = make_sdist if filename.endswith(".tar.gz") else make_wheel
    other = _renamed(build(tmp_path / "two", "proj-a", version), filename)
    resp = client.post("/legacy/", data=upload_form(other), headers=ALICE)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert "local version" in resp.get_data(as_text=True)
    assert snapshot(packages) == before
    assert _files(client) == (["proj_a-1.0.0-py3-none-any.whl"], ["1.0.0"])


def test_a_second_sdist_of_a_release_is_refused_in_any_spelling(client, users, packages, tmp_path):
    sdist = make_sdist(tmp_path / "one", "proj-a", "1.0.0")
    assert sdist.name == "proj_a-1.0.0.tar.gz"
    assert client.post("/legacy/", data=upload_form(sdist), headers=ALICE).status_code == 200
    before = snapshot(packages)
    dashed = _renamed(make_sdist(tmp_path / "two", "proj-a", "1.0.0", summary="x"), "proj-a-1.0.0.tar.gz")
    resp = client.post("/legacy/", data=upload_form(dashed), headers=ALICE)
    assert resp.status_code == 400 and "should be 'proj_a-1.0.0.tar.gz'" in resp.get_data(as_text=True)
    short = make_sdist(tmp_path / "three", "proj-a", "1.0", summary="y")
    resp = client.post("/legacy/", data=upload_form(short), headers=ALICE)
    assert resp.status_code == 409 and "only one sdist" in resp.get_data(as_text=True)
    assert snapshot(packages) == before


def test_other_tags_or_a_build_tag_are_new_release_files(client, users, tmp_path):
    first = make_wheel(tmp_path / "one", "proj-a", "1.0.0")
    assert client.post("/legacy/", data=upload_form(first), headers=ALICE).status_code == 200
    for name in ("proj_a-1.0.0-1-py3-none-any.whl", "proj_a-1.0.0-py2.py3-none-any.whl"):
        wheel = _renamed(make_wheel(tmp_path / name, "proj-a", "1.0.0", summary=name), name)
        assert client.post("/legacy/", data=upload_form(wheel), headers=ALICE).status_code == 200
    assert len(_files(client)[0]) == 3


def test_a_hand_copied_second_spelling_is_served_once_and_reported(client, packages, tmp_path, overrides,
                                                                   capsys):
    project = packages / "proj-a"
    make_wheel(project, "proj-a", "1.0.0")
    odd = _renamed(make_wheel(tmp_path, "proj-a", "1.0", summary="odd"), "Proj_A-1.0-py3-none-any.whl")
    shutil.copy(odd, project / odd.name)
    make_sdist(project, "proj-a", "1.0.0")
    shutil.copy(make_sdist(tmp_path / "s", "proj-a", "1.0.0", summary="dup"), project / "proj-a-1.0.0.tar.gz")
    assert _files(client) == (["proj_a-1.0.0-py3-none-any.whl", "proj_a-1.0.0.tar.gz"], ["1.0.0"])
    code = manage(["--packages-dir", str(packages), "--data-dir", overrides["data_dir"], "verify"])
    out = capsys.readouterr().out
    assert code == 1
    assert "Proj_A-1.0-py3-none-any.whl: same release file as proj_a-1.0.0-py3-none-any.whl" in out
    assert "proj-a-1.0.0.tar.gz: same release file as proj_a-1.0.0.tar.gz" in out


def test_a_lone_odd_spelling_copied_by_hand_is_still_served(client, packages, tmp_path):
    odd = _renamed(make_wheel(packages / "proj-a", "proj-a", "1.0"), "Proj.A-1.0-py3-none-any.whl")
    assert _files(client) == ([odd.name], ["1.0"])
    assert client.get(f"/packages/proj-a/{odd.name}").status_code == 200


@pytest.mark.parametrize("filename", [
    "x-1.0.0-py3-none-any<img src=x>.whl",
    'x-1.0.0-py3-none-x"; filename=evil.exe.whl',
    "x-1.0.0-py3-none-any .whl",
    "x-1.0.0-py3-non\u00e9-any.whl",
])
def test_wheel_tags_outside_the_tag_alphabet_are_refused(client, users, packages, tmp_path, filename):
    wheel = make_wheel(tmp_path, "x", "1.0.0")
    resp = client.post("/legacy/", data=upload_form(wheel, filename), headers=ALICE)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert snapshot(packages) == {}


def test_a_hand_copied_file_with_a_bad_tag_is_not_served(client, packages, tmp_path):
    project = packages / "x"
    make_wheel(project, "x", "1.0.0")
    shutil.copy(project / "x-1.0.0-py3-none-any.whl", project / 'x-1.0.0-py3-none-x"; filename=evil.exe.whl')
    assert _files(client, "x")[0] == ["x-1.0.0-py3-none-any.whl"]
    assert client.get('/packages/x/x-1.0.0-py3-none-x"; filename=evil.exe.whl').status_code == 404


@pytest.mark.parametrize("filename, why", [
    ("proj_a-1.0.zip", "PEP 625"), ("proj_a-1.0-py3.11.egg", "PEP 527"), ("proj_a-1.0.tar.bz2", "PEP 527"),
    ("proj_a-1.0.tgz", "PEP 527"), ("proj_a-1.0.win32.exe", "PEP 527"),
])
def test_formats_pypi_refuses_are_refused_at_upload(client, users, packages, tmp_path, filename, why):
    wheel = make_wheel(tmp_path, "proj-a", "1.0")
    resp = client.post("/legacy/", data=upload_form(wheel, filename, name="proj-a", version="1.0"), headers=ALICE)
    assert resp.status_code == 400 and why in resp.get_data(as_text=True)
    assert snapshot(packages) == {}
