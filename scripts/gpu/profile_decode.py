"""Where a decode step's time goes on the GPU (issue 10): kernels per step, GPU time vs wall time.

    python scripts/gpu/profile_decode.py --out $OUT/profile_decode.json [--models smollm2-shape,llama8b]

Random weights (speed does not depend on them): the SmolLM2-135M shape and the Llama-3-8B shape. For each
engine setting (graphs; graphs + fused layer ops, the default; graphs + torch.compile) it measures, after a warm-up:
    wall_ms       one `decode_one_token` as the caller sees it (host included)
    gpu_ms        CUDA-event time of the same calls (device time; wall >> gpu means host-bound)
    kernels       kernels per step and the top ones by device time (torch.profiler, the eager static step:
                  a replayed graph runs these same kernels)
    query_ms      the query forward of a 32-token query block (eager vs graph-captured)
A dev tool, not a benchmark: `blockattn bench decode` is the side-by-side measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile
from transformers import LlamaConfig

from blockattn.bench.models import _random_model, llama8b_config
from blockattn.engine import fusedops
from blockattn.engine.engine import BlockEngine, EngineConfig


def smollm2_config() -> LlamaConfig:
    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                       rope_parameters={"rope_type": "default", "rope_theta": 100000.0}, rms_norm_eps=1e-5,
                       tie_word_embeddings=True)


def _prefill(engine, rng, context=1536, block=160, query=32, new=96):
    blocks = [rng.integers(10, 40000, block).tolist() for _ in range(context // block)]
    return engine.prefill(blocks, rng.integers(10, 40000, query).tolist(), max_new_tokens=new, sync_timings=True)


def _decode_times(engine, state, steps):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    wall0 = time.perf_counter()
    start.record()
    token = 100
    for _ in range(steps):
        logits = engine.decode_one_token(state, token)
        token = int(torch.argmax(logits))
    end.record()
    torch.cuda.synchronize()
    return (time.perf_counter() - wall0) * 1e3 / steps, start.elapsed_time(end) / steps


def _kernels(engine, state, steps=3):
    # as inside a capture: the fused ops (`engine.fusedops`) run in captured steps only, and this eager static
    # step stands for what the replayed graph launches (one step first, so that compiling is not profiled)
    with fusedops.capturing():
        engine.decode_one_token(state, 100)
    with profile(activities=[ProfilerActivity.CUDA]) as prof, fusedops.capturing():
        for _ in range(steps):
            engine.decode_one_token(state, 100)
        torch.cuda.synchronize()
    rows = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    total_us = sum(e.self_device_time_total for e in rows)
    count = sum(e.count for e in rows)
    top = sorted(rows, key=lambda e: -e.self_device_time_total)[:15]
    return {"kernels_per_step": count / steps, "kernel_us_per_step": total_us / steps,
            "top": [{"name": e.key[:90], "count_per_step": e.count / steps,
                     "us_per_step": e.self_device_time_total / steps} for e in top]}


def run_setting(model, label, setting: dict, steps: int) -> dict:
    cfg = EngineConfig(**setting)
    engine = BlockEngine(model, label, None, cfg)
    rng = np.random.default_rng(0)
    out: dict = {"setting": setting}
    state = _prefill(engine, rng)
    out["prefill_timings_ms"] = state.timings_ms
    started = time.perf_counter()
    _decode_times(engine, state, 8)  # warm-up: captures (and compiles)
    out["warmup_s"] = time.perf_counter() - started
    out["wall_ms"], out["gpu_ms"] = _decode_times(engine, state, steps)
    queries = []
    for _ in range(4):
        queries.append(_prefill(engine, rng).timings_ms.get("query"))
    out["query_ms"] = queries
    eager = BlockEngine(model, label, None, EngineConfig(**{**setting, "decode_graphs": True}))
    eager.decode_graphs.use_graphs = False  # the same static step, launched kernel by kernel: profilable
    est = _prefill(eager, rng)
    _decode_times(eager, est, 4)
    out["eager_static_wall_ms"], out["eager_static_gpu_ms"] = _decode_times(eager, est, 16)
    out["kernels"] = _kernels(eager, est)
    out["engine_info"] = engine.info()
    return out


def summary(models: dict) -> list[str]:
    """One line per model and setting, for the results page (its generic renderer shows `summary`)."""
    lines = []
    for name, rows in models.items():
        for row in rows:
            head = f"{name}, " + ", ".join(f"{k}={v}" for k, v in row["setting"].items())
            if "error" in row:
                lines.append(f"{head}: failed ({row['error'][:120]})")
                continue
            k = row["kernels"]
            top = k["top"][0]
            lines.append(f"{head}: graph-replayed step {row['gpu_ms']:.2f} ms on the GPU ({row['wall_ms']:.2f} ms "
                         f"wall); eager static step {k['kernels_per_step']:.0f} kernels, "
                         f"{k['kernel_us_per_step'] / 1e3:.2f} ms of kernel time, the largest {top['name'][:40]}… "
                         f"{top['us_per_step'] / 1e3:.2f} ms ({top['count_per_step']:.0f} calls)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", default="smollm2-shape,llama8b")
    parser.add_argument("--steps", type=int, default=48)
    args = parser.parse_args()
    configs = {"smollm2-shape": smollm2_config, "llama8b": llama8b_config}
    settings = [{"compile_decode": False, "fused_ops": False}, {"compile_decode": False, "fused_ops": True},
                {"compile_decode": True, "fused_ops": True}]
    import transformers

    report = {"title": "Decode-step profile — NVIDIA H200", "command": "python scripts/gpu/profile_decode.py",
              "commit": os.environ.get("BLOCKATTN_COMMIT"),
              "env": {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "transformers": transformers.__version__}, "models": {}}
    for name in args.models.split(","):
        model = _random_model(configs[name](), torch.bfloat16, torch.device("cuda"))
        report["models"][name] = rows = []
        for setting in settings:
            try:
                rows.append(run_setting(model, name, setting, args.steps))
            except Exception as exc:  # noqa: BLE001 - a dev tool: record and go on
                rows.append({"setting": setting, "error": f"{type(exc).__name__}: {exc}"})
            print(json.dumps(rows[-1])[:2000], flush=True)
            report["summary"] = summary(report["models"])
            with open(args.out, "w") as f:
                json.dump(report, f, indent=1)
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
