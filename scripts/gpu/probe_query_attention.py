"""Where the captured query step's attention time goes (issue 10, TTFT at long contexts): one layer of the
Llama-8B shape (32 query heads, 8 KV heads, head dim 128, bf16), a 64-token query block over a request buffer
of `bucket_capacity(context + 64)` slots, each way the engine could attend, timed with CUDA events:

    matmul   the static step's two matmuls with fp32 scores over the whole buffer (staticops.masked_attention)
    sdpa     masked SDPA over the whole buffer (what the step used past 128 MiB of scores at b251358)
    flash    flash's variable-length kernel over the first `end` slots, in place, the context as one sequence
             (flashbuffer.buffer_attention with one chunk)
    flash_split  the same with the context in capacity // 2048 chunks (flashbuffer.DEFAULT_SPLIT), merged by log-sum-exp;
             also replayed at 4/8/16/32/64 chunks (`flash_split<S>_graph_ms`)
    flash_packed the chunked path with each KV head's 4 query heads folded into rows of the context call
             (flashbuffer.Split.pack_gqa), at the same chunk counts (`flash_packed<S>_graph_ms`); `best_flash` names
             the fastest of both sweeps
    exact    SDPA with the lower-right causal bias over exactly the request's keys (the eager forward's call;
             its slice is a new shape per request, so it cannot be captured)

Each is timed eagerly (`<way>_ms`: 20 calls back to back, so a way of many small kernels is charged the host's
launch time) and, for the ways the captured step can take, replayed from a CUDA graph (`<way>_graph_ms`: what
the step pays; `engine.querypath` times them so at engine start).

    python scripts/gpu/probe_query_attention.py --out $OUT/probe_query_attention.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.nn.attention.bias import causal_lower_right

from blockattn.engine import flashbuffer, staticops
from blockattn.engine.querypath import replay_ms as graph_ms
from blockattn.engine.kvbuffer import bucket_capacity


def timed(fn, repeat: int = 20) -> float:
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeat):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeat


def _chunked(query, key, value, end, chunks: int, pack: bool = False):
    """buffer_attention with the context cut into `chunks` parts of capacity // chunks slots, each KV head's
    query heads folded into rows of the context call when `pack` (flashbuffer.Split)."""
    split = flashbuffer.Split(max(1, key.shape[2] // chunks), pack_gqa=pack)
    return flashbuffer.buffer_attention(query, key, value, end, None, split)


SWEEP_CHUNKS = (4, 8, 16, 32, 64)  # flash_split<S>_graph_ms: where the chunk count should sit at each length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--contexts", default="2048,8192,16384,32768")
    args = parser.parse_args()
    device = torch.device("cuda")
    staticops.probe_fp32_scores(device)
    flash_ok = flashbuffer.probe_flash_varlen(device)
    heads, kv_heads, dim, t = 32, 8, 128, 64
    groups = heads // kv_heads
    rows = []
    for context in [int(c) for c in args.contexts.split(",")]:
        end = context + t
        capacity = bucket_capacity(end)
        key = torch.randn(1, kv_heads, capacity, dim, device=device, dtype=torch.bfloat16)
        value = torch.randn_like(key)
        query = torch.randn(1, heads, t, dim, device=device, dtype=torch.bfloat16)
        visible = torch.arange(capacity, device=device).view(1, -1) <= torch.arange(context, end, device=device).view(-1, 1)
        mask = visible.repeat(groups, 1).view(1, 1, groups * t, -1)
        grouped = query.reshape(1, kv_heads, groups * t, dim)
        end_t = torch.tensor([end], device=device)
        bias = causal_lower_right(t, end)
        ways = {
            "matmul": lambda: staticops.masked_attention(grouped, key, value, mask, None),
            "sdpa": lambda: torch.nn.functional.scaled_dot_product_attention(grouped, key, value, attn_mask=mask),
            "exact": lambda: torch.nn.functional.scaled_dot_product_attention(
                query, key[:, :, :end], value[:, :, :end], attn_mask=bias, enable_gqa=True),
        }
        if flash_ok:
            ways["flash"] = lambda: _chunked(query, key, value, end_t, 1)
            ways["flash_split"] = lambda: flashbuffer.buffer_attention(query, key, value, end_t, None)
        row = {"context": context, "capacity": capacity}
        for name, fn in ways.items():
            try:
                row[f"{name}_ms"] = round(timed(fn), 4)
            except RuntimeError as exc:  # recorded: the other ways still run
                row[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:200]
        for name in ("matmul", "flash", "flash_split"):
            if name in ways:
                try:
                    row[f"{name}_graph_ms"] = round(graph_ms(ways[name], device), 4)
                except RuntimeError as exc:
                    row[f"{name}_graph_error"] = f"{type(exc).__name__}: {exc}"[:200]
        if flash_ok:
            for way, pack in (("flash_split", False), ("flash_packed", True)):
                for chunks in SWEEP_CHUNKS:
                    try:
                        row[f"{way}{chunks}_graph_ms"] = round(graph_ms(
                            lambda c=chunks, p=pack: _chunked(query, key, value, end_t, c, p), device), 4)
                    except RuntimeError as exc:
                        row[f"{way}{chunks}_graph_error"] = f"{type(exc).__name__}: {exc}"[:200]
            swept = {f"{w}{c}": row[f"{w}{c}_graph_ms"] for w in ("flash_split", "flash_packed") for c in SWEEP_CHUNKS
                     if f"{w}{c}_graph_ms" in row}
            if swept:
                row["best_flash"] = min(swept, key=swept.get)
        print(row, flush=True)
        rows.append(row)
    result = {"benchmark": "probe_query_attention", "title": "Query-block attention, one layer of the Llama-8B "
              "shape (64 query tokens, bf16)", "flash_varlen": flash_ok, "flash_varlen_error":
              flashbuffer.FLASH_VARLEN_ERROR, "rows": rows, "env": {"torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(0)},
              "command": "python scripts/gpu/probe_query_attention.py --out $OUT/probe_query_attention.json"}
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
