"""Browser sessions end when they should, and a cookie never outlives its user (issue 10).

Every test replays the *old* cookie by hand, as an attacker who copied it would: the
browser forgetting its cookie on logout proves nothing."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT
from pypi_repo import create_app

COOKIE = "pypi_repo_session"


def _csrf(body: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)


def login(client, username: str, password: str) -> str:
    """Log in through the form; returns the session cookie's value."""
    token = _csrf(client.get("/login").get_data(as_text=True))
    resp = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return client.get_cookie(COOKIE).value


def logged_in(app, cookie: str) -> bool:
    """Whether a fresh browser holding only ``cookie`` reaches the upload form."""
    other = app.test_client()
    other.set_cookie(COOKIE, cookie)
    resp = other.get("/upload")
    assert resp.status_code in (200, 303)
    return resp.status_code == 200


@pytest.fixture
def app(overrides):
    application = create_app(overrides)
    auth = application.extensions["pypi_repo"].auth
    auth.add_user("alice", "alice-password-1")
    auth.add_user("bob", "bob-password-22")
    return application


def test_logout_ends_the_session_even_for_a_copied_cookie(app):
    client = app.test_client()
    cookie = login(client, "alice", "alice-password-1")
    assert logged_in(app, cookie)
    token = _csrf(client.get("/upload").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert not logged_in(app, cookie)


def test_password_change_ends_every_session_of_the_user(app, repo_dirs):
    alice = login(app.test_client(), "alice", "alice-password-1")
    bob = login(app.test_client(), "bob", "bob-password-22")
    app.extensions["pypi_repo"].auth.set_password("alice", "alice-password-2")
    assert not logged_in(app, alice)
    assert logged_in(app, bob)  # another user's session is untouched


def test_cli_user_passwd_ends_sessions(app, repo_dirs):
    """The operator's ``manage_repo.py user passwd`` (another process) ends them too."""
    alice = login(app.test_client(), "alice", "alice-password-1")
    subprocess.run(
        [sys.executable, str(ROOT / "manage_repo.py"), "--packages-dir", str(repo_dirs["packages"]),
         "--data-dir", str(repo_dirs["data"]), "user", "passwd", "alice", "--password-stdin"],
        input="alice-password-3\n", text=True, check=True, timeout=60, capture_output=True)
    assert not logged_in(app, alice)
    assert logged_in(app, login(app.test_client(), "alice", "alice-password-3"))


def test_removed_users_cookie_stays_dead_when_a_new_user_gets_the_same_id(app):
    auth = app.extensions["pypi_repo"].auth
    auth.add_user("eve", "eve-password-1")
    eve_id = auth.db.query("SELECT id FROM users WHERE name = 'eve'")[0]["id"]
    cookie = login(app.test_client(), "eve", "eve-password-1")
    auth.remove_user("eve")
    auth.add_user("mallory", "mallory-password-1")
    auth.add_user("eve", "eve-password-2")  # even the same name again
    ids = {r["name"]: r["id"] for r in auth.db.query("SELECT id, name FROM users")}
    assert ids["mallory"] == eve_id, "SQLite reuses the id: the case this test is about"
    assert not logged_in(app, cookie)


def test_revoking_the_login_token_ends_its_sessions_only(app):
    auth = app.extensions["pypi_repo"].auth
    token_id, secret = auth.create_token("alice")
    by_token = login(app.test_client(), "__token__", secret)
    by_password = login(app.test_client(), "alice", "alice-password-1")
    assert logged_in(app, by_token)
    auth.revoke_token(token_id)
    assert not logged_in(app, by_token)
    assert logged_in(app, by_password)


def test_unsafe_request_with_a_session_needs_the_csrf_token(app):
    client = app.test_client()
    login(client, "alice", "alice-password-1")
    resp = client.post("/upload", data={"csrf_token": "forged"})
    assert resp.status_code == 400 and "CSRF" in resp.get_data(as_text=True)


def test_a_database_from_before_sessions_is_upgraded_in_place(overrides):
    """Users made by the first auth schema get a random uuid and can log in to a session."""
    from pypi_repo.auth_schema import MIGRATIONS
    from pypi_repo.config import load_settings
    from pypi_repo.db import Database

    settings = load_settings(overrides)
    old = Database(settings.database_path)
    old.migrate("auth", MIGRATIONS[:1])
    with old.transaction() as conn:
        for name in ("old1", "old2"):
            conn.execute("INSERT INTO users (name, password_hash, all_projects, created_at) VALUES (?, ?, 0, 0)",
                         (name, "not-a-hash"))
    old.close()
    app = create_app(overrides)
    auth = app.extensions["pypi_repo"].auth
    auth.set_password("old1", "old1-password-1")
    uuids = [r["uuid"] for r in auth.db.query("SELECT uuid FROM users")]
    assert len(set(uuids)) == 2 and all(len(u) == 32 for u in uuids)
    assert logged_in(app, login(app.test_client(), "old1", "old1-password-1"))


def test_a_web_login_sees_the_private_health_details(overrides):
    """Private mode: /health details "need a login", and a browser session is one (the view
    read a session key that no longer existed, so a logged-in user got the status only)."""
    application = create_app({**overrides, "private": True})
    application.extensions["pypi_repo"].auth.add_user("alice", "alice-password-1")
    client = application.test_client()
    assert client.get("/health").get_json() == {"status": "ok"}
    login(client, "alice", "alice-password-1")
    assert "checks" in client.get("/health").get_json()
