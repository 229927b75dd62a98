#!/usr/bin/env bash
# Stop every process of this checkout: supervisord, Gunicorn (master and workers) and the
# monitor, also when supervisord was killed and left them as orphans. Processes are found by
# the pid files and by command lines naming this checkout's programs (pypi_repo/procs.py),
# never by a broad name. Harmless when nothing runs. Waits until every process is gone.
#   PYPI_REPO_STOP_TIMEOUT=60   (seconds to wait for a graceful stop before killing)
set -euo pipefail
cd "$(dirname "$0")"
HERE="$(pwd)"

STOP_TIMEOUT="${PYPI_REPO_STOP_TIMEOUT:-60}"
PY="$HERE/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)" || { echo "stop.sh: no python3 found" >&2; exit 1; }

echo "Stopping pypi_repo ($HERE)"
FOUND="$("$PY" -m pypi_repo.procs stop "$HERE" --timeout "$STOP_TIMEOUT")"
rm -f "$HERE/run/supervisord.pid" "$HERE/run/supervisor.sock"
if [ "$FOUND" = 0 ]; then
    echo "pypi_repo is not running (no process of $HERE)"
else
    echo "pypi_repo stopped ($FOUND processes)"
fi
