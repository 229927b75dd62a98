"""``python -m pypi_repo.warmup``: index every project once, in the background.

Gunicorn's master starts this when it is ready (``gunicorn.conf.py``), so requests rarely
wait for a first-time hash: on a tree the data directory has not seen (a new deploy, a wiped
``data/``) it costs one core for a while (about 2.5 ms per project of 6 files), on a known
tree a stat per file. Safe beside the workers: every write is atomic, the work idempotent.
Up to two processes (one per core) at normal priority: a lower one starves under load, and
the sooner it is done, the sooner every page is cheap.
"""
from __future__ import annotations

import logging
import os
import sys
import time

from .config import load_settings
from .index import ProjectIndex
from .logs import configure_logging
from .storage import PackageStore

log = logging.getLogger("pypi_repo.warmup")

WARMUP_DELAY_S = 2.0
MAX_PROCESSES = 2  # a new tree indexes twice as fast; more would crowd out the workers


def main() -> int:
    settings = load_settings()
    configure_logging(settings)
    time.sleep(WARMUP_DELAY_S)  # let the workers boot first: cold start stays short
    shards = max(1, min(MAX_PROCESSES, os.cpu_count() or 1))
    children = []
    for shard in range(1, shards):  # forked helpers take every n-th project
        pid = os.fork()
        if pid == 0:
            os._exit(_warm(settings, shard, shards))
        children.append(pid)
    _warm(settings, 0, shards)
    for pid in children:
        os.waitpid(pid, 0)
    return 0


def _warm(settings, shard: int, shards: int) -> int:
    index = ProjectIndex(PackageStore(settings.packages_dir), settings.data_dir)
    projects, elapsed_ms = index.warm(shard, shards)
    log.info("warm-up %d/%d indexed %d projects in %d ms", shard + 1, shards, projects, elapsed_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
