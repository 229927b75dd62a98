"""Two real Gunicorn nodes sharing one PostgreSQL and one bucket (SeaweedFS), issue 14.

Node A serves files from its disk cache; node B has ``storage_redirect`` on (a 302 to a
presigned URL). A twine upload to A is listed on B on B's very next request; ``pip download``
from B is byte-identical and ``pip install`` from B works; a yank, an un-yank and a removal
made on A are seen by B at once; an object put into the bucket with boto3 appears after
``manage_repo.py reindex``. A wrong ``storage_url`` is refused with one line, and a node
whose bucket is unreachable is not ready (503 ``degraded``, still live) and answers an
upload with a clear 503.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import ROOT, VENV_BIN, LiveServer, client_env, free_port, make_repo_dirs, run, start_server  # noqa: E402
from distbuilder import make_wheel  # noqa: E402

from .conftest import BUCKET

pytestmark = [pytest.mark.xdist_group("backends"), pytest.mark.e2e]

PASSWORD = "alice-password-1"


def _aws(weed) -> dict[str, str]:
    return {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **weed.env()}


def _manage(dirs, env: dict, *args: str, check: bool = True, stdin: str | None = None):
    return run([sys.executable, str(ROOT / "manage_repo.py"), "--packages-dir", str(dirs["packages"]),
                "--data-dir", str(dirs["data"]), "--logs-dir", str(dirs["logs"]), *args],
               input=stdin, check=check, timeout=60, env=client_env(**env))


def _twine(server, wheel: Path):
    return run([sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
                "--repository-url", server.url + "/legacy/", "-u", "alice", "-p", PASSWORD, str(wheel)],
               check=False, timeout=60)


def _upload(node, wheel: Path) -> requests.Response:
    return requests.post(node.url + "/legacy/", auth=("alice", PASSWORD), timeout=60,
                         data={":action": "file_upload", "protocol_version": "1", "name": wheel.name.split("-")[0],
                               "version": wheel.name.split("-")[1]},
                         files={"content": (wheel.name, wheel.read_bytes())})


def _files(node, project: str) -> dict[str, dict]:
    resp = node.get(f"/simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    return {f["filename"]: f for f in resp.json()["files"]} if resp.status_code == 200 else {}


def _wait_for(check, what: str, timeout_s: float = 15.0):
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _start_unready(dirs, env: dict) -> LiveServer:
    """A node that is live but not ready (start_server waits for a ready /health)."""
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("PYPI_REPO_")}
    full.update(PYPI_REPO_PACKAGES_DIR=str(dirs["packages"]), PYPI_REPO_DATA_DIR=str(dirs["data"]),
                PYPI_REPO_LOGS_DIR=str(dirs["logs"]), PYPI_REPO_HOST="127.0.0.1", PYPI_REPO_PORT=str(port),
                PYPI_REPO_WORKERS="1", **env)
    proc = subprocess.Popen([str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--chdir",
                             str(ROOT), "app:app"], env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = LiveServer(f"http://127.0.0.1:{port}", port, proc, dirs, full)
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(server.url + "/health/live", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            server.stop()
            raise RuntimeError("the unready node did not come up")
        time.sleep(0.1)


@pytest.mark.multinode
def test_two_nodes_share_one_bucket_uploads_yanks_removals_and_reindex(pg_engine, weed_engine, tmp_path):
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {"PYPI_REPO_DATABASE_URL": pg_engine.schema_url(),
           "PYPI_REPO_STORAGE_URL": f"s3://{BUCKET}/{prefix}", **_aws(weed_engine)}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    dirs_a, dirs_b = make_repo_dirs(tmp_path / "a"), make_repo_dirs(tmp_path / "b")  # nothing shared on disk
    _manage(dirs_a, env, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    node_a = start_server(dirs_a, env, workers=2)
    node_b = None
    try:
        node_b = start_server(dirs_b, {**env, "PYPI_REPO_STORAGE_REDIRECT": "true",
                                       "PYPI_REPO_CATALOG_REFRESH_S": "0.2"}, workers=1)
        health = node_a.get("/health").json()
        assert health["checks"]["storage"] == {"ok": True, "url": f"s3://{BUCKET}/{prefix}/"}
        assert _files(node_b, "hanode") == {}

        # twine to A: listed on A at once and on B on its next request (serials, no TTL)
        wheel = make_wheel(tmp_path / "dist", "hanode", "1.0", requires_python=">=3.8",
                           module_source="VALUE = 'from the bucket'\n")
        result = _twine(node_a, wheel)
        assert result.returncode == 0, result.stdout + result.stderr
        assert wheel.name in _files(node_a, "hanode")
        listed = _files(node_b, "hanode")
        assert wheel.name in listed and listed[wheel.name]["requires-python"] == ">=3.8"
        assert not list(dirs_a["packages"].iterdir())  # the bytes went to the bucket
        assert _upload(node_b, wheel).status_code == 200  # a retry with the same bytes, on the other node
        clash = make_wheel(tmp_path / "clash", "hanode", "1.0", summary="other bytes")
        assert _upload(node_b, clash).status_code == 409

        # A serves from its disk cache: Range, HEAD, ETag/304 as on the tree
        url = f"/packages/hanode/{wheel.name}"
        full = node_a.get(url)
        assert full.content == wheel.read_bytes()
        assert node_a.get(url, headers={"Range": "bytes=0-9"}).content == wheel.read_bytes()[:10]
        assert node_a.get(url, headers={"If-None-Match": full.headers["ETag"]}).status_code == 304
        head = requests.head(node_a.url + url, timeout=10)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == wheel.stat().st_size
        # B redirects a GET to a short-lived presigned URL of the bucket
        redirect = node_b.get(url, allow_redirects=False)
        assert redirect.status_code == 302 and redirect.headers["Location"].startswith(weed_engine.endpoint)
        assert node_b.get(f"{url}.metadata").status_code == 200  # PEP 658 from B's cached copy

        # pip download (byte-identical) and pip install from B
        pip_env = client_env()
        run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(tmp_path / "dl"),
             "--index-url", node_b.index_url, "hanode"], env=pip_env)
        assert (tmp_path / "dl" / wheel.name).read_bytes() == wheel.read_bytes()
        run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(tmp_path / "site"),
             "--index-url", node_b.index_url, "hanode"], env=pip_env)
        assert "from the bucket" in (tmp_path / "site" / "hanode" / "__init__.py").read_text()

        # search and the project page on B know it (the catalog is keyed on the serials)
        _wait_for(lambda: [r["name"] for r in node_b.get("/api/search?q=hanode").json()["results"]] == ["hanode"],
                  "B's search to find the upload")

        # yank and un-yank on A (manage_repo.py with A's settings): seen on B at once
        _manage(dirs_a, env, "yank", "hanode", wheel.name, "--reason", "bad build")
        assert _files(node_b, "hanode")[wheel.name]["yanked"] == "bad build"
        _manage(dirs_a, env, "unyank", "hanode", wheel.name)
        assert _files(node_b, "hanode")[wheel.name]["yanked"] is False

        # an object put with boto3 shows after reindex (run on B)
        other = make_wheel(tmp_path / "dist2", "hanode", "2.0")
        weed_engine.client().put_object(Bucket=BUCKET, Key=f"{prefix}/hanode/{other.name}", Body=other.read_bytes())
        _manage(dirs_b, env, "reindex")
        listed = _files(node_a, "hanode")
        _wait_for(lambda: [r["version"] for r in node_b.get("/api/search?q=hanode").json()["results"]] == ["2.0"],
                  "B's catalog (search) to see 2.0")
        assert other.name in listed and listed[other.name]["hashes"]["sha256"] == \
            __import__("hashlib").sha256(other.read_bytes()).hexdigest()

        # removal on A: gone on B
        _manage(dirs_a, env, "remove", "hanode", "1.0")
        assert wheel.name not in _files(node_b, "hanode")
        assert node_b.get(url, allow_redirects=False).status_code == 404
    finally:
        node_a.stop()
        if node_b is not None:
            node_b.stop()


def test_a_wrong_storage_url_is_refused_with_one_line(tmp_path):
    dirs = make_repo_dirs(tmp_path)
    base = ["--packages-dir", str(dirs["packages"]), "--data-dir", str(dirs["data"]), "--logs-dir", str(dirs["logs"])]
    runs = {
        "app.py": run([sys.executable, str(ROOT / "app.py"), *base, "--port", "1", "--storage-url", "s3://Bad_Bucket/x"],
                      check=False, timeout=60),
        "manage_repo.py": run([sys.executable, str(ROOT / "manage_repo.py"), *base, "list"], check=False, timeout=60,
                              env=client_env(PYPI_REPO_STORAGE_URL="s3://bucket:9000/x")),
        "gunicorn": run([str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--chdir", str(ROOT),
                         "app:app"], check=False, timeout=60,
                        env=client_env(PYPI_REPO_STORAGE_URL="gs://bucket/x", PYPI_REPO_PORT="1",
                                       PYPI_REPO_DATA_DIR=str(dirs["data"]), PYPI_REPO_LOGS_DIR=str(dirs["logs"]))),
    }
    for name, result in runs.items():
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0, name
        assert len(lines) == 1 and "storage_url" in lines[0], (name, result.stderr)


def test_an_unreachable_bucket_makes_the_node_unready_and_uploads_answer_503(pg_engine, closed_port, tmp_path):
    dirs = make_repo_dirs(tmp_path)
    env = {"PYPI_REPO_DATABASE_URL": pg_engine.schema_url(), "PYPI_REPO_STORAGE_URL": f"s3://{BUCKET}/down",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port}", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    _manage(dirs, env, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    node = _start_unready(dirs, env)
    try:
        health = node.get("/health")
        doc = health.json()
        assert health.status_code == 503 and doc["status"] == "degraded" and doc["live"] is True
        assert doc["checks"]["storage"]["ok"] is False and "unreachable" in doc["checks"]["storage"]["error"]
        assert node.get("/health/live").status_code == 200
        wheel = make_wheel(tmp_path / "dist", "downnode", "1.0")
        resp = _upload(node, wheel)
        assert resp.status_code == 503 and "storage" in resp.text, resp.text
    finally:
        node.stop()
