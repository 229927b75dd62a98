"""Entry point: ``python3 monitor.py [--once] [flags]`` polls /health/live and recovers the
service after consecutive failures (see docs/operations.md). The logic is in
``pypi_repo.monitor``; with the system ``python3`` it re-executes itself with ``.venv/bin/python``."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    from pypi_repo.bootstrap import use_checkout_venv

    use_checkout_venv(__file__)
    from pypi_repo.monitor import main

    sys.exit(main())
