"""End to end in headless Chromium (Debian's package, driven by Playwright) against a real
Gunicorn server: search as you type, open a project, copy the install command, log in and
upload a wheel, a hostile README stays inert; screenshots at 375 and 1440 px go to
tests/artifacts/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, client_env, make_repo_dirs, start_server
from browser_fixtures import browser  # noqa: F401  (a fixture)
from distbuilder import make_sdist, make_wheel

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ui-browser")]

ARTIFACTS = ROOT / "tests" / "artifacts"
HOSTILE_README = """# Hostile

<script>window.__pwned = 'script'</script>
<img src="x" onerror="window.__pwned = 'onerror'">
[click me](javascript:window.__pwned='md-link')
<a id="evil" href="javascript:window.__pwned='raw-link'">raw link</a>
<iframe src="javascript:window.__pwned='iframe'"></iframe>
"""
PASSWORD = "browser-pass-123"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    dirs = make_repo_dirs(tmp_path_factory.mktemp("ui-e2e"))
    pkgs = dirs["packages"]
    make_wheel(pkgs / "payo-cli", "payo-cli", "1.2.0", summary="Payments from the command line",
               requires_dist=["helper-lib>=0.1", "requests>=2"], requires_python=">=3.9",
               description="# Payo\n\nUse **payo** to pay.\n", description_content_type="text/markdown",
               extra_headers=["License-Expression: MIT", "Project-URL: Source, https://example.com/payo"])
    make_sdist(pkgs / "payo-cli", "payo-cli", "1.2.0")
    make_wheel(pkgs / "payo-cli", "payo-cli", "1.1.0")
    make_wheel(pkgs / "hostile-readme", "hostile-readme", "6.6.6", description=HOSTILE_README,
               description_content_type="text/markdown", summary="Tries to run script",
               extra_headers=["Project-URL: Home, javascript:window.__pwned='url'"])
    for i in range(60):
        make_wheel(pkgs / f"helper-lib{i}", f"helper-lib{i}", "0.1", summary=f"Helper {i} for payments")
    make_wheel(pkgs / "helper-lib", "helper-lib", "0.1", summary="The helper")
    subprocess.run([sys.executable, str(ROOT / "manage_repo.py"), "user", "add", "webuser", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, check=True, timeout=60, capture_output=True,
                   env=client_env(PYPI_REPO_PACKAGES_DIR=str(pkgs), PYPI_REPO_DATA_DIR=str(dirs["data"]),
                                  PYPI_REPO_LOGS_DIR=str(dirs["logs"]), PYPI_REPO_ARGON2_TIME_COST="1",
                                  PYPI_REPO_ARGON2_MEMORY_KIB="8"), cwd=ROOT)
    srv = start_server(dirs, {"PYPI_REPO_CATALOG_REFRESH_S": "0"})
    yield srv
    srv.stop()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=server.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    pg = context.new_page()
    pg.set_default_timeout(10000)
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs
    yield pg
    context.close()


def test_search_as_you_type_filters_the_project_list(page):
    page.goto("/projects/")
    assert "63 projects" in page.locator("#result-count").inner_text()
    page.fill("#filter-q", "helper-lib4")
    from playwright.sync_api import expect

    expect(page.locator("#result-count")).to_contain_text("result")  # no eval: the CSP forbids it
    rows = page.locator(".project-rows .row-name")
    assert rows.first.inner_text() == "helper-lib4"  # the exact match first, without submitting
    assert rows.count() == 11  # helper-lib4 and helper-lib40..49
    assert "q=helper-lib4" in page.url  # the address bar follows, so the view can be shared


def test_home_suggestions_open_a_project(page):
    page.goto("/")
    page.fill("#q", "payo")
    option = page.locator("#suggestions [role=option]").first
    option.wait_for()
    assert "payo-cli" in option.inner_text()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url("**/project/payo-cli/")
    assert page.locator(".project-header h1").inner_text().startswith("payo-cli")
    assert page.locator(".readme-body strong").inner_text() == "payo"


def test_copy_install_command(page, server):
    page.goto("/project/payo-cli/")
    page.click("[data-copy-target=install-cmd]")
    from playwright.sync_api import expect

    expect(page.locator("[data-copy-target=install-cmd]")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"pip install --index-url {server.url}/simple/ payo-cli"


def test_login_and_upload_a_wheel_through_the_form(page, tmp_path):
    wheel = make_wheel(tmp_path, "browser-made", "0.3.0", summary="Uploaded from Chromium")
    page.goto("/upload")
    page.wait_for_url("**/login?next=/upload")
    page.fill("#username", "webuser")
    page.fill("#password", "wrong password!")
    page.click("form.stack button[type=submit]")
    assert "Wrong user name" in page.locator(".form-error").inner_text()
    page.fill("#password", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/upload")
    page.set_input_files("#content", str(wheel))
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/project/browser-made/0.3.0/")
    assert "Uploaded browser_made-0.3.0-py3-none-any.whl" in page.locator(".flash").inner_text()
    assert "browser_made-0.3.0-py3-none-any.whl" in page.locator("#files").inner_text()
    page.goto("/projects/?q=browser")
    assert page.locator(".project-rows .row-name").first.inner_text() == "browser-made"
    # a second, bad upload shows a clear error and stores nothing
    page.goto("/upload")
    bad = tmp_path / "bad" / "browser_made-0.4.0-py3-none-any.whl"
    bad.parent.mkdir()
    bad.write_bytes(b"not a zip at all")
    page.set_input_files("#content", str(bad))
    page.click("form.stack button[type=submit]")
    assert page.locator(".form-error").is_visible()
    assert "zip" in page.locator(".form-error").inner_text().lower()


def test_hostile_readme_is_inert(page):
    page.goto("/project/hostile-readme/")
    page.locator("#description").wait_for()
    assert page.locator(".readme-body script, .readme-body iframe, .readme-body [onerror]").count() == 0
    assert page.locator("a[href^='javascript' i]").count() == 0
    for link in page.locator(".readme-body a").all():
        link.click(timeout=2000, no_wait_after=True)  # clicking whatever is left does nothing bad
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned === undefined")
    assert page.dialogs == []


@pytest.mark.parametrize("width", [375, 1440])
def test_screenshots_and_no_horizontal_scroll(browser, server, width):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=server.url)
    pg = context.new_page()
    try:
        for name, url in [("home", "/"), ("projects", "/projects/"), ("project", "/project/payo-cli/"),
                          ("search", "/projects/?q=helper"), ("missing", "/dependencies/missing/"),
                          ("stats", "/ui/stats"), ("health", "/ui/health"), ("login", "/login"),
                          ("404", "/project/no-such-project/")]:
            pg.goto(url)
            pg.screenshot(path=str(ARTIFACTS / f"ui-{name}-{width}.png"), full_page=True)
            overflow = pg.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{url} scrolls sideways at {width}px by {overflow}px"
    finally:
        context.close()


def test_keyboard_users_can_skip_to_content_and_reach_search(page):
    page.goto("/projects/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    labels = page.evaluate("[...document.querySelectorAll('input:not([type=hidden])')].every("
                           "i => i.labels && i.labels.length > 0)")
    assert labels
