#!/usr/bin/env bash
# One device call of a `stackcert run` on the GPU host, after the carrying recipe's staging
# (/work/shared/gpu-vllm: stage_a.sh, stage_w.sh 1..4 with the checkpoint converted):
#   bash .gpu/wt/benchmarks/gpu/cert_call.sh start  NAME [cert_run.py options, e.g. --exclude mul]
#   bash .gpu/wt/benchmarks/gpu/cert_call.sh resume NAME
# carry: .gpu/tools, .gpu/wt (this checkout's files), .gpu/sc (stackcert's wheel, httptools; opt/:
# matplotlib and its needs, installed only where the host lacks them), and .gpu/b the first time
# (vLLM's and FlagGems' wheels into $SITE, kept while the host stays warm; its model.tar.xz holds
# the demo tokenizer: with it, the first call converts the staged GGUF, ~60 s).
# The run is stopped cleanly (SIGTERM) CALL_BUDGET_S seconds after this script began (default 535),
# so that the next call, within 30 s, continues it: `cert_call.sh resume NAME`.
# Not needed on a host with a registry: there, `pip install -e ".[gpu]"` and `stackcert run`.
set -o pipefail
source .gpu/tools/env.sh
cd "$GV_ROOT"
t0=$(date +%s)
MODE="${1:?usage: cert_call.sh start|resume NAME [options]}"; NAME="${2:?NAME}"; shift 2
[ -d "$V/vllm" ] || { echo "FATAL: stage_a.sh did not run on this machine"; exit 3; }
if [ ! -f "$REAL_MODEL/model.safetensors" ] && [ -f .gpu/b/model.tar.xz ]; then
  # the four GGUF parts were staged (stage_w.sh N, CONVERT=0 for N=4, gguf installed in $GGUF_SITE):
  # convert here, with the demo tokenizer from .gpu/b (the host's transformers 5.17 makes a
  # character-level one from this GGUF; convert_gguf.py checks the saved one either way)
  rm -rf "$(dirname "$MODEL")" && mkdir -p "$(dirname "$MODEL")"
  python3 -c "import tarfile,sys; tarfile.open(sys.argv[1],'r:xz').extractall(sys.argv[2])" \
    .gpu/b/model.tar.xz "$(dirname "$MODEL")"
  TOK_SOURCE="${TOK_SOURCE:-fallback}" bash .gpu/tools/convert_real.sh || exit 3
  python3 -c "
import sys; from transformers import AutoTokenizer
t = AutoTokenizer.from_pretrained(sys.argv[1]); s = 'Hello world, the capital of France is Paris.'
ids = t(s).input_ids; toks = t.convert_ids_to_tokens(ids)
print(f'tokenizer check: {len(s)} chars -> {len(ids)} ids {ids} {toks}')
sys.exit(0 if ids[0] == 2 and len(ids) < len(s) // 2 and max(len(x) for x in toks) > 3 else 4)" "$REAL_MODEL" || exit 3
fi
[ -f "$REAL_MODEL/model.safetensors" ] || { echo "FATAL: no converted checkpoint in $REAL_MODEL"; exit 3; }
pipq() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$@" 2>&1 | grep -v "Target directory" | tail -3; }
if [ -d .gpu/b/whl ]; then rm -rf "$SITE"; pipq .gpu/b/whl/*.whl; fi
if [ -d .gpu/sc ]; then
  pipq .gpu/sc/*.whl   # stackcert (its vllm.general_plugins entry point) + httptools
  # report plots need matplotlib: install only what the host image lacks
  need=$(python3 - .gpu/sc/opt <<'EOF'
import importlib.util, pathlib, sys
mods = {"matplotlib": "matplotlib", "contourpy": "contourpy", "cycler": "cycler", "fonttools": "fontTools",
        "kiwisolver": "kiwisolver", "pyparsing": "pyparsing", "python_dateutil": "dateutil", "six": "six"}
for whl in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    mod = mods.get(whl.name.split("-")[0])
    if mod and importlib.util.find_spec(mod) is None:
        print(whl)
EOF
)
  echo "host lacks: ${need:-nothing}"; [ -n "$need" ] && pipq $need
fi
python3 -c "from importlib.metadata import entry_points as e, version as v; \
print('plugins:', [p.name for p in e(group='vllm.general_plugins')], 'vllm', v('vllm'), 'flag_gems', v('flag_gems'), \
'stackcert', v('stackcert'), 'matplotlib', v('matplotlib'))" || exit 3
echo "install: $(( $(date +%s) - t0 )) s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export STACKCERT_GPU_MODEL="$REAL_MODEL" STACKCERT_HOME=/tmp/stackcert_home
export TRITON_CACHE_DIR=/tmp/triton_cache   # kept between the calls while the host stays warm
python3 .gpu/wt/benchmarks/gpu/cert_run.py "$MODE" --name "$NAME" --stop-at $(( t0 + ${CALL_BUDGET_S:-535} )) "$@" \
  2>&1 | tee "$OUT/$NAME-$MODE.driver.log"
rc=${PIPESTATUS[0]}
echo "cert_call total: $(( $(date +%s) - t0 )) s rc=$rc"
exit $rc
