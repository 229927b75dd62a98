"""``manage_repo.py migrate`` (issue 14): a populated single-machine install (tree + SQLite) into
one PostgreSQL and one bucket (SeaweedFS), then a node on the new backends.

The install has real wheels and an sdist (uploaded through the app, so owners and audit
records are real), a second user with a grant, a token, a yank with a reason, download counts
and files with sub-second, years-old mtimes. After ``migrate`` a fresh node on
``database_url`` + ``storage_url`` serves the Simple API pages (HTML and JSON) byte-identical
to the old node's (upload-time included), the old password and the old token work there, a
second run copies nothing and duplicates nothing, and bad targets fail with one line.
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, client_env, run  # noqa: E402
from distbuilder import make_sdist, make_wheel  # noqa: E402

from pypi_repo import create_app
from pypi_repo.auth import AuthService
from pypi_repo.backends import open_database
from pypi_repo.config import load_settings
from pypi_repo.downloads import DownloadRecorder, database as downloads_db

from .conftest import BUCKET

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "publishing"))
from pubhelpers import basic, upload_form  # noqa: E402

pytestmark = pytest.mark.xdist_group("backends")

PASSWORD = "alice-password-1"
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
OLD_NS = 1_600_000_000_123_456_789  # 2020-09-13, with nanoseconds: not the copy's time


def _settings(base: Path, **extra):
    return load_settings({"packages_dir": str(base / "packages"), "data_dir": str(base / "data"),
                          "logs_dir": str(base / "logs"), "argon2_time_cost": 1, "argon2_memory_kib": 8,
                          **extra}, environ={})


def _migrate(base: Path, weed, *args: str, env: dict | None = None):
    env = client_env(**{"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                        **weed.env(), **(env or {})})
    return run([sys.executable, str(ROOT / "manage_repo.py"), "--packages-dir", str(base / "packages"),
                "--data-dir", str(base / "data"), "--logs-dir", str(base / "logs"), "migrate", *args],
               check=False, timeout=60, env=env)


def _populate(base: Path) -> tuple[object, str]:
    """The old install, through its own app: uploads, users, grant, token, yank, downloads."""
    app = create_app(settings=_settings(base))
    svc = app.extensions["pypi_repo"]
    svc.auth.add_user("alice", PASSWORD)
    svc.auth.add_user("bob", "bob-password-12")
    client = app.test_client()
    dist = base / "dist"
    files = [make_wheel(dist, "mig-demo", "1.0", requires_python=">=3.8"), make_sdist(dist, "mig-demo", "1.0"),
             make_wheel(dist, "mig-demo", "1.1"), make_wheel(dist, "Other_Pkg", "0.1")]
    for path in files:
        resp = client.post("/legacy/", data=upload_form(path), headers=basic("alice", PASSWORD),
                           content_type="multipart/form-data")
        assert resp.status_code == 200, resp.text
    svc.auth.grant("bob", "mig-demo", "maintainer")
    _, secret = svc.auth.create_token("alice", description="ci")
    resp = client.post("/legacy/", data=upload_form(make_wheel(dist, "mig-demo", "1.2")),
                       headers=basic("__token__", secret), content_type="multipart/form-data")
    assert resp.status_code == 200, resp.text
    store = svc.store
    store.set_yanked("mig-demo", "mig_demo-1.1-py3-none-any.whl", "broken <b>build</b>")
    for i, path in enumerate(sorted((base / "packages").rglob("*.*"))):
        if not path.name.endswith(".yanked"):
            os.utime(path, ns=(OLD_NS + i, OLD_NS + i * 1_000_001))
    recorder = DownloadRecorder(downloads_db(svc.db))
    for _ in range(3):
        recorder.record("mig-demo", "mig_demo-1.0-py3-none-any.whl", "pip")
    recorder.record("other-pkg", "other_pkg-0.1-py3-none-any.whl", "uv")
    recorder.flush()
    recorder.close()
    return app, secret


def _pages(app) -> dict[str, bytes]:
    client = app.test_client()
    pages = {}
    for path in ("/simple/", "/simple/mig-demo/", "/simple/other-pkg/"):
        for kind, headers in (("html", {}), ("json", JSON)):
            resp = client.get(path, headers=headers)
            assert resp.status_code == 200, (path, resp.status_code)
            pages[f"{path} {kind}"] = resp.data
    return pages


def _rows(url: str, tmp: Path) -> dict[str, list]:
    db = open_database(url, tmp)
    try:
        return {table: sorted(map(tuple, db.query(f"SELECT * FROM {table}"))) for table in
                ("users", "tokens", "project_roles", "download_counts", "s3_yanks", "s3_upload_times")} | {
            "audit": sorted(map(tuple, db.query("SELECT at, actor, action, target, detail FROM audit_log "
                                                "WHERE action <> 'migrate'")))}
    finally:
        db.close()


def test_migrate_moves_a_local_install_into_postgresql_and_a_bucket(tmp_path, pg_engine, aws_env):
    weed = aws_env
    old = tmp_path / "old"
    old_app, secret = _populate(old)
    before = _pages(old_app)
    db_url = pg_engine.schema_url()
    storage_url = f"s3://{BUCKET}/mig-{uuid.uuid4().hex[:10]}"

    first = _migrate(old, weed, "--to-database", db_url, "--to-storage", storage_url)
    assert first.returncode == 0, first.stderr
    assert "users: 2 (2 new)" in first.stdout and "tokens: 1" in first.stdout
    assert "files: 5 verified by sha256 (5 copied" in first.stdout and "yanks: 1" in first.stdout

    new_app = create_app(settings=_settings(tmp_path / "node", database_url=db_url, storage_url=storage_url))
    after = _pages(new_app)
    for page, body in before.items():
        assert after[page] == body, page  # hashes, sizes, upload-time, yank reason, PEP 658, all equal
    assert b'"upload-time":"2020-09-13T12:26:40.12' in before["/simple/mig-demo/ json"]
    assert b"broken &lt;b&gt;build&lt;/b&gt;" in after["/simple/mig-demo/ html"]

    rows = _rows(db_url, tmp_path)
    assert [r[1] for r in rows["download_counts"]] == ["mig-demo", "other-pkg"]
    assert sum(r[4] for r in rows["download_counts"]) == 4
    source = open_database("", old / "data")
    assert rows["audit"] == sorted(map(tuple, source.query(  # users, uploads, grant, token: every record
        "SELECT at, actor, action, target, detail FROM audit_log WHERE action <> 'migrate'")))
    source.close()
    assert len([r for r in rows["audit"] if r[2] == "upload"]) == 5
    listing = {o["Key"]: (o["ETag"], o["LastModified"]) for o in
               weed.client().list_objects_v2(Bucket=BUCKET, Prefix=storage_url.split("/", 3)[3])["Contents"]}

    again = _migrate(old, weed, "--to-database", db_url, "--to-storage", storage_url)
    assert again.returncode == 0, again.stderr
    assert "users: 2 (0 new)" in again.stdout and "(0 new)" in again.stdout.split("audit records:")[1]
    assert "(0 copied, 0 bytes; 5 already there)" in again.stdout
    assert _rows(db_url, tmp_path) == rows
    assert {o["Key"]: (o["ETag"], o["LastModified"]) for o in weed.client().list_objects_v2(
        Bucket=BUCKET, Prefix=storage_url.split("/", 3)[3])["Contents"]} == listing  # nothing re-sent
    assert _pages(new_app) == before

    client = new_app.test_client()
    dist = tmp_path / "dist2"
    resp = client.post("/legacy/", data=upload_form(make_wheel(dist, "mig-demo", "2.0")),
                       headers=basic("alice", PASSWORD), content_type="multipart/form-data")
    assert resp.status_code == 200, resp.text  # the old password (its argon2 hash as it was)
    resp = client.post("/legacy/", data=upload_form(make_wheel(dist, "mig-demo", "2.1")),
                       headers=basic("__token__", secret), content_type="multipart/form-data")
    assert resp.status_code == 200, resp.text  # the old token
    resp = client.post("/legacy/", data=upload_form(make_wheel(dist, "mig-demo", "2.2")),
                       headers=basic("alice", "wrong-password-1"), content_type="multipart/form-data")
    assert resp.status_code in (401, 403)


def test_migrate_either_target_alone(tmp_path, pg_engine, aws_env):
    """``--to-database`` alone (the files stay on the tree), then ``--to-storage`` alone (the
    yanks and upload times go to the install's own SQLite): each node serves the same pages."""
    old = tmp_path / "old"
    old_app, secret = _populate(old)
    before = _pages(old_app)
    db_url = pg_engine.schema_url()
    proc = _migrate(old, aws_env, "--to-database", db_url)
    assert proc.returncode == 0, proc.stderr
    assert "users: 2 (2 new)" in proc.stdout and "files:" not in proc.stdout
    db_node = create_app(settings=_settings(tmp_path / "db-node", database_url=db_url,
                                            packages_dir=str(old / "packages")))
    assert _pages(db_node) == before
    auth = db_node.extensions["pypi_repo"].auth
    assert auth.authenticate("alice", PASSWORD, "127.0.0.1").username == "alice"
    assert auth.authenticate("__token__", secret, "127.0.0.1").username == "alice"

    prefix = f"mig-{uuid.uuid4().hex[:10]}"
    storage_url = f"s3://{BUCKET}/{prefix}"
    foreign = f"{prefix}/other-pkg/other_pkg-0.1-py3-none-any.whl"
    aws_env.client().put_object(Bucket=BUCKET, Key=foreign, Body=b"not this wheel")  # another tool's
    proc = _migrate(old, aws_env, "--to-storage", storage_url)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "other_pkg-0.1-py3-none-any.whl already holds other bytes" in proc.stderr
    aws_env.client().delete_object(Bucket=BUCKET, Key=foreign)
    proc = _migrate(old, aws_env, "--to-storage", storage_url)
    assert proc.returncode == 0, proc.stderr
    assert "users:" not in proc.stdout and "yanks: 1" in proc.stdout
    node = create_app(settings=_settings(tmp_path / "node", storage_url=storage_url,
                                         database_url=f"sqlite:///{old / 'data' / 'pypi_repo.sqlite3'}"))
    assert _pages(node) == before


def test_migrate_refuses_bad_targets_with_one_line(tmp_path, aws_env, closed_port, capsys, pg_engine):
    """Wrong URLs (exit 2) in-process through ``cli.main``; a target whose user "alice" is
    another account (exit 1, nothing written); an unreachable bucket (exit 1) as a real
    ``manage_repo.py`` run. Each: one line on stderr, no password in it."""
    from pypi_repo.cli import main

    old = tmp_path / "old"
    for name in ("packages", "data", "logs"):
        (old / name).mkdir(parents=True)
    top = ["--packages-dir", str(old / "packages"), "--data-dir", str(old / "data"), "--logs-dir", str(old / "logs")]
    for args, text in [
        (("--to-storage", "s3://x/p"), "storage_url 's3://x/p'"),
        (("--to-storage", "/srv/packages"), "expected s3://BUCKET/PREFIX"),
        (("--to-database", "postgresql://u:secret@127.0.0.1:x/db"), "is not a number"),
        ((), "give --to-database URL"),
    ]:
        assert main([*top, "migrate", *args]) == 2, args
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and text in lines[0] and "secret" not in lines[0], (args, lines)
    source = AuthService(_settings(old), open_database("", old / "data"))
    source.add_user("alice", PASSWORD)
    source.db.close()
    db_url = pg_engine.schema_url()
    target = AuthService(_settings(tmp_path / "t"), open_database(db_url, tmp_path))
    target.add_user("Alice", "another-password-1")
    assert main([*top, "migrate", "--to-database", db_url]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "conflicts with this install's" in lines[0], lines
    assert [u.name for u in target.list_users()] == ["Alice"]
    target.db.close()

    proc = _migrate(old, aws_env, "--to-storage", f"s3://{BUCKET}/p",
                    env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port}"})
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0], proc.stderr
