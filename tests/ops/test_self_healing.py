"""Issue 9: the faults that matter, with real processes: supervisord killed with -9, a hung
(SIGSTOPped) Gunicorn master, restarts under load, a low disk that must not restart."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from conftest import ROOT, start_server
from opskit import checkout, supervised_factory  # noqa: F401
from pypi_repo.procs import checkout_processes

pytestmark = pytest.mark.e2e

FAST = dict(PYPI_REPO_MONITOR_INTERVAL="0.5", PYPI_REPO_MONITOR_TIMEOUT="1", PYPI_REPO_MONITOR_COOLDOWN="5",
            PYPI_REPO_MONITOR_SUPERVISOR_INTERVAL="0.5", PYPI_REPO_MASTER_STALE_S="2")


def kinds(root) -> dict[str, list[int]]:
    got: dict[str, list[int]] = {}
    for p in checkout_processes(root):
        got.setdefault(p.kind, []).append(p.pid)
    return got


def masters(root) -> list[int]:
    procs = checkout_processes(root)
    pids = {p.pid for p in procs if p.kind == "gunicorn"}
    return [p.pid for p in procs if p.kind == "gunicorn" and p.ppid not in pids]


def load(url: str, n: int = 200, during=None) -> list[str]:
    """``n`` GETs from 8 threads (new connection each), ``during()`` run meanwhile; the failures."""
    def get(_: int) -> str | None:
        try:
            resp = requests.get(url, timeout=15, headers={"Connection": "close"})
            return None if resp.status_code == 200 else f"HTTP {resp.status_code}"
        except requests.RequestException as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(get, i) for i in range(n)]
        if during is not None:
            time.sleep(0.3)
            during()
        return [f for f in (fut.result() for fut in futures) if f]


def test_killed_supervisord_is_restored_with_one_monitor_and_no_orphan(supervised_factory):
    sup = supervised_factory(**FAST)
    sup.wait_for(lambda: len(kinds(sup.root).get("monitor", [])) == 1, 10, "the monitor")
    old_sd, old_master = sup.supervisord_pid(), masters(sup.root)
    os.kill(old_sd, signal.SIGKILL)
    started = time.monotonic()
    sup.wait_for(lambda: psutil.pid_exists(sup.supervisord_pid()) and sup.supervisord_pid() != old_sd
                 and masters(sup.root) and masters(sup.root) != old_master, 30, "a new supervisord and Gunicorn")
    sup.wait_healthy(30)
    print(f"supervisord kill -9 -> serving again after {time.monotonic() - started:.1f} s")
    # The orphaned monitor handed over and exited; exactly one of each is left, no crash loop.
    sup.wait_for(lambda: len(kinds(sup.root).get("monitor", [])) == 1
                 and "RUNNING" in sup.ctl("status", "monitor").stdout, 20, "one monitor, RUNNING")
    assert len(kinds(sup.root)["supervisord"]) == 1 and len(masters(sup.root)) == 1
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in old_master)
    assert "Address already in use" not in sup.log_tail("gunicorn.out.log", 200)
    assert "handing over" in sup.log_tail("monitor.log", 200)
    sup.remember()


def test_orphans_of_a_killed_supervisord_are_stopped_by_stop_sh_and_replaced_by_start_sh(supervised_factory):
    sup = supervised_factory(PYPI_REPO_MONITOR_START_SUPERVISORD="false", PYPI_REPO_MONITOR_INTERVAL="0.5")
    os.kill(sup.supervisord_pid(), signal.SIGKILL)
    time.sleep(0.5)
    assert kinds(sup.root).get("gunicorn") and kinds(sup.root).get("monitor")  # the orphans
    started = subprocess.run([str(sup.root / "start.sh")], capture_output=True, text=True, timeout=120,
                             env=sup.env, cwd="/")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "leftover process(es) of this checkout" in started.stdout
    sup.wait_healthy(10)
    assert len(kinds(sup.root)["supervisord"]) == 1 and len(masters(sup.root)) == 1

    os.kill(sup.supervisord_pid(), signal.SIGKILL)
    stopped = subprocess.run([str(sup.root / "stop.sh")], capture_output=True, text=True, timeout=120,
                             env=sup.env, cwd="/")
    assert stopped.returncode == 0 and "pypi_repo stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert checkout_processes(sup.root) == []
    time.sleep(1.5)  # nothing brings supervisord back (the orphaned monitor was stopped first)
    assert checkout_processes(sup.root) == []
    assert sup.health() == 0


def test_hung_master_is_killed_not_waited_for_and_serves_again(supervised_factory):
    """The master SIGSTOPped, its workers still answer: /health/live sees the stale heartbeat;
    after three failures the process group is SIGKILLed and supervisord starts a new one."""
    sup = supervised_factory(**FAST)
    monitor_log = sup.root / "logs" / "monitor.log"
    sup.wait_for(lambda: monitor_log.exists() and "check ok" in monitor_log.read_text(), 15, "a first ok check")
    master = sup.program_pid()
    os.kill(master, signal.SIGSTOP)
    assert sup.health() in (200, 503)  # the workers still answer
    sup.wait_for(lambda: "restart done" in monitor_log.read_text(), 30, "the monitor to recover")
    sup.wait_healthy(15)
    assert sup.program_pid() not in (0, master)
    assert not psutil.pid_exists(master) or psutil.Process(master).status() == psutil.STATUS_ZOMBIE
    text = monitor_log.read_text()
    assert "has not run its loop" in text
    assert f"the Gunicorn master (pid {master}) is stopped: it cannot act on signals" in text
    assert "killed the process group" in text


def test_start_sh_restart_is_graceful_and_loses_no_request(supervised_factory):
    sup = supervised_factory(PYPI_REPO_MONITOR_INTERVAL="60")
    master = sup.program_pid()
    old = {w.pid for w in sup.workers()}
    out: list[subprocess.CompletedProcess] = []
    failures = load(sup.url + "/simple/demo-pkg/", 200, during=lambda: out.append(subprocess.run(
        [str(sup.root / "start.sh"), "restart"], capture_output=True, text=True, timeout=120, env=sup.env, cwd="/")))
    assert out[0].returncode == 0, out[0].stdout + out[0].stderr
    assert "graceful reload" in out[0].stdout
    assert failures == []
    assert sup.program_pid() == master
    sup.wait_for(lambda: {w.pid for w in sup.workers()}.isdisjoint(old), 20, "new workers")


def test_low_disk_degrades_and_alerts_but_never_restarts(repo_dirs, tmp_path):
    config = tmp_path / "pypi_repo.toml"
    config.write_text("min_free_disk_mb = 0\n")
    server = start_server(repo_dirs, {"PYPI_REPO_CONFIG": str(config)})
    try:
        config.write_text(f"min_free_disk_mb = {10**9}\n")  # more than any disk: "low disk"
        server.proc.send_signal(signal.SIGHUP)  # new workers read the new config
        deadline = time.monotonic() + 20
        while server.get("/health").status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        ready = server.get("/health")
        assert ready.status_code == 503 and ready.json()["status"] == "degraded"
        assert any("min_free_disk_mb" in a for a in ready.json()["alerts"])
        assert server.get("/health/live").status_code == 200
        env = {**server.env, "PYPI_REPO_LOGS_DIR": str(tmp_path / "logs"), "PYPI_REPO_DATA_DIR": str(tmp_path)}
        monitor = subprocess.Popen([sys.executable, str(ROOT / "monitor.py"), "--interval", "0.3",
                                    "--threshold", "2", "--restart-command", "false", "--supervisor-conf", ""],
                                   env=env, stderr=subprocess.DEVNULL)
        log = tmp_path / "logs" / "monitor.log"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not log.exists() or log.read_text().count("check ok") < 6):
            time.sleep(0.2)
        monitor.terminate()
        monitor.wait(10)
        text = log.read_text()
        assert "ALERT degraded" in text and "min_free_disk_mb" in text
        assert text.count("ALERT degraded") == 1
        assert "restarting" not in text and "check failed" not in text
    finally:
        server.stop()
