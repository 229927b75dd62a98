"""Real ``twine upload`` and ``uv publish`` against a real Gunicorn server, then real pip
installs what they uploaded (issue 4)."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import requests
from pubhelpers import PASSWORDS, make_users, snapshot
from twine.commands.upload import skip_upload

from conftest import make_repo_dirs, pip, run, start_server, uv_bin
from distbuilder import make_sdist, make_wheel

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("publishing-live")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    dirs = make_repo_dirs(tmp_path_factory.mktemp("publish-live"))
    auth = make_users({"packages_dir": str(dirs["packages"]), "data_dir": str(dirs["data"]),
                       "logs_dir": str(dirs["logs"]), "argon2_time_cost": 1, "argon2_memory_kib": 8})
    live = start_server(dirs)
    live.auth = auth
    yield live
    live.stop()


def twine(server, files, user: str, password: str, *extra: str, path: str = "/legacy/", check=False):
    cmd = [sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
           "--repository-url", server.url + path, "-u", user, "-p", password, *extra, *map(str, files)]
    return run(cmd, check=check, timeout=60)


def test_twine_upload_then_pip_installs_it(server, tmp_path):
    wheel = make_wheel(tmp_path / "dist", "alpha", "1.0")
    sdist = make_sdist(tmp_path / "dist", "alpha", "1.0")
    result = twine(server, [wheel, sdist], "alice", PASSWORDS["alice"], check=True)
    assert "Uploading alpha-1.0.tar.gz" in result.stdout + result.stderr
    target = tmp_path / "site"
    pip("install", "--index-url", server.index_url, "--target", str(target), "alpha==1.0")
    assert (target / "alpha" / "__init__.py").read_text() == '__version__ = "1.0"\n'
    assert server.auth.project_roles("alpha") == [("alice", "owner")]


def test_twine_wrong_password_and_no_credentials_are_401(server, tmp_path):
    wheel = make_wheel(tmp_path, "wrongpw", "1.0")
    before = snapshot(server.dirs["packages"])
    result = twine(server, [wheel], "alice", "not-the-password")
    assert result.returncode != 0
    assert "401" in result.stdout + result.stderr
    resp = requests.post(server.url + "/legacy/", files={"content": (wheel.name, wheel.read_bytes())},
                         data={":action": "file_upload", "name": "wrongpw", "version": "1.0"}, timeout=10)
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
    assert snapshot(server.dirs["packages"]) == before


def test_twine_token_and_no_permission(server, tmp_path):
    _, token = server.auth.create_token("bob", projects=["beta"])
    beta = make_wheel(tmp_path / "beta", "beta", "1.0")
    twine(server, [beta], "__token__", token, path="/legacy", check=True)  # no slash: no redirect either
    twine(server, [make_wheel(tmp_path / "v1", "epsilon", "1.0")], "alice", PASSWORDS["alice"], check=True)
    theirs = make_wheel(tmp_path / "v2", "epsilon", "2.0")
    result = twine(server, [theirs], "bob", PASSWORDS["bob"])
    assert result.returncode != 0
    assert "403" in result.stdout + result.stderr
    assert "bob may not upload to epsilon" in result.stdout + result.stderr
    assert not (server.dirs["packages"] / "epsilon" / theirs.name).exists()


def test_twine_duplicate_is_409_that_skip_existing_recognises(server, tmp_path):
    first = make_wheel(tmp_path / "a", "delta", "1.0")
    twine(server, [first], "carol", PASSWORDS["carol"], check=True)
    twine(server, [first], "carol", PASSWORDS["carol"], check=True)  # identical: 200
    different = make_wheel(tmp_path / "b", "delta", "1.0", summary="rebuilt")
    result = twine(server, [different], "carol", PASSWORDS["carol"])
    assert result.returncode != 0 and "409" in result.stdout + result.stderr
    # twine >= 7 allows --skip-existing only for PyPI URLs (a client-side check); older twine
    # decides with this very function, on the response we send. Feed it our real response.
    resp = requests.post(server.url + "/legacy/", auth=("carol", PASSWORDS["carol"]), timeout=10,
                         files={"content": (different.name, different.read_bytes())},
                         data={":action": "file_upload", "name": "delta", "version": "1.0"})
    assert resp.status_code == 409 and resp.reason.startswith("File already exists")
    assert skip_upload(resp, True, None)
    stored = server.dirs["packages"] / "delta" / first.name
    assert stored.read_bytes() == first.read_bytes()


def test_uv_publish_with_token_then_duplicate(server, tmp_path):
    _, token = server.auth.create_token("alice", description="uv")
    files = [make_wheel(tmp_path / "dist", "gamma", "1.0"), make_sdist(tmp_path / "dist", "gamma", "1.0")]
    cmd = [uv_bin(), "publish", "--publish-url", server.url + "/legacy/", "--trusted-publishing", "never"]
    run(cmd + ["--token", token, *map(str, files)], timeout=60)
    rebuilt = make_wheel(tmp_path / "rebuilt", "gamma", "1.0", summary="rebuilt")
    result = run(cmd + ["--token", token, str(rebuilt)], check=False, timeout=60)
    assert result.returncode != 0 and "409 File already exists" in " ".join(result.stderr.split())
    skipped = run(cmd + ["--token", token, "--check-url", server.index_url, *map(str, files)], timeout=60)
    assert skipped.stderr.count("already exists, skipping") == 2  # uv's --skip-existing: already there, same hash
    wrong = run(cmd + ["--username", "alice", "--password", "nope-nope", str(files[0])], check=False, timeout=60)
    assert wrong.returncode != 0 and "401" in wrong.stderr
    target = tmp_path / "site"
    pip("install", "--index-url", server.index_url, "--target", str(target), "gamma==1.0")
    assert (target / "gamma" / "__init__.py").is_file()


def _post(server, path: Path, results: list, barrier: threading.Barrier) -> None:
    data = path.read_bytes()
    barrier.wait()
    resp = requests.post(server.url + "/legacy/", auth=("carol", PASSWORDS["carol"]), timeout=30,
                         files={"content": (path.name, data)},
                         data={":action": "file_upload", "name": "race", "version": path.name.split("-")[1]})
    results.append((resp.status_code, resp.text))


@pytest.mark.parametrize("same_bytes", [True, False], ids=["same-file", "different-files"])
def test_concurrent_uploads_one_wins_and_tree_is_consistent(server, tmp_path, same_bytes):
    for attempt in range(3):
        version = f"{int(same_bytes)}.{attempt}"
        paths = [make_wheel(tmp_path / f"w{i}", "race", version, summary="same" if same_bytes else f"v{i}")
                 for i in range(3)]
        results: list = []
        barrier = threading.Barrier(len(paths))
        threads = [threading.Thread(target=_post, args=(server, p, results, barrier)) for p in paths]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stored = [text for status, text in results if status == 200 and "OK: stored" in text]
        assert len(stored) == 1, results
        others = [status for status, text in results if "OK: stored" not in text]
        assert others == ([200, 200] if same_bytes else [409, 409]), results
        project = server.dirs["packages"] / "race"
        assert not [p.name for p in project.iterdir() if p.name.startswith(".")]
        kept = (project / paths[0].name).read_bytes()
        assert kept in {p.read_bytes() for p in paths}


def test_failed_logins_are_rate_limited_across_workers(tmp_path, repo_dirs):
    make_users({"packages_dir": str(repo_dirs["packages"]), "data_dir": str(repo_dirs["data"]),
                "logs_dir": str(repo_dirs["logs"]), "argon2_time_cost": 1, "argon2_memory_kib": 8})
    live = start_server(repo_dirs, {"PYPI_REPO_AUTH_RATE_LIMIT": "4"}, workers=2)
    try:
        statuses = []
        for _ in range(6):  # a fresh connection each time: the workers take turns
            resp = requests.post(live.url + "/legacy/", auth=("alice", "guess-guess"), timeout=10,
                                 headers={"Connection": "close"}, data={":action": "file_upload"})
            statuses.append(resp.status_code)
        assert statuses == [401] * 4 + [429] * 2
        resp = requests.post(live.url + "/legacy/", auth=("alice", PASSWORDS["alice"]), timeout=10,
                             data={":action": "file_upload"})
        assert resp.status_code == 429
    finally:
        live.stop()
