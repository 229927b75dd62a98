"""The UI works in a real Chromium under its own Content-Security-Policy (issue 10): no page
triggers a CSP violation, and the scripted parts (search as you type) still run."""
from __future__ import annotations

import shutil

import pytest
import requests

from conftest import make_repo_dirs, start_server
from distbuilder import make_wheel
from pypi_repo.auth import AuthService
from pypi_repo.config import load_settings

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ui-browser")]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_ui_pages_run_without_csp_violations(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    dirs = make_repo_dirs(tmp_path)
    wheel = make_wheel(dirs["packages"] / "cspdemo", "cspdemo", "1.0", description="# Demo\n\n**bold**\n",
                       description_content_type="text/markdown")
    make_wheel(dirs["packages"] / "other", "other", "2.0")
    settings = load_settings({"packages_dir": str(dirs["packages"]), "data_dir": str(dirs["data"]),
                              "argon2_time_cost": 1, "argon2_memory_kib": 8})
    AuthService(settings).add_user("cspuser", "csp-password-1")
    server = start_server(dirs, {"PYPI_REPO_DOWNLOADS_FLUSH_SECONDS": "1"}, workers=1)
    violations: list[str] = []
    try:
        requests.get(f"{server.url}/packages/cspdemo/{wheel.name}", timeout=10)  # a bar on /ui/stats
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(base_url=server.url)
            page.set_default_timeout(10000)
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            page.on("pageerror", lambda e: violations.append(str(e)))
            for path in ("/", "/project/cspdemo/", "/ui/stats", "/ui/health", "/no/such/page/", "/login"):
                page.goto(path)
                page.wait_for_load_state("load")
            page.fill("input[name=username]", "cspuser")
            page.fill("input[name=password]", "csp-password-1")
            page.click("form[action='/login'] [type=submit]")
            page.wait_for_url("**/")
            page.goto("/upload")
            page.goto("/projects/")
            page.fill("#filter-q", "cspdemo")
            expect(page.locator("#result-count")).to_contain_text("result")  # app.js ran
            browser.close()
    finally:
        server.stop()
    assert violations == []
