#!/usr/bin/env bash
# Mutation testing (mutmut 3) of the modules that decide numbers: what `make mutate` runs.
#
#   scripts/mutate.sh                            every target below (slow: see docs/testing.md)
#   scripts/mutate.sh src/tally/ratelimit.py     one file, a directory (src/tally/engine) or a
#                                                mutmut name glob ('tally.timeutil.x_day_end*')
#   scripts/mutate.sh --report [TARGET ...]      only print the score of the last runs
#
# mutmut copies src/ and tests/ into mutants/, runs the suite once to learn which tests reach
# each function, then runs each mutant against only those tests. The [tool.mutmut] section of
# pyproject.toml holds the rest (files that may be mutated, `-m "not slow"`). Ends with the
# score (killed / total) per module and every mutant that was not killed.
# MUTATE_JOBS (default 2) sets mutmut's --max-children; PYTEST_ADDOPTS reaches every pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
JOBS=${MUTATE_JOBS:-2}

# The facades' paging: only these functions of api/lingma.py and api/apps.py are mutated (the
# rest of those files is routing and OpenAPI text). `?` stands for mutmut's class separator.
LINGMA_PAGING=('tally.api.lingma.x?LingmaAPI?_query*' 'tally.api.lingma.x__integer*'
  'tally.api.lingma.x_paging*' 'tally.api.lingma.x_page_headers*')
APPS_PAGING=('tally.api.apps.x?AppsAPI?_query*' 'tally.api.apps.x__decode*'
  'tally.api.apps.x__answer*')
DEFAULT_TARGETS=(src/tally/timeutil.py src/tally/engine src/tally/api/lingma.py
  src/tally/api/apps.py src/tally/ratelimit.py)

globs_for() {  # a path or a glob -> the mutmut name globs it stands for, one a line
  case "$1" in
    src/tally/api/lingma.py) printf '%s\n' "${LINGMA_PAGING[@]}" ;;
    src/tally/api/apps.py) printf '%s\n' "${APPS_PAGING[@]}" ;;
    src/*)
      local module=${1#src/}
      module=${module%/}
      module=${module%.py}
      printf '%s.*\n' "${module//\//.}"
      ;;
    *) printf '%s\n' "$1" ;;
  esac
}

report_only=false
if [ "${1:-}" = --report ]; then
  report_only=true
  shift
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${DEFAULT_TARGETS[@]}")
globs=()
for target in "${targets[@]}"; do
  while IFS= read -r glob; do globs+=("$glob"); done < <(globs_for "$target")
done

if ! $report_only; then
  echo "mutmut run --max-children $JOBS ${globs[*]}"
  "$BIN/mutmut" run --max-children "$JOBS" "${globs[@]}"
fi

# The score of what was asked, from mutmut's per-file results (mutants/**/*.py.meta).
"$BIN/python" - "${globs[@]}" <<'EOF'
import fnmatch
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from mutmut.stats import status_by_exit_code

globs = sys.argv[1:]
by_module: dict[str, Counter[str]] = defaultdict(Counter)
not_killed: list[tuple[str, str]] = []
for meta in sorted(Path("mutants").rglob("*.py.meta")):
    for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
        if not any(fnmatch.fnmatchcase(key, glob) for glob in globs):
            continue
        status = status_by_exit_code[code]
        module = re.split(r"\.x[_\u01c1]", key, maxsplit=1)[0]
        by_module[module][status] += 1
        if status not in ("killed", "timeout"):
            not_killed.append((status, key))

print("\nmodule                               killed / total  survived  no tests  unchecked  other")
all_killed = all_total = 0
for module, counts in sorted(by_module.items()):
    killed = counts["killed"] + counts["timeout"]  # a mutant that hangs the tests is caught
    total = sum(counts.values())
    unchecked = counts["not checked"]
    other = total - killed - counts["survived"] - counts["no tests"] - unchecked
    all_killed, all_total = all_killed + killed, all_total + total
    print(
        f"{module:36} {killed:6} / {total:<5} {counts['survived']:8} {counts['no tests']:9}"
        f" {unchecked:10} {other:6}"
    )
if all_total:
    print(f"{'all':36} {all_killed:6} / {all_total:<5} ({100 * all_killed / all_total:.1f}%)")
if not_killed:
    print("\nnot killed (see one with: .venv/bin/mutmut show NAME):")
    for status, key in sorted(not_killed, key=lambda item: item[1]):
        print(f"  {status:12} {key}")
EOF
