#!/usr/bin/env bash
# What `make bench` needs beyond the dev install, on a fresh Debian 12 machine; idempotent.
# - PostgreSQL 15 server binaries (Debian's package; the bench runs its own temp cluster)
# - numpy (the event generator) and psycopg (the PostgreSQL client) in .venv
set -euo pipefail
cd "$(dirname "$0")/.."

have_pg() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && dpkg -s postgresql >/dev/null 2>&1
}
if ! have_pg; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y postgresql
    # Debian starts a cluster of its own on install; the bench never uses it.
fi
if ! command -v runuser >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "runuser (util-linux) is required to run PostgreSQL as the postgres user" >&2
    exit 1
fi

PY=.venv/bin/python
if ! "$PY" -c "import numpy, psycopg" >/dev/null 2>&1; then
    "$PY" -m pip install -q "numpy>=1.26" "psycopg[binary]>=3.1"
fi
