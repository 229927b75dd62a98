"""One-off measurement of recovery times and lost requests with the shipped defaults
(docs/operations.md, section 6). Not a test: ``.venv/bin/python tests/ops/measure_recovery.py
master|full|workers|sdkill|load``. Starts a copy of the checkout (opskit), injects the fault, polls."""
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE, os.path.dirname(os.path.dirname(HERE))]
from conftest import free_port  # noqa: E402
from opskit import make_checkout, service_env, Supervised  # noqa: E402
import psutil
import requests


def main() -> None:
    what = sys.argv[1]
    root = make_checkout(); port = free_port()
    env = service_env(port); env.pop("PYPI_REPO_GRACEFUL_TIMEOUT")
    sup = Supervised(root, port, env); sup.start(); sup.wait_healthy(60)
    def live():
        try: return requests.get(sup.url + "/health/live", timeout=2).status_code == 200
        except requests.RequestException: return False
    def load(n, action):
        def get(_):
            try: return requests.get(sup.url + "/simple/demo-pkg/", timeout=15, headers={"Connection": "close"}).status_code == 200
            except requests.RequestException: return False
        with ThreadPoolExecutor(4) as pool:
            futs = [pool.submit(get, i) for i in range(n)]; time.sleep(0.3); action()
            return sum(not f.result() for f in futs)
    log = root / "logs" / "monitor.log"
    try:
        time.sleep(3)
        if what == "load":
            def run(label, action, n=400):
                lost = load(n, action); sup.wait_healthy(60); time.sleep(3)
                print(f"{label}: {lost} of {n} requests failed")
            run("./start.sh restart (HUP)", lambda: subprocess.run([str(root / "start.sh"), "restart"], env=env, capture_output=True, timeout=120))
            run("supervisorctl signal HUP", lambda: sup.ctl("signal", "HUP", "pypi_repo"))
            run("supervisorctl restart", lambda: sup.ctl("restart", "pypi_repo"))
            run("kill -9 master", lambda: os.kill(sup.program_pid(), signal.SIGKILL))
        elif what == "sdkill":
            old = sup.supervisord_pid(); oldm = sup.program_pid(); t0 = time.monotonic()
            os.kill(old, signal.SIGKILL)
            while True:
                try:
                    if sup.supervisord_pid() != old and sup.program_pid() not in (0, oldm) and live(): break
                except Exception: pass
                time.sleep(0.1)
            print("supervisord kill -9 -> new supervisord+gunicorn serving after %.1f s" % (time.monotonic() - t0))
            lost = load(200, lambda: subprocess.run([str(root / "start.sh"), "restart"], env=env, capture_output=True, timeout=120))
            print("start.sh restart under 200 requests: lost", lost)
            time.sleep(2)
            m = sup.program_pid()
            lost = load(200, lambda: os.kill(m, signal.SIGKILL))
            print("kill -9 master under 200 requests: lost", lost)
            sup.wait_healthy(60)
            lost = load(200, lambda: sup.ctl("restart", "pypi_repo"))
            print("supervisorctl restart under 200 requests: lost", lost)
        else:
            m = sup.program_pid()
            victims = [psutil.Process(m)] if what == "master" else [psutil.Process(m), *psutil.Process(m).children()] if what == "full" else psutil.Process(m).children()
            t0 = time.monotonic()
            for v in victims: v.send_signal(signal.SIGSTOP)
            while "restarting after" not in log.read_text(): time.sleep(0.1)
            tr = time.monotonic()
            while not (live() and sup.program_pid() not in (0,)): time.sleep(0.1)
            if what in ("master", "full"):
                while not (sup.program_pid() != m and live()): time.sleep(0.1)
            ts = time.monotonic()
            print(f"{what} SIGSTOP: restart decided after {tr - t0:.1f} s, serving again {ts - tr:.1f} s after that (total {ts - t0:.1f} s)")
            print("\n".join(l for l in log.read_text().splitlines() if "restart" in l)[-800:])
    finally:
        for p in psutil.Process(sup.supervisord_pid()).children(recursive=True): 
            try: p.send_signal(signal.SIGCONT)
            except Exception: pass
        sup.ctl("shutdown"); time.sleep(3)
        subprocess.run([str(root / "stop.sh")], env=env, capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
