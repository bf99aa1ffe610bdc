#!/usr/bin/env bash
# The GPU benchmark, in one go (under 5 minutes on one GPU):
#   1. `polysemy bench` on the device: every method at the issue's shapes plus a large one, batch 4096,
#      against the encoder-product limit and sparsify's TopK (when installed), alternating trials,
#      with 16 stacked models against one after another;
#   2. the same bench with the sparse decode forced (the GPU's "auto" keeps gba/ba/jumprelu/batchtopk dense,
#      since choosing by L0 would read a count back from the device every step);
#   3. `polysemy train` of gba and topk in fp32, tf32 and bf16 (steps/s and recovery in the JSON).
# Results: benchmarks/results/gpu-<date>/ (bench*.json, bench*.csv, train-*.json, log.txt).
#
#   benchmarks/gpu.sh            # on a CUDA machine
#   benchmarks/gpu.sh --tiny     # CPU, tiny shapes, seconds: checks that the script runs (also TINY=1)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
TINY=${TINY:-0}
[[ "${1:-}" == "--tiny" ]] && TINY=1
STAMP=$(date +%Y%m%d-%H%M%S)
if [[ "$TINY" == 1 ]]; then
  DEVICE=cpu; SHAPES=16x64; BATCH=64; METHODS=gba,topk; REPEATS=2; STACKED=4; STEPS=20; N=64; D=16
  OUT=${OUT:-runs/gpu-tiny-$STAMP}; EXTRA=(--threads 1)
else
  DEVICE=${DEVICE:-cuda}; SHAPES=128x1024,768x4096,2048x16384; BATCH=4096
  METHODS=gba,ba,topk,batchtopk,relu-l1,jumprelu; REPEATS=5; STACKED=16; STEPS=2000; N=512; D=128
  OUT=${OUT:-benchmarks/results/gpu-$STAMP}; EXTRA=()
fi
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/log.txt" >&2; }
log "device $DEVICE, shapes $SHAPES, batch $BATCH -> $OUT"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee -a "$OUT/log.txt"

log "1/3 bench (auto decode, stacked $STACKED)"
$PY -m polysemy.cli bench --json --device "$DEVICE" --shapes "$SHAPES" --batch "$BATCH" --methods "$METHODS" \
  --repeats "$REPEATS" --stacked-models "$STACKED" --out "$OUT/auto" "${EXTRA[@]}" > "$OUT/bench-auto.json"
log "2/3 bench (sparse decode forced)"
$PY -m polysemy.cli bench --json --device "$DEVICE" --shapes "$SHAPES" --batch "$BATCH" --methods "$METHODS" \
  --repeats "$REPEATS" --decode sparse --out "$OUT/sparse" "${EXTRA[@]}" > "$OUT/bench-sparse.json"

log "3/3 train gba and topk in fp32, tf32, bf16 ($STEPS steps, n=$N, d=$D)"
for method in gba topk; do
  for precision in fp32 tf32 bf16; do
    knob=(); [[ $method == topk ]] && knob=(--k 5)
    $PY -m polysemy.cli train --method "$method" --n "$N" --d "$D" --s 5 --steps "$STEPS" --batch-size "$BATCH" \
      --device "$DEVICE" --precision "$precision" --quiet --json "${knob[@]}" > "$OUT/train-$method-$precision.json"
  done
done
$PY - "$OUT" <<'PYEOF' | tee -a "$OUT/log.txt"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for name in ("bench-auto", "bench-sparse"):
    r = json.loads((out / f"{name}.json").read_text())
    print(name, "decode", r["decode_mode"], "goals", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r["goals"].items()})
    for row in r["shapes"]:
        print(f"  {row['d']:>5}x{row['width']:<6} {row['method']:<10} {row['samples_per_second']:>12.0f} samples/s "
              f"{row['limit_fraction']:.3f} of limit  vs sparsify {row['vs_sparsify']}  path {row['path']}")
    for s in r["stacked"]:
        print(f"  stacked {s['models']} x {s['method']}: speed-up {s['speedup']:.2f}x")
for f in sorted(out.glob("train-*.json")):
    t = json.loads(f.read_text())
    print(f.stem, f"steps/s {t['steps'] / t['seconds']:.1f}", "FRR(0.9)", t["frr"]["0.9"], "L0", round(t["l0"], 2))
PYEOF
log "done"
