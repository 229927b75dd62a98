"""Fixtures for the backend contract tests (issue 14): real engines, one per xdist worker.

Every test module here is in the xdist group "backends", so with ``--dist loadgroup`` the
engines start once for the whole directory (PostgreSQL ~1.2 s, SeaweedFS ~1 s).
Each test gets its own S3 prefix and its own PostgreSQL schema, so tests stay independent
without paying for a database or a bucket each.
"""
from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engines import PostgresEngine, SeaweedEngine, start_postgres, start_seaweed  # noqa: E402

from pypi_repo.backends import open_database, open_storage  # noqa: E402

BUCKET = "pypi-test"


@pytest.fixture(scope="session")
def pg_engine() -> PostgresEngine:
    engine = start_postgres()
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def weed_engine() -> SeaweedEngine:
    engine = start_seaweed()
    try:
        engine.create_bucket(BUCKET)
        yield engine
    finally:
        engine.stop()


def _set_aws_env(monkeypatch, engine: SeaweedEngine) -> None:
    """The standard AWS variables pointing at SeaweedFS; the machine's AWS files ignored."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name, value in engine.env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws_env(monkeypatch, weed_engine):
    _set_aws_env(monkeypatch, weed_engine)
    return weed_engine


@pytest.fixture(scope="session")
def s3_client(weed_engine):
    """One client made from the AWS variables, shared (making a boto3 client costs ~0.4 s)."""
    from pypi_repo.backends.s3 import make_client

    with pytest.MonkeyPatch.context() as mp:
        _set_aws_env(mp, weed_engine)
        return make_client()


@pytest.fixture(params=["local", "s3"])
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def blob_store(request, store_kind, tmp_path):
    if store_kind == "local":
        return open_storage("", tmp_path / "packages")
    return open_storage(f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}", tmp_path, spool_dir=tmp_path,
                        client=request.getfixturevalue("s3_client"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request) -> str:
    return request.param


@pytest.fixture
def db_url(request, db_kind, tmp_path) -> str:
    if db_kind == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    return request.getfixturevalue("pg_engine").schema_url()


@pytest.fixture
def sql_db(db_url, tmp_path):
    db = open_database(db_url, tmp_path)
    yield db
    db.close()


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never answers (a hung server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield s.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
