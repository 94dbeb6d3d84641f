#!/usr/bin/env bash
# Issue 11 on one lent H200: the quality run of all three models CONCURRENTLY (python -m
# blockattn.experiments.quality), each bounded by its own deadline. Writes under $OUT (4 files):
#   quality_smollm2-135m-instruct.json, quality_qwen2.5-coder-0.5b-instruct.json,
#   quality_qwen2.5-coder-1.5b-instruct.json, and quality_extras.tar.gz (plots, adapter tarballs, teacher
#   answers, logs) -> `python -m blockattn.experiments.ship DIR` after unpacking the extras into DIR.
# Expects (carried / staged): .gpu/pack-smollm2.npz, .gpu/pack-qwen.npz (python -m blockattn.experiments.pack),
# the `gguf` wheel unpacked in /tmp/site, and the GGUFs: SmolLM2 at $BLOCKATTN_SMOLLM2_GGUF, the Qwen models
# at $BLOCKATTN_GGUF_QWEN2_5_CODER_0_5B_INSTRUCT / $BLOCKATTN_GGUF_QWEN2_5_CODER_1_5B_INSTRUCT (a model whose
# GGUF is absent fails its own run in a second and leaves the others alone).
# MINUTES bounds each run's wall time after its model is converted (each run converts its own model first,
# so the small models start while the 1.5B still dequantises; MINUTES_15B bounds the 1.5B's run).
set -u
: "${OUT:?set OUT}"
export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export BLOCKATTN_HOME=${BLOCKATTN_HOME:-/tmp/bahome} HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
MINUTES=${MINUTES:-12}
MINUTES_15B=${MINUTES_15B:-9}
WORK=${WORK:-/tmp/quality}
mkdir -p "$OUT/extras" "$WORK"
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/extras/session.txt"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$OUT/extras/session.txt" 2>&1

run() {  # model pack minutes extra-args...
    local model=$1 pack=$2 minutes=$3; shift 3
    python3 -m blockattn models prepare "$model" > "$OUT/extras/log_$model.txt" 2>&1
    log "$model prepared rc=$?"
    python3 -m blockattn.experiments.quality --model "$model" --pack "$pack" --out "$OUT/extras/$model" \
        --work "$WORK/$model" --deadline-minutes "$minutes" "$@" >> "$OUT/extras/log_$model.txt" 2>&1
    log "$model rc=$?"
}
log "start (runs <= $MINUTES min, the 1.5B <= $MINUTES_15B min, after conversion)"
run smollm2-135m-instruct .gpu/pack-smollm2.npz "$MINUTES" --ablations sinks,dropout,weighting,rag --eval-minutes 5 &
run qwen2.5-coder-0.5b-instruct .gpu/pack-qwen.npz "$MINUTES" --eval-minutes 5.5 &
# the 1.5B: full vs zero-shot for certain, distillation with what time is left; fewer HotpotQA questions
run qwen2.5-coder-1.5b-instruct .gpu/pack-qwen.npz "$MINUTES_15B" --methods distill --eval-minutes 5 --hotpot-limit 300 \
    --curve-hotpot-limit 50 &
wait
log "done"
for f in "$OUT"/extras/*/quality_*.json; do cp "$f" "$OUT/"; done
tar czf "$OUT/quality_extras.tar.gz" -C "$OUT" extras && rm -rf "$OUT/extras"
