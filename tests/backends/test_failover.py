"""Failover behind the shipped nginx configuration (issue 14, "Load balancer and failover").

Three real Gunicorn nodes share one PostgreSQL and one SeaweedFS bucket; Debian's nginx runs
``deploy/pypi_repo.conf`` in front of them. Under a bounded load of project pages and wheel
downloads, one node's whole process tree (master and workers) is killed with SIGKILL: no
client GET fails (nginx retries them on the next node) except, rarely, one whose headers
the victim had sent but not its body (docs/scale-out.md), uploads streamed through nginx
during the loss either succeed or fail with a retryable 502/503 (never retried by nginx),
and afterwards every object in the bucket is listed, with its sha256, on every survivor.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from urllib3 import encode_multipart_formdata

from conftest import make_repo_dirs, start_server  # noqa: E402
from distbuilder import make_wheel  # noqa: E402
from nginxkit import holds_file_under, kill_tree, start_nginx  # noqa: E402

from .conftest import BUCKET
from .test_two_nodes_s3 import PASSWORD, _aws, _manage

pytestmark = [pytest.mark.xdist_group("backends"), pytest.mark.e2e, pytest.mark.multinode]

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
LOAD_THREADS = 4
LOAD_S = 6.0
KILL_AT_S = 2.0
SLOW_UPLOADS = 6


class SlowBody:
    """A request body with a Content-Length, sent in pieces over ``seconds`` (an upload in flight)."""

    def __init__(self, data: bytes, seconds: float, pieces: int = 20) -> None:
        self.data, self.pause, self.pieces = data, seconds / pieces, pieces

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        step = -(-len(self.data) // self.pieces)
        for start in range(0, len(self.data), step):
            yield self.data[start:start + step]
            time.sleep(self.pause)


def _slow_upload(url: str, wheel: Path, seconds: float) -> int | str:
    name, version = wheel.name.split("-")[:2]
    body, content_type = encode_multipart_formdata({
        ":action": "file_upload", "protocol_version": "1", "name": name, "version": version,
        "sha256_digest": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "content": (wheel.name, wheel.read_bytes(), "application/octet-stream")})
    try:
        resp = requests.post(url + "/legacy/", data=SlowBody(body, seconds), auth=("alice", PASSWORD),
                             headers={"Content-Type": content_type}, timeout=30)
        return resp.status_code
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"


def _load(url: str, wheel_url: str, wheel_bytes: bytes, stop: threading.Event, results: list) -> None:
    """GET pages (HTML, JSON) and the wheel in turn; record (ok, what, seconds) per request."""
    session = requests.Session()
    paths = ["/simple/failnode/", "/simple/", wheel_url, "/project/failnode/"]
    i = 0
    while not stop.is_set():
        path = paths[i % len(paths)]
        i += 1
        began = time.monotonic()
        try:
            resp = session.get(url + path, headers=JSON if path == "/simple/failnode/" else {}, timeout=20)
            ok = resp.status_code == 200 and (path != wheel_url or resp.content == wheel_bytes)
            what = f"{path} {resp.status_code}"
        except requests.RequestException as exc:
            ok, what = False, f"{path} {type(exc).__name__}: {exc}"
        results.append((ok, what, time.monotonic() - began))


def _node_receiving_an_upload(nodes: list, timeout_s: float = 5.0):
    """The node whose workers hold an upload's spool file (``data_dir/tmp``) open right now."""
    deadline = time.monotonic() + timeout_s
    while True:
        for node in nodes:
            if holds_file_under(node.proc.pid, node.dirs["data"] / "tmp"):
                return node
        assert time.monotonic() < deadline, "no node received the uploads"
        time.sleep(0.02)


def _listed(base: str, project: str) -> dict[str, str]:
    resp = requests.get(f"{base}/simple/{project}/", headers=JSON, timeout=10)
    assert resp.status_code in (200, 404), resp.text
    return {f["filename"]: f["hashes"]["sha256"] for f in resp.json()["files"]} if resp.status_code == 200 else {}


def test_killing_a_node_under_load_fails_no_get_and_leaves_no_half_upload(pg_engine, weed_engine, tmp_path):
    prefix = f"lb-{uuid.uuid4().hex[:8]}"
    env = {"PYPI_REPO_DATABASE_URL": pg_engine.schema_url(),
           "PYPI_REPO_STORAGE_URL": f"s3://{BUCKET}/{prefix}", "PYPI_REPO_SECRET_KEY": "same-on-every-node",
           **_aws(weed_engine)}
    nodes, nginx = [], None
    all_dirs = []
    for i in range(3):
        (tmp_path / f"n{i}").mkdir()
        all_dirs.append(make_repo_dirs(tmp_path / f"n{i}"))
    _manage(all_dirs[0], env, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    try:
        for i, dirs in enumerate(all_dirs):
            nodes.append(start_server(dirs, {**env, "PYPI_REPO_PIDFILE": str(dirs["data"] / "master.pid")},
                                      workers=2))
        nginx = start_nginx([n.port for n in nodes])
        wheel = make_wheel(tmp_path / "dist", "failnode", "1.0")
        status = _slow_upload(nginx.url, wheel, 0.0)
        assert status == 200, status
        wheel_url = f"/packages/failnode/{wheel.name}"
        uploads = [make_wheel(tmp_path / f"up{i}", "failnode", f"2.{i}") for i in range(SLOW_UPLOADS)]

        stop, results, outcomes = threading.Event(), [], {}
        load = [threading.Thread(target=_load, args=(nginx.url, wheel_url, wheel.read_bytes(), stop, results))
                for _ in range(LOAD_THREADS)]
        for t in load:
            t.start()
        time.sleep(KILL_AT_S - 0.5)
        senders = [threading.Thread(target=lambda w=w: outcomes.__setitem__(w.name, _slow_upload(nginx.url, w, 1.5)))
                   for w in uploads]
        for t in senders:
            t.start()
        victim = _node_receiving_an_upload(nodes)  # so one upload is surely cut by the loss
        killed = kill_tree(victim.proc.pid)
        survivors_nodes = [n for n in nodes if n is not victim]
        victim.proc.wait(timeout=10)
        time.sleep(LOAD_S - KILL_AT_S)
        stop.set()
        for t in load + senders:
            t.join(timeout=40)

        failed = [what for ok, what, _ in results if not ok]
        slowest = max(s for _, _, s in results)
        print(f"\nfailover: killed {len(killed)} processes {killed}; {len(results)} GETs, {len(failed)} failed, "
              f"slowest {slowest:.2f} s; uploads {sorted(outcomes.values(), key=str)}")
        if failed:
            print("failed:", failed[:10], "\nnginx:", [line for line in nginx.error_log().splitlines()
                                                    if "[error]" in line or "[warn]" in line][:20])
        assert len(killed) >= 3  # the master and both workers (and the warm-up child, if still running)
        assert 502 in outcomes.values(), outcomes  # the upload streaming to the victim: cut, not re-sent
        # The one failure nginx cannot hide: a response whose headers had left the victim when
        # it was killed, its body not (Gunicorn writes the two with separate sends, and nginx
        # passes headers on at once). Seen in 3 runs of 25 (1 or 2 GETs); it must be a GET cut on
        # the victim, as nginx logs it. Any other failed GET fails the test.
        cut = [what for what in failed if "IncompleteRead(0 bytes read" in what]
        cut_on_victim = [line for line in nginx.error_log().splitlines()
                         if "upstream prematurely closed connection while reading upstream" in line
                         and '"GET ' in line and f"127.0.0.1:{victim.port}/" in line]
        assert failed == cut and len(cut) <= len(cut_on_victim), (failed[:10], cut_on_victim)
        assert len(results) > 20
        assert set(outcomes) == {w.name for w in uploads}
        assert all(v in (200, 502, 503) for v in outcomes.values()), outcomes
        assert any(f" up=127.0.0.1:{victim.port}" in line for line in nginx.access_log())  # the victim had served

        # No half-stored or unlisted file: the bucket and every survivor's page agree, hashes included.
        survivors = [nginx.url] + [n.url for n in survivors_nodes]
        objects = {o["Key"].rsplit("/", 1)[1]: o["Key"] for o in
                   weed_engine.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/failnode/").get("Contents", [])}
        expected = {wheel.name} | {name for name, v in outcomes.items() if v == 200}
        by_name = {w.name: hashlib.sha256(w.read_bytes()).hexdigest() for w in [wheel, *uploads]}
        for base in survivors:
            assert _listed(base, "failnode") == {n: by_name[n] for n in objects}, base
        assert expected <= set(objects)
        for name, key in objects.items():
            body = weed_engine.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == by_name[name], name
        # A failed upload is retried by the client (as twine would): it lands once, listed everywhere.
        for w in uploads:
            if outcomes[w.name] != 200:
                assert _slow_upload(nginx.url, w, 0.0) == 200
        for base in survivors:
            assert set(_listed(base, "failnode")) == set(by_name), base
        log = nginx.access_log()
        retried = [line for line in log if line.startswith("GET ") and "," in line.split(" up=", 1)[1]]
        posts = [line for line in log if line.startswith("POST ")]
        print(f"failover: nginx retried {len(retried)} GETs on another node; {len(posts)} POSTs, "
              f"{sum(' 502 ' in p for p in posts)} answered 502")
        assert retried  # the failover happened (and was invisible to the clients)
        assert posts and not [p for p in posts if "," in p.split(" up=", 1)[1]]  # an upload is never re-sent
    finally:
        if nginx is not None:
            nginx.stop()
        for node in nodes:
            node.stop()


def test_an_upload_retried_after_a_node_died_between_put_and_serial_bump_is_listed(pg_engine, weed_engine, tmp_path):
    """A node killed after its ``PutObject`` but before the serial bump leaves the object in
    the bucket, unlisted (every node's listing is cached at the old serial). The client's
    retry, with the same bytes, is answered 200 ("already stored"): it must also make the
    file listed, on every node, not leave it invisible until some later write."""
    from pypi_repo.backends.s3 import SHA256_META

    prefix = f"orphan-{uuid.uuid4().hex[:8]}"
    env = {"PYPI_REPO_DATABASE_URL": pg_engine.schema_url(),
           "PYPI_REPO_STORAGE_URL": f"s3://{BUCKET}/{prefix}", **_aws(weed_engine)}
    dirs = make_repo_dirs(tmp_path)
    _manage(dirs, env, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    first = make_wheel(tmp_path / "d1", "orphan", "1.0")
    orphan = make_wheel(tmp_path / "d2", "orphan", "2.0")
    node = start_server(dirs, env, workers=1)
    try:
        assert _slow_upload(node.url, first, 0.0) == 200
        assert set(_listed(node.url, "orphan")) == {first.name}  # the listing is cached at this serial
        # what the killed node left: the object with its sha256 metadata, and no serial bump
        weed_engine.client().put_object(Bucket=BUCKET, Key=f"{prefix}/orphan/{orphan.name}", Body=orphan.read_bytes(),
                                        Metadata={SHA256_META: hashlib.sha256(orphan.read_bytes()).hexdigest()})
        assert _slow_upload(node.url, orphan, 0.0) == 200  # the client's retry: "already stored"
        assert set(_listed(node.url, "orphan")) == {first.name, orphan.name}
        assert _slow_upload(node.url, orphan, 0.0) == 200  # and again: still one file, still listed
        assert set(_listed(node.url, "orphan")) == {first.name, orphan.name}
    finally:
        node.stop()
