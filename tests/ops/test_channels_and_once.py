"""Alert channels against real local receivers; ``monitor.py --once`` as cron would run it;
the systemd watchdog pinger inside a real Gunicorn master."""
from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from conftest import ROOT, free_port, start_server
from opskit import smtp_sink, webhook  # noqa: F401
from pypi_repo.alerts import Alert, AlertDispatcher, CommandChannel, EmailChannel, WebhookChannel, channels_from_settings
from pypi_repo.config import load_settings

ALERT = Alert("gave_up", "gave up restarting pypi_repo", "critical", {"restarts_last_hour": 5})


def test_webhook_channel_posts_the_alert_as_json(webhook):
    WebhookChannel(webhook.url).send(ALERT)
    (body,) = webhook.received
    assert body["event"] == "gave_up" and body["severity"] == "critical"
    assert body["details"] == {"restarts_last_hour": 5}
    assert body["text"].startswith("[pypi_repo critical] gave_up on ")


def test_webhook_channel_fails_on_an_error_status(webhook):
    webhook.status = 500
    outcome = AlertDispatcher([WebhookChannel(webhook.url)]).send(ALERT)
    assert "500" in outcome["webhook"]


def test_email_channel_sends_through_smtp(smtp_sink):
    EmailChannel("127.0.0.1", smtp_sink.port, "monitor@example.org", ["a@example.org", "b@example.org"]).send(ALERT)
    (msg,) = smtp_sink.messages
    assert msg["Subject"].startswith("[pypi_repo critical] gave_up")
    assert msg["To"] == "a@example.org, b@example.org"
    assert "gave up restarting" in msg.get_payload()


def test_command_channel_gets_json_on_stdin_and_env(tmp_path):
    body, event = tmp_path / "alert.json", tmp_path / "event.txt"
    CommandChannel(["sh", "-c", f'cat > {body}; echo "$PYPI_REPO_ALERT_EVENT" > {event}']).send(ALERT)
    assert json.loads(body.read_text())["message"] == "gave up restarting pypi_repo"
    assert event.read_text() == "gave_up\n"


def test_unreachable_channels_are_reported_and_the_log_line_still_written(caplog):
    dead = free_port()
    settings = load_settings(environ={
        "PYPI_REPO_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{dead}/hook",
        "PYPI_REPO_ALERT_SMTP_HOST": "127.0.0.1", "PYPI_REPO_ALERT_SMTP_PORT": str(dead),
        "PYPI_REPO_ALERT_EMAIL_TO": "ops@example.org", "PYPI_REPO_ALERT_COMMAND": "false",
        "PYPI_REPO_MONITOR_TIMEOUT": "2"})
    channels = channels_from_settings(settings)
    assert [c.name for c in channels] == ["log", "webhook", "email", "command"]
    with caplog.at_level("WARNING", logger="pypi_repo.monitor"):
        outcome = AlertDispatcher(channels).send(ALERT)
    assert outcome["log"] is None
    assert all(outcome[name] for name in ("webhook", "email", "command"))
    assert "ALERT gave_up: gave up restarting pypi_repo" in caplog.text


def monitor_once(port: int, logs: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYPI_REPO_PORT": str(port), "PYPI_REPO_LOGS_DIR": str(logs),
           "PYPI_REPO_MONITOR_TIMEOUT": "3"}
    return subprocess.run([sys.executable, str(ROOT / "monitor.py"), "--once"], capture_output=True, text=True,
                          timeout=30, env=env, cwd=logs.parent)


def test_monitor_once_exits_0_when_healthy_1_when_not_and_logs_the_check(live_server, tmp_path):
    logs = tmp_path / "monlogs"
    healthy = monitor_once(live_server.port, logs)
    assert healthy.returncode == 0, healthy.stderr
    assert "check ok" in healthy.stderr
    shutil.move(live_server.dirs["packages"], tmp_path / "moved")  # /health now answers 503
    broken = monitor_once(live_server.port, logs)
    assert broken.returncode == 1
    assert "HTTP 503" in broken.stderr and "packages_dir" in broken.stderr
    live_server.stop()
    down = monitor_once(live_server.port, logs)
    assert down.returncode == 1 and "ConnectionRefusedError" in down.stderr
    assert len((logs / "monitor.log").read_text().splitlines()) == 3


def test_systemd_watchdog_pings_while_alive_even_when_not_ready_and_stops_when_hung(repo_dirs, tmp_path):
    """Issue 9: a readiness failure (packages dir gone, low disk) keeps the pings going; hung
    workers (SIGSTOP) stop them, so systemd restarts only what a restart can fix."""
    sockdir = Path(tempfile.mkdtemp(prefix="pr-wd-", dir="/tmp"))
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sockdir / "notify"))
    receiver.settimeout(0.2)

    def messages(seconds: float) -> list[str]:
        got, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(receiver.recv(4096).decode())
            except TimeoutError:
                pass
        return got

    server = start_server(repo_dirs, {"NOTIFY_SOCKET": str(sockdir / "notify"), "WATCHDOG_USEC": "600000"})
    try:
        first = messages(1.5)
        assert any(m.startswith("READY=1") for m in first)  # Gunicorn's own Type=notify support
        assert first.count("WATCHDOG=1") >= 3  # every 0.2 s
        shutil.move(repo_dirs["packages"], tmp_path / "moved")
        assert server.get("/health").status_code == 503
        assert "WATCHDOG=1" in messages(1.0)  # not ready, but alive: no restart
        shutil.move(tmp_path / "moved", repo_dirs["packages"])
        workers = psutil.Process(server.proc.pid).children()
        for worker in workers:
            worker.send_signal(signal.SIGSTOP)
        messages(0.8)
        assert "WATCHDOG=1" not in messages(1.5)  # hung: systemd would kill and restart the unit
        for worker in workers:
            worker.send_signal(signal.SIGCONT)
        assert "WATCHDOG=1" in messages(2.0)
    finally:
        server.stop()
        receiver.close()
        shutil.rmtree(sockdir, ignore_errors=True)


@pytest.mark.parametrize("unit_text, ok", [("", True), ("ProtectSystem=bogus", False)])
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path, unit_text, ok):
    unit = (ROOT / "systemd.service").read_text().replace("/opt/pypi_repo", str(ROOT))
    if unit_text:  # the negative case proves the check sees a broken line
        unit = unit.replace("ProtectSystem=strict", unit_text)
    path = tmp_path / "pypi-repo.service"
    path.write_text(unit)
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if "pypi-repo.service" in line]
    assert (proc.returncode == 0 and problems == []) is ok, problems


def test_systemd_unit_hardening_and_restart_policy(tmp_path):
    unit = (ROOT / "systemd.service").read_text()
    for line in ("Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "WatchdogSec=90",
                 "Type=notify", "User=pypi-repo",
                 "ReadWritePaths=/opt/pypi_repo/packages /opt/pypi_repo/data /opt/pypi_repo/logs"):
        assert line in unit.splitlines()
    path = tmp_path / "pypi-repo.service"
    path.write_text(unit.replace("/opt/pypi_repo", str(ROOT)))
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(path)],
                          capture_output=True, text=True, timeout=60)
    exposure = float(proc.stdout.split("Overall exposure level for pypi-repo.service:")[1].split()[0])
    assert exposure <= 4.0  # "OK" on systemd's 0 (locked down) .. 10 (unsafe) scale
