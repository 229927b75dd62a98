"""``python3 manage_repo.py --help``: manage packages, users and tokens of the index."""
import sys

from pypi_repo.cli import main

if __name__ == "__main__":
    sys.exit(main())
