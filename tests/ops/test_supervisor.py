"""The real supervisord from supervisor.conf keeps the service alive (issue 3, "Proof")."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

import psutil
import pytest
import requests

from conftest import client_env, run
from opskit import checkout, supervised, supervised_factory, smtp_sink, webhook  # noqa: F401

pytestmark = pytest.mark.e2e


def pip_download_works(sup, dest) -> None:
    run([sys.executable, "-m", "pip", "--isolated", "download", "--no-deps", "-d", str(dest),
         "--index-url", sup.url + "/simple/", "demo-pkg==1.0"], timeout=60, env=client_env())
    assert (dest / "demo_pkg-1.0-py3-none-any.whl").exists()


def test_supervisord_runs_both_programs_and_shutdown_leaves_no_process(supervised):
    # RUNNING once up for startsecs (3 s); supervisorctl exits 0 then (LSB status codes).
    supervised.wait_for(lambda: "RUNNING" in supervised.ctl("status", "pypi_repo").stdout, 10, "RUNNING")
    status = supervised.ctl("status", "pypi_repo")
    assert status.returncode == 0 and status.stdout.split()[:2] == ["pypi_repo", "RUNNING"], status.stdout
    supervised.wait_for(lambda: "RUNNING" in supervised.ctl("status", "monitor").stdout, 10, "monitor RUNNING")
    assert supervised.health() == 200
    assert len(supervised.workers()) == 2
    supervised.remember()
    assert len(supervised.survivors()) >= 5  # supervisord, gunicorn master + 2 workers, monitor

    supervised.shutdown()
    assert supervised.survivors() == []
    assert not (supervised.root / "run" / "supervisor.sock").exists()


def test_killed_gunicorn_master_is_restarted_by_supervisor(supervised, tmp_path):
    master = supervised.program_pid()
    old_workers = [w.pid for w in supervised.workers()]
    os.kill(master, signal.SIGKILL)
    started = time.monotonic()
    supervised.wait_for(lambda: supervised.program_pid() not in (0, master), 20, "a new master")
    supervised.wait_healthy(20)
    pip_download_works(supervised, tmp_path / "dl")
    assert time.monotonic() - started < 30
    # The orphaned workers notice their parent changed and exit: nothing is left behind.
    supervised.wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                        for p in old_workers), 15, "orphaned workers to exit")
    supervised.wait_for(lambda: "RUNNING" in supervised.ctl("status", "pypi_repo").stdout, 10, "RUNNING")


def test_killed_worker_is_replaced_by_gunicorn(supervised, tmp_path):
    master = supervised.program_pid()
    victim = supervised.workers()[0].pid
    os.kill(victim, signal.SIGKILL)
    started = time.monotonic()
    supervised.wait_for(lambda: len([w for w in supervised.workers() if w.pid != victim]) == 2, 20,
                        "gunicorn to replace the worker")
    pip_download_works(supervised, tmp_path / "dl")
    assert time.monotonic() - started < 30
    assert supervised.program_pid() == master  # the master never went away


def test_graceful_reload_under_load_loses_no_request(supervised):
    """HUP (supervisorctl signal HUP) swaps every worker while clients keep asking."""
    url = supervised.url + "/simple/demo-pkg/"
    ok, failed, stop = [0], [], threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                # A new connection per request: what pip does between runs.
                resp = requests.get(url, timeout=10, headers={"Connection": "close"})
                if resp.status_code == 200:
                    ok[0] += 1
                else:
                    failed.append(resp.status_code)
            except requests.RequestException as exc:
                failed.append(repr(exc))

    old_workers = {w.pid for w in supervised.workers()}
    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    assert supervised.ctl("signal", "HUP", "pypi_repo").returncode == 0
    supervised.wait_for(lambda: {w.pid for w in supervised.workers()}.isdisjoint(old_workers)
                        and len(supervised.workers()) == 2, 20, "new workers after HUP")
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(15)
    assert failed == []
    assert ok[0] > 50


def test_monitor_recovers_hung_workers_gracefully_after_exactly_three_failures(supervised_factory, webhook,
                                                                               smtp_sink):
    """All workers SIGSTOPped: /health/live hangs; the monitor (as the supervisor program) counts
    three failed checks, then recovers the graceful way (issue 9): the stopped workers are
    killed, the master (which still answers signals) gets HUP; alerts by webhook, email, command."""
    alert_file = "logs/alert-command.json"
    sup = supervised_factory(
        PYPI_REPO_MONITOR_INTERVAL="0.5", PYPI_REPO_MONITOR_TIMEOUT="1", PYPI_REPO_MONITOR_COOLDOWN="5",
        PYPI_REPO_ALERT_WEBHOOK_URL=webhook.url,
        PYPI_REPO_ALERT_SMTP_HOST="127.0.0.1", PYPI_REPO_ALERT_SMTP_PORT=str(smtp_sink.port),
        PYPI_REPO_ALERT_EMAIL_TO="ops@example.org",
        PYPI_REPO_ALERT_COMMAND=f"sh -c 'cat >> {alert_file}'",
    )
    monitor_log = sup.root / "logs" / "monitor.log"
    sup.wait_for(lambda: monitor_log.exists() and "check ok" in monitor_log.read_text(), 15, "a first ok check")
    master = sup.program_pid()
    hung = sup.workers()
    for worker in hung:
        worker.send_signal(signal.SIGSTOP)

    sup.wait_for(lambda: "restart done" in monitor_log.read_text(), 40, "the monitor to restart")
    sup.wait_healthy(20)
    assert sup.program_pid() == master  # graceful: the same master, new workers
    assert "graceful reload: HUP to the Gunicorn master" in monitor_log.read_text()
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in hung)

    text = monitor_log.read_text()
    since_stop = text[text.index("check failed (1/3)"):]
    assert "check ok" in text[:text.index("check failed (1/3)")]
    assert "check failed (2/3)" in since_stop
    assert since_stop.index("check failed (3/3)") < since_stop.index("restarting after 3 consecutive failed checks")
    assert "(4/3)" not in since_stop
    assert since_stop.count("restarting after") == 1

    sup.wait_for(lambda: any(a["event"] == "restart" for a in webhook.received), 10, "the webhook alert")
    alert = next(a for a in webhook.received if a["event"] == "restart")
    assert "3 consecutive failed health checks" in alert["message"]
    assert "graceful reload" in alert["details"]["output"]
    # a "degraded" alert may come first (readiness can time out before liveness does)
    sup.wait_for(lambda: any("restart" in m["Subject"] for m in smtp_sink.messages), 10, "the email alert")
    assert '"event": "restart"' in (sup.root / alert_file).read_text()
    # Healthy again: the monitor says so (and sends the recovery alert).
    sup.wait_for(lambda: any(a["event"] == "recovered" for a in webhook.received), 10, "the recovery alert")
