"""The account and project-management flows in headless Chromium against a real Gunicorn
server, at 375 and 1440 px (issue 12): create a token and upload with it through real twine,
see "Uploaded via twine 7.0.0 by alice", revoke it and watch twine fail; grant a maintainer;
yank with a reason and find it on the Simple API page; change the password and be logged out.
Screenshots go to tests/artifacts/ (git-ignored) for a human to look at."""
from __future__ import annotations

import re
import sys

import pytest
import requests

from conftest import make_repo_dirs, run, start_server
from distbuilder import make_wheel
from pypi_repo.auth import AuthService
from pypi_repo.config import load_settings
from browser_fixtures import browser  # noqa: F401  (the module's Chromium)
from test_ui_browser import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ui-browser")]

PASSWORDS = {"alice": "alice-browser-1", "bob": "bob-browser-22"}
WIDTHS = [375, 1440]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    dirs = make_repo_dirs(tmp_path_factory.mktemp("account-e2e"))
    auth = AuthService(load_settings({"packages_dir": str(dirs["packages"]), "data_dir": str(dirs["data"]),
                                      "logs_dir": str(dirs["logs"]), "argon2_time_cost": 1,
                                      "argon2_memory_kib": 8}))
    for name, password in PASSWORDS.items():
        auth.add_user(name, password)
    srv = start_server(dirs, {"PYPI_REPO_CATALOG_REFRESH_S": "0"})
    srv.auth = auth
    yield srv
    srv.stop()




@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def page(request, browser, server):
    context = browser.new_context(viewport={"width": request.param, "height": 900}, base_url=server.url)
    pg = context.new_page()
    pg.set_default_timeout(10000)
    pg.width = request.param
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.console_errors = errors
    yield pg
    context.close()


def twine(server, wheel, user: str, password: str, check: bool = False):
    return run([sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
                "--repository-url", server.url + "/legacy/", "-u", user, "-p", password, str(wheel)],
               check=check, timeout=60)


def shot(pg, name: str) -> None:
    """Screenshot, and the checks every account page passes: no sideways scroll, no inline
    styles or scripts (the CSP allows neither), no console errors."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"account-{name}-{pg.width}.png"), full_page=True)
    overflow = pg.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{pg.url} scrolls sideways at {pg.width}px by {overflow}px"
    inline = pg.evaluate("[...document.querySelectorAll('[style]:not([style=\\'\\']), script:not([src])')]"
                         ".map(e => e.outerHTML.slice(0, 120))")
    assert inline == []
    assert pg.console_errors == []


def login(pg, user: str, password: str | None = None) -> None:
    pg.goto("/account/")
    pg.wait_for_url("**/login?next=/account/")
    pg.fill("#username", user)
    pg.fill("#password", password or PASSWORDS[user])
    pg.click("form.stack button[type=submit]")
    pg.wait_for_url("**/account/")


def test_token_created_in_the_browser_uploads_with_twine_until_revoked(page, server, tmp_path):
    project = f"browser-tok{page.width}"
    login(page, "alice")
    assert page.locator("nav a[href='/account/']").is_visible()
    page.click("a[href='/account/tokens/new']")
    page.wait_for_url("**/account/tokens/new")
    page.fill("#description", "CI job")
    page.fill("#other_projects", project)
    page.select_option("#expires", "30")
    shot(page, "token-new")
    page.click("form.stack button[type=submit]")
    secret = page.locator("#token-secret").inner_text().strip()
    assert re.fullmatch(r"prt-[0-9a-f]{12}-\S+", secret)
    shot(page, "token-created")

    twine(server, make_wheel(tmp_path / "a", project, "1.0"), "__token__", secret, check=True)
    page.goto(f"/project/{project}/")
    assert page.locator("#files .uploaded-by").inner_text() == "Uploaded via twine 7.0.0 by alice"
    assert "by alice" in page.locator("#history").inner_text()
    shot(page, "project-uploaded-by")

    page.goto("/account/")
    assert secret.split("-", 2)[2] not in page.content()  # shown once, never again
    assert project.replace("-", "_") + "-1.0-py3-none-any.whl" in page.locator("#uploads-h + ul").inner_text()
    shot(page, "account")
    token_id = secret.split("-")[1]
    page.click(f"a[href='/account/tokens/{token_id}/revoke']")
    shot(page, "token-revoke-confirm")
    page.click("button.danger")
    page.wait_for_url("**/account/")
    assert f"Token {token_id} is revoked" in page.locator(".flash").inner_text()
    result = twine(server, make_wheel(tmp_path / "b", project, "2.0"), "__token__", secret)
    assert result.returncode != 0 and "401" in result.stdout + result.stderr
    assert not (server.dirs["packages"] / project / f"{project.replace('-', '_')}-2.0-py3-none-any.whl").exists()


def test_owner_grants_a_maintainer_and_yanks_a_release(page, server, tmp_path):
    project = f"browser-own{page.width}"
    for version in ("1.0", "1.1"):  # what twine sends (the twine test above runs the real one)
        wheel = make_wheel(tmp_path / version, project, version)
        resp = requests.post(server.url + "/legacy/", auth=("alice", PASSWORDS["alice"]), timeout=30,
                             data={":action": "file_upload", "name": project, "version": version},
                             files={"content": (wheel.name, wheel.read_bytes())})
        assert resp.status_code == 200, resp.text
    login(page, "alice")
    page.goto(f"/project/{project}/")
    page.click(f"a[href='/project/{project}/manage/']")
    page.fill("#grant-user", "bob")
    page.select_option("#grant-role", "maintainer")
    page.click(".grant-form button")
    assert "bob is now maintainer" in page.locator(".flash").inner_text()
    assert server.auth.project_roles(project) == [("alice", "owner"), ("bob", "maintainer")]
    shot(page, "manage")

    page.click(f"a[href='/project/{project}/manage/yank?target=1.0']")
    page.fill("#reason", "broken build, use 1.1")
    shot(page, "yank-confirm")
    page.click("button.danger")
    assert "Yanked" in page.locator(".flash").inner_text()
    simple = server.get(f"/simple/{project}/").text
    assert 'data-yanked="broken build, use 1.1"' in simple
    page.goto(f"/project/{project}/1.0/")
    assert "broken build, use 1.1" in page.locator("main").inner_text()

    page.goto(f"/project/{project}/manage/")
    page.click(f"a[href='/project/{project}/manage/unyank?target=1.0']")
    page.click("button.danger")
    assert "data-yanked" not in server.get(f"/simple/{project}/").text


def test_changing_the_password_logs_this_browser_out_and_says_so(page, server):
    user = f"pw{page.width}"
    server.auth.add_user(user, "first-password")
    login(page, user, "first-password")
    page.goto("/account/password")
    page.fill("#current", "first-password")
    page.fill("#new", "second-password")
    page.fill("#repeat", "second-password")
    shot(page, "password")
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/login**")
    assert "this one too" in page.locator(".flash").inner_text()
    assert page.locator("nav a[href='/account/']").count() == 0
    page.fill("#username", user)
    page.fill("#password", "second-password")
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/account/")
