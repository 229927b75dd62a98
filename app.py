"""Entry point. ``gunicorn -c gunicorn.conf.py app:app`` serves ``app``;
``python3 app.py [--host H] [--port P] ...`` runs that same server in the foreground."""
import sys

if __name__ == "__main__":
    from pypi_repo.server import main

    sys.exit(main())

from pypi_repo import create_app  # noqa: E402

app = create_app()
