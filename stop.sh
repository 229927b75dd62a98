#!/usr/bin/env bash
# Stop what ./start.sh started: supervisord, Gunicorn (master and workers) and the monitor.
# Harmless when nothing runs. Waits for every process to be gone before it returns.
#   PYPI_REPO_STOP_TIMEOUT=60   (seconds to wait for a graceful stop before killing)
set -euo pipefail
cd "$(dirname "$0")"
HERE="$(pwd)"

PIDFILE="$HERE/run/supervisord.pid"
CONF="$HERE/supervisor.conf"
STOP_TIMEOUT="${PYPI_REPO_STOP_TIMEOUT:-60}"

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
is_supervisord() { alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q supervisord; }

PID="$(cat "$PIDFILE" 2>/dev/null || true)"
if ! is_supervisord "$PID"; then
    rm -f "$PIDFILE" "$HERE/run/supervisor.sock"
    echo "pypi_repo is not running (no supervisord for $CONF)"
    exit 0
fi

# The process group of every program (stopasgroup): whatever survives the shutdown is killed.
GROUPS_LEFT="$(ps -o pgid= --ppid "$PID" 2>/dev/null | tr -d ' ' | sort -u | tr '\n' ' ')"

echo "Stopping pypi_repo (supervisord pid $PID)"
if [ -x "$HERE/.venv/bin/supervisorctl" ]; then
    "$HERE/.venv/bin/supervisorctl" -c "$CONF" shutdown >/dev/null 2>&1 || kill -TERM "$PID" 2>/dev/null || true
else
    kill -TERM "$PID" 2>/dev/null || true
fi

deadline=$((SECONDS + STOP_TIMEOUT))
while alive "$PID" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
if alive "$PID"; then
    echo "stop.sh: supervisord did not stop within ${STOP_TIMEOUT} s; killing it" >&2
    kill -KILL "$PID" 2>/dev/null || true
fi
for group in $GROUPS_LEFT; do
    if [ "$group" != "$PID" ] && kill -0 -- "-$group" 2>/dev/null; then
        echo "stop.sh: killing leftover processes of group $group" >&2
        kill -KILL -- "-$group" 2>/dev/null || true
    fi
done
rm -f "$PIDFILE" "$HERE/run/supervisor.sock"
echo "pypi_repo stopped"
