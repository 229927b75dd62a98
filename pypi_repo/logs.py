"""Logging: ``pypi_repo.log`` (application), ``access.log``, ``error.log``, all rotated.

One ``dictConfig`` serves both the app and Gunicorn (``gunicorn.conf.py`` passes it as
``logconfig_dict``). The handlers rotate by size and are safe with several worker
processes writing one file (``concurrent-log-handler``).
"""
from __future__ import annotations

import json
import logging
import logging.config
import time
from typing import Any

from .config import Settings

__all__ = ["logging_config", "configure_logging", "JsonFormatter", "ACCESS_LOG_FORMAT"]

ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for ELK / Loki."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key in ("request_id", "route", "status", "duration_ms", "client", "user", "method", "path"):
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def _handler(settings: Settings, filename: str, level: str = "NOTSET") -> dict[str, Any]:
    return {
        "class": "concurrent_log_handler.ConcurrentRotatingFileHandler",
        "filename": str(settings.logs_dir / filename),
        "maxBytes": settings.log_max_bytes,
        "backupCount": settings.log_backups,
        "encoding": "utf-8",
        "formatter": "json" if settings.log_format == "json" else "text",
        "level": level,
    }


def logging_config(settings: Settings) -> dict[str, Any]:
    """The logging setup for app and Gunicorn; creates the logs directory."""
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "text": {"format": TEXT_FORMAT},
            "access": {"format": "%(message)s"},
            "json": {"()": "pypi_repo.logs.JsonFormatter"},
        },
        "handlers": {
            "app": _handler(settings, "pypi_repo.log"),
            "error": _handler(settings, "error.log", "WARNING"),
            "access": {**_handler(settings, "access.log"),
                       "formatter": "json" if settings.log_format == "json" else "access"},
            "console": {"class": "logging.StreamHandler", "formatter": "text", "level": "WARNING"},
        },
        "loggers": {
            "pypi_repo": {"level": level, "handlers": ["app", "error"], "propagate": False},
            "gunicorn.error": {"level": level, "handlers": ["error", "console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))
