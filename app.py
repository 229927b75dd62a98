"""Entry point. ``gunicorn -c gunicorn.conf.py app:app`` serves ``app``;
``python3 app.py [--host H] [--port P] ...`` runs that same server in the foreground (with
the system ``python3`` too: it re-executes itself with ``.venv/bin/python``)."""
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from pypi_repo.bootstrap import use_checkout_venv

    use_checkout_venv(__file__)
    from pypi_repo.server import main

    sys.exit(main())

from pypi_repo import create_app  # noqa: E402

app = create_app()
