#!/usr/bin/env bash
# GPU host, after the carrying recipe's staging (/work/shared/gpu-vllm: stage_a.sh, stage_w.sh 1..4):
#   bash .gpu/wt/benchmarks/gpu/run_vllm_gems.sh TEST_K_EXPRESSION
# carry: .gpu/tools, .gpu/wt (this checkout, no .venv/.git), .gpu/sc (stackcert + httptools wheels),
# and .gpu/b the first time (vLLM's and FlagGems' wheels, installed into $SITE, kept while warm).
# Runs tests/gpu/test_vllm_gems.py (each test = one whole `stackcert run`); results under $OUT.
# Not needed on a host with a registry: there, `pip install -e ".[gpu]"` installs what this path needs.
set -o pipefail
source .gpu/tools/env.sh
cd "$GV_ROOT"
t0=$(date +%s)
[ -d "$V/vllm" ] || { echo "FATAL: stage_a.sh did not run on this machine"; exit 3; }
[ -f "$REAL_MODEL/model.safetensors" ] || { echo "FATAL: no converted checkpoint in $REAL_MODEL"; exit 3; }
if [ -d .gpu/b/whl ]; then
  rm -rf "$SITE"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .gpu/b/whl/*.whl 2>&1 | grep -v "Target directory" | tail -3
fi
# stackcert itself, installed (its vllm.general_plugins entry point must be visible to vLLM)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" .gpu/sc/*.whl 2>&1 | grep -v "Target directory" | tail -3
python3 -c "import flag_gems, stackcert, vllm; from importlib.metadata import entry_points as e; \
print('plugins:', [p.name for p in e(group='vllm.general_plugins')], 'vllm', vllm.__version__, \
'flag_gems', flag_gems.__version__)" || exit 3
echo "install: $(( $(date +%s) - t0 )) s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export STACKCERT_GPU_MODEL="$REAL_MODEL" STACKCERT_GPU_OUT="$OUT" STACKCERT_HOME=/tmp/stackcert_home
export TRITON_CACHE_DIR=/tmp/triton_cache   # kept between the calls while the host stays warm
cd .gpu/wt
python3 -m pytest -p no:cacheprovider -v -rA -s tests/gpu/test_vllm_gems.py -k "${1:-}" 2>&1 | tee "$OUT/pytest.log"
rc=${PIPESTATUS[0]}
echo "run_vllm_gems total: $(( $(date +%s) - t0 )) s rc=$rc"
exit $rc
