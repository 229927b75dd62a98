#!/usr/bin/env bash
# Start pypi_repo under supervisord (Gunicorn + the monitor), wait until /health/live answers,
# then print the URLs. Safe to run again: it reports what already runs. Leftovers of a killed
# supervisord (an orphaned Gunicorn still holding the port, an orphaned monitor) are replaced.
#   ./start.sh                      (settings: PYPI_REPO_* variables or PYPI_REPO_CONFIG=file.toml)
#   ./start.sh restart              (graceful: HUP to Gunicorn if it answers, else kill + start)
#   PYPI_REPO_BIN_DIR=DIR           (where to link `supervisorctl` when none is on PATH)
#   PYTHON=python3.12 ./start.sh    (the interpreter that creates .venv the first time)
#   PYPI_REPO_START_TIMEOUT=60      (seconds to wait for /health/live)
set -euo pipefail
cd "$(dirname "$0")"
HERE="$(pwd)"

die() { echo "start.sh: $*" >&2; exit 1; }

PYTHON="${PYTHON:-python3}"
VENV="$HERE/.venv"
PY="$VENV/bin/python"
CONF="$HERE/supervisor.conf"
CTL=("$VENV/bin/supervisorctl" -c "$CONF")
START_TIMEOUT="${PYPI_REPO_START_TIMEOUT:-60}"
ACTION="${1:-start}"
case "$ACTION" in start|restart) ;; *) die "usage: ./start.sh [restart]" ;; esac

# 1. The virtual environment, and requirements.txt installed only when it changed.
if [ ! -x "$PY" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found: install Python 3.11 or newer (or set PYTHON=/path/to/python3)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$("$PYTHON" -V 2>&1) is too old: Python 3.11 or newer is required"
    echo "Creating the virtual environment in .venv"
    "$PYTHON" -m venv "$VENV" || die "could not create .venv (on Debian/Ubuntu: apt install python3-venv)"
fi
STAMP="$VENV/.requirements.sha256"
WANT="$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' requirements.txt)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "Installing requirements.txt into .venv"
    "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt || die "installing requirements.txt failed (see above)"
    echo "$WANT" > "$STAMP"
fi

# 2. Settings as the service will see them (environment and PYPI_REPO_CONFIG included).
read -r HOST PORT PUBLIC_URL < <("$PY" - <<'EOF' || echo "! ! !"
import sys
from pypi_repo.config import load_settings
from pypi_repo.errors import ConfigError
try:
    s = load_settings()
except ConfigError as exc:
    sys.exit(f"start.sh: {exc}")
print(s.host, s.port, s.public_url or "-")
EOF
)
[ "$HOST" != "!" ] || die "the settings are invalid (see above)"
HEALTH_URL="$("$PY" -c 'from pypi_repo.config import load_settings; from pypi_repo.probe import default_health_url; print(default_health_url(load_settings(), "/health"))')"
mkdir -p run logs
touch logs/error.log   # exists from the start (README, "Logs"), even while empty

# The seed's `supervisorctl -c supervisor.conf ...`: link the venv's supervisorctl where the
# shell finds it, unless one is already there (never replaced).
link_supervisorctl() {
    command -v supervisorctl >/dev/null 2>&1 && return 0
    local dir="${PYPI_REPO_BIN_DIR:-}"
    if [ -z "$dir" ]; then
        if [ -w /usr/local/bin ]; then dir=/usr/local/bin; else dir="$HOME/.local/bin"; fi
    fi
    if mkdir -p "$dir" 2>/dev/null && ln -sf "$VENV/bin/supervisorctl" "$dir/supervisorctl" 2>/dev/null; then
        echo "Linked $dir/supervisorctl -> .venv/bin/supervisorctl"
    else
        echo "note: could not link supervisorctl into $dir; use .venv/bin/supervisorctl"
    fi
    case ":$PATH:" in *":$dir:"*) ;; *) echo "note: $dir is not on PATH; use $dir/supervisorctl or .venv/bin/supervisorctl" ;; esac
}
link_supervisorctl

show_logs() {
    for f in logs/supervisor.log logs/gunicorn.out.log logs/error.log; do
        [ -s "$f" ] && { echo "--- last lines of $f ---" >&2; tail -n 20 "$f" >&2; }
    done
    return 0
}

# 3. supervisord: start it, or say that it already runs.
if "${CTL[@]}" pid >/dev/null 2>&1; then
    echo "supervisord already runs (pid $("${CTL[@]}" pid)); making sure its programs are started"
    "${CTL[@]}" start pypi_repo monitor >/dev/null 2>&1 || true
    if [ "$ACTION" = restart ]; then
        "$PY" -m pypi_repo.supervision restart || die "restart failed (see above)"
    fi
    STARTED_HERE=0
else
    LEFT="$("$PY" -m pypi_repo.procs list "$HERE")"
    if [ -n "$LEFT" ]; then
        echo "Replacing $(echo "$LEFT" | wc -l) leftover process(es) of this checkout (supervisord is gone):"
        echo "$LEFT" | sed 's/^/  /'
        "$PY" -m pypi_repo.procs stop "$HERE" --timeout 10 >/dev/null
    fi
    rm -f run/supervisor.sock run/supervisord.pid
    if ! "$PY" -c 'import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))' "$HOST" "$PORT" 2>/dev/null; then
        die "port $PORT on $HOST is already in use by another process (find it: ss -ltnp 'sport = :$PORT'); stop it or set PYPI_REPO_PORT"
    fi
    "$VENV/bin/supervisord" -c "$CONF" || { show_logs; die "supervisord did not start"; }
    STARTED_HERE=1
fi

# 4. Wait until the service is alive (/health/live), then report readiness (/health): a low
# disk or an unwritable data dir makes it "degraded", which is reported but is no reason to
# refuse or stop a service that serves every read (issue 9: liveness is not readiness).
LIVE_URL="$HEALTH_URL/live"
if ! "$PY" - "$LIVE_URL" "$START_TIMEOUT" <<'EOF'
import sys, time
from pypi_repo.probe import http_check
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    result = http_check(url, 2.0)
    if result.ok:
        sys.exit(0)
    if time.monotonic() > deadline:
        sys.exit(f"start.sh: {url} did not answer 200 within {sys.argv[2]} s (last: {result.detail})")
    time.sleep(0.3)
EOF
then
    "${CTL[@]}" status >&2 || true
    show_logs
    if [ "$STARTED_HERE" = 1 ]; then
        "$HERE/stop.sh" >/dev/null 2>&1 || true
        echo "start.sh: stopped the supervisord it had started" >&2
    fi
    exit 1
fi
NOT_READY="$("$PY" - "$HEALTH_URL" <<'EOF'
import sys
from pypi_repo.probe import http_check
result = http_check(sys.argv[1], 5.0)
print("" if result.ok else result.detail)
EOF
)"
if [ -n "$NOT_READY" ]; then
    echo "start.sh: warning: pypi_repo runs and serves reads, but is degraded: $NOT_READY" >&2
    echo "start.sh: (no reason to restart it; see $HEALTH_URL and docs/operations.md, 'Liveness and readiness')" >&2
fi

# 5. How to use it: commands that work when pasted (pip refuses plain HTTP to a host other
# than localhost unless it is a --trusted-host).
if [ "$HOST" = "0.0.0.0" ] || [ "$HOST" = "::" ]; then SHOW_HOST="$(hostname -f 2>/dev/null || hostname)"; else SHOW_HOST="$HOST"; fi
case "$SHOW_HOST" in *:*) SHOW_HOST="[$SHOW_HOST]" ;; esac
SCHEME="${HEALTH_URL%%://*}"
BASE="$SCHEME://$SHOW_HOST:$PORT"
[ "$PUBLIC_URL" != "-" ] && BASE="${PUBLIC_URL%/}"
INDEX_HOST="$(echo "$BASE" | sed -E 's#^[a-z]+://(\[[^]]*\]|[^/:]+).*#\1#')"
TRUST=""
case "$BASE" in
    http://localhost[:/]*|http://127.*|"http://[::1]"*|https://*) ;;
    http://*) TRUST=" --trusted-host $INDEX_HOST" ;;
esac
if command -v supervisorctl >/dev/null 2>&1; then SCTL="supervisorctl"; else SCTL=".venv/bin/supervisorctl"; fi
cat <<EOF
pypi_repo is running.
  Index (PEP 503/691):  $BASE/simple/
  Web UI:               $BASE/
  Health:               $BASE/health      (local: $HEALTH_URL; liveness: $HEALTH_URL/live)

Install from it:
  pip install --index-url $BASE/simple/$TRUST payo-cli
  uv pip install --index-url $BASE/simple/ payo-cli
  (or in pip.conf: [global] index-url = $BASE/simple/${TRUST:+ and trusted-host = $INDEX_HOST})

Operate it:
  $SCTL -c supervisor.conf status pypi_repo
  ./start.sh restart          (graceful reload; kill + start only if Gunicorn does not answer)
  tail -f logs/monitor.log logs/access.log logs/error.log
  ./stop.sh
EOF
