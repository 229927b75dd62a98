"""Download counting (issue 6): exact counts from real pip, not HEAD / 304 / metadata,
batched writes, and nothing lost when Gunicorn stops gracefully."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
import requests

from conftest import pip, start_server
from distbuilder import make_sdist, make_wheel

from pypi_repo.db import Database
from pypi_repo.downloads import DownloadRecorder, classify_user_agent, database, download_counts

pytestmark = pytest.mark.xdist_group("observability")


@pytest.mark.parametrize(
    ("user_agent", "kind"),
    [
        ('pip/24.2 {"ci":null,"cpu":"x86_64","implementation":{"name":"CPython"}}', "pip"),
        ("pip/9.0.1 CPython/3.6.0 Linux/4.0", "pip"),
        ('uv/0.5.1 {"installer":{"name":"uv","version":"0.5.1"}}', "uv"),
        ("poetry/1.8.3", "poetry"),
        ("python-poetry/2.0 (CPython 3.12)", "poetry"),
        ("twine/5.1.1 CPython/3.11.9", "twine"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "browser"),
        ("python-requests/2.32.3", "other"),
        ("curl/8.5.0", "other"),
        ("pipenv/2024.0", "other"),  # a prefix of a known name is not that name
        ("", "other"),
        (None, "other"),
    ],
)
def test_user_agent_is_classified_like_linehaul(user_agent, kind):
    assert classify_user_agent(user_agent) == kind


def _rows(data_dir: Path) -> dict[tuple[str, str], int]:
    """(filename, client) -> downloads, straight from the database file."""
    with sqlite3.connect(data_dir / "pypi_repo.sqlite3") as conn:
        rows = conn.execute("SELECT filename, client, SUM(count) FROM download_counts GROUP BY 1, 2")
        return {(f, c): n for f, c, n in rows}


def _wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_recorder_batches_in_memory_and_flushes_in_one_transaction(tmp_path):
    db = database(tmp_path / "db.sqlite3")
    recorder = DownloadRecorder(db, flush_seconds=3600, clock=lambda: "2024-05-01")
    for _ in range(3):
        recorder.record("demo", "demo-1.0-py3-none-any.whl", "pip")
    recorder.record("demo", "demo-1.0.tar.gz", "uv")
    assert recorder.pending() == 4
    assert db.query("SELECT COUNT(*) FROM download_counts")[0][0] == 0  # not on the hot path
    assert recorder.flush() == 4
    recorder.record("demo", "demo-1.0-py3-none-any.whl", "pip")
    recorder.close()
    rows = {tuple(r[:4]): r[4] for r in db.query("SELECT * FROM download_counts")}
    assert rows == {("2024-05-01", "demo", "demo-1.0-py3-none-any.whl", "pip"): 4,
                    ("2024-05-01", "demo", "demo-1.0.tar.gz", "uv"): 1}


def test_two_recorders_on_one_file_add_up(tmp_path):
    """Two workers flushing the same key: an upsert that adds, never overwrites."""
    path = tmp_path / "db.sqlite3"
    first, second = (DownloadRecorder(database(path), 3600, clock=lambda: "2024-05-01") for _ in range(2))
    for recorder, n in ((first, 5), (second, 7)):
        for _ in range(n):
            recorder.record("demo", "demo-1.0.tar.gz", "pip")
        recorder.flush()
    assert Database(path).query("SELECT count FROM download_counts")[0][0] == 12


def test_pip_downloads_are_counted_exactly_and_head_304_metadata_are_not(repo_dirs, tmp_path):
    pk = repo_dirs["packages"]
    top = make_wheel(pk / "obs-top", "obs-top", "1.0", requires_dist=["obs-leaf"])
    leaf = make_wheel(pk / "obs-leaf", "obs-leaf", "1.0")
    make_sdist(pk / "obs-leaf", "obs-leaf", "1.0")
    server = start_server(repo_dirs)
    try:
        for round_ in range(2):
            pip("download", "--index-url", server.index_url, "--no-deps" if round_ else "--only-binary=:all:",
                "-d", str(tmp_path / f"dl{round_}"), "obs-top")
        url = f"{server.url}/packages/obs-leaf/{leaf.name}"
        head = requests.head(url, timeout=10)
        etag = head.headers["ETag"]
        assert requests.get(url, headers={"If-None-Match": etag}, timeout=10).status_code == 304
        assert requests.get(url + ".metadata", timeout=10).status_code == 200
        assert requests.get(url, headers={"User-Agent": "Mozilla/5.0 (X11)"}, timeout=10).status_code == 200
        expected = {(top.name, "pip"): 2, (leaf.name, "pip"): 1, (leaf.name, "browser"): 1}
        assert _wait_for(lambda: _rows(repo_dirs["data"]) == expected), _rows(repo_dirs["data"])
        stats = server.get("/stats").json()["downloads"]
        assert stats["total"] == 4
        assert stats["by_client"] == {"pip": 3, "browser": 1}
        assert stats["top_projects"] == [{"name": "obs-leaf", "downloads": 2}, {"name": "obs-top", "downloads": 2}]
    finally:
        server.stop()


def test_counts_survive_a_graceful_restart(repo_dirs):
    """SIGTERM flushes the buffers: with an hour-long flush interval only shutdown can write."""
    wheel = make_wheel(repo_dirs["packages"] / "restart-me", "restart-me", "1.0")
    env = {"PYPI_REPO_DOWNLOADS_FLUSH_SECONDS": "3600"}
    server = start_server(repo_dirs, env)
    try:
        for _ in range(25):  # new connection each time: both workers take a share
            assert server.get(f"/packages/restart-me/{wheel.name}").status_code == 200
        assert _rows(repo_dirs["data"]) == {}
    finally:
        server.stop()
    assert server.proc.returncode == 0
    assert _rows(repo_dirs["data"]) == {(wheel.name, "other"): 25}
    again = start_server(repo_dirs, env)
    try:
        assert again.get(f"/packages/restart-me/{wheel.name}").status_code == 200
        assert again.get("/stats").json()["downloads"]["total"] == 25  # the new one is still buffered
    finally:
        again.stop()
    assert _rows(repo_dirs["data"]) == {(wheel.name, "other"): 26}


def test_download_counts_for_the_project_page(app, client, add_dist):
    wheel = add_dist("page-proj", "2.0")
    for _ in range(3):
        client.get(f"/packages/page-proj/{wheel.name}", headers={"User-Agent": "uv/0.5.0"})
    app.extensions["pypi_repo"].extras["downloads"].flush()
    counts = download_counts(app.extensions["pypi_repo"], "page-proj")
    assert counts == {"total": 3, "last_30_days": 3, "by_file": {wheel.name: 3}, "by_client": {"uv": 3}}
    assert download_counts(app.extensions["pypi_repo"].settings, "page-proj")["total"] == 3
    assert download_counts(app.extensions["pypi_repo"].settings, "never-downloaded")["total"] == 0
    page = client.get("/project/page-proj/").get_data(as_text=True)
    assert "3 in all, 3 in the last 30 days" in page
    assert "<span>3 downloads</span>" in page  # on the file card


def test_counting_off_writes_nothing(overrides, add_dist, repo_dirs):
    from pypi_repo import create_app

    app = create_app({**overrides, "count_downloads": False, "metrics": False})
    wheel = add_dist("quiet", "1.0")
    assert app.test_client().get(f"/packages/quiet/{wheel.name}").status_code == 200
    assert "on_download" not in app.extensions["pypi_repo"].extras
    assert "downloads" not in app.test_client().get("/stats").json
