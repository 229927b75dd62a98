"""The shared state (users, tokens, sessions, grants, audit, failed-login limits, download
counts) behaves the same on SQLite and on a real PostgreSQL (issue 14).

Every test here runs twice, through the ``db_kind`` fixture: once on SQLite under the data
dir (the default) and once on the PostgreSQL the backends fixtures start (a schema of its
own per test). "Two nodes" are two services with their own database objects (their own
connections) on the same database.
"""
from __future__ import annotations

import base64
import json
import os
import pwd
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from diskfull import fill_disk, mounted_tmpfs

from pypi_repo.accounts import Accounts
from pypi_repo.auth import AuthService
from pypi_repo.backends import BackendUnavailable, open_database
from pypi_repo.backends.errors import DatabaseFull
from pypi_repo.config import load_settings
from pypi_repo.downloads import DownloadRecorder, database, download_counts, download_summary, top_projects
from pypi_repo.errors import AuthenticationFailed, NotFound, PypiRepoError, RateLimited
from pypi_repo.health import HealthChecker
from pypi_repo.ratelimit import LimitKey, LoginLimiter
from pypi_repo.storage import PackageStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "publishing"))
from engines import PG_UNPRIVILEGED_USER  # noqa: E402  (tests/ is on the path: conftest.py)

pytestmark = pytest.mark.xdist_group("backends")

PASSWORD = "a-long-password-1"


def _settings(tmp_path: Path, url: str, **extra):
    return load_settings({"packages_dir": str(tmp_path / "packages"), "data_dir": str(tmp_path / "data"),
                          "logs_dir": str(tmp_path / "logs"), "database_url": url, "argon2_time_cost": 1,
                          "argon2_memory_kib": 8, **extra}, environ={})


@pytest.fixture
def url(request, db_kind) -> str:
    """``database_url``: empty (SQLite under the data dir) or a fresh PostgreSQL schema."""
    return "" if db_kind == "sqlite" else request.getfixturevalue("pg_engine").schema_url()


@pytest.fixture
def node(tmp_path, url):
    """A factory of "nodes": each an AuthService on its own connection(s) to the one database."""
    opened = []

    def make(**extra) -> AuthService:
        settings = _settings(tmp_path, url, **extra)
        db = open_database(settings.database_url, settings.data_dir)
        opened.append(db)
        return AuthService(settings, db)

    yield make
    for db in opened:
        db.close()


@pytest.fixture
def auth(node) -> AuthService:
    return node()


def test_user_names_are_case_insensitive_everywhere(auth):
    auth.add_user("Alice", PASSWORD)
    with pytest.raises(PypiRepoError, match="already exists"):
        auth.add_user("alice", PASSWORD)
    auth.add_user("bob", PASSWORD, all_projects=True)
    assert [u.name for u in auth.list_users()] == ["Alice", "bob"]
    assert auth.authenticate("ALICE", PASSWORD, "10.0.0.1").username == "Alice"
    auth.set_all_projects("alice", True)
    assert all(u.all_projects for u in auth.list_users())
    auth.remove_user("ALICE")
    assert [u.name for u in auth.list_users()] == ["bob"]
    with pytest.raises(NotFound):
        auth.remove_user("alice")


def test_unique_violations_raise_the_engines_integrity_error(auth):
    auth.add_user("alice", PASSWORD)
    with pytest.raises(auth.db.IntegrityError):
        with auth.db.transaction() as tx:
            tx.execute("INSERT INTO users (name, password_hash, all_projects, created_at, uuid) "
                       "VALUES ('ALICE', 'x', 0, 0, 'u2')")
    assert [u.name for u in auth.list_users()] == ["alice"]  # rolled back


def test_a_token_made_on_one_node_works_on_another_until_revoked_there(node):
    a, b = node(), node()
    a.add_user("alice", PASSWORD)
    token_id, secret = a.create_token("alice", projects=["Some.Project"], description="ci\x00run")
    principal = b.authenticate("__token__", secret, "10.0.0.2")
    assert (principal.username, principal.token_id, principal.token_projects) == \
        ("alice", token_id, frozenset({"some-project"}))
    assert a.list_tokens("alice")[0].last_used_at is not None  # written by b, read by a
    session = b.start_session(principal)
    assert b.session_principal(session).token_id == token_id
    a.revoke_token(token_id)
    with pytest.raises(AuthenticationFailed):
        b.authenticate("__token__", secret, "10.0.0.2")
    assert b.session_principal(session) is None  # the token's sessions ended with it


def test_sessions_end_on_logout_password_change_and_removal(node):
    a, b = node(), node()
    a.add_user("alice", PASSWORD)
    principal = a.authenticate("alice", PASSWORD, "10.0.0.3")
    first, second = a.start_session(principal), a.start_session(principal)
    assert b.session_principal(first).username == "alice"
    b.end_session(first)
    assert a.session_principal(first) is None and a.session_principal(second) is not None
    b.set_password("alice", "another-password-2")
    assert a.session_principal(second) is None
    third = a.start_session(a.authenticate("alice", "another-password-2", "10.0.0.3"))
    b.remove_user("alice")
    a.add_user("alice", PASSWORD)  # a new user of the same name is not the old session's user
    assert a.session_principal(third) is None


def test_first_uploader_owns_the_project_and_undo_takes_claim_and_audit_back(auth, tmp_path):
    auth.add_user("alice", PASSWORD)
    auth.add_user("bob", PASSWORD)
    alice = auth.authenticate("alice", PASSWORD, "10.0.0.4")
    undo = auth.claim_project(alice, "payo", exists=False, client_addr="10.0.0.4",
                              audit=("upload", "payo-1.0-py3-none-any.whl", "sha256 x, 1 bytes"))
    assert auth.project_roles("payo") == [("alice", "owner")]
    assert [e.action for e in auth.audit_entries(2)] == ["upload", "project.create"]
    undo()
    assert auth.project_roles("payo") == []
    assert "upload" not in [e.action for e in auth.audit_entries(10)]
    auth.claim_project(alice, "payo", exists=False, audit=("upload", "payo-1.0-py3-none-any.whl", "d"))
    auth.grant("bob", "payo")
    assert auth.project_roles("payo") == [("alice", "owner"), ("bob", "maintainer")]
    accounts = Accounts(auth, PackageStore(tmp_path / "packages"))
    assert [p.project for p in accounts.projects_of("BOB")] == ["payo"]
    assert [r.filename for r in accounts.recent_uploads("alice")] == ["payo-1.0-py3-none-any.whl"]
    assert set(accounts.upload_records(["payo-1.0-py3-none-any.whl"])) == {"payo-1.0-py3-none-any.whl"}
    auth.revoke_grant("bob", "payo")
    assert auth.project_roles("payo") == [("alice", "owner")]


def test_client_text_with_nul_bytes_is_refused_cleanly_and_audited(auth):
    auth.add_user("alice", PASSWORD)
    for user, password in (("ali\x00ce", PASSWORD), ("__token__", "prt-\x00abc-def"), ("alice", "prt-zz\x00-1")):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate(user, password, "10.0.0.5")
    assert "ali\\x00ce" in [e.actor for e in auth.audit_entries(10)]


def test_parallel_wrong_guesses_never_get_past_the_limit(node):
    """The reserve is atomic per key on both engines (PostgreSQL: advisory locks)."""
    limit, tries = 4, 8
    nodes = [node(), node()]
    nodes[0].has_users()  # tables in place
    barrier = threading.Barrier(tries)
    results: list[str] = []

    def guess(i: int) -> None:
        limiter = LoginLimiter(nodes[i % 2].db)
        barrier.wait()
        try:
            limiter.reserve([LimitKey("account:alice", limit)])
            results.append("counted")
        except RateLimited:
            results.append("limited")

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(tries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["counted"] * limit + ["limited"] * (tries - limit)


def test_failed_logins_on_one_node_count_on_the_other(node):
    a, b = node(auth_rate_limit=3), node(auth_rate_limit=3)
    a.add_user("alice", PASSWORD)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            a.authenticate("alice", "wrong-password", "10.0.0.6")
    with pytest.raises(RateLimited):
        b.authenticate("alice", PASSWORD, "10.0.0.6")  # even the right password, for a minute
    assert b.authenticate("alice", PASSWORD, "10.0.0.7").username == "alice"  # another address


def test_download_counts_of_two_nodes_add_up(node):
    dbs = [database(node().db), database(node().db)]
    recorders = [DownloadRecorder(db, 3600, clock=lambda: "2026-12-01") for db in dbs]
    for i, recorder in enumerate(recorders):
        for _ in range(3 + i):
            recorder.record("payo", "payo-1.0-py3-none-any.whl", "pip")
        recorder.record("other", "other-1.0.tar.gz", "uv")
    assert [r.flush() for r in recorders] == [4, 5]
    counts = download_counts(dbs[1], "payo", days=100000)
    assert counts["total"] == 7 and counts["by_client"] == {"pip": 7}
    assert top_projects(dbs[0], 5) == [("payo", 7), ("other", 2)]
    summary = download_summary(dbs[0])
    assert summary["total"] == 9 and summary["by_client"] == {"pip": 7, "uv": 2}
    json.dumps(summary)  # plain ints (PostgreSQL's SUM is a Decimal)


def test_an_unreachable_database_is_a_503_reason_not_a_crash(tmp_path, closed_port):
    url = f"postgresql://pypi:secret@127.0.0.1:{closed_port}/pypi"
    settings = _settings(tmp_path, url)
    db = open_database(url, tmp_path, acquire_timeout_s=1)
    try:
        auth = AuthService(settings, db)
        with pytest.raises(BackendUnavailable, match="unavailable"):
            auth.authenticate("alice", PASSWORD, "10.0.0.8")
        ready, doc = HealthChecker(settings, PackageStore(tmp_path / "p"), db=db).check()
        assert not ready and doc["status"] == "degraded" and doc["live"] is not None
        assert doc["checks"]["database"]["ok"] is False and "secret" not in json.dumps(doc)
        assert any(a.startswith("database: database postgresql://pypi@127.0.0.1") for a in doc["alerts"])
    finally:
        db.close()


@pytest.fixture
def small_disk(tmp_path):
    with mounted_tmpfs(tmp_path / "small", "1m") as mount_point:
        yield mount_point


def _fill(directory: Path) -> None:
    fill_disk(directory)
    assert os.statvfs(directory).f_bavail == 0


@pytest.mark.parametrize("db_kind", ["sqlite"])
def test_token_use_on_a_full_data_disk_still_authenticates(small_disk, db_kind):
    """The bug: ``UPDATE tokens SET last_used_at`` raised on a full disk and every token
    read or upload answered 500. Bookkeeping fails soft; the credentials were valid."""
    settings = _settings(small_disk, "")
    auth = AuthService(settings, open_database("", settings.data_dir))
    auth.add_user("alice", PASSWORD)
    _, secret = auth.create_token("alice")
    assert auth.authenticate("__token__", secret, "10.0.0.9").username == "alice"
    auth.db.execute("UPDATE tokens SET last_used_at = 0")  # due for its next update
    _fill(small_disk)
    with pytest.raises(OSError):
        (small_disk / "probe").write_bytes(b"x" * 4096)
    assert auth.authenticate("__token__", secret, "10.0.0.9").username == "alice"
    assert auth.list_tokens("alice")[0].last_used_at == 0  # not written, and no error
    auth.db.close()


@pytest.fixture
def pg_small_tablespace(pg_engine):
    """A 1 MiB tmpfs as a PostgreSQL tablespace, and a fresh schema whose tables go there."""
    mount_point = Path(tempfile.mkdtemp(prefix="pypi-repo-ts-"))
    owner = pwd.getpwnam(PG_UNPRIVILEGED_USER) if os.geteuid() == 0 else None
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount_point)],
                   check=True, timeout=30)
    try:
        if owner is not None:
            os.chown(mount_point, owner.pw_uid, owner.pw_gid)
        name = f"small_{mount_point.name.rsplit('-', 1)[-1].lower()}"
        with psycopg.connect(pg_engine.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE TABLESPACE {name} LOCATION '{mount_point}'")
        yield pg_engine.schema_url() + quote(f" -c default_tablespace={name}"), mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True, timeout=30)
        os.rmdir(mount_point)


def test_a_full_postgresql_disk_is_a_507_and_stores_nothing(pg_small_tablespace, tmp_path):
    """SQLSTATE 53100 (could not extend file: no space) is ``DatabaseFull``: the upload's
    ownership claim and audit record cannot be written, so its file is not stored."""
    from pypi_repo import create_app
    from distbuilder import make_wheel
    from pubhelpers import upload_form

    url, _ = pg_small_tablespace
    settings = _settings(tmp_path, url)
    app = create_app(settings=settings)
    auth = app.extensions["pypi_repo"].auth
    auth.add_user("alice", PASSWORD)
    _, secret = auth.create_token("alice")
    with auth.db.transaction() as tx:  # fill the tablespace to the last page
        tx.execute("CREATE TABLE filler (x TEXT)")
    with pytest.raises(DatabaseFull):
        for _ in range(200):
            auth.db.execute("INSERT INTO filler SELECT string_agg(md5(random()::text), '') "
                            "FROM generate_series(1, 400)")
    wheel = make_wheel(tmp_path / "dist", "fullpg", "1.0")
    resp = app.test_client().post("/legacy/", data=upload_form(wheel), content_type="multipart/form-data",
                                  headers={"Authorization": "Basic " + base64.b64encode(
                                      f"__token__:{secret}".encode()).decode()})
    assert resp.status_code == 507, resp.get_data(as_text=True)
    assert not (tmp_path / "packages" / "fullpg").exists() or not any((tmp_path / "packages" / "fullpg").iterdir())
    assert auth.project_roles("fullpg") == []
    auth.db.close()
