"""``python -m pypi_repo.warmup``: index every project once, in the background, at low priority.

Gunicorn's master starts this when it is ready (``gunicorn.conf.py``), so requests never
wait for a first-time hash of a whole tree. Safe to run beside the workers: every write is
atomic and the work is idempotent.
"""
from __future__ import annotations

import logging
import os
import sys

from .config import load_settings
from .index import ProjectIndex
from .logs import configure_logging
from .storage import PackageStore

log = logging.getLogger("pypi_repo.warmup")


def main() -> int:
    settings = load_settings()
    configure_logging(settings)
    try:
        os.nice(10)
    except OSError:
        pass
    index = ProjectIndex(PackageStore(settings.packages_dir), settings.data_dir)
    projects, elapsed_ms = index.warm()
    log.info("warm-up indexed %d projects in %d ms", projects, elapsed_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
