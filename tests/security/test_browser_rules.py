"""What browsers get (issue 10): security headers, cookie flags, a Basic challenge only
for installers and uploaders, and no upload through the API from a browser's form."""
from __future__ import annotations

import base64
import re

import pytest

from distbuilder import make_wheel
from pypi_repo import create_app
from pypi_repo.web.security import CONTENT_SECURITY_POLICY

COOKIE = "pypi_repo_session"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _csrf(body: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)


@pytest.fixture
def app(overrides, add_dist):
    add_dist("demo", "1.0")
    application = create_app(overrides)
    application.extensions["pypi_repo"].auth.add_user("alice", "alice-password-1")
    return application


UI_PAGES = ["/", "/projects/", "/project/demo/", "/login", "/ui/stats", "/ui/health", "/no/such/page/"]


@pytest.mark.parametrize("path", UI_PAGES)
def test_ui_pages_carry_the_security_headers(app, path):
    resp = app.test_client().get(path)
    assert resp.content_type.startswith("text/html")
    assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] in ("same-origin", "strict-origin-when-cross-origin")


def test_files_and_json_are_never_sniffed(app):
    client = app.test_client()
    for path in ("/packages/demo/demo-1.0-py3-none-any.whl", "/simple/demo/?format=json", "/health", "/stats"):
        resp = client.get(path)
        assert resp.status_code == 200 and resp.headers["X-Content-Type-Options"] == "nosniff", path


@pytest.mark.parametrize("path", ["/", "/projects/", "/project/demo/", "/login", "/ui/stats"])
def test_templates_have_no_inline_script_or_style_the_policy_would_block(app, path):
    """``style-src 'self'`` and ``script-src 'self'`` block inline ``style=``, ``<style>``,
    inline ``<script>`` and ``on*=`` handlers: the pages must not need them."""
    client = app.test_client()
    client.get("/packages/demo/demo-1.0-py3-none-any.whl")  # /ui/stats then shows a download bar
    app.extensions["pypi_repo"].extras["downloads"].flush()
    body = client.get(path).get_data(as_text=True)
    assert not re.search(r"<[^>]+\sstyle\s*=", body, re.I), "inline style attribute"
    assert not re.search(r"<style[\s>]", body, re.I)
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", body, re.I), "inline script"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", body, re.I), "inline event handler"


def _login(client) -> None:
    token = _csrf(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "alice", "password": "alice-password-1", "csrf_token": token})


@pytest.mark.parametrize(("environ", "headers", "secure"), [
    ({}, {}, False),
    ({}, {"X-Forwarded-Proto": "https"}, True),  # from 127.0.0.1, a trusted proxy by default
    ({"REMOTE_ADDR": "192.0.2.5"}, {"X-Forwarded-Proto": "https"}, False),  # not a trusted proxy
    ({"base_url": "https://localhost"}, {}, True),  # TLS on our own socket
])
def test_session_cookie_flags(app, environ, headers, secure):
    client = app.test_client()
    kw = {"base_url": environ["base_url"]} if "base_url" in environ else {"environ_base": environ}
    token = _csrf(client.get("/login", headers=headers, **kw).get_data(as_text=True))
    resp = client.post("/login", data={"username": "alice", "password": "alice-password-1", "csrf_token": token},
                       headers=headers, **kw)
    cookie = next(v for v in resp.headers.getlist("Set-Cookie") if v.startswith(COOKIE + "="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert "httponly" in flags and "samesite=lax" in cookie.lower().replace(" ", "")
    assert ("secure" in flags) is secure


@pytest.fixture
def private(overrides, add_dist):
    add_dist("demo", "1.0")
    application = create_app({**overrides, "private": True})
    application.extensions["pypi_repo"].auth.add_user("alice", "alice-password-1")
    return application.test_client()


@pytest.mark.parametrize("path", ["/simple/", "/simple/demo/", "/demo/", "/packages/demo/demo-1.0-py3-none-any.whl"])
def test_installers_get_a_basic_challenge(private, path):
    resp = private.get(path)
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("path", ["/", "/projects/", "/project/demo/", "/ui/stats"])
def test_ui_pages_never_send_a_basic_challenge(private, path):
    resp = private.get(path)
    assert "WWW-Authenticate" not in resp.headers
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/login?next=")
    wrong = private.get(path, headers=basic("alice", "wrong-password"))
    assert wrong.status_code == 401 and "WWW-Authenticate" not in wrong.headers
    api = private.get("/api/search?q=demo")
    assert api.status_code == 401 and "WWW-Authenticate" not in api.headers


def test_ui_is_usable_after_login_in_private_mode(private):
    _login(private)
    assert private.get("/project/demo/").status_code == 200


def _upload_form(tmp_path):
    wheel = make_wheel(tmp_path / "dist", "browserpkg", "1.0")
    return {":action": "file_upload", "name": "browserpkg", "version": "1.0",
            "content": (open(wheel, "rb"), wheel.name)}


@pytest.mark.parametrize("browser_headers", [
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "null"},
    {"Origin": "https://evil.example"},
])
@pytest.mark.parametrize("path", ["/", "/legacy/"])
def test_cross_site_form_with_cached_basic_credentials_cannot_upload(app, packages, tmp_path, path,
                                                                     browser_headers):
    client = app.test_client()
    resp = client.post(path, data=_upload_form(tmp_path),
                       headers={**basic("alice", "alice-password-1"), **browser_headers})
    assert resp.status_code == 403 and "WWW-Authenticate" not in resp.headers
    assert not (packages / "browserpkg").exists()


def test_upload_api_401_challenges_twine_but_not_a_browser(app, tmp_path):
    client = app.test_client()
    twine = client.post("/legacy/", data={":action": "file_upload"})
    assert twine.status_code == 401 and twine.headers["WWW-Authenticate"].startswith("Basic")
    browser = client.post("/legacy/", data={":action": "file_upload"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert browser.status_code == 401 and "WWW-Authenticate" not in browser.headers
    ok = client.post("/legacy/", data=_upload_form(tmp_path), headers=basic("alice", "alice-password-1"))
    assert ok.status_code == 200  # no browser headers: twine, uv and poetry keep working
