#!/usr/bin/env bash
# System packages the test suite needs beyond Python (none yet; browsers and servers go here).
set -euo pipefail
exit 0
