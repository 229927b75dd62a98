"""Real pip and uv against a real Gunicorn server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import sys

import pytest

from conftest import pip, run, uv_bin

pytestmark = pytest.mark.e2e


def test_pip_installs_example_project_with_index_url(live_server, tmp_path, venv):
    example = __import__("conftest").ROOT / "packages" / "payo-cli"
    target = live_server.dirs["packages"] / "payo-cli"
    target.mkdir()
    for f in example.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    run([venv / "bin" / "python", "-m", "pip", "install", "--isolated", "--index-url", live_server.index_url, "payo-cli"])
    out = run([venv / "bin" / "payo", "hello", "Ada"]).stdout
    assert out.strip() == "Hello, Ada!"
