"""Builds the Flask application: settings -> services -> blueprints -> error table."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from flask import Flask, current_app

from .. import metrics
from ..auth import AuthService, Principal
from ..backends import SqlDatabase, open_database
from ..cache import FileBodyCache
from ..config import Settings, load_settings
from ..health import HealthChecker, TreeSummaryCache
from ..index import ProjectIndex
from ..logs import configure_logging
from ..s3store import open_package_store
from ..storage import PackageStore

__all__ = ["Services", "build_app", "services"]


@dataclass
class Services:
    """What the views use; one instance per process, kept in ``app.extensions``."""

    settings: Settings
    db: SqlDatabase  # the shared database (SQLite under data_dir, or PostgreSQL: database_url)
    store: PackageStore  # or s3store.S3PackageStore (storage_url)
    index: ProjectIndex
    health: HealthChecker
    auth: AuthService
    tree_stats: TreeSummaryCache
    file_bodies: FileBodyCache | None = None
    started_at: float = field(default_factory=time.time)
    # set by the browser-login blueprint: the session's principal for this request, or None
    session_principal: Callable[[], Principal | None] | None = None
    # endpoints that private mode leaves open (health, login, static, a protected /metrics)
    open_endpoints: set[str] = field(default_factory=set)
    # set by web/metrics.py when metrics are on: answers GET /metrics
    metrics_scrape: Callable[[], Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def services() -> Services:
    return current_app.extensions["pypi_repo"]


def build_app(overrides: Mapping[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    settings = settings or load_settings(overrides)
    for directory in (settings.packages_dir, settings.data_dir, settings.logs_dir):
        directory.mkdir(parents=True, exist_ok=True)
    configure_logging(settings)

    app = Flask("pypi_repo")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_mb * 1024 * 1024 + 1024 * 1024
    app.json.sort_keys = False
    db = open_database(settings.database_url, settings.data_dir)  # BackendConfigError: refused at start
    store = open_package_store(settings, db)  # the tree, or the shared bucket (storage_url)
    app.extensions["pypi_repo"] = Services(
        settings=settings,
        db=db,
        store=store,
        index=ProjectIndex(store, settings.data_dir, settings.page_cache_mb * 1024 * 1024),
        health=HealthChecker(settings, store, db=db),
        auth=AuthService(settings, db, on_failure=metrics.record_auth_failure if settings.metrics else None),
        tree_stats=TreeSummaryCache(store, settings.stats_cache_s),
        file_bodies=FileBodyCache(settings.file_cache_mb * 1024 * 1024) if settings.file_cache_mb > 0 else None,
    )

    from .. import downloads
    from . import access, compression, errors, files, ops, security, simple, ui, ui_account, ui_manage, upload
    from . import metrics as web_metrics
    from .proxy import TrustedProxies

    app.wsgi_app = TrustedProxies(app.wsgi_app, settings.forwarded_allow_ips)  # type: ignore[method-assign]
    security.install(app)

    if settings.private:  # reads need credentials; a public index pays nothing for the check
        app.before_request(access.require_read_access)

    for blueprint in (ops.bp, files.bp, ui.bp, ui_account.bp, ui_manage.bp, upload.bp):
        app.register_blueprint(blueprint)
    downloads.init(app.extensions["pypi_repo"], db,  # counting hook for web/files.py
                   observers=[metrics.record_download] if settings.metrics else [])
    web_metrics.init_app(app)  # request ids, request metrics, /metrics
    compression.init_app(app)  # gzip/br for pages and the Simple API, never for files
    app.register_blueprint(simple.bp)  # last: its /<project>/ alias is the catch-all
    errors.register(app)
    return app
