"""Issue 10 review: odd entries an operator (or a mistake) leaves in the package root.

A project directory that is a symlink leaving the root took uploads outside it (answered
200, never served); a symlink loop in the root made every request a 500, and a plain file or
a dangling symlink with a project's name made its first upload a 500."""
from __future__ import annotations

import os

import pytest
from pubhelpers import PASSWORDS, basic, make_users, upload_form

from distbuilder import make_wheel

ALICE = basic("alice", PASSWORDS["alice"])


def _entries(root) -> dict:
    """Every entry under ``root`` without following symlinks (a dangling one included)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out[path] = os.readlink(path) if os.path.islink(path) else os.lstat(path).st_size
    return out


def _plant(packages, outside, kind: str) -> None:
    entry = packages / "newproj"
    if kind == "symlink outside":
        os.symlink(outside, entry)
    elif kind == "dangling symlink":
        os.symlink(outside / "gone", entry)
    else:
        entry.write_text("not a directory\n")


@pytest.mark.parametrize("kind", ["symlink outside", "dangling symlink", "plain file"])
def test_an_upload_never_goes_through_a_root_entry_that_is_not_a_project_dir(
        client, overrides, packages, tmp_path, kind):
    make_users(overrides)
    outside = tmp_path / "outside"
    outside.mkdir()
    _plant(packages, outside, kind)
    before = _entries(packages)
    wheel = make_wheel(tmp_path / "dist", "newproj", "1.0")
    resp = client.post("/legacy/", data=upload_form(wheel), headers=ALICE)
    assert resp.status_code == 409, resp.get_data(as_text=True)
    assert "not a project directory" in resp.get_data(as_text=True)
    assert list(outside.iterdir()) == []
    assert _entries(packages) == before


def test_a_symlink_loop_in_the_root_is_skipped_not_a_500(client, packages, tmp_path):
    make_wheel(packages / "foo", "foo", "1.0")
    os.symlink("loop", packages / "loop")
    os.symlink(tmp_path / "gone", packages / "dangling")
    os.symlink("self.whl", packages / "foo" / "foo-2.0-py3-none-any.whl")  # a loop inside a project
    for url in ("/simple/", "/simple/foo/", "/projects/", "/project/foo/", "/stats", "/"):
        assert client.get(url).status_code == 200, url
    assert client.get("/simple/loop/").status_code == 404
    assert client.get("/packages/foo/foo-2.0-py3-none-any.whl").status_code == 404
