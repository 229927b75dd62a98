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


def test_an_orphaned_index_warm_up_still_belongs_to_its_checkout(tmp_path):
    """The master's `python -m pypi_repo.warmup` child outlives a master killed first by
    stop.sh (it is then nobody's descendant): it is found by its module and working directory,
    so stop.sh stops it too (it was left running now and then under load)."""
    ours, other = tmp_path / "ours", tmp_path / "other"
    for root in (ours, other):
        (root / "pypi_repo").mkdir(parents=True)
        (root / "pypi_repo" / "warmup.py").write_text("import time; time.sleep(30)\n")
    procs = [subprocess.Popen([sys.executable, "-m", "pypi_repo.warmup"], cwd=root) for root in (ours, other)]
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not checkout_processes(ours):
            time.sleep(0.05)
        assert [p.pid for p in checkout_processes(ours)] == [procs[0].pid]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)
