"""Every installer users really have, against a real Gunicorn server (issue 16).

Each client of :data:`install_clients.CLIENTS` (old pips from Linux distributions, uv,
poetry) downloads a project with a dependency, byte-identical to what the server stores,
and installs it, in three ways:

- ``index-url``: ``--index-url http://127.0.0.1:PORT/simple/``;
- ``extra-index-url``: the seed's ``--extra-index-url http://127.0.0.1:PORT/``, with
  ``--index-url`` pointed at a second, empty local index so nothing leaves the machine;
- ``private``: a ``private = true`` index, with a read token as credentials.

The clients live in a cache outside the checkout (``tests/clients/install_clients.py``,
run by ``tests/run.sh``); a missing one fails its test. docs/clients.md has the findings.
"""
from __future__ import annotations

import hashlib
import shutil
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from install_clients import CLIENTS, Client

from conftest import LiveServer, client_env, make_repo_dirs, run, start_server
from distbuilder import make_sdist, make_wheel
from pypi_repo.auth import AuthService
from pypi_repo.config import load_settings

pytestmark = pytest.mark.e2e

APP, DEP = "matrix-app", "matrix-dep"
FORMS = ("index-url", "extra-index-url", "private")
READER, READER_PASSWORD = "reader", "reader-secret-1"


@dataclass(frozen=True)
class Target:
    """Where one form points a client, and what the server stores."""

    index_url: str  # --index-url (for poetry: the primary source)
    extra_index_url: str | None  # --extra-index-url (for poetry: a supplemental source)
    credentials: tuple[str, str] | None  # poetry takes them as http-basic, pip and uv in the URL
    stored: dict[str, bytes]  # the files a client should fetch: name -> the bytes in the tree

    def url_args(self) -> list[str]:
        """``--index-url`` (with ``user:token@`` for the private form) and ``--extra-index-url``."""
        index_url = self.index_url
        if self.credentials:
            user, token = self.credentials
            index_url = index_url.replace("http://", f"http://{user}:{token}@", 1)
        extra = ["--extra-index-url", self.extra_index_url] if self.extra_index_url else []
        return ["--index-url", index_url, *extra]


def _tree(base: Path, dist: Path | None = None) -> dict[str, Path]:
    """A repository (packages/, data/, logs/) under ``base`` holding a copy of ``dist``."""
    base.mkdir()
    dirs = make_repo_dirs(base)
    if dist is not None:
        shutil.copytree(dist, dirs["packages"], dirs_exist_ok=True)
    return dirs


def build_projects(packages: Path) -> dict[str, bytes]:
    """The app and its dependency, plus files every client must pass over; returns the files
    a client should fetch. The extras put each field form on the page: ``yanked`` as a
    reason and as ``true``, ``requires-python`` as a string and as null, ``core-metadata``
    as hashes (wheels) and as ``false`` (the sdist)."""
    wanted = [make_wheel(packages / APP, APP, "1.0", requires_dist=[f"{DEP}>=1.0"]),
              make_wheel(packages / DEP, DEP, "1.0")]
    make_sdist(packages / DEP, DEP, "1.0")
    for version, reason in (("1.1", 'broken "build" <1.1> & more'), ("1.2", "")):
        yanked = make_wheel(packages / DEP, DEP, version)
        (yanked.parent / (yanked.name + ".yanked")).write_text(reason)
    make_wheel(packages / DEP, DEP, "3.0", requires_python=">=4")
    return {path.name: path.read_bytes() for path in wanted}


def start_one(dirs: dict[str, Path], env: dict[str, str]) -> LiveServer:
    """A one-worker server (this is about formats, not load); tried twice, because on a loaded
    machine a boot can miss start_server's deadline, or the port be taken before the bind."""
    try:
        return start_server(dirs, env, workers=1)
    except RuntimeError as exc:
        warnings.warn(f"server start retried after: {exc}", stacklevel=1)
        return start_server(dirs, env, workers=1)


class _KnowsNothing(BaseHTTPRequestHandler):
    """Stands in for the default public index: 404 for every project, like PyPI for a
    private name."""

    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def empty_index() -> Iterator[str]:
    """The index ``--index-url`` points at in the extra-index-url form, so nothing leaves
    the machine: in-process, bound to a port of its own choosing."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KnowsNothing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/simple/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    """One server per index kind (public, private, empty), shared by the module's tests."""
    base = tmp_path_factory.mktemp("client-matrix")
    stored = build_projects(base / "dist")
    private_dirs = _tree(base / "private", base / "dist")
    auth = AuthService(load_settings({"packages_dir": str(private_dirs["packages"]),
                                      "data_dir": str(private_dirs["data"]),
                                      "logs_dir": str(private_dirs["logs"]),
                                      "argon2_time_cost": 1, "argon2_memory_kib": 8}))
    auth.add_user(READER, READER_PASSWORD)
    _, token = auth.create_token(READER, scope="read")
    public = start_one(_tree(base / "public", base / "dist"), {})
    try:
        private = start_one(private_dirs, {"PYPI_REPO_PRIVATE": "true"})
    except RuntimeError:
        public.stop()
        raise
    try:
        # the private form must really need its credentials
        assert requests.get(private.index_url + APP + "/", timeout=10).status_code == 401
        with empty_index() as empty_url:
            yield {
                "index-url": Target(public.index_url, None, None, stored),
                "extra-index-url": Target(empty_url, public.url + "/", None, stored),
                "private": Target(private.index_url, None, (READER, token), stored),
            }
    finally:
        public.stop()
        private.stop()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed_versions(site: Path) -> dict[str, str]:
    """``{project: version}`` of the ``.dist-info`` directories in ``site``."""
    found = {}
    for entry in site.glob("*.dist-info"):
        name, version = entry.name[: -len(".dist-info")].rsplit("-", 1)
        found[name.replace("_", "-")] = version
    return found


def assert_installed(site: Path) -> None:
    assert installed_versions(site) == {APP: "1.0", DEP: "1.0"}
    for project in (APP, DEP):
        assert (site / project.replace("-", "_") / "__init__.py").read_text() == '__version__ = "1.0"\n'


def check_pip(client: Client, target: Target, tmp: Path) -> None:
    pip = [client.executable(), "-m", "pip", "--isolated", "--no-cache-dir", "--disable-pip-version-check",
           "--no-input", "--timeout", "30"]
    run([*pip, "download", "-d", tmp / "dl", *target.url_args(), APP])
    assert {p.name: p.read_bytes() for p in (tmp / "dl").iterdir()} == target.stored
    run([*pip, "install", "--target", tmp / "site", *target.url_args(), APP])
    assert_installed(tmp / "site")


def check_uv(client: Client, target: Target, tmp: Path) -> None:
    # uv keeps no archive, so the bytes are proven by hash-checking mode: uv hashes what it
    # downloads and compares it with the digests of the stored files.
    uv = [client.executable(), "pip", "install", "--python", sys.executable]
    hashed = tmp / "hashed.txt"
    hashed.write_text("".join(f"{name.split('-')[0].replace('_', '-')}==1.0 --hash=sha256:{sha256(data)}\n"
                              for name, data in sorted(target.stored.items())))
    run([*uv, "--target", tmp / "hashed", "--require-hashes", "-r", hashed, *target.url_args()])
    assert_installed(tmp / "hashed")
    run([*uv, "--target", tmp / "site", *target.url_args(), APP])  # the dependency from metadata
    assert_installed(tmp / "site")


def poetry_project(target: Target) -> str:
    sources = [("matrix", target.index_url, "primary")]
    if target.extra_index_url:
        sources = [("empty", target.index_url, "primary"), ("matrix", target.extra_index_url, "supplemental")]
    text = ('[tool.poetry]\npackage-mode = false\n\n[tool.poetry.dependencies]\npython = "^3.11"\n'
            f'{APP} = "1.0"\n')
    for name, url, priority in sources:
        text += f'\n[[tool.poetry.source]]\nname = "{name}"\nurl = "{url}"\npriority = "{priority}"\n'
    return text


def check_poetry(client: Client, target: Target, tmp: Path) -> None:
    project = tmp / "consumer"
    project.mkdir()
    (project / "pyproject.toml").write_text(poetry_project(target))
    cache = tmp / "poetry-cache"
    env = client_env(POETRY_CACHE_DIR=str(cache), POETRY_CONFIG_DIR=str(tmp / "poetry-config"),
                     POETRY_DATA_DIR=str(tmp / "poetry-data"), POETRY_NO_INTERACTION="1",
                     POETRY_VIRTUALENVS_IN_PROJECT="true", POETRY_VIRTUALENVS_OPTIONS_NO_PIP="true",
                     POETRY_VIRTUALENVS_OPTIONS_NO_SETUPTOOLS="true", VIRTUALENV_NO_PERIODIC_UPDATE="1",
                     PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    if target.credentials:
        env.update(POETRY_HTTP_BASIC_MATRIX_USERNAME=target.credentials[0],
                   POETRY_HTTP_BASIC_MATRIX_PASSWORD=target.credentials[1])
    run([client.executable(), "install", "--no-root"], cwd=project, env=env, timeout=240)
    lock = (project / "poetry.lock").read_text()
    for name, data in target.stored.items():
        assert f"sha256:{sha256(data)}" in lock, name  # the hash poetry checked the download against
        kept = [p for p in cache.rglob(name) if p.is_file()]  # poetry keeps what it downloaded
        assert kept and all(p.read_bytes() == data for p in kept), name
    sites = list((project / ".venv" / "lib").glob("python3*/site-packages"))
    assert len(sites) == 1
    assert_installed(sites[0])


CHECKS = {"pip": check_pip, "uv": check_uv, "poetry": check_poetry}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.name)
def test_client_downloads_and_installs_with_dependency(client, form, targets, tmp_path):
    assert client.installed(), (
        f"{client.name} is missing from {client.venv()}: run python3 tests/clients/install_clients.py"
        " (tests/run.sh does)")
    CHECKS[client.tool](client, targets[form], tmp_path)
