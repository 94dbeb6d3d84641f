"""Which attention the captured query step uses, and whether its graph beats the eager forward: measured on
the GPU at hand, not assumed (issue 10: TTFT).

The captured query step (`engine.graphs`) attends over a request's whole static buffer one of two ways: two
matmuls with fp32 scores over every slot (`staticops.masked_attention`), or flash's variable-length kernel over
the request's own slots in context chunks (`flashbuffer.buffer_attention`). Which is faster depends on the
buffer's length, the model's head shape and the GPU: on the H200 with the Llama-8B shape (2026-12-03,
scripts/gpu/probe_query_attention.py) the matmuls won at 2k slots and flash from ~7k; and how flash should cut
the context into chunks (and whether to fold grouped query heads into rows) changed its time 3x at 32k. So the
engine times the matmuls and every split tried once at start, on this model's head shape
(`calibrate_attention`, about a second), and its `AttentionPlan` takes flash from the first measured length at
which it wins and keeps winning, each length with its fastest split.

Whether a captured graph is worth it at all is a second measurement, per shape (`Verdicts`): past 16k slots on
the H200 the eager forward (SDPA over exact keys, launch-bound at ~24 ms for the 8B shape) beat the graph
with matmul scores (43 ms at 32k). The graphs time their first replay of a shape against a timed eager run of
it, and a shape whose graph loses runs eagerly from then on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch

from blockattn.engine import flashbuffer, staticops
from blockattn.engine.cudagraph import GraphCache

CALIBRATION_SLOTS = (2048, 4096, 8192, 16384, 32768)  # buffer lengths timed at engine start
CALIBRATION_ROWS = 64  # query tokens per timing (a typical question, bucketed)
CALIBRATION_CHUNKS = (4, 8, 16, 32, 64)  # context chunk counts tried for flash at each length
MIN_CHUNK_SLOTS = 128  # shorter chunks are not tried: each costs a thread block's start-up and a merge term
GRAPH_MARGIN = 1.05  # a graph is kept unless its replay is this much slower than the eager forward

T = TypeVar("T")


@dataclass(frozen=True)
class AttentionPlan:
    """How the captured query step attends over a buffer of `capacity` slots: flash from `flash_from` slots on
    (where `flashbuffer.flash_applies`), the two matmuls below; flash's context cut as the `splits` entry of
    the longest timed length <= capacity says (the shortest one's below all of them; DEFAULT_SPLIT if none)."""

    flash_from: int
    splits: tuple[tuple[int, flashbuffer.Split], ...] = ()  # (timed length, its fastest split), ascending

    def uses_flash(self, capacity: int, buffer: torch.Tensor) -> bool:
        """Whether a buffer of `capacity` slots, held in `buffer` (any view of it: its device and dtype
        decide whether flash runs at all), is attended with flash."""
        return capacity >= self.flash_from and flashbuffer.flash_applies(buffer)

    def split_for(self, capacity: int) -> flashbuffer.Split | None:
        chosen = self.splits[0][1] if self.splits else None
        for slots, split in self.splits:
            if capacity >= slots:
                chosen = split
        return chosen

    def info(self) -> dict:
        return {"flash_from_slots": self.flash_from,
                "splits": [{"slots": slots, **split.info()} for slots, split in self.splits]}


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


def calibrate_attention(heads: int, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device,
                        default: int, slots: tuple[int, ...] = CALIBRATION_SLOTS) -> tuple[AttentionPlan, list[dict]]:
    """(the plan, the timings): one layer's attention of CALIBRATION_ROWS query rows over a full buffer of each
    length, by the two matmuls and by flash at every chunk count and packing tried (`_time_paths`). Flash takes
    every buffer from the first measured length at which its fastest split beats the matmuls and keeps beating
    them, each length with its fastest split. Where flash does not apply (CPU, fp32, a torch without the
    kernel) nothing is timed and flash starts at `default`; where it wins at no measured length it starts past
    the longest (there the matmuls' fp32 scores grow past what the step takes: `graphs.MAX_SCORE_BYTES`)."""
    probe = torch.empty(1, kv_heads, 1, head_dim, device=device, dtype=dtype)
    if not flashbuffer.flash_applies(probe):
        return AttentionPlan(default), []
    try:
        timings = _time_paths(heads, kv_heads, head_dim, dtype, device, slots)
    except Exception as exc:  # noqa: BLE001 - a failed measurement costs the choice, never the engine
        return AttentionPlan(default), [{"error": f"{type(exc).__name__}: {exc}"[:300]}]
    wins = [t["flash_ms"] <= t["matmul_ms"] for t in timings]
    first = next((i for i in range(len(wins)) if all(wins[i:])), None)
    flash_from = timings[first]["slots"] if first is not None else 2 * slots[-1]
    splits = tuple((t["slots"], flashbuffer.Split(t["chunk_slots"], t["pack_gqa"])) for t in timings)
    return AttentionPlan(flash_from, splits), timings


def split_options(capacity: int, grouped: bool) -> list[flashbuffer.Split]:
    """The splits timed at one length: CALIBRATION_CHUNKS chunks (of MIN_CHUNK_SLOTS slots or more), each
    packed and not where query heads share KV heads."""
    counts = [c for c in CALIBRATION_CHUNKS if capacity // c >= MIN_CHUNK_SLOTS] or [1]
    packs = (False, True) if grouped else (False,)
    return [flashbuffer.Split(capacity // c, pack) for c in counts for pack in packs]


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
            options = {}
            for split in split_options(capacity, groups > 1):
                options[split] = replay_ms(
                    lambda s=split: flashbuffer.buffer_attention(query, key, value, end, None, s), device)
            best = min(options, key=options.get)
            timings.append({"slots": capacity, "matmul_ms": round(matmul, 4), "flash_ms": round(options[best], 4),
                            **best.info(),
                            "flash_options": [{**s.info(), "ms": round(ms, 4)} for s, ms in options.items()]})
            del key, value
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
