"""``python -m pypi_repo.warmup``: index every project once, in one background process.

Gunicorn's master starts this when it is ready (``gunicorn.conf.py``), so requests rarely
wait for a first-time hash: on a tree the data directory has not seen (a new deploy, a wiped
``data/``) it costs one core for a while (about 2.5 ms per project of 6 files), on a known
tree a stat per file. Safe beside the workers: every write is atomic, the work idempotent.
One process at normal priority: a lower one starves under load, and the sooner it is done,
the sooner every page is cheap.
"""
from __future__ import annotations

import logging
import sys
import time

from .config import load_settings
from .index import ProjectIndex
from .logs import configure_logging
from .storage import PackageStore

log = logging.getLogger("pypi_repo.warmup")

WARMUP_DELAY_S = 2.0


def main() -> int:
    settings = load_settings()
    configure_logging(settings)
    time.sleep(WARMUP_DELAY_S)  # let the workers boot first: cold start stays short
    index = ProjectIndex(PackageStore(settings.packages_dir), settings.data_dir)
    projects, elapsed_ms = index.warm()
    log.info("warm-up indexed %d projects in %d ms", projects, elapsed_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
