"""Private index (``private = true``): every read needs credentials; pip's
``http://user:token@host/simple/`` and ``~/.netrc`` both work; /health stays open."""
from __future__ import annotations

import pytest
from pubhelpers import PASSWORDS, basic, make_users, upload_form

from conftest import client_env, pip, start_server
from distbuilder import make_wheel
from pypi_repo import create_app


@pytest.fixture
def private_client(overrides, add_dist):
    add_dist("secret-pkg", "1.0")
    auth = make_users(overrides)
    app = create_app({**overrides, "private": True})
    return app.test_client(), auth


@pytest.mark.parametrize("path", ["/simple/", "/simple/secret-pkg/", "/secret-pkg/",
                                  "/packages/secret-pkg/secret_pkg-1.0-py3-none-any.whl"])
def test_reads_need_credentials(private_client, path):
    client, auth = private_client
    _, read_token = auth.create_token("bob", scope="read")
    resp = client.get(path)
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get(path, headers=basic("bob", "bad-password")).status_code == 401
    assert client.get(path, headers=basic("bob", PASSWORDS["bob"])).status_code == 200
    assert client.get(path, headers=basic("__token__", read_token)).status_code == 200
    assert client.get(path, headers=basic("bob", read_token)).status_code == 200
    assert client.get(path, headers=basic("alice", read_token)).status_code == 401  # not alice's token


def test_health_stays_open_and_read_token_cannot_upload(private_client, tmp_path):
    client, auth = private_client
    assert client.get("/health").status_code == 200
    _, read_token = auth.create_token("alice", scope="read")
    wheel = make_wheel(tmp_path, "new-pkg", "1.0")
    resp = client.post("/legacy/", data=upload_form(wheel), headers=basic("__token__", read_token))
    assert resp.status_code == 403 and "read-only" in resp.status


@pytest.mark.e2e
def test_pip_installs_from_private_index_with_url_token_and_netrc(repo_dirs, add_dist, tmp_path):
    add_dist("secret-pkg", "1.0")
    auth = make_users({"packages_dir": str(repo_dirs["packages"]), "data_dir": str(repo_dirs["data"]),
                       "logs_dir": str(repo_dirs["logs"]), "argon2_time_cost": 1, "argon2_memory_kib": 8})
    _, token = auth.create_token("bob", scope="read")
    live = start_server(repo_dirs, {"PYPI_REPO_PRIVATE": "true"})
    try:
        host = f"127.0.0.1:{live.port}"
        denied = pip("download", "--no-deps", "-d", str(tmp_path / "none"), "--index-url",
                     live.index_url, "secret-pkg", check=False)
        assert denied.returncode != 0 and "401" in denied.stdout + denied.stderr
        pip("install", "--target", str(tmp_path / "t1"), "--index-url",
            f"http://bob:{token}@{host}/simple/", "secret-pkg==1.0")
        assert (tmp_path / "t1" / "secret_pkg" / "__init__.py").is_file()

        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login alice password {PASSWORDS['alice']}\n")
        netrc.chmod(0o600)
        pip("install", "--target", str(tmp_path / "t2"), "--index-url", live.index_url, "secret-pkg==1.0",
            env=client_env(NETRC=str(netrc)))
        assert (tmp_path / "t2" / "secret_pkg" / "__init__.py").is_file()
        assert live.get("/health").status_code == 200
    finally:
        live.stop()
