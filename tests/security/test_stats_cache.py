"""``/stats`` reuses one walk of the tree, so it cannot be used to load the server (issue 10)."""
from __future__ import annotations

from pypi_repo import create_app


def test_stats_walks_the_tree_once_per_ttl_but_shows_new_projects_at_once(overrides, add_dist):
    add_dist("alpha", "1.0")
    client = create_app({**overrides, "stats_cache_s": 3600}).test_client()
    assert client.get("/stats").get_json()["files"] == 1
    add_dist("alpha", "1.1")  # a new file in an existing project: the cached walk stands
    assert client.get("/stats").get_json()["files"] == 1
    add_dist("beta", "1.0")  # a new project changes the root directory: walked again
    doc = client.get("/stats").get_json()
    assert doc["projects"] == 2 and doc["files"] == 3


def test_stats_cache_off_walks_every_time(overrides, add_dist):
    add_dist("alpha", "1.0")
    client = create_app({**overrides, "stats_cache_s": 0}).test_client()
    assert client.get("/stats").get_json()["files"] == 1
    add_dist("alpha", "1.1")
    assert client.get("/stats").get_json()["files"] == 2
