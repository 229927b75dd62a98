"""Probing the service from outside: an HTTP health check and bounded commands.

Shared by the monitor (``monitor.py``), ``start.sh`` (waits for ``/health``) and the systemd
watchdog thread in the Gunicorn master. Plain ``http.client`` on purpose: no proxy variables
(a proxy must not stand between the monitor and the local service), no logging (it also runs
in a thread of the Gunicorn master, where fork safety matters).
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from .config import Settings

__all__ = ["CheckResult", "CommandResult", "http_check", "run_command", "default_health_url",
           "readiness_url"]


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    elapsed_s: float = 0.0
    doc: dict[str, Any] = field(default_factory=dict, compare=False)  # the JSON answer, if any


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    output: str


def default_health_url(settings: Settings, path: str = "/health/live") -> str:
    """``monitor_url`` or the local liveness URL of the configured bind (0.0.0.0 -> 127.0.0.1).

    Liveness, not readiness (issue 9): the monitor and the watchdog act only on what a
    restart can fix; ``/health`` (readiness) also fails for a low disk.
    """
    if settings.monitor_url:
        return settings.monitor_url
    host = settings.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.certfile else "http"
    return f"{scheme}://{host}:{settings.port}{path}"


def readiness_url(live_url: str) -> str:
    """``.../health/live`` -> ``.../health`` (the readiness document the monitor alerts on)."""
    parts = urlsplit(live_url)
    path = parts.path.removesuffix("/live") if parts.path.endswith("/health/live") else "/health"
    return parts._replace(path=path, query="").geturl()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def http_check(url: str, timeout: float) -> CheckResult:
    """GET the health URL: healthy means HTTP 200 within ``timeout``.

    A loopback HTTPS URL is probed without certificate verification: it checks liveness,
    not identity.
    """
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    path = (parts.path or "/health") + (f"?{parts.query}" if parts.query else "")
    start = time.monotonic()
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if _is_loopback(host):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json", "User-Agent": "pypi_repo-monitor"})
        resp = conn.getresponse()
        body = resp.read(65536)
    except (OSError, http.client.HTTPException) as exc:
        elapsed = time.monotonic() - start
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        return CheckResult(False, f"{reason} after {elapsed:.1f} s", elapsed)
    finally:
        conn.close()
    elapsed = time.monotonic() - start
    doc = _json(body)
    detail = f"HTTP {resp.status} in {elapsed * 1000:.0f} ms"
    if resp.status != 200:
        detail += _failing_checks(doc)
    return CheckResult(resp.status == 200, detail, elapsed, doc)


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _failing_checks(doc: dict[str, Any]) -> str:
    """The names and errors of the failing checks in a /health document, if it is one."""
    checks = doc.get("checks")
    if not isinstance(checks, dict):
        return ""
    bad = [f"{name}: {c.get('error', 'failed')}" for name, c in checks.items()
           if isinstance(c, dict) and not c.get("ok")]
    return f" ({'; '.join(bad)})" if bad else ""


def _resolve(argv: Sequence[str]) -> list[str]:
    """A bare program name is looked up beside this interpreter first (the venv's
    ``supervisorctl``), then on PATH."""
    argv = list(argv)
    if argv and os.sep not in argv[0]:
        beside = Path(sys.executable).parent / argv[0]
        if beside.exists():
            argv[0] = str(beside)
        else:
            argv[0] = shutil.which(argv[0]) or argv[0]
    return argv


def run_command(argv: Sequence[str], timeout: float, env: dict[str, str] | None = None,
                cwd: str | None = None) -> CommandResult:
    """Run a command (argument list, bounded); never raises."""
    try:
        proc = subprocess.run(_resolve(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CommandResult(False, f"{type(exc).__name__}: {exc}")
    output = "; ".join(line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip())[-1000:]
    if proc.returncode != 0:
        return CommandResult(False, f"exit status {proc.returncode}: {output}")
    return CommandResult(True, output)
