#!/usr/bin/env python3
"""Server CPU per request under a fixed, bounded wrk load: the project's own load script.

Throughput on a shared 2-core machine swings by 2x between runs; the CPU the server's
process tree spends per answered request does not, so two servers measured one after the
other compare fairly. Loopback only; every run stops after ``--duration`` seconds.

    python3 bench/cpu_per_request.py --pid PID --base http://127.0.0.1:18030 \\
        --tree /tmp/bench-data/n2000 [--tests project,project_json,wheel] [--duration 6]

``--tree`` is a tree from the benchmark kit's make_tree.py (``projects.txt`` and
``packages/``); ``--pid`` is the server's main process (Gunicorn's master).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
LUA = """
paths = {}
function init(args)
  for line in io.lines(args[1]) do if #line > 0 then paths[#paths + 1] = line end end
  if args[2] ~= nil and #args[2] > 0 then wrk.headers["Accept"] = args[2] end
  math.randomseed(os.time())
end
function request() return wrk.format("GET", paths[math.random(#paths)]) end
"""


def tree_cpu(pid: int) -> dict[int, float]:
    """User + system CPU seconds of a process and each of its descendants, by PID."""
    root = psutil.Process(pid)
    seconds = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            seconds[proc.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return seconds


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots by the processes alive at both (a worker recycled in
    between would hide its CPU: run the server with max_requests = 0)."""
    if set(before) != set(after):
        print(f"warning: the process set changed ({sorted(set(before) ^ set(after))})", file=sys.stderr)
    return sum(after[p] - before[p] for p in before.keys() & after.keys())


def paths_for(test: str, tree: Path, sample: int) -> list[str]:
    projects = (tree / "projects.txt").read_text().split()
    chosen = random.Random(1).sample(projects, min(sample, len(projects)))
    if test in ("project", "project_json"):
        return [f"/simple/{p}/" for p in chosen]
    wheels = []
    for p in chosen:
        wheels += [f"/packages/{p}/{w.name}" for w in (tree / "packages" / p).glob("*.whl")]
    return wheels


def run_wrk(base: str, paths: list[str], accept: str, duration: int, connections: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        lua, plist = Path(tmp, "paths.lua"), Path(tmp, "paths.txt")
        lua.write_text(LUA)
        plist.write_text("\n".join(paths) + "\n")
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "-s", str(lua), base,
                              "--", str(plist), accept], capture_output=True, text=True,
                             timeout=duration + 30, check=True).stdout
    done = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return done - (int(bad.group(1)) if bad else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--tests", default="project,project_json,wheel")
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--sample", type=int, default=500)
    args = parser.parse_args(argv)
    if urlsplit(args.base).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("loopback only")
    results = {}
    for test in args.tests.split(","):
        paths = paths_for(test, args.tree, args.sample)
        accept = JSON_ACCEPT if test == "project_json" else ""
        run_wrk(args.base, paths, accept, 2, args.connections)  # warm: pages rendered, files cached
        before, started = tree_cpu(args.pid), time.monotonic()
        ok = run_wrk(args.base, paths, accept, args.duration, args.connections)
        cpu, wall = cpu_spent(before, tree_cpu(args.pid)), time.monotonic() - started
        results[test] = {"ok_requests": ok, "req_per_s": round(ok / wall, 1),
                         "server_cpu_us_per_request": round(1e6 * cpu / max(ok, 1), 1)}
        print(f"{test:13s} {results[test]['req_per_s']:9.1f} req/s  "
              f"{results[test]['server_cpu_us_per_request']:8.1f} us server CPU per request", flush=True)
    print("JSON " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
