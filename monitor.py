"""Entry point: ``python3 monitor.py [--once] [flags]`` polls /health and restarts the service
after consecutive failures (see docs/operations.md). The logic is in ``pypi_repo.monitor``."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pypi_repo.monitor import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
