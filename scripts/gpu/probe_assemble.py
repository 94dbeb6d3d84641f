"""Placing cached blocks into a request's buffer (issue 10: the serving benchmark's block server spent 7.7 ms
assembling ~54 HotpotQA paragraphs of ~140 tokens, H200 2026-12-03): the fused Triton path (one kernel launch per
block) against the torch path (values block by block, keys gathered and rotated in one compiled pass), on the
shapes of real requests, timed with CUDA events around the whole `BlockPlacer.place` call (host work included).

    python scripts/gpu/probe_assemble.py --out $OUT/probe_assemble.json
    python scripts/gpu/probe_assemble.py --out /tmp/a.json --device cpu --smoke     # the script itself, tiny
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from blockattn.attention.rope import RopeSpec
from blockattn.engine import fused_assemble
from blockattn.engine.assemble import BlockPlacer
from blockattn.engine.kvbuffer import SequenceKV, bucket_capacity

# (name, layers, KV heads, head dim, RoPE base, blocks, tokens per block)
CASES = [("smollm2-shape, serving-like", 30, 3, 64, 100000.0, 54, 140),
         ("llama8b-shape, serving-like", 32, 8, 128, 500000.0, 54, 140),
         ("llama8b-shape, bench ttft 32k", 32, 8, 128, 500000.0, 64, 512)]


def timed(fn, device: torch.device, repeat: int = 10) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync()
    return (time.perf_counter() - start) / repeat * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="2 layers, 3 blocks of 8 tokens per case")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rows = []
    for name, layers, kv_heads, dim, base, blocks, tokens in CASES:
        if args.smoke:
            layers, blocks, tokens = 2, 3, 8
        rope = RopeSpec(inv_freq=1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim), rotary_dim=dim)
        entries = [torch.randn(layers, 2, kv_heads, tokens, dim, device=device, dtype=dtype)
                   for _ in range(blocks)]
        parts = [(e, 4, i * tokens) for i, e in enumerate(entries)]  # native start 4 (after sinks), moved
        kv = SequenceKV(layers, kv_heads, dim, bucket_capacity(blocks * tokens + 64), dtype, device)
        row = {"case": name, "blocks": blocks, "tokens_per_block": tokens}
        for way, fused in (("fused", True), ("torch", False)):
            placer = BlockPlacer(rope, compiled=device.type == "cuda", fused=fused)
            try:
                row[f"{way}_ms"] = round(timed(lambda: placer.place(kv, parts), device), 3)
                # the fused path runs only where Triton does, and switches itself off on a mismatch
                row[f"{way}_active"] = (placer.fused and fused_assemble.fused_available(device)) if fused else True
            except RuntimeError as exc:  # recorded: the other way still runs
                row[f"{way}_error"] = f"{type(exc).__name__}: {exc}"[:200]
        row["bytes_moved_mb"] = round(2 * sum(e.numel() * e.element_size() for e in entries) / 1e6, 1)
        print(row, flush=True)
        rows.append(row)
    result = {"benchmark": "probe_assemble", "title": "Placing cached blocks: fused Triton kernel vs torch path",
              "rows": rows, "env": {"torch": torch.__version__,
                                "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
              "command": "python scripts/gpu/probe_assemble.py --out $OUT/probe_assemble.json",
              "summary": [f"{r['case']}: {r['blocks']} blocks × {r['tokens_per_block']} tokens, fused "
                          f"{r.get('fused_ms', 'failed')} ms vs torch {r.get('torch_ms', 'failed')} ms" for r in rows]}
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
