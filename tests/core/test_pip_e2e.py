"""Real pip and uv against a real Gunicorn server on 127.0.0.1.

One server (module scope) serves a small tree: a dependency chain, pinned versions, a
requires-python split and a yanked release, as the tests' own archives.
"""
from __future__ import annotations

import filecmp
import hashlib
import os
import shutil
import sys

import pytest

from conftest import ROOT, make_repo_dirs, pip, run, start_server, uv_bin
from distbuilder import make_sdist, make_wheel

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("core-e2e")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    dirs = make_repo_dirs(tmp_path_factory.mktemp("e2e"))
    pk = dirs["packages"]
    shutil.copytree(ROOT / "packages" / "payo-cli", pk / "payo-cli")
    # chain: app-top -> mid-lib -> leaf-lib
    make_wheel(pk / "app-top", "app-top", "1.0", requires_dist=["mid-lib>=1.0"])
    make_wheel(pk / "mid-lib", "mid-lib", "1.0", requires_dist=["leaf-lib==2.*"])
    make_wheel(pk / "leaf-lib", "leaf-lib", "1.0")
    make_wheel(pk / "leaf-lib", "leaf-lib", "2.0")
    make_sdist(pk / "leaf-lib", "leaf-lib", "2.0")
    # requires-python: 3.0 needs a Python from the future, so 2.0 must be chosen
    make_wheel(pk / "py-gate", "py-gate", "2.0", requires_python=">=3.8")
    make_wheel(pk / "py-gate", "py-gate", "3.0", requires_python=">=4.0")
    # yank: 1.1 is yanked, so a plain install takes 1.0; ==1.1 still works (PEP 592)
    make_wheel(pk / "yank-me", "yank-me", "1.0")
    y = make_wheel(pk / "yank-me", "yank-me", "1.1")
    (pk / "yank-me" / (y.name + ".yanked")).write_text("broken build")
    srv = start_server(dirs)
    yield srv
    srv.stop()


def installed(target) -> dict[str, str]:
    """Installed distributions in a --target dir: {name: version}."""
    found = {}
    for entry in os.listdir(target):
        if entry.endswith(".dist-info"):
            name, version = entry[: -len(".dist-info")].rsplit("-", 1)
            found[name.lower().replace("_", "-")] = version
    return found


def test_pip_install_with_index_url_and_dependency_chain(server, tmp_path):
    pip("install", "--target", tmp_path / "t", "--index-url", server.index_url, "app-top")
    assert installed(tmp_path / "t") == {"app-top": "1.0", "mid-lib": "1.0", "leaf-lib": "2.0"}


def test_pip_install_with_extra_index_url_at_root_and_pin(server, tmp_path):
    # the seed's form: --extra-index-url http://host:8385/ (pip asks /<project>/)
    pip("install", "--target", tmp_path / "t", "--index-url", "http://127.0.0.1:9/nothing/",
        "--extra-index-url", server.url + "/", "leaf-lib==1.0", "--retries", "0", "--timeout", "2")
    assert installed(tmp_path / "t") == {"leaf-lib": "1.0"}


def test_pip_require_hashes(server, tmp_path):
    wheel = server.dirs["packages"] / "leaf-lib" / "leaf_lib-2.0-py3-none-any.whl"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    req = tmp_path / "req.txt"
    req.write_text(f"leaf-lib==2.0 --hash=sha256:{digest}\n")
    pip("install", "--target", tmp_path / "t", "--index-url", server.index_url, "--only-binary", ":all:",
        "--require-hashes", "-r", req)
    assert installed(tmp_path / "t") == {"leaf-lib": "2.0"}
    req.write_text("leaf-lib==2.0 --hash=sha256:" + "0" * 64 + "\n")
    bad = pip("install", "--target", tmp_path / "t2", "--index-url", server.index_url, "--only-binary", ":all:",
              "--require-hashes", "-r", req, check=False)
    assert bad.returncode != 0 and "HASHES" in bad.stderr.upper()


def test_pip_download_is_byte_identical(server, tmp_path):
    pip("download", "--no-deps", "-d", tmp_path / "d", "--index-url", server.index_url, "payo-cli==1.0.0",
        "--only-binary", ":all:")
    name = "payo_cli-1.0.0-py3-none-any.whl"
    assert filecmp.cmp(tmp_path / "d" / name, server.dirs["packages"] / "payo-cli" / name, shallow=False)
    sdist = server.get("/packages/payo-cli/payo_cli-1.0.0.tar.gz")
    assert sdist.content == (server.dirs["packages"] / "payo-cli" / "payo_cli-1.0.0.tar.gz").read_bytes()


def test_requires_python_and_yank_respected(server, tmp_path):
    pip("install", "--target", tmp_path / "t", "--index-url", server.index_url, "py-gate", "yank-me")
    assert installed(tmp_path / "t") == {"py-gate": "2.0", "yank-me": "1.0"}
    pip("install", "--target", tmp_path / "t2", "--index-url", server.index_url, "yank-me==1.1")
    assert installed(tmp_path / "t2") == {"yank-me": "1.1"}


def test_uv_pip_install_into_a_venv(server, venv):
    run([uv_bin(), "pip", "install", "--python", venv / "bin" / "python", "--index-url", server.index_url,
         "app-top", "payo-cli"])
    out = run([venv / "bin" / "payo", "hello"]).stdout
    assert out.strip() == "Hello, world!"
    listing = run([uv_bin(), "pip", "list", "--python", venv / "bin" / "python", "--format", "freeze"]).stdout
    assert "leaf-lib==2.0" in listing and "mid-lib==1.0" in listing


def test_uv_respects_yank_and_requires_python(server, venv):
    run([uv_bin(), "pip", "install", "--python", venv / "bin" / "python", "--index-url", server.index_url,
         "py-gate", "yank-me"])
    listing = run([uv_bin(), "pip", "list", "--python", venv / "bin" / "python", "--format", "freeze"]).stdout
    assert "py-gate==2.0" in listing and "yank-me==1.0" in listing


def test_file_uploaded_by_hand_is_installable_at_once(server, tmp_path):
    make_wheel(server.dirs["packages"] / "fresh-drop", "fresh-drop", "0.1")
    pip("install", "--target", tmp_path / "t", "--index-url", server.index_url, "fresh-drop")
    assert installed(tmp_path / "t") == {"fresh-drop": "0.1"}
    # a newer version copied in is picked up by every worker on the next request
    make_wheel(server.dirs["packages"] / "fresh-drop", "fresh-drop", "0.2")
    for _ in range(4):
        page = server.get("/simple/fresh-drop/").text
        assert "fresh_drop-0.2-py3-none-any.whl" in page


def test_uv_pip_compile_resolves_from_the_index(server, tmp_path):
    req = tmp_path / "requirements.in"
    req.write_text("app-top\n")
    out = run([uv_bin(), "pip", "compile", "--index-url", server.index_url, "--python-version",
               f"{sys.version_info.major}.{sys.version_info.minor}", req]).stdout
    assert "leaf-lib==2.0" in out and "mid-lib==1.0" in out
