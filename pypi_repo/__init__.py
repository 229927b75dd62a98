"""pypi_repo: a private Python package index serving the PyPI Simple Repository API.

``create_app`` wires settings, services and blueprints; everything else is importable
without Flask (storage, index, metadata, config, ...).
"""
from __future__ import annotations

__version__ = "1.0.0"

__all__ = ["create_app", "__version__"]


def create_app(overrides=None, settings=None):
    """Application factory: ``gunicorn app:app`` and the tests both come through here.

    ``overrides`` are setting names and values that win over config file and environment
    (the command line's flags); ``settings`` passes a ready :class:`Settings` instead.
    """
    from .web.app import build_app

    return build_app(overrides=overrides, settings=settings)
