"""Which processes belong to a checkout (stop.sh, start.sh, the monitor): by the checkout's
path in the command line, never by a broad name (issue 9)."""
from __future__ import annotations

import subprocess
import sys
import time

import psutil

from pypi_repo.procs import checkout_processes


def test_only_the_checkouts_own_programs_and_their_children_are_found(tmp_path):
    ours, other = tmp_path / "ours", tmp_path / "other"
    for root in (ours, other):
        root.mkdir()
        (root / "supervisor.conf").write_text("")
    sleeper = "import subprocess, time; subprocess.Popen(['sleep', '30']); time.sleep(30)"
    procs = [
        subprocess.Popen([sys.executable, "-c", sleeper, "-c", str(ours / "supervisor.conf")]),  # ours + child
        subprocess.Popen([sys.executable, "-c", sleeper, "-c", str(other / "supervisor.conf")]),  # another checkout
        subprocess.Popen(["tail", "-f", "supervisor.conf"], cwd=ours, stdout=subprocess.DEVNULL),  # an editor-like
        subprocess.Popen(["sleep", "30"], cwd=ours),  # a shell's job in the directory
    ]
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(checkout_processes(ours)) < 2:
            time.sleep(0.05)
        found = checkout_processes(ours)
        assert procs[0].pid in {p.pid for p in found}
        assert len(found) == 2 and any(p.argv[0] == "sleep" and p.ppid == procs[0].pid for p in found)
        assert {p.pid for p in found}.isdisjoint({procs[1].pid, procs[2].pid, procs[3].pid})
        assert all(p.kind == "other" for p in found)
    finally:
        children = [c for proc in procs for c in psutil.Process(proc.pid).children()]
        for proc in [*children, *procs]:
            proc.kill()
        psutil.wait_procs(children, timeout=10)
        for proc in procs:
            proc.wait(10)
