"""Every human page and JSON endpoint through the Flask test client."""
from __future__ import annotations

import re

import pytest

from pypi_repo import create_app

README = """# Payo

Pay from the **command line**.

<script>alert('readme')</script>
<a href="javascript:alert('x')">evil</a>
"""


@pytest.fixture
def app(overrides):
    application = create_app(dict(overrides, catalog_refresh_s=0, public_url="https://pkgs.example.test"))
    application.config["TESTING"] = True
    return application


@pytest.fixture
def tree(add_dist, packages):
    add_dist("payo-cli", "1.0.0", requires_dist=["helper-lib>=0.1", "requests[socks]>=2", "rich; extra == 'fancy'"],
             requires_python=">=3.9", summary="Payment CLI", description=README,
             description_content_type="text/markdown",
             extra_headers=["License-Expression: MIT", "Author-email: Ada Lovelace <ada@example.com>",
                            "Project-URL: Source, https://example.com/src", "Project-URL: Evil, javascript:alert(1)",
                            "Keywords: payments,cli"])
    add_dist("payo-cli", "1.0.0", kind="sdist")
    add_dist("payo-cli", "0.9.0")
    add_dist("payo-cli", "2.0.0rc1")
    (packages / "payo-cli" / "payo_cli-0.9.0-py3-none-any.whl.yanked").write_text("broken build")
    add_dist("helper-lib", "0.1", summary="Helps with payments")
    add_dist("unrelated", "3.0", summary="Something else", requires_dist=["payo-cli"])
    return packages


def text(resp) -> str:
    """The body as a reader sees its text: ``<wbr>`` break hints removed."""
    return resp.get_data(as_text=True).replace("<wbr>", "")


def test_home_explains_usage_with_this_servers_url(client, tree):
    body = text(client.get("/"))
    assert "pip install --index-url https://pkgs.example.test/simple/ PACKAGE" in body
    assert "uv pip install --index-url https://pkgs.example.test/simple/" in body
    assert "poetry source add --priority=primary private https://pkgs.example.test/simple/" in body
    assert "twine upload --repository-url https://pkgs.example.test/ dist/*" in body
    assert "--extra-index-url" in body and "dependency confusion" in body
    assert 'data-copy-target="snip-pip"' in body and 'role="search"' in body
    assert "3 projects" in body and "Recently updated" in body and "payo-cli" in body


def test_home_still_answers_simple_api_clients(client, tree):
    resp = client.get("/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert resp.content_type == "application/vnd.pypi.simple.v1+json"
    assert {p["name"] for p in resp.get_json()["projects"]} == {"payo-cli", "helper-lib", "unrelated"}


def test_project_list_pages_and_filters(client, tree):
    body = text(client.get("/projects/"))
    assert "3 projects" in body and "Payment CLI" in body
    page = text(client.get("/projects/?size=1&page=2"))
    assert "page 2 of 3" in page and 'rel="prev"' in page and 'rel="next"' in page
    found = text(client.get("/projects/?q=payment&partial=1"))
    assert "<html" not in found and "2 results" in found  # name/summary hits: payo-cli, helper-lib
    assert found.index("payo-cli") < found.index("helper-lib")
    assert "No project matches" in text(client.get("/projects/?q=zzzz"))


def test_search_api_is_ranked_json(client, tree):
    doc = client.get("/api/search?q=payo").get_json()
    assert doc["total"] == 1 and doc["results"][0]["name"] == "payo-cli"
    assert doc["results"][0]["version"] == "1.0.0" and doc["results"][0]["url"] == "/project/payo-cli/"
    assert client.get("/api/search?q=").get_json()["total"] == 0


def test_project_page_shows_what_pypi_shows(client, tree):
    body = text(client.get("/project/payo-cli/"))
    assert "<h1>payo-cli" in body and "Payment CLI" in body
    assert "pip install --index-url https://pkgs.example.test/simple/ payo-cli" in body
    for version in ("1.0.0", "0.9.0", "2.0.0rc1"):
        assert f'/project/payo-cli/{version}/' in body
    assert "yanked" in body and "broken build" in body and "pre-release" in body
    assert "payo_cli-1.0.0-py3-none-any.whl" in body and "payo_cli-1.0.0.tar.gz" in body
    assert re.search(r'<code id="sha-[a-z]+-\d+">[0-9a-f]{64}</code>', body)
    assert "py3-none-any" in body and "&gt;=3.9" in body and "MIT" in body
    assert "Ada Lovelace" in body and 'href="https://example.com/src"' in body
    assert "<strong>command line</strong>" in body


def test_project_page_readme_and_urls_are_inert(client, tree):
    body = text(client.get("/project/payo-cli/"))
    assert "alert('readme')" not in body
    assert not re.search(r"""href\s*=\s*["']?\s*javascript""", body, re.I)
    assert "Evil" not in body  # a javascript: project URL is dropped, not linked


def test_project_version_page_and_redirects(client, tree):
    body = text(client.get("/project/payo-cli/0.9.0/"))
    assert "payo-cli==0.9.0" in body and "This release has been yanked" in body and "Reason: broken build" in body
    assert "The latest version is" in body
    assert client.get("/project/Payo_CLI/").headers["Location"].endswith("/project/payo-cli/")
    assert client.get("/project/payo-cli/1.0/").headers["Location"].endswith("/project/payo-cli/1.0.0/")


@pytest.mark.parametrize("url", ["/project/nope/", "/project/payo-cli/7.0/", "/project/payo-cli/not-a-version/",
                                 "/project/-bad-name-/", "/api/project/nope/dependencies"])
def test_unknown_projects_and_versions_are_404(client, tree, url):
    resp = client.get(url)
    assert resp.status_code == 404


def test_error_pages_share_the_site_style(client, tree):
    resp = client.get("/project/nope/")
    assert resp.status_code == 404 and 'class="error-code">404' in text(resp) and "style.css" in text(resp)


def test_dependencies_are_parsed_and_marked_served(client, tree):
    body = text(client.get("/project/payo-cli/"))
    assert "served" in body and "not served" in body and "with extra <code>fancy</code>" in body
    doc = client.get("/api/project/payo-cli/dependencies").get_json()
    deps = {d["name"]: d for d in doc["dependencies"]}
    assert deps["helper-lib"]["served"] and deps["helper-lib"]["specifier"] == ">=0.1"
    assert not deps["requests"]["served"] and deps["requests"]["extras"] == ["socks"]
    assert deps["rich"]["optional"] and deps["rich"]["for_extras"] == ["fancy"]
    assert doc["used_by"] == [{"name": "unrelated", "version": "3.0", "optional": False}]
    assert client.get("/api/project/payo-cli/dependencies?version=0.9.0").get_json()["dependencies"] == []


def test_reverse_dependencies(client, tree):
    doc = client.get("/api/project/helper-lib/dependents").get_json()
    assert doc == {"name": "helper-lib", "complete": True,
                   "used_by": [{"name": "payo-cli", "version": "1.0.0", "optional": False}]}
    assert "/project/payo-cli/" in text(client.get("/project/helper-lib/"))


def test_missing_dependency_report(client, tree):
    doc = client.get("/api/dependencies/missing").get_json()
    assert doc["missing"] == [
        {"name": "requests", "required_by": ["payo-cli"], "only_optional": False},
        {"name": "rich", "required_by": ["payo-cli"], "only_optional": True},
    ]
    body = text(client.get("/dependencies/missing/"))
    assert "Needed everywhere (1)" in body and "Only behind an extra or an environment marker (1)" in body


def test_new_release_shows_up_in_search_and_deps(client, tree, add_dist):
    assert client.get("/api/search?q=payo").get_json()["results"][0]["version"] == "1.0.0"
    add_dist("payo-cli", "1.1.0", requires_dist=["brand-new-dep"])
    assert client.get("/api/search?q=payo").get_json()["results"][0]["version"] == "1.1.0"
    names = [m["name"] for m in client.get("/api/dependencies/missing").get_json()["missing"]]
    assert names == ["brand-new-dep"]


def test_stats_and_health_pages(client, tree):
    stats = text(client.get("/ui/stats"))
    assert "<svg" in stats and "Files over time" in stats and "Bytes over time" in stats
    assert "Largest projects" in stats and "payo-cli" in stats
    health = client.get("/ui/health")
    assert health.status_code == 200 and "packages dir" in text(health) and "badge-ok" in text(health)
    assert client.get("/health").is_json and client.get("/stats").is_json  # the JSON endpoints stay


def test_health_page_shows_no_paths_or_pid(app, client, tree):
    body = text(client.get("/ui/health"))
    settings = app.extensions["pypi_repo"].settings
    assert str(settings.packages_dir) not in body and str(settings.data_dir) not in body
    assert "pid" not in body.lower() and "free_mb" not in body and (" GB" in body or " MB" in body)


class _OtherShapeChecker:
    """A /health document of another shape (liveness/readiness split): the page must still render."""

    def check(self):
        return {"status": "ok", "checks": {"live": True, "ready": {"ok": True, "path": "/srv/x", "lag_s": 3}},
                "pid": 7}


def test_health_page_renders_whatever_health_returns(app, client, tree):
    app.extensions["pypi_repo"].health = _OtherShapeChecker()
    resp = client.get("/ui/health")
    body = text(resp)
    assert resp.status_code == 200 and "ready" in body and "lag" in body and "3 s" in body
    assert "/srv/x" not in body and "pid" not in body.lower()


def test_empty_index_pages(client):
    for url in ("/", "/projects/", "/ui/stats", "/dependencies/missing/"):
        assert client.get(url).status_code == 200, url


def _csrf(body: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)


@pytest.fixture
def user(app):
    app.extensions["pypi_repo"].auth.add_user("alice", "correct horse battery")
    return "alice", "correct horse battery"


def _login(client, user):
    token = _csrf(text(client.get("/login")))
    return client.post("/login", data={"username": user[0], "password": user[1], "csrf_token": token, "next": "/upload"})


def test_login_needs_csrf_and_right_password(client, user):
    client.get("/login")
    assert client.post("/login", data={"username": "alice", "password": user[1]}).status_code == 400
    token = _csrf(text(client.get("/login")))
    bad = client.post("/login", data={"username": "alice", "password": "wrong-password", "csrf_token": token})
    assert bad.status_code == 401 and "Wrong user name, password or token" in text(bad)
    good = _login(client, user)
    assert good.status_code == 303 and good.headers["Location"] == "/upload"
    assert "Log out" in text(client.get("/"))


def test_login_refuses_open_redirects(client, user):
    token = _csrf(text(client.get("/login")))
    resp = client.post("/login", data={"username": "alice", "password": user[1], "csrf_token": token,
                                       "next": "//evil.example/"})
    assert resp.headers["Location"] == "/"


def test_upload_form_stores_a_wheel_through_the_upload_path(client, user, tmp_path, packages):
    from distbuilder import make_wheel

    assert client.get("/upload").status_code == 303  # not logged in: to the login page
    _login(client, user)
    token = _csrf(text(client.get("/upload")))
    wheel = make_wheel(tmp_path / "dist", "web-upload", "0.1.0", summary="From the browser")
    with open(wheel, "rb") as fh:
        resp = client.post("/upload", data={"csrf_token": token, "content": (fh, wheel.name)})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/project/web-upload/0.1.0/")
    assert (packages / "web-upload" / wheel.name).is_file()
    assert "Uploaded web_upload-0.1.0-py3-none-any.whl" in text(client.get(resp.headers["Location"]))
    assert client.get("/api/search?q=web-upload").get_json()["total"] == 1

    liar = tmp_path / "liar" / "other_name-0.1.0-py3-none-any.whl"
    liar.parent.mkdir()
    liar.write_bytes(wheel.read_bytes())
    with open(liar, "rb") as fh:
        bad = client.post("/upload", data={"csrf_token": token, "content": (fh, liar.name)})
    assert bad.status_code == 400 and 'role="alert"' in text(bad)
    assert not (packages / "other-name").exists()
    with open(wheel, "rb") as fh:
        forged = client.post("/upload", data={"csrf_token": "forged", "content": (fh, wheel.name)})
    assert forged.status_code == 400


def test_session_cookie_does_not_authorize_the_twine_api(client, user, tmp_path):
    from distbuilder import make_wheel

    _login(client, user)
    wheel = make_wheel(tmp_path / "dist", "sneaky", "0.1.0")
    with open(wheel, "rb") as fh:
        resp = client.post("/", data={":action": "file_upload", "name": "sneaky", "version": "0.1.0",
                                      "content": (fh, wheel.name)})
    assert resp.status_code == 401
