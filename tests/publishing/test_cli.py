"""``manage_repo.py``: through ``main(argv)`` (fast, every command) and as a real subprocess."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from pubhelpers import snapshot

from conftest import ROOT
from distbuilder import make_sdist, make_wheel
from pypi_repo.auth import AuthService
from pypi_repo.cli import main
from pypi_repo.config import load_settings


@pytest.fixture
def cli(repo_dirs, monkeypatch, capsys):
    """Run ``main`` against the test dirs; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("PYPI_REPO_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("PYPI_REPO_ARGON2_MEMORY_KIB", "8")
    base = ["--packages-dir", str(repo_dirs["packages"]), "--data-dir", str(repo_dirs["data"])]

    def invoke(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main([*base, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_add_validates_like_an_upload_and_lists(cli, packages, tmp_path):
    wheel = make_wheel(tmp_path / "dist", "demo-pkg", "1.0")
    sdist = make_sdist(tmp_path / "dist", "demo-pkg", "1.0")
    code, out, _ = cli("add", str(tmp_path / "dist"))
    assert code == 0 and out.count("added") == 2
    assert cli("add", str(wheel))[1].startswith("unchanged")
    broken = tmp_path / "bad" / "demo_pkg-2.0-py3-none-any.whl"
    broken.parent.mkdir()
    broken.write_bytes(wheel.read_bytes()[:300])
    before = snapshot(packages)
    code, _, err = cli("add", str(broken))
    assert code == 1 and "not a valid wheel" in err
    assert snapshot(packages) == before
    code, out, _ = cli("list")
    assert out.strip() == "demo-pkg  1 version(s), 2 file(s)"
    code, out, _ = cli("list", "Demo_Pkg")
    assert sdist.name in out and "sha256=" in out


def test_seed_form_publishes_from_dist(cli, packages, tmp_path, monkeypatch):
    dist = tmp_path / "dist"
    make_wheel(dist, "payo-cli", "1.1")
    make_sdist(dist, "payo-cli", "1.1")
    make_wheel(dist, "other", "1.0")
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("payo-cli")
    assert code == 0
    assert sorted(p.name for p in (packages / "payo-cli").iterdir()) == [
        "payo_cli-1.1-py3-none-any.whl", "payo_cli-1.1.tar.gz"]
    assert not (packages / "other").exists()
    assert cli("missing-project", "--from", str(dist))[0] == 1


def test_yank_unyank_remove(cli, packages, tmp_path):
    make_wheel(tmp_path, "demo-pkg", "1.0")
    make_wheel(tmp_path, "demo-pkg", "2.0")
    cli("add", str(tmp_path))
    sidecar = packages / "demo-pkg" / "demo_pkg-1.0-py3-none-any.whl.yanked"
    assert cli("yank", "demo-pkg", "1.0", "--reason", "broken build")[0] == 0
    assert sidecar.read_text() == "broken build"
    assert cli("unyank", "demo-pkg", "demo_pkg-1.0-py3-none-any.whl")[0] == 0
    assert not sidecar.exists()
    assert cli("yank", "demo-pkg", "9.9")[0] == 1
    assert cli("remove", "demo-pkg", "1.0")[0] == 0
    assert [p.name for p in (packages / "demo-pkg").iterdir()] == ["demo_pkg-2.0-py3-none-any.whl"]
    assert cli("remove", "demo-pkg")[0] == 0
    assert not (packages / "demo-pkg").exists()


def test_verify_reports_and_fixes(cli, packages, repo_dirs, tmp_path):
    make_wheel(tmp_path, "demo-pkg", "1.0")
    cli("add", str(tmp_path))
    assert cli("verify")[0] == 0
    project = packages / "demo-pkg"
    (project / "gone-1.0.tar.gz.yanked").write_text("")
    stale = project / ".upload-old.part"
    stale.write_bytes(b"x")
    os.utime(stale, (1, 1))
    cache = repo_dirs["data"] / "index" / "demo-pkg.json"
    doc = json.loads(cache.read_text())
    doc["files"]["demo_pkg-1.0-py3-none-any.whl"]["sha256"] = "0" * 64
    cache.write_text(json.dumps(doc))
    metadata = repo_dirs["data"] / "metadata" / "demo-pkg" / "demo_pkg-1.0-py3-none-any.whl.metadata"
    metadata.parent.mkdir(parents=True, exist_ok=True)
    metadata.write_bytes(b"Metadata-Version: 2.1\nName: something-else\n")
    code, out, _ = cli("verify")
    assert code == 1
    assert "hash mismatch" in out and "yank sidecar without file" in out and "leftover temp file" in out
    code, out, _ = cli("verify", "--fix")
    assert code == 0, out
    assert cli("verify")[0] == 0
    assert not stale.exists()
    assert b"Name: demo-pkg" in metadata.read_bytes()
    code, out, _ = cli("reindex")
    assert code == 0 and "reindexed 1 file" in out


def test_users_and_tokens(cli, repo_dirs):
    assert cli("user", "add", "dave", "--password-stdin", stdin="dave-password\n")[0] == 0
    assert cli("user", "add", "dave", "--password-stdin", stdin="dave-password\n")[0] == 1  # exists
    assert cli("user", "add", "x y", "--password-stdin", stdin="long-enough\n")[0] == 1
    assert cli("user", "add", "eve", "--password-stdin", stdin="short\n")[0] == 1
    code, token, err = cli("token", "create", "dave", "--scope", "read", "--project", "Demo_Pkg", "--expires", "30d")
    token = token.strip()
    assert code == 0 and token.startswith("prt-") and "shown only once" in err
    settings = load_settings({"packages_dir": str(repo_dirs["packages"]), "data_dir": str(repo_dirs["data"])})
    auth = AuthService(settings)
    principal = auth.authenticate("__token__", token, "127.0.0.1")
    assert principal.scope == "read" and principal.token_projects == {"demo-pkg"}
    assert token not in (repo_dirs["data"] / "pypi_repo.sqlite3").read_bytes().decode("latin-1")
    code, out, _ = cli("token", "list")
    assert "scope=read" in out and "projects=demo-pkg" in out and token.split("-", 2)[2] not in out
    assert cli("token", "revoke", token.split("-")[1])[0] == 0
    assert cli("token", "revoke", "nope")[0] == 1
    assert cli("user", "passwd", "dave", "--password-stdin", stdin="new-password\n")[0] == 0
    assert auth.authenticate("dave", "new-password", "127.0.0.1").username == "dave"
    assert cli("user", "grant", "dave", "demo-pkg")[0] == 0
    code, out, _ = cli("user", "list")
    assert "demo-pkg (maintainer)" in out
    assert cli("user", "remove", "dave")[0] == 0
    assert cli("user", "list")[1] == ""
    code, out, _ = cli("audit")
    for action in ("user.add", "token.create", "token.revoke", "user.passwd", "project.grant", "user.remove"):
        assert action in out


def test_as_a_subprocess(repo_dirs, tmp_path):
    env = {**os.environ, "PYPI_REPO_ARGON2_TIME_COST": "1", "PYPI_REPO_ARGON2_MEMORY_KIB": "8"}
    base = [sys.executable, str(ROOT / "manage_repo.py"), "--packages-dir", str(repo_dirs["packages"]),
            "--data-dir", str(repo_dirs["data"])]

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env)

    for command in ([], ["add"], ["user", "add"], ["token", "create"], ["verify"], ["yank"]):
        result = run(*command, "--help")
        assert result.returncode == 0 and "usage: manage_repo.py" in result.stdout
    assert run("frobnicate", "x", "y").returncode == 2
    assert run("user", "add", "frank", "--password-stdin", stdin="frank-password\n").returncode == 0
    make_wheel(tmp_path / "dist", "sub-pkg", "1.0")
    result = run("add", str(tmp_path / "dist"))
    assert result.returncode == 0 and "added" in result.stdout
    assert (repo_dirs["packages"] / "sub-pkg" / "sub_pkg-1.0-py3-none-any.whl").is_file()
    bad = run("--config", str(tmp_path / "missing.toml"), "list")
    assert bad.returncode == 2 and "config file not found" in bad.stderr
