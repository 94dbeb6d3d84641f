"""Where a serving request's block-mode prefill spends its time on the GPU (issue 10: the serving goal).

    python scripts/gpu/profile_serve_prefill.py --out $OUT/profile_serve_prefill.json

The serving benchmark's block-mode requests (`blockattn bench serve`, SmolLM2, ~8k-token contexts of HotpotQA
paragraphs) spent ~10 ms of their ~17 ms server-side TTFT in the "blocks" phase: computing the ~23 % of
documents not yet cached. This replays that shape without the HTTP stack: the SmolLM2 shape (random weights,
bf16), requests of 56 blocks of 100-170 tokens (~7.6k context tokens, as served), `--new` of them unseen, the rest cached. Per request the
engine's phase split (device-synchronised); then torch.profiler over a few requests: host time by function
(where the CPU goes between kernels) and device time by kernel. A dev tool, not a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from blockattn.bench.models import _random_model
from blockattn.engine.engine import BlockEngine, EngineConfig

from profile_decode import smollm2_config


def requests(rng, n: int, blocks: int, new: int, pool: list[list[int]]):
    """n requests of `blocks` blocks: `new` fresh ones each, the rest drawn from `pool` (cached by then)."""
    for _ in range(n):
        fresh = [rng.integers(10, 40000, int(rng.integers(100, 170))).tolist() for _ in range(new)]
        seen = [pool[i] for i in rng.choice(len(pool), blocks - new, replace=False)]
        order = rng.permutation(blocks)
        both = seen + fresh
        yield [both[i] for i in order], rng.integers(10, 40000, 40).tolist()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--blocks", type=int, default=56)
    parser.add_argument("--new", type=int, default=13)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--device", default="cuda", help="cpu: a 2-layer smoke run of this script")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    config = smollm2_config()
    if args.device == "cpu":
        config.num_hidden_layers = 2
    model = _random_model(config, torch.bfloat16 if args.device == "cuda" else torch.float32, torch.device(args.device))
    engine = BlockEngine(model, "smollm2-shape", None, EngineConfig())
    pool = [rng.integers(10, 40000, int(rng.integers(100, 170))).tolist() for _ in range(400)]
    for i in range(0, len(pool), 40):  # cache the pool (40 blocks a request fit the 8k window)
        engine.prefill(pool[i:i + 40], [5, 6, 7])
    for blocks, query in requests(rng, 6, args.blocks, args.new, pool):  # warm-up: captures, compilations
        engine.prefill(blocks, query, max_new_tokens=32)
    phases = []
    for blocks, query in requests(rng, args.requests, args.blocks, args.new, pool):
        phases.append(engine.prefill(blocks, query, max_new_tokens=32, sync_timings=True).timings_ms)
    median = {k: round(statistics.median(p[k] for p in phases), 3) for k in phases[0]}
    unsynced = []
    for blocks, query in requests(rng, args.requests, args.blocks, args.new, pool):
        _sync(args.device)
        started = time.perf_counter()
        engine.prefill(blocks, query, max_new_tokens=32)
        _sync(args.device)
        unsynced.append((time.perf_counter() - started) * 1e3)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for blocks, query in requests(rng, 4, args.blocks, args.new, pool):
            engine.prefill(blocks, query, max_new_tokens=32)
        _sync(args.device)
    events = prof.key_averages()
    host = sorted(events, key=lambda e: -e.self_cpu_time_total)[:25]
    device = sorted((e for e in events if e.self_device_time_total > 0), key=lambda e: -e.self_device_time_total)[:15]
    report = {"title": "Serving-shaped block prefill profile — NVIDIA H200",
              "command": "python scripts/gpu/profile_serve_prefill.py", "commit": os.environ.get("BLOCKATTN_COMMIT"),
              "config": vars(args), "phases_ms_median_synced": median,
              "prefill_ms_median_unsynced": round(statistics.median(unsynced), 3),
              "host_top_per_request": [{"name": e.key[:90], "calls": e.count / 4, "self_cpu_ms": e.self_cpu_time_total / 4e3}
                                       for e in host],
              "device_top_per_request": [{"name": e.key[:90], "calls": e.count / 4,
                                          "self_device_ms": e.self_device_time_total / 4e3} for e in device],
              "engine_info": engine.info()}
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: report[k] for k in ("phases_ms_median_synced", "prefill_ms_median_unsynced")}))
    for row in report["host_top_per_request"][:15]:
        print(f"host  {row['self_cpu_ms']:8.3f} ms  {row['calls']:7.1f}x  {row['name']}")
    for row in report["device_top_per_request"][:8]:
        print(f"dev   {row['self_device_ms']:8.3f} ms  {row['calls']:7.1f}x  {row['name']}")


if __name__ == "__main__":
    main()
