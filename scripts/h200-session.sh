#!/usr/bin/env bash
# The whole GPU part of a release, in one call on the lent H200 (device tool), writing everything under $OUT:
#   1. block distillation + block-FT of SmolLM2 at equal tokens, evaluated (the shipped adapter comes from here)
#   2. the GPU tests (flex == dense, engine on CUDA, CUDA-graph replay)
#   3. TTFT: full prefill vs cached blocks for the Llama-8B shape
# Expects the SmolLM2 GGUF staged at /tmp/stage (../shared/tools/device-stage) and the `gguf` wheel in
# /tmp/site, and the distillation pack at .gpu/pack.npz (python -m blockattn.distill.pack ...).
# DISTILL_MINUTES bounds distillation's training (compilation included); block-FT then trains the same steps.
set -u
: "${OUT:?set OUT}"
export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export BLOCKATTN_SMOLLM2_GGUF=/tmp/stage/SmolLM2-135M-Instruct.Q4_1.gguf BLOCKATTN_HOME=/tmp/bahome HF_HUB_OFFLINE=1
DISTILL_MINUTES=${DISTILL_MINUTES:-2.3}
TTFT_SECONDS=${TTFT_SECONDS:-50}
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/session.txt"; }

log "prepare model"; python3 -m blockattn models prepare >> "$OUT/session.txt" 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$OUT/session.txt" 2>&1

log "distill + block-FT + eval (train ≤ ${DISTILL_MINUTES} min)"
python3 -m blockattn.experiments.gpu_run --config configs/smollm2-h200.yaml --pack .gpu/pack.npz --out "$OUT/distill" \
    --set train.max_minutes="$DISTILL_MINUTES" --deadline-minutes "$(python3 -c "print($DISTILL_MINUTES * 2 + 1.2)")" \
    --eval-minutes 1.0 --needles-per-count 32 --ppl-rows 32 > "$OUT/distill_log.txt" 2>&1
log "distill rc=$?"
# The device tool returns only a few files per call: the adapter travels as one archive.
if [ -d "$OUT/distill/adapter" ]; then
    tar czf "$OUT/distill/adapter.tgz" -C "$OUT/distill" adapter && rm -rf "$OUT/distill/adapter"
fi

log "GPU tests"
timeout 80 python3 -m pytest -p no:cacheprovider -m gpu tests/attention/test_gpu.py tests/engine/test_gpu.py \
    > "$OUT/gpu_tests.txt" 2>&1
log "tests rc=$?"

log "TTFT (llama-8B shape, budget ${TTFT_SECONDS} s)"
python3 -m blockattn bench ttft --device cuda --models llama8b --time-budget "$TTFT_SECONDS" \
    --out "$OUT/bench_ttft_h200.json" > "$OUT/ttft_log.txt" 2>&1
log "ttft rc=$?"
