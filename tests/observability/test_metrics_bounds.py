"""Metrics that stay bounded and never take a worker down (issues 9 and 10): dead workers'
files are folded into one archive, per-project labels come from the database for the top
projects only, and a full data disk cannot SIGBUS a worker through an mmapped file."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from diskfull import fill_disk, mounted_tmpfs
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import start_server
from distbuilder import make_wheel
from pypi_repo import create_app
from pypi_repo.metrics_store import default_dir

pytestmark = pytest.mark.xdist_group("observability")


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _workers(master_pid: int) -> set[int]:
    return {p.pid for p in psutil.Process(master_pid).children()
            if "warmup" not in " ".join(p.cmdline())}


def _fresh_get(url: str) -> requests.Response:
    return requests.get(url, headers={"Connection": "close"}, timeout=10)


def test_recycled_workers_files_are_folded_and_no_count_is_lost(repo_dirs):
    make_wheel(repo_dirs["packages"] / "cycled", "cycled", "1.0")
    server = start_server(repo_dirs, {"PYPI_REPO_MAX_REQUESTS": "4", "PYPI_REPO_MAX_REQUESTS_JITTER": "0"},
                          workers=2)
    directory = default_dir(repo_dirs["data"])
    try:
        assert not (repo_dirs["data"] / "prometheus").exists()  # not on the data disk
        answered = 0
        for _ in range(40):  # ~10 worker generations
            try:
                answered += _fresh_get(server.url + "/simple/cycled/").status_code == 200
            except requests.ConnectionError:
                pass  # gthread may reset a connection a recycling worker accepted (not ours to fix here)
        assert answered >= 30
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the last recycled workers exit after answering
            live = {str(pid) for pid in _workers(server.proc.pid)}
            dead = [p.name for p in directory.glob("*_*.db")
                    if not p.stem.endswith("archive") and p.stem.rsplit("_", 1)[1] not in live]
            if not dead:
                break
            time.sleep(0.1)
        assert not dead, dead
        files = sorted(p.name for p in directory.glob("*.db"))
        text = _fresh_get(server.url + "/metrics").text
    finally:
        server.stop()
    assert len(files) <= 2 + 2 * 2, files  # two archives + counter/histogram per live worker
    assert {"counter_archive.db", "histogram_archive.db"} <= set(files)
    samples = _samples(text)
    key = ("pypi_repo_http_requests_total", (("method", "GET"), ("route", "simple.project_detail"), ("status", "200")))
    assert samples[key] == answered  # every answered request of every dead generation is counted
    count_key = ("pypi_repo_http_request_duration_seconds_count", (("route", "simple.project_detail"),))
    assert samples[count_key] == answered
    assert not directory.exists()  # removed when the master exits


def test_per_project_downloads_are_bounded_and_come_from_the_database(overrides, add_dist):
    app = create_app({**overrides, "metrics_top_projects": 2, "metrics_index_ttl": 0})
    client = app.test_client()
    for name, count in (("one", 1), ("two", 2), ("three", 3)):
        wheel = add_dist(name, "1.0")
        for _ in range(count):
            assert client.get(f"/packages/{name}/{wheel.name}").status_code == 200
    app.extensions["pypi_repo"].extras["downloads"].flush()
    samples = _samples(client.get("/metrics").text)
    per_project = {dict(labels)["project"]: v for (name, labels), v in samples.items()
                   if name == "pypi_repo_project_downloads_total"}
    assert per_project == {"three": 3, "two": 2}
    assert not any(name == "pypi_repo_downloads_total" and labels for (name, labels) in samples)


@pytest.fixture
def full_data_disk(tmp_path):
    with mounted_tmpfs(tmp_path / "fulldata", "24m") as mount_point:
        yield mount_point


def _fill(directory: Path) -> None:
    fill_disk(directory)
    assert os.statvfs(directory).f_bavail == 0


def test_full_data_disk_reads_keep_working_and_no_worker_dies(repo_dirs, full_data_disk):
    dirs = {**repo_dirs, "data": full_data_disk}
    wheels = [make_wheel(repo_dirs["packages"] / f"full{i}", f"full{i}", "1.0") for i in range(3)]
    server = start_server(dirs, workers=2)
    try:
        assert _fresh_get(server.url + "/simple/full0/").status_code == 200
        before = _workers(server.proc.pid)
        _fill(full_data_disk)
        statuses = []
        for i in range(30):  # new label values too: each one grows a worker's metrics file
            wheel = wheels[i % 3]
            project = wheel.parent.name
            statuses.append(_fresh_get(f"{server.url}/simple/{project}/").status_code)
            statuses.append(_fresh_get(f"{server.url}/packages/{project}/{wheel.name}").status_code)
            statuses.append(_fresh_get(f"{server.url}/nothing-{i}/here/{i}").status_code)
        scrape = _fresh_get(server.url + "/metrics")
        after = _workers(server.proc.pid)
        alive = server.proc.poll() is None
    finally:
        server.stop()
    assert statuses == [200, 200, 404] * 30
    assert scrape.status_code == 200
    assert alive and after == before, "a worker died (and was replaced)"
    assert os.path.getsize(full_data_disk / "filler") > 0


def test_no_room_for_metrics_files_turns_multiprocess_mode_off(full_data_disk, tmp_path):
    from pypi_repo.metrics_store import choose_dir

    _fill(full_data_disk)
    assert choose_dir(full_data_disk, shm=full_data_disk) is None  # tmpfs and data disk both full
    assert choose_dir(full_data_disk, shm=tmp_path / "no-shm") is None
    roomy = tmp_path / "roomy"
    roomy.mkdir()
    assert choose_dir(full_data_disk, shm=roomy) == default_dir(full_data_disk, roomy)


def test_tmpfs_dirs_of_killed_masters_are_swept(tmp_path):
    from pypi_repo.metrics_store import choose_dir, reset_dir

    dead = subprocess.Popen(["true"])
    dead.wait()
    shm = tmp_path / "shm"
    shm.mkdir()
    killed, live, old, fresh = (shm / f"pypi_repo-metrics-{n}" for n in ("killed", "live", "old", "fresh"))
    reset_dir(killed, master_pid=dead.pid)
    reset_dir(live)
    old.mkdir()
    fresh.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    chosen = choose_dir(tmp_path / "data", shm=shm)
    assert chosen is not None and chosen.parent == shm
    assert not killed.exists() and not old.exists()
    assert live.exists() and fresh.exists()


def test_a_second_master_shares_the_directory_and_the_last_one_out_removes_it(tmp_path):
    """A USR2 upgrade (or a second start that will fail to bind) must not wipe the files of
    the master that is serving, nor remove the directory under it when it exits."""
    from pypi_repo.metrics_store import live_owners, remove_dir, reset_dir

    directory = tmp_path / "pypi_repo-metrics-shared"
    other = subprocess.Popen(["sleep", "30"])  # stands in for the serving master
    try:
        assert reset_dir(directory, master_pid=other.pid)
        (directory / f"counter_{other.pid}.db").write_bytes(b"x")
        assert not reset_dir(directory)  # this process: a second master
        assert (directory / f"counter_{other.pid}.db").exists()
        assert live_owners(directory) == {other.pid, os.getpid()}
        remove_dir(directory)  # the second one exits first
        assert directory.exists() and live_owners(directory) == {other.pid}
    finally:
        other.kill()
        other.wait()
    remove_dir(directory, master_pid=other.pid)
    assert not directory.exists()
