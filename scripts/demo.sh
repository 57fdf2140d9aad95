#!/usr/bin/env bash
# README command 1: install everything, prepare the demo model, run the whole demo certification.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
VENV="${STACKCERT_VENV:-.venv}"
"$VENV/bin/stackcert" model prepare demo
exec "$VENV/bin/stackcert" run --preset demo "$@"
