"""Issue 10: what the tree serves is one rule, applied alike by the pages (PEP 700
``versions`` too), the files, PEP 658 metadata, ``/stats`` and ``manage_repo.py verify``:
another project's file, a legacy format or a symlink leaving the package root is skipped
(with a log line) and reported, never served."""
from __future__ import annotations

import logging
import os
import shutil

import pytest
from werkzeug.http import parse_options_header

from distbuilder import make_sdist, make_wheel
from pypi_repo.cli import main as manage
from pypi_repo.web.files import content_disposition

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def _page(client, project):
    resp = client.get(f"/simple/{project}/", headers=JSON)
    if resp.status_code != 200:
        return resp.status_code, [], []
    doc = resp.get_json()
    return 200, [f["filename"] for f in doc["files"]], doc["versions"]


def _verify(packages, data_dir, capsys) -> str:
    manage(["--packages-dir", str(packages), "--data-dir", str(data_dir), "verify"])
    return capsys.readouterr().out


def test_a_file_in_another_projects_directory_is_not_served(client, packages, repo_dirs, capsys, caplog):
    make_wheel(packages / "foo", "foo", "1.0")
    stray = make_wheel(packages / "foo", "bar", "9.9")
    with caplog.at_level(logging.WARNING, "pypi_repo.storage"):
        assert _page(client, "foo") == (200, ["foo-1.0-py3-none-any.whl"], ["1.0"])
    assert "belongs to project bar" in caplog.text
    assert client.get(f"/packages/foo/{stray.name}").status_code == 404
    assert client.get("/stats").get_json()["files"] == 1
    assert f"{stray}: belongs to project bar, not foo" in _verify(packages, repo_dirs["data"], capsys)


def test_legacy_formats_are_skipped_alike_everywhere_and_zip_sdists_served(client, packages, repo_dirs,
                                                                          capsys, caplog, tmp_path):
    project = packages / "old"
    sdist = make_sdist(tmp_path, "old", "1.0")
    project.mkdir()
    for name in ("old-1.0.tar.bz2", "old-1.0.tgz", "old-1.0-py2.7.egg", "old-1.0.win32.exe"):
        shutil.copy(sdist, project / name)
    zipped = tmp_path / "old-2.0.zip"
    shutil.make_archive(str(zipped.with_suffix("")), "zip", root_dir=_sdist_tree(tmp_path, "old", "2.0"))
    shutil.copy(zipped, project / zipped.name)
    with caplog.at_level(logging.WARNING, "pypi_repo.storage"):
        assert _page(client, "old") == (200, ["old-2.0.zip"], ["2.0"])
    assert "old-1.0.tar.bz2: legacy .tar.bz2 format, not served (PEP 527)" in caplog.text
    stats = client.get("/stats").get_json()
    assert (stats["files"], stats["sdists"], stats["wheels"]) == (1, 1, 0)
    assert client.get("/packages/old/old-2.0.zip").status_code == 200
    assert client.get("/packages/old/old-1.0.tgz").status_code == 404
    report = _verify(packages, repo_dirs["data"], capsys)
    for name, legacy in (("old-1.0.tar.bz2", ".tar.bz2"), ("old-1.0.tgz", ".tgz"), ("old-1.0-py2.7.egg", ".egg")):
        assert f"{project / name}: legacy {legacy} format" in report


def _sdist_tree(base, name, version):
    top = base / "tree" / f"{name}-{version}"
    top.mkdir(parents=True)
    (top / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return top.parent


@pytest.fixture
def outside(tmp_path):
    secret = tmp_path / "outside"
    secret.mkdir()
    make_sdist(secret, "evil", "1.0")
    make_wheel(secret, "foo", "6.6")
    return secret


def test_symlinks_leaving_the_package_root_are_never_followed(client, packages, repo_dirs, outside, capsys):
    os.symlink(outside, packages / "evil")
    make_wheel(packages / "foo", "foo", "1.0")
    os.symlink(outside / "foo-6.6-py3-none-any.whl", packages / "foo" / "foo-6.6-py3-none-any.whl")
    assert client.get("/simple/evil/").status_code == 404
    assert "evil" not in client.get("/simple/", headers=JSON).get_data(as_text=True)
    assert client.get("/packages/evil/evil-1.0.tar.gz").status_code == 404
    assert _page(client, "foo") == (200, ["foo-1.0-py3-none-any.whl"], ["1.0"])
    assert client.get("/packages/foo/foo-6.6-py3-none-any.whl").status_code == 404
    assert client.get("/packages/foo/foo-6.6-py3-none-any.whl.metadata").status_code == 404
    stats = client.get("/stats").get_json()
    assert (stats["projects"], stats["files"]) == (1, 1)
    report = _verify(packages, repo_dirs["data"], capsys)
    assert "evil: symlink to a directory outside the package root" in report
    assert "foo-6.6-py3-none-any.whl: symlink to a path outside the package root" in report


def test_a_yank_sidecar_symlinked_outside_the_root_is_never_read(client, packages, repo_dirs, outside, capsys):
    """The ``.yanked`` sidecar is read too: a symlink to a secret outside the root was served
    as the yank reason (PEP 592 ``data-yanked``, the JSON ``yanked``, the project page)."""
    secret = outside / "secret.txt"
    secret.write_text("root:x:0:0:TOPSECRET\n")
    wheel = make_wheel(packages / "foo", "foo", "1.0")
    os.symlink(secret, packages / "foo" / (wheel.name + ".yanked"))
    doc = client.get("/simple/foo/", headers=JSON).get_json()
    assert doc["files"][0]["yanked"] is True  # still yanked: the marker is there
    for url in ("/simple/foo/", "/project/foo/", "/project/foo/1.0/"):
        assert "TOPSECRET" not in client.get(url).get_data(as_text=True), url
    assert "yank sidecar is a symlink outside the package root" in _verify(packages, repo_dirs["data"], capsys)


def test_a_symlink_within_the_package_root_is_served(client, packages, tmp_path):
    store = packages / ".shared"
    wheel = make_wheel(store, "foo", "1.0")
    (packages / "foo").mkdir()
    os.symlink(wheel, packages / "foo" / wheel.name)
    assert _page(client, "foo") == (200, [wheel.name], ["1.0"])
    assert client.get(f"/packages/foo/{wheel.name}").data == wheel.read_bytes()


@pytest.mark.parametrize("filename", [
    'x-1.0.0-py3-none-x"; filename=evil.exe.whl', "caf\u00e9-1.0.tar.gz", "a\\b;c=d.whl", "plain-1.0.tar.gz",
])
def test_content_disposition_is_encoded_not_formatted(filename):
    value, params = parse_options_header(content_disposition(filename))
    assert value == "attachment"
    assert params["filename"] == filename or "filename*" in content_disposition(filename)
    assert set(params) == {"filename"}  # werkzeug folds filename* into filename: one name, no injection


def test_downloads_carry_an_rfc6266_header(client, add_dist):
    wheel = add_dist("payo-cli", "1.0.0")
    resp = client.get(f"/packages/payo-cli/{wheel.name}")
    assert parse_options_header(resp.headers["Content-Disposition"]) == ("attachment", {"filename": wheel.name})
