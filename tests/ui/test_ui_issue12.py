"""Issue 12 in real Chromium at 375 and 1440 px: each defect a reviewer saw, and the features
PyPI users expect, against a real Gunicorn server serving a realistic tree (tests/ui/realistic.py).
Every page here is also checked with axe-core (the copy shipped in the axe-playwright-python
wheel, loaded from disk: no network). Screenshots go to tests/artifacts/issue12-*.png.
"""
from __future__ import annotations

import contextlib
import gzip
import re
import time
from pathlib import Path

import pytest
import requests

from browser_fixtures import browser  # noqa: F401  (a fixture)
from conftest import ROOT, make_repo_dirs, start_server
from realistic import build_tree

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ui-browser")]

ARTIFACTS = ROOT / "tests" / "artifacts"
WIDTHS = [375, 1440]
RICH = "/project/rich-like/"


def _axe_source() -> str:
    import axe_playwright_python

    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    dirs = make_repo_dirs(tmp_path_factory.mktemp("ui-issue12"))
    build_tree(dirs["packages"])
    srv = start_server(dirs, {"PYPI_REPO_CATALOG_REFRESH_S": "0"})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def axe_js() -> str:
    return _axe_source()


@contextlib.contextmanager
def opened(browser, server, width, scheme="light", js=True):  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=server.url,
                                  color_scheme=scheme, java_script_enabled=js, bypass_csp=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    pg = context.new_page()
    pg.set_default_timeout(10000)
    try:
        yield pg
    finally:
        context.close()


def shot(pg, name: str, width: int) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"issue12-{name}-{width}.png"), full_page=True)


def no_sideways_scroll(pg) -> None:
    assert pg.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0


def fully_visible(pg, selector: str) -> None:
    """The element shows all of its text: nothing scrolls inside it, nothing is cut at the viewport."""
    box = pg.evaluate("""s => { const e = document.querySelector(s); const r = e.getBoundingClientRect();
        return {over: e.scrollWidth - e.clientWidth, right: r.right, vw: document.documentElement.clientWidth}; }""",
                      selector)
    assert box["over"] <= 0 and box["right"] <= box["vw"], (selector, box)


def axe_clean(pg, axe_js: str) -> None:
    pg.evaluate(axe_js)
    result = pg.evaluate("axe.run(document, {resultTypes: ['violations']})")
    found = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
    assert found == [], found


# ------------------------------------------------------------------ defect 1
@pytest.mark.parametrize("width", WIDTHS)
def test_whole_install_commands_are_visible_and_copy_exactly(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto(RICH)
        fully_visible(pg, "#install-cmd")
        shown = pg.locator("#install-cmd").inner_text()
        assert shown.replace("\n", "") == f"pip install --index-url {server.url}/simple/ Rich-Like"
        pg.click("[data-copy-target=install-cmd]")
        pg.wait_for_function("document.querySelector('[data-copy-target=install-cmd]').textContent === 'Copied'")
        assert pg.evaluate("navigator.clipboard.readText()") == f"pip install --index-url {server.url}/simple/ Rich-Like"
        pg.goto("/")
        for snippet in ("#snip-pip", "#snip-uv", "#snip-twine", "#snip-poetry"):
            fully_visible(pg, snippet)
        assert pg.locator("#snip-pip").inner_text().endswith("PACKAGE")
        assert pg.locator("#snip-twine").inner_text().endswith("dist/*")
        no_sideways_scroll(pg)
        shot(pg, "home", width)


# ------------------------------------------------------------------ defect 2
@pytest.mark.parametrize("width", WIDTHS)
def test_conditional_dependencies_are_evaluated_for_a_chosen_environment(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto(RICH + "?python=3.12&platform=linux#dependencies")
        needed = pg.locator("#deps-needed + .table-wrap").inner_text()
        assert "pyg-like" in needed and "markdown-it-py" in needed
        assert "colorama" not in needed and "typing-extensions" not in needed and "ipywidgets" not in needed
        conditional = pg.locator("#deps-conditional ~ .table-wrap").inner_text()
        assert 'sys_platform == "win32"' in conditional and 'python_version < "3.11"' in conditional
        row = pg.locator("tr", has_text="colorama")
        assert "dep-skipped" in row.get_attribute("class") and row.locator(".badge-bad").count() == 0
        assert pg.locator("tr", has_text="ipywidgets").inner_text().count("only with the extra") == 1
        pg.select_option("#env-platform", "windows")
        pg.select_option("#env-python", "3.10")
        pg.click(".deps-env button")
        pg.wait_for_url("**platform=windows**")
        assert "Python 3.10 on Windows" in pg.locator("#dependencies").inner_text()
        for name in ("colorama", "typing-extensions"):
            row = pg.locator("tr", has_text=name)
            assert "dep-applies" in row.get_attribute("class") and "needed, not served" in row.inner_text()
        no_sideways_scroll(pg)
        pg.goto("/project/pyg-like/")  # colorama only behind an extra: never "needed" there
        assert pg.locator("#deps-needed").inner_text().startswith("Needed everywhere (0)")
        assert "with extra windows-terminal" in pg.locator("#dependencies").inner_text()


# ------------------------------------------------------------------ defect 3
@pytest.mark.parametrize("width", WIDTHS)
def test_pager_keeps_the_page_size(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto("/projects/?size=10&page=2")
        assert pg.locator(".project-rows li").count() == 10
        pg.click("a[rel=next]")
        pg.wait_for_url("**page=3**")
        assert "size=10" in pg.url
        assert "34 projects" in pg.locator("#result-count").inner_text()
        assert pg.locator(".project-rows li").count() == 10
        assert "size=10" in pg.locator("a[rel=prev]").get_attribute("href")
        no_sideways_scroll(pg)


# ------------------------------------------------------------------ defect 4
@pytest.mark.parametrize("width", WIDTHS)
def test_readme_code_is_highlighted_in_light_and_dark(browser, server, width):  # noqa: F811
    colours = {}
    for scheme in ("light", "dark"):
        with opened(browser, server, width, scheme) as pg:
            pg.goto(RICH)
            keyword = pg.locator(".readme-body pre.highlight .k").first
            assert keyword.inner_text() == "def"
            plain = pg.evaluate("getComputedStyle(document.querySelector('.readme-body pre.highlight')).color")
            colours[scheme] = keyword.evaluate("e => getComputedStyle(e).color")
            assert colours[scheme] != plain
            pg.goto("/project/pyg-like/")  # reST code-block: the same classes
            assert pg.locator(".readme-body pre .kn").first.inner_text() == "import"
    assert colours["light"] != colours["dark"]


# ------------------------------------------------------------------ defect 5
@pytest.mark.parametrize("width", WIDTHS)
def test_files_split_into_source_and_built_and_fit(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto("/project/numpy-like/")
        assert pg.locator("#files-sdist h3").inner_text() == "Source distribution"
        assert pg.locator("#files-wheel h3").inner_text() == "Built distributions"
        assert pg.locator("#files-wheel .dist").count() == 8 and pg.locator("#files-sdist .dist").count() == 1
        overflowing = pg.evaluate("""[...document.querySelectorAll('#files .dist, #files .dist *')]
            .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible'
                         && e.clientWidth > 0).map(e => e.className || e.tagName)""")
        assert overflowing == []
        line = pg.evaluate("parseFloat(getComputedStyle(document.querySelector('.dist-meta')).lineHeight)")
        for height in pg.locator("#files time").evaluate_all("ts => ts.map(t => t.getBoundingClientRect().height)"):
            assert height < 1.5 * line  # an upload date stays on one line
        if width == 1440:  # a long wheel name fits on one line: no mid-word breaks
            name = pg.locator("#files-wheel .dist-name").first
            assert name.evaluate("e => e.getBoundingClientRect().height") < 1.5 * line * 16 / 14
        button = pg.locator("#files-wheel .copy-button").first
        button.click()
        pg.wait_for_function("document.querySelector('#files-wheel .copy-button').textContent === 'Copied'")
        assert re.fullmatch(r"[0-9a-f]{64}", pg.evaluate("navigator.clipboard.readText()"))
        no_sideways_scroll(pg)
        shot(pg, "files", width)


# ------------------------------------------------------------------ defect 6
@pytest.mark.parametrize("width", WIDTHS)
def test_readme_images_from_other_hosts_are_never_requested(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        asked: list[str] = []
        pg.on("request", lambda r: asked.append(r.url))
        pg.goto(RICH, wait_until="load")
        pg.goto("/project/pyg-like/", wait_until="load")
        assert asked and all(u.startswith(server.url + "/") for u in asked), [u for u in asked if server.url not in u]
        assert pg.locator(".readme-body img").count() == 0
        assert "Pyg-Like logo" in pg.locator(".readme-body .remote-image").inner_text()
        pg.goto(RICH)
        placeholders = pg.locator(".readme-body .remote-image")
        assert placeholders.count() == 4
        texts = placeholders.all_inner_texts()
        assert "Supported Python Versions" in texts and "image from example.org" in texts  # never a raw URL
        link = pg.locator(".readme-body a.remote-image", has_text="Features")
        assert link.get_attribute("href") == "https://raw.githubusercontent.example/rich/imgs/features.png"


# ------------------------------------------------------------------ defect 7
@pytest.mark.parametrize("width", WIDTHS)
def test_essentials_come_before_the_readme(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto(RICH)
        readme = pg.locator("#description").bounding_box()
        for selector in (".tabs", ".requires-python", ".license", "text=Documentation"):
            box = pg.locator(selector).first.bounding_box()
            if width == 375:
                assert box["y"] < readme["y"], selector
            else:
                assert box["x"] < readme["x"], selector  # the left column, beside it
        shot(pg, "project", width)


# ------------------------------------------------------------------ defect 8 + current version
@pytest.mark.parametrize("width", WIDTHS)
def test_release_history_reads_top_to_bottom_and_marks_this_version(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto("/project/rich-like/13.8.0/")
        items = pg.locator(".releases li")
        versions = [t.split()[0] for t in items.all_inner_texts()]
        assert versions == ["13.9.4", "13.9.3", "13.9.2", "13.8.0", "12.0.0"]
        tops = items.evaluate_all("ls => ls.map(l => l.getBoundingClientRect().top)")
        assert tops == sorted(tops) and len(set(tops)) == len(tops)  # one column, in order
        current = pg.locator(".releases li.current")
        assert current.locator("a[aria-current=page]").inner_text() == "13.8.0"
        assert "this version" in current.inner_text()
        pg.goto("/project/markdown-it-py/")
        gap = pg.evaluate("""() => { const ul = document.querySelector('.used-by');
            const prev = ul.previousElementSibling.getBoundingClientRect();
            const first = ul.firstElementChild.getBoundingClientRect();
            return {gap: first.top - prev.bottom, inside: first.left - ul.getBoundingClientRect().left}; }""")
        assert gap["gap"] >= 4 and gap["inside"] >= 0


# ------------------------------------------------------------------ defect 9
@pytest.mark.parametrize("width", WIDTHS)
def test_yanked_release_has_a_full_width_banner_with_the_reason(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto("/project/rich-like/13.9.2/")
        banner = pg.locator(".banner[role=alert]")
        assert "yanked" in banner.inner_text() and "Broken import on Python 3.8" in banner.inner_text()
        main = pg.locator("main").evaluate("m => m.clientWidth - parseFloat(getComputedStyle(m).paddingLeft) * 2")
        assert banner.bounding_box()["width"] >= main - 2
        shot(pg, "yanked", width)


# ------------------------------------------------------------------ defect 10
@pytest.mark.parametrize("width", WIDTHS)
def test_readme_styles_are_isolated_and_footnotes_render(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto(RICH)
        style = pg.evaluate("""() => {
            const th = getComputedStyle(document.querySelector('.readme-body th'));
            const size = s => parseFloat(getComputedStyle(document.querySelector(s)).fontSize);
            return {transform: th.textTransform, readme: size('.readme-body h1'), title: size('.project-header h1')}; }""")
        assert style["transform"] == "none" and style["readme"] < style["title"]
        body = pg.locator(".readme-body").inner_text()
        assert "[^1]" not in body and "Terminal support varies" in pg.locator(".readme-body .footnotes").inner_text()
        pg.click(".readme-body .footnote-ref a")
        assert pg.evaluate("location.hash") == "#user-content-fn1"
        # a README's id/name cannot replace the page's own elements (DOM clobbering)
        assert pg.evaluate("document.getElementById('live-region').tagName") == "DIV"
        assert pg.evaluate("typeof document.querySelector") == "function"


# ------------------------------------------------------------------ defect 11
@pytest.mark.parametrize("width", WIDTHS)
def test_404_pages_say_what_is_missing_and_offer_one_search(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        resp = pg.goto("/project/no-such-thing/")
        assert resp.status == 404
        assert pg.locator("h1").inner_text() == "Project not found"
        assert pg.locator("input[type=search]").count() == 1
        assert pg.locator("input[type=search]").input_value() == "no-such-thing"
        shot(pg, "404", width)
        pg.goto("/project/rich-like/9.9.9/")
        assert pg.locator("h1").inner_text() == "Version not found"
        pg.click("text=See every version of rich-like")
        pg.wait_for_url("**/project/rich-like/#history")


# ------------------------------------------------------------------ defect 12
@pytest.mark.parametrize("width", WIDTHS)
def test_stats_page_is_the_same_from_every_worker_and_readable(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        seen = set()
        for _ in range(6):  # two workers answer in turn
            pg.goto("/ui/stats")
            seen.add(pg.locator("main").inner_text())
        assert len(seen) == 1
        text = seen.pop()
        tiles = pg.locator(".tiles").inner_text().lower()
        assert "uptime" not in tiles and "hits" not in text and "This worker" not in text
        heights = pg.locator(".chart text.tick").evaluate_all(
            "ts => ts.filter(t => t.getBoundingClientRect().height > 0).map(t => t.getBoundingClientRect().height)")
        assert heights and min(heights) >= 11
        labels = pg.locator(".chart text.tick").evaluate_all(
            "ts => ts.filter(t => t.getBoundingClientRect().width > 0).map(t => t.getBoundingClientRect())")
        for a, b in zip(labels, labels[1:]):  # no two visible labels overlap
            assert a["right"] <= b["left"] or b["right"] <= a["left"] or a["bottom"] <= b["top"] or b["bottom"] <= a["top"]
        no_sideways_scroll(pg)
        shot(pg, "stats", width)


def test_most_downloaded_uses_display_names_like_largest(server):
    wheel = next((server.dirs["packages"] / "pyg-like").glob("*.whl"))
    assert requests.get(f"{server.url}/packages/pyg-like/{wheel.name}", timeout=10).status_code == 200
    deadline = time.monotonic() + 20  # each worker flushes its counts every second
    body = ""
    while time.monotonic() < deadline and "Most downloaded" not in body:
        time.sleep(0.2)
        body = requests.get(server.url + "/ui/stats", timeout=10).text
    section = body.split("Most downloaded", 1)[1]
    assert ">Pyg-Like</a>" in section and ">pyg-like</a>" not in section


# ------------------------------------------------------------------ defect 13
@pytest.mark.parametrize("width", WIDTHS)
def test_health_page_hides_paths_and_pid_and_reads_like_prose(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto("/ui/health")
        text = pg.locator("main").inner_text()
        assert str(server.dirs["packages"]) not in text and str(server.dirs["data"]) not in text
        assert "pid" not in text.lower() and "free mb" not in text and "uptime s" not in text
        assert re.search(r"free \d+(\.\d)? (GB|MB|TB)", text)
        assert re.search(r"up \d+ (s|min|h)", text)
        no_sideways_scroll(pg)
        shot(pg, "health", width)


# ------------------------------------------------------------------ defect 14
@pytest.mark.parametrize("width", WIDTHS)
def test_author_name_and_address_are_one_person(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto(RICH)
        authors = pg.locator("dd.authors")
        assert authors.inner_text() == "Will McGugan"
        assert authors.locator("a").get_attribute("href") == "mailto:willmcgugan@gmail.com"


# ------------------------------------------------------------------ defect 15
@pytest.mark.parametrize("width", WIDTHS)
def test_dark_mode_follows_the_system(browser, server, width, axe_js):  # noqa: F811
    with opened(browser, server, width, "dark") as pg:
        for url in ("/", RICH) if width == 1440 else ("/", RICH, "/ui/stats", "/project/rich-like/13.9.2/"):
            pg.goto(url)
            rgb = [int(c) for c in re.findall(r"\d+", pg.evaluate("getComputedStyle(document.body).backgroundColor"))[:3]]
            assert max(rgb) < 60, (url, rgb)
            axe_clean(pg, axe_js)
        shot(pg, "project-dark", width)


# ------------------------------------------------------------------ defect 16
@pytest.mark.parametrize("width", WIDTHS)
def test_small_things(browser, server, width):  # noqa: F811
    with opened(browser, server, width, js=False) as pg:  # no dead buttons without JavaScript
        pg.goto(RICH)
        assert pg.locator(".copy-button:visible").count() == 0
    with opened(browser, server, width) as pg:
        pg.goto(RICH)
        assert pg.locator(".copy-button:visible").count() >= 3
        assert pg.locator("dd.downloads").inner_text() == "No downloads yet"  # not "0 in all, 0 in ..."
        header = pg.locator(".site-header").bounding_box()
        brand, login = pg.locator(".brand").bounding_box(), pg.locator("text=Log in").bounding_box()
        assert abs(brand["y"] + brand["height"] / 2 - (login["y"] + login["height"] / 2)) < 8  # one row
        assert header["height"] <= (110 if width == 375 else 70)
        sizes = pg.evaluate("""[...document.querySelectorAll('.site-header nav a, .site-header input')]
            .filter(e => e.offsetParent).map(e => getComputedStyle(e).fontSize)""")
        assert len(set(sizes)) == 1, sizes
        pg.goto("/projects/?q=filler")
        assert not re.search(r"\d ms\b", pg.locator("main").inner_text())


def test_pages_and_simple_api_are_compressed_but_files_are_not(server):
    page = requests.get(server.url + RICH, headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert page.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in page.headers["Vary"]
    assert int(page.headers["Content-Length"]) < len(page.content) / 3
    br = requests.get(server.url + RICH, headers={"Accept-Encoding": "br"}, timeout=10, stream=True)
    assert br.headers["Content-Encoding"] == "br"
    raw = requests.get(server.url + RICH, headers={"Accept-Encoding": "identity"}, timeout=10)
    assert "Content-Encoding" not in raw.headers and raw.text == page.text
    simple = requests.get(server.url + "/simple/numpy-like/", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert simple.headers["Content-Encoding"] == "gzip" and simple.headers["ETag"].startswith('W/"')
    again = requests.get(server.url + "/simple/numpy-like/", timeout=10,
                         headers={"Accept-Encoding": "gzip", "If-None-Match": simple.headers["ETag"]})
    assert again.status_code == 304
    wheel = next((server.dirs["packages"] / "numpy-like").glob("*.whl"))
    url = f"{server.url}/packages/numpy-like/{wheel.name}"
    got = requests.get(url, headers={"Accept-Encoding": "gzip, br"}, timeout=10)
    assert "Content-Encoding" not in got.headers and got.content == wheel.read_bytes()
    part = requests.get(url, headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9"}, timeout=10)
    assert part.status_code == 206 and part.content == wheel.read_bytes()[:10]
    etag = got.headers["ETag"]
    assert requests.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": etag}, timeout=10).status_code == 304
    assert gzip.decompress(requests.get(server.url + "/simple/numpy-like/", headers={"Accept-Encoding": "gzip"},
                                        timeout=10, stream=True).raw.read()) == simple.content


# ------------------------------------------------------------------ features
@pytest.mark.parametrize("width", WIDTHS)
def test_released_date_and_grouped_linked_classifiers(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto(RICH)
        assert re.fullmatch(r"Released: \d{4}-\d{2}-\d{2}", pg.locator(".released").inner_text())
        groups = pg.locator("dl.classifiers dt").all_inner_texts()
        assert groups == sorted(groups) and "Programming Language" in groups and len(groups) == 8
        pg.click("dl.classifiers a:text-is('Console')")
        pg.wait_for_url("**classifier=**")
        names = pg.locator(".row-name").all_inner_texts()
        assert names == ["Pyg-Like", "Rich-Like"]
        assert "Environment :: Console" in pg.locator(".filter-chips").inner_text()


@pytest.mark.parametrize("width", WIDTHS)
def test_search_highlights_matches_and_filters_by_python(browser, server, width):  # noqa: F811
    with opened(browser, server, width) as pg:
        pg.goto("/projects/?q=terminal")
        marks = pg.locator(".project-rows mark").all_inner_texts()
        assert marks and all(m.lower() == "terminal" for m in marks)
        pg.goto("/projects/?q=like")
        assert "numpy-like" in pg.locator(".project-rows").inner_text()
        pg.select_option("#filter-python", "3.8")  # numpy-like needs >=3.10
        pg.wait_for_function("!document.querySelector('.project-rows').textContent.includes('numpy-like')")
        assert "python=3.8" in pg.url
        assert "Rich-Like" in pg.locator(".project-rows").inner_text()
        shot(pg, "search", width)


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_are_axe_clean(browser, server, width, axe_js):  # noqa: F811
    urls = ["/", "/projects/?q=like", RICH, "/project/rich-like/13.9.2/", "/project/numpy-like/"]
    if width == 375:  # the rest do not change layout between widths: once is enough
        urls += ["/project/pyg-like/", "/dependencies/missing/", "/ui/stats", "/ui/health", "/project/nope/"]
    with opened(browser, server, width) as pg:
        for url in urls:
            pg.goto(url)
            axe_clean(pg, axe_js)
