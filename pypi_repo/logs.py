"""Logging: ``pypi_repo.log`` (application), ``access.log``, ``error.log``, all rotated.

One ``dictConfig`` serves both the app and Gunicorn (``gunicorn.conf.py`` passes it as
``logconfig_dict``). The handlers rotate by size and are safe with several worker
processes writing one file (``concurrent-log-handler``).

Every request has an id (issue 6): the web layer binds it with :func:`bind_request` for
the duration of the request, :class:`RequestContextFilter` stamps it on every record that
reaches a handler, and the response carries it in ``X-Request-ID``, which the access log
format prints. A ``ContextVar`` (not Flask's ``g``) keeps this module Flask-free and
answers "-" outside a request.
"""
from __future__ import annotations

import json
import logging
import logging.config
import re
import time
from contextvars import ContextVar, Token
from typing import Any, Mapping

from .config import Settings

__all__ = [
    "ACCESS_LOG_FORMAT",
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "TextFormatter",
    "RequestContextFilter",
    "bind_request",
    "configure_logging",
    "escape_control",
    "logging_config",
    "unbind_request",
    "update_request",
]

REQUEST_ID_HEADER = "X-Request-ID"
ACCESS_LOG_FORMAT = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms '
                     'rid=%({x-request-id}o)s')
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] [%(request_id)s] %(name)s: %(message)s"

# What the current request is (request_id, route, client, user); None outside requests.
_REQUEST: ContextVar[dict[str, Any] | None] = ContextVar("pypi_repo_request", default=None)
_CONTEXT_FIELDS = ("request_id", "route", "client", "user")


def bind_request(request_id: str, **fields: Any) -> Token:
    """Make ``request_id`` (and route, client, ...) part of every log record from here on."""
    return _REQUEST.set({"request_id": request_id, **fields})


def update_request(**fields: Any) -> None:
    """Add facts learnt during the request (the authenticated ``user``, the ``route``)."""
    current = _REQUEST.get()
    if current is not None:
        current.update(fields)


def unbind_request(token: Token) -> None:
    _REQUEST.reset(token)


class RequestContextFilter(logging.Filter):
    """Stamps the request's id, route, client and user on each record ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _REQUEST.get() or {}
        for key in _CONTEXT_FIELDS:
            if not hasattr(record, key):
                setattr(record, key, current.get(key, "-" if key == "request_id" else None))
        return True


# Gunicorn access-log atoms -> JSON keys (the record's args are the atoms).
_ACCESS_ATOMS = {
    "request_id": "{x-request-id}o",
    "method": "m",
    "path": "U",
    "query": "q",
    "status": "s",
    "bytes": "B",
    "duration_ms": "M",
    "client": "h",
    "user": "u",
    "user_agent": "a",
    "referer": "f",
}


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape_control(match: re.Match) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def escape_control(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x1b``): safe on one
    log or terminal line, whatever a client put in it (a Basic-auth user name)."""
    return _CONTROL.sub(_escape_control, text) if _CONTROL.search(text) else text


class TextFormatter(logging.Formatter):
    """One record, one line: control characters in the message (a newline in a Basic-auth
    user name, an ESC in a form field) are escaped, so nobody can forge log lines (issue 10
    review). A traceback, appended after the message, keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape_control(record.message)
        return super().formatMessage(record)


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
            if value is not None and value != "-":
                doc[key] = value
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            doc.update(_access_fields(record.args))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def _access_fields(atoms: Mapping[str, Any]) -> dict[str, Any]:
    """The structured fields of one Gunicorn access-log line, without the "-" placeholders."""
    out: dict[str, Any] = {}
    for key, atom in _ACCESS_ATOMS.items():
        value = atoms.get(atom)
        if value in (None, "-", ""):
            continue
        if key in ("status", "duration_ms", "bytes"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                continue
        out[key] = value
    return out


def _handler(settings: Settings, filename: str, level: str = "NOTSET") -> dict[str, Any]:
    return {
        "class": "concurrent_log_handler.ConcurrentRotatingFileHandler",
        "filename": str(settings.logs_dir / filename),
        "maxBytes": settings.log_max_bytes,
        "backupCount": settings.log_backups,
        "encoding": "utf-8",
        "formatter": "json" if settings.log_format == "json" else "text",
        "level": level,
        "filters": ["request"],
    }


def logging_config(settings: Settings) -> dict[str, Any]:
    """The logging setup for app and Gunicorn; creates the logs directory and an empty
    ``error.log`` (issue 9: it exists from the start, however the service is run; the file
    handlers themselves open their file only at the first record)."""
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    try:
        (settings.logs_dir / "error.log").touch(exist_ok=True)
    except OSError:  # a full or read-only logs disk: the handler reports it at the first record
        pass
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": "pypi_repo.logs.RequestContextFilter"}},
        "formatters": {
            "text": {"()": "pypi_repo.logs.TextFormatter", "fmt": TEXT_FORMAT},
            "access": {"()": "pypi_repo.logs.TextFormatter", "fmt": "%(message)s"},
            "json": {"()": "pypi_repo.logs.JsonFormatter"},
        },
        "handlers": {
            "app": _handler(settings, "pypi_repo.log"),
            "error": _handler(settings, "error.log", "WARNING"),
            "access": {**_handler(settings, "access.log"),
                       "formatter": "json" if settings.log_format == "json" else "access"},
            "console": {"class": "logging.StreamHandler", "formatter": "text", "level": "WARNING",
                        "filters": ["request"]},
        },
        "loggers": {
            "pypi_repo": {"level": level, "handlers": ["app", "error"], "propagate": False},
            "gunicorn.error": {"level": level, "handlers": ["error", "console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))
