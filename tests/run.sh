#!/usr/bin/env bash
# Set up everything the test suite needs, then run it. This is README's test command.
#   ./tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null; then echo "tests/run.sh: python3 is required" >&2; exit 1; fi
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt

# A real browser for the UI tests, systemd-analyze for the unit file, nginx for the failover
# test in front of several nodes (Debian packages).
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The client matrix (pip 21.2.3 .. newest, uv, poetry): one venv per version, in a cache
# outside the checkout that later runs reuse (docs/clients.md). A client that cannot be
# installed is reported here and makes its tests fail.
python3 tests/clients/install_clients.py || echo "tests/run.sh: some test clients are missing (see above)" >&2

exec .venv/bin/python -m pytest "$@"
