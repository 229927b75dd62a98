"""Real poetry resolving and installing from the index (as a primary source)."""
from __future__ import annotations

import shutil

import pytest

from conftest import ROOT, VENV_BIN, client_env, run

pytestmark = pytest.mark.e2e


def test_poetry_adds_and_installs_from_the_index(live_server, tmp_path):
    shutil.copytree(ROOT / "packages" / "payo-cli", live_server.dirs["packages"] / "payo-cli")
    project = tmp_path / "consumer"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = []\n\n'
        "[tool.poetry]\npackage-mode = false\n\n"
        f'[[tool.poetry.source]]\nname = "private"\nurl = "{live_server.index_url}"\npriority = "primary"\n'
    )
    env = client_env(POETRY_VIRTUALENVS_IN_PROJECT="true", POETRY_CACHE_DIR=str(tmp_path / "cache"),
                     POETRY_CONFIG_DIR=str(tmp_path / "config"), POETRY_NO_INTERACTION="1")
    run([VENV_BIN / "poetry", "add", "--source", "private", "payo-cli"], cwd=project, env=env, timeout=180)
    lock = (project / "poetry.lock").read_text()
    assert 'name = "payo-cli"' in lock and 'version = "1.0.0"' in lock
    assert "payo_cli-1.0.0-py3-none-any.whl" in lock
    out = run([project / ".venv" / "bin" / "payo", "--version"], env=env).stdout
    assert out.strip() == "payo-cli 1.0.0"
