#!/usr/bin/env bash
# README command 2: install everything (same environment as the demo) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
VENV="${STACKCERT_VENV:-.venv}"
"$VENV/bin/stackcert" model prepare demo
exec "$VENV/bin/python" -m pytest "$@"
