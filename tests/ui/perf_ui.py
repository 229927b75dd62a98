"""Server-side time of every UI page on a big generated tree (not a test; run by hand).

    python3 ../shared/bench/make_tree.py /tmp/ui-n20000 -n 20000
    .venv/bin/python tests/ui/perf_ui.py /tmp/ui-n20000 [WORKDIR]

The first run builds the catalog (minutes for 20,000 projects); later runs reuse WORKDIR/data.
"""
import statistics
import sys
import time
from pathlib import Path

import requests
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tests')); sys.path.insert(0, str(ROOT))

from conftest import start_server
tree = Path(sys.argv[1] if len(sys.argv) > 1 else '/tmp/ui-n20000')
work = Path(sys.argv[2] if len(sys.argv) > 2 else str(tree) + '-ui')
dirs = {"packages": tree / 'packages', "data": work / 'data', "logs": work / 'logs'}
dirs['data'].mkdir(parents=True, exist_ok=True)
dirs["logs"].mkdir(exist_ok=True)
t = time.perf_counter()
srv = start_server(dirs, workers=1)
print("server up", round(time.perf_counter()-t, 2), "s")
s = requests.Session()
# warm: trigger catalog load and wait until complete
for _ in range(3000):
    r = s.get(srv.url + "/api/dependencies/missing")
    if r.json()["complete"] and r.json()["projects_indexed"] > 0:
        break
    time.sleep(0.3)
print("catalog ready", round(time.perf_counter()-t, 2), "s", r.json()["projects_indexed"])
urls = ["/", "/projects/", "/projects/?page=200", "/projects/?sort=updated", "/projects/?q=http", "/projects/?q=zifliki-lint",
        "/api/search?q=http", "/api/search?q=json+client", "/api/search?q=zifliki", "/project/zifliki-lint/", "/project/bizu-poka-django/",
        "/project/zifliki-lint/3.3.3/", "/api/project/zifliki-lint/dependencies", "/api/project/zifliki-lint/dependents",
        "/dependencies/missing/", "/api/dependencies/missing", "/ui/stats", "/ui/health", "/login", "/project/nope/"]
for u in urls:
    times = []
    for i in range(7):
        t0 = time.perf_counter(); r = s.get(srv.url + u); times.append((time.perf_counter()-t0)*1000)
    print(f"{u:45s} {r.status_code} first {times[0]:6.1f} ms  median {statistics.median(times[1:]):6.1f} ms  max {max(times[1:]):6.1f}")
srv.stop()
