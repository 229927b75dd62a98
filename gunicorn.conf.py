"""Gunicorn settings for pypi_repo. Every value comes from pypi_repo's Settings, so it can
be set in the TOML config file or as PYPI_REPO_* environment variables (see README).

Worker model, chosen by measurement (see README, "Performance"):
gthread workers, as many as cores (at least 2), four threads each. Processes give the
throughput (the GIL); more processes than cores measured no faster here but cost ~65 MB
each (the 300 MB budget at 20,000 projects); the threads keep a worker busy while others
wait on slow clients or large sendfile downloads, and gthread keeps connections alive
(pip reuses them). No preload: each worker builds its caches lazily, shared state is on disk.
"""
import multiprocessing
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pypi_repo.config import load_settings  # noqa: E402
from pypi_repo.errors import ConfigError  # noqa: E402
from pypi_repo.logs import ACCESS_LOG_FORMAT, logging_config  # noqa: E402
from pypi_repo.server import check_database_url  # noqa: E402

try:
    _settings = load_settings()
    check_database_url(_settings)  # a wrong database_url: one line, before any worker starts
except ConfigError as _exc:
    sys.exit(f"pypi_repo: {_exc}")

bind = [f"{_settings.host}:{_settings.port}"]
workers = _settings.workers or max(2, multiprocessing.cpu_count())
worker_class = _settings.worker_class
threads = _settings.threads
timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
keepalive = _settings.keepalive
max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests_jitter
preload_app = False
forwarded_allow_ips = _settings.forwarded_allow_ips
proxy_allow_ips = _settings.forwarded_allow_ips
access_log_format = ACCESS_LOG_FORMAT
logconfig_dict = logging_config(_settings)
capture_output = False
proc_name = "pypi_repo"
if _settings.certfile:
    certfile = _settings.certfile
    keyfile = _settings.keyfile or None


def when_ready(server):
    """Master ready, before the first fork: start the master's heartbeat (the workers' liveness
    check reads it) and, under systemd ``WatchdogSec=``, ping the watchdog while /health/live
    answers 200, so a hung service is restarted (docs/operations.md). Gunicorn itself sends
    READY=1."""
    from pypi_repo.liveness import install_master_heartbeat, start_systemd_watchdog
    from pypi_repo.probe import default_health_url

    install_master_heartbeat(server, _settings.master_pidfile)
    live_url = default_health_url(_settings.replace(monitor_url=""))
    if start_systemd_watchdog(live_url):
        server.log.info("systemd watchdog: pinging while %s answers 200", live_url)
    _start_index_warmup(server)


def on_exit(server):
    """Master exit: remove the heartbeat file."""
    from pypi_repo.liveness import remove_master_heartbeat

    remove_master_heartbeat()


def _start_index_warmup(server):
    """Index every project once in a low-priority background process (pypi_repo/warmup.py):
    after a deploy or a wiped data dir, no request waits for a first-time hash. The master
    reaps it like any child; it exits when done."""
    import subprocess

    try:
        subprocess.Popen([sys.executable, "-m", "pypi_repo.warmup"], cwd=os.path.dirname(os.path.abspath(__file__)),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    except OSError as exc:
        server.log.warning("index warm-up not started: %s", exc)

# Prometheus multiprocess mode (docs/observability.md): each worker writes its metrics to
# memory-mapped files in this directory, and a scrape answered by any worker sums them. It
# must be in the environment before a worker first imports prometheus_client. A tmpfs by
# default, never data_dir: a full disk under an mmap is a SIGBUS (pypi_repo/metrics_store.py).
if _settings.metrics and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    from pypi_repo.metrics_store import choose_dir  # noqa: E402

    _metrics_dir = choose_dir(_settings.data_dir, _settings.metrics_dir)
    if _metrics_dir is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)


def on_starting(server):
    """Master start: an empty metrics directory (counters restart from zero, no stale files)."""
    from pathlib import Path

    from pypi_repo.metrics_store import reset_dir

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        reset_dir(Path(directory))


def child_exit(server, worker):
    """Master, after a worker died: drop its live-gauge files, fold its counters into the archive."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from pathlib import Path

        from prometheus_client import multiprocess

        from pypi_repo.metrics_store import archive_dead_worker

        multiprocess.mark_process_dead(worker.pid)
        archive_dead_worker(Path(directory), worker.pid)


def on_exit(server):
    """Master exit: remove the tmpfs metrics directory it owns (nothing there outlives the service)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from pathlib import Path

        from pypi_repo.metrics_store import remove_dir

        remove_dir(Path(directory))


def worker_exit(server, worker):
    """Worker, graceful exit: write the download counts still buffered."""
    from pypi_repo.web.metrics import on_worker_exit

    on_worker_exit(getattr(worker, "wsgi", None))
