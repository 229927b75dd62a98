"""Issue 9/10: the seed's commands as typed, the printed commands, the units, /health privacy."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, free_port, start_server
from opskit import checkout, make_checkout, service_env  # noqa: F401
from pypi_repo import create_app

sys.path.insert(0, str(ROOT / "tests" / "publishing"))
from pubhelpers import PASSWORDS, basic, make_users  # noqa: E402

SYSTEM_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")


def system_python_lacks_the_dependencies() -> bool:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import flask, gunicorn, argon2"], capture_output=True, timeout=30)
    return probe.returncode != 0


@pytest.mark.parametrize("argv, expect", [
    (["manage_repo.py", "--help"], "usage: manage_repo.py"),
    (["monitor.py", "--help"], "usage: monitor.py"),
    (["app.py", "--help"], "usage: app.py"),
])
def test_entry_files_work_with_the_system_python3(argv, expect):
    assert system_python_lacks_the_dependencies()  # otherwise this proves nothing
    proc = subprocess.run([SYSTEM_PYTHON, *argv], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert expect in proc.stdout


def test_entry_file_without_a_venv_says_what_to_do():
    root = make_checkout(with_venv=False)
    try:
        shutil.copy2(ROOT / "manage_repo.py", root / "manage_repo.py")
        proc = subprocess.run([SYSTEM_PYTHON, "manage_repo.py", "--help"], capture_output=True, text=True,
                              timeout=60, cwd=root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert proc.returncode == 2
    assert "cannot import" in proc.stderr and "run ./start.sh once" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_start_sh_prints_pasteable_commands_links_supervisorctl_and_creates_error_log(checkout, tmp_path):
    port = free_port()
    bin_dir = tmp_path / "bin"
    env = service_env(port, PYPI_REPO_PUBLIC_URL=f"http://pypi.example.internal:{port}",
                      PYPI_REPO_BIN_DIR=str(bin_dir))
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"  # no supervisorctl on it yet
    try:
        proc = subprocess.run([str(checkout / "start.sh")], capture_output=True, text=True, timeout=120,
                              env=env, cwd="/")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (f"pip install --index-url http://pypi.example.internal:{port}/simple/ "
                "--trusted-host pypi.example.internal payo-cli") in proc.stdout
        assert (checkout / "logs" / "error.log").exists()
        # The seed's form, as typed, from the checkout.
        deadline = time.monotonic() + 15
        while True:  # RUNNING once up for startsecs (3 s)
            status = subprocess.run(["supervisorctl", "-c", "supervisor.conf", "status", "pypi_repo"],
                                    capture_output=True, text=True, timeout=60, env=env, cwd=checkout)
            if "RUNNING" in status.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert status.returncode == 0 and "RUNNING" in status.stdout, status.stdout + status.stderr
        assert "supervisorctl -c supervisor.conf status pypi_repo" in proc.stdout
    finally:
        subprocess.run([str(checkout / "stop.sh")], capture_output=True, timeout=120, env=env, cwd="/")


@pytest.mark.parametrize("unit", ["systemd.service", "systemd-monitor.service"])
def test_both_systemd_units_pass_systemd_analyze_verify(tmp_path, unit):
    text = (ROOT / unit).read_text().replace("/opt/pypi_repo", str(ROOT))
    path = tmp_path / ("pypi-repo.service" if unit == "systemd.service" else "pypi-repo-monitor.service")
    path.write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if path.name in line]
    assert proc.returncode == 0 and problems == [], problems
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(path)],
                              capture_output=True, text=True, timeout=60)
    assert float(security.stdout.split(f"Overall exposure level for {path.name}:")[1].split()[0]) <= 4.0
    if unit == "systemd-monitor.service":  # the service's user: it may HUP/KILL the master, no root
        assert "User=pypi-repo" in text.splitlines() and "Restart=always" in text.splitlines()


def test_private_health_shows_anonymous_callers_the_status_only(overrides):
    make_users(overrides)
    client = create_app({**overrides, "private": True}).test_client()
    for path in ("/health", "/health/live"):
        resp = client.get(path)
        assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}
        bad = client.get(path, headers=basic("bob", "bad-password"))  # a bad login: still the status
        assert bad.status_code == 200 and bad.get_json() == {"status": "ok"}
        assert "pid" in client.get(path, headers=basic("bob", PASSWORDS["bob"])).get_json()
    detailed = create_app({**overrides, "private": True, "health_details": True}).test_client()
    assert "checks" in detailed.get("/health").get_json()
    assert "checks" in create_app(overrides).test_client().get("/health").get_json()  # not private: all


def test_error_log_exists_from_the_start_without_start_sh(repo_dirs):
    """Issue 9: under systemd (or a bare Gunicorn) nobody runs start.sh's ``touch``: the empty
    error.log must still be there once the service is up, before any warning was logged."""
    error_log = repo_dirs["logs"] / "error.log"
    assert not error_log.exists()
    server = start_server(repo_dirs)
    try:
        assert error_log.exists()
    finally:
        server.stop()
