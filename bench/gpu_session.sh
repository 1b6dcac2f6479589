#!/bin/bash
# One GPU measurement session for BENCHMARKS.md's GPU section, in one call of about six minutes on an H100:
# PNG save cost on the machine's CPU, then bench/gpu_sdxl.py (eager, compiled, restart) with the restart's pipeline
# load profiled. Results (JSON, logs, profile) go to $OUT (default ./gpu_out).
#   WHEELS=dir  install the project's wheels (diffusers, pydantic and its parts, lark, isal) from dir into
#               /tmp/site first, for a machine whose Python lacks them; with bytecode, as a user's install has
#   SECTIONS=…  gpu_sdxl.py's sections (default eager,compiled,warm_restart); LIMIT=s  its time limit (default 440)
#   DRY=1       the same on the CPU with the small model and the aot_eager backend (a check of this script)
export PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
PY=${PY:-python3}; case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")";; esac
cd "$(dirname "$0")/.." || exit 1
if [ -n "$WHEELS" ]; then
  $PY -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
if [ -n "$DRY" ]; then EXTRA="--small --compile-backend aot_eager"; else EXTRA=""; fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__,
'transformers', transformers.__version__)"
$PY -c "from engine.precompiled import precompile_supported as p; print('saved graphs:', p('inductor'))"
(cd bench && timeout -k 5 60 $PY save_cost.py --repeat 9 2>&1 | tail -n 5 | tee "$OUT/save.txt")
timeout -k 5 "${LIMIT:-440}" $PY bench/gpu_sdxl.py $EXTRA --sections "${SECTIONS:-eager,compiled,warm_restart}" \
  --repeat 4 --profile-load "$OUT/restart_load.txt" --out "$OUT/gpu_sdxl.json" > "$OUT/gpu_sdxl.log" 2>&1
echo "gpu_sdxl.py exit status $?"
grep "\[warm_restart\]" "$OUT/gpu_sdxl.log" | grep -v "engine.outputs" | cut -c1-200
sed -n '/^<!--/,$p' "$OUT/gpu_sdxl.log" | cut -c1-1500
head -n 40 "$OUT/restart_load.txt" 2>/dev/null | cut -c1-200
