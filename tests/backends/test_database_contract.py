"""One contract, two SqlDatabases (issue 14): SQLite and a real PostgreSQL server."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pypi_repo.backends import BackendConfigError, BackendUnavailable, SqlDatabase, open_database
from pypi_repo.backends.database import qmark_to_pyformat
from pypi_repo.backends.serials import bump_serial, ensure_schema, project_serial, serials

pytestmark = pytest.mark.xdist_group("backends")

ROOT = Path(__file__).resolve().parents[2]
ITEMS = ("CREATE TABLE items (name TEXT PRIMARY KEY, n BIGINT NOT NULL, note TEXT)",)


def test_transaction_commits_or_rolls_back_as_a_whole(sql_db):
    assert isinstance(sql_db, SqlDatabase)
    sql_db.migrate("items", ITEMS)
    with sql_db.transaction() as tx:
        tx.execute("INSERT INTO items (name, n) VALUES (?, ?)", ("a", 1))
        tx.executemany("INSERT INTO items (name, n) VALUES (?, ?)", [("b", 2), ("c", 3)])
    with pytest.raises(RuntimeError):
        with sql_db.transaction() as tx:
            tx.execute("INSERT INTO items (name, n) VALUES (?, ?)", ("d", 4))
            tx.execute("UPDATE items SET n = n + 10")
            raise RuntimeError("abort")
    assert [tuple(r) for r in sql_db.query("SELECT name, n FROM items ORDER BY name")] == [
        ("a", 1), ("b", 2), ("c", 3)]


def test_rows_by_name_and_position_and_qmark_placeholders(sql_db):
    sql_db.migrate("items", ITEMS)
    assert sql_db.execute("INSERT INTO items (name, n, note) VALUES (?, ?, '100% sure?')", ("x", 7)) == 1
    row = sql_db.query("SELECT name, n, note FROM items WHERE name = ? AND note LIKE '%?'", ("x",))[0]
    assert (row["name"], row[1], row["note"], dict(zip(row.keys(), row))["n"]) == ("x", 7, "100% sure?", 7)
    assert sql_db.execute("UPDATE items SET n = n + 1 WHERE name IN (?, ?)", ("x", "nope")) == 1
    assert tuple(sql_db.query("SELECT 100 % 7, 'a?b'")[0]) == (2, "a?b")  # no parameters at all
    with sql_db.transaction() as tx:
        assert tx.execute("UPDATE items SET n = n + 1 RETURNING n").fetchone()[0] == 9
        assert tx.execute("DELETE FROM items WHERE name = ?", ("x",)).rowcount == 1


def test_integrity_error_is_the_same_name_on_both_engines_and_rolls_back(sql_db):
    sql_db.migrate("items", ITEMS)
    sql_db.execute("INSERT INTO items (name, n) VALUES (?, ?)", ("a", 1))
    with pytest.raises(sql_db.IntegrityError):
        with sql_db.transaction() as tx:
            tx.execute("UPDATE items SET n = 5")
            tx.execute("INSERT INTO items (name, n) VALUES (?, ?)", ("a", 2))
    assert [tuple(r) for r in sql_db.query("SELECT name, n FROM items")] == [("a", 1)]


@pytest.mark.parametrize("sql, expected", [
    ("SELECT ?", "SELECT %s"),
    ("a = ? AND b IN (?, ?)", "a = %s AND b IN (%s, %s)"),
    ("note = '?' AND x = ?", "note = '?' AND x = %s"),
    ("LIKE '%a' OR y = ?", "LIKE '%%a' OR y = %s"),
    ('"odd?col" = ?', '"odd?col" = %s'),
    ("it''s = ?", "it''s = %s"),
    ("100 % 7", "100 %% 7"),
])
def test_qmark_placeholders_translate_for_psycopg(sql, expected):
    assert qmark_to_pyformat(sql) == expected


def test_migrate_is_idempotent_and_refuses_a_newer_schema(sql_db, db_url):
    assert sql_db.migrate("items", ITEMS) == 1
    assert sql_db.migrate("items", ITEMS) == 1
    v2 = ITEMS + ("ALTER TABLE items ADD COLUMN extra TEXT",)
    newer = open_database(db_url, Path("/nonexistent"))  # newer code (migrate runs once per process)
    assert newer.migrate("items", v2) == 2 and newer.migrate("items", v2) == 2
    newer.execute("INSERT INTO items (name, n, extra) VALUES (?, ?, ?)", ("a", 1, "e"))
    newer.close()
    fresh = open_database(db_url, Path("/nonexistent"))  # older code again
    with pytest.raises(RuntimeError, match="newer than this code"):
        fresh.migrate("items", ITEMS)
    fresh.close()


def test_serial_bumps_commit_with_the_write_and_roll_back_with_it(sql_db):
    ensure_schema(sql_db)
    sql_db.migrate("items", ITEMS)
    assert serials(sql_db).last == 0 and project_serial(sql_db, "demo") == 0
    with sql_db.transaction() as tx:
        tx.execute("INSERT INTO items (name, n) VALUES (?, ?)", ("demo-1.0.whl", 1))
        assert bump_serial(tx, "demo") == 1
    with sql_db.transaction() as tx:
        assert bump_serial(tx, "other") == 2
    with pytest.raises(RuntimeError):
        with sql_db.transaction() as tx:
            bump_serial(tx, "demo")
            raise RuntimeError("upload failed")
    with sql_db.transaction() as tx:
        assert bump_serial(tx, "demo") == 3
    now = serials(sql_db)
    assert (now.last, now.projects) == (3, {"demo": 3, "other": 2})
    assert serials(sql_db, ["other", "missing"]).projects == {"other": 2}
    assert project_serial(sql_db, "demo") == 3
    with pytest.raises(ValueError):
        with sql_db.transaction() as tx:
            bump_serial(tx, "")


BUMPER = """
import sys, threading
sys.path.insert(0, {root!r})
from pathlib import Path
from pypi_repo.backends import open_database
from pypi_repo.backends.database import qmark_to_pyformat
from pypi_repo.backends.serials import bump_serial
db = open_database({url!r}, Path("/nonexistent"))
def work(t):
    for i in range({per_thread}):
        with db.transaction() as tx:
            bump_serial(tx, "p%d" % ((t + i) % 3))
threads = [threading.Thread(target=work, args=(t,)) for t in range({threads})]
[t.start() for t in threads]
[t.join() for t in threads]
"""


def test_concurrent_bumps_from_threads_and_processes_never_lose_one(sql_db, db_url):
    ensure_schema(sql_db)
    procs, threads, per_thread = 3, 4, 15
    script = BUMPER.format(root=str(ROOT), url=db_url, per_thread=per_thread, threads=threads)
    children = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(procs)]
    seen: list[int] = []

    def local_work() -> None:
        for i in range(per_thread):
            with sql_db.transaction() as tx:
                seen.append(bump_serial(tx, "p0"))

    mine = [threading.Thread(target=local_work) for _ in range(threads)]
    for t in mine:
        t.start()
    for t in mine:
        t.join(timeout=120)
    assert [c.wait(timeout=120) for c in children] == [0] * procs
    total = (procs + 1) * threads * per_thread
    now = serials(sql_db)
    assert now.last == total
    assert len(set(seen)) == len(seen)  # every bump got its own serial
    assert max(now.projects.values()) == total


def test_check_passes_on_a_working_database(sql_db):
    sql_db.check()


def test_empty_url_is_sqlite_in_the_data_dir(tmp_path):
    db = open_database("", tmp_path)
    db.migrate("items", ITEMS)
    assert db.dialect == "sqlite" and (tmp_path / "pypi_repo.sqlite3").exists()
    db.close()


# ----------------------------------------------------------------- PostgreSQL only
def test_postgres_over_a_unix_socket_url(pg_engine, tmp_path):
    url = pg_engine.schema_url(via_socket=True)
    assert url.startswith("postgresql:///postgres?host=/")
    db = open_database(url, tmp_path)
    db.migrate("items", ITEMS)
    assert db.query("SELECT current_setting('statement_timeout') AS t")[0]["t"] == "15s"
    db.close()


def test_postgres_pool_is_rebuilt_after_a_fork(pg_engine, tmp_path):
    """Gunicorn forks workers: the child opens its own connections and leaves the parent's be."""
    import psycopg

    db = open_database(pg_engine.schema_url() + "&application_name=forktest", tmp_path)
    db.migrate("items", ITEMS)
    parent_backend = db.query("SELECT pg_backend_pid()")[0][0]

    def backends() -> set[int]:
        with psycopg.connect(pg_engine.url(), autocommit=True) as admin:
            rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'forktest'")
            return {r[0] for r in rows}

    before = backends()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            child_backend = db.query("SELECT pg_backend_pid()")[0][0]
            db.execute("INSERT INTO items (name, n) VALUES (?, ?)", ("child", child_backend))
            code = 0 if child_backend not in before else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert parent_backend in before and before <= backends()  # the parent's connections live on
    assert [r["name"] for r in db.query("SELECT name FROM items")] == ["child"]
    db.close()


@pytest.mark.parametrize("which", ["closed_port", "silent_port"])
def test_postgres_unreachable_fails_fast_with_the_reason(request, tmp_path, which):
    port = request.getfixturevalue(which)
    db = open_database(f"postgresql://pypi:secret@127.0.0.1:{port}/pypi", tmp_path,
                       connect_timeout_s=1, acquire_timeout_s=1)
    began = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        db.check()
    message = str(caught.value)
    assert message.startswith("database postgresql://pypi@127.0.0.1:") and "secret" not in message
    assert "\n" not in message and ("refused" in message or "timeout" in message), message
    assert time.monotonic() - began < 15  # bounded: acquire 1 s + one direct connect 1 s
    db.close()


def test_postgres_statement_timeout_is_an_unavailable_not_a_hang(pg_engine, tmp_path):
    db = open_database(pg_engine.schema_url(), tmp_path, statement_timeout_s=0.3)
    with pytest.raises(BackendUnavailable, match="statement timeout"):
        db.query("SELECT pg_sleep(5)")
    assert db.query("SELECT 1")[0][0] == 1  # the pool recovered
    db.close()


def test_postgres_server_restart_costs_no_error(pg_engine, tmp_path):
    """Connections killed under the pool (failover, restart) are replaced on checkout."""
    import psycopg

    db = open_database(pg_engine.schema_url(), tmp_path)
    db.check()
    with psycopg.connect(pg_engine.url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'pypi_repo' AND pid <> pg_backend_pid()")
    assert db.query("SELECT 2")[0][0] == 2
    db.close()


@pytest.mark.parametrize("url, words", [
    ("mysql://u:secret@h/db", "unknown scheme"),
    ("postgresql://u:secret@h:port/db", "is not a number"),
    ("postgresql://u:secret@h/db?sslmode=maybe&bogus=1", "invalid URI query parameter"),
    ("sqlite://relative.db", "expected sqlite:///ABS/FILE"),
    ("db.internal:5432", "unknown scheme"),
])
def test_wrong_database_url_is_one_clear_line(tmp_path, url, words):
    with pytest.raises(BackendConfigError) as caught:
        open_database(url, tmp_path)
    message = str(caught.value)
    assert words in message and "\n" not in message and "secret" not in message
