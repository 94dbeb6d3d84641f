"""Which attention the captured query step uses, and whether its graph beats the eager forward: measured on
the GPU at hand, not assumed (issue 10: TTFT).

The captured query step (`engine.graphs`) attends over a request's whole static buffer one of two ways: two
matmuls with fp32 scores over every slot (`staticops.masked_attention`), or flash's variable-length kernel over
the request's own slots in context chunks (`flashbuffer.buffer_attention`). Which is faster depends on the
buffer's length, the model's head shape and the GPU: on the H200 with the Llama-8B shape (2026-12-03,
scripts/gpu/probe_query_attention.py) the matmuls won at 2k slots and flash from ~7k. So the engine times both
once at start, on this model's head shape (`flash_crossover`, ~0.1 s), and flash takes every buffer from the
first measured length at which it wins and keeps winning.

Whether a captured graph is worth it at all is a second measurement, per shape (`Verdicts`): past 16k slots on
the H200 the eager forward (SDPA over exact keys, launch-bound at ~24 ms for the 8B shape) beat the graph
with matmul scores (43 ms at 32k). The graphs time their first replay of a shape against a timed eager run of
it, and a shape whose graph loses runs eagerly from then on.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

import torch

from blockattn.engine import flashbuffer, staticops
from blockattn.engine.cudagraph import GraphCache

CALIBRATION_SLOTS = (2048, 4096, 8192, 16384)  # buffer lengths timed at engine start
CALIBRATION_ROWS = 64  # query tokens per timing (a typical question, bucketed)
GRAPH_MARGIN = 1.05  # a graph is kept unless its replay is this much slower than the eager forward

T = TypeVar("T")


def replay_ms(fn: Callable[[], object], device: torch.device, reps: int = 10) -> float:
    """GPU milliseconds of one fn() as the query step runs it: captured in a CUDA graph and replayed (timed
    eagerly, a path of many small kernels would be charged the host's launch time, which a graph does not pay;
    on the H200 the chunked flash path timed 0.73 ms eagerly at 32k slots). Eager timing if capture fails."""
    entry = GraphCache(1, "attention timing").capture("timing", device, fn, lambda graph, _: graph)
    run = entry.replay if entry is not None else fn
    for _ in range(3):
        run()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(torch.cuda.current_stream(device))
        run()
        end.record(torch.cuda.current_stream(device))
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def flash_crossover(heads: int, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device,
                    default: int, slots: tuple[int, ...] = CALIBRATION_SLOTS) -> tuple[int, list[dict]]:
    """(the first buffer length from which flash is used, the timings): one layer's attention of
    CALIBRATION_ROWS query rows over a full buffer of each length, both ways. Where flash does not apply
    (CPU, fp32, a torch without the kernel) nothing is timed and `default` stands. Where flash wins at no
    measured length it starts past the longest (there the matmuls' fp32 scores grow past what the step takes:
    `graphs.MAX_SCORE_BYTES`)."""
    probe = torch.empty(1, kv_heads, 1, head_dim, device=device, dtype=dtype)
    if not flashbuffer.flash_applies(probe):
        return default, []
    try:
        timings = _time_paths(heads, kv_heads, head_dim, dtype, device, slots)
    except Exception as exc:  # noqa: BLE001 - a failed measurement costs the choice, never the engine
        return default, [{"error": f"{type(exc).__name__}: {exc}"[:300]}]
    wins = [t["flash_ms"] <= t["matmul_ms"] for t in timings]
    first = next((i for i in range(len(wins)) if all(wins[i:])), None)
    return (timings[first]["slots"] if first is not None else 2 * slots[-1]), timings


def _time_paths(heads: int, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device,
                slots: tuple[int, ...]) -> list[dict]:
    rows_n = CALIBRATION_ROWS
    groups = heads // kv_heads
    timings = []
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for capacity in slots:
            key = torch.randn(1, kv_heads, capacity, head_dim, device=device, dtype=dtype, generator=gen)
            value = torch.randn_like(key)
            query = torch.randn(1, heads, rows_n, head_dim, device=device, dtype=dtype, generator=gen)
            end = torch.tensor([capacity], device=device)
            visible = (torch.arange(capacity, device=device).view(1, -1)
                       <= torch.arange(capacity - rows_n, capacity, device=device).view(-1, 1))
            rows = query.reshape(1, kv_heads, groups * rows_n, head_dim)
            mask = visible.repeat(groups, 1).view(1, 1, groups * rows_n, capacity)
            matmul = replay_ms(lambda: staticops.masked_attention(rows, key, value, mask, None), device)
            flash = replay_ms(lambda: flashbuffer.buffer_attention(query, key, value, end, None), device)
            timings.append({"slots": capacity, "matmul_ms": round(matmul, 4), "flash_ms": round(flash, 4)})
    return timings


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """fn()'s result and its wall milliseconds, the GPU's queue drained before and after (a one-off per shape)."""
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize(device)
    return out, 1e3 * (time.perf_counter() - t0)


class Verdicts:
    """Per shape: the eager forward's time (measured first), then whether the graph's first replay beat it."""

    def __init__(self):
        self.eager_ms: dict[tuple, float] = {}
        self.graph_ms: dict[tuple, float] = {}
        self.graph_wins: dict[tuple, bool] = {}

    def judge(self, shape: tuple, replay_ms: float) -> bool:
        self.graph_ms[shape] = replay_ms
        eager = self.eager_ms.get(shape)
        self.graph_wins[shape] = eager is None or replay_ms <= GRAPH_MARGIN * eager
        return self.graph_wins[shape]

    def info(self) -> list[dict]:
        return [{"capacity": s[0], "query_tokens": s[1], "keep": s[2], "mode": s[3],
                 "eager_ms": round(self.eager_ms.get(s, float("nan")), 3), "graph_ms": round(ms, 3),
                 "graph_kept": self.graph_wins[s]} for s, ms in self.graph_ms.items()]
