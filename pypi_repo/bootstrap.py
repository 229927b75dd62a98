"""Make the seed's commands work as typed (issue 9): ``python3 manage_repo.py ...``,
``python3 monitor.py``, ``python3 app.py`` with the system ``python3``.

The entry files call :func:`use_checkout_venv` before they import anything else: when this
interpreter lacks the service's dependencies and the checkout has a ``.venv`` (``./start.sh``
creates it), the script re-executes itself with ``.venv/bin/python``, same arguments. This
module imports only the standard library (it runs before any dependency is known to exist).
"""
from __future__ import annotations

import importlib.util
import os
import sys

__all__ = ["use_checkout_venv", "REQUIRED_MODULES"]

REQUIRED_MODULES = ("flask", "gunicorn", "packaging", "psutil", "argon2", "prometheus_client")
REEXEC_ENV = "PYPI_REPO_REEXECUTED"


def _missing() -> list[str]:
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


def use_checkout_venv(script: str) -> None:
    """Return if the dependencies are importable; else exec the checkout's venv Python on
    ``script`` (or exit with what to do, never a traceback)."""
    missing = _missing()
    if not missing:
        return
    root = os.path.dirname(os.path.abspath(script))
    venv_python = os.path.join(root, ".venv", "bin", "python")
    name = os.path.basename(script)
    if os.access(venv_python, os.X_OK) and os.environ.get(REEXEC_ENV) != "1":
        os.environ[REEXEC_ENV] = "1"  # once: a broken venv must not loop
        os.execv(venv_python, [venv_python, os.path.join(root, name), *sys.argv[1:]])
    sys.stderr.write(
        f"{name}: {sys.executable} cannot import {', '.join(missing)}; run ./start.sh once (it creates "
        f"{os.path.join(root, '.venv')} with requirements.txt), or use .venv/bin/python {name}\n")
    sys.exit(2)
