"""Settings precedence: defaults < config file < PYPI_REPO_* environment < flags."""
from __future__ import annotations

from pathlib import Path

import pytest

from pypi_repo.config import load_settings
from pypi_repo.errors import ConfigError


def test_defaults(tmp_path):
    s = load_settings(environ={}, base_dir=tmp_path)
    assert (s.host, s.port) == ("0.0.0.0", 8385)
    assert s.packages_dir == tmp_path / "packages"
    assert s.data_dir == tmp_path / "data" and s.logs_dir == tmp_path / "logs"


def test_precedence_file_then_env_then_flags(tmp_path):
    cfg = tmp_path / "repo.toml"
    cfg.write_text('port = 9001\nlog_level = "DEBUG"\npackages_dir = "/srv/pkgs"\nprivate = true\n')
    env = {"PYPI_REPO_CONFIG": str(cfg), "PYPI_REPO_PORT": "9002"}
    s = load_settings(environ=env, base_dir=tmp_path)
    assert s.port == 9002 and s.log_level == "DEBUG" and s.packages_dir == Path("/srv/pkgs") and s.private
    s = load_settings({"port": 9003}, environ=env, base_dir=tmp_path)
    assert s.port == 9003


def test_table_form_of_config_file(tmp_path):
    cfg = tmp_path / "repo.toml"
    cfg.write_text("[pypi_repo]\nport = 9100\n")
    assert load_settings({"config": str(cfg)}, environ={}, base_dir=tmp_path).port == 9100


@pytest.mark.parametrize(
    "overrides, env, message",
    [
        ({"nope": 1}, {}, "unknown setting"),
        ({}, {"PYPI_REPO_PORT": "eighty"}, "setting port"),
        ({}, {"PYPI_REPO_PORT": "70000"}, "not a TCP port"),
        ({}, {"PYPI_REPO_PRIVATE": "maybe"}, "not a boolean"),
        ({"config": "/nonexistent/x.toml"}, {}, "config file not found"),
        ({}, {"PYPI_REPO_LOG_FORMAT": "xml"}, "log_format"),
    ],
)
def test_bad_settings_fail_clearly(tmp_path, overrides, env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(overrides, environ=env, base_dir=tmp_path)


def test_unknown_key_in_config_file(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings({"config": str(cfg)}, environ={}, base_dir=tmp_path)
