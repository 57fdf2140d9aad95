#!/usr/bin/env bash
# README command 2: install everything (same environment as the demo) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# Headless Chromium renders report.html in the e2e tests (Debian package; skipped when present).
bash scripts/ensure_chromium.sh || echo "[test] could not install chromium: the HTML render test will fail"
VENV="${STACKCERT_VENV:-.venv}"
"$VENV/bin/stackcert" model prepare demo
# The docker and ssh target tests need dockerd and sshd; stop what we started, whatever happens.
bash scripts/services.sh start
trap 'bash scripts/services.sh stop' EXIT
export STACKCERT_REQUIRE_TARGETS=1  # here a missing daemon fails the target tests instead of skipping them
"$VENV/bin/python" -m pytest "$@"
