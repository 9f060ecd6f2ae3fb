#!/usr/bin/env bash
# What `make bench` needs beyond the dev install, on a fresh Debian 12 machine; idempotent.
# - PostgreSQL 15 server binaries (Debian's package; the bench runs its own temp clusters)
# - clickhouse-server (Debian's 18.16; `--store scale-out` runs its own 2-shard cluster)
# - numpy (the event generator) and psycopg (the PostgreSQL client) in .venv
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
if ! { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && dpkg -s postgresql >/dev/null 2>&1; }; then
    missing+=(postgresql)
fi
command -v clickhouse-server >/dev/null 2>&1 || missing+=(clickhouse-server)
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "bench-deps.sh: installing ${missing[*]}" >&2
    $SUDO apt-get update
    # policy-rc.d keeps apt from starting the packaged services: the bench starts its own
    # servers on free ports (Debian's own PostgreSQL cluster and ClickHouse stay stopped).
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod +x "$policy"
        created_policy=1
    fi
    cleanup() { if [ "$created_policy" -eq 1 ]; then $SUDO rm -f "$policy"; fi; }
    trap cleanup EXIT
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
if ! command -v runuser >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "runuser (util-linux) is required to run PostgreSQL as the postgres user" >&2
    exit 1
fi

PY=.venv/bin/python
if ! "$PY" -c "import numpy, psycopg" >/dev/null 2>&1; then
    "$PY" -m pip install -q "numpy>=1.26" "psycopg[binary]>=3.1"
fi
