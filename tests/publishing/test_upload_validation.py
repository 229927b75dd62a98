"""The upload API in-process: every bad upload is refused with the right code and leaves
the package tree byte-for-byte unchanged (issue 4: today's pypiserver stores corrupt and
mismatched uploads and ignores the digests it is sent)."""
from __future__ import annotations

import io
import tarfile

import pytest
from pubhelpers import PASSWORDS, basic, make_users, snapshot, upload_form

from distbuilder import make_sdist, make_wheel
from pypi_repo.auth import AuthService

ALICE = basic("alice", PASSWORDS["alice"])


@pytest.fixture
def users(overrides) -> AuthService:
    """alice, bob (new projects and their own) and carol (every project) in the app's database."""
    return make_users(overrides)


@pytest.fixture
def good_wheel(tmp_path):
    return make_wheel(tmp_path / "dist", "demo-pkg", "1.0")


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _corrupt(data: bytes) -> bytes:
    return b"PK\x03\x04" + b"\x00" * 50 + data[60:]


def _other_name_inside(tmp_path) -> bytes:
    return make_wheel(tmp_path / "other", "other-pkg", "1.0").read_bytes()


BAD_UPLOADS = [
    # (case, how to build the form from the good wheel's bytes, expected status, words in reason)
    ("corrupt zip", lambda d, t: upload_form(_corrupt(d), "demo_pkg-1.0-py3-none-any.whl"), 400, "not a valid archive"),
    ("truncated file", lambda d, t: upload_form(_truncated(d), "demo_pkg-1.0-py3-none-any.whl"), 400, "wheel"),
    ("form name differs", lambda d, t: upload_form(d, "demo_pkg-1.0-py3-none-any.whl", name="other"), 400,
     "form says project"),
    ("form version differs", lambda d, t: upload_form(d, "demo_pkg-1.0-py3-none-any.whl", version="2.0"), 400,
     "form says version"),
    ("archive of another project", lambda d, t: upload_form(_other_name_inside(t), "demo_pkg-1.0-py3-none-any.whl"),
     400, "dist-info"),
    ("wrong sha256", lambda d, t: upload_form(d, "demo_pkg-1.0-py3-none-any.whl", sha256_digest="0" * 64), 400,
     "sha256 digest"),
    ("wrong blake2", lambda d, t: upload_form(d, "demo_pkg-1.0-py3-none-any.whl", blake2_256_digest="1" * 64), 400,
     "blake2_256 digest"),
    ("wrong md5", lambda d, t: upload_form(d, "demo_pkg-1.0-py3-none-any.whl", md5_digest="2" * 32), 400,
     "md5 digest"),
    ("dot-dot path", lambda d, t: upload_form(d, "../demo_pkg-1.0-py3-none-any.whl", name="demo-pkg", version="1.0"),
     400, "plain name"),
    ("absolute path", lambda d, t: upload_form(d, "/tmp/demo_pkg-1.0-py3-none-any.whl", name="demo-pkg",
                                               version="1.0"), 400, "plain name"),
    ("backslash path", lambda d, t: upload_form(d, "..\\demo_pkg-1.0-py3-none-any.whl", name="demo-pkg",
                                                version="1.0"), 400, "plain name"),
    ("not a dist name", lambda d, t: upload_form(d, "setup.py", name="demo-pkg", version="1.0"), 400, "wheel or sdist"),
    ("wrong filetype", lambda d, t: upload_form(d, "demo_pkg-1.0-py3-none-any.whl", filetype="sdist"), 400,
     "filetype"),
    ("no action", lambda d, t: upload_form(d, "demo_pkg-1.0-py3-none-any.whl", **{":action": "submit"}), 400,
     "file_upload"),
]


@pytest.mark.parametrize("case,build,status,reason", BAD_UPLOADS, ids=[c[0] for c in BAD_UPLOADS])
def test_bad_upload_is_refused_and_tree_unchanged(client, users, packages, good_wheel, tmp_path,
                                                   case, build, status, reason):
    before = snapshot(packages)
    resp = client.post("/legacy/", data=build(good_wheel.read_bytes(), tmp_path), headers=ALICE)
    assert resp.status_code == status, resp.data
    assert reason in resp.status, resp.status  # twine shows the status line
    assert "\n" not in resp.status
    assert snapshot(packages) == before
    assert client.get("/simple/demo-pkg/").status_code == 404  # no empty project appeared


def test_invalid_metadata_is_refused(client, users, packages, tmp_path):
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0", requires_dist=["not a ( valid requirement"])
    resp = client.post("/legacy/", data=upload_form(wheel), headers=ALICE)
    assert resp.status_code == 400
    assert "invalid metadata" in resp.status
    assert snapshot(packages) == {}


def test_oversized_upload_is_413_and_tree_unchanged(app, client, users, packages, tmp_path):
    services = app.extensions["pypi_repo"]
    services.settings = services.settings.replace(max_upload_mb=1)
    big = make_wheel(tmp_path, "demo-pkg", "1.0", module_source="x = '" + "ab" * 800_000 + "'\n")
    resp = client.post("/legacy/", data=upload_form(big), headers=ALICE)
    assert resp.status_code == 413
    assert "limit of 1048576 bytes" in resp.get_data(as_text=True)
    assert snapshot(packages) == {}


def test_good_upload_then_identical_200_then_different_409(client, users, packages, good_wheel, tmp_path):
    assert client.post("/legacy/", data=upload_form(good_wheel), headers=ALICE).status_code == 200
    assert client.post("/", data=upload_form(good_wheel), headers=ALICE).status_code == 200  # twine retries
    after_first = snapshot(packages)
    different = make_wheel(tmp_path / "again", "demo-pkg", "1.0", summary="changed")
    resp = client.post("/legacy", data=upload_form(different), headers=ALICE)
    assert resp.status_code == 409
    assert "File already exists" in resp.status
    assert snapshot(packages) == after_first
    page = client.get("/simple/demo-pkg/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).get_json()
    assert [f["filename"] for f in page["files"]] == ["demo_pkg-1.0-py3-none-any.whl"]
    assert page["files"][0]["core-metadata"]  # PEP 658 metadata was derived at upload time


def test_allow_overwrite_replaces_a_different_file(app, client, users, packages, good_wheel, tmp_path):
    app.extensions["pypi_repo"].settings = app.extensions["pypi_repo"].settings.replace(allow_overwrite=True)
    assert client.post("/legacy/", data=upload_form(good_wheel), headers=ALICE).status_code == 200
    different = make_wheel(tmp_path / "again", "demo-pkg", "1.0", summary="changed")
    assert client.post("/legacy/", data=upload_form(different), headers=ALICE).status_code == 200
    assert (packages / "demo-pkg" / good_wheel.name).read_bytes() == different.read_bytes()


def test_sdist_upload_is_validated_too(client, users, packages, tmp_path):
    sdist = make_sdist(tmp_path, "demo-pkg", "1.0")
    assert client.post("/legacy/", data=upload_form(sdist), headers=ALICE).status_code == 200
    broken = io.BytesIO()
    with tarfile.open(fileobj=broken, mode="w:gz") as tf:
        member = tarfile.TarInfo("demo_pkg-2.0/setup.py")
        tf.addfile(member, io.BytesIO(b""))
    before = snapshot(packages)
    resp = client.post("/legacy/", data=upload_form(broken.getvalue(), "demo_pkg-2.0.tar.gz"), headers=ALICE)
    assert resp.status_code == 400 and "PKG-INFO" in resp.status
    assert snapshot(packages) == before


def test_upload_without_users_tells_how_to_add_one(client, good_wheel):
    resp = client.post("/legacy/", data=upload_form(good_wheel), headers=ALICE)
    assert resp.status_code == 401
    assert "manage_repo.py user add" in resp.get_data(as_text=True)
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("headers", [{}, basic("alice", "wrong-password"), basic("nobody", "whatever-pass"),
                                     basic("__token__", "prt-0000-nope")])
def test_missing_or_bad_credentials_are_401(client, users, good_wheel, packages, headers):
    resp = client.post("/legacy/", data=upload_form(good_wheel), headers=headers)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert snapshot(packages) == {}


def test_first_uploader_owns_the_project(client, users, packages, good_wheel, tmp_path):
    assert client.post("/legacy/", data=upload_form(good_wheel), headers=ALICE).status_code == 200
    v2 = make_wheel(tmp_path / "v2", "demo-pkg", "2.0")
    resp = client.post("/legacy/", data=upload_form(v2), headers=basic("bob", PASSWORDS["bob"]))
    assert resp.status_code == 403
    assert "bob may not upload to demo-pkg" in resp.status
    users.grant("bob", "demo-pkg")
    assert client.post("/legacy/", data=upload_form(v2), headers=basic("bob", PASSWORDS["bob"])).status_code == 200
    assert users.project_roles("demo-pkg") == [("alice", "owner"), ("bob", "maintainer")]


def test_project_copied_in_by_hand_needs_a_grant_or_all_projects(client, users, add_dist, tmp_path):
    add_dist("legacy-pkg", "1.0")
    v2 = make_wheel(tmp_path, "legacy-pkg", "2.0")
    assert client.post("/legacy/", data=upload_form(v2), headers=ALICE).status_code == 403
    carol = basic("carol", PASSWORDS["carol"])
    assert client.post("/legacy/", data=upload_form(v2), headers=carol).status_code == 200


def test_tokens_scope_projects_expiry(client, users, packages, good_wheel, tmp_path):
    _, upload_token = users.create_token("alice", projects=["demo-pkg"])
    _, read_token = users.create_token("alice", scope="read")
    assert client.post("/legacy/", data=upload_form(good_wheel), headers=basic("__token__", read_token)).status_code == 403
    other = make_wheel(tmp_path, "other-pkg", "1.0")
    resp = client.post("/legacy/", data=upload_form(other), headers=basic("__token__", upload_token))
    assert resp.status_code == 403 and "may not upload to other-pkg" in resp.status
    resp = client.post("/legacy/", data=upload_form(good_wheel), headers=basic("__token__", upload_token))
    assert resp.status_code == 200
    token_id = upload_token.split("-")[1]
    users.revoke_token(token_id)
    assert client.post("/legacy/", data=upload_form(good_wheel), headers=basic("__token__", upload_token)).status_code == 401
    actions = [(e.action, e.outcome) for e in users.audit_entries()]
    assert ("token.revoke", "ok") in actions and ("auth", "denied") in actions and ("upload", "ok") in actions


def test_failed_logins_are_rate_limited_per_address(app, client, users, good_wheel):
    limit = app.extensions["pypi_repo"].settings.auth_rate_limit
    for _ in range(limit):
        assert client.post("/legacy/", data=upload_form(good_wheel), headers=basic("alice", "bad-guess")).status_code == 401
    resp = client.post("/legacy/", data=upload_form(good_wheel), headers=ALICE)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "60"
    other = client.post("/legacy/", data=upload_form(good_wheel), headers=ALICE,
                        environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200
