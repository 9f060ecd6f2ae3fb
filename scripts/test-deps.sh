#!/usr/bin/env bash
# System packages the test suite needs beyond Python: the servers the scale-out tests start
# (PostgreSQL 15, ClickHouse), libfaketime for the date tests and Chromium for the dashboard's
# browser tests. Quick when already installed.
set -euo pipefail

missing=()
# package -> a file or command that proves it is installed
command -v clickhouse-server >/dev/null 2>&1 || missing+=(clickhouse-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
# Debian's Chromium for the dashboard's browser tests (Playwright cannot fetch its own here)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps.sh: missing ${missing[*]}; run this script as root to install them" >&2
    exit 1
fi

echo "test-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps the install small; policy-rc.d keeps apt from starting the
# packaged services (the tests start their own servers on free ports).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
cleanup() { if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
