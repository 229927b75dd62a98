"""Failed-login limits that one attacker cannot turn against everybody else, counted
atomically across workers, with the real client behind a trusted proxy (issue 10)."""
from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import start_server
from pypi_repo import create_app
from pypi_repo.auth import AuthService
from pypi_repo.config import load_settings


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def private(overrides, add_dist):
    """A private index (reads need credentials) with alice, bob and alice's read token."""
    add_dist("secret-pkg", "1.0")
    app = create_app({**overrides, "private": True, "auth_rate_limit": 5, "auth_account_rate_limit": 12})
    auth = app.extensions["pypi_repo"].auth
    auth.add_user("alice", "alice-password-1")
    auth.add_user("bob", "bob-password-22")
    _, token = auth.create_token("alice", scope="read")
    return app.test_client(), token


def status(client, user: str, password: str, addr: str = "127.0.0.1") -> int:
    return client.get("/simple/secret-pkg/", headers=basic(user, password),
                      environ_base={"REMOTE_ADDR": addr}).status_code


def test_failures_against_one_account_do_not_block_other_accounts_from_that_address(private):
    client, _ = private
    assert [status(client, "alice", "guess-guess") for _ in range(7)] == [401] * 5 + [429] * 2
    assert status(client, "alice", "alice-password-1") == 429  # alice's password, from here: locked
    locked = client.get("/simple/secret-pkg/", headers=basic("alice", "alice-password-1"))
    assert locked.headers["Retry-After"] == "60"
    assert status(client, "bob", "bob-password-22") == 200
    assert status(client, "nobody", "guess-guess") == 401  # a different account: its own count
    assert status(client, "alice", "alice-password-1", addr="192.0.2.9") == 200  # alice elsewhere


def test_password_failures_never_block_a_valid_token(private):
    client, token = private
    for addr in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):  # past the per-account limit too
        for _ in range(5):
            status(client, "alice", "guess-guess", addr)
    assert status(client, "alice", "alice-password-1", addr="198.51.100.1") == 429  # account locked
    for addr in ("192.0.2.1", "127.0.0.1"):
        assert status(client, "__token__", token, addr) == 200
        assert status(client, "alice", token, addr) == 200


def test_bad_tokens_are_limited_per_address_but_a_good_token_still_works(private):
    client, token = private
    bad = token[:-4] + "xxxx"
    assert [status(client, "__token__", bad) for _ in range(6)] == [401] * 5 + [429]
    assert status(client, "__token__", token) == 200


def test_forwarded_for_is_honoured_only_from_a_trusted_proxy(overrides):
    app = create_app({**overrides, "forwarded_allow_ips": "10.0.0.1", "auth_rate_limit": 2})
    app.extensions["pypi_repo"].auth.add_user("alice", "alice-password-1")
    client = app.test_client()

    def upload(peer: str, forwarded_for: str, password: str) -> int:
        return client.post("/legacy/", data={":action": "file_upload"}, headers={
            **basic("alice", password), "X-Forwarded-For": forwarded_for},
            environ_base={"REMOTE_ADDR": peer}).status_code

    # through the proxy: the attacker (203.0.113.5) is locked out, another client is not
    assert [upload("10.0.0.1", "203.0.113.5", "guess-guess") for _ in range(3)] == [401, 401, 429]
    assert upload("10.0.0.1", "198.51.100.7", "alice-password-1") == 400  # authenticated (empty form)
    # a direct client cannot pick its address: the header is ignored, it is counted as itself
    assert [upload("192.0.2.66", f"198.51.100.{i}", "guess-guess") for i in range(3)] == [401, 401, 429]
    entries = app.extensions["pypi_repo"].auth.audit_entries()
    assert {e.client_addr for e in entries if e.action == "auth"} == {"203.0.113.5", "192.0.2.66"}


def test_parallel_wrong_passwords_across_workers_let_at_most_the_limit_through(repo_dirs):
    """60 parallel tries against a real 2-worker Gunicorn: at most ``auth_rate_limit`` 401s;
    and the access log and audit log name the client a trusted proxy forwarded."""
    settings = load_settings({"packages_dir": str(repo_dirs["packages"]), "data_dir": str(repo_dirs["data"]),
                              "argon2_time_cost": 1, "argon2_memory_kib": 8})
    AuthService(settings).add_user("alice", "alice-password-1")
    server = start_server(repo_dirs, {"PYPI_REPO_AUTH_RATE_LIMIT": "10", "PYPI_REPO_LOG_FORMAT": "json"},
                          workers=2)
    try:
        def attempt(_: int) -> int:
            return requests.post(server.url + "/legacy/", data={":action": "file_upload"}, timeout=30,
                                 headers={**basic("alice", "guess-guess"), "Connection": "close",
                                          "X-Forwarded-For": "203.0.113.77"}).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(attempt, range(60)))
        other = requests.post(server.url + "/legacy/", data={":action": "file_upload"}, timeout=30,
                              headers={**basic("alice", "alice-password-1"), "X-Forwarded-For": "198.51.100.8"})
    finally:
        server.stop()
    assert statuses.count(401) <= 10 and statuses.count(401) + statuses.count(429) == 60, statuses
    assert other.status_code == 400  # the same account from another client: authenticated
    access = [json.loads(line) for line in (repo_dirs["logs"] / "access.log").read_text().splitlines()]
    assert {a["client"] for a in access if a.get("path") == "/legacy/"} == {"203.0.113.77", "198.51.100.8"}
    audit = AuthService(settings).audit_entries(200)
    assert {e.client_addr for e in audit if e.action == "auth"} == {"203.0.113.77"}


@pytest.mark.parametrize(("spec", "peer", "forwarded_for", "client", "trusted"), [
    ("127.0.0.1", "127.0.0.1", "203.0.113.1", "203.0.113.1", True),
    ("127.0.0.1", "::ffff:127.0.0.1", "203.0.113.1", "203.0.113.1", True),  # dual-stack socket
    ("127.0.0.1, 10.0.0.0/8", "127.0.0.1", "203.0.113.1, 10.1.2.3", "203.0.113.1", True),  # two proxies
    ("127.0.0.1", "127.0.0.1", "198.51.100.9, 203.0.113.1", "203.0.113.1", True),  # the client's claim is left
    ("127.0.0.1", "127.0.0.1", "garbage", "127.0.0.1", True),
    ("127.0.0.1", "127.0.0.1", "[2001:db8::1]:443", "2001:db8::1", True),
    ("127.0.0.1", "192.0.2.1", "203.0.113.1", "192.0.2.1", False),  # untrusted peer: ignored
    ("*", "192.0.2.1", "203.0.113.1", "203.0.113.1", True),
    ("", "127.0.0.1", "203.0.113.1", "127.0.0.1", False),
])
def test_client_address_and_scheme_from_a_trusted_proxy_only(spec, peer, forwarded_for, client, trusted):
    from pypi_repo.web.proxy import TrustedProxies

    seen = {}
    middleware = TrustedProxies(lambda environ, start: seen.update(environ) or [], spec)
    middleware({"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded_for,
                "HTTP_X_FORWARDED_PROTO": "https", "wsgi.url_scheme": "http"}, None)
    assert seen["REMOTE_ADDR"] == client
    assert seen["wsgi.url_scheme"] == ("https" if trusted else "http")
