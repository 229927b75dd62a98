"""Template filters of the human pages: sizes, times, durations, break points, health values.

Plain functions, registered on the UI blueprint by :func:`register`; anything that returns
markup escapes its input first (``Markup.escape``), so templates stay autoescaped.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint
from markupsafe import Markup

from ..charts import human_bytes

__all__ = ["register", "when", "day", "duration", "breakable", "health_value", "HIDDEN_HEALTH_KEYS"]

# Never on the health page for anonymous users (issue 12, defect 13): where files live, which
# process answered. /health keeps them for operators.
HIDDEN_HEALTH_KEYS = frozenset({"path", "paths", "pid", "dir", "directory", "file", "socket", "cwd", "hostname"})
_BREAK_AFTER = re.compile(r"([-_.+/])")


def when(value: Any) -> str:
    """Epoch seconds or a PEP 700 time string -> ``2024-05-01 12:00 UTC``."""
    if not value:
        return ""
    if isinstance(value, str):
        return value[:16].replace("T", " ") + " UTC"
    return datetime.fromtimestamp(float(value), tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def day(value: Any) -> str:
    """Epoch seconds or a PEP 700 time string -> ``2024-05-01`` (PyPI's "Released:" line)."""
    if not value:
        return ""
    if isinstance(value, str):
        return value[:10]
    return datetime.fromtimestamp(float(value), tz=timezone.utc).strftime("%Y-%m-%d")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def breakable(text: str) -> Markup:
    """A file name or URL that wraps after ``-_.+/`` instead of mid-word (issue 12, defects 1 and 5)."""
    return Markup("<wbr>").join(Markup.escape(part) for part in _BREAK_AFTER.sub("\\1\0", str(text)).split("\0"))


def health_value(key: str, value: Any) -> str:
    """A check's raw value as a person reads it: sizes in MB/GB, seconds as durations, yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if key.endswith("_mb"):
            return human_bytes(value * 1024 * 1024)
        if key.endswith("_bytes"):
            return human_bytes(value)
        if key.endswith("_s") or key.endswith("_seconds"):
            return duration(value)
        return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value[:10])
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {health_value(k, v)}" for k, v in value.items()
                         if k not in HIDDEN_HEALTH_KEYS)
    return str(value)


def health_label(key: str) -> str:
    """``free_mb`` -> ``free``, ``uptime_s`` -> ``uptime``: the unit is in the value now."""
    for suffix in ("_mb", "_bytes", "_seconds", "_s"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
            break
    return key.replace("_", " ")


def dict_without(mapping: dict, *keys: str) -> dict:
    """A copy of ``mapping`` without ``keys`` (links that drop one filter)."""
    return {k: v for k, v in mapping.items() if k not in keys}


def register(bp: Blueprint) -> None:
    for name, fn in {"dict_without": dict_without, "bytes": human_bytes, "when": when, "day": day, "duration": duration,
                     "breakable": breakable, "health_value": health_value, "health_label": health_label}.items():
        bp.add_app_template_filter(fn, name)
