#!/usr/bin/env python3
"""Install the client matrix (issue 16) into a cache outside the checkout, once.

Each client version gets its own virtual environment, made with the machine's python3,
under ``${PYPI_REPO_TEST_CLIENTS:-~/.cache/pypi_repo-test-clients}/<tool>-<version>/``.
A venv counts as installed only when its ``.complete`` marker names the same spec and
Python; anything else (an interrupted install, a changed version) is removed and redone.
``tests/run.sh`` runs this before pytest; the tests in this directory fail if a client is
missing. Run it by hand with ``python3 tests/clients/install_clients.py``.
"""
from __future__ import annotations

import argparse
import fcntl
import logging
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CLIENTS", "Client", "cache_root"]

log = logging.getLogger("install_clients")


@dataclass(frozen=True)
class Client:
    """One client version of the matrix, and why it is there (docs/clients.md)."""

    tool: str  # "pip", "uv" or "poetry"
    version: str
    why: str

    @property
    def name(self) -> str:
        return f"{self.tool}-{self.version}"

    def venv(self) -> Path:
        return cache_root() / self.name

    def executable(self) -> Path:
        """The command to run: ``python -m pip`` for pip, the console script otherwise."""
        return self.venv() / "bin" / ("python" if self.tool == "pip" else self.tool)

    def installed(self) -> bool:
        """The venv finished installing this exact version, and its interpreter is there."""
        marker = self.venv() / ".complete"
        return (marker.is_file() and marker.read_text() == self.spec() + "\n"
                and (self.venv() / "bin" / "python").exists())

    def spec(self) -> str:
        return f"{self.tool}=={self.version}"

    def made_by_this_python(self) -> bool:
        """Whether the venv's base interpreter is the one running this script (pyvenv.cfg)."""
        try:
            cfg = (self.venv() / "pyvenv.cfg").read_text()
        except OSError:
            return False
        return f"version = {sys.version.split()[0]}" in cfg or f"version_info = {sys.version.split()[0]}" in cfg


#: The matrix: the pips that distributions ship, the JSON-crash range, uv and poetry.
CLIENTS: tuple[Client, ...] = (
    Client("pip", "21.2.3", "RHEL 9"),
    Client("pip", "22.0.2", "Ubuntu 22.04"),
    Client("pip", "22.3.1", "first JSON pip; crashes on a JSON dist-info-metadata key"),
    Client("pip", "23.0.1", "Debian 12"),
    Client("pip", "23.1.2", "last pip of the dist-info-metadata crash range"),
    Client("pip", "23.3.2", "reads PEP 714 core-metadata"),
    Client("pip", "24.0", "Ubuntu 24.04"),
    Client("pip", "25.0.1", "a 25.x"),
    Client("pip", "26.3", "newest at the time of writing"),
    Client("uv", "0.4.0", "early 0.4"),
    Client("uv", "0.6.17", "last 0.6"),
    Client("uv", "0.13.9", "newest at the time of writing"),
    Client("poetry", "1.8.5", "last 1.x"),
    Client("poetry", "2.5.1", "newest at the time of writing"),
)


def cache_root() -> Path:
    default = Path.home() / ".cache" / "pypi_repo-test-clients"
    return Path(os.environ.get("PYPI_REPO_TEST_CLIENTS") or default)


def _run(argv: list[str], timeout: float) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def install(client: Client) -> str:
    """Make the client's venv from scratch; write the marker only when all of it worked."""
    target = client.venv()
    shutil.rmtree(target, ignore_errors=True)
    started = time.monotonic()
    _run([sys.executable, "-m", "venv", str(target)], timeout=120)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run(pip + [client.spec()], timeout=600)
    (target / ".complete").write_text(client.spec() + "\n")
    return f"{client.name}: installed in {time.monotonic() - started:.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="installs at once (network-bound)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="install_clients: %(message)s", stream=sys.stderr)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:  # two runs on one machine share the cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [c for c in CLIENTS if not (c.installed() and c.made_by_this_python())]
        if not missing:
            return 0
        log.info("installing %d test clients into %s", len(missing), root)
        failed = 0
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for client, future in [(c, pool.submit(install, c)) for c in missing]:
                try:
                    log.info("%s", future.result())
                except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
                    failed += 1
                    log.error("%s: FAILED: %s", client.name, exc)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
