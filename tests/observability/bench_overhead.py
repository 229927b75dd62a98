"""Benchmark (not a test): cost of download counting + metrics, on versus off.

Starts this checkout's Gunicorn once per mode (interleaved), drives it with the shared kit's
wrk workload (``run_bench.py --no-start``) and records req/s and the server's CPU time per
request (sum over master and workers; steadier than req/s when other jobs share the CPU)::

    .venv/bin/python tests/observability/bench_overhead.py on,off,off,on,on,off

Needs ``../shared/bench/setup.sh`` (wrk, the tools venv) and a tree from ``make_tree.py``
(default /tmp/bench-data/n2000). Results: one JSON line per run, and a summary file.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[2]


def tree_cpu_s(pid: int) -> float:
    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modes", help="comma-separated sequence of on, off, count (counting only), metrics (metrics only)")
    ap.add_argument("--kit", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--kit-python", default="/tmp/bench-venvs/tools/bin/python")
    ap.add_argument("--tree", type=Path, default=Path("/tmp/bench-data/n2000"))
    ap.add_argument("--data-dir", default="/tmp/obs-bench-data")
    ap.add_argument("--duration", default="5")
    ap.add_argument("--out", type=Path, default=Path("/tmp/obs-bench"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    probe = (args.tree / "projects.txt").read_text().split()[0]
    results = []
    for i, mode in enumerate(args.modes.split(",")):
        port = 18033 + i
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYPI_REPO_")}
        env.update(PYPI_REPO_PACKAGES_DIR=str(args.tree / "packages"), PYPI_REPO_DATA_DIR=args.data_dir,
                   PYPI_REPO_LOGS_DIR=args.data_dir + "-logs")
        env.update(PYPI_REPO_COUNT_DOWNLOADS="0" if mode in ("off", "metrics") else "1",
                   PYPI_REPO_METRICS="0" if mode in ("off", "count") else "1")
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "app:app"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/simple/"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if requests.get(url + probe + "/", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.1)
            time.sleep(3)  # the start-up index warm-up child finishes
            for test in ("project", "wheel"):
                out = args.out / f"{mode}{i}-{test}.json"

                def kit(duration: str) -> None:
                    subprocess.run(
                        [args.kit_python, str(args.kit / "run_bench.py"), "--name", f"{mode}{i}", "--tree", str(args.tree),
                         "--index-url", url, "--no-start", "--pid", str(server.pid), "--tests", test,
                         "--duration", duration, "--repeat", "1", "--connections", "64", "--warmup", "0",
                         "--no-clients", "--out", str(out)],
                        cwd=ROOT, capture_output=True, timeout=600, check=True)

                kit("3")  # fills the page caches; not measured
                before = tree_cpu_s(server.pid)
                kit(args.duration)
                used = tree_cpu_s(server.pid) - before
                run = json.loads(out.read_text())["tests"][test][0]
                results.append({"mode": mode, "run": i, "test": test, "rps": run["rps"], "requests": run["requests"],
                                "cpu_us_per_req": round(used / run["requests"] * 1e6, 1),
                                "foreign_cpu_s": run["foreign_cpu_s"]})
                print(json.dumps(results[-1]), flush=True)
        finally:
            server.terminate()
            server.wait(30)
    (args.out / "summary.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
