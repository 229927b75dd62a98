"""``python3 manage_repo.py --help``: manage packages, users and tokens of the index (with the
system ``python3`` too: it re-executes itself with ``.venv/bin/python``)."""
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from pypi_repo.bootstrap import use_checkout_venv

    use_checkout_venv(__file__)
    from pypi_repo.cli import main

    sys.exit(main())
