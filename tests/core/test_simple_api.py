"""The Simple Repository API through the Flask test client: golden pages, PEP details,
redirects, caching headers, and hostile input."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from pypi_repo.simple_api import JSON_V1

GOLDEN = Path(__file__).parent / "golden"
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
FIXED_MTIME = 1_700_000_000


@pytest.fixture
def demo_tree(add_dist, packages):
    """demo-pkg 1.0 (wheel + sdist, requires-python) and 2.0 (wheel, yanked with a hostile reason)."""
    paths = [
        add_dist("demo-pkg", "1.0", requires_python=">=3.8", requires_dist=["payo-cli>=1"]),
        add_dist("demo-pkg", "1.0", kind="sdist", requires_python=">=3.8"),
        add_dist("demo-pkg", "2.0", requires_python="<4,>=3.9"),
    ]
    (paths[2].parent / (paths[2].name + ".yanked")).write_text('broken <script>alert("x")</script> & more')
    for p in paths:
        os.utime(p, (FIXED_MTIME, FIXED_MTIME))
    return paths


def golden(name: str, body: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(body)
    assert body.decode() == path.read_text()


def test_project_page_html_matches_golden(client, demo_tree):
    resp = client.get("/simple/demo-pkg/")
    assert resp.status_code == 200
    assert resp.content_type == "text/html"
    golden("demo-pkg.html", resp.data)


def test_project_page_json_matches_golden(client, demo_tree):
    resp = client.get("/simple/demo-pkg/", headers={"Accept": PIP_ACCEPT})
    assert resp.status_code == 200
    assert resp.content_type == JSON_V1
    golden("demo-pkg.json", json.dumps(resp.get_json(), indent=2, sort_keys=True).encode() + b"\n")


def test_root_index_in_both_formats(client, demo_tree, add_dist):
    add_dist("Other.Project", "0.1")
    html = client.get("/simple/").data.decode()
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta name="pypi:repository-version" content="1.1">' in html
    assert '<a href="/simple/demo-pkg/">demo-pkg</a>' in html
    assert '<a href="/simple/other-project/">other-project</a>' in html
    doc = client.get("/simple/", headers={"Accept": JSON_V1}).get_json()
    assert doc == {"meta": {"api-version": "1.1"}, "projects": [{"name": "demo-pkg"}, {"name": "other-project"}]}


def test_hashes_are_of_the_real_bytes(client, demo_tree):
    doc = client.get("/simple/demo-pkg/?format=json").get_json()
    for entry in doc["files"]:
        data = client.get(entry["url"]).data
        assert hashlib.sha256(data).hexdigest() == entry["hashes"]["sha256"]
        assert len(data) == entry["size"]


def test_core_metadata_served_and_hash_matches(client, demo_tree):
    doc = client.get("/simple/demo-pkg/?format=json").get_json()
    wheel = next(f for f in doc["files"] if f["filename"].endswith(".whl"))
    meta = client.get(wheel["url"] + ".metadata")
    assert meta.status_code == 200
    assert hashlib.sha256(meta.data).hexdigest() == wheel["core-metadata"]["sha256"]
    assert b"Requires-Dist: payo-cli>=1" in meta.data
    sdist = next(f for f in doc["files"] if f["filename"].endswith(".tar.gz"))
    assert sdist["core-metadata"] is False
    assert client.get(sdist["url"] + ".metadata").status_code == 404


def test_metadata_file_rebuilt_when_derived_state_is_deleted(client, demo_tree, repo_dirs):
    url = "/packages/demo-pkg/demo_pkg-1.0-py3-none-any.whl.metadata"
    first = client.get(url).data
    import shutil

    shutil.rmtree(repo_dirs["data"] / "metadata")
    shutil.rmtree(repo_dirs["data"] / "index")
    assert client.get(url).data == first


def test_non_normalized_name_redirects_permanently_keeping_query(client, demo_tree):
    resp = client.get("/simple/Demo_Pkg/?format=json")
    assert resp.status_code == 301
    assert resp.headers["Location"].endswith("/simple/demo-pkg/?format=json")


def test_slashless_url_redirects_to_slash_form(client, demo_tree):
    resp = client.get("/simple/demo-pkg")
    assert resp.status_code in (301, 308)
    assert resp.headers["Location"].endswith("/simple/demo-pkg/")
    resp = client.get("/demo-pkg")
    assert resp.status_code == 301 and resp.headers["Location"].endswith("/demo-pkg/")


def test_root_alias_serves_the_project_page(client, demo_tree):
    assert client.get("/demo-pkg/").data == client.get("/simple/demo-pkg/").data


def test_home_page_answers_simple_api_json_clients(client, demo_tree):
    resp = client.get("/", headers={"Accept": PIP_ACCEPT})
    assert resp.content_type == JSON_V1
    assert resp.get_json()["projects"] == [{"name": "demo-pkg"}]


def test_unknown_project_404_html_and_json(client, demo_tree):
    assert client.get("/simple/nope/").status_code == 404
    resp = client.get("/simple/nope/", headers={"Accept": PIP_ACCEPT})
    assert resp.status_code == 404 and resp.is_json and "nope" in resp.get_json()["error"]


def test_406_when_nothing_fits_and_vary_accept(client, demo_tree):
    resp = client.get("/simple/demo-pkg/", headers={"Accept": "application/json"})
    assert resp.status_code == 406
    ok = client.get("/simple/demo-pkg/")
    assert [v.strip() for v in ok.headers["Vary"].split(",")][0] == "Accept"  # then Accept-Encoding (gzip/br)


def test_etag_and_304_on_pages(client, demo_tree):
    first = client.get("/simple/demo-pkg/")
    etag = first.headers["ETag"]
    assert "must-revalidate" in first.headers["Cache-Control"]
    again = client.get("/simple/demo-pkg/", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    json_etag = client.get("/simple/demo-pkg/", headers={"Accept": JSON_V1}).headers["ETag"]
    assert json_etag != etag


def test_file_dropped_on_disk_appears_on_the_next_request(client, demo_tree, add_dist):
    etag = client.get("/simple/demo-pkg/").headers["ETag"]
    add_dist("demo-pkg", "3.0")
    resp = client.get("/simple/demo-pkg/", headers={"If-None-Match": etag})
    assert resp.status_code == 200
    assert b"demo_pkg-3.0-py3-none-any.whl" in resp.data
    add_dist("brand-new", "0.1")
    assert b"brand-new" in client.get("/simple/").data


def test_file_overwritten_in_place_gets_its_new_hash(client, demo_tree):
    target = demo_tree[1]
    client.get("/simple/demo-pkg/")
    target.write_bytes(target.read_bytes() + b"\0")  # same name, same directory mtime
    doc = client.get("/simple/demo-pkg/?format=json").get_json()
    entry = next(f for f in doc["files"] if f["filename"] == target.name)
    assert entry["hashes"]["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()


def test_hand_made_directory_with_unnormalized_name(client, packages):
    from distbuilder import make_wheel

    make_wheel(packages / "My_Tool", "My_Tool", "1.0")
    assert b'href="/simple/my-tool/"' in client.get("/simple/").data
    page = client.get("/simple/my-tool/").data.decode()
    assert "/packages/my-tool/my_tool-1.0-py3-none-any.whl" in page
    assert client.get("/packages/my-tool/my_tool-1.0-py3-none-any.whl").status_code == 200


def test_unparseable_files_are_not_listed(client, demo_tree, packages):
    (packages / "demo-pkg" / "notes.txt").write_text("hi")
    (packages / "demo-pkg" / ".upload-abc.part").write_text("partial")
    body = client.get("/simple/demo-pkg/").data
    assert b"notes.txt" not in body and b".part" not in body


class TestFiles:
    URL = "/packages/demo-pkg/demo_pkg-1.0.tar.gz"

    def test_download_headers(self, client, demo_tree):
        resp = client.get(self.URL)
        assert resp.status_code == 200
        assert resp.content_type == "application/gzip"
        assert "Content-Encoding" not in resp.headers  # a .tar.gz must not be decoded by clients
        assert int(resp.headers["Content-Length"]) == demo_tree[1].stat().st_size
        assert resp.headers["ETag"] and resp.headers["Last-Modified"]
        assert resp.headers["Accept-Ranges"] == "bytes"

    def test_head_has_no_body(self, client, demo_tree):
        resp = client.head(self.URL)
        assert resp.status_code == 200 and resp.data == b""
        assert int(resp.headers["Content-Length"]) == demo_tree[1].stat().st_size

    def test_conditional_get(self, client, demo_tree):
        etag = client.get(self.URL).headers["ETag"]
        assert client.get(self.URL, headers={"If-None-Match": etag}).status_code == 304

    def test_range_requests(self, client, demo_tree):
        data = demo_tree[1].read_bytes()
        resp = client.get(self.URL, headers={"Range": "bytes=0-9"})
        assert resp.status_code == 206 and resp.data == data[:10]
        assert resp.headers["Content-Range"] == f"bytes 0-9/{len(data)}"
        assert client.get(self.URL, headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416

    def test_wrong_project_in_file_url(self, client, demo_tree, add_dist):
        add_dist("other", "1.0")
        assert client.get("/packages/other/demo_pkg-1.0.tar.gz").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/packages/demo-pkg/..%2f..%2fetc%2fpasswd",
        "/packages/demo-pkg/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/packages/..%2F..%2F/demo_pkg-1.0.tar.gz",
        "/packages/demo-pkg/..%5c..%5cetc%5cpasswd",
        "/packages/demo-pkg/%2e%2e",
        "/packages/demo-pkg/demo_pkg-1.0.tar.gz%00.txt",
        "/packages/%2e%2e/demo_pkg-1.0.tar.gz",
        "/packages/demo-pkg/%252e%252e%252fetc%252fpasswd",
        "/packages/demo-pkg/....//....//etc/passwd",
        "/simple/..%2f..%2f/",
        "/simple/%2e%2e/",
        "/simple/" + "a" * 20000 + "/",
        "/packages/" + "a" * 20000 + "/x.whl",
        "/simple/%ff%fe/",
        "/simple/%c0%af/",
        "/simple/\u00e9t\u00e9/",
        "/simple/%F0%9F%90%8D/",
        "/packages/demo-pkg/%ff.whl",
        "/packages/demo-pkg/.yanked",
        "/packages/demo-pkg/demo_pkg-2.0-py3-none-any.whl.yanked",
    ],
)
def test_hostile_paths_get_a_clear_4xx(client, demo_tree, path):
    resp = client.get(path)
    assert 400 <= resp.status_code < 500, (path, resp.status_code)
    assert b"root:" not in resp.data


@pytest.mark.parametrize(
    "headers",
    [
        {"Accept": "\x00\x01garbage"},
        {"Accept": "text/html;q=abc"},
        {"Accept": ",,,,;;;"},
        {"Accept": "a" * 10000},
        {"If-None-Match": "\xff" * 10},
        {"Range": "bytes=zzz"},
        {"Range": "bytes=5-1"},
    ],
)
def test_malformed_headers_never_5xx(client, demo_tree, headers):
    for path in ("/simple/demo-pkg/", "/packages/demo-pkg/demo_pkg-1.0.tar.gz", "/"):
        assert client.get(path, headers=headers).status_code < 500


def test_yank_reason_is_escaped_in_html(client, demo_tree):
    body = client.get("/simple/demo-pkg/").data.decode()
    assert "<script>" not in body
    assert 'data-yanked="broken &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more"' in body


def test_yank_state_in_json(client, demo_tree):
    files = {f["filename"]: f for f in client.get("/simple/demo-pkg/?format=json").get_json()["files"]}
    assert files["demo_pkg-2.0-py3-none-any.whl"]["yanked"].startswith("broken <script>")
    assert files["demo_pkg-1.0-py3-none-any.whl"]["yanked"] is False


def test_yanked_without_reason_is_true_in_json_and_empty_attribute(client, demo_tree):
    sidecar = demo_tree[0].parent / (demo_tree[0].name + ".yanked")
    sidecar.write_text("")
    files = {f["filename"]: f for f in client.get("/simple/demo-pkg/?format=json").get_json()["files"]}
    assert files[demo_tree[0].name]["yanked"] is True
    assert 'data-yanked=""' in client.get("/simple/demo-pkg/").data.decode()


def _age(*paths, when=FIXED_MTIME):
    """Move mtimes into the past, as for a tree copied in long ago (a settled fingerprint)."""
    for p in paths:
        os.utime(p, (when, when))


def test_workers_share_rendered_pages_and_never_serve_a_stale_one(overrides, add_dist, packages, repo_dirs):
    from pypi_repo import create_app

    first = add_dist("shared-pkg", "1.0")
    _age(first, first.parent)
    worker_a, worker_b = create_app(overrides).test_client(), create_app(overrides).test_client()
    page_a = worker_a.get("/simple/shared-pkg/").data
    stored = list((repo_dirs["data"] / "pages" / "shared-pkg").iterdir())
    assert len(stored) == 1 and stored[0].read_bytes() == page_a
    assert worker_b.get("/simple/shared-pkg/").data == page_a
    second = add_dist("shared-pkg", "2.0")
    _age(second, second.parent, when=FIXED_MTIME + 60)  # a settled change (rsync -a) is seen too: the stored page is keyed by state
    for worker in (worker_a, worker_b):
        assert b"shared_pkg-2.0-py3-none-any.whl" in worker.get("/simple/shared-pkg/").data
    assert len(list((repo_dirs["data"] / "pages" / "shared-pkg").iterdir())) == 1  # old state removed


def test_file_replaced_under_the_same_name_is_served_new_with_a_new_etag(client, demo_tree):
    """The in-memory body cache is keyed by the stat: a replaced file is never served stale."""
    url = "/packages/demo-pkg/demo_pkg-1.0.tar.gz"
    first = client.get(url)
    assert client.get(url).data == first.data  # second answer from the cache
    replacement = demo_tree[1].with_name(".swap")
    replacement.write_bytes(b"new bytes of another build")
    os.replace(replacement, demo_tree[1])
    again = client.get(url)
    assert again.data == b"new bytes of another build"
    assert again.headers["ETag"] != first.headers["ETag"]
    assert int(again.headers["Content-Length"]) == len(again.data)


def test_large_files_stream_without_the_body_cache(overrides, packages):
    from pypi_repo import create_app

    big = packages / "big-pkg" / "big_pkg-1.0.tar.gz"
    big.parent.mkdir()
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    resp = create_app({**overrides, "file_cache_mb": 4}).test_client().get("/packages/big-pkg/big_pkg-1.0.tar.gz")
    assert resp.status_code == 200 and resp.data == big.read_bytes()
    assert resp.headers["Content-Length"] == str(2 * 1024 * 1024)


def test_warm_up_indexes_and_prerenders_once(overrides, add_dist, repo_dirs):
    from pathlib import Path

    from pypi_repo.index import ProjectIndex
    from pypi_repo.storage import PackageStore

    wheel = add_dist("warm-pkg", "1.0")
    _age(wheel, wheel.parent)
    index = ProjectIndex(PackageStore(Path(overrides["packages_dir"])), Path(overrides["data_dir"]))
    assert index.warm()[0] == 1
    pages = sorted((repo_dirs["data"] / "pages" / "warm-pkg").iterdir())
    assert len(pages) == 2  # HTML and JSON
    stamps = [p.stat().st_mtime_ns for p in pages]
    assert index.warm()[0] == 1
    assert [p.stat().st_mtime_ns for p in sorted((repo_dirs["data"] / "pages" / "warm-pkg").iterdir())] == stamps
    assert (repo_dirs["data"] / "index" / "warm-pkg.json").is_file()


def test_project_created_in_the_same_clock_tick_as_the_last_listing_appears(client, add_dist, packages):
    """The root's mtime can stay equal across two changes (coarse clocks): never trust a young one."""
    import time

    add_dist("first-one", "1.0")
    assert b"first-one" in client.get("/simple/").data
    stamp = packages.stat().st_mtime_ns
    add_dist("second-one", "1.0")
    os.utime(packages, ns=(stamp, stamp))  # what a change within one tick looks like
    time.sleep(0.06)
    assert b"second-one" in client.get("/simple/").data
