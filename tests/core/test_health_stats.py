"""/health really checks; /stats numbers match the tree."""
from __future__ import annotations

import shutil

from pypi_repo import create_app


def test_health_ok(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["status"] == "ok"
    assert set(doc["checks"]) == {"packages_dir", "data_dir", "disk", "index", "database", "master"}
    assert doc["version"] and doc["uptime_s"] >= 0
    assert resp.headers["Cache-Control"] == "no-store"


def test_health_503_when_packages_dir_gone(client, repo_dirs):
    shutil.rmtree(repo_dirs["packages"])
    resp = client.get("/health")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["packages_dir"]["ok"] is False


def test_health_503_when_data_dir_not_writable(overrides, repo_dirs):
    app = create_app(overrides)
    blocker = repo_dirs["data"]
    shutil.rmtree(blocker)
    blocker.write_text("a file where the data directory should be")
    resp = app.test_client().get("/health")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["data_dir"]["ok"] is False


def test_health_503_when_disk_below_threshold(overrides):
    app = create_app({**overrides, "min_free_disk_mb": 10**12})
    doc = app.test_client().get("/health").get_json()
    assert doc["status"] == "degraded" and doc["checks"]["disk"]["ok"] is False
    assert app.test_client().get("/health/live").status_code == 200  # not a reason to restart (issue 9)


def test_stats_match_the_tree(client, add_dist):
    files = [
        add_dist("alpha", "1.0"), add_dist("alpha", "1.0", kind="sdist"),
        add_dist("beta", "2.0"), add_dist("beta", "2.1"), add_dist("beta", "2.1", kind="sdist"),
    ]
    doc = client.get("/stats").get_json()
    assert doc["projects"] == 2
    assert doc["files"] == 5 and doc["wheels"] == 3 and doc["sdists"] == 2
    assert doc["total_bytes"] == sum(f.stat().st_size for f in files)
    assert doc["largest_projects"][0]["name"] == "beta"
    assert {f["filename"] for f in doc["newest_files"]} == {f.name for f in files}
    assert doc["memory"]["worker_rss_bytes"] > 0 and doc["uptime_s"] >= 0
    add_dist("gamma", "0.1")
    doc = client.get("/stats").get_json()
    assert doc["projects"] == 3 and doc["files"] == 6


def test_logs_written(client, repo_dirs, add_dist):
    add_dist("broken", "1.0")
    (repo_dirs["packages"] / "broken" / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    client.get("/simple/broken/")
    text = (repo_dirs["logs"] / "pypi_repo.log").read_text()
    assert "no usable core metadata" in text
    assert "no usable core metadata" in (repo_dirs["logs"] / "error.log").read_text()
