"""Issue 10 review: nobody can forge log lines. A Basic-auth user name is the client's
text and reaches the audit line (pypi_repo.log) and Gunicorn's access line unchanged; a
newline in it started a line of the attacker's choosing in both files."""
from __future__ import annotations

import base64

import requests

from conftest import start_server

FORGED = "2026-01-01 00:00:00,000 INFO [1] [-] pypi_repo.auth: audit FORGED"


def test_a_newline_in_a_user_name_cannot_start_a_log_line(repo_dirs):
    from pypi_repo.auth import AuthService
    from pypi_repo.config import load_settings

    settings = load_settings({"packages_dir": str(repo_dirs["packages"]), "data_dir": str(repo_dirs["data"]),
                              "argon2_time_cost": 1, "argon2_memory_kib": 8})
    AuthService(settings).add_user("alice", "alice-password-1")
    server = start_server(repo_dirs, workers=1)
    try:
        creds = base64.b64encode(f"evil\x1b[2J\r\n{FORGED}:pw".encode()).decode()
        resp = requests.post(server.url + "/legacy/", data={":action": "file_upload"}, timeout=30,
                             headers={"Authorization": f"Basic {creds}"})
    finally:
        server.stop()
    assert resp.status_code == 401
    for name in ("access.log", "pypi_repo.log"):
        text = (repo_dirs["logs"] / name).read_text()
        lines = text.splitlines()
        assert not [line for line in lines if line.startswith(FORGED[:13])], name
        assert [line for line in lines if "evil\\x1b[2J\\r\\n2026" in line], name
        assert "\x1b" not in text, name


def test_manage_repo_audit_prints_a_hostile_user_name_escaped(repo_dirs, capsys):
    """``manage_repo.py audit`` shows what clients typed: an ESC sequence or a newline in a
    user name must not drive the operator's terminal or forge an entry."""
    import pytest

    from pypi_repo.auth import AuthService
    from pypi_repo.cli import main as manage
    from pypi_repo.config import load_settings
    from pypi_repo.errors import AuthenticationFailed

    settings = load_settings({"packages_dir": str(repo_dirs["packages"]), "data_dir": str(repo_dirs["data"]),
                              "argon2_time_cost": 1, "argon2_memory_kib": 8})
    auth = AuthService(settings)
    auth.add_user("alice", "alice-password-1")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate("ev\x1b[2J\nFORGED", "pw", "192.0.2.1")
    capsys.readouterr()
    manage(["--packages-dir", str(repo_dirs["packages"]), "--data-dir", str(repo_dirs["data"]), "audit"])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "ev\\x1b[2J\\nFORGED" in out
    assert not [line for line in out.splitlines() if line.startswith("FORGED")]
