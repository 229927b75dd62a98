"""The package store on a real S3 bucket (SeaweedFS) with a real PostgreSQL (issue 14).

Two ``S3PackageStore`` instances with their own cache directories stand for two nodes: they
share the bucket prefix and the database, as nodes do. Freshness is the change serial, so
what one writes the other lists at once; an object put by another tool appears after
``refresh()`` (``manage_repo.py reindex``).
"""
from __future__ import annotations

import hashlib
import io
import os
import uuid
from pathlib import Path

import pytest

from distbuilder import make_wheel  # noqa: E402

from pypi_repo.backends import BackendConfigError, BackendUnavailable, open_database
from pypi_repo.backends.s3 import S3BlobStore, make_client
from pypi_repo.blobcache import FileCache
from pypi_repo.config import load_settings
from pypi_repo.distfiles import parse_distribution_filename
from pypi_repo.errors import FileExists, ProjectNotFound
from pypi_repo.index import ProjectIndex
from pypi_repo.s3store import S3PackageStore, check_storage_url
from pypi_repo.simple_api import JSON_V1

from .conftest import BUCKET

pytestmark = pytest.mark.xdist_group("backends")


@pytest.fixture
def shared(pg_engine, s3_client, tmp_path):
    """(prefix, database URL) of one index; ``node(name)`` opens a store on them."""
    prefix = f"s-{uuid.uuid4().hex[:10]}"
    url = pg_engine.schema_url()
    dbs = []

    def node(name: str, client=None) -> S3PackageStore:
        db = open_database(url, tmp_path)
        dbs.append(db)
        blob = S3BlobStore(BUCKET, prefix, client=client or s3_client, spool_dir=tmp_path)
        return S3PackageStore(blob, db, tmp_path / name, 64 << 20)

    yield prefix, node
    for db in dbs:
        db.close()


def _store(store: S3PackageStore, wheel: Path, **kw):
    with open(wheel, "rb") as fh:
        return store.store(parse_distribution_filename(wheel.name), fh, **kw)


def test_an_upload_on_one_node_is_listed_on_the_other_at_once_with_its_hash_and_size(shared, tmp_path):
    _, node = shared
    a, b = node("a"), node("b")
    assert b.projects() == {}
    wheel = make_wheel(tmp_path / "dist", "s3demo", "1.0", requires_python=">=3.8")
    stored = _store(a, wheel)
    assert stored.created and stored.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert list(b.projects()) == ["s3demo"]  # B listed the empty bucket before: the serial moved
    detail = ProjectIndex(b, tmp_path / "b-data").project_detail("s3demo")
    (file,) = detail.files
    assert (file.filename, file.sha256, file.size) == (wheel.name, stored.sha256, wheel.stat().st_size)
    assert file.requires_python == ">=3.8" and file.core_metadata_sha256
    assert file.upload_time.startswith("20")
    path, st = b.locate_file("s3demo", wheel.name)
    assert path.read_bytes() == wheel.read_bytes() and st.st_size == wheel.stat().st_size


def test_the_uploading_node_keeps_the_spooled_bytes_in_its_cache(shared, tmp_path):
    _, node = shared
    a = node("a")
    wheel = make_wheel(tmp_path / "dist", "adopted", "1.0")
    _store(a, wheel)
    (entry,) = a.scan_project("adopted")
    assert entry.path.read_bytes() == wheel.read_bytes()  # in the cache already, under the listed etag
    assert not [p for p in (tmp_path / "a" / "spool").iterdir()]


def test_the_page_cache_of_another_node_is_stale_once_the_serial_moves(shared, tmp_path):
    _, node = shared
    a, b = node("a"), node("b")
    _store(a, make_wheel(tmp_path / "d1", "pagecache", "1.0"))
    index_b = ProjectIndex(b, tmp_path / "b-data")
    first = index_b.project_page("pagecache", JSON_V1)
    assert index_b.project_page("pagecache", JSON_V1) is first  # fresh: one serial read
    _store(a, make_wheel(tmp_path / "d2", "pagecache", "2.0"))
    second = index_b.project_page("pagecache", JSON_V1)
    assert second.etag != first.etag and b"pagecache-2.0-py3-none-any.whl" in second.body


def test_uploads_keep_the_identity_rules_of_the_tree(shared, tmp_path):
    _, node = shared
    a = node("a")
    wheel = make_wheel(tmp_path / "d1", "rules", "1.0")
    _store(a, wheel)
    assert not _store(a, wheel).created  # a client retry with the same bytes
    other = make_wheel(tmp_path / "d2", "rules", "1.0", summary="other bytes")
    with pytest.raises(FileExists):
        _store(a, other)
    respelled = tmp_path / "d3" / wheel.name.replace("-1.0-", "-1.0.0-")
    respelled.parent.mkdir()
    respelled.write_bytes(other.read_bytes())
    with pytest.raises(FileExists, match="same wheel"):
        _store(a, respelled)
    assert [e.filename for e in a.scan_project("rules")] == [wheel.name]


def test_yank_unyank_and_remove_are_shared(shared, tmp_path):
    _, node = shared
    a, b = node("a"), node("b")
    wheel = make_wheel(tmp_path / "d", "yanks", "1.0")
    _store(a, wheel)
    assert b.scan_project("yanks")[0].yanked is None
    a.set_yanked("yanks", wheel.name, "broken build")
    assert b.scan_project("yanks")[0].yanked == "broken build"
    b.set_yanked("yanks", wheel.name, None)
    assert a.scan_project("yanks")[0].yanked is None
    a.set_yanked("yanks", wheel.name, "")
    a.remove("yanks", wheel.name)
    assert "yanks" not in b.projects()
    with pytest.raises(ProjectNotFound):
        b.scan_project("yanks")
    _store(b, wheel)  # stored again: not yanked (the yank went with the file)
    assert a.scan_project("yanks")[0].yanked is None


def test_an_object_put_by_another_tool_appears_after_reindex(shared, s3_client, tmp_path):
    prefix, node = shared
    a, b = node("a"), node("b")
    _store(a, make_wheel(tmp_path / "d1", "foreign", "1.0"))
    assert len(b.scan_project("foreign")) == 1
    wheel = make_wheel(tmp_path / "d2", "foreign", "2.0")
    s3_client.put_object(Bucket=BUCKET, Key=f"{prefix}/foreign/{wheel.name}", Body=wheel.read_bytes())
    s3_client.put_object(Bucket=BUCKET, Key=f"{prefix}/handmade/{wheel.name.replace('foreign', 'handmade')}",
                         Body=wheel.read_bytes())
    assert len(b.scan_project("foreign")) == 1  # the cached listing holds until a serial moves
    a.refresh()
    assert len(b.scan_project("foreign")) == 2 and "handmade" in b.projects()
    detail = ProjectIndex(b, tmp_path / "b-data").project_detail("foreign")
    assert {f.sha256 for f in detail.files if f.version == "2.0"} == {hashlib.sha256(wheel.read_bytes()).hexdigest()}


def test_the_file_cache_is_bounded_and_evicts_the_least_recently_used(tmp_path):
    cache = FileCache(tmp_path / "c", 2500)
    paths = [cache.get(f"p/f{i}.whl", "e1", lambda: io.BytesIO(b"x" * 1000)) for i in range(2)]
    os.utime(paths[0], ns=(1, 1))  # f0: used long ago
    cache.get("p/f1.whl", "e1", lambda: pytest.fail("a hit must not fetch"))
    third = cache.get("p/f2.whl", "e1", lambda: io.BytesIO(b"y" * 1000))
    assert not paths[0].exists() and paths[1].exists() and third.exists()
    newer = cache.get("p/f1.whl", "e2", lambda: io.BytesIO(b"z" * 10))  # a new etag replaces the old copy
    assert newer.read_bytes() == b"z" * 10 and not paths[1].exists()


@pytest.mark.parametrize("url", ["s3://", "s3://Bad_Bucket/p", "s3://bucket:9000/p", "gs://bucket/p",
                                 "s3://bucket/../p"])
def test_a_wrong_storage_url_is_refused(url, tmp_path):
    settings = load_settings({"storage_url": url, "packages_dir": tmp_path / "p", "data_dir": tmp_path / "d"})
    with pytest.raises(BackendConfigError, match="storage_url"):
        check_storage_url(settings)


def test_an_unreachable_bucket_is_not_ready_and_refuses_uploads_with_nothing_left(shared, tmp_path, closed_port,
                                                                                    monkeypatch):
    _, node = shared
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    down = node("down", client=make_client(timeout_s=1.0, attempts=1))
    with pytest.raises(BackendUnavailable, match="unreachable"):
        down.check_storage()
    wheel = make_wheel(tmp_path / "d", "downproj", "1.0")
    with pytest.raises(BackendUnavailable):
        _store(down, wheel)
    spool = tmp_path / "down" / "spool"
    assert not spool.exists() or not list(spool.iterdir())
