"""Settings: one frozen object, read once at start-up.

Precedence, lowest first: built-in defaults < TOML config file < ``PYPI_REPO_*``
environment variables < explicit overrides (command-line flags). Every field of
:class:`Settings` is settable in all three places under the same name: the field
``packages_dir`` is ``packages_dir`` in the TOML file, ``PYPI_REPO_PACKAGES_DIR`` in the
environment and ``--packages-dir`` on the command line.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

__all__ = ["Settings", "load_settings", "ENV_PREFIX"]

ENV_PREFIX = "PYPI_REPO_"


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told. Paths are absolute once loaded."""

    # --- server ---
    host: str = "0.0.0.0"
    port: int = 8385
    packages_dir: Path = Path("packages")
    data_dir: Path = Path("data")
    logs_dir: Path = Path("logs")
    config: Path | None = None
    # --- shared state (issue 14, docs/backends.md) ---
    database_url: str = ""  # empty: SQLite under data_dir; postgresql://... (any libpq URL): shared by every node
    storage_url: str = ""  # empty: packages_dir; s3://BUCKET/PREFIX: one bucket shared by every node (AWS_* variables)
    storage_redirect: bool = False  # S3: answer file GETs with a 302 to a short-lived presigned URL
    storage_cache_mb: int = 2048  # S3: node-local disk cache of files (under data_dir), LRU by size
    # --- gunicorn (gunicorn.conf.py reads these) ---
    workers: int = 0  # 0: the CPU count, at least 2
    threads: int = 4
    worker_class: str = "gthread"
    timeout: int = 60
    graceful_timeout: int = 30
    keepalive: int = 5
    max_requests: int = 20000
    max_requests_jitter: int = 2000
    forwarded_allow_ips: str = "127.0.0.1,::1"
    certfile: str = ""
    keyfile: str = ""
    # --- logging ---
    log_level: str = "INFO"
    log_format: str = "text"  # "text" or "json" (one object per line)
    log_max_bytes: int = 20 * 1024 * 1024
    log_backups: int = 5
    # --- index and caching ---
    page_cache_mb: int = 8  # rendered Simple API pages kept in memory, per worker (all are on disk too)
    file_cache_mb: int = 4  # bodies of small files (<= 512 KiB) kept in memory, per worker; 0: off
    page_max_age: int = 0  # seconds a client may reuse a page without revalidating
    file_max_age: int = 86400  # seconds a client may reuse a file without revalidating
    # --- health (docs/operations.md, "Liveness and readiness") ---
    min_free_disk_mb: int = 100  # below it /health says "degraded" (no restart: issue 9)
    master_stale_s: float = 10.0  # /health/live fails once the Gunicorn master's loop is this late
    health_details: bool = False  # private mode: show /health details to anonymous callers too
    pidfile: Path | None = None  # the Gunicorn master's pid for the monitor; default run/gunicorn-<port>.pid
    stats_cache_s: float = 10.0  # /stats and /metrics reuse one walk of the tree this long (new projects: at once)
    # --- publishing ---
    max_upload_mb: int = 1024
    allow_overwrite: bool = False
    private: bool = False  # reads need credentials too
    auth_rate_limit: int = 10  # failed logins per minute per (client address, account); bad tokens per address
    auth_account_rate_limit: int = 50  # failed password logins per minute per account, from all addresses
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    # --- ui ---
    public_url: str = ""  # how clients reach this index, shown in snippets; empty: from request
    secret_key: str = ""  # session signing key; empty: generated and kept under data_dir
    catalog_refresh_s: float = 2.0  # how stale search/dependency data may be (new projects: never)
    session_hours: int = 12  # a web login lasts this long
    # --- observability ---
    count_downloads: bool = True
    downloads_flush_seconds: int = 1  # how often each worker writes its buffered counts
    metrics: bool = True
    metrics_dir: str = ""  # Prometheus multiprocess files; empty: a tmpfs dir under /dev/shm (never data_dir: SIGBUS when full)
    metrics_top_projects: int = 20  # /metrics shows per-project download totals for this many projects
    metrics_index_ttl: int = 60  # seconds a worker reuses its index-size figures for /metrics
    metrics_token: str = ""  # when set, /metrics needs "Authorization: Bearer <token>"
    metrics_allow: str = ""  # comma-separated client addresses allowed to read /metrics
    # --- monitor (monitor.py) and its alerts; see docs/operations.md ---
    monitor_url: str = ""  # liveness URL to poll; empty: http(s)://127.0.0.1:<port>/health/live
    monitor_interval: float = 60.0  # seconds between checks
    monitor_timeout: float = 10.0  # seconds one check may take
    monitor_threshold: int = 3  # consecutive failures before a restart
    monitor_restart_command: str = "supervisorctl -c supervisor.conf start pypi_repo"  # after a kill; empty: none
    monitor_restart_timeout: float = 120.0  # seconds the restart command may take
    monitor_cooldown: float = 60.0  # grace after a restart; doubles with each restart in the hour
    monitor_max_backoff: float = 1800.0  # the doubling stops here
    monitor_max_restarts_per_hour: int = 5  # then it alerts that it gave up
    monitor_reload_wait: float = 5.0  # seconds a graceful reload (HUP) gets before the kill path
    monitor_supervisor_conf: str = "supervisor.conf"  # watch this supervisord; empty: do not
    monitor_supervisor_interval: float = 2.0  # seconds between checks of supervisord's pid
    monitor_start_supervisord: bool = True  # under supervisord: bring it back when it is killed
    alert_webhook_url: str = ""  # JSON POST per alert
    alert_smtp_host: str = ""  # email per alert when set
    alert_smtp_port: int = 25
    alert_smtp_starttls: bool = False
    alert_smtp_user: str = ""
    alert_smtp_password: str = ""
    alert_email_from: str = ""  # empty: pypi-repo@<hostname>
    alert_email_to: str = ""  # comma-separated recipients
    alert_command: str = ""  # run per alert (argument list, shlex-split), alert JSON on stdin

    @property
    def master_pidfile(self) -> Path:
        """Where the Gunicorn master writes its pid (``when_ready``) and the monitor reads it."""
        return self.pidfile or Path.cwd() / "run" / f"gunicorn-{self.port}.pid"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "pypi_repo.sqlite3"

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


_PATH_FIELDS = {"packages_dir", "data_dir", "logs_dir", "config", "pidfile"}


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """Turn a string (env) or TOML value into the field's type, with a clear error."""
    if value is None:
        return None
    kind = str(kind)
    try:
        if name in _PATH_FIELDS:
            return Path(os.path.expanduser(str(value)))
        if "bool" in kind:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if "float" in kind:
            return float(value)
        if "int" in kind:
            return int(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {exc}") from None


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    # Accept both a flat file and one with a [pypi_repo] table.
    return dict(data.get("pypi_repo", data))


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Settings:
    """Build :class:`Settings` from defaults, config file, environment and overrides.

    Relative paths are resolved against ``base_dir`` (the current directory by default),
    so the service started from a checkout keeps its state inside it.
    """
    environ = os.environ if environ is None else environ
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    known = {f.name: f.type for f in fields(Settings)}
    unknown = set(overrides) - set(known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")

    from_env = {
        name: environ[ENV_PREFIX + name.upper()]
        for name in known
        if ENV_PREFIX + name.upper() in environ
    }
    config_path = overrides.get("config") or from_env.get("config")
    from_file: dict[str, Any] = {}
    if config_path:
        from_file = _read_config_file(Path(os.path.expanduser(str(config_path))))
        bad = set(from_file) - set(known)
        if bad:
            raise ConfigError(f"config file {config_path}: unknown setting(s): {', '.join(sorted(bad))}")

    merged: dict[str, Any] = {}
    for layer in (from_file, from_env, overrides):
        for name, value in layer.items():
            merged[name] = _coerce(name, value, known[name])

    base = Path(base_dir) if base_dir else Path.cwd()
    for name in _PATH_FIELDS:
        value = merged.get(name, getattr(Settings, name, None))
        if value is not None:
            merged[name] = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
    settings = Settings(**merged)
    if settings.log_format not in {"text", "json"}:
        raise ConfigError("setting log_format: must be 'text' or 'json'")
    if not 0 < settings.port < 65536:
        raise ConfigError(f"setting port: {settings.port} is not a TCP port")
    return settings
