"""The account page and project management through the Flask test client (issue 12): who may
do what, CSRF on every form, a token's secret shown once, yanks reaching the Simple API, and
"Uploaded via twine 7.0.0 by alice" from the audit log."""
from __future__ import annotations

import base64
import io
import re

import pytest

from distbuilder import make_wheel
from pypi_repo import create_app

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "carol": "carol-secret-333"}
TWINE_UA = "twine/7.0.0 pkginfo/1.12.0 requests/2.32.3 CPython/3.11.2"


@pytest.fixture
def app(overrides):
    application = create_app(dict(overrides, catalog_refresh_s=0))
    application.config["TESTING"] = True
    auth = application.extensions["pypi_repo"].auth
    auth.add_user("alice", PASSWORDS["alice"])
    auth.add_user("bob", PASSWORDS["bob"])
    auth.add_user("carol", PASSWORDS["carol"], all_projects=True)
    return application


@pytest.fixture
def auth(app):
    return app.extensions["pypi_repo"].auth


def text(resp) -> str:
    return resp.get_data(as_text=True)


def csrf(client, path: str = "/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', text(client.get(path))).group(1)


def login(client, user: str, password: str | None = None) -> str:
    token = csrf(client)
    resp = client.post("/login", data={"username": user, "password": password or PASSWORDS[user],
                                       "csrf_token": token})
    assert resp.status_code == 303, text(resp)
    return csrf(client, "/")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def upload(client, tmp_path, name: str, version: str, user: str, password: str | None = None,
           user_agent: str = TWINE_UA, **kw):
    """An upload as twine sends it: Basic credentials, no cookie (a fresh client, because a
    request that carries the browser's session cookie is refused by the upload API)."""
    wheel = make_wheel(tmp_path / f"{name}-{version}-{user}", name, version, **kw)
    with open(wheel, "rb") as fh:
        return client.application.test_client().post("/legacy/", data={":action": "file_upload", "name": name, "version": version,
                                             "content": (fh, wheel.name)},
                           headers={**basic(user, password or PASSWORDS[user]), "User-Agent": user_agent})


@pytest.fixture
def project(client, tmp_path):
    """alice owns 'payo' (1.0 and 2.0, uploaded with twine); bob maintains nothing yet."""
    assert upload(client, tmp_path, "payo", "1.0", "alice").status_code == 200
    assert upload(client, tmp_path, "payo", "2.0", "alice").status_code == 200
    return "payo"


def test_account_pages_need_a_password_login(client, auth):
    resp = client.get("/account/")
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/login?next=/account/")
    _, token = auth.create_token("alice")
    login(client, "__token__", token)
    denied = client.get("/account/")
    assert denied.status_code == 403 and "log in with your password" in text(denied)


def test_account_page_lists_projects_tokens_and_recent_uploads(client, auth, project):
    auth.create_token("alice", description="CI of payo", projects=["payo"])
    login(client, "alice")
    page = text(client.get("/account/"))
    assert 'href="/project/payo/manage/"' in page and ">owner<" in page
    assert "CI of payo" in page and "payo" in page
    assert "payo-2.0-py3-none-any.whl" in page and "via twine 7.0.0" in page
    assert 'href="/account/"' in text(client.get("/"))  # the nav link for logged-in users


POSTS = [
    ("/account/password", {"current": PASSWORDS["alice"], "new": "a-new-password", "repeat": "a-new-password"}),
    ("/account/tokens/new", {"scope": "upload"}),
    ("/project/payo/manage/roles", {"username": "bob", "role": "owner"}),
    ("/project/payo/manage/yank", {"target": "1.0", "reason": "forged"}),
]


@pytest.mark.parametrize("path, form", POSTS, ids=[p for p, _ in POSTS])
def test_every_account_form_needs_the_csrf_token(client, auth, project, packages, path, form):
    login(client, "alice")
    before = (auth.list_tokens("alice"), auth.project_roles("payo"), sorted(p.name for p in packages.rglob("*")))
    for token in (None, "forged"):
        data = dict(form, **({"csrf_token": token} if token else {}))
        resp = client.post(path, data=data)
        assert resp.status_code == 400 and "CSRF" in text(resp)
    assert (auth.list_tokens("alice"), auth.project_roles("payo"), sorted(p.name for p in packages.rglob("*"))) == before
    assert auth.authenticate("alice", PASSWORDS["alice"], "test").username == "alice"


def test_token_secret_is_shown_once_and_a_revoked_token_stops_working(client, auth, tmp_path):
    token = login(client, "alice")
    created = client.post("/account/tokens/new", data={"csrf_token": token, "description": "laptop",
                                                     "other_projects": "newproj", "expires": "30"})
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    secret = re.search(r"(prt-[0-9a-f]{12}-[A-Za-z0-9_-]+)", text(created)).group(1)
    token_id = secret.split("-")[1]
    (info,) = auth.list_tokens("alice")
    assert (info.id, info.projects, info.description) == (token_id, ("newproj",), "laptop")
    assert info.expires_at is not None
    for path in ("/account/", f"/account/tokens/{token_id}/revoke", "/"):
        assert secret.split("-", 2)[2] not in text(client.get(path))  # never shown again
    assert upload(client, tmp_path, "newproj", "1.0", "__token__", secret).status_code == 200
    # revoking takes a confirmation: the GET only asks
    confirm = client.get(f"/account/tokens/{token_id}/revoke")
    assert confirm.status_code == 200 and "Revoke token" in text(confirm) and auth.list_tokens("alice")
    done = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert done.status_code == 303 and auth.list_tokens("alice") == []
    assert upload(client, tmp_path, "newproj", "2.0", "__token__", secret).status_code == 401
    actions = [(e.actor, e.action, e.target) for e in auth.audit_entries()]
    assert ("alice", "token.create", token_id) in actions and ("alice", "token.revoke", token_id) in actions


def test_users_see_and_revoke_only_their_own_tokens(client, auth):
    bobs_id, _ = auth.create_token("bob")
    token = login(client, "alice")
    assert client.get(f"/account/tokens/{bobs_id}/revoke").status_code == 404
    assert client.post(f"/account/tokens/{bobs_id}/revoke", data={"csrf_token": token}).status_code == 404
    assert [t.id for t in auth.list_tokens("bob")] == [bobs_id]
    assert bobs_id not in text(client.get("/account/"))


def test_the_token_form_offers_ones_own_projects(client, project):
    login(client, "alice")
    form = client.get("/account/tokens/new")
    assert form.status_code == 200 and 'name="project" value="payo"' in text(form)


def test_a_token_cannot_be_scoped_beyond_its_users_rights(client, auth, project):
    token = login(client, "bob")
    resp = client.post("/account/tokens/new", data={"csrf_token": token, "other_projects": "payo"})
    assert resp.status_code == 403 and "You may not upload to payo" in text(resp)
    bad = client.post("/account/tokens/new", data={"csrf_token": token, "other_projects": "not a name!"})
    assert bad.status_code == 400 and "not a valid project name" in text(bad)
    assert auth.list_tokens("bob") == []


def test_changing_the_password_needs_the_current_one_and_logs_out(client, auth):
    token = login(client, "alice")
    wrong = client.post("/account/password", data={"csrf_token": token, "current": "guess-guess",
                                                   "new": "new-password-1", "repeat": "new-password-1"})
    assert wrong.status_code == 400 and "current password is wrong" in text(wrong)
    differ = client.post("/account/password", data={"csrf_token": token, "current": PASSWORDS["alice"],
                                                    "new": "new-password-1", "repeat": "new-password-2"})
    assert differ.status_code == 400 and "differ" in text(differ)
    short = client.post("/account/password", data={"csrf_token": token, "current": PASSWORDS["alice"],
                                                   "new": "short", "repeat": "short"})
    assert short.status_code == 400 and "at least 8" in text(short)
    auth.authenticate("alice", PASSWORDS["alice"], "test")  # still the old one
    done = client.post("/account/password", data={"csrf_token": token, "current": PASSWORDS["alice"],
                                                  "new": "new-password-1", "repeat": "new-password-1"})
    assert done.status_code == 303 and done.headers["Location"].startswith("/login")
    assert "this one too" in text(client.get(done.headers["Location"]))
    assert client.get("/account/").status_code == 303  # this browser is logged out, and was told so
    assert auth.authenticate("alice", "new-password-1", "test").username == "alice"
    assert any(e.action == "user.passwd" and e.actor == "alice" for e in auth.audit_entries())


def test_only_owners_manage_a_project(client, auth, project, packages):
    auth.grant("bob", "payo", "maintainer")
    assert client.get("/project/payo/manage/").status_code == 303  # anonymous: log in first
    token = login(client, "bob")
    assert client.get("/project/payo/manage/").status_code == 403
    for path, form in POSTS[2:]:
        resp = client.post(path, data=dict(form, csrf_token=token))
        assert resp.status_code == 403 and "not an owner of payo" in text(resp)
    assert client.get("/project/payo/manage/yank?target=1.0").status_code == 403
    assert auth.project_roles("payo") == [("alice", "owner"), ("bob", "maintainer")]
    assert not list(packages.rglob("*.yanked"))
    assert 'href="/project/payo/manage/"' not in text(client.get("/project/payo/"))


def test_all_projects_users_manage_any_project(client, project):
    login(client, "carol")
    assert client.get("/project/payo/manage/").status_code == 200
    assert 'href="/project/payo/manage/"' in text(client.get("/project/payo/"))


def test_owner_grants_and_revokes_upload_rights(client, auth, project, tmp_path):
    token = login(client, "alice")
    assert upload(client, tmp_path, "payo", "3.0", "bob").status_code == 403
    resp = client.post("/project/payo/manage/roles", data={"csrf_token": token, "username": "bob",
                                                           "role": "maintainer"})
    assert resp.status_code == 303
    assert upload(client, tmp_path, "payo", "3.0", "bob").status_code == 200
    unknown = client.post("/project/payo/manage/roles", data={"csrf_token": token, "username": "nobody",
                                                              "role": "owner"})
    assert unknown.status_code == 404 and "no user named" in text(unknown)
    bad_role = client.post("/project/payo/manage/roles", data={"csrf_token": token, "username": "bob",
                                                               "role": "admin"})
    assert bad_role.status_code == 400
    # removing takes a confirmation page first
    assert "Remove bob" in text(client.get("/project/payo/manage/roles/bob/revoke"))
    assert ("bob", "maintainer") in auth.project_roles("payo")
    client.post("/project/payo/manage/roles/bob/revoke", data={"csrf_token": token})
    assert auth.project_roles("payo") == [("alice", "owner")]
    assert upload(client, tmp_path, "payo", "4.0", "bob").status_code == 403
    # the last owner cannot be removed or demoted
    last = client.post("/project/payo/manage/roles/alice/revoke", data={"csrf_token": token})
    assert last.status_code == 303 and "only owner" in text(client.get(last.headers["Location"]))
    demote = client.post("/project/payo/manage/roles", data={"csrf_token": token, "username": "alice",
                                                             "role": "maintainer"})
    assert demote.status_code == 409 and auth.project_roles("payo") == [("alice", "owner")]
    actions = [(e.actor, e.action, e.detail) for e in auth.audit_entries()]
    assert ("alice", "project.grant", "bob as maintainer") in actions and ("alice", "project.revoke", "bob") in actions


def test_yank_and_unyank_reach_the_simple_api(client, auth, project):
    token = login(client, "alice")
    confirm = client.get("/project/payo/manage/yank?target=1.0")
    assert confirm.status_code == 200 and "payo-1.0-py3-none-any.whl" in text(confirm) and 'name="reason"' in text(confirm)
    assert "data-yanked" not in text(client.get("/simple/payo/"))  # the GET changed nothing
    done = client.post("/project/payo/manage/yank", data={"csrf_token": token, "target": "1.0",
                                                          "reason": "broken <build>"})
    assert done.status_code == 303
    simple = text(client.get("/simple/payo/"))
    assert 'data-yanked="broken &lt;build&gt;"' in simple and simple.count("data-yanked") == 1
    files = client.get("/simple/payo/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).get_json()["files"]
    assert {f["filename"]: f["yanked"] for f in files} == {"payo-1.0-py3-none-any.whl": "broken <build>",
                                                           "payo-2.0-py3-none-any.whl": False}
    client.post("/project/payo/manage/unyank", data={"csrf_token": token, "target": "payo-1.0-py3-none-any.whl"})
    assert "data-yanked" not in text(client.get("/simple/payo/"))
    bad = client.post("/project/payo/manage/yank", data={"csrf_token": token, "target": "not-a-version!"})
    assert bad.status_code == 400
    actions = [(e.actor, e.action, e.target, e.detail) for e in auth.audit_entries()]
    assert ("alice", "yank", "payo-1.0-py3-none-any.whl", "broken <build>") in actions
    assert ("alice", "unyank", "payo-1.0-py3-none-any.whl", "") in actions


def test_project_page_says_who_uploaded_each_file_and_with_what(client, auth, project, tmp_path):
    assert upload(client, tmp_path, "payo", "2.1", "carol", user_agent="uv/0.5.1 {\"installer\":1}").status_code == 200
    page = text(client.get("/project/payo/2.0/"))
    assert "Uploaded via twine 7.0.0 by alice" in page
    latest = text(client.get("/project/payo/"))
    assert "Uploaded via uv 0.5.1 by carol" in latest
    history = latest[latest.index('id="history"'):latest.index('id="files"')]
    assert history.count("by alice") == 2 and history.count("by carol") == 1
    login(client, "alice")
    manage_page = text(client.get("/project/payo/manage/"))
    assert "payo-2.1-py3-none-any.whl" in manage_page and "via uv 0.5.1" in manage_page


def test_an_identical_reupload_does_not_take_the_credit(client, project, tmp_path):
    wheel = make_wheel(tmp_path / "same", "payo", "9.0")
    for user in ("alice", "carol"):
        with open(wheel, "rb") as fh:
            resp = client.post("/legacy/", data={":action": "file_upload", "name": "payo", "version": "9.0",
                                                 "content": (fh, wheel.name)},
                               headers={**basic(user, PASSWORDS[user]), "User-Agent": TWINE_UA})
        assert resp.status_code == 200
    assert "Uploaded via twine 7.0.0 by alice" in text(client.get("/project/payo/9.0/"))


def test_who_uploaded_is_an_index_lookup_not_a_scan_of_the_audit_log(app, project):
    from pypi_repo.web.ui_manage import accounts

    with app.app_context():
        acc = accounts()
        acc.upload_records(["payo-1.0-py3-none-any.whl"])
        plan = " ".join(str(tuple(r)) for r in acc.auth.db.query(
            "EXPLAIN QUERY PLAN SELECT id FROM audit_log WHERE target IN (?, ?) AND action IN ('upload', 'remove') "
            "AND outcome = 'ok' ORDER BY id", ("a", "b")))
        assert "audit_log_by_target" in plan, plan
        recent = " ".join(str(tuple(r)) for r in acc.auth.db.query(
            "EXPLAIN QUERY PLAN SELECT id FROM audit_log WHERE actor >= ? AND actor <= ? AND action = 'upload' "
            "ORDER BY id DESC LIMIT 5", ("alice", "alice (token \x7f")))
        assert "audit_log_by_actor" in recent, recent


@pytest.mark.parametrize("user_agent, actor, shown", [
    ("twine/7.0.0 pkginfo/1.12.0 requests/2.32.3 CPython/3.11.2", "alice", "twine 7.0.0"),
    ('uv/0.5.1 {"installer":{"name":"uv"}}', "alice", "uv 0.5.1"),
    ("Mozilla/5.0 (X11; Linux x86_64) Chrome/120", "alice", "a web browser"),
    ("", "cli:root", "manage_repo.py"),
    ("", "alice", ""),
    ("curl", "alice", "curl"),
])
def test_client_tool_names_the_first_product_token(user_agent, actor, shown):
    from pypi_repo.accounts import client_tool

    assert client_tool(user_agent, actor) == shown


def test_history_details_are_shortened_for_people():
    from pypi_repo.accounts import short_detail

    detail = "sha256 " + "a" * 64 + ", 1085 bytes; user agent: twine/7.0.0 CPython/3.11.7"
    assert short_detail(detail) == "sha256 aaaaaaaaaaaa\u2026, 1085 bytes; via twine/7.0.0 CPython/3.11.7"
    assert short_detail("bob as owner") == "bob as owner"


def test_the_web_upload_form_states_the_one_limit_in_bytes_when_the_body_is_too_large(overrides):
    """Issue 10: one upload limit, in bytes, in every refusal (the web form's 413 used to be
    werkzeug's own words, with no limit named)."""
    small = create_app(dict(overrides, max_upload_mb=1))
    small.extensions["pypi_repo"].auth.add_user("alice", PASSWORDS["alice"])
    client = small.test_client()
    token = login(client, "alice")
    body = io.BytesIO(b"\0" * (3 * 1024 * 1024))
    resp = client.post("/upload", data={"csrf_token": token, "content": (body, "big-1.0-py3-none-any.whl")})
    assert resp.status_code == 413
    assert f"larger than the limit of {1024 * 1024} bytes" in text(resp)
