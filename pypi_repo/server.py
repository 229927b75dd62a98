"""``python3 app.py``: run the production server (Gunicorn) in the foreground.

Flags become ``PYPI_REPO_*`` environment variables, so ``gunicorn.conf.py`` and every
worker read one configuration; then this process becomes Gunicorn (``exec``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import ENV_PREFIX, load_settings
from .errors import ConfigError
from .backends import open_database

__all__ = ["main", "build_parser"]

ROOT = Path(__file__).resolve().parent.parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py", description="Run the pypi_repo package index (Gunicorn, foreground)."
    )
    parser.add_argument("--host", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="TCP port (default 8385)")
    parser.add_argument("--packages-dir", help="the package tree (default ./packages)")
    parser.add_argument("--data-dir", help="derived state, users, counts (default ./data)")
    parser.add_argument("--logs-dir", help="log files (default ./logs)")
    parser.add_argument("--config", help="TOML config file")
    parser.add_argument("--database-url", help="users, tokens, audit, counts: empty = SQLite in the data dir, "
                                               "or postgresql://... (shared by every node)")
    parser.add_argument("--storage-url", help="package files: empty = the packages dir, "
                                              "or s3://BUCKET/PREFIX (AWS_* variables; shared by every node)")
    parser.add_argument("--workers", type=int, help="Gunicorn workers (default: from CPU count)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--dev", action="store_true", help="Flask's development server instead of Gunicorn")
    return parser


def check_database_url(settings) -> None:
    """Refuse a ``database_url`` that cannot work before Gunicorn starts (one line, exit 2)."""
    open_database(settings.database_url, settings.data_dir).close()
    from .s3store import check_storage_url

    check_storage_url(settings)  # and a wrong storage_url (issue 14)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k != "dev" and v is not None}
    try:
        settings = load_settings(flags)
        check_database_url(settings)
    except ConfigError as exc:
        print(f"app.py: {exc}", file=sys.stderr)
        return 2
    for name, value in flags.items():
        os.environ[ENV_PREFIX + name.upper()] = str(getattr(settings, name))
    if args.dev:
        from . import create_app

        create_app(settings=settings).run(host=settings.host, port=settings.port, debug=False)
        return 0
    argv_out = [
        sys.executable, "-m", "gunicorn",
        "--config", str(ROOT / "gunicorn.conf.py"),
        "--chdir", str(ROOT),
        "app:app",
    ]
    os.execv(sys.executable, argv_out)
    return 1  # not reached
