"""One contract, two BlobStores (issue 14): the local tree and SeaweedFS over S3, for real."""
from __future__ import annotations

import hashlib
import io
import os
import threading
import time

import pytest
import requests

from pypi_repo.backends import BackendConfigError, BackendUnavailable, BlobStore, open_storage
from pypi_repo.errors import FileExists, FileNotFound, UnsafePath, UploadTooLarge

pytestmark = pytest.mark.xdist_group("backends")

DATA = bytes(range(256)) * 40  # 10 KiB, every byte value


def put(store: BlobStore, key: str, data: bytes, **kw):
    return store.put(key, io.BytesIO(data), **kw)


def read(store: BlobStore, key: str, start: int = 0, stop=None) -> bytes:
    with store.open(key, start, stop) as fh:
        return fh.read()


def test_put_then_stat_read_list_round_trip(blob_store):
    assert isinstance(blob_store, BlobStore)
    result = put(blob_store, "demo/demo-1.0-py3-none-any.whl", DATA)
    assert (result.created, result.size, result.sha256) == (True, len(DATA), hashlib.sha256(DATA).hexdigest())
    info = blob_store.stat("demo/demo-1.0-py3-none-any.whl")
    assert (info.size, info.name) == (len(DATA), "demo-1.0-py3-none-any.whl")
    assert abs(info.mtime_ns / 1e9 - time.time()) < 120 and info.etag
    assert read(blob_store, info.key) == DATA
    assert [b.key for b in blob_store.list("demo")] == [info.key]
    assert blob_store.list("demo")[0].etag == info.etag
    assert blob_store.projects() == ["demo"]


def test_byte_ranges_stream_only_the_asked_bytes(blob_store):
    put(blob_store, "demo/a.tar.gz", DATA)
    assert read(blob_store, "demo/a.tar.gz", 2, 5) == DATA[2:5]
    assert read(blob_store, "demo/a.tar.gz", 10_000) == DATA[10_000:]
    assert read(blob_store, "demo/a.tar.gz", 0, len(DATA)) == DATA
    assert read(blob_store, "demo/a.tar.gz", len(DATA) + 5) == b""
    assert read(blob_store, "demo/a.tar.gz", 7, 7) == b""
    with blob_store.open("demo/a.tar.gz") as fh:  # streaming: chunk by chunk
        assert fh.read(100) == DATA[:100] and fh.read(100) == DATA[100:200]


def test_existing_key_is_refused_unless_same_bytes_or_overwrite(blob_store):
    put(blob_store, "demo/a.whl", DATA)
    with pytest.raises(FileExists):
        put(blob_store, "demo/a.whl", b"other bytes")
    assert read(blob_store, "demo/a.whl") == DATA
    again = put(blob_store, "demo/a.whl", DATA)  # a client retry: not a conflict
    assert again.created is False and again.sha256 == hashlib.sha256(DATA).hexdigest()
    assert put(blob_store, "demo/a.whl", b"new", overwrite=True).created is True
    assert read(blob_store, "demo/a.whl") == b"new"


def test_concurrent_puts_of_one_key_exactly_one_wins(blob_store):
    bodies = [bytes([i]) * 50_000 for i in range(8)]
    outcomes: list = [None] * len(bodies)
    gate = threading.Barrier(len(bodies))

    def attempt(i: int) -> None:
        gate.wait()
        try:
            outcomes[i] = put(blob_store, "race/race-1.0.tar.gz", bodies[i]).created
        except FileExists:
            outcomes[i] = "refused"

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [i for i, o in enumerate(outcomes) if o is True]
    assert len(winners) == 1 and outcomes.count("refused") == len(bodies) - 1, outcomes
    assert read(blob_store, "race/race-1.0.tar.gz") == bodies[winners[0]]


def test_listing_is_one_level_sorted_and_hides_dot_names(blob_store):
    for key in ["b-proj/z.whl", "b-proj/a.whl", "a-proj/x.tar.gz", "a-proj/sub/deep.whl"]:
        put(blob_store, key, b"x")
    assert blob_store.projects() == ["a-proj", "b-proj"]
    assert [b.name for b in blob_store.list("b-proj")] == ["a.whl", "z.whl"]
    assert [b.name for b in blob_store.list("a-proj")] == ["x.tar.gz"]
    assert blob_store.list("nope") == []


def test_missing_keys_and_delete(blob_store):
    with pytest.raises(FileNotFound):
        blob_store.stat("demo/none.whl")
    with pytest.raises(FileNotFound):
        blob_store.open("demo/none.whl").read()
    blob_store.delete("demo/none.whl")  # idempotent
    put(blob_store, "demo/a.whl", DATA)
    blob_store.delete("demo/a.whl")
    with pytest.raises(FileNotFound):
        blob_store.stat("demo/a.whl")
    assert blob_store.list("demo") == []
    assert set(blob_store.projects()) <= {"demo"}  # an emptied project may still be named


@pytest.mark.parametrize("key", ["../x.whl", "demo/../../x.whl", ".hidden/x.whl", "demo/.x.whl",
                                 "/etc/passwd", "demo//x.whl", "demo\\x.whl", "demo/x\x00.whl", ""])
def test_unsafe_keys_are_refused_before_any_io(blob_store, key):
    with pytest.raises(UnsafePath):
        put(blob_store, key, b"x")
    with pytest.raises(UnsafePath):
        blob_store.stat(key)


def test_rejected_put_leaves_nothing(blob_store):
    def refuse(path, digest):
        assert os.path.getsize(path) == len(DATA) and digest == hashlib.sha256(DATA).hexdigest()
        raise ValueError("not a wheel")

    with pytest.raises(ValueError):
        put(blob_store, "fresh/a.whl", DATA, check=refuse)
    with pytest.raises(UploadTooLarge):
        put(blob_store, "fresh/b.whl", DATA, max_bytes=100)
    assert blob_store.projects() == [] and blob_store.list("fresh") == []


def test_presigned_url_is_a_plain_get_on_s3_and_none_locally(blob_store, store_kind):
    put(blob_store, "demo/a.whl", DATA)
    url = blob_store.presigned_url("demo/a.whl", expires_s=60)
    if store_kind == "local":
        assert url is None and blob_store.local_path("demo/a.whl").read_bytes() == DATA
        return
    assert blob_store.local_path("demo/a.whl") is None
    assert requests.get(url, timeout=10).content == DATA
    assert requests.get(url.replace("demo/a.whl", "demo/b.whl"), timeout=10).status_code == 403


def test_check_passes_on_a_working_store(blob_store):
    blob_store.check()


def test_local_symlink_out_of_the_root_is_refused(tmp_path):
    store = open_storage("", tmp_path / "packages")
    put(store, "demo/a.whl", b"x")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.whl").write_bytes(b"secret")
    os.symlink(outside, tmp_path / "packages" / "evil")
    os.symlink(outside / "key.whl", tmp_path / "packages" / "demo" / "key.whl")
    for key in ("evil/key.whl", "demo/key.whl"):
        with pytest.raises(UnsafePath):
            store.open(key)
    assert store.projects() == ["demo"] and [b.name for b in store.list("demo")] == ["a.whl"]
    with pytest.raises(UnsafePath):
        put(store, "evil/new.whl", b"x")
    assert not (outside / "new.whl").exists()


def test_local_put_leaves_no_temp_files(tmp_path):
    store = open_storage(f"file://{tmp_path / 'tree'}", tmp_path)
    put(store, "demo/a.whl", DATA)
    with pytest.raises(FileExists):
        put(store, "demo/a.whl", b"y")
    assert sorted(os.listdir(tmp_path / "tree" / "demo")) == ["a.whl"]


@pytest.fixture
def s3_store(aws_env, tmp_path):
    """Made from the AWS variables alone, as the service will."""
    return open_storage(f"s3://pypi-test/t-{os.urandom(6).hex()}", tmp_path, spool_dir=tmp_path)


def test_s3_object_put_by_another_tool_is_compared_by_its_bytes(s3_store, aws_env):
    key = s3_store.prefix + "demo/foreign.whl"
    aws_env.client().put_object(Bucket=s3_store.bucket, Key=key, Body=DATA)
    assert [b.name for b in s3_store.list("demo")] == ["foreign.whl"]
    assert put(s3_store, "demo/foreign.whl", DATA).created is False
    with pytest.raises(FileExists):
        put(s3_store, "demo/foreign.whl", b"different")


def test_s3_put_stores_the_sha256_and_the_store_verifies_it(s3_store, aws_env):
    put(s3_store, "demo/a.whl", DATA)
    head = aws_env.client().head_object(Bucket=s3_store.bucket, Key=s3_store.prefix + "demo/a.whl")
    assert head["Metadata"]["sha256"] == hashlib.sha256(DATA).hexdigest()


def test_s3_wrong_credentials_are_a_clear_unavailable(aws_env, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    store = open_storage("s3://pypi-test/x", tmp_path, timeout_s=2)
    with pytest.raises(BackendUnavailable, match="refused head bucket: 403"):
        store.check()
    with pytest.raises(BackendUnavailable, match="SignatureDoesNotMatch"):
        store.list("demo")


def test_s3_missing_bucket_is_named(aws_env, tmp_path):
    with pytest.raises(BackendUnavailable, match="no bucket 'no-such-bucket'"):
        open_storage("s3://no-such-bucket/x", tmp_path, timeout_s=2).check()


@pytest.mark.parametrize("which", ["closed_port", "silent_port"])
def test_s3_unreachable_endpoint_fails_fast_with_the_reason(request, monkeypatch, tmp_path, which):
    port = request.getfixturevalue(which)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SK")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_storage("s3://pypi-test/x", tmp_path, timeout_s=1)
    began = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"storage s3://pypi-test/x/ unreachable"):
        store.check() if which == "silent_port" else put(store, "demo/a.whl", b"x")
    assert time.monotonic() - began < 20  # bounded: 1 s timeouts x 3 attempts


@pytest.mark.parametrize("url, words", [
    ("s3://B/prefix", "not a valid bucket name"),
    ("s3://ab/prefix", "not a valid bucket name"),
    ("s3://bucket:9000/x", "takes no user, port"),
    ("s3://key:secret@bucket/x", "takes no user, port"),
    ("s3://bucket/a/../b", "unsafe prefix"),
    ("file://relative/dir", "absolute path"),
    ("gs://bucket/x", "unknown scheme"),
    ("/srv/packages", "unknown scheme"),
])
def test_wrong_storage_url_is_one_clear_line(tmp_path, url, words):
    with pytest.raises(BackendConfigError) as caught:
        open_storage(url, tmp_path)
    message = str(caught.value)
    assert words in message and "\n" not in message and "secret" not in message.replace(url, "")
