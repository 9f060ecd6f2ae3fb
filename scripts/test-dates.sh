#!/usr/bin/env bash
# The date-sensitive tests again with the machine's clock and time zone faked (libfaketime):
# a test whose result depends on today's date, the machine's zone or the time of day fails here.
# Usage: scripts/test-dates.sh [PYTEST]   (default .venv/bin/pytest)
set -euo pipefail
cd "$(dirname "$0")/.."
pytest=${1:-.venv/bin/pytest}
command -v faketime >/dev/null || { echo "faketime missing: run scripts/test-deps.sh" >&2; exit 1; }

# Everything whose answer depends on "now" (T-1, days after today, the future limit, the demo)
# or on days and zones, over DuckDB (the servers of the scale-out runs are not put under a fake
# clock; the end-to-end tests start processes of their own and stay in the main run).
tests=(
  tests/test_cli.py tests/test_apps.py tests/test_environment.py tests/test_dst_days.py
  tests/test_events.py tests/test_far_off_times.py tests/test_settings.py
)
# "instant in UTC" and the machine zone: New York's spring and autumn DST changes, a new year
# reached first at UTC+14, and the last seconds of a year in UTC-10.
runs=(
  "2026-03-08 06:59:50 UTC|America/New_York"
  "2026-11-01 05:30:00 UTC|America/New_York"
  "2026-12-31 10:00:05 UTC|Pacific/Kiritimati"
  "2027-01-01 09:59:55 UTC|Pacific/Honolulu"
)
for run in "${runs[@]}"; do
  when=${run%|*}
  zone=${run#*|}
  echo "== faketime '$when', TZ=$zone"
  TZ=$zone faketime "$when" "$pytest" -q -p no:cacheprovider -m "not slow" -k "not scale-out" "${tests[@]}"
done
