"""Two real Gunicorn "nodes" (separate data dirs) sharing one real PostgreSQL (issue 14).

One test walks the whole story, so the servers start once: a user added with
``manage_repo.py`` (``PYPI_REPO_DATABASE_URL``) logs in on node A; a token made in A's web
UI uploads through twine on node B; revoking it on A stops it on B; failed logins count on
both; downloads from both nodes add up. Then the database stops: ``/health`` says not ready
with the reason (503, ``degraded``), an upload gets a clear 503 and stores nothing; when the
database is back both recover with no restart. A wrong URL is refused by ``app.py``,
``gunicorn`` and ``manage_repo.py`` with one line.

The PostgreSQL here is this module's own (it is stopped and started again mid-test).
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests

from conftest import ROOT, VENV_BIN, client_env, make_repo_dirs, run, start_server  # noqa: E402
from distbuilder import make_wheel  # noqa: E402
from engines import PG_UNPRIVILEGED_USER, _as_user, start_postgres  # noqa: E402

pytestmark = [pytest.mark.xdist_group("backends"), pytest.mark.e2e]

PASSWORD = "alice-password-1"


@pytest.fixture(scope="module")
def own_pg():
    engine = start_postgres()
    yield engine
    engine.stop()


def _stop_pg(engine) -> None:
    engine.proc.send_signal(signal.SIGINT)  # fast shutdown; the data stays
    engine.proc.wait(30)


def _start_pg_again(engine) -> None:
    """The same server, data and port as before (as ``engines.start_postgres`` runs it)."""
    with open(engine.base / "postgres.log", "ab") as out:
        engine.proc = subprocess.Popen(
            engine.proc.args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC"}, cwd=engine.base,
            start_new_session=True, **_as_user(PG_UNPRIVILEGED_USER))
    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(engine.url(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, "PostgreSQL did not come back"
            time.sleep(0.05)


def _wait_for(check, what: str, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _manage(dirs, url: str, *args: str, stdin: str | None = None, check: bool = True):
    return run([sys.executable, str(ROOT / "manage_repo.py"), "--packages-dir", str(dirs["packages"]),
                "--data-dir", str(dirs["data"]), "--logs-dir", str(dirs["logs"]), *args],
               input=stdin, check=check, timeout=60, env=client_env(PYPI_REPO_DATABASE_URL=url))


def _twine(server, wheel: Path, user: str, password: str, check: bool = False):
    return run([sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
                "--repository-url", server.url + "/legacy/", "-u", user, "-p", password, str(wheel)],
               check=check, timeout=60)


def _upload(server, wheel: Path, auth: tuple[str, str]) -> requests.Response:
    return requests.post(server.url + "/legacy/", auth=auth, timeout=30,
                         data={":action": "file_upload", "protocol_version": "1", "name": "twonodes",
                               "version": wheel.name.split("-")[1]},
                         files={"content": (wheel.name, wheel.read_bytes())})


def _downloads(server) -> int:
    return server.get("/stats").json()["downloads"]["total"]


@pytest.mark.multinode
def test_two_nodes_share_users_tokens_limits_and_counts_and_survive_a_database_outage(own_pg, tmp_path):
    url = own_pg.schema_url()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    dirs_a, dirs_b = make_repo_dirs(tmp_path / "a"), make_repo_dirs(tmp_path / "b")
    dirs_b["packages"] = dirs_a["packages"]  # one tree for now (shared storage comes later)
    env = {"PYPI_REPO_DATABASE_URL": url, "PYPI_REPO_AUTH_RATE_LIMIT": "3"}
    _manage(dirs_a, url, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    node_a = start_server(dirs_a, env, workers=1)
    node_b = None
    try:
        node_b = start_server(dirs_b, env, workers=1)
        assert node_a.get("/health").json()["checks"]["database"]["engine"] == "postgresql"

        # alice logs in on A and makes a token there
        browser = requests.Session()
        resp = browser.post(node_a.url + "/login", allow_redirects=False, timeout=10, data={
            "username": "alice", "password": PASSWORD, "csrf_token": _csrf(browser.get(node_a.url + "/login").text)})
        assert resp.status_code == 303, resp.text
        page = browser.get(node_a.url + "/account/tokens/new", timeout=10).text
        page = browser.post(node_a.url + "/account/tokens/new", timeout=10,
                            data={"scope": "upload", "csrf_token": _csrf(page)}).text
        secret = re.search(r"prt-[0-9a-f]{12}-[A-Za-z0-9_-]+", page).group(0)
        token_id = secret.split("-")[1]

        # the token uploads through twine on B; both nodes list the file
        wheel = make_wheel(tmp_path / "dist", "twonodes", "1.0")
        result = _twine(node_b, wheel, "__token__", secret)
        assert result.returncode == 0, result.stdout + result.stderr
        for node in (node_a, node_b):
            assert wheel.name in node.get("/simple/twonodes/").text
        assert "twonodes" in browser.get(node_a.url + "/account/", timeout=10).text  # alice owns it

        # revoked on A: refused on B at once
        revoke = browser.get(node_a.url + f"/account/tokens/{token_id}/revoke", timeout=10).text
        assert browser.post(node_a.url + f"/account/tokens/{token_id}/revoke", timeout=10,
                            data={"csrf_token": _csrf(revoke)}).status_code == 200
        second = make_wheel(tmp_path / "dist2", "twonodes", "2.0")
        assert _upload(node_b, second, ("__token__", secret)).status_code == 401

        # downloads on both nodes add up (each worker flushes within a second)
        before = _downloads(node_a)
        for node, times in ((node_a, 2), (node_b, 3)):
            for _ in range(times):
                assert node.get(f"/packages/twonodes/{wheel.name}", headers={"User-Agent": "pip/24.0"}).ok
        _wait_for(lambda: _downloads(node_a) == before + 5 and _downloads(node_b) == before + 5,
                  "both nodes to count 5 downloads")
        report = json.loads(_manage(dirs_b, url, "report", "--format", "json").stdout)
        assert [(p["name"], p["all_time"]) for p in report["per_project"]] == [("twonodes", before + 5)]

        # failed logins on A count on B (3 per minute per address and account)
        for _ in range(3):
            assert _upload(node_a, second, ("alice", "wrong-password")).status_code == 401
        assert _upload(node_b, second, ("alice", PASSWORD)).status_code == 429

        # the database stops: not ready (no liveness failure), writes answer 503, nothing stored
        visitor = requests.Session()
        csrf = _csrf(visitor.get(node_b.url + "/login", timeout=10).text)
        _stop_pg(own_pg)
        with ThreadPoolExecutor(4) as pool:  # each waits for the pool's bounded connect attempts
            health = pool.submit(node_a.get, "/health")
            stats = pool.submit(node_b.get, "/stats")
            upload = pool.submit(requests.post, node_b.url + "/legacy/", auth=("__token__", f"prt-{'0' * 12}-x"),
                                 timeout=30, data={":action": "file_upload"},
                                 files={"content": (second.name, second.read_bytes())})
            login = pool.submit(visitor.post, node_b.url + "/login", timeout=30, allow_redirects=False,
                                data={"username": "alice", "password": PASSWORD, "csrf_token": csrf})
            health, upload, login, stats = health.result(), upload.result(), login.result(), stats.result()
        doc = health.json()
        assert health.status_code == 503 and doc["status"] == "degraded" and doc["live"] is True
        assert doc["checks"]["database"]["ok"] is False
        assert any(a.startswith("database: database postgresql://postgres@127.0.0.1") for a in doc["alerts"])
        assert node_a.get("/health/live").status_code == 200
        assert upload.status_code == 503 and "database" in upload.text and upload.headers["Retry-After"]
        assert login.status_code == 503 and "database is unavailable" in login.text
        assert stats.status_code == 200 and stats.json()["downloads"] == {"error": "the database is unavailable"}
        assert not (dirs_a["packages"] / "twonodes" / second.name).exists()
        assert node_b.get("/simple/twonodes/").status_code == 200  # reads from the tree still work

        # back again: ready, and the next login works, with no restart
        _start_pg_again(own_pg)
        _wait_for(lambda: node_a.get("/health").status_code == 200, "node A to be ready again")
        new = re.search(r"prt-[0-9a-f]{12}-[A-Za-z0-9_-]+", _manage(dirs_b, url, "token", "create", "alice").stdout)
        assert _upload(node_b, second, ("__token__", new.group(0))).status_code == 200
        assert (dirs_a["packages"] / "twonodes" / second.name).exists()
    finally:
        node_a.stop()
        if node_b is not None:
            node_b.stop()


def test_a_wrong_database_url_is_refused_with_one_line(tmp_path):
    dirs = make_repo_dirs(tmp_path)
    wrong = "postgresql://pypi:secret@127.0.0.1:notaport/pypi"
    base = ["--packages-dir", str(dirs["packages"]), "--data-dir", str(dirs["data"]), "--logs-dir", str(dirs["logs"])]
    runs = {
        "app.py": run([sys.executable, str(ROOT / "app.py"), *base, "--port", "1", "--database-url", wrong],
                      check=False, timeout=60),
        "manage_repo.py": run([sys.executable, str(ROOT / "manage_repo.py"), *base, "user", "list"],
                              check=False, timeout=60, env=client_env(PYPI_REPO_DATABASE_URL=wrong)),
        "gunicorn": run([str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--chdir", str(ROOT),
                         "app:app"], check=False, timeout=60,
                        env=client_env(PYPI_REPO_DATABASE_URL="mysql://db/pypi", PYPI_REPO_PORT="1",
                                       PYPI_REPO_DATA_DIR=str(dirs["data"]), PYPI_REPO_LOGS_DIR=str(dirs["logs"]))),
    }
    for name, result in runs.items():
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0, name
        assert len(lines) == 1 and "database_url" in lines[0] and "secret" not in lines[0], (name, result.stderr)
