"""``/metrics`` (issue 6): valid Prometheus text, summed across Gunicorn workers, bounded
labels, optional protection; request ids in headers and in every log line."""
from __future__ import annotations

import json
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import start_server
from distbuilder import make_wheel

from pypi_repo import create_app, metrics

pytestmark = pytest.mark.xdist_group("observability")


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, parsed by prometheus-client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_add_up_across_two_gunicorn_workers(repo_dirs):
    wheel = make_wheel(repo_dirs["packages"] / "metered", "metered", "1.0")
    server = start_server(repo_dirs, workers=2)
    try:
        pids = set()
        for _ in range(30):  # a new connection per request: the kernel spreads them over the workers
            pids.add(server.get("/health").json()["pid"])
            assert server.get("/simple/metered/").status_code == 200
            assert server.get(f"/packages/metered/{wheel.name}", headers={"User-Agent": "pip/24.0"}).status_code == 200
        assert server.get("/packages/metered/nope-1.0.tar.gz").status_code == 404
        assert len(pids) >= 2, "both workers must have answered"
        # page-cache counters sync at most once a second per worker, on a request: wait, then
        # let each worker answer once more (a /health, which no exact count below covers)
        time.sleep(1.2)
        synced: set[int] = set()
        for _ in range(60):
            synced.add(server.get("/health").json()["pid"])
            if synced >= pids:
                break
        scrapes = [_samples(server.get("/metrics").text) for _ in range(6)]
    finally:
        server.stop()
    for samples in scrapes:  # whichever worker answers, the totals are the service's
        assert _value(samples, "pypi_repo_http_requests_total", route="simple.project_detail", method="GET",
                      status="200") == 30
        assert _value(samples, "pypi_repo_http_requests_total", route="files.download", method="GET",
                      status="200") == 30
        assert _value(samples, "pypi_repo_http_requests_total", route="files.download", method="GET",
                      status="404") == 1
        assert _value(samples, "pypi_repo_http_request_duration_seconds_count", route="simple.project_detail") == 30
        assert _value(samples, "pypi_repo_downloads_total") == 30
        assert _value(samples, "pypi_repo_downloads_by_client_total", client="pip") == 30
        assert _value(samples, "pypi_repo_index_projects") == 1
        assert _value(samples, "pypi_repo_index_files", kind="wheel") == 1
        assert _value(samples, "pypi_repo_index_bytes") == wheel.stat().st_size
        assert _value(samples, "pypi_repo_service_processes") >= 3  # master + 2 workers
        assert _value(samples, "process_resident_memory_bytes") > 0
    last = scrapes[-1]
    hits = _value(last, "pypi_repo_page_cache_lookups_total", result="hit")
    misses = _value(last, "pypi_repo_page_cache_lookups_total", result="miss")
    assert misses >= 1 and hits + misses >= 20  # most syncs happened (at most 1 s of lag per worker)
    routes = {dict(labels).get("route") for (name, labels) in last if name == "pypi_repo_http_requests_total"}
    assert routes <= {"simple.project_detail", "files.download", "ops.health", "metrics.scrape"}


def test_upload_and_auth_counters_are_exported(client):
    before = _samples(client.get("/metrics").text)
    metrics.record_upload(True)
    metrics.record_upload(False)
    metrics.record_upload(False)
    metrics.record_auth_failure()
    after = _samples(client.get("/metrics").text)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert delta[("pypi_repo_uploads_total", (("result", "accepted"),))] == 1
    assert delta[("pypi_repo_uploads_total", (("result", "rejected"),))] == 2
    assert delta[("pypi_repo_auth_failures_total", ())] == 1


def test_refused_upload_counts_an_auth_failure_and_a_rejection(app, client):
    import base64

    app.extensions["pypi_repo"].auth.add_user("uploader", "right-password-123")
    before = _samples(client.get("/metrics").text)
    bad = base64.b64encode(b"uploader:wrong-password").decode()
    resp = client.post("/", data={":action": "file_upload"}, headers={"Authorization": f"Basic {bad}"})
    assert resp.status_code == 401
    after = _samples(client.get("/metrics").text)
    assert after[("pypi_repo_auth_failures_total", ())] - before.get(("pypi_repo_auth_failures_total", ()), 0) == 1
    key = ("pypi_repo_uploads_total", (("result", "rejected"),))
    assert after[key] - before.get(key, 0) == 1


def test_unknown_paths_share_one_route_label(client):
    for i in range(5):
        client.get(f"/no/such/path/{i}")
    routes = {dict(labels).get("route") for (name, labels) in _samples(client.get("/metrics").text)
              if name == "pypi_repo_http_requests_total"}
    assert not any(r and "/" in r for r in routes)
    assert "unmatched" in routes


@pytest.mark.parametrize(
    ("settings", "headers", "status"),
    [
        ({"metrics_token": "s3cret"}, {}, 403),
        ({"metrics_token": "s3cret"}, {"Authorization": "Bearer wrong"}, 403),
        ({"metrics_token": "s3cret"}, {"Authorization": "Bearer s3cret"}, 200),
        ({"metrics_allow": "10.0.0.0/8"}, {}, 403),
        ({"metrics_allow": "10.0.0.0/8, 127.0.0.1"}, {}, 200),
        ({"metrics_allow": "10.0.0.0/8", "metrics_token": "t"}, {"Authorization": "Bearer t"}, 200),
        ({"metrics": False}, {}, 404),
        # private index: without its own protection /metrics needs the index's credentials,
        # with a token it answers the bearer (a Prometheus scrape cannot send both)
        ({"private": True}, {}, 401),
        ({"private": True, "metrics_token": "s3cret"}, {"Authorization": "Bearer s3cret"}, 200),
        ({"private": True, "metrics_token": "s3cret"}, {}, 403),
    ],
)
def test_metrics_protection(overrides, settings, headers, status):
    app = create_app({**overrides, **settings})
    assert app.test_client().get("/metrics", headers=headers).status_code == status


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [("abc-123_XY.z", True), ("x" * 129, False), ("bad id; Injected: 1", False), ("<script>", False)],
)
def test_request_id_is_echoed_only_when_sane(client, incoming, kept):
    got = client.get("/health", headers={"X-Request-ID": incoming}).headers["X-Request-ID"]
    assert (got == incoming) is kept
    assert got and len(got) <= 128 and "\n" not in got


def test_request_id_is_in_every_app_log_line_and_the_access_log(repo_dirs):
    make_wheel(repo_dirs["packages"] / "logged", "logged", "1.0")
    server = start_server(repo_dirs, {"PYPI_REPO_LOG_FORMAT": "json"}, workers=1)
    try:
        resp = requests.get(server.url + "/simple/logged/", headers={"X-Request-ID": "trace-42"}, timeout=10)
        generated = server.get("/packages/logged/missing-1.0.tar.gz").headers["X-Request-ID"]
    finally:
        server.stop()
    assert resp.headers["X-Request-ID"] == "trace-42"
    access = [json.loads(line) for line in (repo_dirs["logs"] / "access.log").read_text().splitlines()]
    mine = [a for a in access if a.get("request_id") == "trace-42"]
    assert len(mine) == 1
    assert mine[0]["path"] == "/simple/logged/" and mine[0]["status"] == 200 and mine[0]["method"] == "GET"
    assert isinstance(mine[0]["duration_ms"], int) and mine[0]["client"] == "127.0.0.1"
    assert any(a.get("request_id") == generated and a["status"] == 404 for a in access)


def test_app_log_records_carry_the_request_id(app, client, caplog):
    import logging

    from pypi_repo.logs import JsonFormatter, RequestContextFilter

    handler = logging.Handler()
    seen = []
    handler.emit = lambda record: seen.append(JsonFormatter().format(record))
    handler.addFilter(RequestContextFilter())

    @app.get("/_log_probe")
    def probe():
        logging.getLogger("pypi_repo.probe").warning("inside")
        return "ok"

    logger = logging.getLogger("pypi_repo.probe")
    logger.addHandler(handler)
    try:
        client.get("/_log_probe", headers={"X-Request-ID": "probe-1"})
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(s) for s in seen)
    assert inside["request_id"] == "probe-1" and inside["client"] == "127.0.0.1" and inside["route"] == "probe"
    assert "request_id" not in outside
